"""A trial variant of the flow whose couplings also see the conditions at their input.

The paper's coupling makes the spline parameters the element-wise product of a data network and
a condition network, ``theta = net(a) * net_cond(c)``: separable in the data and the conditions,
so a galaxy can only rescale each parameter, not change how it depends on the other half of the
star. This variant adds the conditions to the first layer of each data network as well,
``net(a, c) = MLP(W a + b + g(c))`` with ``g`` a condition network of width ``hidden``, keeping the
product: a strict superset of the paper's coupling (``g = 0`` recovers it). It is a measurement
for the lever table (``train_lever.py --input-conditioning``), not part of the package: a model
file of it cannot be loaded by :class:`astroflow_gal.GalaxyModel`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.flow.layers import MLP, DoubleCoupling


def _mlp_with_input_term(mlp: MLP, x: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` with ``extra`` (rows or one row) added to its first layer's pre-activation."""
    slope = mlp.negative_slope
    linears = mlp._linears
    x = F.leaky_relu(F.linear(x, linears[0].weight, linears[0].bias) + extra, slope)
    for linear in linears[1:]:
        x = F.leaky_relu(F.linear(x, linear.weight, linear.bias), slope)
    return x


class InputConditionedCoupling(DoubleCoupling):
    """:class:`DoubleCoupling` whose data networks also take ``g(c)`` at their first layer."""

    def __init__(self, dim, cond_dim, bins, bound, hidden, hidden_layers, negative_slope):
        super().__init__(dim, cond_dim, bins, bound, hidden, hidden_layers, negative_slope)
        self.net_in1 = MLP(cond_dim, hidden, hidden, 1, negative_slope)
        self.net_in2 = MLP(cond_dim, hidden, hidden, 1, negative_slope)

    def condition_outputs(self, c):
        return (self.net_cond1(c), self.net_cond2(c), self.net_in1(c), self.net_in2(c))

    @staticmethod
    def _rows(h, index):
        return h if index is None else h.index_select(0, index)

    def forward(self, x, cond_out=None, index=None):
        c1, c2, h1, h2 = cond_out
        a, b = x[:, : self.d1], x[:, self.d1 :]
        b, ld_b = self._spline(b, _mlp_with_input_term(self.net1, a, self._rows(h1, index)),
                               c1, index, inverse=False)
        a, ld_a = self._spline(a, _mlp_with_input_term(self.net2, b, self._rows(h2, index)),
                               c2, index, inverse=False)
        return torch.cat([a, b], dim=1), ld_a + ld_b

    def inverse(self, y, cond_out=None, index=None):
        c1, c2, h1, h2 = cond_out
        a, b = y[:, : self.d1], y[:, self.d1 :]
        a, ld_a = self._spline(a, _mlp_with_input_term(self.net2, b, self._rows(h2, index)),
                               c2, index, inverse=True)
        b, ld_b = self._spline(b, _mlp_with_input_term(self.net1, a, self._rows(h1, index)),
                               c1, index, inverse=True)
        return torch.cat([a, b], dim=1), ld_a + ld_b


def input_conditioned_flow(dim: int, cond_dim: int, seed: int, **config) -> ConditionalSplineFlow:
    """A :class:`ConditionalSplineFlow` whose couplings are :class:`InputConditionedCoupling`."""
    flow = ConditionalSplineFlow(dim, cond_dim, **config, seed=seed)
    c = flow.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for j in range(1, len(flow.layers), 2):
            old = flow.layers[j]
            new = InputConditionedCoupling(dim, cond_dim, c["bins"], c["bound"], c["hidden"],
                                           c["hidden_layers"], c["negative_slope"])
            # the paper's part starts from the same weights as the plain flow's
            new.load_state_dict(old.state_dict(), strict=False)
            flow.layers[j] = new
    return flow

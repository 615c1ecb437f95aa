"""Building blocks of the flow: the MLP, the LU-form 1x1 convolution, the double coupling layer.

Every invertible block maps data to latent in ``forward`` and latent to data in ``inverse``, and
returns the log-determinant of the map it applied, one value per row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spline import spline_from_theta, spline_parameter_count

__all__ = ["MLP", "LUConv1x1", "DoubleCoupling"]


class MLP(nn.Module):
    """Fully connected network; every ``Linear``, the output one included, is followed by a
    LeakyReLU.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.
    hidden : int
        Width of the hidden layers.
    hidden_layers : int
        Number of hidden layers (the network has ``hidden_layers + 1`` Linear layers).
    negative_slope : float
        Slope of the LeakyReLU for negative inputs.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int,
        hidden_layers: int,
        negative_slope: float,
    ) -> None:
        super().__init__()
        widths = [in_features] + [hidden] * hidden_layers + [out_features]
        modules: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            modules += [nn.Linear(n_in, n_out), nn.LeakyReLU(negative_slope)]
        self.network = nn.Sequential(*modules)
        self.negative_slope = float(negative_slope)
        self._linears = [m for m in modules if isinstance(m, nn.Linear)]

    def _transposed_weights(self) -> list[torch.Tensor]:
        """The weights transposed to (in, out) row-major, kept until a weight changes (its
        storage, or its version counter, which every in-place update advances)."""
        key = tuple((lin.weight.data_ptr(), lin.weight._version) for lin in self._linears)
        cache = self._transposed_cache
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, [lin.weight.t().contiguous() for lin in self._linears])
            self._transposed_cache = cache
        return cache[1]

    _transposed_cache: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place activations: the Linear outputs are temporaries, and LeakyReLU with a
        # positive slope can take its gradient from its own output.
        inplace = self.negative_slope > 0
        if not torch.is_grad_enabled():
            # addmm with the weight transposed to (in, out) row-major: BLAS is much faster for
            # odd output widths (3 K - 1 per dimension) than with the (out, in) layout. The
            # transposed copies are made once, not once per block of rows.
            for linear, weight_t in zip(self._linears, self._transposed_weights(), strict=True):
                x = torch.addmm(linear.bias, x, weight_t)
                x = F.leaky_relu_(x, self.negative_slope) if inplace else F.leaky_relu(
                    x, self.negative_slope
                )
            return x
        for linear in self._linears:
            # Under autograd the transposed copy (and its backward) costs more than it saves.
            x = F.linear(x, linear.weight, linear.bias)
            if inplace:
                x = F.leaky_relu_(x, self.negative_slope)
            else:
                x = F.leaky_relu(x, self.negative_slope)
        return x


class LUConv1x1(nn.Module):
    """Invertible linear map of the features in LU form (Kingma & Dhariwal 2018).

    ``W = P @ (L_strict + I) @ (U_strict + diag(S))``; data to latent is ``y = x @ W`` with
    log-determinant ``sum(log |S|)``. Only the strict triangles of ``L`` and ``U`` are used.

    Parameters
    ----------
    dim : int
        Number of features.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        self.register_buffer("P", p.float())
        self.L = nn.Parameter(lower.float())
        self.U = nn.Parameter(upper.float())
        self.S = nn.Parameter(torch.diagonal(upper).clone().float())
        self.register_buffer("_lower_mask", torch.tril(torch.ones(dim, dim), -1), persistent=False)
        self.register_buffer("_upper_mask", torch.triu(torch.ones(dim, dim), 1), persistent=False)

    def weight(self) -> torch.Tensor:
        """The matrix ``W`` (dim, dim)."""
        eye = torch.eye(self.S.shape[0], dtype=self.S.dtype, device=self.S.device)
        lower = self.L * self._lower_mask + eye
        upper = self.U * self._upper_mask + torch.diag(self.S)
        return self.P @ lower @ upper

    def log_abs_det(self) -> torch.Tensor:
        """``log |det W|`` (scalar)."""
        return torch.log(torch.abs(self.S)).sum()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.weight(), self.log_abs_det().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y @ torch.linalg.inv(self.weight()), (-self.log_abs_det()).expand(y.shape[0])


class DoubleCoupling(nn.Module):
    """Conditional double coupling layer with rational-quadratic splines.

    With ``a = x[:, :d1]`` and ``b = x[:, d1:]`` (``d1 = dim // 2``), data to latent is

    1. ``b' = spline(b; theta = net1(a) * net_cond1(c))``
    2. ``a' = spline(a; theta = net2(b') * net_cond2(c))``

    and the output is ``concat(a', b')``. The product is element-wise; without a condition
    (``cond_dim = 0``) the data networks alone give the parameters.

    Parameters
    ----------
    dim : int
        Number of data features (>= 2).
    cond_dim : int
        Number of condition features (0 for an unconditional layer).
    bins : int
        Number of spline bins ``K``.
    bound : float
        Spline interval half-width ``B``.
    hidden, hidden_layers : int
        Width and number of hidden layers of every MLP.
    negative_slope : float
        LeakyReLU slope.
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        bins: int,
        bound: float,
        hidden: int,
        hidden_layers: int,
        negative_slope: float,
    ) -> None:
        super().__init__()
        self.d1, self.d2 = dim // 2, dim - dim // 2
        self.bins, self.bound = bins, float(bound)
        n_par = spline_parameter_count(bins)
        args = (hidden, hidden_layers, negative_slope)
        self.net1 = MLP(self.d1, self.d2 * n_par, *args)
        self.net2 = MLP(self.d2, self.d1 * n_par, *args)
        self.cond_dim = cond_dim
        if cond_dim > 0:
            self.net_cond1 = MLP(cond_dim, self.d2 * n_par, *args)
            self.net_cond2 = MLP(cond_dim, self.d1 * n_par, *args)

    def condition_outputs(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Outputs of both condition networks for condition rows ``c`` (M, cond_dim)."""
        if self.cond_dim == 0:
            return None
        return self.net_cond1(c), self.net_cond2(c)

    def _spline(
        self,
        values: torch.Tensor,
        data_out: torch.Tensor,
        cond_out: torch.Tensor | None,
        index: torch.Tensor | None,
        inverse: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if cond_out is not None:
            if index is not None:
                cond_out = cond_out.index_select(0, index)
            if torch.is_grad_enabled():
                data_out = data_out * cond_out
            else:
                data_out = data_out.mul_(cond_out)
        theta = data_out.view(values.shape[0], values.shape[1], -1)
        y, logdet = spline_from_theta(values, theta, self.bins, self.bound, inverse=inverse)
        return y, logdet.sum(-1)

    def forward(
        self,
        x: torch.Tensor,
        cond_out: tuple[torch.Tensor, torch.Tensor] | None = None,
        index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Data to latent. ``cond_out`` comes from :meth:`condition_outputs`, one row per star or
        per unique condition (then ``index`` maps stars to rows)."""
        c1, c2 = cond_out if cond_out is not None else (None, None)
        a, b = x[:, : self.d1], x[:, self.d1 :]
        b, ld_b = self._spline(b, self.net1(a), c1, index, inverse=False)
        a, ld_a = self._spline(a, self.net2(b), c2, index, inverse=False)
        return torch.cat([a, b], dim=1), ld_a + ld_b

    def inverse(
        self,
        y: torch.Tensor,
        cond_out: tuple[torch.Tensor, torch.Tensor] | None = None,
        index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to data (undoes step 2, then step 1)."""
        c1, c2 = cond_out if cond_out is not None else (None, None)
        a, b = y[:, : self.d1], y[:, self.d1 :]
        a, ld_a = self._spline(a, self.net2(b), c2, index, inverse=True)
        b, ld_b = self._spline(b, self.net1(a), c1, index, inverse=True)
        return torch.cat([a, b], dim=1), ld_a + ld_b


"""FlatParameters: packed parameters keep their values, gradients land in the flat buffer, and
an optimiser on the flat tensor takes the same steps as one on the separate tensors."""

from __future__ import annotations

import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.training.flat import FlatParameters


def _flow() -> ConditionalSplineFlow:
    return ConditionalSplineFlow(5, 2, n_layers=2, bins=4, hidden=8, hidden_layers=1, seed=3)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 5, generator=g), torch.randn(64, 2, generator=g)


def test_packing_keeps_values_and_shares_storage():
    flow = _flow()
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    flat = FlatParameters(flow.parameters())
    for k, v in flow.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert flat.param.numel() == sum(p.numel() for p in flow.parameters())
    assert flat.is_intact()
    with torch.no_grad():
        flat.param.add_(1.0)
    assert all(torch.equal(p, before[k] + 1.0) for k, p in flow.named_parameters())


def test_gradients_accumulate_into_flat_buffer():
    x, c = _batch()
    reference = _flow()
    (-reference.log_prob(x, c).mean()).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])

    flow = _flow()
    flat = FlatParameters(flow.parameters())
    for _ in range(2):  # a second step starts from zero again
        flat.zero_grad()
        (-flow.log_prob(x, c).mean()).backward()
        assert flat.is_intact()
        torch.testing.assert_close(flat.grad, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["RAdam", "Adam"])
def test_optimiser_on_flat_tensor_matches_per_tensor(name):
    x, c = _batch()
    reference, flow = _flow(), _flow()
    opt_ref = getattr(torch.optim, name)(reference.parameters(), lr=1e-2, foreach=True)
    flat = FlatParameters(flow.parameters())
    opt = getattr(torch.optim, name)([flat.param], lr=1e-2, foreach=True)
    for _ in range(5):
        opt_ref.zero_grad()
        (-reference.log_prob(x, c).mean()).backward()
        opt_ref.step()
        flat.zero_grad()
        (-flow.log_prob(x, c).mean()).backward()
        opt.step()
    initial = _flow().parameters()
    moved = max((a - b).abs().max() for a, b in zip(reference.parameters(), initial, strict=True))
    assert moved > 1e-3
    for a, b in zip(reference.parameters(), flow.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_mixed_dtypes_are_refused():
    a = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="one dtype and device"):
        FlatParameters([a, b])
    with pytest.raises(ValueError, match="no parameters"):
        FlatParameters([])

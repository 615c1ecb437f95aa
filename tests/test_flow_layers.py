"""Building blocks: MLP, LU-form 1x1 convolution, conditional double coupling layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from astroflow_gal.flow import MLP, DoubleCoupling, LUConv1x1
from astroflow_gal.flow.spline import spline_parameter_count

DTYPES = [torch.float32, torch.float64]
ROUND_TRIP_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def test_mlp_structure_and_output_activation():
    torch.manual_seed(0)
    net = MLP(3, 7, hidden=16, hidden_layers=2, negative_slope=0.2)
    linears = [m for m in net.network if isinstance(m, nn.Linear)]
    acts = [m for m in net.network if isinstance(m, nn.LeakyReLU)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 16), (16, 16), (16, 7)]
    assert len(acts) == 3 and all(a.negative_slope == 0.2 for a in acts)
    # the output layer is followed by LeakyReLU too: negative outputs are scaled by the slope
    x = torch.randn(50, 3)
    h = x
    for lin in linears:
        h = torch.nn.functional.leaky_relu(lin(h), 0.2)
    torch.testing.assert_close(net(x), h)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [2, 3, 6, 10])
def test_lu_conv_weight_logdet_inverse(dtype, dim):
    torch.manual_seed(dim)
    conv = LUConv1x1(dim).to(dtype)
    with torch.no_grad():  # make the layer generic: non-orthogonal, entries outside triangles
        conv.L.add_(0.3 * torch.randn(dim, dim, dtype=dtype))
        conv.U.add_(0.3 * torch.randn(dim, dim, dtype=dtype))
        conv.S.mul_(1.0 + 0.2 * torch.rand(dim, dtype=dtype))
    w = conv.weight()
    lower = torch.tril(conv.L.detach(), -1) + torch.eye(dim, dtype=dtype)
    upper = torch.triu(conv.U.detach(), 1) + torch.diag(conv.S.detach())
    torch.testing.assert_close(w.detach(), conv.P @ lower @ upper)
    sign, logabs = torch.linalg.slogdet(w.detach().double())
    assert abs(float(conv.log_abs_det().detach()) - float(logabs)) < 1e-5
    # entries of L on/above and of U on/below the diagonal are ignored
    with torch.no_grad():
        conv.L.add_(torch.triu(torch.ones(dim, dim, dtype=dtype)))
        conv.U.add_(torch.tril(torch.ones(dim, dim, dtype=dtype)))
    torch.testing.assert_close(conv.weight().detach(), w.detach())
    x = torch.randn(64, dim, dtype=dtype)
    y, ld = conv(x)
    torch.testing.assert_close(y, x @ w.detach())
    assert ld.shape == (64,)
    x_back, ld_inv = conv.inverse(y)
    assert (x_back - x).abs().max() <= ROUND_TRIP_TOL[dtype]
    torch.testing.assert_close(ld_inv, -ld)


def _coupling(dim, cond_dim, dtype, seed=0):
    torch.manual_seed(seed)
    layer = DoubleCoupling(dim, cond_dim, bins=5, bound=3.0, hidden=16, hidden_layers=2,
                           negative_slope=0.2).to(dtype)
    with torch.no_grad():  # larger output weights so the splines are far from the identity
        for p in layer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond_dim", [0, 4])
@pytest.mark.parametrize("dim", [2, 3, 6, 10])
def test_coupling_round_trip_and_shapes(dtype, cond_dim, dim):
    layer = _coupling(dim, cond_dim, dtype, seed=dim)
    assert layer.d1 + layer.d2 == dim
    n_par = spline_parameter_count(5)
    assert layer.net1.network[-2].out_features == layer.d2 * n_par
    assert layer.net2.network[-2].out_features == layer.d1 * n_par
    g = torch.Generator().manual_seed(dim)
    x = 1.5 * torch.randn(200, dim, dtype=dtype, generator=g)
    far = torch.empty(20, dim, dtype=dtype).uniform_(5.0, 20.0, generator=g)
    x[:20] = far * torch.sign(torch.randn(20, dim, dtype=dtype, generator=g))
    c = torch.randn(200, cond_dim, dtype=dtype)
    cond = layer.condition_outputs(c)
    assert (cond is None) == (cond_dim == 0)
    z, ld = layer(x, cond)
    assert z.shape == x.shape and ld.shape == (200,)
    assert not torch.equal(z, x)
    x_back, ld_inv = layer.inverse(z, cond)
    assert (x_back - x).abs().max() <= ROUND_TRIP_TOL[dtype]
    assert (ld + ld_inv).abs().max() <= (1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("dim", [2, 3, 6, 10])
def test_coupling_logdet_is_jacobian(dim):
    dtype = torch.float64
    layer = _coupling(dim, 4, dtype, seed=3)
    x = 1.5 * torch.randn(5, dim, dtype=dtype)
    c = torch.randn(5, 4, dtype=dtype)
    x = x.requires_grad_(True)
    out, ld = layer(x, layer.condition_outputs(c))
    # rows are independent: row i of every output's gradient is row i's Jacobian row
    jac = torch.stack(
        [torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0] for j in range(dim)], 1
    )
    _, logabs = torch.linalg.slogdet(jac)
    assert (logabs - ld.detach()).abs().max() < 1e-8


def test_coupling_parameters_are_data_times_condition():
    """The spline parameters are the element-wise product data-MLP(other half) * cond-MLP(c)."""
    layer = _coupling(4, 3, torch.float64, seed=1)
    x = torch.randn(30, 4, dtype=torch.float64)
    c = torch.randn(30, 3, dtype=torch.float64)
    z, _ = layer(x, layer.condition_outputs(c))
    # zero condition output -> all raw parameters 0: uniform bins, derivatives softplus(0)
    with torch.no_grad():
        last = layer.net_cond1.network[-2]
        last.weight.zero_()
        last.bias.zero_()
        last2 = layer.net_cond2.network[-2]
        last2.weight.zero_()
        last2.bias.zero_()
    z0, ld0 = layer(x, layer.condition_outputs(c))
    assert not torch.allclose(z0, z)
    from astroflow_gal.flow.spline import rational_quadratic_spline

    zeros = torch.zeros(30, 2, 5, dtype=torch.float64)
    b, ld_b = rational_quadratic_spline(x[:, 2:], zeros, zeros, zeros[..., :4], 3.0)
    a, ld_a = rational_quadratic_spline(x[:, :2], zeros, zeros, zeros[..., :4], 3.0)
    torch.testing.assert_close(z0, torch.cat([a, b], 1))
    torch.testing.assert_close(ld0, ld_a.sum(-1) + ld_b.sum(-1))


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_coupling_index_path_equals_per_row(direction):
    """Condition outputs for distinct rows + an index give the per-row result and gradients."""
    layer = _coupling(6, 4, torch.float64, seed=2)
    g = torch.Generator().manual_seed(0)
    uniq = torch.randn(3, 4, dtype=torch.float64, generator=g)
    index = torch.randint(0, 3, (40,), generator=g)
    x = 2 * torch.randn(40, 6, dtype=torch.float64, generator=g)
    u1 = uniq.clone().requires_grad_(True)
    fn = layer if direction == "forward" else layer.inverse
    z1, ld1 = fn(x, layer.condition_outputs(u1), index)
    (z1.sum() + ld1.sum()).backward()
    u2 = uniq.clone().requires_grad_(True)
    z2, ld2 = fn(x, layer.condition_outputs(u2[index]))
    (z2.sum() + ld2.sum()).backward()
    torch.testing.assert_close(z1, z2, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld1, ld2, atol=1e-12, rtol=0)
    torch.testing.assert_close(u1.grad, u2.grad, atol=1e-10, rtol=0)

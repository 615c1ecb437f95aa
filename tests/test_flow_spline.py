"""The rational-quadratic spline: exactness, inverse, log-derivative and float32 edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astroflow_gal.flow.spline import (
    rational_quadratic_spline,
    spline_bins,
    spline_parameter_count,
)

BOUND = 3.0
DTYPES = [torch.float32, torch.float64]
ROUND_TRIP_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _raw(n: int, dims: int, bins: int, dtype: torch.dtype, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    shape = (n, dims)
    w = scale * torch.randn(*shape, bins, generator=g, dtype=dtype)
    h = scale * torch.randn(*shape, bins, generator=g, dtype=dtype)
    d = scale * torch.randn(*shape, bins - 1, generator=g, dtype=dtype)
    return w, h, d


def _reference_spline(x: float, widths, heights, derivs, bound: float) -> tuple[float, float]:
    """Durkan et al. (2019) eq. 4 for one scalar, written out with an explicit loop over bins."""
    if x < -bound or x > bound:
        return x, 0.0
    xk, yk = -bound, -bound
    for k in range(len(widths)):
        w, h = widths[k], heights[k]
        last = k == len(widths) - 1
        if xk <= x < xk + w or last:
            s = h / w
            xi = min(max((x - xk) / w, 0.0), 1.0)
            d0, d1 = derivs[k], derivs[k + 1]
            den = s + (d1 + d0 - 2 * s) * xi * (1 - xi)
            y = yk + h * (s * xi**2 + d0 * xi * (1 - xi)) / den
            dy = s**2 * (d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2) / den**2
            return y, math.log(dy)
        xk, yk = xk + w, yk + h
    raise AssertionError("unreachable")


def test_parameter_count():
    assert spline_parameter_count(10) == 29
    assert spline_parameter_count(2) == 5


@pytest.mark.parametrize("dtype", DTYPES)
def test_bins_are_normalised(dtype):
    w, h, d = _raw(7, 3, 6, dtype, 0, scale=3.0)
    widths, heights, derivs = spline_bins(w, h, d, BOUND)
    assert widths.shape == (7, 3, 6) and derivs.shape == (7, 3, 7)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(widths.sum(-1), torch.full((7, 3), 2 * BOUND, dtype=dtype),
                               atol=tol, rtol=0)
    torch.testing.assert_close(heights.sum(-1), torch.full((7, 3), 2 * BOUND, dtype=dtype),
                               atol=tol, rtol=0)
    assert (widths > 0).all() and (heights > 0).all() and (derivs > 0).all()
    assert (derivs[..., 0] == 1).all() and (derivs[..., -1] == 1).all()


def test_matches_scalar_reference():
    """The vectorised spline equals a loop-over-bins transcription of the published formula."""
    w, h, d = _raw(40, 2, 5, torch.float64, 1, scale=2.0)
    g = torch.Generator().manual_seed(2)
    x = 4.0 * torch.rand(40, 2, generator=g, dtype=torch.float64) * 2 - 4.0
    y, logd = rational_quadratic_spline(x, w, h, d, BOUND)
    widths, heights, derivs = spline_bins(w, h, d, BOUND)
    for i in range(40):
        for j in range(2):
            ref_y, ref_l = _reference_spline(
                float(x[i, j]), widths[i, j].tolist(), heights[i, j].tolist(),
                derivs[i, j].tolist(), BOUND,
            )
            assert abs(float(y[i, j]) - ref_y) < 1e-12
            assert abs(float(logd[i, j]) - ref_l) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", [2, 3, 6, 10])
def test_round_trip_and_inverse_logdet(dtype, dims):
    bins = 8
    g = torch.Generator().manual_seed(dims)
    n = 500
    x = torch.cat([
        torch.empty(n, dims, dtype=dtype).uniform_(-BOUND, BOUND, generator=g),
        torch.empty(n, dims, dtype=dtype).uniform_(-100.0, 100.0, generator=g),
    ])
    # raw parameters of the size a trained network produces; much larger ones make bins so
    # flat that no float32 inverse can recover x (an ill-conditioned map, not a bug)
    w, h, d = _raw(2 * n, dims, bins, dtype, seed=10 + dims, scale=0.5)
    y, ld = rational_quadratic_spline(x, w, h, d, BOUND)
    x_back, ld_inv = rational_quadratic_spline(y, w, h, d, BOUND, inverse=True)
    tol = ROUND_TRIP_TOL[dtype]
    assert (x_back - x).abs().max() <= tol
    inside = x.abs() <= BOUND
    assert (x_back - x)[inside].abs().max() <= tol
    assert (ld + ld_inv).abs().max() <= (1e-4 if dtype == torch.float32 else 1e-9)
    # identity outside [-B, B]
    assert torch.equal(y[~inside], x[~inside])
    assert (ld[~inside] == 0).all()
    # the spline maps [-B, B] onto itself
    assert (y[inside].abs() <= BOUND).all()


@pytest.mark.parametrize("inverse", [False, True])
def test_log_derivative_is_autograd_derivative(inverse):
    dtype = torch.float64
    w, h, d = _raw(300, 3, 7, dtype, seed=5, scale=2.0)
    g = torch.Generator().manual_seed(6)
    x = torch.empty(300, 3, dtype=dtype).uniform_(-5.0, 5.0, generator=g).requires_grad_(True)
    y, ld = rational_quadratic_spline(x, w, h, d, BOUND, inverse=inverse)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(ld, torch.log(grad), atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_monotone_and_continuous_at_knots(dtype):
    w, h, d = _raw(1, 1, 9, dtype, seed=7, scale=3.0)
    x = torch.linspace(-BOUND - 0.5, BOUND + 0.5, 20001, dtype=dtype).reshape(-1, 1)
    ones = (x.shape[0], 1, 1)
    y, ld = rational_quadratic_spline(x, w.expand(*ones[:2], 9), h.expand(*ones[:2], 9),
                                      d.expand(*ones[:2], 8), BOUND)
    steps = torch.diff(y[:, 0])
    assert (steps >= 0).all()
    # no jump anywhere (knots, +-B): every step is bounded by the largest slope times the grid step
    dx = float(x[1, 0] - x[0, 0])
    assert steps.max() <= 1.01 * float(torch.exp(ld).max()) * dx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inverse", [False, True])
def test_edge_cases_finite_with_gradients(dtype, inverse):
    """Inputs exactly on knots (x or y knots), at +-B, and far outside: finite values and grads."""
    bins = 6
    w, h, d = _raw(1, 1, bins, dtype, seed=3, scale=4.0)
    widths, heights, _ = spline_bins(w, h, d, BOUND)
    knots = (torch.cumsum(heights if inverse else widths, -1) - BOUND).reshape(-1)
    eps = torch.finfo(dtype).eps * 4 * BOUND
    special = torch.tensor([-BOUND, BOUND, 0.0, BOUND - eps, -BOUND + eps, BOUND + eps,
                            -BOUND - eps, 50.0, -50.0, 1e4, -1e4, 1e30, -1e30], dtype=dtype)
    x = torch.cat([knots, special]).reshape(-1, 1)
    n = x.shape[0]
    w = w.expand(n, 1, bins).clone().requires_grad_(True)
    h = h.expand(n, 1, bins).clone().requires_grad_(True)
    d = d.expand(n, 1, bins - 1).clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    y, ld = rational_quadratic_spline(x, w, h, d, BOUND, inverse=inverse)
    assert torch.isfinite(y).all() and torch.isfinite(ld).all()
    (y.sum() + ld.sum()).backward()
    for t in (x, w, h, d):
        assert torch.isfinite(t.grad).all()
    # knots and the bounds map to knots and bounds (continuity of the piecewise definition)
    other = torch.cumsum(widths if inverse else heights, -1).reshape(-1) - BOUND
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y[: bins, 0].detach(), other, atol=tol, rtol=0)
    yd = y.detach()[:, 0]
    assert abs(float(yd[bins]) + BOUND) <= tol
    assert abs(float(yd[bins + 1]) - BOUND) <= tol
    # far outside: identity, exactly
    far = x.detach()[:, 0].abs() > BOUND
    assert torch.equal(y.detach()[far, 0], x.detach()[far, 0])


def test_discriminant_clamped_in_float32():
    """Very flat and very steep bins: the inverse's discriminant never goes negative to NaN."""
    bins = 10
    g = torch.Generator().manual_seed(11)
    w = 3.0 * torch.randn(2000, 1, bins, generator=g)
    h = 3.0 * torch.randn(2000, 1, bins, generator=g)
    d = 3.0 * torch.randn(2000, 1, bins - 1, generator=g)
    y = torch.empty(2000, 1).uniform_(-BOUND, BOUND, generator=g)
    # half of the points exactly on a y knot, where the discriminant is 0 up to rounding
    _, heights, _ = spline_bins(w, h, d, BOUND)
    y_knots = torch.cumsum(heights, -1) - BOUND
    pick = torch.randint(0, bins, (1000, 1, 1), generator=g)
    y[:1000] = torch.gather(y_knots[:1000], -1, pick)[..., 0]
    x, ld = rational_quadratic_spline(y, w, h, d, BOUND, inverse=True)
    assert torch.isfinite(x).all() and torch.isfinite(ld).all()
    assert (x.abs() <= BOUND).all()
    y2, _ = rational_quadratic_spline(x, w, h, d, BOUND)
    assert np.isfinite(y2.numpy()).all()
    # extreme bins (slopes up to ~1e8 here) cannot round-trip in float32, but typical points do
    assert (y2 - y).abs().median() < 1e-6


@pytest.mark.parametrize("bins", [2, 3, 10])
@pytest.mark.parametrize("scale", [1.0, 4.0])
@pytest.mark.parametrize("fused", [False, True])
def test_hand_written_backward_equals_autograd(bins, scale, fused, monkeypatch):
    """The training direction's one-node backward (torch's and, where it can be built, the
    compiled fused spline's) gives autograd's gradients (float64) for inputs inside, on knots,
    at +-B and outside, with weighted output and log-det terms."""
    from astroflow_gal.flow import fused as fused_module
    from astroflow_gal.flow.spline import (
        _spline_core,
        spline_backward_by_hand,
        spline_from_theta,
    )

    if fused and not fused_module.available():
        pytest.skip(f"fused spline unavailable: {fused_module.unavailable_reason()}")
    monkeypatch.setenv(fused_module.ENV_SWITCH, "1" if fused else "0")
    node = "_FusedSplineBackward" if fused else "_ForwardSplineBackward"

    g = torch.Generator().manual_seed(bins)
    n, dims = 300, 3
    theta = scale * torch.randn(n, dims, 3 * bins - 1, dtype=torch.float64, generator=g)
    x = 2.0 * BOUND * torch.rand(n, dims, dtype=torch.float64, generator=g) - BOUND
    x[:20] *= 3.0  # some outside
    x[20, 0], x[21, 1], x[22, 2] = BOUND, -BOUND, 0.0
    widths, _, _ = spline_bins(theta[..., :bins], theta[..., bins : 2 * bins],
                               theta[..., 2 * bins :], BOUND)
    x[23:26, 0] = (torch.cumsum(widths[23:26, 0], -1) - BOUND)[:, 0]  # exactly on a knot
    wy = torch.randn(n, dims, dtype=torch.float64, generator=g)
    wl = torch.randn(n, dims, dtype=torch.float64, generator=g)

    def grads(fn):
        xx = x.clone().requires_grad_(True)
        tt = theta.clone().requires_grad_(True)
        y, ld = fn(xx, tt)
        ((y * wy).sum() + (ld * wl).sum()).backward()
        return y.detach(), ld.detach(), xx.grad, tt.grad

    with spline_backward_by_hand():
        got = grads(lambda a, b: spline_from_theta(a, b, bins, BOUND))
    ref = grads(lambda a, b: _spline_core(a, b, bins, BOUND, False)[:2])
    # Bins e^20 times apart (scale 4) make both formulas lose about 8 digits to rounding.
    tol = 1e-9 if scale == 1.0 else 1e-6
    if not fused:
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    else:
        # The compiled knots may differ from torch's by an ulp, so a point placed exactly on a
        # knot may fall in the bin on the other side: there the gradient must be that of the
        # bin below or of the bin above (the log-derivative is not C1 across a knot).
        near = torch.zeros(n, dims, dtype=torch.bool)
        near[23:26, 0] = True
        step = 8 * torch.finfo(x.dtype).eps * x.abs().clamp_min(1.0) * near  # a few ulp
        x_saved = x.clone()
        sides = []
        for sign in (-1.0, 1.0):
            x.copy_(x_saved + sign * step)
            sides.append(grads(lambda a, b: _spline_core(a, b, bins, BOUND, False)[:2]))
        x.copy_(x_saved)
        for i, (a, b) in enumerate(zip(got, ref, strict=True)):
            mask = ~near if a.dim() == 2 else ~near[..., None].expand_as(a)
            torch.testing.assert_close(a[mask], b[mask], rtol=tol, atol=tol)
            for r in range(23, 26):
                close = [torch.allclose(a[r, 0], side[i][r, 0], rtol=1e-5, atol=1e-5)
                         for side in sides]
                assert any(close), (i, r)
    # inside the context the result is a single autograd node; outside, autograd's own
    tt = theta.clone().requires_grad_(True)
    with spline_backward_by_hand():
        y, _ = spline_from_theta(x, tt, bins, BOUND)
    assert type(y.grad_fn).__name__ == node
    y, _ = spline_from_theta(x, tt, bins, BOUND)
    assert type(y.grad_fn).__name__ not in ("_ForwardSplineBackward", "_FusedSplineBackward")


def test_second_derivatives_outside_the_hand_written_backward():
    """Outside the context the spline has exact second derivatives (here d2y/dx2 against a
    finite difference of dy/dx); inside it, asking for them raises instead of being wrong."""
    from astroflow_gal.flow.spline import spline_backward_by_hand, spline_from_theta

    g = torch.Generator().manual_seed(0)
    theta = torch.randn(50, 1, 3 * 6 - 1, dtype=torch.float64, generator=g)
    x = (1.8 * torch.rand(50, 1, dtype=torch.float64, generator=g) - 0.9).requires_grad_(True)

    def slope(xx):
        y, _ = spline_from_theta(xx, theta, 6, BOUND)
        return torch.autograd.grad(y.sum(), xx, create_graph=True)[0]

    (d2,) = torch.autograd.grad(slope(x).sum(), x)
    h = 1e-6
    up, down = ((x.detach() + d).requires_grad_(True) for d in (h, -h))
    fd = (slope(up) - slope(down)) / (2 * h)
    torch.testing.assert_close(d2, fd.detach(), rtol=1e-4, atol=1e-6)
    with spline_backward_by_hand():
        first = slope(x)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(first.sum(), x)


def test_no_host_read_off_the_cpu():
    """Off the CPU the spline reads no value back to the host (which would wait for the device
    at every call): it runs on the meta device, where any such read raises."""
    from astroflow_gal.flow.spline import spline_from_theta

    x = torch.empty(7, 3, device="meta")
    theta = torch.empty(7, 3, 3 * 10 - 1, device="meta", requires_grad=True)
    for inverse in (False, True):
        y, ld = spline_from_theta(x, theta, 10, BOUND, inverse=inverse)
        assert y.shape == (7, 3) and ld.shape == (7, 3) and y.device.type == "meta"
    y, ld = spline_from_theta(x, theta, 10, BOUND)
    (y.sum() + ld.sum()).backward()
    assert theta.grad.shape == theta.shape
    with pytest.raises((RuntimeError, NotImplementedError)):
        float(x.sum())  # the kind of read the test would catch

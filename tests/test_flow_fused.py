"""The fused (compiled) rational-quadratic spline against the pure-torch spline.

Skipped only where no C compiler exists and ``CI`` is unset; under CI a missing fused spline
fails the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow, fused
from astroflow_gal.flow.spline import _spline_core, spline_backward_by_hand, spline_from_theta

BOUND = 3.0
BINS = 10


def _need_fused() -> None:
    if fused.available():
        return
    reason = fused.unavailable_reason()
    if os.environ.get("CI"):
        pytest.fail(f"the fused spline must build under CI: {reason}")
    pytest.skip(f"fused spline unavailable here: {reason}")


def _values(n: int, dims: int, dtype: torch.dtype, seed: int, scale: float = 1.5):
    """Inputs inside, at +-B, on 0, outside and NaN; raw parameters of typical spread."""
    g = torch.Generator().manual_seed(seed)
    x = 2.2 * torch.randn(n, dims, dtype=dtype, generator=g)
    x[0, 0], x[1, 0], x[2, 0], x[3, 0], x[4, 0] = BOUND, -BOUND, 0.0, 40.0, float("nan")
    theta = scale * torch.randn(n, dims, 3 * BINS - 1, dtype=dtype, generator=g)
    return x, theta


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_equal_the_torch_spline(dtype, inverse):
    """Outputs and log-derivatives equal the torch spline's within the rounding of the dtype:
    in float64 to 1e-11; in float32 both are as far from the float64 result (the few elements
    in bins e^4 narrower than their neighbours lose digits in both), and typical elements agree
    to a few ulp. Identity and 0 outside, NaN passed through."""
    _need_fused()
    x, theta = _values(3000, 5, dtype, seed=1)
    y_ref, ld_ref, _ = _spline_core(x, theta, BINS, BOUND, inverse)
    y, ld = fused.fused_spline(x, theta, BINS, BOUND, inverse=inverse)
    assert torch.isnan(y[4, 0]) and ld[4, 0] == 0
    assert y[3, 0] == 40.0 and ld[3, 0] == 0
    ok = ~torch.isnan(x)
    if dtype == torch.float64:
        torch.testing.assert_close(y[ok], y_ref[ok], atol=1e-11, rtol=1e-11)
        torch.testing.assert_close(ld[ok], ld_ref[ok], atol=1e-11, rtol=1e-11)
        return
    y64, ld64, _ = _spline_core(x.double(), theta.double(), BINS, BOUND, inverse)
    for got, ref, exact in ((y, y_ref, y64), (ld, ld_ref, ld64)):
        err_fused = (got[ok].double() - exact[ok]).abs()
        err_torch = (ref[ok].double() - exact[ok]).abs()
        assert err_fused.max() <= 2 * err_torch.max() + 1e-5
        assert err_fused.quantile(0.99) <= 2 * err_torch.quantile(0.99) + 1e-6
        assert (got[ok] - ref[ok]).abs().median() < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_undoes_forward(dtype):
    _need_fused()
    x, theta = _values(2000, 3, dtype, seed=2, scale=1.0)
    x = x.nan_to_num(0.0)
    y, ld = fused.fused_spline(x, theta, BINS, BOUND)
    x_back, ld_back = fused.fused_spline(y, theta, BINS, BOUND, inverse=True)
    if dtype == torch.float64:
        torch.testing.assert_close(x_back, x, atol=1e-9, rtol=0)
        torch.testing.assert_close(ld + ld_back, torch.zeros_like(ld), atol=1e-8, rtol=0)
    else:
        # as the torch spline: typical points to float32 rounding (steep bins lose digits)
        assert (x_back - x).abs().median() < 1e-6
        assert (ld + ld_back).abs().median() < 1e-5


@pytest.mark.parametrize("inverse", [False, True])
def test_gradients_pass_gradcheck(inverse):
    """Both directions' backward (the inverse's by implicit differentiation) against finite
    differences in float64, inputs inside and outside [-B, B]."""
    _need_fused()
    g = torch.Generator().manual_seed(3)
    x = (7.0 * torch.rand(40, 3, dtype=torch.float64, generator=g) - 3.5).requires_grad_(True)
    theta = torch.randn(40, 3, 3 * BINS - 1, dtype=torch.float64, generator=g)
    theta.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: fused.fused_spline(a, b, BINS, BOUND, inverse=inverse), (x, theta)
    )


def test_inverse_gradients_equal_autograd_in_float32():
    """The inverse's implicit backward in float32 is as close to the float64 gradients as
    autograd's of the torch inverse in float32 (steep bins amplify the rounding of both)."""
    _need_fused()
    x, theta = _values(500, 5, torch.float32, seed=4, scale=1.0)
    x[:5, 0] = 0.5  # no NaN; +-B exactly is a kink (one-sided derivatives), left out here
    g = torch.Generator().manual_seed(7)
    wy, wl = torch.randn(500, 5, generator=g), torch.randn(500, 5, generator=g)

    def grads(fn, dtype):
        a = x.to(dtype).requires_grad_(True)
        b = theta.to(dtype).requires_grad_(True)
        y, ld = fn(a, b)
        ((y * wy.to(dtype)).sum() + (ld * wl.to(dtype)).sum()).backward()
        return a.grad.double(), b.grad.double()

    def torch_inverse(a, b):
        return _spline_core(a, b, BINS, BOUND, True)[:2]

    def fused_inverse(a, b):
        return fused.fused_spline(a, b, BINS, BOUND, inverse=True)

    exact = grads(torch_inverse, torch.float64)
    for got, ref, truth in zip(
        grads(fused_inverse, torch.float32), grads(torch_inverse, torch.float32), exact,
        strict=True,
    ):
        err_fused, err_torch = (got - truth).abs(), (ref - truth).abs()
        assert err_fused.max() <= 10 * err_torch.max() + 1e-5
        assert err_fused.quantile(0.99) <= 3 * err_torch.quantile(0.99) + 1e-6
        assert (err_fused / (1e-3 + truth.abs())).median() < 1e-5


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiles_equal_element_by_element_bit_for_bit(dtype, inverse):
    """The kernel runs whole tiles of 16 elements vectorised and the rest one element at a time
    (calls of fewer than 16 elements): both ways give the same values and gradients, bit for
    bit, with elements outside, NaN and a tile that needs the shifted softmax among them."""
    _need_fused()
    n = 16 * 7 + 5
    x, theta = _values(n, 1, dtype, seed=11)
    x, theta = x[:, 0], theta[:, 0]
    theta[40, :BINS] += 80.0  # exp overflows float32 unshifted: that tile goes element-wise
    g = torch.Generator().manual_seed(12)
    gy, gl = torch.randn(n, dtype=dtype, generator=g), torch.randn(n, dtype=dtype, generator=g)
    whole = [*fused._forward(x, theta, BINS, BOUND, inverse),
             *fused._backward(x, theta, gy, gl, BINS, BOUND, inverse)]
    single = [fused._forward(x[i:i + 1], theta[i:i + 1], BINS, BOUND, inverse)
              + fused._backward(x[i:i + 1], theta[i:i + 1], gy[i:i + 1], gl[i:i + 1], BINS,
                                BOUND, inverse) for i in range(n)]
    for k, got in enumerate(whole):
        ref = torch.cat([parts[k] for parts in single])
        assert torch.equal(got.isnan(), ref.isnan())
        assert torch.equal(got.nan_to_num(), ref.nan_to_num())
    assert whole[3][3].abs().sum() == 0 and whole[2][3] == gy[3]  # outside: identity


def test_switch_off_and_required(monkeypatch):
    """``ASTROFLOW_GAL_FUSED_SPLINE=0`` gives the torch spline (its own autograd node in
    training); ``=1`` where the library cannot be loaded is an error that says why."""
    _need_fused()
    x, theta = _values(50, 2, torch.float32, seed=5)
    theta.requires_grad_(True)
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    with spline_backward_by_hand():
        y, _ = spline_from_theta(x, theta, BINS, BOUND)
    assert type(y.grad_fn).__name__ == "_ForwardSplineBackward"
    monkeypatch.setenv(fused.ENV_SWITCH, "auto")
    with spline_backward_by_hand():
        y, _ = spline_from_theta(x, theta, BINS, BOUND)
    assert type(y.grad_fn).__name__ == "_FusedSplineBackward"
    monkeypatch.setitem(fused._STATE, "lib", None)
    monkeypatch.setitem(fused._STATE, "error", "RuntimeError: no C compiler found")
    monkeypatch.setenv(fused.ENV_SWITCH, "1")
    with pytest.raises(RuntimeError, match="no C compiler"), torch.no_grad():
        spline_from_theta(x, theta, BINS, BOUND)
    monkeypatch.setenv(fused.ENV_SWITCH, "auto")
    with spline_backward_by_hand():
        y, _ = spline_from_theta(x, theta, BINS, BOUND)  # falls back to torch
    assert type(y.grad_fn).__name__ == "_ForwardSplineBackward"


def test_flow_results_equal_with_and_without_fusion(monkeypatch):
    """A whole flow: log_prob and samples (no gradient), and the training gradient (inside
    ``spline_backward_by_hand``), with the fused spline on and off."""
    _need_fused()
    flow = ConditionalSplineFlow(6, 2, n_layers=3, bins=BINS, hidden=16, hidden_layers=2, seed=0)
    g = torch.Generator().manual_seed(6)
    x, c = 1.5 * torch.randn(300, 6, generator=g), torch.randn(300, 2, generator=g)
    out = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(fused.ENV_SWITCH, setting)
        with torch.no_grad():
            lp = flow.log_prob(x, c)
            s = flow.sample(300, c[0], generator=torch.Generator().manual_seed(1))
        flow.zero_grad()
        with spline_backward_by_hand():
            loss = -flow.log_prob(x, c).mean()
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in flow.parameters()])
        out[setting] = (lp, s, grads)
    for got, ref in zip(out["1"], out["0"], strict=True):
        torch.testing.assert_close(got, ref, atol=5e-4, rtol=5e-4)


def test_second_process_loads_the_cached_library(tmp_path):
    """The library is compiled once into the cache folder; a second process loads it without
    compiling (the file is not rewritten) and uses it."""
    _need_fused()
    script = textwrap.dedent(
        """
        import time
        t0 = time.perf_counter()
        from astroflow_gal.flow import fused
        ok = fused.available()
        print(ok, fused.library_path(), time.perf_counter() - t0)
        """
    )
    env = {**os.environ, "ASTROFLOW_GAL_CACHE": str(tmp_path)}
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        ok, path, _ = proc.stdout.split()
        assert ok == "True"
        runs.append((path, os.stat(path).st_mtime_ns))
        time.sleep(0.01)
    assert runs[0] == runs[1]  # same file, not rebuilt
    assert os.path.dirname(runs[0][0]) == str(tmp_path)

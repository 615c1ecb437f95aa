"""The CBE residual: exact equilibrium (isotropic Hernquist DF) and potential ranking."""

from __future__ import annotations

import copy
import math

import astropy.units as u
import numpy as np
import pytest
import torch

from astroflow_gal.analysis.cbe import cbe_residual, cbe_terms, model_log_df, rank_potentials

G = 4.300917270e-6  # kpc (km/s)^2 / Msun
M = 1e11  # Msun
A = 5.0  # kpc


def hernquist_phi(x: torch.Tensor, mass: float = M, a: float = A) -> torch.Tensor:
    r = torch.linalg.vector_norm(x, dim=1)
    return -G * mass / (r + a)


def hernquist_acc(mass: float = M, a: float = A):
    """Closed-form acceleration -grad Phi, (km/s)^2/kpc."""

    def acc(x: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return -G * mass * x / (r * (r + a) ** 2)

    return acc


def hernquist_log_f(xv: torch.Tensor) -> torch.Tensor:
    """log of Hernquist's (1990, eq. 17) isotropic f(E), without its constant prefactor."""
    e = 0.5 * (xv[:, 3:] ** 2).sum(dim=1) + hernquist_phi(xv[:, :3])
    q = torch.sqrt(-e * A / (G * M))
    s = 1 - q**2
    bracket = 3 * torch.asin(q) + q * torch.sqrt(s) * (1 - 2 * q**2) * (8 * q**4 - 8 * q**2 - 3)
    return torch.log(bracket) - 2.5 * torch.log(s)


def bound_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = A * 10 ** rng.uniform(-1.5, 1.0, n)
    dirs = rng.normal(size=(n, 3))
    x = r[:, None] * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    v_esc = np.sqrt(2 * G * M / (r + A))
    speed = v_esc * rng.uniform(0.05, 0.95, n)
    dirs = rng.normal(size=(n, 3))
    v = speed[:, None] * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    return x, v


def test_hernquist_df_is_positive_and_decreasing_in_energy():
    # Sanity of the closed form: f grows towards the bottom of the well (q -> 1).
    q = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    s = 1 - q**2
    bracket = 3 * torch.asin(q) + q * torch.sqrt(s) * (1 - 2 * q**2) * (8 * q**4 - 8 * q**2 - 3)
    log_f = torch.log(bracket) - 2.5 * torch.log(s)
    assert torch.all(bracket > 0)
    assert torch.all(torch.diff(log_f) > 0)


def test_hernquist_in_its_own_potential_is_at_round_off():
    x, v = bound_points(2000)
    res = cbe_residual(hernquist_log_f, hernquist_acc(), x * u.kpc, v * u.km / u.s)
    assert res.shape == (2000,) and res.dtype == np.float64
    assert np.max(np.abs(res)) < 1e-12
    # the two terms themselves are far from zero: the cancellation is real
    streaming, forcing = cbe_terms(hernquist_log_f, hernquist_acc(), x, v)
    assert np.median(np.abs(streaming)) > 1e-3
    np.testing.assert_allclose(streaming, -forcing, rtol=1e-11, atol=0)


@pytest.mark.parametrize("mass, a", [(1.3 * M, A), (0.8 * M, A), (M, 2 * A), (M, 0.5 * A)])
def test_hernquist_in_a_wrong_potential_has_a_large_residual(mass, a):
    x, v = bound_points(2000, seed=1)
    res = cbe_residual(hernquist_log_f, hernquist_acc(mass, a), x, v)
    assert np.mean(res**2) > 1e-4
    assert np.median(np.abs(res)) > 1e-3


@pytest.mark.parametrize("k", [0.5, 0.8, 1.3, 3.0])
def test_mass_scaled_potential_gives_the_exact_residual(k):
    # With a = k a_true: streaming = g v.grad Phi, forcing = -k g v.grad Phi, so
    # |r| = |1 - k| / (1 + k) at every point, exactly.
    x, v = bound_points(500, seed=7)
    res = cbe_residual(hernquist_log_f, hernquist_acc(k * M), x, v)
    np.testing.assert_allclose(np.abs(res), abs(1 - k) / (1 + k), rtol=1e-10)


def test_residual_grows_with_the_mass_error():
    x, v = bound_points(1000, seed=2)
    msq = [np.mean(cbe_residual(hernquist_log_f, hernquist_acc(k * M), x, v) ** 2)
           for k in (1.0, 1.05, 1.2, 1.5)]
    assert msq[0] < 1e-24
    assert msq[0] < msq[1] < msq[2] < msq[3]


def test_accelerations_from_autograd_potential_match_closed_form():
    x, _ = bound_points(50, seed=3)
    xt = torch.from_numpy(x).requires_grad_(True)
    (grad,) = torch.autograd.grad(hernquist_phi(xt).sum(), xt)
    np.testing.assert_allclose(-grad.numpy(), hernquist_acc()(torch.from_numpy(x)).numpy(),
                               rtol=1e-13)


def test_bad_inputs_are_refused():
    x, v = bound_points(10)
    with pytest.raises(ValueError, match="positions"):
        cbe_residual(hernquist_log_f, hernquist_acc(), x[:, :2], v)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="positions"):
        cbe_residual(hernquist_log_f, hernquist_acc(), bad, v)
    with pytest.raises(u.UnitConversionError, match="velocities"):
        cbe_residual(hernquist_log_f, hernquist_acc(), x, v * u.kpc)
    with pytest.raises(ValueError, match="differ"):
        cbe_residual(hernquist_log_f, hernquist_acc(), x, v[:5])
    with pytest.raises(TypeError, match="potential"):
        cbe_residual(hernquist_log_f, 3.0, x, v)
    with pytest.raises(ValueError, match="log_f"):
        cbe_residual(lambda xv: xv.sum(), hernquist_acc(), x, v)


def test_rank_potentials_returns_sorted_candidates(phase_model, mid_conditions):
    candidates = {"heavy": hernquist_acc(1e12, 5.0), "light": hernquist_acc(1e9, 5.0)}
    ds = rank_potentials(phase_model, mid_conditions, candidates, n=200, seed=4)
    assert list(ds["rank"].values) == [1, 2]
    msq = ds["mean_sq_residual"].values
    assert msq[0] <= msq[1]
    assert set(ds["potential"].values) == {"heavy", "light"}
    res = ds["residual"].values
    assert res.shape == (2, 200) and np.all(np.isfinite(res)) and np.all(np.abs(res) <= 1)
    np.testing.assert_allclose(msq, (res**2).mean(axis=1))
    assert np.all(ds["mean_sq_error"].values > 0)


def test_model_log_df_gradients_match_finite_differences(phase_model, mid_conditions):
    model = copy.deepcopy(phase_model).to(dtype=torch.float64)
    stars = model.sample(5, mid_conditions, seed=2)
    xv = np.stack([stars[c].value for c in ("x", "y", "z", "vx", "vy", "vz")], 1)
    chem = np.stack([stars[c].value for c in ("Z", "feh", "ofe", "age")], 1)
    for log_f in (model_log_df(model, mid_conditions),
                  model_log_df(model, mid_conditions, "edf", chem)):
        t = torch.from_numpy(xv).requires_grad_(True)
        (grad,) = torch.autograd.grad(log_f(t).sum(), t)
        h = 1e-5
        for j in (0, 4):
            up, down = xv.copy(), xv.copy()
            up[:, j] += h
            down[:, j] -= h
            with torch.no_grad():
                fd = (log_f(torch.from_numpy(up)) - log_f(torch.from_numpy(down))) / (2 * h)
            np.testing.assert_allclose(grad[:, j].numpy(), fd.numpy(), rtol=1e-5, atol=1e-7)


def test_rank_potentials_with_the_full_edf(phase_model, mid_conditions):
    candidates = {"a": hernquist_acc(1e11, 3.0), "b": hernquist_acc(1e11, 30.0)}
    ds = rank_potentials(phase_model, mid_conditions, candidates, n=100, seed=5, df="edf")
    assert ds.attrs["df"] == "edf"
    assert np.all(np.isfinite(ds["mean_sq_residual"].values))
    with pytest.raises(ValueError, match="df"):
        rank_potentials(phase_model, mid_conditions, candidates, n=10, df="bogus")


def test_residual_in_agama_hernquist_potential():
    agama = pytest.importorskip("agama")
    from astroflow_gal.analysis.agama import import_agama

    import_agama()
    pot = agama.Potential(type="Dehnen", gamma=1, mass=M, scaleRadius=A)
    x, v = bound_points(500, seed=6)
    res = cbe_residual(hernquist_log_f, pot, x, v)
    assert np.max(np.abs(res)) < 1e-9
    wrong = agama.Potential(type="Dehnen", gamma=1, mass=1.3 * M, scaleRadius=A)
    assert np.mean(cbe_residual(hernquist_log_f, wrong, x, v) ** 2) > 1e-4
    assert math.isclose(agama.G, G, rel_tol=1e-6)

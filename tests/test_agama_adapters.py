"""Contracts of the Agama adapters (without Agama), and checks against Agama when it is built."""

from __future__ import annotations

import sys

import astropy.units as u
import numpy as np
import pytest
import torch

from astroflow_gal.analysis.agama import (
    compare_potentials,
    default_grid,
    stellar_potential,
    to_agama_density,
    to_agama_df,
    to_agama_particles,
)
from astroflow_gal.model import GalaxyModel

G = 4.300917270e-6  # kpc (km/s)^2 / Msun


@pytest.fixture(scope="module", params=["plain", "flow-space maps"])
def model(request, phase_model, small_suite):
    """The phase-space model as it is, and with a normaliser in the cylindrical velocity frame
    with mass scale laws (the adapters must pass the conditions through to it)."""
    if request.param == "plain":
        return phase_model
    from astroflow_gal.normalizer import Normalizer

    stars, galaxy, conds = small_suite.to_arrays()
    normalizer = Normalizer.fit(stars, conds, velocity_frame="cylindrical",
                                scale_with_mass=("velocity", "position"), galaxy_index=galaxy)
    return GalaxyModel(phase_model.flow, normalizer, training_range=phase_model.training_range,
                       marginals=phase_model.marginals)


@pytest.fixture(scope="module")
def m_stars(mid_conditions):
    return float(u.Quantity(mid_conditions["M_stars"], u.Msun).value)


def test_density_contract(model, mid_conditions, m_stars):
    rho = to_agama_density(model, mid_conditions)
    rng = np.random.default_rng(0)
    xyz = rng.normal(scale=3.0, size=(500, 3))
    far = np.array([[2e3, 0, 0], [0, 0, -1e6], [1e30, 1e30, 0], [0, 0, 0]])
    out = rho(np.concatenate([xyz, far]))
    assert out.dtype == np.float64 and out.shape == (504,)
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    assert np.all(out[500:503] == 0.0)  # beyond r_max
    assert out[503] > 0
    # units: Msun/kpc3, M_stars times the position marginal (1/kpc3)
    log_p = model.log_marginal(xyz, "position", mid_conditions)
    np.testing.assert_allclose(out[:500], m_stars * np.exp(log_p), rtol=1e-12)
    # a mass Quantity in another unit gives the same density
    in_kg = dict(mid_conditions, M_stars=u.Quantity(mid_conditions["M_stars"], u.Msun).to(u.kg))
    np.testing.assert_allclose(to_agama_density(model, in_kg)(xyz), out[:500], rtol=1e-9)
    # batches: the same values whatever the batch size (to float32 round-off of the flow)
    np.testing.assert_allclose(to_agama_density(model, mid_conditions, batch_size=64)(xyz),
                               out[:500], rtol=1e-5)
    assert rho.n_points == 504
    # an explicit r_max truncates
    cut = to_agama_density(model, mid_conditions, r_max=2 * u.kpc)(xyz)
    r = np.linalg.norm(xyz, axis=1)
    assert np.all(cut[r > 2] == 0) and np.array_equal(cut[r <= 2], out[:500][r <= 2])


def test_axisymmetrized_density(model, mid_conditions):
    rho = to_agama_density(model, mid_conditions)
    sym = rho.axisymmetrized(n_phi=12)
    rng = np.random.default_rng(4)
    xyz = rng.normal(scale=2.0, size=(50, 3))
    out = sym(xyz)
    assert out.dtype == np.float64 and out.shape == (50,) and np.all(out > 0)
    # invariant under rotations by 2 pi / n_phi and under z -> -z
    turn = 2 * np.pi / 12
    rot = xyz.copy()
    rot[:, 0] = xyz[:, 0] * np.cos(turn) - xyz[:, 1] * np.sin(turn)
    rot[:, 1] = xyz[:, 0] * np.sin(turn) + xyz[:, 1] * np.cos(turn)
    rot[:, 2] = -xyz[:, 2]
    np.testing.assert_allclose(sym(rot), out, rtol=1e-5)
    # it is the mean of the density over those images
    r = np.hypot(xyz[0, 0], xyz[0, 1])
    phi = 2 * np.pi * np.arange(12) / 12
    imgs = [[r * np.cos(p), r * np.sin(p), s * xyz[0, 2]] for p in phi for s in (1, -1)]
    assert out[0] == pytest.approx(rho(np.array(imgs)).mean(), rel=1e-6)
    assert sym.mass == rho.mass and sym.n_points == 100
    assert rho.n_points == 100 * 24 + 24  # 2 n_phi evaluations per point, then the check


def test_density_total_mass_is_m_stars(model, mid_conditions, m_stars):
    # Importance-sampled integral with a heavy-tailed (Student t, 3 dof) proposal; the estimate's
    # standard error is computed and must be below 1 %.
    from scipy.stats import multivariate_t

    rho = to_agama_density(model, mid_conditions)
    std = np.array([t.std for t in model.normalizer.subset(("x", "y", "z")).star_transforms])
    proposal = multivariate_t(loc=np.zeros(3), shape=np.diag((2 * std) ** 2), df=3)
    pts = proposal.rvs(size=200_000, random_state=np.random.default_rng(1))
    w = rho(pts) / np.exp(proposal.logpdf(pts))
    mass, err = w.mean(), w.std() / np.sqrt(w.size)
    assert err / m_stars < 0.01
    assert abs(mass - m_stars) < 4 * err


def test_density_refuses_bad_input(model, mid_conditions, small_model):
    rho = to_agama_density(model, mid_conditions)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        rho(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        rho(np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="missing conditions"):
        to_agama_density(model, {"M_stars": 1e10})
    with pytest.raises(u.UnitConversionError, match="r_max"):
        to_agama_density(model, mid_conditions, r_max=3 * u.s)
    no_marginal = GalaxyModel(small_model.flow, small_model.normalizer)
    with pytest.raises(ValueError, match="position"):
        to_agama_density(no_marginal, mid_conditions)
    with pytest.raises(TypeError, match="mapping"):
        to_agama_density(model, [1, 2, 3, 4])


def test_phase_space_df_contract(model, mid_conditions, m_stars, small_model):
    f = to_agama_df(model, mid_conditions)
    rng = np.random.default_rng(2)
    xv = np.concatenate([rng.normal(scale=3, size=(300, 3)), rng.normal(scale=80, size=(300, 3))],
                        axis=1)
    out = f(xv)
    assert out.dtype == np.float64 and out.shape == (300,) and np.all(np.isfinite(out))
    log_p = model.log_marginal(xv, "phase_space", mid_conditions)
    np.testing.assert_allclose(out, m_stars * np.exp(log_p), rtol=1e-12)
    far = np.array([[5e3, 0, 0, 0, 0, 0], [0, 0, 0, 1e30, 0, 0]])
    vals = f(far)
    assert vals[0] == 0.0 and np.isfinite(vals[1]) and vals[1] < 1e-300
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        f(xv[:, :3])
    with pytest.raises(ValueError, match="phase_space"):
        to_agama_df(GalaxyModel(small_model.flow, small_model.normalizer), mid_conditions)


@pytest.fixture(scope="module")
def population(model, mid_conditions):
    stars = model.sample(4000, mid_conditions, seed=3)
    age = np.percentile(stars["age"].value, [30, 70])
    feh = np.percentile(stars["feh"].value, [20, 80])
    select = {"age": tuple(age * u.Gyr), "feh": tuple(feh)}
    return stars, select


def test_population_df_matches_grid_quadrature(model, mid_conditions, m_stars, population):
    stars, select = population
    f = to_agama_df(model, mid_conditions, select, n_nodes=512, n_pilot=4000, seed=1)
    assert 0.05 < f.population_fraction < 0.5
    xv = np.stack([stars[c].value for c in ("x", "y", "z", "vx", "vy", "vz")], 1)[:2]
    value, error = f.with_error(xv)
    assert np.all(error > 0) and np.all(error < 0.2 * value)
    # Gauss-Legendre over the box in (age, feh), over ofe and log10 Z wide enough to hold the eDF.
    n = 16
    node, weight = np.polynomial.legendre.leggauss(n)

    def axis(lo, hi):
        return 0.5 * (hi - lo) * node + 0.5 * (hi + lo), 0.5 * (hi - lo) * weight

    logz = np.log10(stars["Z"].value)
    ofe = stars["ofe"].value
    axes = {
        "Z": axis(logz.min() - 1.0, logz.max() + 1.0),
        "feh": axis(*select["feh"]),
        "ofe": axis(ofe.min() - 1.0, ofe.max() + 1.0),
        "age": axis(*(a.value for a in select["age"])),
    }
    grids = np.meshgrid(*[axes[k][0] for k in axes], indexing="ij")
    wts = np.prod(np.meshgrid(*[axes[k][1] for k in axes], indexing="ij"), axis=0).ravel()
    chem = {k: g.ravel() for k, g in zip(axes, grids, strict=True)}
    chem["Z"] = 10 ** chem["Z"]
    jac = chem["Z"] * np.log(10)
    for i in range(2):
        rows = np.empty((wts.size, 10))
        for j, name in enumerate(model.star_names):
            rows[:, j] = xv[i, j] if j < 6 else chem[name]
        exact = m_stars * np.sum(wts * jac * np.exp(model.log_edf(rows, mid_conditions)))
        assert abs(value[i] - exact) < 4 * error[i] + 1e-3 * exact


def test_population_selection_errors(model, mid_conditions):
    with pytest.raises(ValueError, match="unknown column"):
        to_agama_df(model, mid_conditions, {"vx": (0, 1)})
    with pytest.raises(ValueError, match="below"):
        to_agama_df(model, mid_conditions, {"age": (5, 2)})
    with pytest.raises(u.UnitConversionError, match="age"):
        to_agama_df(model, mid_conditions, {"age": (1 * u.kpc, 2 * u.kpc)})
    with pytest.raises(ValueError, match="pilot stars"):
        to_agama_df(model, mid_conditions, {"feh": (10.0, 11.0)}, n_pilot=500)


def test_population_select_units(model, mid_conditions, population):
    stars, select = population
    in_myr = dict(select, age=tuple(a.to(u.Myr) for a in select["age"]))
    a = to_agama_df(model, mid_conditions, select, n_nodes=32, n_pilot=2000, seed=2)
    b = to_agama_df(model, mid_conditions, in_myr, n_nodes=32, n_pilot=2000, seed=2)
    xv = np.stack([stars[c].value for c in ("x", "y", "z", "vx", "vy", "vz")], 1)[:3]
    np.testing.assert_allclose(a(xv), b(xv), rtol=1e-12)


def test_particles_contract(model, mid_conditions, m_stars):
    xv, masses = to_agama_particles(model, 1000, mid_conditions, seed=5)
    assert xv.shape == (1000, 6) and xv.dtype == np.float64 and xv.flags.c_contiguous
    assert masses.shape == (1000,) and masses.dtype == np.float64
    assert np.isclose(masses.sum(), m_stars, rtol=1e-12)
    stars = model.sample(1000, mid_conditions, seed=5)
    np.testing.assert_array_equal(xv[:, 0], stars["x"].to_value(u.kpc))
    np.testing.assert_array_equal(xv[:, 5], stars["vz"].to_value(u.km / u.s))
    with pytest.raises(ValueError, match="n must"):
        to_agama_particles(model, 0, mid_conditions, seed=1)


def hernquist(mass, a):
    def acc(x: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return -G * mass * x / (r * (r + a) ** 2)

    return acc


def test_compare_potentials_circular_velocity():
    pots = {"ref": hernquist(1e11, 5.0), "heavy": hernquist(1.21e11, 5.0)}
    radii = np.array([0.5, 2.0, 8.0, 30.0])
    ds = compare_potentials(pots, radii * 1000 * u.pc)
    np.testing.assert_allclose(ds["R"].values, radii)
    exact = np.sqrt(G * 1e11 * radii) / (radii + 5.0)
    np.testing.assert_allclose(ds["v_circ"].sel(potential="ref").values, exact, rtol=1e-12)
    np.testing.assert_allclose(ds["v_circ_ratio"].sel(potential="heavy").values, 1.1, rtol=1e-12)
    np.testing.assert_allclose(ds["force_difference"].sel(potential="heavy").values, -0.21,
                               rtol=1e-10)
    assert np.all(ds["force_difference"].sel(potential="ref").values == 0)
    assert np.all(ds["F_R"].values < 0)  # inwards
    for name in ("v_circ", "F_R"):
        u.Unit(ds[name].attrs["units"])  # parses
    assert u.Unit(ds["v_circ"].attrs["units"]) == u.km / u.s
    # the other one as reference
    ds2 = compare_potentials(pots, radii, reference="heavy")
    np.testing.assert_allclose(ds2["v_circ_ratio"].sel(potential="ref").values, 1 / 1.1)
    with pytest.raises(ValueError, match="reference"):
        compare_potentials(pots, radii, reference="nope")
    with pytest.raises(ValueError, match="positive"):
        compare_potentials(pots, [-1.0, 2.0])


def test_default_grid_scales_with_the_galaxy():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(5000, 3)) * [3.0, 3.0, 0.3]
    grid = default_grid(xyz)
    big = default_grid(10 * xyz)
    for k in grid:
        assert np.isclose(big[k], 10 * grid[k])
    assert 0 < grid["zmin"] <= grid["Rmin"] < grid["Rmax"]


def test_without_agama_the_error_says_how_to_build_it(model, mid_conditions, monkeypatch):
    monkeypatch.setitem(sys.modules, "agama", None)
    with pytest.raises(ImportError, match="GalacticDynamics-Oxford/Agama"):
        stellar_potential(model, mid_conditions)


# -- with the real library ---------------------------------------------------------------------
def test_agama_tabulated_density_and_potentials(model, mid_conditions, m_stars):
    agama = pytest.importorskip("agama")
    from astroflow_gal.analysis.agama import import_agama

    import_agama()
    assert u.Quantity(agama.getUnits()["mass"], u.Msun).value == pytest.approx(1.0)
    pot_d, info = stellar_potential(model, mid_conditions, grid_size=20, return_info=True)
    assert info["density_points"] > 0 and info["build_seconds"] > 0
    # the tabulated density holds M_stars (grid quadrature: a few per cent on a coarse grid)
    assert info["total_mass"] == pytest.approx(m_stars, rel=0.05)
    pot_p = stellar_potential(model, mid_conditions, source="particles", n_particles=5000,
                              grid_size=20)
    pot_m, info_m = stellar_potential(model, mid_conditions, "multipole", grid_size=20, lmax=4,
                                      return_info=True)
    assert info_m["total_mass"] == pytest.approx(m_stars, rel=0.1)
    ds = compare_potentials({"density": pot_d, "particles": pot_p, "multipole": pot_m},
                            np.geomspace(1, 20, 6))
    assert np.all(np.isfinite(ds["v_circ"].values)) and np.all(ds["v_circ"].values > 0)
    # far out both tend to the Kepler curve of M_stars
    kepler = np.sqrt(G * m_stars / 200.0)
    v_far = compare_potentials({"d": pot_d}, [200.0])["v_circ"].values[0, 0]
    assert v_far == pytest.approx(kepler, rel=0.05)
    # the DF callable works inside agama's integrator
    f = to_agama_df(model, mid_conditions)
    value, error, n_eval = agama.integrateNdim(f, [0, 0, 0, -300, -300, -300],
                                               [1, 1, 1, 300, 300, 300], toler=1e-2, maxeval=5000)
    assert value > 0 and np.isfinite(error) and n_eval > 0

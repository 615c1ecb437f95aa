"""The synthetic suite: normalised factors, sampler-density agreement, population trends, I/O."""

from __future__ import annotations

import math
import time

import astropy.units as u
import numpy as np
import pytest
from scipy import integrate, stats

from astroflow_gal.data import GalaxySuite, make_synthetic_suite
from astroflow_gal.data.schema import STAR_NAMES, edf_unit
from astroflow_gal.data.synthetic import (
    T_UNIVERSE,
    SyntheticTruth,
    star_counts,
)
from astroflow_gal.data.synthetic_model import (
    log_age,
    log_disc_position,
    log_feh,
    log_metallicity,
    log_ofe,
    log_spheroid_position,
    log_velocity,
)
from astroflow_gal.data.synthetic_relations import Scatter, galaxy_from_mass

TOL = 1e-4
NEUTRAL = Scatter(
    size=0.0, velocity=0.0, thin_logit=0.0, thick_logit=0.0, flattening=0.7,
    formation_shift=0.0, age_width_factor=1.0, feh_offset=0.0,
)
EARLY = Scatter(
    size=0.1, velocity=-0.02, thin_logit=-0.3, thick_logit=0.2, flattening=0.6,
    formation_shift=1.5, age_width_factor=0.8, feh_offset=0.05,
)
# a dwarf, an intermediate and a Milky-Way-mass galaxy
GALAXIES = {
    "dwarf": galaxy_from_mass("dwarf", 7.0, EARLY, 1000),
    "intermediate": galaxy_from_mass("intermediate", 9.2, NEUTRAL, 1000),
    "mw": galaxy_from_mass("mw", 10.7, NEUTRAL, 1000),
}


@pytest.fixture(scope="module")
def truth() -> SyntheticTruth:
    return SyntheticTruth(list(GALAXIES.values()))


@pytest.fixture(scope="module")
def small_suite() -> GalaxySuite:
    return make_synthetic_suite(n_galaxies=60, seed=11, max_total_stars=150_000, min_stars=1000)


# --------------------------------------------------------------------------------------------
# 1. every factor is normalised
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["thin", "thick"])
@pytest.mark.parametrize("gal", ["dwarf", "mw"])
def test_disc_position_normalised(gal: str, which: str) -> None:
    comp = GALAXIES[gal].component(which)
    rd, h = comp.scale_length, comp.scale_height

    def f(z: float, r: float) -> float:
        lp, _ = log_disc_position(np.array([r]), np.array([0.0]), np.array([z]), rd, h)
        return 2.0 * math.pi * r * math.exp(lp[0])

    # the density is even in z: integrate z >= 0 and double
    val, _ = integrate.dblquad(f, 0, 60 * rd, 0, 60 * h, epsabs=1e-8, epsrel=1e-7)
    assert abs(2 * val - 1.0) < TOL


@pytest.mark.parametrize("truncation", [0.0, 24.0])
@pytest.mark.parametrize("q", [1.0, 0.55])
def test_hernquist_normalised_with_flattening(q: float, truncation: float) -> None:
    a = 0.8

    def f(r: float, t: float) -> float:
        # spherical coordinates r, t = cos(theta); the azimuth is integrated analytically
        s = math.sqrt(1 - t * t)
        lp, _ = log_spheroid_position(
            np.array([r * s]), np.array([0.0]), np.array([r * t]), a, q, truncation
        )
        return 2.0 * math.pi * r * r * math.exp(lp[0])

    if truncation > 0:
        # integrate up to the truncation ellipsoid s = s_max along each direction
        def edge(t: float) -> float:
            return truncation / math.sqrt(1 - t * t + (t / q) ** 2)

        total, _ = integrate.dblquad(f, -1, 1, 0, edge, epsabs=1e-8, epsrel=1e-7)
        beyond = log_spheroid_position(
            np.array([0.0, 1.01 * truncation]), np.zeros(2), np.zeros(2), a, q, truncation
        )[0]
        assert np.isfinite(beyond[0]) and np.isneginf(beyond[1])
    else:
        total = sum(
            integrate.dblquad(f, -1, 1, lo, hi, epsabs=1e-8, epsrel=1e-7)[0]
            for lo, hi in ((0, 50 * a), (50 * a, np.inf))
        )
    assert abs(total - 1.0) < TOL
    # the flattening changes the density (a real map, not a no-op)
    p1 = log_spheroid_position(np.array([0.0]), np.array([0.0]), np.array([1.0]), a, 1.0)[0]
    pq = log_spheroid_position(np.array([0.0]), np.array([0.0]), np.array([1.0]), a, q)[0]
    assert (q == 1.0) == bool(np.isclose(p1, pq)[0])


@pytest.mark.parametrize("gal", ["dwarf", "intermediate", "mw"])
@pytest.mark.parametrize("which", ["thin", "spheroid"])
@pytest.mark.parametrize("where", [(0.7, -0.4, 0.1), (1e-3, 2e-3, -0.3)])
def test_velocity_gaussian_normalised(gal: str, which: str, where: tuple) -> None:
    comp = GALAXIES[gal].component(which)
    pos = np.array([[where[0] * comp.scale_length, where[1] * comp.scale_length, where[2]]])
    mean, s_r, s_phi, s_z = (np.asarray(v)[0] for v in comp.velocity_moments(*pos.T))
    # a Cartesian grid of +-9 sigma around the mean velocity vector (mean v_phi along e_phi)
    phi = math.atan2(pos[0, 1], pos[0, 0])
    centre = (-mean * math.sin(phi), mean * math.cos(phi), 0.0)
    smax = max(s_r, s_phi)
    n = 61
    axes = [
        np.linspace(c - 9 * w, c + 9 * w, n) for c, w in zip(centre, (smax, smax, s_z), strict=True)
    ]
    grid = np.meshgrid(*axes, indexing="ij")
    vel = np.stack([gv.ravel() for gv in grid], axis=-1)
    lp, _ = log_velocity(np.repeat(pos, len(vel), axis=0), vel, comp)
    dv = np.prod([ax[1] - ax[0] for ax in axes])
    assert abs(np.exp(lp).sum() * dv - 1.0) < TOL


@pytest.mark.parametrize("mean,sigma", [(4.5, 3.0), (11.0, 1.2), (8.5, 4.0), (12.5, 2.0)])
def test_truncated_age_normalised(mean: float, sigma: float) -> None:
    val, _ = integrate.quad(
        lambda t: math.exp(log_age(np.array([t]), mean, sigma)[0][0]), 0, T_UNIVERSE,
        epsabs=1e-12, limit=200,
    )
    assert abs(val - 1.0) < TOL
    outside = log_age(np.array([-0.1, T_UNIVERSE + 0.1]), mean, sigma)[0]
    assert np.all(np.isneginf(outside))


@pytest.mark.parametrize("gal", ["dwarf", "mw"])
@pytest.mark.parametrize("which", ["thin", "thick", "spheroid"])
def test_chemistry_factors_normalised(gal: str, which: str) -> None:
    comp = GALAXIES[gal].component(which)
    base = np.array([1.0, 0.5, 0.2, 0, 0, 0, 0.01, -0.4, 0.1, 7.0])

    def at(col: int, value: float) -> np.ndarray:
        row = base.copy()
        row[col] = value
        return row[None, :]

    feh_int, _ = integrate.quad(lambda v: math.exp(log_feh(at(7, v), comp)[0]), -np.inf, np.inf)
    ofe_int, _ = integrate.quad(lambda v: math.exp(log_ofe(at(8, v), comp)[0]), -np.inf, np.inf)
    assert abs(feh_int - 1.0) < TOL
    assert abs(ofe_int - 1.0) < TOL
    # Z: log-normal with its 1/(Z ln 10) Jacobian, integrated in Z itself
    feh, ofe, s = np.array([-0.4]), np.array([0.1]), GALAXIES[gal].z_sigma

    def pz(z: float) -> float:
        return math.exp(log_metallicity(np.array([z]), feh, ofe, s)[0][0])

    peak = 0.0134 * 10 ** (-0.4) * (0.638 * 10**0.1 + 0.362)
    pieces = [0, peak * 0.5, peak, peak * 2, peak * 10]
    z_int = sum(
        integrate.quad(pz, lo, hi, epsabs=1e-12, limit=200)[0]
        for lo, hi in zip(pieces[:-1], pieces[1:], strict=True)
    )
    assert abs(z_int - 1.0) < TOL
    assert np.isneginf(log_metallicity(np.array([0.0]), feh, ofe, s)[0][0])


# --------------------------------------------------------------------------------------------
# 2. the sampler agrees with the density (Stein identities) and the gradient is right
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gal", ["dwarf", "intermediate", "mw"])
def test_gradient_matches_finite_differences(truth: SyntheticTruth, gal: str) -> None:
    v = truth.sample_arrays(300, gal, 5)
    g = truth.grad_log_prob_arrays(v, gal)
    for j in range(10):
        h = 1e-6 * np.maximum(1.0, np.abs(v[:, j])) if j != 6 else 1e-6 * v[:, j]
        vp, vm = v.copy(), v.copy()
        vp[:, j] += h
        vm[:, j] -= h
        fd = (truth.log_prob_arrays(vp, gal) - truth.log_prob_arrays(vm, gal)) / (2 * h)
        np.testing.assert_allclose(g[:, j], fd, rtol=1e-4, atol=1e-4 * np.abs(fd).mean())


def _z_score(samples: np.ndarray, target: float) -> float:
    return float((samples.mean() - target) / (samples.std(ddof=1) / math.sqrt(samples.size)))


def _stein_checks(truth: SyntheticTruth, gal: str, seed: int) -> None:
    n = 100_000
    v = truth.sample_arrays(n, gal, seed)
    g = truth.grad_log_prob_arrays(v, gal)
    sph = truth.params(gal).component("spheroid")
    # a truncated spheroid's density jumps to 0 on the ellipsoid s = s_max; integrating by parts
    # adds the flux w rho(s_max) V(s_max) = (2/3) w a / (s_max + a) to the second identity
    edge = 0.0
    if sph.truncation > 0:
        edge = 2.0 / 3.0 * sph.weight * sph.scale_length / (sph.truncation + sph.scale_length)
    for j, name in enumerate(STAR_NAMES):
        if name in ("Z", "age"):
            continue
        target = -1.0 + (edge if name in ("x", "y", "z") else 0.0)
        c = v[:, j].mean()
        assert abs(_z_score(g[:, j], 0.0)) < 4, name
        assert abs(_z_score((v[:, j] - c) * g[:, j], target)) < 4, name
    lz = np.log10(v[:, 6])
    score_u = g[:, 6] * v[:, 6] * math.log(10) + math.log(10)
    assert abs(_z_score(score_u, 0.0)) < 4
    assert abs(_z_score((lz - lz.mean()) * score_u, -1.0)) < 4
    t = v[:, 9]
    assert t.min() >= 0 and t.max() <= T_UNIVERSE
    assert abs(_z_score(t * (T_UNIVERSE - t) * g[:, 9] + (T_UNIVERSE - 2 * t), 0.0)) < 4


@pytest.mark.parametrize("gal", ["dwarf", "intermediate", "mw"])
def test_stein_identities(truth: SyntheticTruth, gal: str) -> None:
    """E[d log p/dx_i] = 0 and E[(x_i - c) d log p/dx_i] = -1 for every unbounded dimension.

    Z > 0 is tested in u = log10 Z, where d log p_u/du = Z ln10 d log p/dZ + ln 10. Age is
    bounded (the truncated density does not vanish at 0 and 13.8 Gyr, so the plain identities
    pick up boundary terms); it is tested with the weight g(t) = t (T - t), which vanishes at both
    bounds: E[g(t) d log p/dt + g'(t)] = 0. Positions carry the exact boundary term of the
    truncated spheroid.
    """
    _stein_checks(truth, gal, 2024)


def test_stein_identities_untruncated_hernquist() -> None:
    """Pure Hernquist spheroids (no truncation): the plain identities hold for positions."""
    gals = [galaxy_from_mass(k, m, EARLY, 10, None) for k, m in (("d", 6.8), ("m", 10.5))]
    truth = SyntheticTruth(gals)
    assert truth.params("d").component("spheroid").truncation == 0
    for gid in ("d", "m"):
        _stein_checks(truth, gid, 99)


def test_stein_detects_a_wrong_sampler(truth: SyntheticTruth) -> None:
    """The Stein check has power: stars of another galaxy fail it."""
    v = truth.sample_arrays(100_000, "mw", 3)
    g = truth.grad_log_prob_arrays(v, "intermediate")
    scores = [abs(_z_score((v[:, j] - v[:, j].mean()) * g[:, j], -1.0)) for j in (0, 3, 7)]
    assert max(scores) > 10


def test_position_marginal_is_the_mixture_of_position_factors(truth: SyntheticTruth) -> None:
    gal = truth.params("mw")
    v = truth.sample_arrays(1000, "mw", 9)
    comps = [
        c.weight * np.exp(c.log_position(v)) for c in gal.components
    ]
    np.testing.assert_allclose(
        truth.marginal_log_prob(v[:, :3], "mw"), np.log(np.sum(comps, axis=0)), rtol=1e-12
    )
    cols = ("x", "y", "z", "vx", "vy", "vz")
    comps6 = [c.weight * np.exp(c.log_phase_space(v)) for c in gal.components]
    np.testing.assert_allclose(
        truth.marginal_log_prob(v[:, :6], "mw", columns=cols),
        np.log(np.sum(comps6, axis=0)),
        rtol=1e-12,
    )
    age_marg = truth.marginal_log_prob(v[:, 9:], "mw", columns=("age",))
    val, _ = integrate.quad(
        lambda t: math.exp(truth.marginal_log_prob(np.array([[t]]), "mw", ("age",))[0]),
        0, T_UNIVERSE, limit=200,
    )
    assert abs(val - 1.0) < TOL
    assert np.all(np.isfinite(age_marg))
    with pytest.raises(NotImplementedError):
        truth.marginal_log_prob(v[:, :2], "mw", columns=("x", "y"))


# --------------------------------------------------------------------------------------------
# 3. the suite looks like a galaxy population
# --------------------------------------------------------------------------------------------


def test_population_trends(small_suite: GalaxySuite) -> None:
    tr = small_suite.truth
    logm = np.array([math.log10(g.conditions["M_stars"].to_value(u.Msun)) for g in small_suite])
    z_av = np.array([g.conditions["Z_av"].value for g in small_suite])
    thin = np.array([tr.params(g.id).weights["thin"] for g in small_suite])
    assert stats.spearmanr(logm, z_av).statistic > 0.8
    assert stats.spearmanr(logm, thin).statistic > 0.7
    # v_phi / sigma from the stars: dwarfs dispersion-, MW-mass galaxies rotation-dominated
    ratios = []
    for g in small_suite:
        s = g.stars
        x, y = s["x"].value, s["y"].value
        r = np.maximum(np.hypot(x, y), 1e-12)
        v_r = (x * s["vx"].value + y * s["vy"].value) / r
        v_phi = (x * s["vy"].value - y * s["vx"].value) / r
        sigma = math.sqrt((v_r.var() + v_phi.var() + s["vz"].value.var()) / 3)
        ratios.append(v_phi.mean() / sigma)
    ratios = np.array(ratios)
    assert np.all(ratios[logm < 8.0] < 1.0)
    assert np.all(ratios[logm > 10.3] > 1.0)


def test_ages_vary_at_fixed_mass(small_suite: GalaxySuite) -> None:
    """tau50 and tau10 scatter around their mean trend with mass, following formation time."""
    tr = small_suite.truth
    logm = np.array([tr.params(g.id).log_mstar for g in small_suite])
    shift = np.array([tr.params(g.id).formation_shift for g in small_suite])
    for name in ("tau50", "tau10"):
        tau = np.array([g.conditions[name].to_value(u.Gyr) for g in small_suite])
        resid = tau - np.polyval(np.polyfit(logm, tau, 2), logm)
        assert resid.std() > 0.4, name
        # the scatter is information beyond mass: it follows the per-galaxy formation time
        assert stats.spearmanr(shift, resid).statistic > 0.4, name


def test_star_counts_grow_with_mass_with_floor_and_cap() -> None:
    logm = np.linspace(6.5, 11, 95)
    counts, mp = star_counts(logm, 2_000_000, 2000, 200_000)
    assert counts.sum() <= 2_000_000
    assert counts.sum() > 1_990_000
    assert counts.min() == 2000
    assert np.all(np.diff(counts) >= 0)
    free = (counts > 2000) & (counts < 200_000)
    np.testing.assert_allclose(counts[free] * mp, 10 ** logm[free], rtol=0.01)
    with pytest.raises(ValueError, match="max_total_stars"):
        star_counts(logm, 1000, 2000, 200_000)


def test_suite_conditions_and_masses(small_suite: GalaxySuite) -> None:
    tr = small_suite.truth
    assert small_suite.meta["source"] == "synthetic"
    assert small_suite.meta["seed"] == 11
    assert small_suite.ids[0] == "syn000"
    for g in list(small_suite)[::10]:
        np.testing.assert_allclose(
            g.conditions["M_stars"].to_value(u.Msun), tr.params(g.id).stellar_mass, rtol=1e-10
        )
        np.testing.assert_allclose(g.masses.value, g.masses.value[0])
        np.testing.assert_allclose(
            g.conditions["tau50"].to_value(u.Gyr), np.median(g.stars["age"].to_value(u.Gyr))
        )
        assert np.all(np.isfinite(tr.log_prob(g.stars, g.id)))


# --------------------------------------------------------------------------------------------
# 4. determinism, units, JSON round trip
# --------------------------------------------------------------------------------------------


def test_deterministic_for_a_seed() -> None:
    kw = {"n_galaxies": 4, "max_total_stars": 12_000, "min_stars": 1000}
    a = make_synthetic_suite(seed=5, **kw)
    b = make_synthetic_suite(seed=5, **kw)
    c = make_synthetic_suite(seed=6, **kw)
    for ga, gb, gc in zip(a, b, c, strict=True):
        for name in STAR_NAMES:
            np.testing.assert_array_equal(ga.stars[name].value, gb.stars[name].value)
        assert not np.array_equal(ga.stars["x"].value, gc.stars["x"].value)
    assert a.truth.to_json() == b.truth.to_json()
    s1 = a.truth.sample(100, "syn001", seed=3)
    s2 = a.truth.sample(100, "syn001", seed=3)
    np.testing.assert_array_equal(s1["vx"].value, s2["vx"].value)


def test_json_round_trip_gives_identical_log_prob(small_suite: GalaxySuite) -> None:
    text = small_suite.truth.to_json()
    back = SyntheticTruth.from_json(text)
    assert back.galaxy_ids == small_suite.truth.galaxy_ids
    assert back.to_json() == text
    for gid in ("syn000", "syn030", "syn059"):
        stars = small_suite[gid].stars
        np.testing.assert_array_equal(
            back.log_prob(stars, gid), small_suite.truth.log_prob(stars, gid)
        )
    with pytest.raises(ValueError, match="synthetic-truth"):
        SyntheticTruth.from_json('{"format": "other"}')
    with pytest.raises(ValueError, match="JSON"):
        SyntheticTruth.from_json("not json")


def test_log_prob_accepts_compatible_units(truth: SyntheticTruth) -> None:
    stars = truth.sample(500, "mw", seed=1)
    ref = truth.log_prob(stars, "mw")
    other = stars.copy()
    other["x"] = other["x"].to(u.pc)
    other["vy"] = other["vy"].to(u.m / u.s)
    other["age"] = other["age"].to(u.Myr)
    np.testing.assert_allclose(truth.log_prob(other, "mw"), ref, rtol=1e-12)
    bad = stars.copy()
    bad["x"] = bad["x"].value * u.s
    with pytest.raises(u.UnitConversionError, match="'x'"):
        truth.log_prob(bad, "mw")
    with pytest.raises(KeyError, match="nope"):
        truth.log_prob(stars, "nope")
    arr = np.stack([stars[n].value for n in STAR_NAMES], axis=-1)
    arr[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        truth.log_prob_arrays(arr, "mw")
    assert truth.log_prob_unit() == edf_unit()


@pytest.mark.slow
def test_default_suite_generates_within_a_minute() -> None:
    start = time.perf_counter()
    suite = GalaxySuite.synthetic(n_galaxies=95, seed=0)
    elapsed = time.perf_counter() - start
    assert len(suite) == 95
    assert 1_900_000 <= suite.n_stars <= 2_000_000
    assert elapsed < 60

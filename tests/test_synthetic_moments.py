"""Closed-form profiles of the synthetic truth against quadratures and large samples of it."""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from scipy import integrate

from astroflow_gal.analysis import profiles
from astroflow_gal.data.synthetic_moments import (
    galaxy_params,
    truth_column_moments,
    truth_density,
    truth_profiles,
    truth_surface_density,
    truth_velocity_moments,
)


@pytest.fixture(scope="module")
def massive(small_suite):
    """The most massive galaxy of the small suite (thin and thick disc plus a spheroid)."""
    truth = small_suite.truth
    gid = max(truth.galaxy_ids, key=lambda g: truth[g].log_mstar)
    return truth, gid


def test_surface_density_is_the_z_integral_and_holds_the_mass(massive):
    truth, gid = massive
    gal = truth[gid]
    for R in (0.05, 0.7, 3.0, 9.0):
        def column(z: float, R: float = R) -> float:
            return float(truth_density(gal, [[R, 0.0, z]]).value[0])

        # Split at the disc heights and the spheroid's truncation so quad sees every feature.
        sph = gal.component("spheroid")
        z_t = sph.flattening * math.sqrt(max(sph.truncation**2 - R * R, 0.0))
        pieces = [0.0, 0.1, 1.0, 5.0, z_t, 200.0]
        pieces = sorted(set(p for p in pieces if p <= 200.0))
        expected = 2 * sum(integrate.quad(column, a, b, limit=200, epsrel=1e-11)[0]
                           for a, b in zip(pieces[:-1], pieces[1:], strict=False))
        got = truth_surface_density(truth, R * u.kpc, galaxy_id=gid)
        assert got.unit == u.Msun / u.kpc**2
        np.testing.assert_allclose(got.value[0], expected, rtol=1e-6)
    # The mass in the plane: int Sigma 2 pi R dR = M_stars.
    total = integrate.quad(lambda r: 2 * np.pi * r * truth_surface_density(gal, r).value[0],
                           0, 300, limit=400, points=[1, 5, 20], epsrel=1e-9)[0]
    np.testing.assert_allclose(total, gal.stellar_mass, rtol=1e-5)


def test_column_moments_are_z_averages_of_the_point_moments(massive):
    truth, gid = massive
    gal = truth[gid]
    R = 2.5
    z = np.concatenate([-np.geomspace(1e-4, 60, 4000)[::-1], np.geomspace(1e-4, 60, 4000)])
    pos = np.stack([np.full_like(z, R), np.zeros_like(z), z], axis=1)
    pt = truth_velocity_moments(gal, pos * u.kpc)
    rho = pt["rho"].values
    mass = integrate.trapezoid(rho, z)
    mean = integrate.trapezoid(rho * pt["v_phi"].values, z) / mass
    second = integrate.trapezoid(rho * (pt["sigma_phi"].values ** 2 + pt["v_phi"].values ** 2),
                                 z) / mass
    col = truth_column_moments(gal, R)
    np.testing.assert_allclose(col["Sigma"].values[0], mass, rtol=2e-3)
    np.testing.assert_allclose(col["v_phi"].values[0], mean, rtol=2e-3)
    np.testing.assert_allclose(col["sigma_phi"].values[0], np.sqrt(second - mean**2), rtol=2e-3)
    sr = np.sqrt(integrate.trapezoid(rho * pt["sigma_R"].values ** 2, z) / mass)
    np.testing.assert_allclose(col["sigma_R"].values[0], sr, rtol=2e-3)


def test_point_moments_rotate_with_the_azimuth(massive):
    truth, gid = massive
    gal = truth[gid]
    R, z = 4.0, 0.3
    phi = np.array([0.0, 0.5 * np.pi, 2.0])
    pos = np.stack([R * np.cos(phi), R * np.sin(phi), np.full(3, z)], axis=1)
    ds = truth_velocity_moments(gal, pos)
    # Axisymmetric: cylindrical moments are the same at every azimuth ...
    for name in ("v_phi", "sigma_R", "sigma_phi", "sigma_z", "rho"):
        np.testing.assert_allclose(ds[name].values, ds[name].values[0], rtol=1e-12)
    np.testing.assert_allclose(ds["v_R"].values, 0.0, atol=1e-12)
    # ... and the Cartesian mean points along e_phi = (-sin phi, cos phi, 0): counter-clockwise.
    v = ds["v_mean"].values
    np.testing.assert_allclose(v[:, 0], -np.sin(phi) * ds["v_phi"].values, atol=1e-9)
    np.testing.assert_allclose(v[:, 1], np.cos(phi) * ds["v_phi"].values, atol=1e-9)
    assert np.all(ds["v_phi"].values > 0)
    cov = ds["v_cov"].values[1]  # at phi = 90 deg, x is -e_phi and y is e_R
    np.testing.assert_allclose(cov[0, 0], ds["sigma_phi"].values[1] ** 2)
    np.testing.assert_allclose(cov[1, 1], ds["sigma_R"].values[1] ** 2)
    np.testing.assert_allclose(cov[2, 2], ds["sigma_z"].values[1] ** 2)


def test_bin_averages_match_a_large_sample(massive):
    truth, gid = massive
    gal = truth[gid]
    n = 300_000
    stars = truth.sample(n, gid, seed=7)
    edges = np.linspace(0.5, 3.0, 6) * gal.disc_scale_length
    binned = profiles(stars, bins=edges * u.kpc, mass=gal.stellar_mass / n, n_bootstrap=40,
                      seed=1)
    exact = truth_profiles(truth, edges, galaxy_id=gid)
    for name in ("Sigma", "v_phi", "sigma_R", "sigma_phi", "sigma_z"):
        pull = (binned[name].values - exact[name].values) / binned[f"{name}_err"].values
        assert np.all(np.abs(pull) < 5), (name, pull)
    np.testing.assert_allclose(exact["R_lo"].values, edges[:-1])
    assert exact["Sigma"].attrs["units"] == "Msun / kpc2"
    # The bins do not hold the same thing: a wrong truth would be caught (v_phi rises by >5 %).
    assert exact["v_phi"].values[-1] > 1.05 * exact["v_phi"].values[0]


def test_bad_input(massive):
    truth, gid = massive
    with pytest.raises(ValueError, match="galaxy_id"):
        truth_density(truth, [[1.0, 0.0, 0.0]])
    with pytest.raises(TypeError, match="SyntheticGalaxy"):
        galaxy_params("syn000")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        truth_velocity_moments(truth, [[1.0, 0.0]], galaxy_id=gid)
    with pytest.raises(ValueError, match="NaN"):
        truth_density(truth, [[np.nan, 0.0, 0.0]], galaxy_id=gid)
    with pytest.raises(u.UnitConversionError):
        truth_surface_density(truth, 1.0 * u.s, galaxy_id=gid)
    with pytest.raises(ValueError, match="non-negative"):
        truth_surface_density(truth, -1.0, galaxy_id=gid)
    with pytest.raises(ValueError, match="increasing"):
        truth_profiles(truth, [2.0, 1.0], galaxy_id=gid)

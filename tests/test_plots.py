"""Radial profiles against constructed tables with known answers; corner and profile figures."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.analysis.plots import corner_plot, profile_plot, radial_profiles, total_mass_of

KMS = u.km / u.s


def _table(x, y, z, vx, vy, vz, feh=None, age=None, Z=None, meta=None) -> QTable:
    cols = {
        "x": np.asarray(x, float) * u.kpc, "y": np.asarray(y, float) * u.kpc,
        "z": np.asarray(z, float) * u.kpc,
        "vx": np.asarray(vx, float) * KMS, "vy": np.asarray(vy, float) * KMS,
        "vz": np.asarray(vz, float) * KMS,
    }
    if Z is not None:
        cols["Z"] = np.asarray(Z, float) * u.dimensionless_unscaled
    if feh is not None:
        cols["feh"] = np.asarray(feh, float) * u.dex
    if age is not None:
        cols["age"] = np.asarray(age, float) * u.Gyr
    t = QTable(cols)
    t.meta.update(meta or {})
    return t


def _ring(n: int, r_in: float, r_out: float, seed: int, v_rot=220.0, s_r=40.0, s_phi=25.0,
          s_z=15.0, meta=None) -> QTable:
    """Stars uniform in area on an annulus, rotating with Gaussian cylindrical velocities."""
    rng = np.random.default_rng(seed)
    R = np.sqrt(rng.uniform(r_in**2, r_out**2, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    v_R = rng.normal(0.0, s_r, n)
    v_phi = rng.normal(v_rot, s_phi, n)
    vz = rng.normal(0.0, s_z, n)
    vx = v_R * np.cos(phi) - v_phi * np.sin(phi)
    vy = v_R * np.sin(phi) + v_phi * np.cos(phi)
    return _table(R * np.cos(phi), R * np.sin(phi), rng.normal(0, 0.3, n), vx, vy, vz,
                  feh=0.5 - 0.1 * R, age=np.full(n, 6.5), Z=np.full(n, 0.01), meta=meta)


def test_exact_values_on_a_few_stars():
    # Three stars in [2, 4) kpc moving counter-clockwise (L_z > 0), one beyond the last edge.
    stars = _table(
        x=[3.0, 0.0, -3.0, 50.0], y=[0.0, 3.0, 0.0, 0.0], z=[0, 0, 0, 0],
        vx=[10.0, -200.0, 0.0, 0.0], vy=[100.0, 0.0, -300.0, 0.0], vz=[1.0, 2.0, 6.0, 0.0],
        feh=[-0.1, -0.2, -0.6, 0.0], age=[1.0, 2.0, 6.0, 13.0],
        meta={"conditions": {"M_stars": "4000000 solMass"}},
    )
    ds = radial_profiles(stars, [0.0, 2.0, 4.0] * u.kpc)
    # v_phi: +100, +200, +300 ; v_R: +10, 0, 0
    assert ds["n_stars"].values.tolist() == [0, 3]
    np.testing.assert_allclose(ds["v_phi"].values[1], 200.0)
    np.testing.assert_allclose(ds["sigma_phi"].values[1], 100.0)  # std of 100,200,300, ddof=1
    np.testing.assert_allclose(ds["v_R"].values[1], 10 / 3)
    np.testing.assert_allclose(ds["v_z"].values[1], 3.0)
    np.testing.assert_allclose(ds["sigma_z"].values[1], np.std([1, 2, 6], ddof=1))
    np.testing.assert_allclose(ds["feh"].values[1], -0.3)
    np.testing.assert_allclose(ds["age"].values[1], 3.0)
    # Each of the 4 stars weighs 1e6 Msun (the star outside the bins still counts in the total).
    np.testing.assert_allclose(ds["Sigma"].values, [0.0, 3e6 / (np.pi * (16 - 4))])
    assert ds["Sigma"].attrs["units"] == "Msun / kpc2"
    assert np.isnan(ds["v_phi"].values[0]) and np.isnan(ds["sigma_R"].values[0])
    np.testing.assert_allclose(ds["R"].values, [1.0, 3.0])
    assert ds["R"].attrs["units"] == "kpc"
    assert ds["v_phi"].attrs["units"] == "km / s"


def test_rotating_ring_recovers_rotation_dispersions_and_density():
    n, r_in, r_out = 200_000, 4.0, 8.0
    stars = _ring(n, r_in, r_out, seed=3)
    edges = np.array([0.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0])
    ds = radial_profiles(stars, edges)
    assert ds["Sigma"].attrs["units"] == "1 / kpc2"  # no M_stars in meta: star counts
    inner = slice(2, 6)
    counts = ds["n_stars"].values
    assert counts[0] == counts[1] == counts[-1] == 0
    assert counts.sum() == n
    expected = n / (np.pi * (r_out**2 - r_in**2))
    sigma = ds["Sigma"].values[inner]
    np.testing.assert_allclose(sigma, expected, rtol=5 / np.sqrt(counts[inner].min()))
    root_n = float(np.sqrt(counts[inner].min()))
    np.testing.assert_allclose(ds["v_phi"].values[inner], 220.0, atol=5 * 25 / root_n)
    np.testing.assert_allclose(ds["v_R"].values[inner], 0.0, atol=5 * 40 / root_n)
    for name, true in (("sigma_R", 40.0), ("sigma_phi", 25.0), ("sigma_z", 15.0)):
        np.testing.assert_allclose(ds[name].values[inner], true, rtol=0.03)
    # [Fe/H] = 0.5 - 0.1 R: the bin mean is 0.5 - 0.1 <R>, <R> of a uniform-area annulus.
    lo, hi = edges[2:6], edges[3:7]
    mean_r = 2 / 3 * (hi**3 - lo**3) / (hi**2 - lo**2)
    np.testing.assert_allclose(ds["feh"].values[inner], 0.5 - 0.1 * mean_r, atol=2e-3)
    np.testing.assert_allclose(ds["age"].values[inner], 6.5)


def test_profiles_scale_with_mass_and_accept_other_units():
    stars = _ring(20_000, 4.0, 8.0, seed=1, meta={"conditions": {"M_stars": 2e10 * u.Msun}})
    a = radial_profiles(stars, np.linspace(0, 10, 6))
    b = radial_profiles(stars, np.linspace(0, 10_000, 6) * u.pc, total_mass=None)
    c = radial_profiles(stars, np.linspace(0, 10, 6), total_mass=1e10)
    np.testing.assert_allclose(a["Sigma"].values, b["Sigma"].values)
    np.testing.assert_allclose(a["Sigma"].values, 2 * c["Sigma"].values)
    total = float((a["Sigma"] * np.pi * (a["R_hi"] ** 2 - a["R_lo"] ** 2)).sum())
    np.testing.assert_allclose(total, 2e10)  # all stars lie inside 10 kpc
    assert total_mass_of(stars) == 2e10 * u.Msun
    # The same sample in pc and m/s gives the same profiles.
    other = stars.copy()
    for name in ("x", "y", "z"):
        other[name] = other[name].to(u.pc)
    for name in ("vx", "vy", "vz"):
        other[name] = other[name].to(u.m / u.s)
    d = radial_profiles(other, np.linspace(0, 10, 6))
    np.testing.assert_allclose(d["v_phi"].values, a["v_phi"].values, equal_nan=True)


@pytest.mark.parametrize(
    "edges", [[1.0], [0.0, 2.0, 1.0], [0.0, np.nan], [-1.0, 1.0], np.zeros((2, 2))]
)
def test_bad_edges_raise(edges):
    with pytest.raises(ValueError, match="edges"):
        radial_profiles(_ring(100, 1, 2, seed=0), edges)


def test_missing_unit_and_column_raise():
    stars = _ring(100, 1, 2, seed=0)
    plain = QTable({n: np.asarray(stars[n].value) for n in stars.colnames})
    with pytest.raises(u.UnitsError, match="no unit"):
        radial_profiles(plain, [0, 1, 2])
    del stars["vz"]
    with pytest.raises(KeyError, match="vz"):
        radial_profiles(stars, [0, 1, 2])
    bad = _ring(100, 1, 2, seed=0, meta={"conditions": {"M_stars": "-1 solMass"}})
    with pytest.raises(ValueError, match="M_stars"):
        radial_profiles(bad, [0, 1, 2])


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_corner_plot_panels_log_z_and_reference(tmp_path):
    stars = _ring(5_000, 4.0, 8.0, seed=2)
    stars["Z"] = np.geomspace(1e-3, 1e-2, len(stars)) * u.dimensionless_unscaled
    truth = _ring(5_000, 4.0, 8.0, seed=3)
    path = tmp_path / "corner.png"
    cols = ["x", "vz", "Z", "feh"]
    fig = corner_plot(stars, columns=cols, bins=20, reference=truth, path=path)
    assert path.stat().st_size > 1000 and _is_png(path)
    axes = fig.get_axes()
    assert len(axes) == len(cols) * (len(cols) + 1) // 2
    z_axes = [ax for ax in axes if ax.get_xlabel() == r"$\log_{10} Z$"]
    assert z_axes, "Z must be plotted as log10 Z"
    lo, hi = z_axes[0].get_xlim()
    assert -3.2 < lo < -2.9 and -2.1 < hi < -1.9
    # The reference adds one step histogram per diagonal panel and contours off the diagonal.
    diagonal = axes[0]
    assert len(diagonal.patches) == 2
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert labels == {"sample", "reference"}
    fig_plain = corner_plot(stars, columns=cols, bins=20)
    assert len(fig_plain.get_axes()[0].patches) == 1
    with pytest.raises(KeyError, match="nope"):
        corner_plot(stars, columns=["x", "nope"])
    with pytest.raises(ValueError, match="bins"):
        corner_plot(stars, columns=cols, bins=1)


def test_profile_plot_draws_the_profiles(tmp_path):
    stars = _ring(20_000, 4.0, 8.0, seed=4, meta={"conditions": {"M_stars": "5e10 solMass"}})
    path = tmp_path / "profiles.png"
    fig = profile_plot(stars, path=path, r_max=10 * u.kpc, n_bins=10)
    assert _is_png(path) and path.stat().st_size > 1000
    axes = fig.get_axes()
    assert len(axes) == 4
    assert "M$_\\odot$" in axes[0].get_ylabel()
    ds = radial_profiles(stars, np.linspace(0, 10, 11))
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), ds["v_phi"].values,
                               equal_nan=True)
    np.testing.assert_allclose(axes[3].get_lines()[0].get_ydata(), ds["age"].values,
                               equal_nan=True)
    counted = profile_plot(_ring(2_000, 4.0, 8.0, seed=4))
    assert "stars" in counted.get_axes()[0].get_ylabel()
    with pytest.raises(ValueError, match="r_max"):
        profile_plot(stars, r_max=-1.0)

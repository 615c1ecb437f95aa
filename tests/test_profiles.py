"""analysis.profiles (module analysis.binned): exact weighted statistics, units, selections,
R-z bins, bootstrap errors."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

from astroflow_gal.analysis import profile_quantity, profiles

KMS = u.km / u.s


def _ring(n: int, r_in: float, r_out: float, seed: int, v_rot=220.0, s_r=40.0, s_phi=25.0,
          s_z=15.0) -> QTable:
    """Stars uniform in area on an annulus, rotating with Gaussian cylindrical velocities."""
    rng = np.random.default_rng(seed)
    R = np.sqrt(rng.uniform(r_in**2, r_out**2, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    v_R, v_phi, vz = rng.normal(0, s_r, n), rng.normal(v_rot, s_phi, n), rng.normal(0, s_z, n)
    return QTable({
        "x": R * np.cos(phi) * u.kpc, "y": R * np.sin(phi) * u.kpc,
        "z": rng.normal(0, 0.5, n) * u.kpc,
        "vx": (v_R * np.cos(phi) - v_phi * np.sin(phi)) * KMS,
        "vy": (v_R * np.sin(phi) + v_phi * np.cos(phi)) * KMS,
        "vz": vz * KMS,
        "age": rng.uniform(0, 12, n) * u.Gyr,
        "feh": (0.3 - 0.05 * R + rng.normal(0, 0.1, n)) * u.dex,
        "ofe": rng.normal(0.1, 0.05, n) * u.dex,
    })


def test_mass_weighted_statistics_by_hand():
    # Three stars at R = 3 kpc (x, y, -x), v_phi = 100, 200, 300 km/s, masses 1, 2, 1 Msun.
    stars = QTable({
        "x": [3.0, 0.0, -3.0] * u.kpc, "y": [0.0, 3.0, 0.0] * u.kpc, "z": [0, 0, 0] * u.kpc,
        "vx": [5.0, -200.0, 0.0] * KMS, "vy": [100.0, 0.0, -300.0] * KMS,
        "vz": [1.0, 2.0, 7.0] * KMS, "age": [1.0, 2.0, 5.0] * u.Gyr,
        "mass": [1.0, 2.0, 1.0] * u.Msun,
    })
    ds = profiles(stars, bins=[0.0, 2.0, 4.0] * u.kpc, n_bootstrap=0)
    w = np.array([1.0, 2.0, 1.0])
    v_phi = np.array([100.0, 200.0, 300.0])
    mean = np.sum(w * v_phi) / w.sum()
    n_eff = w.sum() ** 2 / np.sum(w * w)
    var = np.sum(w * (v_phi - mean) ** 2) / w.sum() * n_eff / (n_eff - 1)
    np.testing.assert_allclose(ds["v_phi"].values, [np.nan, mean])
    np.testing.assert_allclose(ds["sigma_phi"].values[1], np.sqrt(var))
    np.testing.assert_allclose(ds["v_R"].values[1], 5.0 / 4.0)  # only the first star has v_R
    np.testing.assert_allclose(ds["age"].values[1], (1 + 4 + 5) / 4.0)
    np.testing.assert_allclose(ds["Sigma"].values, [0.0, 4.0 / (np.pi * 12.0)])
    assert ds["n_stars"].values.tolist() == [0, 3]
    assert "v_phi_err" not in ds and "feh" not in ds  # no bootstrap, no [Fe/H] column
    # Equal masses give the ordinary ddof=1 standard deviation.
    equal = profiles(stars, bins=[0.0, 4.0], mass=1.0 * u.Msun, n_bootstrap=0)
    np.testing.assert_allclose(equal["sigma_phi"].values, [100.0])
    np.testing.assert_allclose(equal["Sigma"].values, [3.0 / (np.pi * 16.0)])


def test_plain_table_columns_are_read_in_their_units():
    stars = _ring(5_000, 2.0, 6.0, seed=1)
    reference = profiles(stars, bins=np.linspace(0, 8, 5), mass=1.0, n_bootstrap=0)
    plain = Table()
    for name in stars.colnames:
        col = stars[name]
        if name in ("x", "y", "z"):
            plain[name] = col.to_value(u.pc)
            plain[name].unit = u.pc
        elif name.startswith("v"):
            plain[name] = col.to_value(u.m / u.s)
            plain[name].unit = "m / s"
        else:
            plain[name] = col.value  # no unit: read in schema units (Gyr, dex)
    other = profiles(plain, bins=np.linspace(0, 8000, 5) * u.pc, mass=(1.0 * u.Msun).to(u.kg),
                     n_bootstrap=0)
    for name in ("Sigma", "v_phi", "sigma_R", "sigma_z", "age", "feh", "sigma_ofe"):
        np.testing.assert_allclose(other[name].values, reference[name].values, rtol=1e-10,
                                   equal_nan=True)
    assert profile_quantity(other, "Sigma").unit == u.Msun / u.kpc**2


def test_rotating_ring_and_bootstrap_errors():
    n = 40_000
    stars = _ring(n, 4.0, 8.0, seed=2)
    ds = profiles(stars, bins=[4.0, 6.0, 8.0], mass=2.0, n_bootstrap=60, seed=5)
    counts = ds["n_stars"].values
    assert counts.sum() == n
    np.testing.assert_allclose(ds["v_phi"].values, 220.0, atol=5 * 25 / np.sqrt(counts.min()))
    np.testing.assert_allclose(ds["sigma_R"].values, 40.0, rtol=0.03)
    # Bootstrap errors against the textbook standard errors (60 resamplings: ~10 % scatter).
    np.testing.assert_allclose(ds["v_phi_err"].values, 25.0 / np.sqrt(counts), rtol=0.3)
    np.testing.assert_allclose(ds["sigma_z_err"].values, 15.0 / np.sqrt(2 * counts), rtol=0.3)
    p = counts / n
    area = np.pi * np.array([36.0 - 16.0, 64.0 - 36.0])
    np.testing.assert_allclose(ds["Sigma_err"].values, 2.0 * np.sqrt(n * p * (1 - p)) / area,
                               rtol=0.3)
    np.testing.assert_allclose(ds["n_stars_err"].values, np.sqrt(n * p * (1 - p)), rtol=0.3)
    # [Fe/H] = 0.3 - 0.05 R (+ scatter): the inner bin is richer by 0.05 * (<R>_out - <R>_in).
    assert ds["feh"].values[0] - ds["feh"].values[1] == pytest.approx(0.1, abs=0.01)
    assert ds["feh_err"].values[0] > 0 and ds["sigma_feh"].values[0] > 0.1
    # The same seed gives the same errors; another seed other ones.
    again = profiles(stars, bins=[4.0, 6.0, 8.0], mass=2.0, n_bootstrap=60, seed=5)
    np.testing.assert_array_equal(again["v_phi_err"].values, ds["v_phi_err"].values)


def test_selection_is_a_population():
    stars = _ring(20_000, 2.0, 8.0, seed=3)
    edges = np.linspace(2, 8, 4)
    young = profiles(stars, bins=edges, mass=1.0, n_bootstrap=0,
                     select={"age": (None, 4000 * u.Myr), "feh": (-1.0, None)})
    keep = (stars["age"] < 4 * u.Gyr) & (stars["feh"] >= -1.0 * u.dex)
    manual = profiles(stars[keep], bins=edges, mass=1.0, n_bootstrap=0)
    for name in ("Sigma", "v_phi", "sigma_R", "age", "feh"):
        np.testing.assert_allclose(young[name].values, manual[name].values)
    assert young.attrs["n_stars_selected"] == int(keep.sum())
    assert young.attrs["mass_selected"] == pytest.approx(float(keep.sum()))
    assert "age < 4 Gyr" in young.attrs["selection"]
    assert young["age"].values.max() < 4.0
    with pytest.raises(ValueError, match="select"):
        profiles(stars, select={"vz": (0, 1)})
    with pytest.raises(ValueError, match="low"):
        profiles(stars, select={"age": (5, 1)})
    with pytest.raises(u.UnitConversionError):
        profiles(stars, select={"age": (0 * u.kpc, 1 * u.kpc)})


def test_rz_bins_give_the_space_density(tmp_path):
    import xarray as xr

    stars = _ring(30_000, 2.0, 8.0, seed=4)
    ds = profiles(stars, bins=[2.0, 5.0, 8.0], zbins=[-1.0, 0.0, 1.0] * u.kpc, mass=3.0,
                  n_bootstrap=10)
    assert ds["rho"].dims == ("R", "z") and ds["Sigma"].dims == ("R",)
    volume = np.pi * (ds["R_hi"] ** 2 - ds["R_lo"] ** 2) * (ds["z_hi"] - ds["z_lo"])
    inside = np.abs(stars["z"]) <= 1 * u.kpc
    np.testing.assert_allclose(float((ds["rho"] * volume).sum()), 3.0 * inside.sum())
    np.testing.assert_allclose(ds["n_stars"].sum(), inside.sum())
    # Sigma counts every height.
    area = np.pi * (ds["R_hi"] ** 2 - ds["R_lo"] ** 2)
    np.testing.assert_allclose(float((ds["Sigma"] * area).sum()), 3.0 * len(stars))
    # netCDF round trip keeps values and units.
    path = tmp_path / "p.nc"
    ds.to_netcdf(path)
    back = xr.load_dataset(path)
    q = profile_quantity(back, "rho")
    assert q.unit == u.Msun / u.kpc**3
    np.testing.assert_allclose(q.value, ds["rho"].values)
    assert profile_quantity(back, "v_phi_err").unit == KMS
    assert profile_quantity(back, "feh").unit == u.dex
    with pytest.raises(KeyError, match="nope"):
        profile_quantity(back, "nope")


def test_mass_comes_from_a_model_sample(small_model, mid_conditions):
    stars = small_model.sample(3_000, mid_conditions, seed=1)
    ds = profiles(stars, bins=8, n_bootstrap=0)
    m_stars = mid_conditions["M_stars"].to_value(u.Msun)
    area = np.pi * (ds["R_hi"] ** 2 - ds["R_lo"] ** 2)
    inside = int(ds["n_stars"].sum())
    np.testing.assert_allclose(float((ds["Sigma"] * area).sum()), m_stars * inside / 3_000)
    assert "M_stars" in ds.attrs["conditions"]
    # 8 equal bins up to the 95th percentile of R.
    R = np.hypot(stars["x"], stars["y"]).to_value(u.kpc)
    np.testing.assert_allclose(ds["R_hi"].values[-1], np.percentile(R, 95))


def test_bad_input_is_refused():
    stars = _ring(200, 1.0, 2.0, seed=0)
    with pytest.raises(ValueError, match="bins"):
        profiles(stars, bins=[0.0, 2.0, 1.0], mass=1.0)
    with pytest.raises(ValueError, match="bins"):
        profiles(stars, bins=[-1.0, 2.0], mass=1.0)
    with pytest.raises(ValueError, match="zbins"):
        profiles(stars, zbins=[0.0, np.nan], mass=1.0)
    with pytest.raises(ValueError, match="n_bootstrap"):
        profiles(stars, mass=1.0, n_bootstrap=-1)
    with pytest.raises(ValueError, match="stellar mass"):
        profiles(stars)
    with pytest.raises(TypeError, match="Table"):
        profiles({"x": [1.0]}, mass=1.0)
    with pytest.raises(ValueError, match="lack"):
        profiles(stars[["y", "vx"]], mass=1.0)
    nan = stars.copy()
    nan["vx"][3] = np.nan * KMS
    with pytest.raises(ValueError, match="vx"):
        profiles(nan, mass=1.0)
    with pytest.raises(u.UnitConversionError):
        profiles(stars, bins=[0, 1] * u.s, mass=1.0)

"""analysis.edf_moments: exact answers from the synthetic truth; agreement with binned samples."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from astroflow_gal.analysis import edf_moments, profile_quantity, profiles
from astroflow_gal.data import schema
from astroflow_gal.data.synthetic_moments import truth_velocity_moments


class TruthAsModel:
    """The exact eDF of one synthetic galaxy behind the parts of the GalaxyModel API used."""

    star_names = schema.STAR_NAMES
    condition_names = schema.CONDITION_NAMES

    def __init__(self, truth, galaxy_id):
        self.truth, self.galaxy_id = truth, galaxy_id

    def sample(self, n, conditions, seed=0, allow_extrapolation=False):
        return self.truth.sample(n, self.galaxy_id, seed)

    def log_edf(self, rows, conditions, allow_extrapolation=False):
        return self.truth.log_prob_arrays(np.asarray(rows), self.galaxy_id)

    def log_marginal(self, positions, kind, conditions, allow_extrapolation=False):
        return self.truth.marginal_log_prob(np.asarray(positions), self.galaxy_id)


@pytest.fixture(scope="module")
def truth_model(small_suite):
    truth = small_suite.truth
    gid = max(truth.galaxy_ids, key=lambda g: truth[g].log_mstar)
    return TruthAsModel(truth, gid), dict(small_suite[gid].conditions)


def test_exact_moments_of_the_synthetic_truth_within_the_reported_errors(truth_model):
    model, conditions = truth_model
    gal = model.truth[model.galaxy_id]
    pos = np.array([[1.0, 0.0, 0.0], [0.0, 3.0, 0.2], [-5.0, 2.0, 0.5], [0.3, 0.2, 2.0]])
    ds = edf_moments(model, pos * u.kpc, conditions, n_samples=3000, n_pilot=20_000, seed=3)
    exact = truth_velocity_moments(gal, pos)
    for name in ("v_R", "v_phi", "v_z", "sigma_R", "sigma_phi", "sigma_z"):
        err = ds[f"{name}_err"].values
        assert np.all(err > 0) and np.all(err < 8.0), (name, err)
        pull = (ds[name].values - exact[name].values) / err
        assert np.all(np.abs(pull) < 5), (name, pull)
    pull = (ds["v_cov"] - exact["v_cov"]).values / ds["v_cov_err"].values
    assert np.all(np.abs(pull) < 5)
    # Integrated over w, the eDF gives the exact position marginal (times M_stars).
    np.testing.assert_allclose(ds["rho"].values, exact["rho"].values, rtol=1e-12)
    pull = (ds["rho_edf"].values - exact["rho"].values) / ds["rho_edf_err"].values
    assert np.all(np.abs(pull) < 5), pull
    assert np.all(ds["rho_edf_err"].values < 0.1 * ds["rho_edf"].values)
    assert np.all(ds["ess"].values > 100)
    assert profile_quantity(ds, "rho_edf").unit == u.Msun / u.kpc**3
    assert profile_quantity(ds, "v_cov").unit == (u.km / u.s) ** 2
    assert profile_quantity(ds, "feh").unit == u.dex


def test_samples_and_edf_agree_in_a_radial_bin(small_model, mid_conditions):
    n = 60_000
    stars = small_model.sample(n, mid_conditions, seed=2)
    R = np.hypot(stars["x"], stars["y"]).to_value(u.kpc)
    lo, hi = np.percentile(R, [40, 60])
    binned = profiles(stars, bins=[lo, hi], n_bootstrap=40, seed=0)

    # Positions of independent stars in the bin: averaging E[v | x] over them is the bin's mean,
    # and the law of total variance gives its dispersion.
    other = small_model.sample(4_000, mid_conditions, seed=3)
    r_other = np.hypot(other["x"], other["y"]).to_value(u.kpc)
    chosen = other[(r_other >= lo) & (r_other < hi)][:48]
    pos = np.stack([chosen[c].to_value(u.kpc) for c in ("x", "y", "z")], axis=1)
    ds = edf_moments(small_model, pos, mid_conditions, n_samples=1024, n_pilot=5_000, seed=4)
    p = len(pos)
    for mean_name, std_name in (("v_phi", "sigma_phi"), ("v_R", "sigma_R"), ("v_z", "sigma_z")):
        m = ds[mean_name].values
        e = ds[std_name].values ** 2
        m_bar = m.mean()
        m_err = np.sqrt(m.var(ddof=1) / p + np.mean(ds[f"{mean_name}_err"].values ** 2) / p)
        total = e + (m - m_bar) ** 2 * p / (p - 1)
        var_bar = total.mean()
        var_err = np.sqrt(total.var(ddof=1) / p)
        sig_bar, sig_err = np.sqrt(var_bar), var_err / (2 * np.sqrt(var_bar))
        pull_m = (binned[mean_name].values[0] - m_bar) / np.hypot(
            binned[f"{mean_name}_err"].values[0], m_err)
        pull_s = (binned[std_name].values[0] - sig_bar) / np.hypot(
            binned[f"{std_name}_err"].values[0], sig_err)
        assert abs(pull_m) < 4, (mean_name, pull_m)
        assert abs(pull_s) < 4, (std_name, pull_s)


def test_edf_density_matches_the_binned_space_density(small_model, mid_conditions):
    n = 60_000
    stars = small_model.sample(n, mid_conditions, seed=5)
    R = np.hypot(stars["x"], stars["y"]).to_value(u.kpc)
    z = stars["z"].to_value(u.kpc)
    r_lo, r_hi = np.percentile(R, [30, 50])
    z_lo, z_hi = np.percentile(z, [40, 60])
    binned = profiles(stars, bins=[r_lo, r_hi], zbins=[z_lo, z_hi], n_bootstrap=40)
    # rho of the bin = volume average of rho(x): positions uniform in the bin's volume.
    rng = np.random.default_rng(0)
    m = 40
    rr = np.sqrt(rng.uniform(r_lo**2, r_hi**2, m))
    phi = rng.uniform(0, 2 * np.pi, m)
    pos = np.stack([rr * np.cos(phi), rr * np.sin(phi), rng.uniform(z_lo, z_hi, m)], axis=1)
    ds = edf_moments(small_model, pos, mid_conditions, n_samples=512, n_pilot=5_000, seed=6)
    rho = ds["rho_edf"].values
    mean, err = rho.mean(), np.sqrt(rho.var(ddof=1) / m + np.mean(ds["rho_edf_err"] ** 2) / m)
    expected, expected_err = binned["rho"].values[0, 0], binned["rho_err"].values[0, 0]
    assert abs(mean - expected) < 4 * np.hypot(err, expected_err), (mean, expected)


def test_netcdf_and_bad_input(small_model, mid_conditions, tmp_path):
    import xarray as xr

    ds = edf_moments(small_model, [[1.0, 0.5, 0.1]], mid_conditions, n_samples=64,
                     n_pilot=500, seed=1)
    assert ds.attrs["has_position_marginal"] == 1 and "rho" in ds
    path = tmp_path / "m.nc"
    ds.to_netcdf(path)
    back = xr.load_dataset(path)
    np.testing.assert_allclose(back["v_phi"].values, ds["v_phi"].values)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        edf_moments(small_model, [[1.0, 2.0]], mid_conditions)
    with pytest.raises(ValueError, match="NaN"):
        edf_moments(small_model, [[np.nan, 0.0, 0.0]], mid_conditions)
    with pytest.raises(u.UnitConversionError):
        edf_moments(small_model, [[1.0, 0.0, 0.0]] * u.s, mid_conditions)
    with pytest.raises(ValueError, match="n_samples"):
        edf_moments(small_model, [[1.0, 0.0, 0.0]], mid_conditions, n_samples=2)
    with pytest.raises(ValueError, match="missing conditions"):
        edf_moments(small_model, [[1.0, 0.0, 0.0]], {"M_stars": 1e9})

"""KL(truth || model) against exact eDFs (the truth itself, two Gaussians), its split by factor,
and per-column Wasserstein distances."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.analysis.metrics import (
    KL_FACTORS,
    check_compatible,
    kl_to_truth,
    summarise_kl,
    wasserstein_distances,
)
from astroflow_gal.data import schema
from astroflow_gal.data.suite import Galaxy, GalaxySuite
from astroflow_gal.inputs import ExtrapolationWarning


class _TruthAsModel:
    """A 'model' whose eDF is the exact one, optionally shifted by a constant (mis-normalised)."""

    star_names = schema.STAR_NAMES
    condition_names = schema.CONDITION_NAMES
    marginals: dict = {}

    def __init__(self, truth, offset=0.0, galaxy_id=None):
        self.truth, self.offset, self.galaxy_id = truth, offset, galaxy_id

    def log_edf(self, stars, conditions, allow_extrapolation=False):
        return self.truth.log_prob_arrays(stars, self.galaxy_id) + self.offset


class _GaussianTruth:
    """An exact eDF: independent Gaussians in the ten star columns (means mu, widths sigma)."""

    def __init__(self, mu, sigma):
        self.mu, self.sigma = np.asarray(mu, float), np.asarray(sigma, float)

    def __contains__(self, gid):
        return True

    def sample_arrays(self, n, gid, seed):
        rng = np.random.default_rng(seed)
        return self.mu + self.sigma * rng.standard_normal((n, self.mu.size))

    def log_prob_arrays(self, values, gid, cols=slice(None)):
        z = (values - self.mu[cols]) / self.sigma[cols]
        return np.sum(-0.5 * z**2 - np.log(self.sigma[cols]) - 0.5 * np.log(2 * np.pi), axis=1)

    def marginal_log_prob(self, values, gid, columns):
        return self.log_prob_arrays(values, gid, slice(0, len(columns)))


class _GaussianModel:
    """A 'model' with a Gaussian eDF and the exact marginals of that Gaussian."""

    star_names = schema.STAR_NAMES
    condition_names = schema.CONDITION_NAMES

    def __init__(self, mu, sigma, marginals=("position", "phase_space")):
        self.g = _GaussianTruth(mu, sigma)
        self.marginals = {k: None for k in marginals}
        self.seen_allow = []

    def log_edf(self, stars, conditions, allow_extrapolation=False):
        self.seen_allow.append(allow_extrapolation)
        return self.g.log_prob_arrays(stars, None)

    def log_marginal(self, stars, kind, conditions, allow_extrapolation=False):
        return self.g.log_prob_arrays(stars, None, slice(0, stars.shape[1]))


def _gaussian_kl(mu_p, s_p, mu_q, s_q):
    """KL(N(mu_p, s_p^2) || N(mu_q, s_q^2)) per dimension, the closed form."""
    return np.log(s_q / s_p) + (s_p**2 + (mu_p - mu_q) ** 2) / (2 * s_q**2) - 0.5


def _gaussian_suite(small_suite, truth):
    g = small_suite[0]
    return GalaxySuite([Galaxy("g", g.stars[:10], dict(g.conditions))], meta={}, truth=truth)


def test_kl_of_the_truth_itself_is_zero(small_suite):
    gid = small_suite.ids[2]
    table = kl_to_truth(_TruthAsModel(small_suite.truth, 0.0, gid), small_suite, [gid],
                        n_stars=2000)
    assert table["kl"][0] == pytest.approx(0.0, abs=1e-12)


def test_kl_of_two_gaussians_matches_the_formula(small_suite):
    rng = np.random.default_rng(4)
    mu_p, s_p = rng.normal(size=10), rng.uniform(0.5, 2.0, 10)
    mu_q, s_q = mu_p + rng.uniform(0.2, 0.6, 10), s_p * rng.uniform(0.8, 1.3, 10)
    suite = _gaussian_suite(small_suite, _GaussianTruth(mu_p, s_p))
    table = kl_to_truth(_GaussianModel(mu_q, s_q), suite, n_stars=40_000, seed=1, by_factor=True)
    exact = _gaussian_kl(mu_p, s_p, mu_q, s_q)
    assert exact.sum() > 0.5  # a clearly non-zero answer
    assert table["kl"][0] == pytest.approx(exact.sum(), abs=4 * table["kl_err"][0])
    # The chain rule: positions, velocities given positions, the rest given phase space.
    parts = {"kl_position": exact[:3].sum(), "kl_velocity_given_position": exact[3:6].sum(),
             "kl_chemistry_age_given_phase_space": exact[6:].sum()}
    for name, value in parts.items():
        assert table[name][0] == pytest.approx(value, abs=4 * table[f"{name}_err"][0])
    assert sum(table[n][0] for n in KL_FACTORS) == pytest.approx(table["kl"][0], rel=1e-9)


def test_kl_sees_a_wrong_normalisation_and_a_wrong_galaxy(small_suite):
    gid, other = small_suite.ids[1], small_suite.ids[4]
    shifted = kl_to_truth(_TruthAsModel(small_suite.truth, -0.3, gid), small_suite, [gid],
                          n_stars=2000)
    assert shifted["kl"][0] == pytest.approx(0.3, abs=1e-9)
    wrong = kl_to_truth(_TruthAsModel(small_suite.truth, 0.0, other), small_suite, [gid],
                        n_stars=2000)
    assert wrong["kl"][0] > 10 * wrong["kl_err"][0] > 0


def test_kl_of_a_model_is_positive_and_summarised(small_model, small_suite):
    table = kl_to_truth(small_model, small_suite, small_suite.ids[:2], n_stars=1000, seed=3,
                        by_factor=True)
    assert np.all(table["kl"] > 0) and np.all(table["kl_err"] > 0)
    # small_model has a position marginal only: the velocity split is NaN, positions are not.
    assert np.all(np.isfinite(table["kl_position"]))
    assert np.all(np.isnan(table["kl_velocity_given_position"]))
    summary = summarise_kl(table)
    assert summary["n_galaxies"] == 2
    assert summary["mean_kl"] == pytest.approx(float(np.mean(table["kl"])))


def test_kl_lets_the_caller_decide_about_extrapolation(small_model, small_suite):
    narrow = type(small_model)(small_model.flow, small_model.normalizer,
                               training_range={n: [v[0], v[0] + 1e-3 * (v[1] - v[0])]
                                               for n, v in small_model.training_range.items()})
    gid = small_suite.ids[-1]
    with pytest.raises(ValueError, match="range"):
        kl_to_truth(narrow, small_suite, [gid], n_stars=100)
    with pytest.warns(ExtrapolationWarning):
        table = kl_to_truth(narrow, small_suite, [gid], n_stars=100, allow_extrapolation=True)
    assert np.isfinite(table["kl"][0])
    model = _GaussianModel(np.zeros(10), np.ones(10))
    suite = _gaussian_suite(small_suite, _GaussianTruth(np.zeros(10), np.ones(10)))
    kl_to_truth(model, suite, n_stars=10)
    kl_to_truth(model, suite, n_stars=10, allow_extrapolation=True)
    assert model.seen_allow == [False, True]


def test_kl_does_not_hide_warnings(small_model, small_suite):
    # A galaxy just outside the training range: the warning reaches the caller.
    rng_model = type(small_model)(small_model.flow, small_model.normalizer,
                                  training_range={n: [v[0], v[0] + 0.9 * (v[1] - v[0])]
                                                  for n, v in small_model.training_range.items()})
    top = max(small_suite.ids, key=lambda g: small_suite[g].conditions["M_stars"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kl_to_truth(rng_model, small_suite, [top], n_stars=50)
    assert any(issubclass(w.category, ExtrapolationWarning) for w in caught)


def test_kl_needs_a_truth_and_a_matching_model(small_model, small_suite):
    bare = GalaxySuite(list(small_suite), meta={})
    with pytest.raises(ValueError, match="truth"):
        kl_to_truth(small_model, bare)
    with pytest.raises(ValueError, match="n_stars"):
        kl_to_truth(small_model, small_suite, n_stars=0)
    with pytest.raises(ValueError, match="not in the suite"):
        kl_to_truth(small_model, small_suite, ["nope"])
    with pytest.raises(ValueError, match="position marginal"):
        kl_to_truth(_TruthAsModel(small_suite.truth), small_suite, n_stars=10, by_factor=True)


def test_check_compatible_names_the_problem(small_model, small_suite):
    g = small_suite[0]
    fewer = GalaxySuite([Galaxy("a", g.stars, {"M_stars": g.conditions["M_stars"]})], meta={})
    with pytest.raises(ValueError, match=r"lacks the condition\(s\) \['tau50', 'tau10', 'Z_av'\]"):
        check_compatible(small_model, fewer)
    empty = GalaxySuite([Galaxy("void", g.stars[:0], dict(g.conditions)), g], meta={})
    with pytest.raises(ValueError, match="'void' has no stars"):
        check_compatible(small_model, empty)
    with pytest.raises(ValueError, match="no galaxies"):
        check_compatible(small_model, GalaxySuite([], meta={}))

    class Foreign:
        star_names = ("x", "y", "R")
        condition_names = ("M_stars",)

    with pytest.raises(ValueError, match=r"\['R'\] are not columns"):
        check_compatible(Foreign(), small_suite)
    assert check_compatible(small_model, small_suite) == small_suite.ids


def test_wasserstein_of_a_shift_is_the_shift_in_physical_units():
    rng = np.random.default_rng(0)
    base = {n: rng.normal(size=500) * schema.star_column(n).unit for n in schema.STAR_NAMES}
    base["Z"] = np.abs(base["Z"]) + 0.01
    a = QTable(base)
    b = a.copy()
    b["x"] = (b["x"].to_value(u.kpc) * 1000 + 700) * u.pc  # +0.7 kpc, given in pc
    b["vz"] = b["vz"] - 12 * u.km / u.s
    w = wasserstein_distances(a, b)
    assert w["x"].unit == u.kpc and w["x"].value == pytest.approx(0.7, rel=1e-9)
    assert w["vz"].unit == u.km / u.s and w["vz"].value == pytest.approx(12, rel=1e-9)
    assert w["age"].unit == u.Gyr and w["age"].value == pytest.approx(0.0, abs=1e-12)
    assert w["feh"].unit == u.dex
    with pytest.raises(KeyError):
        wasserstein_distances(a, b, ["R"])

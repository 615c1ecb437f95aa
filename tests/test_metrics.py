"""KL(truth || model) against the exact synthetic eDF."""

from __future__ import annotations

import numpy as np
import pytest

from astroflow_gal.analysis.metrics import kl_to_truth, summarise_kl


class _TruthAsModel:
    """A 'model' whose eDF is the exact one, optionally shifted by a constant (mis-normalised)."""

    def __init__(self, truth, offset=0.0, galaxy_id=None):
        self.truth, self.offset, self.galaxy_id = truth, offset, galaxy_id

    def log_edf(self, stars, conditions, allow_extrapolation=False):
        return self.truth.log_prob(stars, self.galaxy_id) + self.offset


def test_kl_of_the_truth_itself_is_zero(small_suite):
    gid = small_suite.ids[2]
    table = kl_to_truth(_TruthAsModel(small_suite.truth, 0.0, gid), small_suite, [gid],
                        n_stars=2000)
    assert table["kl"][0] == pytest.approx(0.0, abs=1e-12)


def test_kl_sees_a_wrong_normalisation_and_a_wrong_galaxy(small_suite):
    gid, other = small_suite.ids[1], small_suite.ids[4]
    shifted = kl_to_truth(_TruthAsModel(small_suite.truth, -0.3, gid), small_suite, [gid],
                          n_stars=2000)
    assert shifted["kl"][0] == pytest.approx(0.3, abs=1e-9)
    wrong = kl_to_truth(_TruthAsModel(small_suite.truth, 0.0, other), small_suite, [gid],
                        n_stars=2000)
    assert wrong["kl"][0] > 10 * wrong["kl_err"][0] > 0


def test_kl_of_a_model_is_positive_and_summarised(small_model, small_suite):
    table = kl_to_truth(small_model, small_suite, small_suite.ids[:2], n_stars=1000, seed=3)
    assert np.all(table["kl"] > 0) and np.all(table["kl_err"] > 0)
    summary = summarise_kl(table)
    assert summary["n_galaxies"] == 2
    assert summary["mean_kl"] == pytest.approx(float(np.mean(table["kl"])))


def test_kl_needs_a_truth(small_model, small_suite):
    from astroflow_gal.data.suite import GalaxySuite

    bare = GalaxySuite(list(small_suite), meta={})
    with pytest.raises(ValueError, match="truth"):
        kl_to_truth(small_model, bare)

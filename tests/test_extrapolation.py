"""Physical rules for galaxy conditions, and the joint distance to the training galaxies."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest

from astroflow_gal.data import schema
from astroflow_gal.extrapolation import (
    RAISE_FACTOR,
    RAISE_MIN,
    WARN_FACTOR,
    WARN_MIN,
    TrainingConditions,
)
from astroflow_gal.inputs import (
    ConditionRangeError,
    ExtrapolationWarning,
    check_condition_rules,
    parse_conditions,
)
from astroflow_gal.model import GalaxyModel

NAMES = schema.CONDITION_NAMES
MW = {"M_stars": 5e10 * u.Msun, "tau50": 7 * u.Gyr, "tau10": 2 * u.Gyr, "Z_av": 0.015}


def scaling_suite(n: int = 80, seed: int = 0) -> TrainingConditions:
    """Training galaxies on a mass-metallicity relation: Z_av rises 0.35 dex per dex of mass."""
    rng = np.random.default_rng(seed)
    log_m = np.sort(rng.uniform(6.5, 11.0, n))
    z_av = 10 ** (-3.5 + 0.35 * (log_m - 6.5) + rng.normal(0, 0.1, n))
    tau50 = rng.uniform(6.0, 10.0, n)
    tau10 = tau50 - rng.uniform(2.0, 5.0, n)
    values = np.column_stack([10**log_m, tau50, tau10, z_av])
    return TrainingConditions([f"g{i:03d}" for i in range(n)], NAMES, values)


# -- physical rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, rule",
    [
        ({"tau10": 8 * u.Gyr}, "tau10 <= tau50"),
        ({"tau50": -1 * u.Gyr, "tau10": -2 * u.Gyr}, "0 <= tau10"),
        ({"tau50": 7000.0}, "tau50 <= 13.8 Gyr"),  # Myr given as a plain number
        ({"tau50": 14.5 * u.Gyr}, "tau50 <= 13.8 Gyr"),
        ({"tau10": 2000.0, "tau50": 7000.0}, "13.8 Gyr"),
        ({"M_stars": -1e9 * u.Msun}, "M_stars > 0"),
        ({"M_stars": 0 * u.Msun}, "M_stars > 0"),
        ({"Z_av": 0.0}, "0 < Z_av < 1"),
        ({"Z_av": -0.01}, "0 < Z_av < 1"),
        ({"Z_av": 1.5}, "0 < Z_av < 1"),
    ],
)
def test_each_rule_raises_and_is_named(change, rule):
    with pytest.raises(ConditionRangeError, match=rule.replace("(", r"\(")):
        parse_conditions(NAMES, dict(MW, **change))


def test_myr_slip_message_says_so_and_quantities_in_myr_pass():
    with pytest.raises(ConditionRangeError, match="Myr"):
        parse_conditions(NAMES, dict(MW, tau50=7000.0))
    values = parse_conditions(NAMES, dict(MW, tau50=7000 * u.Myr, tau10=2000 * u.Myr))
    assert values[1] == pytest.approx(7.0) and values[2] == pytest.approx(2.0)


def test_rules_per_star_name_the_row():
    rows = np.array([[1e9, 7.0, 2.0, 0.01], [1e9, 7.0, 9.0, 0.01]])
    with pytest.raises(ConditionRangeError, match="tau10 <= tau50.*row 1"):
        check_condition_rules(rows, NAMES)
    check_condition_rules(rows[:1], NAMES)  # the good row alone passes
    check_condition_rules(np.array([1e9, 0.01]), ("M_stars", "Z_av"))  # rules of unused skipped


def test_model_refuses_impossible_conditions_before_work(small_model, mid_conditions):
    with pytest.raises(ConditionRangeError, match="tau10 <= tau50"):
        small_model.sample(10, dict(mid_conditions, tau10=mid_conditions["tau50"] + 1 * u.Gyr))
    with pytest.raises(ConditionRangeError, match="tau50 <= 13.8"):
        small_model.log_edf(np.zeros((3, 10)) + 0.01, dict(mid_conditions, tau50=7000.0))


# -- joint distance -------------------------------------------------------------------------------
def test_training_galaxies_pass_silently():
    tc = scaling_suite()
    assert 0 < tc.spacing and tc.warn_distance == max(WARN_FACTOR * tc.spacing, WARN_MIN)
    assert tc.raise_distance == max(RAISE_FACTOR * tc.spacing, RAISE_MIN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for row in tc.values[::7]:
            tc.check(row)
        tc.check(tc.values)  # per-star rows too


def test_dwarf_with_milky_way_metallicity_is_refused_though_each_condition_is_in_range():
    tc = scaling_suite()
    dwarf = np.array([1e8, 8.0, 4.5, 0.01])
    lo, hi = tc.values.min(axis=0), tc.values.max(axis=0)
    assert np.all((dwarf >= lo) & (dwarf <= hi))  # a per-condition range check would pass it
    dist, nearest = tc.distance(dwarf)
    assert dist[0] > tc.raise_distance
    with pytest.raises(ConditionRangeError, match=f"nearest training galaxy {tc.ids[nearest[0]]}"):
        tc.check(dwarf)
    with pytest.warns(ExtrapolationWarning, match="Mahalanobis"):
        tc.check(dwarf, allow_extrapolation=True)


def test_between_the_thresholds_warns():
    tc = scaling_suite()
    base = tc.values[40].copy()
    # walk away along Z_av until the distance lies between the two thresholds
    for factor in np.linspace(1.0, 10.0, 400):
        probe = base * np.array([1, 1, 1, factor])
        d = tc.distance(probe)[0][0]
        if tc.warn_distance < d < tc.raise_distance:
            break
    else:
        pytest.fail("no probe between the thresholds")
    with pytest.warns(ExtrapolationWarning, match=tc.ids[int(tc.distance(probe)[1][0])]):
        tc.check(probe)


def test_thresholds_follow_a_sparse_suite_and_have_a_floor():
    sparse, dense = scaling_suite(n=12, seed=1), scaling_suite(n=400, seed=1)
    assert sparse.spacing > dense.spacing
    assert sparse.raise_distance >= dense.raise_distance == RAISE_MIN
    assert dense.warn_distance == WARN_MIN


def test_bad_training_conditions_raise():
    with pytest.raises(ValueError, match="shape"):
        TrainingConditions(["a", "b"], NAMES, np.ones((3, 4)))
    with pytest.raises(ValueError, match="at least two"):
        TrainingConditions(["a"], NAMES, np.ones((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        TrainingConditions(["a", "b"], NAMES, np.array([[1e9, 7, 2, 0.01], [np.nan, 7, 2, 0.01]]))


def test_model_file_keeps_training_conditions_and_old_files_fall_back(small_model, tmp_path):
    tc = scaling_suite()
    model = GalaxyModel(small_model.flow, small_model.normalizer, training_conditions=tc,
                        meta={"name": "with training conditions"})
    path = tmp_path / "m.h5"
    model.save(path)
    back = GalaxyModel.load(path)
    assert back.training_conditions.ids == tc.ids
    np.testing.assert_array_equal(back.training_conditions.values, tc.values)
    dwarf = {"M_stars": 1e8 * u.Msun, "tau50": 8 * u.Gyr, "tau10": 4.5 * u.Gyr, "Z_av": 0.015}
    with pytest.raises(ConditionRangeError, match="nearest training galaxy"):
        back.sample(5, dwarf, seed=1)
    # a file without training conditions (older models) still loads and checks ranges alone
    old = GalaxyModel(small_model.flow, small_model.normalizer,
                      training_range=small_model.training_range)
    old.save(tmp_path / "old.h5")
    old_back = GalaxyModel.load(tmp_path / "old.h5")
    assert old_back.training_conditions is None
    lo, hi = old_back.training_range["M_stars"]
    far = {n: np.mean(old_back.training_range[n]) for n in NAMES}
    far["M_stars"] = hi * (hi / lo) ** 3
    with pytest.raises(ConditionRangeError, match="M_stars is above the training range"):
        old_back.sample(5, far, seed=1)

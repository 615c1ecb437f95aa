"""Every reader of star columns honours units the same way (one converter: data/columns.py)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

from astroflow_gal.data import Galaxy, compute_conditions, schema
from astroflow_gal.data.columns import schema_values, table_columns
from astroflow_gal.inputs import parse_conditions, stars_to_array


def plain_table_of(qtable: QTable, units: dict[str, u.UnitBase]) -> Table:
    """A plain astropy Table (not a QTable) whose columns carry the given units."""
    out = Table()
    for name in qtable.colnames:
        unit = units.get(name, qtable[name].unit)
        out[name] = qtable[name].to_value(unit)
        out[name].unit = unit
    return out


@pytest.fixture(scope="module")
def truth_stars(small_suite):
    gid = small_suite.ids[2]
    return gid, small_suite[gid].stars[:400]


def test_truth_log_prob_reads_plain_table_units(small_suite, truth_stars):
    gid, stars = truth_stars
    plain = plain_table_of(stars, {"x": u.pc, "y": u.pc, "z": u.pc, "age": u.Myr})
    assert not isinstance(plain["x"], u.Quantity)
    expected = small_suite.truth.log_prob(stars, gid)
    got = small_suite.truth.log_prob(plain, gid)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-10)


def test_conditions_read_plain_table_ages_in_myr(truth_stars):
    _, stars = truth_stars
    plain = plain_table_of(stars, {"age": u.Myr})
    masses = np.ones(len(stars)) * u.Msun
    expected = compute_conditions(stars, masses=masses)
    got = compute_conditions(plain, masses=masses)
    for name in schema.CONDITION_NAMES:
        assert got[name].unit == expected[name].unit
        np.testing.assert_allclose(got[name].value, expected[name].value, rtol=1e-12)
    assert 0 < got["tau50"].to_value(u.Gyr) < 14


def test_galaxy_reads_plain_table_units(truth_stars):
    _, stars = truth_stars
    plain = plain_table_of(stars, {"x": u.pc, "vx": u.m / u.s, "age": u.Myr})
    g = Galaxy("g", plain, {"M_stars": 1e9 * u.Msun})
    for name in ("x", "vx", "age"):
        np.testing.assert_allclose(g.stars[name].value, stars[name].value, rtol=1e-12)
        assert g.stars[name].unit == schema.star_column(name).unit


def test_model_inputs_read_plain_table_units(truth_stars):
    _, stars = truth_stars
    plain = plain_table_of(stars, {"x": u.pc, "age": u.Myr})
    np.testing.assert_allclose(
        stars_to_array(plain, schema.STAR_NAMES), stars_to_array(stars, schema.STAR_NAMES),
        rtol=1e-12,
    )


def test_model_log_edf_plain_table_equals_qtable(small_model, mid_conditions, truth_stars):
    _, stars = truth_stars
    plain = plain_table_of(stars, {"x": u.pc, "y": u.pc, "z": u.pc, "age": u.Myr})
    a = small_model.log_edf(stars, mid_conditions)
    b = small_model.log_edf(plain, mid_conditions)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-8)


def test_plain_numbers_are_schema_units():
    np.testing.assert_allclose(schema_values([1.0, 2.0], "x"), [1.0, 2.0])
    np.testing.assert_allclose(schema_values(3 * u.pc, "x"), 3e-3)
    arr = table_columns({"x": [1.0], "age": [500.0] * u.Myr}, ("x", "age"))
    np.testing.assert_allclose(arr, [[1.0, 0.5]])


@pytest.mark.parametrize("name", ["feh", "ofe"])
def test_abundances_accept_dex_and_dex_quantities(name):
    np.testing.assert_allclose(schema_values([-0.5, 0.2] * u.dex, name), [-0.5, 0.2])
    np.testing.assert_allclose(schema_values(u.Dex([-0.5, 0.2]), name), [-0.5, 0.2])


@pytest.mark.parametrize("name", ["feh", "ofe"])
@pytest.mark.parametrize(
    "value",
    [[-0.5, 0.2] * u.mag, u.Magnitude([-0.5, 0.2]), [0.1, 0.2] * u.dimensionless_unscaled],
    ids=["mag", "Magnitude", "dimensionless"],
)
def test_abundances_refuse_other_units(name, value):
    with pytest.raises(u.UnitConversionError, match=f"{name} must be in dex"):
        schema_values(value, name)
    table = {n: np.zeros(2) for n in schema.STAR_NAMES}
    table[name] = value
    with pytest.raises(u.UnitConversionError, match="dex"):
        stars_to_array(table, schema.STAR_NAMES)
    with pytest.raises(u.UnitConversionError, match="dex"):
        Galaxy("g", QTable(table), {"M_stars": 1e9 * u.Msun})


def test_plain_table_column_in_mag_is_refused_for_feh():
    t = Table({n: np.zeros(3) for n in schema.STAR_NAMES})
    t["feh"].unit = u.mag
    with pytest.raises(u.UnitConversionError, match="feh must be in dex"):
        stars_to_array(t, schema.STAR_NAMES)


def test_conditions_from_plain_table_row_keep_units():
    t = Table({"M_stars": [5e7], "tau50": [7000.0], "tau10": [2.0], "Z_av": [0.01]})
    t["M_stars"].unit = u.Msun
    t["tau50"].unit = u.Myr
    t["tau10"].unit = u.Gyr
    values = parse_conditions(schema.CONDITION_NAMES, t[0])
    np.testing.assert_allclose(values, [5e7, 7.0, 2.0, 0.01])


def test_skycoord_from_plain_table_columns(truth_stars):
    from astroflow_gal.frames import stars_to_skycoord

    _, stars = truth_stars
    plain = plain_table_of(stars, {"x": u.pc, "vx": u.m / u.s})
    a = stars_to_skycoord(stars)
    b = stars_to_skycoord(plain)
    np.testing.assert_allclose(b.cartesian.x.to_value(u.kpc), a.cartesian.x.to_value(u.kpc),
                               rtol=1e-12)
    np.testing.assert_allclose(b.velocity.d_x.to_value(u.km / u.s),
                               a.velocity.d_x.to_value(u.km / u.s), rtol=1e-12)
    bare = Table({n: np.asarray(stars[n].value) for n in stars.colnames})
    with pytest.raises(u.UnitConversionError, match="column x"):
        stars_to_skycoord(bare)

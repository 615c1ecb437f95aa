"""A sample's conditions and mass per star survive its files as numbers with units."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.inputs import sample_conditions, star_masses
from astroflow_gal.samples import read_sample


def _same_conditions(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for name in a:
        assert isinstance(b[name], u.Quantity) and b[name].unit == a[name].unit
        assert b[name].value == a[name].value  # exact: stored as numbers, not strings


@pytest.fixture(scope="module")
def sample(small_model, mid_conditions):
    return small_model.sample(300, mid_conditions, seed=6)


def test_meta_holds_numbers_and_units(sample, mid_conditions):
    for name, entry in sample.meta["conditions"].items():
        assert isinstance(entry["value"], float) and isinstance(entry["unit"], str)
        assert entry["value"] == pytest.approx(mid_conditions[name].value, rel=1e-12)
    assert sample.meta["mass_per_star"]["unit"] == "solMass"


def test_ecsv_round_trip(sample, tmp_path):
    sample.write(tmp_path / "s.ecsv")
    back = QTable.read(tmp_path / "s.ecsv")
    _same_conditions(sample_conditions(sample), sample_conditions(back))
    np.testing.assert_array_equal(star_masses(back).to_value(u.Msun),
                                  star_masses(sample).to_value(u.Msun))


def test_astropy_hdf5_round_trip(sample, tmp_path):
    sample.write(tmp_path / "s.h5", path="stars", serialize_meta=True)
    back = QTable.read(tmp_path / "s.h5", path="stars")
    _same_conditions(sample_conditions(sample), sample_conditions(back))
    assert back.meta["mass_per_star"] == sample.meta["mass_per_star"]


def test_sample_file_round_trip(small_model, mid_conditions, sample, tmp_path):
    path = small_model.sample_to_file(300, tmp_path / "s.h5", mid_conditions, seed=6)
    back = read_sample(path)
    _same_conditions(sample_conditions(sample), sample_conditions(back))
    np.testing.assert_array_equal(star_masses(back).to_value(u.Msun),
                                  star_masses(sample).to_value(u.Msun))
    for name in sample.colnames:
        np.testing.assert_array_equal(back[name].value, sample[name].value)
        assert back[name].unit == sample[name].unit

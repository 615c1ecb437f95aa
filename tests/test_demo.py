"""``astroflow-gal demo``: files, units, row counts, plots, condition choice, shipped model."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.cli import main
from astroflow_gal.cli.demo import DEFAULT_CONDITIONS, choose_conditions
from astroflow_gal.inputs import sample_conditions
from astroflow_gal.samples import read_sample

SHIPPED = Path(__file__).resolve().parents[1] / "astroflow_gal" / "pretrained" / "default.h5"


@pytest.fixture(scope="module")
def small_model_file(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.h5"
    small_model.save(path)
    return path


def _png_ok(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.stat().st_size > 10_000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert float(image[..., :3].std()) > 0.01  # not a blank canvas


def _check_outputs(out: Path, n: int, ecsv_rows: int) -> QTable:
    for name in ("stars.h5", "stars.ecsv", "corner.png", "profiles.png"):
        assert (out / name).is_file(), name
    stars = read_sample(out / "stars.h5")
    assert len(stars) == n
    assert stars["x"].unit == u.kpc and stars["vz"].unit == u.km / u.s
    assert stars["age"].unit == u.Gyr and stars["feh"].unit == u.dex
    assert np.all(np.isfinite(stars["x"].value))
    ecsv = QTable.read(out / "stars.ecsv", format="ascii.ecsv")
    assert len(ecsv) == ecsv_rows
    assert ecsv["vx"].unit == u.km / u.s
    np.testing.assert_allclose(ecsv["vx"].value, stars["vx"].value[:ecsv_rows], rtol=1e-12)
    _png_ok(out / "corner.png")
    _png_ok(out / "profiles.png")
    return stars


def test_demo_writes_files_with_units(small_model, small_model_file, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "-n", "20000", "-o", str(out), "--model", str(small_model_file),
               "--ecsv-rows", "5000", "--plot-stars", "3000", "--seed", "7"])
    assert rc == 0
    stars = _check_outputs(out, 20_000, 5_000)
    printed = capsys.readouterr().out
    assert "20,000 stars" in printed and "stars/s" in printed
    for name in ("stars.h5", "stars.ecsv", "corner.png", "profiles.png"):
        assert str(out / name) in printed
    # The defaults were clipped into the training range, and the sample used the clipped values.
    expected, notes = choose_conditions({}, small_model.training_range)
    assert stars.meta["seed"] == 7
    for name, value in expected.items():
        lo, hi = small_model.training_range[name]
        assert lo <= value <= hi
        recorded = sample_conditions(stars)[name]
        np.testing.assert_allclose(recorded.value, value, rtol=1e-9)
    for note in notes:
        assert note in printed
    # The same seed draws the same stars as the library call.
    direct = small_model.sample(2_000, expected, seed=7)
    np.testing.assert_array_equal(direct["x"].value, stars["x"].value[:2_000])


def test_choose_conditions_clips_defaults_only():
    training_range = {"M_stars": [1e9, 1e10], "tau50": [5.0, 9.0], "tau10": [2.5, 4.0],
                      "Z_av": [0.001, 0.01]}
    conditions, notes = choose_conditions({}, training_range)
    assert conditions == {"M_stars": 1e10, "tau50": 7.0, "tau10": 2.5, "Z_av": 0.01}
    assert len(notes) == 3 and any("M_stars" in n for n in notes)
    conditions, notes = choose_conditions({"M_stars": 3e11, "tau10": 1.0}, training_range)
    assert conditions["M_stars"] == 3e11 and conditions["tau10"] == 1.0  # given: kept as given
    assert not any("M_stars" in n or "tau10" in n for n in notes)
    assert choose_conditions({}, None) == (DEFAULT_CONDITIONS, [])
    assert DEFAULT_CONDITIONS["tau10"] < DEFAULT_CONDITIONS["tau50"]
    with pytest.raises(ValueError, match="10th percentile"):
        choose_conditions({"tau50": 3.0, "tau10": 5.0}, None)
    with pytest.raises(ValueError, match="finite"):
        choose_conditions({"Z_av": float("nan")}, None)


def test_demo_errors_are_reported(tmp_path, small_model_file, capsys):
    assert main(["demo", "-n", "100", "-o", str(tmp_path), "--model",
                 str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert main(["demo", "-n", "0", "-o", str(tmp_path), "--model", str(small_model_file)]) == 2
    assert main(["demo", "-n", "100", "-o", str(tmp_path), "--model", str(small_model_file),
                 "--tau50", "2", "--tau10", "3"]) == 2
    assert "tau10" in capsys.readouterr().err


@pytest.mark.skipif(not SHIPPED.exists(), reason="astroflow_gal/pretrained/default.h5 not built")
def test_demo_with_the_shipped_model(tmp_path, capsys):
    from astroflow_gal import GalaxyModel

    out = tmp_path / "demo"
    assert main(["demo", "-n", "20000", "-o", str(out), "--ecsv-rows", "-1"]) == 0
    stars = _check_outputs(out, 20_000, 20_000)
    model = GalaxyModel.pretrained()
    assert stars.meta["model"] == model.meta.get("name", "unnamed")
    for name, (lo, hi) in model.training_range.items():
        value = sample_conditions(stars)[name].value
        assert lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9)
    assert "warning" not in capsys.readouterr().out

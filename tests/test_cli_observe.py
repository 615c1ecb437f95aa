"""``astroflow-gal observe survey`` and ``observe ifu`` on the shipped model (small samples)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from astroflow_gal import observe
from astroflow_gal.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "astroflow_gal" / "pretrained" / "default.h5"
pytestmark = pytest.mark.skipif(not SHIPPED.exists(), reason="shipped model not built")


def test_survey_writes_a_catalogue_with_its_frame(tmp_path, capsys):
    out = tmp_path / "cat.fits"
    argv = ["observe", "survey", "default", "-n", "2500", "-o", str(out), "--seed", "3",
            "--sun-R", "8", "--sun-z", "25", "--sun-azimuth", "30", "--co-rotating",
            "--parallax-error", "0.05", "--pm-error", "0.1", "--rv-error", "2",
            "--max-distance", "4", "--min-parallax-over-error", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    cat = observe.read_catalogue(out)
    assert 0 < len(cat) < 2500
    assert np.all(cat["distance"] <= 4 * u.kpc)
    assert np.all(cat["parallax"] / cat["parallax_error"] >= 3)
    assert np.all(cat["parallax_error"] == 0.05 * u.mas)
    assert np.all(cat["radial_velocity_error"] == 2 * u.km / u.s)
    frame = cat.meta["galactocentric_frame"]
    assert frame["z_sun"]["value"] == pytest.approx(25.0)
    assert frame["galcen_distance"]["value"] == pytest.approx(np.hypot(8.0, 0.025))
    assert cat.meta["sun"]["azimuth"]["value"] == pytest.approx(30.0)
    assert cat.meta["seed"] == 3 and cat.meta["source"]["seed"] == 3
    # co-rotating: the Sun's rotation speed is the analogue's, not astropy's 245.6 km/s
    v_sun = frame["galcen_v_sun"]["value"]
    assert v_sun[0] == pytest.approx(11.1) and v_sun[1] != pytest.approx(245.6)
    # the same command gives the same catalogue, here as ECSV
    again = tmp_path / "again.ecsv"
    assert main(argv[:6] + [str(again)] + argv[7:]) == 0
    ecsv = observe.read_catalogue(again)
    assert ecsv.colnames == cat.colnames
    for name in ("ra", "pm_dec", "parallax", "feh"):
        np.testing.assert_array_equal(ecsv[name], cat[name])
    assert ecsv.meta["galactocentric_frame"] == frame


def test_survey_errors_name_the_option(tmp_path, capsys):
    base = ["observe", "survey", "default", "-n", "300"]
    assert main(base + ["-o", str(tmp_path / "cat.txt")]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "c.fits"), "--min-parallax-over-error", "5"]) == 2
    assert "--parallax-error" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "c.fits"), "--sun-R", "60"]) == 2
    assert "outside the galaxy" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "c.fits"), "--fraction", "2"]) == 2
    assert "fraction" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_ifu_writes_maps(tmp_path, capsys):
    out, png = tmp_path / "maps.nc", tmp_path / "maps.png"
    assert main(["observe", "ifu", "default", "-n", "2500", "-o", str(out), "--distance", "15",
                 "--inclination", "70", "--position-angle", "40", "--systemic-velocity", "900",
                 "--pixel", "3", "--fov", "90", "--psf-fwhm", "4", "--plot", str(png)]) == 0
    maps = observe.read_ifu_maps(out)
    assert maps["surface_density"].shape == (30, 30)
    assert u.Quantity(maps.attrs["distance"]) == 15 * u.Mpc
    assert u.Quantity(maps.attrs["psf_fwhm"]) == 4 * u.arcsec
    v = maps["v_los"].values
    assert np.nanmin(v) < 900 < np.nanmax(v)  # both sides of the rotating disc
    assert png.stat().st_size > 10_000
    assert main(["observe", "ifu", "default", "-n", "100", "-o", str(tmp_path / "x.nc"),
                 "--inclination", "200"]) == 2
    assert "inclination" in capsys.readouterr().err
    assert main(["observe", "ifu", "default", "-n", "100", "-o", str(tmp_path / "x.nc"),
                 "--pixel", "200", "--fov", "100"]) == 2
    assert "pixel" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()

"""``astroflow-gal profiles``: netCDF and PNG of a model galaxy's profiles."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from astroflow_gal.analysis import profile_quantity
from astroflow_gal.cli import main


def _condition_args(conditions) -> list[str]:
    values = {k: float(v.value) for k, v in conditions.items()}
    return ["--M-stars", f"{values['M_stars']!r}", "--tau50", f"{values['tau50']!r}",
            "--tau10", f"{values['tau10']!r}", "--Z-av", f"{values['Z_av']!r}"]


def test_profiles_command_writes_netcdf_and_png(small_model, mid_conditions, tmp_path, capsys):
    import xarray as xr

    model_path = tmp_path / "model.h5"
    small_model.save(model_path)
    out = tmp_path / "prof.nc"
    args = ["profiles", str(model_path), *_condition_args(mid_conditions), "-n", "4000",
            "-o", str(out), "--bins", "6", "--r-max", "5", "--n-bootstrap", "8", "--seed", "3"]
    assert main(args) == 0
    assert "prof.png" in capsys.readouterr().out
    with open(tmp_path / "prof.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    ds = xr.load_dataset(out)
    assert ds.sizes["R"] == 6
    np.testing.assert_allclose(ds["R_hi"].values[-1], 5.0)
    for name in ("Sigma", "v_phi", "sigma_R", "sigma_phi", "sigma_z", "feh", "age", "ofe"):
        assert f"{name}_err" in ds
    # The stars of the sample carry M_stars / n each.
    sigma = profile_quantity(ds, "Sigma")
    area = np.pi * (ds["R_hi"].values ** 2 - ds["R_lo"].values ** 2) * u.kpc**2
    mass = (sigma * area).sum().to_value(u.Msun)
    expected = mid_conditions["M_stars"].to_value(u.Msun) * ds["n_stars"].values.sum() / 4000
    np.testing.assert_allclose(mass, expected, rtol=1e-9)
    assert ds.attrs["n_stars_drawn"] == 4000 and ds.attrs["model"] == "test model"
    # The same seed draws the same galaxy.
    again = tmp_path / "again.nc"
    assert main([a if a != str(out) else str(again) for a in args]) == 0
    np.testing.assert_array_equal(xr.load_dataset(again)["v_phi"].values, ds["v_phi"].values)


def test_profiles_command_refuses_bad_input(small_model, mid_conditions, tmp_path, capsys):
    cond = _condition_args(mid_conditions)
    assert main(["profiles", str(tmp_path / "missing.h5"), *cond]) == 2
    assert "does not exist" in capsys.readouterr().err
    model_path = tmp_path / "model.h5"
    small_model.save(model_path)
    assert main(["profiles", str(model_path), *cond, "-n", "10"]) == 2
    assert "--n-stars" in capsys.readouterr().err
    assert main(["profiles", str(model_path), *cond, "--r-max", "-1"]) == 2
    assert "--r-max" in capsys.readouterr().err
    assert main(["profiles", str(model_path), *cond, "-o", str(tmp_path / "no" / "p.nc")]) == 2
    with pytest.raises(SystemExit):
        main(["profiles", str(model_path), "--M-stars", "1e9"])  # other conditions missing

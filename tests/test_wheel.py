"""A wheel built from the source tree carries the package data: the shipped model loads and samples.

The wheel is built without network access (``--no-build-isolation`` uses the installed setuptools)
and installed into an empty folder; a fresh interpreter started in another folder imports the
package from there only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("setuptools")

CHECK = """
import sys, importlib.metadata as md
import astropy.units as u
import astroflow_gal
from astroflow_gal import GalaxyModel
target = sys.argv[1]
assert astroflow_gal.__file__.startswith(target), astroflow_gal.__file__
assert md.version("astroflow-gal") == astroflow_gal.__version__
model = GalaxyModel.pretrained()
stars = model.sample(2000, dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr,
                                Z_av=0.015), seed=1)
assert len(stars) == 2000 and stars["x"].unit == u.kpc
print("OK", astroflow_gal.__version__, sorted(model.marginals))
"""


def _copy_source(dest: Path) -> None:
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "astroflow_gal",
        dest / "astroflow_gal",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def test_wheel_ships_the_model_and_samples(tmp_path):
    src, wheels, target, elsewhere = (tmp_path / n for n in ("src", "wheels", "site", "cwd"))
    for folder in (src, wheels, target, elsewhere):
        folder.mkdir()
    _copy_source(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True, cwd=src, timeout=300,
    )
    (wheel,) = wheels.glob("astroflow_gal-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "astroflow_gal/pretrained/default.h5" in names
    assert "astroflow_gal/configs/default.toml" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True, timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(target)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK 0.")

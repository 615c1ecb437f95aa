"""The package's top level: lazy public names listed by dir(), the errors, one version."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import astroflow_gal

ROOT = Path(__file__).resolve().parents[1]

ERRORS = {
    "ConditionRangeError": ValueError,
    "FileFormatError": ValueError,
    "SuiteFileError": ValueError,
    "CheckpointError": ValueError,
    "TrainingDivergedError": RuntimeError,
    "ExtrapolationWarning": UserWarning,
    "NonFiniteRowsWarning": UserWarning,
    "CheckpointWarning": UserWarning,
}


def test_dir_lists_every_lazy_name_and_no_helpers():
    names = dir(astroflow_gal)
    for name in ["GalaxyModel", "GalaxySuite", "__version__", *ERRORS]:
        assert name in names
    assert set(astroflow_gal.__all__) <= set(names)
    assert not {"importlib", "Any", "annotations"} & set(names)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_a_user_catches_are_exported(name):
    obj = getattr(astroflow_gal, name)
    assert issubclass(obj, ERRORS[name])
    module = importlib.import_module(f"astroflow_gal.{astroflow_gal._EXPORTS[name]}")
    assert getattr(module, name) is obj


def test_suite_errors_are_file_format_errors():
    assert issubclass(astroflow_gal.SuiteFileError, astroflow_gal.FileFormatError)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        astroflow_gal.nope  # noqa: B018


def test_import_is_light():
    code = "import sys, astroflow_gal; print('torch' in sys.modules, 'astropy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_table_level_modules_do_not_load_torch():
    # Mock observations and the schema work on tables: torch loads only when a flow is used.
    code = ("import sys, astroflow_gal.observe, astroflow_gal.data.schema, astroflow_gal.inputs; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False"]


def test_the_version_is_written_in_one_place():
    from astroflow_gal._version import __version__

    assert astroflow_gal.__version__ == __version__
    assert importlib.metadata.version("astroflow-gal") == __version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "astroflow_gal._version.__version__" }' in pyproject
    assert f'version = "{__version__}"' not in pyproject
    quoted = f'"{__version__}"'
    holders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "astroflow_gal").rglob("*.py")
               if quoted in p.read_text()]
    assert holders == ["astroflow_gal/_version.py"]


def test_license_file_matches_the_declared_license():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()

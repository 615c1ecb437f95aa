"""Sphinx configuration of the astroflow_gal documentation.

Build (warnings are errors, the tutorials run once)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are Markdown (MyST); the API pages come from the numpydoc docstrings; the tutorials in
``tutorials/`` are executed and rendered by sphinx-gallery into ``docs/tutorials/``. Cross-links to
astropy, numpy, torch, xarray and Python read the inventories committed in ``docs/_intersphinx/``,
so the build needs no network (regenerate them with ``docs/_intersphinx/make_inventories.py``).

``ASTROFLOW_GAL_DOCS_RUN_TUTORIALS=False`` renders the tutorials without running them (a quick
look at the pages); the tests always run them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import astroflow_gal  # noqa: E402

project = "astroflow_gal"
author = "The astroflow_gal developers"
copyright = "2026, the astroflow_gal developers"
release = astroflow_gal.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_intersphinx",
    "figures/*.py",
    "tutorials/*.ipynb",
    "tutorials/*.py",
    "tutorials/*.md5",
    "tutorials/*.zip",
    "tutorials/*.json",
    "tutorials/*.codeobj.json",
    # Markdown fragments that pages pull in with {include} (tables made by scripts): not pages
    "_*.md",
    "*_table.md",
    # sphinx-gallery's table of execution times: not a page of the documentation
    "sg_execution_times.rst",
    "**/sg_execution_times.rst",
]

# -- MyST ----------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc + numpydoc --------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections carry the types (with units)
autodoc_default_options = {"members": True, "show-inheritance": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = True
numpydoc_xref_aliases = {
    "Quantity": "astropy.units.Quantity",
    "QTable": "astropy.table.QTable",
    "Table": "astropy.table.Table",
    "SkyCoord": "astropy.coordinates.SkyCoord",
    "Unit": "astropy.units.Unit",
    "UnitBase": "astropy.units.UnitBase",
    "ndarray": "numpy.ndarray",
    "Generator": "numpy.random.Generator",
    "Tensor": "torch.Tensor",
    "Dataset": "xarray.Dataset",
    "DataArray": "xarray.DataArray",
    "Path": "pathlib.Path",
    "GalaxyModel": "astroflow_gal.GalaxyModel",
    "GalaxySuite": "astroflow_gal.GalaxySuite",
}
# words of type descriptions that are not objects
numpydoc_xref_ignore = {
    "astropy", "optional", "default", "of", "or", "and", "shape", "like", "path-like", "array-like",
    "mapping", "sequence", "iterable", "callable", "int", "float", "bool", "str", "dict",
    "list", "tuple", "None", "number", "numbers", "scalar", "positive", "non-negative",
    "each", "same", "any", "the", "in", "with", "to", "a", "an", "per", "one", "N", "D", "C",
    "keyword", "keywords", "arguments", "object", "objects", "column", "columns", "row",
    "rows", "star", "stars", "file", "name", "names", "unit", "units", "value", "values",
    "array", "arrays", "table", "tables", "string", "strings", "type", "kwargs", "float32",
    "float64", "dtype", "device", "instance", "{", "}", "...",
}
numpydoc_validation_checks: set[str] = set()
# numpydoc loads autosummary; we write no autosummary tables, so nothing is to be generated
autosummary_generate = False

# -- intersphinx (offline: committed inventories) ------------------------------------------------
_INV = DOCS / "_intersphinx"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", str(_INV / "python.inv")),
    "numpy": ("https://numpy.org/doc/stable/", str(_INV / "numpy.inv")),
    "astropy": ("https://docs.astropy.org/en/stable/", str(_INV / "astropy.inv")),
    "torch": ("https://docs.pytorch.org/docs/stable/", str(_INV / "torch.inv")),
    "xarray": ("https://docs.xarray.dev/en/stable/", str(_INV / "xarray.inv")),
    "matplotlib": ("https://matplotlib.org/stable/", str(_INV / "matplotlib.inv")),
    "h5py": ("https://docs.h5py.org/en/stable/", str(_INV / "h5py.inv")),
}
intersphinx_timeout = 5
# Unresolved cross-references are not warnings (nitpicky off): a name missing from the minimal
# inventories renders as plain code instead of failing the -W build.
nitpicky = False

# -- sphinx-gallery ------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "tutorials"),
    "gallery_dirs": str(DOCS / "tutorials"),
    "filename_pattern": r"plot_",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "plot_gallery": os.environ.get("ASTROFLOW_GAL_DOCS_RUN_TUTORIALS", "True"),
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    "write_computation_times": True,
}

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"astroflow_gal {release}"
html_static_path = ["_static"] if (DOCS / "_static").is_dir() else []
html_show_sourcelink = False

# matplotlib without a display; torch on one thread keeps the tutorials' timings comparable
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")
# astropy writes a "Frame Attributes" section into the docstrings of coordinate frames (GalaxyFrame)
warnings.filterwarnings("ignore", message="Unknown section Frame Attributes")


def _observe_page(app, docname: str, source: list[str]) -> None:
    """The observe API page documents ``astroflow_gal.observe`` only when it can be imported."""
    if docname != "api/observe":
        return
    if importlib.util.find_spec("astroflow_gal.observe") is None:
        source[0] = (
            "# astroflow_gal.observe\n\nMock observations are not part of this build of the "
            "package.\n"
        )


def setup(app) -> None:
    app.connect("source-read", _observe_page)

"""Stars and galaxies before they meet the flow: schema, suites, synthetic truth, NIHAO reader.

Public names are imported on first use (``from astroflow_gal.data import schema`` stays light:
no torch, no h5py), so the layers above import only what they use.
"""

from __future__ import annotations

from .._lazy import lazy_exports

# public name -> submodule of this package that defines it
_EXPORTS: dict[str, str] = {
    "compute_conditions": "conditions",
    "Galaxy": "galaxy",
    "NonFiniteRowsWarning": "galaxy",
    "NihaoCuts": "nihao",
    "GalaxySuite": "suite",
    "SuiteFileError": "suite",
    "make_synthetic_suite": "suite",
    "read_nihao": "suite",
}

__all__ = ["schema", *sorted(_EXPORTS)]

# ``schema`` is a submodule: ``from astroflow_gal.data import schema`` imports it directly.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, also=("schema",))

"""astroflow_gal: learned extended distribution functions of galaxies (GalacticFlow).

The public objects are :class:`GalaxyModel` (sample, evaluate, save, load, fit) and
:class:`GalaxySuite` (sets of galaxies: synthetic with an exact eDF, NIHAO files, HDF5), and the
errors and warnings a user may want to catch. Every name is imported on first use, so that
``import astroflow_gal`` stays light; ``dir(astroflow_gal)`` lists them all.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

# public name -> module of this package that defines it
_EXPORTS: dict[str, str] = {
    "GalaxyModel": "model",
    "GalaxySuite": "data.suite",
    # errors and warnings a user may catch
    "ConditionRangeError": "inputs",
    "ExtrapolationWarning": "inputs",
    "FileFormatError": "io",
    "SuiteFileError": "data.suite",
    "NonFiniteRowsWarning": "data.galaxy",
    "CheckpointError": "training.checkpoint",
    "CheckpointWarning": "training.checkpoint",
    "TrainingDivergedError": "training.trainer",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name == "observe":  # sub-package of mock observations, imported on first use
        return importlib.import_module(".observe", __name__)
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'astroflow_gal' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    # the public names (lazy ones included) and the module's dunders, not its helpers
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})

"""astroflow_gal: learned extended distribution functions of galaxies (GalacticFlow).

The public objects are :class:`GalaxyModel` (sample, evaluate, save, load, fit) and
:class:`GalaxySuite` (sets of galaxies: synthetic with an exact eDF, NIHAO files, HDF5), and the
errors and warnings a user may want to catch. Every name is imported on first use, so that
``import astroflow_gal`` stays light; ``dir(astroflow_gal)`` lists them all.
"""

from __future__ import annotations

from ._lazy import lazy_exports
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


# imported on first use; dir() lists them (tab completion)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, also=["__version__"])

"""astroflow_gal: learned extended distribution functions of galaxies (GalacticFlow).

The public objects are :class:`GalaxyModel` (sample, evaluate, save, load, fit) and
:class:`GalaxySuite` (sets of galaxies: synthetic with an exact eDF, NIHAO files, HDF5).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["GalaxyModel", "GalaxySuite", "ExtrapolationWarning", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import astroflow_gal` stays light.
    if name == "GalaxyModel":
        from .model import GalaxyModel

        return GalaxyModel
    if name == "GalaxySuite":
        from .data.suite import GalaxySuite

        return GalaxySuite
    if name == "ExtrapolationWarning":
        from .inputs import ExtrapolationWarning

        return ExtrapolationWarning
    raise AttributeError(f"module 'astroflow_gal' has no attribute {name!r}")

"""Mock observations of learned galaxies.

A Milky-Way analogue seen from the Sun inside it (:func:`galactocentric`, :func:`survey`: a
Gaia-like catalogue with errors and selections) and an external galaxy seen from outside
(:func:`project`, :func:`ifu_maps`: integral-field maps). See ``docs/observe.md``.
"""

from __future__ import annotations

from .errors import NOISY_COLUMNS
from .external import ifu_maps, project, read_ifu_maps, write_ifu_maps
from .galactocentric import (
    galactocentric,
    galactocentric_frame,
    rotation_to_galactocentric,
    sun_in_galaxy_frame,
    to_galaxy_frame,
)
from .plot import plot_ifu_maps, plot_sky
from .selection import Selection
from .sun import ASTROPY_V4_0, SCHOENRICH_2010_PECULIAR, SunPosition, local_mean_rotation
from .survey import NO_PHOTOMETRY, read_catalogue, survey, write_catalogue

__all__ = [
    "ASTROPY_V4_0",
    "NOISY_COLUMNS",
    "NO_PHOTOMETRY",
    "SCHOENRICH_2010_PECULIAR",
    "Selection",
    "SunPosition",
    "galactocentric",
    "galactocentric_frame",
    "ifu_maps",
    "local_mean_rotation",
    "plot_ifu_maps",
    "plot_sky",
    "project",
    "read_ifu_maps",
    "read_catalogue",
    "rotation_to_galactocentric",
    "sun_in_galaxy_frame",
    "survey",
    "to_galaxy_frame",
    "write_catalogue",
    "write_ifu_maps",
]

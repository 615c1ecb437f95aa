"""Coordinate frame of a model galaxy, for astropy ``SkyCoord``.

The frame is centred on the galaxy, at rest with it, with the disc's angular momentum along +z.
Its parameters (which galaxy, which model, which conditions) are recorded with the coordinates,
as astropy's ``Galactocentric`` does for the Milky Way.
"""

from __future__ import annotations

import astropy.units as u
from astropy.coordinates import (
    Attribute,
    BaseCoordinateFrame,
    CartesianDifferential,
    CartesianRepresentation,
    SkyCoord,
)

from .data.columns import as_quantity

__all__ = ["GalaxyFrame", "stars_to_skycoord"]


class GalaxyFrame(BaseCoordinateFrame):
    """Cartesian rest frame of one model galaxy.

    Origin at the galaxy's centre, velocities in its rest frame, the disc's angular momentum
    along +z (so discs rotate counter-clockwise seen from +z).

    Frame attributes
    ----------------
    galaxy : str
        Which galaxy (a model and its conditions, or a suite galaxy id).
    """

    default_representation = CartesianRepresentation
    default_differential = CartesianDifferential
    galaxy = Attribute(default=None)


def stars_to_skycoord(stars, galaxy: str | None = None) -> SkyCoord:
    """Positions and velocities of a star table as a :class:`~astropy.coordinates.SkyCoord`.

    Parameters
    ----------
    stars : astropy.table.QTable or Table
        Columns ``x, y, z`` (length, e.g. kpc) and ``vx, vy, vz`` (velocity, e.g. km/s), as
        Quantities or as ``Table`` columns with a unit.
    galaxy : str, optional
        Recorded as the frame's ``galaxy`` attribute.

    Returns
    -------
    astropy.coordinates.SkyCoord
        In :class:`GalaxyFrame`, Cartesian representation and differential.
    """
    columns = {}
    for name, kind in (("x", u.kpc), ("y", u.kpc), ("z", u.kpc),
                       ("vx", u.km / u.s), ("vy", u.km / u.s), ("vz", u.km / u.s)):
        if name not in getattr(stars, "colnames", stars):
            raise KeyError(f"stars lack the column {name!r}")
        col = as_quantity(stars[name])  # QTable columns, or Table columns with a unit
        if not isinstance(col, u.Quantity) or not col.unit.is_equivalent(kind):
            raise u.UnitConversionError(
                f"column {name} must carry a unit compatible with {kind} (a QTable column, or a "
                "Table column with a unit)"
            )
        columns[name] = col
    return SkyCoord(
        x=columns["x"],
        y=columns["y"],
        z=columns["z"],
        v_x=columns["vx"],
        v_y=columns["vy"],
        v_z=columns["vz"],
        frame=GalaxyFrame(galaxy=galaxy),
        representation_type="cartesian",
        differential_type="cartesian",
    )

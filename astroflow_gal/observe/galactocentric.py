"""A learned galaxy as the Milky Way: its stars in astropy's ``Galactocentric`` frame.

The learned galaxy rotates about its +z axis (angular momentum along +z). In astropy's
``Galactocentric`` frame the Sun sits at ``x = -R``, moves towards +y, and the Milky Way's
angular momentum points along -z. The galaxy is therefore turned by a proper rotation
(determinant +1, never a mirror)::

    r_gc = G r_gal,   G = R_x(180 deg) R_z(180 deg - azimuth)

``R_z`` brings the Sun's azimuth to 180 deg (the -x axis); ``R_x(180 deg)`` turns the disc over,
flipping z and the angular momentum. The Sun's galaxy-frame place is therefore
``(R cos(azimuth), R sin(azimuth), -z_sun)``. Velocities turn with the same matrix.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import (
    CartesianDifferential,
    CartesianRepresentation,
    Galactocentric,
    SkyCoord,
)
from astropy.table import QTable

from ._checks import phase_space, quantity_record
from .sun import SunPosition

__all__ = [
    "galactocentric",
    "galactocentric_frame",
    "frame_record",
    "rotation_to_galactocentric",
    "sun_in_galaxy_frame",
    "to_galaxy_frame",
    "check_sun_inside",
]

#: Fraction of the stars (by cylindrical radius, and by height) inside which the Sun must sit.
EXTENT_QUANTILE = 0.99


def rotation_to_galactocentric(sun: SunPosition) -> np.ndarray:
    """The proper rotation G (3 x 3, det +1) taking galaxy-frame vectors to Galactocentric ones.

    Parameters
    ----------
    sun : SunPosition
        Only its azimuth [angle] enters.

    Returns
    -------
    numpy.ndarray
        ``r_gc = G @ r_gal`` for positions [any length unit] and velocities alike.
    """
    a = np.pi - sun.azimuth.to_value(u.rad)
    c, s = np.cos(a), np.sin(a)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    rx = np.diag([1.0, -1.0, -1.0])
    return rx @ rz


def galactocentric_frame(sun: SunPosition | None = None) -> Galactocentric:
    """astropy's ``Galactocentric`` frame with every parameter given explicitly by ``sun``.

    Parameters
    ----------
    sun : SunPosition, optional
        The Sun's place and velocity [default ``SunPosition()``, astropy's v4.0 values].

    Returns
    -------
    astropy.coordinates.Galactocentric
        ``galcen_coord``, ``galcen_distance = sqrt(R² + z²)`` [kpc], ``galcen_v_sun`` [km/s],
        ``z_sun`` [pc] and ``roll`` [deg] all set; nothing comes from astropy's global defaults.
    """
    sun = _as_sun(sun)
    return Galactocentric(
        galcen_coord=sun.galcen_coord,
        galcen_distance=sun.galcen_distance,
        galcen_v_sun=CartesianDifferential(sun.velocity),
        z_sun=sun.z,
        roll=sun.roll,
    )


def frame_record(frame: Galactocentric) -> dict[str, Any]:
    """Every parameter of a ``Galactocentric`` frame as JSON-friendly ``{"value", "unit"}``."""
    v = frame.galcen_v_sun
    v_xyz = v.d_xyz if hasattr(v, "d_xyz") else v.xyz
    return {
        "frame": "astropy.coordinates.Galactocentric",
        "galcen_ra": quantity_record(frame.galcen_coord.ra.to(u.deg)),
        "galcen_dec": quantity_record(frame.galcen_coord.dec.to(u.deg)),
        "galcen_distance": quantity_record(frame.galcen_distance.to(u.kpc)),
        "galcen_v_sun": quantity_record(v_xyz.to(u.km / u.s)),
        "z_sun": quantity_record(frame.z_sun.to(u.pc)),
        "roll": quantity_record(frame.roll.to(u.deg)),
    }


def sun_in_galaxy_frame(sun: SunPosition | None = None) -> tuple[u.Quantity, u.Quantity]:
    """The Sun's position [kpc] and velocity [km/s] in the learned galaxy's frame, each (3,).

    Parameters
    ----------
    sun : SunPosition, optional
        The Sun [default ``SunPosition()``].

    Returns
    -------
    position, velocity : astropy.units.Quantity
        ``(R cos(azimuth), R sin(azimuth), -z)`` [kpc] and ``G^T velocity`` [km/s].
    """
    sun = _as_sun(sun)
    g = rotation_to_galactocentric(sun)
    phi = sun.azimuth.to_value(u.rad)
    r = sun.R.to_value(u.kpc)
    position = np.array([r * np.cos(phi), r * np.sin(phi), -sun.z.to_value(u.kpc)])
    velocity = g.T @ sun.velocity.to_value(u.km / u.s)
    return position * u.kpc, velocity * (u.km / u.s)


def check_sun_inside(pos: np.ndarray, sun: SunPosition) -> None:
    """Raise when the Sun lies outside the galaxy: beyond 99% of the stars in R or in |z|.

    Parameters
    ----------
    pos : numpy.ndarray
        Star positions in the galaxy frame, shape (N, 3) [kpc].
    sun : SunPosition
        The Sun's place.
    """
    radius = np.hypot(pos[:, 0], pos[:, 1])
    r_max = float(np.quantile(radius, EXTENT_QUANTILE))
    if sun.R.to_value(u.kpc) > r_max:
        raise ValueError(
            f"sun: R = {sun.R:.4g} lies outside the galaxy's extent: {EXTENT_QUANTILE:.0%} of "
            f"the stars lie within R = {r_max:.4g} kpc; choose a smaller sun.R"
        )
    z_max = float(np.quantile(np.abs(pos[:, 2]), EXTENT_QUANTILE))
    if abs(sun.z.to_value(u.kpc)) > z_max:
        raise ValueError(
            f"sun: z = {sun.z:.4g} lies outside the galaxy's extent: {EXTENT_QUANTILE:.0%} of "
            f"the stars lie within |z| = {z_max:.4g} kpc; choose a smaller |sun.z|"
        )


def galactocentric(stars: Any, sun: SunPosition | None = None) -> SkyCoord:
    """The stars of a learned galaxy in astropy's ``Galactocentric`` frame, seen as the Milky Way.

    Parameters
    ----------
    stars : astropy.table.QTable
        Stars in the galaxy's frame: columns x, y, z [length] and vx, vy, vz [velocity] (a
        :meth:`astroflow_gal.GalaxyModel.sample` table, or any table with those columns).
    sun : SunPosition, optional
        The Sun's place and velocity and the frame's parameters [default ``SunPosition()``].

    Returns
    -------
    astropy.coordinates.SkyCoord
        Cartesian positions [kpc] and velocities [km/s] in a ``Galactocentric`` frame whose every
        parameter is explicit; ``coord.info.meta`` records them (``"frame"``), the Sun
        (``"sun"``), the rotation matrix (``"rotation"``) and the convention (``"convention"``).
        Transform it with ``coord.transform_to("icrs")`` or ``"galactic"``.

    Raises
    ------
    ValueError
        ``stars`` lacks columns or holds NaN/inf; the Sun lies outside the galaxy's extent.
    """
    sun = _as_sun(sun)
    pos, vel = phase_space(stars)
    check_sun_inside(pos, sun)
    frame = galactocentric_frame(sun)
    g = rotation_to_galactocentric(sun)
    p = pos @ g.T
    v = vel @ g.T
    rep = CartesianRepresentation(p.T * u.kpc).with_differentials(
        CartesianDifferential(v.T * (u.km / u.s))
    )
    coord = SkyCoord(frame.realize_frame(rep))
    coord.info.meta = {
        "frame": frame_record(frame),
        "sun": sun.record(),
        "rotation": g.tolist(),
        "convention": CONVENTION,
    }
    return coord


def to_galaxy_frame(coord: SkyCoord, sun: SunPosition | None = None) -> QTable:
    """Coordinates (any frame, with distances and velocities) back in the learned galaxy's frame.

    Parameters
    ----------
    coord : astropy.coordinates.SkyCoord
        Positions with distances and full velocities (proper motions and radial velocities).
    sun : SunPosition, optional
        The Sun used to place the galaxy [default ``SunPosition()``].

    Returns
    -------
    astropy.table.QTable
        Columns x, y, z [kpc] and vx, vy, vz [km/s] in the galaxy frame (the inverse of
        :func:`galactocentric`).
    """
    sun = _as_sun(sun)
    gc = coord.transform_to(galactocentric_frame(sun))
    p = gc.cartesian.xyz.to_value(u.kpc).T
    v = gc.velocity.d_xyz.to_value(u.km / u.s).T
    g = rotation_to_galactocentric(sun)
    p, v = p @ g, v @ g
    return QTable(
        {
            "x": p[:, 0] * u.kpc, "y": p[:, 1] * u.kpc, "z": p[:, 2] * u.kpc,
            "vx": v[:, 0] * u.km / u.s, "vy": v[:, 1] * u.km / u.s, "vz": v[:, 2] * u.km / u.s,
        }
    )


def _as_sun(sun: Any) -> SunPosition:
    if sun is None:
        return SunPosition()
    if not isinstance(sun, SunPosition):
        raise TypeError(f"sun must be a SunPosition, got {type(sun).__name__}")
    return sun


CONVENTION = (
    "galaxy frame (angular momentum along +z) turned by the proper rotation "
    "G = R_x(180 deg) R_z(180 deg - sun.azimuth) into astropy's Galactocentric frame "
    "(angular momentum along -z, Sun at x = -R moving towards +y); the Sun sits at galaxy-frame "
    "(R cos(azimuth), R sin(azimuth), -z_sun)"
)

"""Where the Sun sits in a Milky-Way analogue, and how it moves.

The Sun's place is given in the galaxy's own frame (cylindrical radius, azimuth, height); its
velocity and the rest of astropy's ``Galactocentric`` frame parameters are given in that frame's
conventions. Defaults are astropy's ``"v4.0"`` parameter set, written out here so that no result
depends on astropy's global, changeable defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS

from ._checks import phase_space, quantity, quantity_record

__all__ = [
    "SunPosition",
    "ASTROPY_V4_0",
    "SCHOENRICH_2010_PECULIAR",
    "local_mean_rotation",
]

#: astropy's ``Galactocentric`` "v4.0" parameters: the Galactic centre's ICRS position (Reid &
#: Brunthaler 2004), its distance 8.122 kpc (GRAVITY 2018), the Sun's height 20.8 pc above the plane
#: (Bennett & Bovy 2019), the Sun's velocity (12.9, 245.6, 7.78) km/s in the Galactocentric frame
#: (Drimmel & Poggio 2018; GRAVITY 2018; Reid & Brunthaler 2004), and roll 0 deg.
ASTROPY_V4_0: dict[str, Any] = {
    "galcen_ra": 266.4051 * u.deg,
    "galcen_dec": -28.936175 * u.deg,
    "galcen_distance": 8.122 * u.kpc,
    "z_sun": 20.8 * u.pc,
    "galcen_v_sun": [12.9, 245.6, 7.78] * u.km / u.s,
    "roll": 0.0 * u.deg,
}

#: The Sun's motion relative to the local standard of rest, (U, V, W) = (11.1, 12.24, 7.25) km/s
#: (Schönrich, Binney & Dehnen 2010), in the Galactocentric axes (towards the centre, along the
#: rotation, towards the north Galactic pole).
SCHOENRICH_2010_PECULIAR = [11.1, 12.24, 7.25] * u.km / u.s


def _default_velocity() -> u.Quantity:
    return ASTROPY_V4_0["galcen_v_sun"].copy()


def _default_galcen_coord() -> ICRS:
    return ICRS(ra=ASTROPY_V4_0["galcen_ra"], dec=ASTROPY_V4_0["galcen_dec"])


@dataclass(frozen=True)
class SunPosition:
    """The observer of a Milky-Way analogue: the Sun's place, its velocity, the frame's angles.

    Parameters
    ----------
    R : astropy.units.Quantity
        The Sun's cylindrical radius in the galaxy's midplane [length; default 8.122 kpc].
    z : astropy.units.Quantity
        The Sun's height above the midplane towards the north Galactic pole [length; default
        20.8 pc]. The Milky Way's angular momentum points to the *south* Galactic pole, so the
        learned galaxy's +z (its angular momentum) plays the south: the Sun sits at galaxy-frame
        height ``-z``.
    azimuth : astropy.units.Quantity
        The Sun's azimuth in the galaxy's frame [angle; default 0 deg], from the galaxy's +x axis
        towards +y (the sense of rotation). The galaxy frame of a model sample is axisymmetric
        on average, so this only chooses which stars lie near the Sun.
    velocity : astropy.units.Quantity
        The Sun's velocity relative to the galaxy's centre, shape (3,), in astropy's
        Galactocentric axes: towards the centre, along the rotation, towards the north Galactic
        pole [velocity; default (12.9, 245.6, 7.78) km/s, astropy v4.0]. A Milky-Way analogue
        rotates at its own speed: :meth:`co_rotating` sets the rotation part from the analogue.
    galcen_coord : astropy.coordinates.ICRS
        ICRS direction of the galaxy's centre as seen from the Sun [default RA 266.4051 deg,
        Dec -28.936175 deg].
    roll : astropy.units.Quantity
        Rotation of the Galactocentric frame about its x axis [angle; default 0 deg].

    Notes
    -----
    All defaults are astropy's ``"v4.0"`` Galactocentric parameters (see :data:`ASTROPY_V4_0`),
    written out here; every one is passed explicitly to :class:`astropy.coordinates.Galactocentric`
    and recorded in the output's metadata.
    """

    R: u.Quantity = field(default_factory=lambda: ASTROPY_V4_0["galcen_distance"].copy())
    z: u.Quantity = field(default_factory=lambda: ASTROPY_V4_0["z_sun"].copy())
    azimuth: u.Quantity = field(default_factory=lambda: 0.0 * u.deg)
    velocity: u.Quantity = field(default_factory=_default_velocity)
    galcen_coord: ICRS = field(default_factory=_default_galcen_coord)
    roll: u.Quantity = field(default_factory=lambda: ASTROPY_V4_0["roll"].copy())

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "R", quantity("sun.R", self.R, u.kpc, positive=True))
        set_(self, "z", quantity("sun.z", self.z, u.pc))
        set_(self, "azimuth", quantity("sun.azimuth", self.azimuth, u.deg))
        set_(self, "velocity", quantity("sun.velocity", self.velocity, u.km / u.s, shape=(3,)))
        set_(self, "roll", quantity("sun.roll", self.roll, u.deg))
        coord = self.galcen_coord
        if not isinstance(coord, ICRS):
            try:
                coord = coord.transform_to(ICRS())
                coord = ICRS(ra=coord.ra, dec=coord.dec)
            except AttributeError as err:
                raise TypeError(
                    f"sun.galcen_coord must be an astropy ICRS coordinate, got {coord!r}"
                ) from err
        set_(self, "galcen_coord", ICRS(ra=coord.ra.to(u.deg), dec=coord.dec.to(u.deg)))
        if abs(self.z) >= self.R:
            raise ValueError(f"sun.z ({self.z}) must be smaller than sun.R ({self.R})")

    @property
    def galcen_distance(self) -> u.Quantity:
        """Distance from the Sun to the galaxy's centre, ``sqrt(R² + z²)`` [kpc]."""
        return np.hypot(self.R, self.z.to(u.kpc))

    def record(self) -> dict[str, Any]:
        """The Sun's parameters as JSON-friendly ``{"value", "unit"}`` records."""
        return {
            "R": quantity_record(self.R),
            "z": quantity_record(self.z),
            "azimuth": quantity_record(self.azimuth),
            "velocity": quantity_record(self.velocity),
            "galcen_ra": quantity_record(self.galcen_coord.ra.to(u.deg)),
            "galcen_dec": quantity_record(self.galcen_coord.dec.to(u.deg)),
            "roll": quantity_record(self.roll),
        }

    @classmethod
    def co_rotating(
        cls,
        stars: Any,
        R: Any = ASTROPY_V4_0["galcen_distance"],
        z: Any = ASTROPY_V4_0["z_sun"],
        azimuth: Any = 0.0 * u.deg,
        peculiar: Any = SCHOENRICH_2010_PECULIAR,
        **kwargs: Any,
    ) -> SunPosition:
        """A Sun moving with the analogue's own local rotation plus a peculiar motion.

        The rotation part is the mean azimuthal velocity of the analogue's stars near the Sun's
        radius and the midplane (:func:`local_mean_rotation`); the peculiar motion is added in
        astropy's Galactocentric axes.

        Parameters
        ----------
        stars : astropy.table.QTable
            The analogue's stars (columns x, y, z [length], vx, vy, vz [velocity]).
        R, z, azimuth : astropy.units.Quantity
            The Sun's place, as for :class:`SunPosition` [length, length, angle].
        peculiar : astropy.units.Quantity
            The Sun's velocity relative to the local rotation, shape (3,) [velocity; default
            Schönrich et al. 2010, (11.1, 12.24, 7.25) km/s].
        **kwargs
            ``galcen_coord`` and ``roll``, as for :class:`SunPosition`.

        Returns
        -------
        SunPosition

        Notes
        -----
        The mean stellar rotation lags the circular speed by the asymmetric drift (a few to tens
        of km/s for warm discs), so this Sun moves a little slower than a Sun on a circular orbit
        plus its peculiar motion.
        """
        peculiar = quantity("peculiar", peculiar, u.km / u.s, shape=(3,))
        v_rot = local_mean_rotation(stars, R)
        velocity = peculiar + u.Quantity([0.0, v_rot.to_value(u.km / u.s), 0.0], u.km / u.s)
        return cls(R=R, z=z, azimuth=azimuth, velocity=velocity, **kwargs)


def local_mean_rotation(
    stars: Any,
    R: Any,
    dR: Any = 0.5 * u.kpc,
    max_abs_z: Any = 0.5 * u.kpc,
    min_stars: int = 20,
) -> u.Quantity:
    """Mean azimuthal velocity of the stars in an annulus of the midplane [km/s].

    Parameters
    ----------
    stars : astropy.table.QTable
        Stars in the galaxy frame (columns x, y, z [length], vx, vy, vz [velocity]).
    R : astropy.units.Quantity
        Centre of the annulus [length].
    dR : astropy.units.Quantity
        Half-width of the annulus [length; default 0.5 kpc].
    max_abs_z : astropy.units.Quantity
        Largest height above or below the midplane [length; default 0.5 kpc].
    min_stars : int
        Fewest stars the annulus must hold.

    Returns
    -------
    astropy.units.Quantity
        Mean v_phi [km/s], positive for stars rotating with the galaxy (about +z).
    """
    pos, vel = phase_space(stars)
    R = quantity("R", R, u.kpc, positive=True).value
    dR = quantity("dR", dR, u.kpc, positive=True).value
    max_abs_z = quantity("max_abs_z", max_abs_z, u.kpc, positive=True).value
    radius = np.hypot(pos[:, 0], pos[:, 1])
    near = (np.abs(radius - R) < dR) & (np.abs(pos[:, 2]) < max_abs_z)
    if near.sum() < min_stars:
        raise ValueError(
            f"only {int(near.sum())} stars lie within {dR:g} kpc of R = {R:g} kpc and "
            f"{max_abs_z:g} kpc of the midplane (need {min_stars}); widen dR or max_abs_z"
        )
    r = radius[near]
    v_phi = (pos[near, 0] * vel[near, 1] - pos[near, 1] * vel[near, 0]) / r
    return float(np.mean(v_phi)) * u.km / u.s

"""The single source of truth for star columns, galaxy conditions, their units and transforms.

Every other module takes column names, units, plot labels and default flow-space transforms from
here; nothing else spells a unit or a column list by hand.

Star columns (per star) and conditions (per galaxy):

========  =====================================================  ===========  ====================
name      meaning                                                unit         flow-space transform
========  =====================================================  ===========  ====================
x, y, z   position; galaxy centre at the origin, disc spin +z    kpc          standardise
vx,vy,vz  velocity in the galaxy's rest frame                    km / s       standardise
Z         total metal mass fraction                              1            log10, standardise
feh       [Fe/H]                                                 dex          standardise
ofe       [O/Fe]                                                 dex          standardise
age       stellar age                                            Gyr          logit, standardise
M_stars   total stellar mass                                     Msun         log10, standardise
tau50     median stellar age                                     Gyr          standardise
tau10     10th percentile of the stellar ages                    Gyr          standardise
Z_av      mean metal mass fraction of the stars                  1            standardise
========  =====================================================  ===========  ====================

Every column declares its support (``Column.support``, schema units, ``None`` for an open end):
``Z > 0`` and ``0 < age < T_UNIVERSE_GYR`` for stars; ``M_stars > 0``, ``Z_av > 0`` and
``0 <= tau10 <= tau50 <= T_UNIVERSE_GYR`` for conditions. Star columns with a bounded support are
mapped onto the real line by a bijection (log10 for ``Z``, a logit for ``age``), so that a model
never puts stars outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u

__all__ = [
    "Column",
    "STAR_COLUMNS",
    "CONDITION_COLUMNS",
    "STAR_NAMES",
    "CONDITION_NAMES",
    "POSITION_NAMES",
    "VELOCITY_NAMES",
    "PHASE_SPACE_NAMES",
    "EDF_UNIT",
    "SOLAR_Z",
    "T_UNIVERSE_GYR",
    "star_column",
    "condition_column",
    "column",
    "edf_unit",
]

TRANSFORMS = ("standardise", "log10", "logit")

T_UNIVERSE_GYR = 13.8
"""Age of the Universe in Gyr: the upper end of the age support and of ``tau10``, ``tau50``."""


@dataclass(frozen=True)
class Column:
    """One named quantity of the schema.

    Attributes
    ----------
    name : str
        Column name in tables and files.
    unit : astropy.units.UnitBase
        Physical unit of the column.
    label : str
        LaTeX label for plots (with the unit).
    transform : str
        Default transform before standardisation: ``"standardise"`` (none), ``"log10"`` (support
        ``(0, inf)``) or ``"logit"`` (a bounded support ``(lower, upper)``).
    description : str
        What the column holds.
    support : tuple of (float or None, float or None)
        Open interval ``(lower, upper)`` of physically possible values in the column's unit;
        ``None`` for an unbounded end.
    """

    name: str
    unit: u.UnitBase
    label: str
    transform: str
    description: str
    support: tuple[float | None, float | None] = (None, None)


_kms = u.km / u.s

STAR_COLUMNS: tuple[Column, ...] = (
    Column("x", u.kpc, r"$x$ [kpc]", "standardise", "position along the disc major axis"),
    Column("y", u.kpc, r"$y$ [kpc]", "standardise", "position in the disc plane"),
    Column("z", u.kpc, r"$z$ [kpc]", "standardise", "height above the disc plane"),
    Column("vx", _kms, r"$v_x$ [km/s]", "standardise", "velocity along x, galaxy rest frame"),
    Column("vy", _kms, r"$v_y$ [km/s]", "standardise", "velocity along y, galaxy rest frame"),
    Column("vz", _kms, r"$v_z$ [km/s]", "standardise", "velocity along z, galaxy rest frame"),
    Column("Z", u.dimensionless_unscaled, r"$Z$", "log10", "total metal mass fraction",
           (0.0, None)),
    Column("feh", u.dex, r"[Fe/H] [dex]", "standardise", "iron abundance [Fe/H]"),
    Column("ofe", u.dex, r"[O/Fe] [dex]", "standardise", "oxygen-to-iron abundance [O/Fe]"),
    Column("age", u.Gyr, r"age [Gyr]", "logit", "stellar age", (0.0, T_UNIVERSE_GYR)),
)

CONDITION_COLUMNS: tuple[Column, ...] = (
    Column("M_stars", u.Msun, r"$M_\star$ [M$_\odot$]", "log10", "total stellar mass", (0.0, None)),
    Column("tau50", u.Gyr, r"$\tau_{50}$ [Gyr]", "standardise", "median stellar age",
           (0.0, T_UNIVERSE_GYR)),
    Column("tau10", u.Gyr, r"$\tau_{10}$ [Gyr]", "standardise", "10th percentile of stellar age",
           (0.0, T_UNIVERSE_GYR)),
    Column("Z_av", u.dimensionless_unscaled, r"$\bar Z$", "standardise", "mean Z of the stars",
           (0.0, None)),
)

STAR_NAMES: tuple[str, ...] = tuple(c.name for c in STAR_COLUMNS)
CONDITION_NAMES: tuple[str, ...] = tuple(c.name for c in CONDITION_COLUMNS)
POSITION_NAMES: tuple[str, ...] = ("x", "y", "z")
VELOCITY_NAMES: tuple[str, ...] = ("vx", "vy", "vz")
PHASE_SPACE_NAMES: tuple[str, ...] = POSITION_NAMES + VELOCITY_NAMES

SOLAR_Z: float = 0.0134
"""Solar metal mass fraction Z_sun (Asplund et al. 2009): [M/H] = log10(Z / Z_sun)."""

_BY_NAME = {c.name: c for c in STAR_COLUMNS + CONDITION_COLUMNS}


def column(name: str) -> Column:
    """The schema entry of a star column or condition, by name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown column {name!r}; star columns are {STAR_NAMES}, "
            f"conditions are {CONDITION_NAMES}"
        ) from None


def star_column(name: str) -> Column:
    """The schema entry of a star column, by name."""
    if name not in STAR_NAMES:
        raise KeyError(f"unknown star column {name!r}; star columns are {STAR_NAMES}")
    return _BY_NAME[name]


def condition_column(name: str) -> Column:
    """The schema entry of a galaxy condition, by name."""
    if name not in CONDITION_NAMES:
        raise KeyError(f"unknown condition {name!r}; conditions are {CONDITION_NAMES}")
    return _BY_NAME[name]


def edf_unit(names: tuple[str, ...] | list[str] = STAR_NAMES) -> u.UnitBase:
    """Unit of a probability density over the given star columns (the inverse of their product).

    Parameters
    ----------
    names : sequence of str
        Star columns the density is over.

    Returns
    -------
    astropy.units.UnitBase
        E.g. ``1 / (kpc3 (km/s)3 dex2 Gyr)`` for all ten star columns.
    """
    unit = u.dimensionless_unscaled
    for name in names:
        unit = unit * star_column(name).unit
    return 1 / unit


EDF_UNIT: u.UnitBase = edf_unit()

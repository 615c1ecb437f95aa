"""One galaxy: its stars in schema units, its conditions, optional particle masses and metadata.

:class:`Galaxy` checks what it is given before it is kept: the schema's star columns (any
compatible units, read with :func:`astroflow_gal.data.columns.schema_values`), no NaN or inf, one
scalar per condition. Sources of galaxies (the synthetic model, the NIHAO reader, suite files) build
``Galaxy`` objects; :class:`~astroflow_gal.data.suite.GalaxySuite` holds them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .columns import schema_values
from .schema import CONDITION_NAMES, STAR_NAMES, condition_column, star_column

__all__ = ["Galaxy", "NonFiniteRowsWarning", "nonfinite_rows"]


class NonFiniteRowsWarning(UserWarning):
    """Star rows holding NaN or inf were dropped."""


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _to_schema_array(values: Any, name: str, what: str) -> np.ndarray:
    """A column in float64 schema units, contiguous (see :func:`~.columns.schema_values`)."""
    return np.ascontiguousarray(schema_values(values, name, what))


def nonfinite_rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean mask of rows where any of the arrays is NaN or inf.

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        1-D arrays of equal length (columns in any unit).

    Returns
    -------
    numpy.ndarray
        bool, True where a row holds NaN or inf in any array.
    """
    if not arrays:
        return np.zeros(0, dtype=bool)
    bad = np.zeros(arrays[0].shape[0], dtype=bool)
    for arr in arrays:
        bad |= ~np.isfinite(arr)
    return bad


def _star_table(stars: Any, what: str) -> QTable:
    """A QTable with exactly the schema star columns, float64, in schema units."""
    if not hasattr(stars, "keys") and not hasattr(stars, "colnames"):
        raise TypeError(f"{what}: stars must be an astropy QTable or a mapping of columns")
    names = list(stars.colnames) if hasattr(stars, "colnames") else list(stars.keys())
    missing = [n for n in STAR_NAMES if n not in names]
    if missing:
        raise KeyError(f"{what}: stars lack the schema column(s) {missing}")
    extra = [n for n in names if n not in STAR_NAMES]
    if extra:
        raise KeyError(
            f"{what}: stars hold column(s) {extra} that are not schema star columns "
            f"{STAR_NAMES} (per-star masses go to Galaxy.masses)"
        )
    arrays = {n: _to_schema_array(stars[n], n, what) for n in STAR_NAMES}
    lengths = {a.shape for a in arrays.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"{what}: star columns must be 1-D and of equal length, got {lengths}")
    bad = nonfinite_rows(list(arrays.values()))
    if bad.any():
        raise ValueError(
            f"{what}: {int(bad.sum())} star row(s) hold NaN or inf; drop them first"
        )
    return QTable({n: arrays[n] * star_column(n).unit for n in STAR_NAMES})


def _condition_dict(conditions: Mapping[str, Any], what: str) -> dict[str, u.Quantity]:
    """Scalar Quantities in schema units, in schema order, for known condition names."""
    if not isinstance(conditions, Mapping):
        raise TypeError(f"{what}: conditions must be a mapping name -> Quantity")
    unknown = [k for k in conditions if k not in CONDITION_NAMES]
    if unknown:
        raise KeyError(f"{what}: unknown condition(s) {unknown}; known: {CONDITION_NAMES}")
    if not conditions:
        raise ValueError(f"{what}: no conditions given")
    out: dict[str, u.Quantity] = {}
    for name in CONDITION_NAMES:
        if name not in conditions:
            continue
        arr = _to_schema_array(conditions[name], name, what)
        if arr.size != 1:
            raise ValueError(f"{what}: condition {name!r} must be a scalar, got shape {arr.shape}")
        value = float(arr.reshape(()))
        if not math.isfinite(value):
            raise ValueError(f"{what}: condition {name!r} is {value}")
        out[name] = value * condition_column(name).unit
    return out


# --------------------------------------------------------------------------------------------
# Galaxy
# --------------------------------------------------------------------------------------------


@dataclass
class Galaxy:
    """One galaxy: its stars in schema units and its conditions.

    Parameters
    ----------
    id : str
        Galaxy identifier (a string, unique within a suite).
    stars : astropy.table.QTable
        The schema star columns ``x, y, z`` [kpc], ``vx, vy, vz`` [km/s], ``Z`` [1], ``feh``,
        ``ofe`` [dex], ``age`` [Gyr]; any compatible units are converted, plain numbers are
        taken to be in schema units. Stored as float64. Rows with NaN or inf are refused.
    conditions : dict of str to Quantity
        Scalar conditions ``M_stars`` [Msun], ``tau50``, ``tau10`` [Gyr], ``Z_av`` [1] (a subset
        of the schema's conditions is allowed; all galaxies of a suite share the same set).
    meta : dict, optional
        Free-form JSON-serialisable information (e.g. file name, dark-matter mass, cuts applied).
    masses : Quantity, optional
        Per-star particle masses [Msun], same length as ``stars``; not part of the eDF.
    """

    id: str
    stars: QTable
    conditions: dict[str, u.Quantity]
    meta: dict = field(default_factory=dict)
    masses: u.Quantity | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise TypeError(f"galaxy id must be a non-empty string, got {self.id!r}")
        what = f"galaxy {self.id!r}"
        self.stars = _star_table(self.stars, what)
        self.conditions = _condition_dict(self.conditions, what)
        self.meta = dict(self.meta or {})
        if self.masses is not None:
            m = u.Quantity(self.masses)
            if m.unit == u.dimensionless_unscaled and not isinstance(self.masses, u.Quantity):
                m = m.value * u.Msun
            try:
                m = m.to(u.Msun)
            except u.UnitConversionError:
                raise u.UnitConversionError(
                    f"{what}: masses have unit {m.unit.to_string()!r}, not a mass"
                ) from None
            m = np.ascontiguousarray(m.value, dtype=np.float64).reshape(-1) * u.Msun
            if m.shape != (len(self.stars),):
                raise ValueError(
                    f"{what}: {m.size} masses for {len(self.stars)} stars"
                )
            if not np.all(np.isfinite(m.value)):
                raise ValueError(f"{what}: masses hold NaN or inf")
            self.masses = m

    @property
    def n_stars(self) -> int:
        """Number of stars."""
        return len(self.stars)

    def condition_values(self, names: Sequence[str] = CONDITION_NAMES) -> np.ndarray:
        """The conditions as float64 in schema units, in the order of ``names``."""
        missing = [n for n in names if n not in self.conditions]
        if missing:
            raise KeyError(f"galaxy {self.id!r} has no condition(s) {missing}")
        return np.array(
            [self.conditions[n].to_value(condition_column(n).unit) for n in names],
            dtype=np.float64,
        )

    def __repr__(self) -> str:
        conds = ", ".join(f"{k}={v:.4g}" for k, v in self.conditions.items())
        return f"Galaxy(id={self.id!r}, n_stars={self.n_stars}, {conds})"



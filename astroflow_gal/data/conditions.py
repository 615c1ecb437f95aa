"""The galaxy conditions of the paper, computed from a galaxy's stars.

``M_stars`` is the sum of the star-particle masses (or a given total), ``tau50`` the median stellar
age, ``tau10`` the 10th percentile of the stellar ages (``numpy.percentile``, linear
interpolation), ``Z_av`` the unweighted mean metal mass fraction of the stars.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import astropy.units as u
import numpy as np

from .columns import as_quantity, schema_values
from .schema import CONDITION_NAMES, condition_column

__all__ = ["compute_conditions"]


def _column_values(stars: Any, name: str) -> np.ndarray:
    try:
        values = stars[name]
    except (KeyError, ValueError):
        raise KeyError(f"stars lack the column {name!r} needed for the conditions") from None
    arr = schema_values(values, name, "star column")
    if arr.ndim != 1:
        raise ValueError(f"star column {name!r} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("cannot compute conditions of a galaxy without stars")
    n_bad = int((~np.isfinite(arr)).sum())
    if n_bad:
        raise ValueError(f"star column {name!r} holds {n_bad} NaN or inf value(s)")
    return arr


def _as_mass(value: Any, what: str) -> u.Quantity:
    q = as_quantity(value)
    if not isinstance(q, u.Quantity):
        q = np.asarray(q, dtype=np.float64) * u.Msun
    try:
        return q.to(u.Msun)
    except u.UnitConversionError:
        raise u.UnitConversionError(
            f"{what} has unit {q.unit.to_string()!r}, which is not a mass"
        ) from None


def compute_conditions(
    stars: Any,
    masses: u.Quantity | None = None,
    total_mass: u.Quantity | None = None,
) -> dict[str, u.Quantity]:
    """The four galaxy conditions of the paper from a galaxy's stars.

    Parameters
    ----------
    stars : astropy Table, QTable or mapping of columns
        Needs the columns ``age`` [Gyr-compatible] and ``Z`` [dimensionless]; columns with a unit
        (Quantities, or ``Table`` columns with a ``unit``) are converted, plain numbers are taken
        to be in the schema's units.
    masses : Quantity, optional
        Per-star particle masses [Msun-compatible], one per star; ``M_stars`` is their sum.
    total_mass : Quantity, optional
        Total stellar mass [Msun-compatible]; used for ``M_stars`` instead of ``masses`` when given.

    Returns
    -------
    dict of str to Quantity
        ``M_stars`` [Msun], ``tau50`` [Gyr] (median age), ``tau10`` [Gyr] (10th percentile of
        age), ``Z_av`` [dimensionless] (unweighted mean Z), in the schema's order.

    Raises
    ------
    ValueError
        No stars, NaN/inf in ages, Z or masses, negative masses, or neither ``masses`` nor
        ``total_mass`` given.
    astropy.units.UnitConversionError
        A column or mass in an incompatible unit.
    """
    if not isinstance(stars, Mapping) and not hasattr(stars, "colnames"):
        raise TypeError("stars must be a QTable or a mapping of columns")
    age = _column_values(stars, "age")
    metal = _column_values(stars, "Z")
    if total_mass is not None:
        m_total = _as_mass(total_mass, "total_mass")
        if m_total.size != 1:
            raise ValueError(f"total_mass must be a scalar, got shape {m_total.shape}")
        m_value = float(m_total.value.reshape(()))
    elif masses is not None:
        m = _as_mass(masses, "masses").value.reshape(-1)
        if m.shape != age.shape:
            raise ValueError(f"{m.size} masses for {age.size} stars")
        if not np.all(np.isfinite(m)):
            raise ValueError("masses hold NaN or inf")
        if np.any(m < 0):
            raise ValueError("masses must not be negative")
        m_value = float(np.sum(m))
    else:
        raise ValueError("give the per-star masses or the total stellar mass (total_mass)")
    if not np.isfinite(m_value) or m_value <= 0:
        raise ValueError(f"the total stellar mass must be positive and finite, got {m_value} Msun")
    values = {
        "M_stars": m_value,
        "tau50": float(np.median(age)),
        "tau10": float(np.percentile(age, 10.0)),
        "Z_av": float(np.mean(metal)),
    }
    return {name: values[name] * condition_column(name).unit for name in CONDITION_NAMES}

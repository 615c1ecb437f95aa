"""Checks of the arguments of the mock-observation functions, done before any work starts."""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np

from ..data._checks import in_unit
from ..inputs import stars_to_array

PHASE_SPACE = ("x", "y", "z", "vx", "vy", "vz")
LABELS = ("Z", "feh", "ofe", "age")


def quantity(
    name: str,
    value: Any,
    unit: u.UnitBase,
    *,
    positive: bool = False,
    non_negative: bool = False,
    shape: tuple[int, ...] | None = (),
) -> u.Quantity:
    """``value`` as a finite Quantity in ``unit``; errors name the argument ``name``.

    Plain numbers are read in ``unit``. ``shape=None`` accepts any shape.
    """
    if isinstance(value, u.Quantity):
        q = in_unit(value, unit, name)
    else:
        try:
            q = u.Quantity(np.asarray(value, dtype=np.float64), unit)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a number (in {unit}), got {value!r}") from err
    q = q.astype(np.float64, copy=False)
    if shape is not None and q.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {q.shape}")
    if not np.all(np.isfinite(q.value)):
        raise ValueError(f"{name} must be finite, got {q}")
    if positive and np.any(q.value <= 0):
        raise ValueError(f"{name} must be positive, got {q}")
    if non_negative and np.any(q.value < 0):
        raise ValueError(f"{name} must not be negative, got {q}")
    return q


def phase_space(stars: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions [kpc] and velocities [km/s] of ``stars``, each of shape (N, 3).

    Raises
    ------
    ValueError
        ``stars`` lacks a column, holds NaN/inf, or is empty.
    """
    if not hasattr(stars, "colnames") and not isinstance(stars, dict):
        raise TypeError(
            f"stars must be a table with columns {list(PHASE_SPACE)}, got {type(stars).__name__}"
        )
    try:
        arr = stars_to_array(stars, PHASE_SPACE)
    except ValueError as err:
        raise ValueError(f"stars: {err}") from err
    if len(arr) == 0:
        raise ValueError("stars is an empty table")
    return arr[:, :3], arr[:, 3:]


def labels(stars: Any) -> dict[str, np.ndarray]:
    """The stellar labels (Z, [Fe/H], [O/Fe], age) ``stars`` carries, in schema units."""
    names = [n for n in LABELS if n in stars.colnames]
    if not names:
        return {}
    try:
        arr = stars_to_array(stars, names)
    except ValueError as err:
        raise ValueError(f"stars: {err}") from err
    return {n: arr[:, i] for i, n in enumerate(names)}


def quantity_record(q: u.Quantity) -> dict[str, Any]:
    """A Quantity as ``{"value": float or list, "unit": str}`` (JSON- and FITS-friendly)."""
    value = q.value.tolist() if np.ndim(q.value) else float(q.value)
    return {"value": value, "unit": q.unit.to_string()}

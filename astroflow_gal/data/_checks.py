"""Checks of user input shared across the package, done before any work starts.

A Quantity converted to a unit with an error that names the argument (:func:`in_unit`), an
``(N, k)`` array of points checked for shape and finiteness (:func:`points`) and an integer
argument with a lower bound (:func:`integer`). Used by ``data.synthetic_moments``, ``analysis``
and ``observe``.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np

__all__ = ["in_unit", "integer", "points"]


def in_unit(value: u.Quantity, unit: u.UnitBase, name: str) -> u.Quantity:
    """``value`` converted to ``unit``; a wrong unit raises an error that names ``name``.

    Parameters
    ----------
    value : Quantity
        The value, in any unit convertible to ``unit``.
    unit : astropy.units.UnitBase
        The unit to convert to.
    name : str
        The argument's name, for the message.

    Returns
    -------
    Quantity
        ``value`` in ``unit``.

    Raises
    ------
    astropy.units.UnitConversionError
        ``value``'s unit does not convert to ``unit``.
    """
    try:
        return value.to(unit)
    except u.UnitConversionError as err:
        raise u.UnitConversionError(
            f"{name} must be in a unit compatible with {unit.to_string() or 'dimensionless'}, "
            f"got {value.unit}"
        ) from err


def points(
    values: Any,
    unit: u.UnitBase,
    name: str,
    ncol: int = 3,
    *,
    single: bool = True,
    empty: bool = True,
) -> np.ndarray:
    """``values`` as a finite float64 array of shape (N, ``ncol``) in ``unit``.

    Parameters
    ----------
    values : Quantity or array-like
        The points: a Quantity in a unit convertible to ``unit``, or plain numbers in ``unit``
        (positions in kpc, velocities in km/s, ...).
    unit : astropy.units.UnitBase
        The unit of the result.
    name : str
        The argument's name, for the messages.
    ncol : int
        Columns per point.
    single : bool
        Accept one point of shape (``ncol``,) as (1, ``ncol``).
    empty : bool
        Accept zero points.

    Returns
    -------
    numpy.ndarray
        Float64 array (N, ``ncol``) in ``unit``.

    Raises
    ------
    astropy.units.UnitConversionError
        A Quantity in a unit that does not convert to ``unit``.
    ValueError
        Not numbers, a wrong shape, no points (where ``empty`` is False), NaN or inf.
    """
    if isinstance(values, u.Quantity):
        values = in_unit(values, unit, name).value
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric (N, {ncol}) {unit}, got {values!r}") from err
    if single and arr.shape == (ncol,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != ncol or (not empty and arr.shape[0] == 0):
        raise ValueError(f"{name} must have shape (N, {ncol}) (in {unit}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def integer(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int, checked to be an integer (not a bool) of at least ``minimum``.

    Parameters
    ----------
    value : int
        The value (a Python or numpy integer), dimensionless: a count, a seed, a size.
    name : str
        The argument's name, for the message.
    minimum : int
        The smallest value accepted.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``value`` is a bool, not an integer, or below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or (
        value < minimum
    ):
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)

"""The one converter of star columns and conditions into float64 numbers in schema units.

Every reader of user columns in the package (the model's inputs, the synthetic truth, the
condition calculator, galaxies and suites) goes through :func:`schema_values`, so that a column
is read the same way wherever it enters:

- an astropy ``Quantity`` (a ``QTable`` column) is converted to the schema unit;
- a column of a plain astropy ``Table`` (a ``Column`` with a ``unit`` attribute) is read in its
  unit, exactly like the Quantity it stands for (a column in pc is read as pc, ages in Myr as
  Myr);
- plain numbers (numpy arrays, lists, columns without a unit) are taken to be in schema units;
- abundances in dex (``feh``, ``ofe``) accept only dex: ``u.dex`` Quantities and ``u.Dex``
  logarithmic quantities. Magnitudes are refused although astropy converts them (by -2.5).
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np

from .schema import column

__all__ = ["as_quantity", "schema_values", "table_columns"]


def as_quantity(values: Any) -> u.Quantity | np.ndarray:
    """A column as a Quantity if it carries a unit, else as a plain numpy array.

    Parameters
    ----------
    values : Quantity, astropy Column, array-like or number
        A column of a ``QTable`` or ``Table``, or plain numbers (no unit).

    Returns
    -------
    astropy.units.Quantity or numpy.ndarray
        ``values`` itself for a Quantity; a Quantity in the column's unit for a ``Table`` column
        with a unit (masked entries become NaN); otherwise the numbers as an array.
    """
    if isinstance(values, u.Quantity):
        return values
    unit = getattr(values, "unit", None)
    if unit is not None:
        data = values.filled(np.nan) if hasattr(values, "filled") else values
        return u.Quantity(np.asarray(data, dtype=np.float64), u.Unit(unit), copy=False)
    if hasattr(values, "filled"):  # masked column without a unit
        return np.asarray(values.filled(np.nan))
    return np.asarray(values)


def _is_dex(unit: u.UnitBase) -> bool:
    # u.dex itself, or the unit of a u.Dex logarithmic quantity of a dimensionless ratio
    if unit == u.dex:
        return True
    return isinstance(unit, u.DexUnit) and unit.physical_unit == u.dimensionless_unscaled


def schema_values(values: Any, name: str, what: str = "") -> np.ndarray:
    """Convert a column or value to float64 in the schema unit of ``name``.

    Parameters
    ----------
    values : Quantity, astropy Column, array-like or number
        The column or value. Quantities and ``Table`` columns with a unit are converted from their
        unit; plain numbers are taken to be in the schema unit of ``name`` (kpc, km/s,
        dimensionless Z, dex, Gyr for stars; Msun, Gyr, Gyr, dimensionless for conditions).
    name : str
        Schema name of the column or condition.
    what : str, optional
        Where the column comes from, put in front of error messages (e.g. ``"galaxy 'g1'"``).

    Returns
    -------
    numpy.ndarray
        float64 values in the schema unit, of the input's shape. NaN and inf are passed through:
        callers decide whether to refuse or drop them.

    Raises
    ------
    astropy.units.UnitConversionError
        If the unit cannot be converted to the schema unit, or an abundance in dex is given in
        another logarithmic unit (e.g. magnitudes).
    TypeError
        If the values are not numeric.
    """
    target = column(name).unit
    prefix = f"{what}: " if what else ""
    quantity = as_quantity(values)
    if isinstance(quantity, u.Quantity):
        unit = quantity.unit
        if target == u.dex and not _is_dex(unit):
            raise u.UnitConversionError(
                f"{prefix}{name} must be in dex (a u.dex Quantity or u.Dex), got unit "
                f"{unit.to_string() or 'dimensionless'!r}"
            )
        try:
            arr = quantity.to_value(target)
        except u.UnitConversionError:
            raise u.UnitConversionError(
                f"{prefix}column {name!r} has unit {unit.to_string() or 'dimensionless'!r}, "
                f"which cannot be converted to {target.to_string() or 'dimensionless'!r}"
            ) from None
        arr = np.asarray(arr)
    else:
        arr = quantity
    if arr.dtype.kind not in "fiub":
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{prefix}column {name!r} is not numeric (dtype {arr.dtype})"
            ) from None
    return np.asarray(arr, dtype=np.float64)


def table_columns(stars: Any, names: tuple[str, ...] | list[str], what: str = "") -> np.ndarray:
    """Stack the named columns of a table (or mapping of columns) into an ``(N, k)`` array.

    Parameters
    ----------
    stars : astropy Table, QTable or mapping of columns
        The stars; each column is read with :func:`schema_values`.
    names : sequence of str
        Schema names of the columns wanted, in order.
    what : str, optional
        Where the table comes from, for error messages.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(N, len(names))``, schema units.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If the columns are not 1-D of equal length.
    """
    prefix = f"{what}: " if what else ""
    colnames = list(stars.colnames) if hasattr(stars, "colnames") else list(stars.keys())
    missing = [n for n in names if n not in colnames]
    if missing:
        raise KeyError(f"{prefix}stars lack the column(s) {missing}; needed: {list(names)}")
    cols = [schema_values(stars[n], n, what) for n in names]
    shapes = {c.shape for c in cols}
    if len(shapes) > 1 or (cols and cols[0].ndim != 1):
        raise ValueError(f"{prefix}star columns must be 1-D of equal length, got {sorted(shapes)}")
    if not cols:
        return np.zeros((0, 0))
    return np.stack(cols, axis=1)

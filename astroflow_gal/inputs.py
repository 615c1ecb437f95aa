"""Checks and conversions of user input, done before any tensor is built.

Stars and conditions arrive as astropy Quantities in any compatible unit, as plain numbers in the
schema's units, as tables, rows or mappings. They leave as float64 arrays in schema units, or with a
clear error: NaN, infinite, wrong unit, wrong shape, missing or unknown names, non-positive values
where a logarithm is taken.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Row, Table

from .data import schema
from .data.columns import as_quantity, schema_values

__all__ = [
    "ExtrapolationWarning",
    "ConditionRangeError",
    "as_schema_values",
    "parse_conditions",
    "stars_to_array",
    "check_training_range",
    "check_condition_rules",
    "CONDITION_RULES",
    "sample_conditions",
    "star_masses",
    "positive_int",
]


class ExtrapolationWarning(UserWarning):
    """Conditions lie outside the range of the galaxies the model was trained on."""


class ConditionRangeError(ValueError):
    """Conditions break a physical rule, or lie so far from the training galaxies that the model
    cannot be trusted."""


def as_schema_values(name: str, value: Any) -> np.ndarray:
    """Convert a Quantity, a ``Table`` column or plain number(s) to float64 in the schema unit.

    The conversion is :func:`astroflow_gal.data.columns.schema_values` (the package's one
    converter): units of Quantities and of plain ``Table`` columns are honoured, plain numbers are
    in the schema unit of ``name``, abundances accept dex only.

    Raises
    ------
    astropy.units.UnitConversionError
        If a unit is not convertible to the schema unit (or not dex for an abundance).
    ValueError
        If a value is NaN, infinite or not numeric.
    """
    try:
        arr = schema_values(value, name)
    except TypeError as err:
        raise ValueError(f"{name} must be numeric, got {value!r}") from err
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def parse_conditions(
    names: Sequence[str],
    conditions: Mapping[str, Any] | Row | Table | None = None,
    keywords: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Galaxy conditions in schema units, shape ``(C,)`` for one galaxy or ``(N, C)`` per star.

    Parameters
    ----------
    names : sequence of str
        The model's condition names, in its order.
    conditions : mapping, astropy Row or Table, optional
        Conditions by name (Quantities in any compatible unit or plain numbers in schema units).
    keywords : mapping, optional
        The same, given as keyword arguments; both may not name the same condition.

    Raises
    ------
    ValueError
        Missing or unknown conditions, NaN/inf, non-positive masses or metallicities, shapes that
        do not broadcast.
    astropy.units.UnitConversionError
        A Quantity in an incompatible unit.
    """
    given: dict[str, Any] = {}
    if conditions is not None:
        if isinstance(conditions, (Row, Table)):
            cols = conditions.colnames
            # columns read with their units (a Row of a plain Table gives unitless numbers)
            table = conditions.table if isinstance(conditions, Row) else conditions
            source = {n: as_quantity(table[n]) for n in cols if n in names}
            if isinstance(conditions, Row):
                source = {n: v[conditions.index] for n, v in source.items()}
            unknown = [n for n in cols if n not in names and n != "galaxy_id"]
            if unknown:
                raise ValueError(f"unknown conditions {unknown}; this model uses {list(names)}")
        elif isinstance(conditions, Mapping):
            source = dict(conditions)
        else:
            raise TypeError(
                "conditions must be a mapping, an astropy Row or Table; "
                f"got {type(conditions).__name__}"
            )
        given.update(source)
    for key, value in (keywords or {}).items():
        if key in given:
            raise ValueError(f"condition {key} given twice")
        given[key] = value
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; this model uses {list(names)}")
    missing = [n for n in names if n not in given]
    if missing:
        raise ValueError(f"missing conditions {missing}; this model needs {list(names)}")
    values = [as_schema_values(n, given[n]) for n in names]
    for n, v in zip(names, values, strict=True):
        if v.ndim > 1:
            raise ValueError(f"{n} must be a scalar or a 1-D array, got shape {v.shape}")
    try:
        stacked = np.stack(np.broadcast_arrays(*values), axis=-1)
    except ValueError as err:
        shapes = {n: v.shape for n, v in zip(names, values, strict=True)}
        raise ValueError(f"condition shapes do not broadcast: {shapes}") from err
    check_condition_rules(stacked, names)
    return stacked


CONDITION_RULES: tuple[str, ...] = (
    "M_stars > 0 (a positive stellar mass)",
    "0 < Z_av < 1 (a positive metal mass fraction below 1)",
    "0 <= tau10",
    f"tau10 <= {schema.T_UNIVERSE_GYR} Gyr (the age of the Universe)",
    f"tau50 <= {schema.T_UNIVERSE_GYR} Gyr (the age of the Universe)",
    "tau10 <= tau50",
)
"""The physical rules every set of galaxy conditions obeys (schema units: Msun, Gyr)."""


def check_condition_rules(values: np.ndarray, names: Sequence[str]) -> None:
    """Raise if conditions break a physical rule of :data:`CONDITION_RULES`.

    A galaxy has a positive stellar mass and a mean metal mass fraction between 0 and 1; the
    10th and 50th percentiles of its stellar ages satisfy ``0 <= tau10 <= tau50 <= T``, with
    ``T = 13.8 Gyr`` the age of the Universe. Rules of conditions the model does not use are
    skipped.

    Parameters
    ----------
    values : numpy.ndarray
        Conditions in schema units (Msun, Gyr, Gyr, dimensionless), shape ``(C,)`` or ``(N, C)``.
    names : sequence of str
        Condition names, in the order of the last axis of ``values``.

    Raises
    ------
    ConditionRangeError
        Naming the broken rule and the first offending value (and its row for per-star arrays).
    """
    rows = np.atleast_2d(np.asarray(values, dtype=np.float64))
    col = {n: rows[:, i] for i, n in enumerate(names)}
    t_max = schema.T_UNIVERSE_GYR
    checks = []
    if "M_stars" in col:
        checks.append((CONDITION_RULES[0], col["M_stars"] > 0, ("M_stars",), ""))
    if "Z_av" in col:
        checks.append((CONDITION_RULES[1], (col["Z_av"] > 0) & (col["Z_av"] < 1), ("Z_av",), ""))
    slip = (" (plain numbers are read in Gyr: was it given in Myr? pass a Quantity, e.g. "
            "7000 * u.Myr)")
    for name in ("tau10", "tau50"):
        if name in col:
            if name == "tau10":
                checks.append((CONDITION_RULES[2], col[name] >= 0, (name,), ""))
            rule = CONDITION_RULES[3] if name == "tau10" else CONDITION_RULES[4]
            checks.append((rule, col[name] <= t_max, (name,), slip))
    if "tau10" in col and "tau50" in col:
        checks.append((CONDITION_RULES[5], col["tau10"] <= col["tau50"], ("tau10", "tau50"), ""))
    for rule, ok, involved, hint in checks:
        if not np.all(ok):
            i = int(np.argmin(ok))
            unit = {n: str(schema.column(n).unit) for n in involved}
            got = ", ".join(f"{n} = {col[n][i]:.6g} {unit[n]}".rstrip() for n in involved)
            where = f" (row {i})" if rows.shape[0] > 1 and values.ndim > 1 else ""
            raise ConditionRangeError(
                f"conditions break the rule {rule}: {got}{where}{hint}"
            )


def stars_to_array(
    stars: Any, names: Sequence[str], positive: Sequence[str] = ()
) -> np.ndarray:
    """Star values in schema units, shape ``(N, len(names))``.

    Parameters
    ----------
    stars : astropy Table/QTable, mapping of columns, or array
        Columns by name (Quantities in any compatible unit; plain columns are taken in schema
        units), or an array of shape (N, len(names)) in schema units.
    names : sequence of str
        Star columns needed, in order.
    positive : sequence of str
        Columns that must be strictly positive (their logarithm is taken).

    Raises
    ------
    ValueError
        Missing columns, wrong shape, NaN/inf, non-positive Z.
    astropy.units.UnitConversionError
        A column in an incompatible unit.
    """
    if isinstance(stars, (Table, Mapping)):
        colnames = stars.colnames if isinstance(stars, Table) else list(stars)
        missing = [n for n in names if n not in colnames]
        if missing:
            raise ValueError(f"stars lack the columns {missing}; needed: {list(names)}")
        cols = [as_schema_values(n, stars[n]) for n in names]
        shapes = {c.shape for c in cols}
        if len(shapes) != 1 or cols[0].ndim != 1:
            raise ValueError(f"star columns must be 1-D of equal length, got shapes {shapes}")
        arr = np.stack(cols, axis=1)
    else:
        if isinstance(stars, u.Quantity):
            raise TypeError("pass a table of columns with units, not one Quantity array")
        arr = np.asarray(stars, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValueError(
                f"stars must have shape (N, {len(names)}) for columns {list(names)}, "
                f"got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            bad = np.unique(np.nonzero(~np.isfinite(arr))[1])
            raise ValueError(f"stars hold NaN or infinite values in {[names[i] for i in bad]}")
    for i, n in enumerate(names):
        if n in positive and np.any(arr[:, i] <= 0):
            raise ValueError(f"star column {n} must be positive (its log is taken)")
    return arr


def check_training_range(
    values: np.ndarray,
    names: Sequence[str],
    training_range: Mapping[str, Sequence[float]] | None,
    max_excess: float = 1.0,
) -> None:
    """Warn when conditions leave the training range; raise when far outside it.

    The distance is measured in the flow's transformed scale (log10 for masses), as a fraction
    of the training range's width.

    Parameters
    ----------
    values : numpy.ndarray
        Conditions in schema units, shape (C,) or (N, C).
    names : sequence of str
        Condition names.
    training_range : mapping of name to (min, max), optional
        Range of every condition over the training galaxies, schema units; None skips the check.
    max_excess : float
        Beyond this many training-range widths outside the range, raise
        :class:`ConditionRangeError`.
    """
    if not training_range:
        return
    values = np.atleast_2d(values)
    messages = []
    for i, name in enumerate(names):
        if name not in training_range:
            continue
        lo, hi = (float(v) for v in training_range[name])
        log = schema.column(name).transform == "log10"
        col = values[:, i]
        t = np.log10(col) if log else col
        tlo, thi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        width = max(thi - tlo, 1e-12)
        below, above = tlo - t.min(), t.max() - thi
        excess = max(below, above)
        if excess <= 0:
            continue
        unit = schema.column(name).unit
        scale = "dex" if log else (str(unit) if str(unit) else "")
        side = "below" if below >= above else "above"
        msg = (
            f"{name} is {side} the training range [{lo:.4g}, {hi:.4g}]"
            + (f" {unit}" if str(unit) else "")
            + f" by {excess:.3g} {scale}".rstrip()
        )
        if excess > max_excess * width:
            raise ConditionRangeError(
                msg + f" (more than {max_excess:g} times the range's width); "
                "the model cannot be trusted there. Pass allow_extrapolation=True to force it."
            )
        messages.append(msg)
    if messages:
        warnings.warn("; ".join(messages), ExtrapolationWarning, stacklevel=3)


def _meta_quantity(name: str, entry: Any) -> u.Quantity:
    # {"value": v, "unit": "solMass"} as written by GalaxyModel.sample; "5e+10 solMass" (older
    # samples) is parsed too.
    if isinstance(entry, u.Quantity):
        return entry
    if isinstance(entry, Mapping):
        if "value" not in entry:
            raise ValueError(f"sample meta entry {name!r} has no 'value': {entry!r}")
        return u.Quantity(float(entry["value"]), u.Unit(entry.get("unit", "") or ""))
    if isinstance(entry, str):
        return u.Quantity(entry)
    return u.Quantity(float(entry), schema.column(name).unit)


def sample_conditions(stars: Any) -> dict[str, u.Quantity]:
    """The galaxy conditions recorded in a sample's ``meta``, as Quantities.

    Parameters
    ----------
    stars : astropy.table.Table or QTable
        A table returned by :meth:`astroflow_gal.GalaxyModel.sample` (or read back from its HDF5 or
        ECSV file); its ``meta["conditions"]`` maps each condition name to a value and a unit.

    Returns
    -------
    dict of str to astropy.units.Quantity
        Each condition in its recorded unit (``M_stars`` in Msun, ``tau50``/``tau10`` in Gyr,
        ``Z_av`` dimensionless). Empty if the table records no conditions.
    """
    meta = getattr(stars, "meta", None) or {}
    conditions = meta.get("conditions") or {}
    if not isinstance(conditions, Mapping):
        raise ValueError(f"sample meta 'conditions' must be a mapping, got {conditions!r}")
    return {name: _meta_quantity(name, entry) for name, entry in conditions.items()}


def star_masses(stars: Any, mass: Any = None) -> u.Quantity:
    """The mass carried by each star of a table, in Msun.

    Parameters
    ----------
    stars : astropy.table.Table or QTable
        Stars: a model sample, or simulation stars with a ``mass`` column.
    mass : astropy.units.Quantity, float or array-like, optional
        Mass per star (scalar or one per row) in Msun, overriding what the table records.

    Returns
    -------
    astropy.units.Quantity
        Shape ``(len(stars),)``, in Msun: ``mass`` if given; else the table's ``mass`` column; else
        the sample's recorded ``meta["mass_per_star"]`` (M_stars / N of the draw); else
        ``M_stars / len(stars)`` from the recorded conditions.

    Raises
    ------
    ValueError
        If no mass can be found, or masses are non-finite or negative.
    """
    n = len(stars)
    meta = getattr(stars, "meta", None) or {}
    if mass is not None:
        values = np.broadcast_to(as_mass_values(mass), (n,)).copy()
    elif "mass" in getattr(stars, "colnames", ()):
        values = as_mass_values(as_quantity(stars["mass"]))
    elif meta.get("mass_per_star") is not None:
        per_star = _meta_quantity("mass_per_star", meta["mass_per_star"]).to_value(u.Msun)
        values = np.full(n, per_star)
    elif "M_stars" in (meta.get("conditions") or {}):
        values = np.full(n, sample_conditions(stars)["M_stars"].to_value(u.Msun) / max(n, 1))
    else:
        raise ValueError(
            "no stellar mass: give mass=..., a 'mass' column, or a sample of GalaxyModel.sample "
            "(whose meta records M_stars and the mass per star)"
        )
    if values.shape != (n,):
        raise ValueError(f"mass must be a scalar or one value per star ({n}), got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("star masses must be finite and non-negative")
    return values * u.Msun


def as_mass_values(mass: Any) -> np.ndarray:
    """Masses as float64 in Msun (Quantity in any mass unit, or plain numbers in Msun)."""
    if isinstance(mass, u.Quantity):
        try:
            return np.asarray(mass.to_value(u.Msun), dtype=np.float64)
        except u.UnitConversionError as err:
            raise u.UnitConversionError(f"mass must be a mass, got unit {mass.unit}") from err
    return np.asarray(mass, dtype=np.float64)


def positive_int(value: Any, name: str) -> int:
    """Check that ``value`` is a positive integer (a batch size, a count) and return it as int.

    Parameters
    ----------
    value : int
        The value (a Python or numpy integer; a float with an integral value is accepted).
    name : str
        The argument's name, for the message.

    Raises
    ------
    ValueError
        If ``value`` is a bool, not an integer, or smaller than 1.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not math.isfinite(value) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)

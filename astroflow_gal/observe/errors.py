"""Seeded Gaussian measurement errors for mock catalogues.

An error model maps catalogue column names to a standard deviation: a Quantity (one value, or one
per star) or a callable that takes the noise-free catalogue (a QTable with ``distance``, the
astrometry, the labels and, when given, the user's magnitude column) and returns one standard
deviation per star. The observed value is the true value plus ``sigma * N(0, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ..data._checks import in_unit

__all__ = ["NOISY_COLUMNS", "ErrorSpec", "draw_errors", "describe_errors"]

#: Catalogue columns that may carry errors (besides the user's magnitude column), in the order
#: their noise is drawn.
NOISY_COLUMNS = (
    "parallax", "pm_ra_cosdec", "pm_dec", "radial_velocity", "Z", "feh", "ofe", "age",
)

ErrorSpec = Mapping[str, "u.Quantity | Callable[[QTable], u.Quantity]"]


def _check_names(errors: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = [k for k in errors if k not in allowed]
    if unknown:
        raise ValueError(
            f"errors: no error model for columns {unknown}; errors apply to {list(allowed)}"
        )


def check_errors(errors: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Check an error specification's names and constants before any work starts.

    Parameters
    ----------
    errors : mapping of str to Quantity or callable, or None
        Standard deviations by column [the column's unit, e.g. mas for parallax].
    allowed : tuple of str
        Columns that may carry errors.

    Returns
    -------
    dict
        The specification, in a fixed order (that of ``allowed``).
    """
    if errors is None:
        return {}
    if not isinstance(errors, Mapping):
        raise TypeError(f"errors must be a mapping of column name to sigma, got {errors!r}")
    _check_names(errors, allowed)
    for name, spec in errors.items():
        if callable(spec):
            continue
        if not isinstance(spec, u.Quantity):
            raise TypeError(
                f"errors[{name!r}] must be a Quantity (with the column's unit) or a callable of "
                f"the catalogue, got {spec!r}"
            )
        if not np.all(np.isfinite(spec.value)) or np.any(spec.value < 0):
            raise ValueError(f"errors[{name!r}] must be finite and non-negative, got {spec}")
    return {k: errors[k] for k in allowed if k in errors}


def _sigma(name: str, spec: Any, catalogue: QTable) -> u.Quantity:
    unit = catalogue[name].unit or u.dimensionless_unscaled
    value = spec(catalogue) if callable(spec) else spec
    if not isinstance(value, u.Quantity):
        if unit == u.dimensionless_unscaled:
            value = u.Quantity(value)
        else:
            raise TypeError(
                f"errors[{name!r}] must give a Quantity in a unit of {unit}, got {type(value)}"
            )
    sigma = in_unit(value, unit, f"errors[{name!r}]")
    n = len(catalogue)
    try:
        sigma = u.Quantity(np.broadcast_to(sigma.value, (n,)).copy(), unit)
    except ValueError as err:
        raise ValueError(
            f"errors[{name!r}] must be one value or one per star ({n}), got shape {sigma.shape}"
        ) from err
    if not np.all(np.isfinite(sigma.value)) or np.any(sigma.value < 0):
        raise ValueError(f"errors[{name!r}] gave non-finite or negative standard deviations")
    return sigma


def draw_errors(
    catalogue: QTable, errors: Mapping[str, Any], rng: np.random.Generator
) -> QTable:
    """Add Gaussian noise to the named columns of a noise-free catalogue.

    Parameters
    ----------
    catalogue : astropy.table.QTable
        Noise-free values; every standard deviation is evaluated on it (before any noise).
    errors : mapping of str to Quantity or callable
        As returned by :func:`check_errors` [column units].
    rng : numpy.random.Generator
        Draws one standard normal per star for each column, in the mapping's order.

    Returns
    -------
    astropy.table.QTable
        A copy in which each noisy column holds the observed value, ``<name>_error`` its standard
        deviation and ``<name>_true`` the noise-free value.
    """
    out = catalogue.copy(copy_data=True)
    sigmas = {name: _sigma(name, spec, catalogue) for name, spec in errors.items()}
    for name, sigma in sigmas.items():
        true = catalogue[name]
        noise = rng.standard_normal(len(catalogue))
        out[name] = true + sigma * noise
        out[f"{name}_error"] = sigma
        out[f"{name}_true"] = true
    return out


def describe_errors(errors: Mapping[str, Any]) -> dict[str, str]:
    """One line per noisy column for the metadata: the constant, or the callable's name."""
    described = {}
    for name, spec in errors.items():
        if callable(spec):
            label = getattr(spec, "__qualname__", None) or repr(spec)
            described[name] = f"callable {label}"
        else:
            value = np.atleast_1d(spec.value)
            if value.size == 1:
                described[name] = f"{float(value[0]):.6g} {spec.unit.to_string()}"
            else:
                described[name] = f"per-star values in {spec.unit.to_string()}"
    return described

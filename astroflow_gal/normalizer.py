"""Physical values <-> flow-space values, with the exact Jacobian of every step.

Every star column goes through a bijection ``g`` from its support onto the real line and then a
standardisation ``(g(v) - mean) / std``:

* unbounded columns (positions, velocities, [Fe/H], [O/Fe]): ``g(v) = v``;
* ``Z`` (support ``(0, inf)``): ``g(v) = log10 v``;
* ``age`` (support ``(lower, upper)``, by default ``(0, 13.8)`` Gyr): the logit
  ``g(v) = log(u / (1 - u))`` with ``u = (v - lower) / (upper - lower)``.

For star columns the map is a change of variables of the density, so its log-Jacobian
``log |d flow / d physical|`` is returned with the values. Values outside a column's support get a
log-Jacobian of ``-inf`` (the eDF is zero there), and values mapped back from flow space always
lie strictly inside the support. Conditions are only inputs to the flow and carry no Jacobian.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .data import schema

__all__ = ["ColumnTransform", "Normalizer"]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class ColumnTransform:
    """Transform of one column: ``(g(v) - mean) / std``, ``g`` identity, log10 or a logit.

    Attributes
    ----------
    name : str
        Schema column name.
    log10 : bool
        Whether ``g`` is log10 (support ``(0, inf)``).
    mean, std : float
        Mean and standard deviation of ``g(v)`` on the training data (dimensionless, in the
        units of ``g(v)``).
    lower, upper : float or None
        Both given: ``g`` is the logit of ``(v - lower) / (upper - lower)`` and the support is
        ``(lower, upper)`` in the column's schema unit (e.g. Gyr for ``age``). Both None (files
        written before bounded columns existed): no bound.
    """

    name: str
    log10: bool
    mean: float
    std: float
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if (self.lower is None) != (self.upper is None):
            raise ValueError(f"column {self.name}: give both lower and upper, or neither")
        if self.lower is not None:
            if self.log10:
                raise ValueError(f"column {self.name}: log10 and a logit exclude each other")
            if not (math.isfinite(self.lower) and math.isfinite(self.upper)
                    and self.lower < self.upper):
                raise ValueError(
                    f"column {self.name}: bounds must be finite with lower < upper, got "
                    f"({self.lower}, {self.upper})"
                )
        if not (math.isfinite(self.std) and self.std > 0 and math.isfinite(self.mean)):
            raise ValueError(f"column {self.name}: mean must be finite and std positive")

    @property
    def bounded(self) -> bool:
        """Whether ``g`` is the logit of a bounded interval."""
        return self.lower is not None

    @property
    def support(self) -> tuple[float, float]:
        """Open interval of valid values in schema units (``-inf``/``inf`` for open ends)."""
        if self.bounded:
            return float(self.lower), float(self.upper)
        if self.log10:
            return 0.0, math.inf
        return -math.inf, math.inf

    def inside(self, v: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the values strictly inside :attr:`support`."""
        lo, hi = self.support
        return (v > lo) & (v < hi)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Schema units -> flow space (values outside the support give NaN or inf)."""
        if self.bounded:
            w = (v - self.lower) / (self.upper - self.lower)
            g = torch.log(w) - torch.log1p(-w)
        elif self.log10:
            g = torch.log10(v)
        else:
            g = v
        return (g - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Flow space -> schema units, strictly inside the support for every finite ``y``."""
        g = y * self.std + self.mean
        if self.bounded:
            lo, hi = float(self.lower), float(self.upper)
            # Each end computed from its own side keeps the precision near both bounds.
            from_lo = lo + (hi - lo) * torch.sigmoid(g)
            from_hi = hi - (hi - lo) * torch.sigmoid(-g)
            v = torch.where(g < 0, from_lo, from_hi)
            ends = torch.tensor([lo, hi], dtype=v.dtype, device=v.device)
            inner = torch.nextafter(ends, ends.flip(0))  # the closest values strictly inside
            return torch.minimum(torch.maximum(v, inner[0]), inner[1])
        if self.log10:
            return torch.clamp(torch.pow(10.0, g), min=torch.finfo(g.dtype).tiny)
        return g

    def log_jacobian(self, v: torch.Tensor) -> torch.Tensor:
        """``log |d forward / d v|`` per value (valid inside the support)."""
        base = -math.log(self.std)
        if self.bounded:
            return base + math.log(self.upper - self.lower) - torch.log(v - self.lower) - torch.log(
                self.upper - v
            )
        if self.log10:
            return base - torch.log(v) - math.log(_LN10)
        return torch.full_like(v, base)


def _fit_column(
    name: str, values: np.ndarray, log10: bool, bounds: tuple[float, float] | None = None
) -> ColumnTransform:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"column {name}: NaN or infinite values in the training data")
    if bounds is not None:
        lo, hi = float(bounds[0]), float(bounds[1])
        outside = (values <= lo) | (values >= hi)
        if np.any(outside):
            raise ValueError(
                f"column {name}: {int(outside.sum())} training values outside its support "
                f"({lo:g}, {hi:g}) (found {values.min():.6g} to {values.max():.6g}); widen the "
                f"bound (Normalizer.fit(bounds={{{name!r}: (lower, upper)}})) or clean the data"
            )
        w = (values - lo) / (hi - lo)
        values = np.log(w) - np.log1p(-w)
    elif log10:
        if np.any(values <= 0):
            raise ValueError(f"column {name}: log10 transform needs positive values")
        values = np.log10(values)
    std = float(values.std())
    if not std > 0:
        std = 1.0  # a constant column (e.g. one training galaxy): standardise by 1
    if bounds is not None:
        return ColumnTransform(name, False, float(values.mean()), std, lo, hi)
    return ColumnTransform(name, log10, float(values.mean()), std)


def _schema_bounds(name: str, bounds: Mapping[str, Sequence[float]] | None):
    col = schema.column(name)
    if col.transform != "logit":
        if bounds and name in bounds:
            raise ValueError(f"column {name} is not bounded in the schema; bounds apply to "
                             "logit columns only")
        return None
    lo, hi = col.support
    if bounds and name in bounds:
        lo, hi = bounds[name]
    return float(lo), float(hi)


class Normalizer:
    """Maps star columns and conditions between schema units and flow space.

    Parameters
    ----------
    star_transforms : sequence of ColumnTransform
        One per star column, in the flow's data order.
    condition_transforms : sequence of ColumnTransform
        One per condition, in the flow's condition order.
    """

    def __init__(
        self,
        star_transforms: Sequence[ColumnTransform],
        condition_transforms: Sequence[ColumnTransform],
    ) -> None:
        self.star_transforms = tuple(star_transforms)
        self.condition_transforms = tuple(condition_transforms)

    @property
    def star_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.star_transforms)

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.condition_transforms)

    @property
    def star_supports(self) -> dict[str, tuple[float, float]]:
        """Support ``(lower, upper)`` of every star column, schema units (``inf`` when open)."""
        return {t.name: t.support for t in self.star_transforms}

    @classmethod
    def fit(
        cls,
        stars: np.ndarray,
        conditions: np.ndarray,
        star_names: Sequence[str] = schema.STAR_NAMES,
        condition_names: Sequence[str] = schema.CONDITION_NAMES,
        bounds: Mapping[str, Sequence[float]] | None = None,
    ) -> Normalizer:
        """Fit the standardisation on training data in schema units.

        Parameters
        ----------
        stars : numpy.ndarray
            Star values, shape (N, len(star_names)), each column in its schema unit.
        conditions : numpy.ndarray
            One row per training galaxy, shape (G, len(condition_names)), schema units. The
            condition statistics are over galaxies, not stars.
        star_names, condition_names : sequence of str
            Column names; their transform (identity, log10, logit) comes from the schema.
        bounds : mapping of str to (float, float), optional
            Support ``(lower, upper)`` of logit columns in schema units, overriding the schema's
            (for ``age``: ``(0, 13.8)`` Gyr). Training values must lie strictly inside.

        Raises
        ------
        ValueError
            Wrong shapes, NaN or infinite values, values outside a column's support.
        """
        stars = np.asarray(stars, dtype=np.float64)
        conditions = np.asarray(conditions, dtype=np.float64).reshape(-1, len(condition_names))
        if stars.ndim != 2 or stars.shape[1] != len(star_names):
            raise ValueError(f"stars must have shape (N, {len(star_names)})")
        star_t = [
            _fit_column(
                n, stars[:, i], schema.column(n).transform == "log10", _schema_bounds(n, bounds)
            )
            for i, n in enumerate(star_names)
        ]
        cond_t = [
            _fit_column(n, conditions[:, i], schema.column(n).transform == "log10")
            for i, n in enumerate(condition_names)
        ]
        return cls(star_t, cond_t)

    # -- stars ----------------
    def inside_support(self, stars: torch.Tensor) -> torch.Tensor:
        """Boolean mask (N,): the stars whose every column lies strictly inside its support."""
        mask = torch.ones(stars.shape[0], dtype=torch.bool, device=stars.device)
        for i, t in enumerate(self.star_transforms):
            mask &= t.inside(stars[:, i])
        return mask

    def stars_to_flow(self, stars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Star values (N, D) in schema units -> flow space (N, D) and log-Jacobian (N,).

        A star outside the support of a column gets the log-Jacobian ``-inf`` (zero density) and
        finite placeholder flow values, so that ``log_prob + log_jacobian`` is ``-inf`` for it.
        """
        cols, logjac = [], torch.zeros(stars.shape[0], dtype=stars.dtype, device=stars.device)
        for i, t in enumerate(self.star_transforms):
            v = stars[:, i]
            if t.bounded or t.log10:
                ok = t.inside(v)
                lo, hi = t.support
                safe = (lo + hi) / 2 if t.bounded else 1.0
                v = torch.where(ok, v, torch.full_like(v, safe))
                lj = torch.where(ok, t.log_jacobian(v), torch.full_like(v, -math.inf))
            else:
                lj = t.log_jacobian(v)
            cols.append(t.forward(v))
            logjac = logjac + lj
        return torch.stack(cols, dim=1), logjac

    def stars_from_flow(self, values: torch.Tensor) -> torch.Tensor:
        """Flow-space star values (N, D) -> schema units (N, D)."""
        cols = [t.inverse(values[:, i]) for i, t in enumerate(self.star_transforms)]
        return torch.stack(cols, dim=1)

    # -- conditions ----------------
    def conditions_to_flow(self, conditions: torch.Tensor) -> torch.Tensor:
        """Conditions (..., C) in schema units -> flow space (..., C). No Jacobian."""
        cols = [t.forward(conditions[..., i]) for i, t in enumerate(self.condition_transforms)]
        return torch.stack(cols, dim=-1)

    def subset(self, star_names: Sequence[str]) -> Normalizer:
        """The normaliser of a subset of the star columns (for marginal flows)."""
        by_name = {t.name: t for t in self.star_transforms}
        return Normalizer([by_name[n] for n in star_names], self.condition_transforms)

    # -- files ----------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "stars": [asdict(t) for t in self.star_transforms],
            "conditions": [asdict(t) for t in self.condition_transforms],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                [ColumnTransform(**t) for t in data["stars"]],
                [ColumnTransform(**t) for t in data["conditions"]],
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"invalid normaliser description: {err}") from err

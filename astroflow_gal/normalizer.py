"""Physical values <-> flow-space values, with the exact Jacobian of every step.

Every column goes through an optional ``log10`` and then a standardisation ``(v - mean) / std``.
For star columns the map is a change of variables of the density, so its log-Jacobian
``log |d flow / d physical|`` is returned with the values; conditions are only inputs to the flow
and carry no Jacobian.
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
    """Transform of one column: ``(g(v) - mean) / std`` with ``g`` identity or log10.

    Attributes
    ----------
    name : str
        Schema column name.
    log10 : bool
        Whether ``g`` is log10 (the column must then be positive).
    mean, std : float
        Mean and standard deviation of ``g(v)`` on the training data (schema units).
    """

    name: str
    log10: bool
    mean: float
    std: float

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        g = torch.log10(v) if self.log10 else v
        return (g - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        g = y * self.std + self.mean
        return torch.pow(10.0, g) if self.log10 else g

    def log_jacobian(self, v: torch.Tensor) -> torch.Tensor:
        """``log |d forward / d v|`` per value."""
        base = -math.log(self.std)
        if self.log10:
            return base - torch.log(v) - math.log(_LN10)
        return torch.full_like(v, base)


def _fit_column(name: str, values: np.ndarray, log10: bool) -> ColumnTransform:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"column {name}: NaN or infinite values in the training data")
    if log10:
        if np.any(values <= 0):
            raise ValueError(f"column {name}: log10 transform needs positive values")
        values = np.log10(values)
    std = float(values.std())
    if not std > 0:
        std = 1.0  # a constant column (e.g. one training galaxy): standardise by 1
    return ColumnTransform(name, log10, float(values.mean()), std)


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

    @classmethod
    def fit(
        cls,
        stars: np.ndarray,
        conditions: np.ndarray,
        star_names: Sequence[str] = schema.STAR_NAMES,
        condition_names: Sequence[str] = schema.CONDITION_NAMES,
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
            Column names; their log10 choice comes from the schema.
        """
        stars = np.asarray(stars, dtype=np.float64)
        conditions = np.asarray(conditions, dtype=np.float64).reshape(-1, len(condition_names))
        if stars.ndim != 2 or stars.shape[1] != len(star_names):
            raise ValueError(f"stars must have shape (N, {len(star_names)})")
        star_t = [
            _fit_column(n, stars[:, i], schema.column(n).transform == "log10")
            for i, n in enumerate(star_names)
        ]
        cond_t = [
            _fit_column(n, conditions[:, i], schema.column(n).transform == "log10")
            for i, n in enumerate(condition_names)
        ]
        return cls(star_t, cond_t)

    # -- stars ----------------
    def stars_to_flow(self, stars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Star values (N, D) in schema units -> flow space (N, D) and log-Jacobian (N,)."""
        cols = [t.forward(stars[:, i]) for i, t in enumerate(self.star_transforms)]
        logjac = sum(t.log_jacobian(stars[:, i]) for i, t in enumerate(self.star_transforms))
        return torch.stack(cols, dim=1), logjac

    def stars_from_flow(self, values: torch.Tensor) -> torch.Tensor:
        """Flow-space star values (N, D) -> schema units (N, D)."""
        cols = [t.inverse(values[:, i]) for i, t in enumerate(self.star_transforms)]
        return torch.stack(cols, dim=1)

    def star_log_jacobian(self, stars: torch.Tensor) -> torch.Tensor:
        """``log |det d flow / d physical|`` per star (N,), physical values in schema units."""
        return sum(t.log_jacobian(stars[:, i]) for i, t in enumerate(self.star_transforms))

    # -- conditions ----------------
    def conditions_to_flow(self, conditions: torch.Tensor) -> torch.Tensor:
        """Conditions (..., C) in schema units -> flow space (..., C). No Jacobian."""
        cols = [t.forward(conditions[..., i]) for i, t in enumerate(self.condition_transforms)]
        return torch.stack(cols, dim=-1)

    def conditions_from_flow(self, values: torch.Tensor) -> torch.Tensor:
        """Flow-space conditions (..., C) -> schema units (..., C)."""
        cols = [t.inverse(values[..., i]) for i, t in enumerate(self.condition_transforms)]
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

"""How far requested galaxy conditions lie from the galaxies a model was trained on.

A model learns the eDF at the conditions of its training galaxies and interpolates between them.
Each condition inside its own training range is not enough: a dwarf of 1e8 Msun with the mean
metallicity of a Milky Way lies inside the range of both ``M_stars`` and ``Z_av``, yet no training
galaxy is anywhere near that combination. So the conditions are judged jointly:

1. every condition is mapped like the flow's input (``log10`` for ``M_stars``, as is for the
   others) and the result is whitened with the mean and covariance of the training galaxies: the
   Euclidean distance there is the Mahalanobis distance, in units of the training spread along
   every direction, correlations included;
2. the distance ``d`` of the requested conditions to the *nearest* training galaxy is compared
   with how densely the training galaxies sample their own space: ``s``, the 90th percentile over
   the training galaxies of the distance of each to its nearest other training galaxy;
3. ``d > max(1.5 s, 2)`` warns (:class:`~astroflow_gal.inputs.ExtrapolationWarning`),
   ``d > max(3 s, 3)`` raises (:class:`~astroflow_gal.inputs.ConditionRangeError`, unless
   ``allow_extrapolation``); both name the nearest training galaxy and its conditions. The
   thresholds follow the gaps of a sparse suite, and never fall below 2 and 3 (training spreads)
   so that a dense suite does not turn ordinary interpolation into warnings.

Model files written before the training conditions were stored fall back to the per-condition
ranges of :func:`astroflow_gal.inputs.check_training_range`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import schema
from .inputs import ConditionRangeError, ExtrapolationWarning

__all__ = ["WARN_FACTOR", "RAISE_FACTOR", "WARN_MIN", "RAISE_MIN", "TrainingConditions"]

WARN_FACTOR = 1.5
"""Warn beyond this many times the training galaxies' typical neighbour distance."""
RAISE_FACTOR = 3.0
"""Refuse beyond this many times the training galaxies' typical neighbour distance."""
WARN_MIN = 2.0
"""Smallest warning distance (Mahalanobis units, i.e. training spreads)."""
RAISE_MIN = 3.0
"""Smallest refusal distance (Mahalanobis units)."""


def _flow_scale(values: np.ndarray, names: Sequence[str]) -> np.ndarray:
    cols = [
        np.log10(values[:, i]) if schema.column(n).transform == "log10" else values[:, i]
        for i, n in enumerate(names)
    ]
    return np.stack(cols, axis=1)


@dataclass
class TrainingConditions:
    """The conditions of a model's training galaxies, and distances to them.

    Parameters
    ----------
    ids : sequence of str
        Training galaxy ids, one per row of ``values``.
    names : sequence of str
        Condition names (the model's order).
    values : array-like
        Shape ``(G, C)``, every condition in its schema unit (Msun, Gyr, Gyr, dimensionless).

    Attributes
    ----------
    spacing : float
        90th percentile over the training galaxies of the Mahalanobis distance of each to its
        nearest other training galaxy (dimensionless).
    """

    ids: Sequence[str]
    names: Sequence[str]
    values: np.ndarray
    _white: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = tuple(str(i) for i in self.ids)
        self.names = tuple(str(n) for n in self.names)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape != (len(self.ids), len(self.names)):
            raise ValueError(
                f"training conditions must have shape ({len(self.ids)}, {len(self.names)}), "
                f"got {values.shape}"
            )
        if len(self.ids) < 2:
            raise ValueError("training conditions need at least two galaxies")
        if not np.all(np.isfinite(values)):
            raise ValueError("training conditions hold NaN or infinite values")
        self.values = values
        t = _flow_scale(values, self.names)
        self._mean = t.mean(axis=0)
        # Whitening by the training covariance; directions of (near) zero spread are floored so a
        # degenerate suite (e.g. two galaxies) still gives finite distances.
        cov = np.atleast_2d(np.cov(t, rowvar=False, bias=True))
        evals, evecs = np.linalg.eigh(cov)
        floor = max(float(evals.max()), 1e-300) * 1e-6
        self._whiten = evecs / np.sqrt(np.maximum(evals, floor))
        self._white = (t - self._mean) @ self._whiten
        d = np.linalg.norm(self._white[:, None, :] - self._white[None, :, :], axis=-1)
        np.fill_diagonal(d, np.inf)
        self.spacing = float(np.percentile(d.min(axis=1), 90))

    @property
    def warn_distance(self) -> float:
        """Distance beyond which conditions warn (Mahalanobis units)."""
        return max(WARN_FACTOR * self.spacing, WARN_MIN)

    @property
    def raise_distance(self) -> float:
        """Distance beyond which conditions are refused (Mahalanobis units)."""
        return max(RAISE_FACTOR * self.spacing, RAISE_MIN)

    def distance(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mahalanobis distance to the nearest training galaxy, and that galaxy's row.

        Parameters
        ----------
        values : numpy.ndarray
            Conditions in schema units, shape ``(C,)`` or ``(N, C)``.

        Returns
        -------
        distance : numpy.ndarray
            Shape ``(N,)`` (``(1,)`` for one galaxy), dimensionless.
        nearest : numpy.ndarray
            Row of the nearest training galaxy, shape ``(N,)``, int.
        """
        rows = np.atleast_2d(np.asarray(values, dtype=np.float64))
        white = (_flow_scale(rows, self.names) - self._mean) @ self._whiten
        dist = np.empty(len(rows))
        nearest = np.empty(len(rows), dtype=np.int64)
        for start in range(0, len(rows), 4096):
            block = white[start : start + 4096]
            d = np.linalg.norm(block[:, None, :] - self._white[None, :, :], axis=-1)
            nearest[start : start + 4096] = d.argmin(axis=1)
            dist[start : start + 4096] = d.min(axis=1)
        return dist, nearest

    def check(self, values: np.ndarray, allow_extrapolation: bool = False) -> None:
        """Warn or raise when conditions lie far from every training galaxy.

        Parameters
        ----------
        values : numpy.ndarray
            Conditions in schema units, shape ``(C,)`` or ``(N, C)`` (then judged row by row;
            the farthest row is reported).
        allow_extrapolation : bool
            Warn instead of raising beyond :attr:`raise_distance`.

        Raises
        ------
        ConditionRangeError
            Beyond :attr:`raise_distance` (without ``allow_extrapolation``).
        """
        rows = np.atleast_2d(np.asarray(values, dtype=np.float64))
        unique = np.unique(rows, axis=0) if len(rows) > 1 else rows
        dist, nearest = self.distance(unique)
        worst = int(dist.argmax())
        d = float(dist[worst])
        if d <= self.warn_distance:
            return
        g = int(nearest[worst])
        msg = (
            f"conditions ({self._describe(unique[worst])}) lie {d:.2f} (Mahalanobis distance in "
            f"the normalised condition space) from the nearest training galaxy {self.ids[g]} "
            f"({self._describe(self.values[g])}); training galaxies lie within "
            f"{self.spacing:.2f} of their nearest neighbour (90th percentile), the model warns "
            f"beyond {self.warn_distance:.2f} and refuses beyond {self.raise_distance:.2f}"
        )
        if d > self.raise_distance and not allow_extrapolation:
            raise ConditionRangeError(
                msg + ". The model cannot be trusted there; pass allow_extrapolation=True to "
                "force it."
            )
        warnings.warn(msg, ExtrapolationWarning, stacklevel=4)

    def _describe(self, row: np.ndarray) -> str:
        parts = []
        for n, v in zip(self.names, row, strict=True):
            unit = str(schema.column(n).unit)
            parts.append(f"{n}={v:.4g}" + (f" {unit}" if unit else ""))
        return ", ".join(parts)

    # -- files ----------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (ids, names, values in schema units)."""
        return {"ids": list(self.ids), "names": list(self.names),
                "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConditions:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(data["ids"], data["names"], np.asarray(data["values"], dtype=np.float64))
        except (KeyError, TypeError) as err:
            raise ValueError(f"invalid training conditions: {err}") from err

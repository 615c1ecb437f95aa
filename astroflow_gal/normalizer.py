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

Before the column maps, the velocities can be taken into the cylindrical frame of the galaxy
(``velocity_frame="cylindrical"``): ``(vx, vy)`` at the star's position ``(x, y)`` become
``v_R = (x vx + y vy) / R`` and ``v_phi = (x vy - y vx) / R`` with ``R = sqrt(x^2 + y^2)``. At fixed
position this is a rotation, so the map of the whole star is a bijection with log-Jacobian 0 and
the eDF stays exact; an axisymmetric galaxy's velocities then depend on the position only through
``R`` and ``z``, which the flow learns far more easily than the rotating Cartesian components. On
the axis (``R = 0``, a set of measure zero) the azimuth is taken as 0: ``v_R = vx``,
``v_phi = vy``. Positions stay Cartesian (the density stays regular at the centre).

Groups of columns can also be divided by a per-galaxy scale that follows the stellar mass
(:class:`ScaleLaw`, ``Normalizer.fit(scale_with_mass=("velocity",))``):
``v -> v / s(M_stars)`` with ``log10 s = log10_scale + slope * (log10 M_stars - pivot)``, fitted
over the training galaxies to the root-mean-square value of the group per galaxy. The velocities
of the synthetic suite span 7-150 km/s (rms) from its dwarfs to its most massive discs, so
without the law a dwarf occupies a few hundredths of the standardised velocity axis; with it,
every galaxy fills about the same range. For fixed conditions the map is linear, with
log-Jacobian ``-n log s(M_stars)`` per star for ``n`` scaled columns, so the eDF stays exact;
these maps need the conditions of every star (``stars_to_flow(stars, conditions)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .data import schema

__all__ = ["SCALE_GROUPS", "VELOCITY_FRAMES", "ColumnTransform", "Normalizer", "ScaleLaw"]

#: Column groups that can follow a mass scale law (``Normalizer.fit(scale_with_mass=...)``).
SCALE_GROUPS = {"position": ("x", "y", "z"), "velocity": ("vx", "vy", "vz")}

#: Frames the velocities are modelled in: the galaxy's Cartesian axes or its cylindrical frame.
VELOCITY_FRAMES = ("cartesian", "cylindrical")

# In the cylindrical velocity frame the flow's vx, vy slots hold v_R, v_phi.
_CYLINDRICAL_NAMES = {"vx": "v_R", "vy": "v_phi"}
_PHYSICAL_NAMES = {v: k for k, v in _CYLINDRICAL_NAMES.items()}

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


@dataclass(frozen=True)
class ScaleLaw:
    """A per-galaxy scale of some star columns as a power law of the stellar mass.

    ``log10 s = log10_scale + slope * (log10(M_stars / Msun) - pivot)``; the columns are divided
    by ``s`` before their standardisation.

    Attributes
    ----------
    columns : tuple of str
        Physical star columns the scale divides (schema names, e.g. ``("vx", "vy", "vz")``).
    log10_scale : float
        log10 of the scale at the pivot mass, in the columns' schema unit (kpc or km/s).
    slope : float
        d log10 s / d log10 M_stars (dimensionless).
    pivot : float
        log10 of the pivot stellar mass in Msun.
    """

    columns: tuple[str, ...]
    log10_scale: float
    slope: float
    pivot: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if not self.columns:
            raise ValueError("a scale law needs at least one column")
        for value in (self.log10_scale, self.slope, self.pivot):
            if not math.isfinite(value):
                raise ValueError(f"scale law of {self.columns}: parameters must be finite")

    def log_scale(self, mass: torch.Tensor) -> torch.Tensor:
        """Natural log of the scale for stellar masses ``mass`` [Msun]."""
        return _LN10 * (self.log10_scale + self.slope * (torch.log10(mass) - self.pivot))

    @classmethod
    def fit(
        cls, columns: Sequence[str], values: np.ndarray, galaxy_index: np.ndarray,
        mass: np.ndarray, pivot: float = 10.0,
    ) -> ScaleLaw:
        """Least-squares power law of the per-galaxy rms of ``values`` against stellar mass.

        Parameters
        ----------
        columns : sequence of str
            Names of the columns of ``values``.
        values : numpy.ndarray
            Star values (N, len(columns)) in the columns' schema unit.
        galaxy_index : numpy.ndarray
            Galaxy of every star (N,), indices into ``mass``.
        mass : numpy.ndarray
            Stellar mass of every galaxy (G,) in Msun.
        pivot : float
            log10 of the pivot mass in Msun.
        """
        counts = np.bincount(galaxy_index, minlength=mass.size)
        squares = np.bincount(galaxy_index, weights=(values**2).mean(axis=1), minlength=mass.size)
        used = counts > 0
        rms = np.sqrt(squares[used] / counts[used])
        if np.any(rms <= 0):
            raise ValueError(f"columns {tuple(columns)}: a galaxy with zero spread")
        x = np.log10(mass[used]) - pivot
        if used.sum() >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, np.log10(rms), 1)
        else:  # one galaxy (or one mass): a constant scale
            slope, intercept = 0.0, float(np.log10(rms).mean())
        return cls(tuple(columns), float(intercept), float(slope), float(pivot))


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


def _azimuth(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos phi, sin phi`` of positions in the plane (``phi = 0`` on the axis ``R = 0``)."""
    R = torch.hypot(x, y)
    on_axis = R == 0
    safe = torch.where(on_axis, torch.ones_like(R), R)
    cos_phi = torch.where(on_axis, torch.ones_like(R), x / safe)
    sin_phi = torch.where(on_axis, torch.zeros_like(R), y / safe)
    return cos_phi, sin_phi


def _velocity_slots(names: Sequence[str]) -> tuple[int, int, int, int]:
    """Indices of ``x, y, vx, vy`` in ``names`` (physical names)."""
    missing = [n for n in ("x", "y", "vx", "vy") if n not in names]
    if missing:
        raise ValueError(
            f"the cylindrical velocity frame needs the columns x, y, vx, vy; missing {missing}"
        )
    return names.index("x"), names.index("y"), names.index("vx"), names.index("vy")


def _rotate_velocities(
    stars: torch.Tensor, names: Sequence[str], to_cylindrical: bool
) -> torch.Tensor:
    """``(vx, vy) <-> (v_R, v_phi)`` at each star's position; other columns unchanged."""
    ix, iy, ivx, ivy = _velocity_slots(list(names))
    cos_phi, sin_phi = _azimuth(stars[:, ix], stars[:, iy])
    a, b = stars[:, ivx], stars[:, ivy]
    if to_cylindrical:
        first, second = cos_phi * a + sin_phi * b, cos_phi * b - sin_phi * a
    else:
        first, second = cos_phi * a - sin_phi * b, sin_phi * a + cos_phi * b
    cols = list(stars.unbind(dim=1))
    cols[ivx], cols[ivy] = first, second
    return torch.stack(cols, dim=1)


class Normalizer:
    """Maps star columns and conditions between schema units and flow space.

    Parameters
    ----------
    star_transforms : sequence of ColumnTransform
        One per star column, in the flow's data order.
    condition_transforms : sequence of ColumnTransform
        One per condition, in the flow's condition order.
    velocity_frame : {"cartesian", "cylindrical"}
        Frame of the velocities in flow space. ``"cylindrical"``: the transforms in the ``vx`` and
        ``vy`` slots are named ``v_R`` and ``v_phi`` and act on those (km/s); the star columns
        must include ``x, y, vx, vy``.
    scale_laws : sequence of ScaleLaw
        Per-galaxy mass scale laws of groups of unbounded, untransformed star columns (each
        column in at most one law); they need ``M_stars`` among the conditions.
    """

    def __init__(
        self,
        star_transforms: Sequence[ColumnTransform],
        condition_transforms: Sequence[ColumnTransform],
        velocity_frame: str = "cartesian",
        scale_laws: Sequence[ScaleLaw] = (),
    ) -> None:
        if velocity_frame not in VELOCITY_FRAMES:
            raise ValueError(
                f"velocity_frame must be one of {VELOCITY_FRAMES}, got {velocity_frame!r}"
            )
        self.star_transforms = tuple(star_transforms)
        self.condition_transforms = tuple(condition_transforms)
        self.velocity_frame = velocity_frame
        names = [t.name for t in self.star_transforms]
        if velocity_frame == "cylindrical":
            for physical, flow_name in _CYLINDRICAL_NAMES.items():
                if physical in names:
                    raise ValueError(
                        f"in the cylindrical velocity frame the {physical} slot's transform is "
                        f"named {flow_name!r}"
                    )
            _velocity_slots(self.star_names)
        elif any(n in _PHYSICAL_NAMES for n in names):
            raise ValueError("v_R / v_phi transforms belong to the cylindrical velocity frame")
        self.scale_laws = tuple(scale_laws)
        self._scaled: list[tuple[ScaleLaw, list[int]]] = []
        seen: set[str] = set()
        by_name = dict(zip(self.star_names, self.star_transforms, strict=True))
        for law in self.scale_laws:
            for col in law.columns:
                t = by_name.get(col)
                if t is None or t.bounded or t.log10 or col in seen:
                    raise ValueError(
                        f"scale law of {law.columns}: {col!r} is not an unbounded, untransformed "
                        "star column of this normaliser, or is in two laws"
                    )
                seen.add(col)
            self._scaled.append((law, [self.star_names.index(c) for c in law.columns]))
        if self.scale_laws and "M_stars" not in self.condition_names:
            raise ValueError("scale laws need M_stars among the conditions")

    @property
    def star_names(self) -> tuple[str, ...]:
        """Physical star column names (schema names), in the flow's data order."""
        return tuple(_PHYSICAL_NAMES.get(t.name, t.name) for t in self.star_transforms)

    @property
    def cylindrical(self) -> bool:
        """Whether the velocities are modelled in the cylindrical frame."""
        return self.velocity_frame == "cylindrical"

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.condition_transforms)

    @property
    def star_supports(self) -> dict[str, tuple[float, float]]:
        """Support ``(lower, upper)`` of every star column, schema units (``inf`` when open)."""
        return {n: t.support for n, t in zip(self.star_names, self.star_transforms, strict=True)}

    @classmethod
    def fit(
        cls,
        stars: np.ndarray,
        conditions: np.ndarray,
        star_names: Sequence[str] = schema.STAR_NAMES,
        condition_names: Sequence[str] = schema.CONDITION_NAMES,
        bounds: Mapping[str, Sequence[float]] | None = None,
        velocity_frame: str = "cartesian",
        scale_with_mass: Sequence[str] = (),
        galaxy_index: np.ndarray | None = None,
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
        velocity_frame : {"cartesian", "cylindrical"}
            Frame of the velocities in flow space (see the module notes); ``"cylindrical"``
            standardises ``v_R`` and ``v_phi`` [km/s] instead of ``vx`` and ``vy``.
        scale_with_mass : sequence of {"position", "velocity"}
            Groups of columns divided by a per-galaxy power law of the stellar mass before
            their standardisation (:class:`ScaleLaw`, fitted here to the rms per galaxy).
        galaxy_index : numpy.ndarray, optional
            Row of ``conditions`` of every star (N,); needed with ``scale_with_mass``.

        Raises
        ------
        ValueError
            Wrong shapes, NaN or infinite values, values outside a column's support.
        """
        stars = np.asarray(stars, dtype=np.float64)
        conditions = np.asarray(conditions, dtype=np.float64).reshape(-1, len(condition_names))
        if stars.ndim != 2 or stars.shape[1] != len(star_names):
            raise ValueError(f"stars must have shape (N, {len(star_names)})")
        if velocity_frame not in VELOCITY_FRAMES:
            raise ValueError(
                f"velocity_frame must be one of {VELOCITY_FRAMES}, got {velocity_frame!r}"
            )
        cylindrical = velocity_frame == "cylindrical"
        if cylindrical:
            if not np.all(np.isfinite(stars)):
                raise ValueError("NaN or infinite values in the training stars")
            stars = _rotate_velocities(
                torch.from_numpy(stars), list(star_names), to_cylindrical=True
            ).numpy()
        laws = []
        unknown = [g for g in scale_with_mass if g not in SCALE_GROUPS]
        if unknown:
            raise ValueError(f"unknown scale groups {unknown}; known: {sorted(SCALE_GROUPS)}")
        if scale_with_mass:
            if galaxy_index is None:
                raise ValueError("scale_with_mass needs galaxy_index (the galaxy of every star)")
            galaxy_index = np.asarray(galaxy_index, dtype=np.int64)
            if galaxy_index.shape != (stars.shape[0],) or galaxy_index.min() < 0 or (
                galaxy_index.max() >= conditions.shape[0]
            ):
                raise ValueError("galaxy_index must give a row of conditions for every star")
            if "M_stars" not in condition_names:
                raise ValueError("scale_with_mass needs M_stars among the conditions")
            mass = conditions[:, list(condition_names).index("M_stars")]
            stars = stars.copy()
            for group in scale_with_mass:
                missing = [c for c in SCALE_GROUPS[group] if c not in star_names]
                if missing:
                    raise ValueError(f"scale group {group!r} needs the star columns {missing}")
                cols = [list(star_names).index(c) for c in SCALE_GROUPS[group]]
                law = ScaleLaw.fit(SCALE_GROUPS[group], stars[:, cols], galaxy_index, mass)
                log_s = law.log_scale(torch.from_numpy(mass[galaxy_index])).numpy()
                stars[:, cols] /= np.exp(log_s)[:, None]
                laws.append(law)
        star_t = []
        for i, n in enumerate(star_names):
            t = _fit_column(
                n, stars[:, i], schema.column(n).transform == "log10", _schema_bounds(n, bounds)
            )
            if cylindrical and n in _CYLINDRICAL_NAMES:
                t = ColumnTransform(_CYLINDRICAL_NAMES[n], t.log10, t.mean, t.std)
            star_t.append(t)
        cond_t = [
            _fit_column(n, conditions[:, i], schema.column(n).transform == "log10")
            for i, n in enumerate(condition_names)
        ]
        return cls(star_t, cond_t, velocity_frame, laws)

    # -- stars ----------------
    def inside_support(self, stars: torch.Tensor) -> torch.Tensor:
        """Boolean mask (N,): the stars whose every column lies strictly inside its support."""
        mask = torch.ones(stars.shape[0], dtype=torch.bool, device=stars.device)
        for i, t in enumerate(self.star_transforms):
            mask &= t.inside(stars[:, i])
        return mask

    def _log_scales(self, conditions: torch.Tensor | None, n: int, like: torch.Tensor):
        """Natural-log scale of every law per star, (n,) each, from conditions (C,) or (n, C)."""
        if conditions is None:
            raise ValueError("this normaliser scales columns with the stellar mass: give the "
                             "conditions of the stars (schema units)")
        c = conditions.to(like.dtype)
        if c.dim() == 1:
            c = c.expand(n, -1)
        if c.shape != (n, len(self.condition_transforms)):
            raise ValueError(f"conditions must have shape ({len(self.condition_transforms)},) "
                             f"or ({n}, {len(self.condition_transforms)})")
        mass = c[:, self.condition_names.index("M_stars")]
        return [law.log_scale(mass) for law, _ in self._scaled]

    def _apply_scales(self, stars: torch.Tensor, log_scales, divide: bool) -> torch.Tensor:
        cols = list(stars.unbind(dim=1))
        for (_, idx), log_s in zip(self._scaled, log_scales, strict=True):
            factor = torch.exp(-log_s if divide else log_s)
            for i in idx:
                cols[i] = cols[i] * factor
        return torch.stack(cols, dim=1)

    def stars_to_flow(
        self, stars: torch.Tensor, conditions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Star values (N, D) in schema units -> flow space (N, D) and log-Jacobian (N,).

        A star outside the support of a column gets the log-Jacobian ``-inf`` (zero density) and
        finite placeholder flow values, so that ``log_prob + log_jacobian`` is ``-inf`` for it.
        The cylindrical velocity frame adds nothing to the log-Jacobian (a rotation); each mass
        scale law adds ``-n log s`` for its ``n`` columns. ``conditions`` (schema units, shape
        (C,) for all stars or (N, C)) are needed only by normalisers with scale laws.
        """
        if self.cylindrical:
            stars = _rotate_velocities(stars, self.star_names, to_cylindrical=True)
        cols, logjac = [], torch.zeros(stars.shape[0], dtype=stars.dtype, device=stars.device)
        if self._scaled:
            log_scales = self._log_scales(conditions, stars.shape[0], stars)
            stars = self._apply_scales(stars, log_scales, divide=True)
            for (_, idx), log_s in zip(self._scaled, log_scales, strict=True):
                logjac = logjac - len(idx) * log_s
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

    def stars_from_flow(
        self, values: torch.Tensor, conditions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Flow-space star values (N, D) -> schema units (N, D).

        ``conditions`` (schema units, (C,) or (N, C)) are needed only with scale laws.
        """
        cols = [t.inverse(values[:, i]) for i, t in enumerate(self.star_transforms)]
        stars = torch.stack(cols, dim=1)
        if self._scaled:
            log_scales = self._log_scales(conditions, stars.shape[0], stars)
            stars = self._apply_scales(stars, log_scales, divide=False)
        if self.cylindrical:
            stars = _rotate_velocities(stars, self.star_names, to_cylindrical=False)
        return stars

    # -- conditions ----------------
    def conditions_to_flow(self, conditions: torch.Tensor) -> torch.Tensor:
        """Conditions (..., C) in schema units -> flow space (..., C). No Jacobian."""
        cols = [t.forward(conditions[..., i]) for i, t in enumerate(self.condition_transforms)]
        return torch.stack(cols, dim=-1)

    def subset(self, star_names: Sequence[str]) -> Normalizer:
        """The normaliser of a subset of the star columns (for marginal flows).

        In the cylindrical velocity frame a subset with ``vx`` and ``vy`` keeps the frame (and
        needs ``x`` and ``y``); a subset without velocities is Cartesian.
        """
        by_name = dict(zip(self.star_names, self.star_transforms, strict=True))
        star_names = list(star_names)
        frame = self.velocity_frame
        if self.cylindrical and not any(n in _CYLINDRICAL_NAMES for n in star_names):
            frame = "cartesian"
        laws = []
        for law in self.scale_laws:
            kept = tuple(c for c in law.columns if c in star_names)
            if kept:
                laws.append(ScaleLaw(kept, law.log10_scale, law.slope, law.pivot))
        return Normalizer(
            [by_name[n] for n in star_names], self.condition_transforms, frame, laws
        )

    # -- files ----------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "stars": [asdict(t) for t in self.star_transforms],
            "conditions": [asdict(t) for t in self.condition_transforms],
            "velocity_frame": self.velocity_frame,
            "scale_laws": [asdict(law) for law in self.scale_laws],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                [ColumnTransform(**t) for t in data["stars"]],
                [ColumnTransform(**t) for t in data["conditions"]],
                # files written before the frame existed are Cartesian
                data.get("velocity_frame", "cartesian"),
                [ScaleLaw(**law) for law in data.get("scale_laws", [])],
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"invalid normaliser description: {err}") from err

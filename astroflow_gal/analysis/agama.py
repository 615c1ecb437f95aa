"""Hand-off of a learned eDF to Agama: densities, distribution functions, particles, potentials.

Agama (https://github.com/GalacticDynamics-Oxford/Agama) is an optional partner. The callables
built here (:func:`to_agama_density`, :func:`to_agama_df`) and :func:`to_agama_particles` need only
numpy and torch; :func:`stellar_potential` imports Agama when called. :func:`compare_potentials`
takes Agama potentials or any callable that returns accelerations.

Units are Agama's after ``agama.setUnits(mass=1, length=1, velocity=1)``: Msun, kpc, km/s (so
densities in Msun/kpc3, phase-space densities in Msun/(kpc3 (km/s)3), accelerations in
(km/s)2/kpc). Functions that create Agama objects set these units when none are set, and refuse
to work under other units.

Agama's own ``GalaxyModel`` class needs an action-based DF f(J); the learned eDF is a function of
positions and velocities, not of actions, so it cannot be passed there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import astropy.units as u
import numpy as np
import torch

from ..data import schema
from ..data._checks import in_unit, points
from ..data._checks import integer as _positive_int

__all__ = [
    "AGAMA_INSTALL_HINT",
    "AgamaDensity",
    "AgamaDF",
    "AxisymmetrizedDensity",
    "compare_potentials",
    "stellar_potential",
    "to_agama_density",
    "to_agama_df",
    "to_agama_particles",
]

AGAMA_INSTALL_HINT = (
    "Agama is not installed. It is not on the package index for offline machines (its source "
    "package downloads code at install time): build it by hand from its repository "
    "https://github.com/GalacticDynamics-Oxford/Agama -- install GSL and Eigen (Debian: "
    "apt-get install libgsl-dev libeigen3-dev), then in the checkout run "
    "CFLAGS=-I/usr/include/eigen3 python setup.py install (answer 'no' to its questions about "
    "optional parts); see 'Installing Agama' in docs/agama.md."
)

#: Star columns over which a population (``select``) may be cut, and their units.
SELECT_NAMES: tuple[str, ...] = ("Z", "feh", "ofe", "age")
_CHEM_NAMES: tuple[str, ...] = ("Z", "feh", "ofe", "age")
DEFAULT_R_MAX = 1000.0  # kpc; the densities are exactly 0 beyond
_BATCH = 65_536


# ---------------------------------------------------------------------------------------------
# Agama itself
def import_agama() -> Any:
    """Import Agama and make sure it works in Msun, kpc, km/s.

    When no units are set, calls ``agama.setUnits(mass=1, length=1, velocity=1)``. Set them
    yourself before creating any Agama object of your own: changing units afterwards invalidates
    objects created before.

    Returns
    -------
    module
        The ``agama`` module.

    Raises
    ------
    ImportError
        If Agama is not installed (the message says how to build it).
    RuntimeError
        If Agama's units are set to something other than Msun, kpc, km/s.
    """
    try:
        import agama
    except ImportError as err:
        raise ImportError(AGAMA_INSTALL_HINT) from err
    units = agama.getUnits()
    if not units:
        agama.setUnits(mass=1, length=1, velocity=1)
        return agama
    # Agama returns Quantities when astropy is loaded, plain numbers (Msun, kpc, km/s) otherwise.
    wanted = {"mass": u.Msun, "length": u.kpc, "velocity": u.km / u.s}
    got = {
        k: u.Quantity(units[k], unit).to_value(unit) if k in units else math.nan
        for k, unit in wanted.items()
    }
    if any(not math.isclose(v, 1.0, rel_tol=1e-9) for v in got.values()):
        raise RuntimeError(
            f"Agama's units are {units}; these adapters work in Msun, kpc, km/s: call "
            "agama.setUnits(mass=1, length=1, velocity=1) before creating any Agama object"
        )
    return agama


# ---------------------------------------------------------------------------------------------
# helpers
def _check_model(model: Any, marginal: str | None = None) -> None:
    if "M_stars" not in getattr(model, "condition_names", ()):
        raise ValueError("model must be conditioned on M_stars (the mass the densities carry)")
    if marginal is not None and marginal not in model.marginals:
        raise ValueError(
            f"model carries no {marginal!r} marginal flow (it has "
            f"{sorted(model.marginals) or 'none'}); train it with fit(..., marginals=...)"
        )


def _condition_values(model: Any, conditions: Any, allow_extrapolation: bool) -> np.ndarray:
    if not isinstance(conditions, Mapping):
        raise TypeError(
            f"conditions must be a mapping of condition name to value, got "
            f"{type(conditions).__name__}"
        )
    values = model._conditions(conditions, {}, allow_extrapolation)
    if values.ndim != 1:
        raise ValueError("conditions must describe one galaxy (one value per condition)")
    return values


def _m_stars(model: Any, values: np.ndarray) -> float:
    return float(values[list(model.condition_names).index("M_stars")])


def _points(values: Any, ncol: int, name: str) -> np.ndarray:
    # positions: kpc (a length Quantity is converted); phase space: plain numbers in kpc and km/s
    return points(values, u.kpc if ncol == 3 else u.dimensionless_unscaled, name, ncol)


def _length(value: Any, name: str) -> float:
    if isinstance(value, u.Quantity):
        value = in_unit(value, u.kpc, name).value
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite length (kpc), got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# density
class AgamaDensity:
    """Stellar mass density of one galaxy from the model's position-marginal flow.

    ``rho(x) = M_stars * p(x | conditions)`` in Msun/kpc3; exactly 0 beyond ``r_max``. Call it on
    a float64 array of shape (N, 3) in kpc (what Agama passes); it returns a float64 array (N,).
    Create it with :func:`to_agama_density`.

    Attributes
    ----------
    mass : float
        ``M_stars`` in Msun: the integral of the density over all space.
    r_max : float
        Radius in kpc beyond which the density is 0.
    n_points : int
        Points evaluated so far (Agama's calls are counted here).
    """

    def __init__(self, model: Any, values: np.ndarray, r_max: float, batch_size: int) -> None:
        self._model = model
        self._values = values
        self._flow = model.marginals["position"]
        self._normalizer = model.normalizer.subset(schema.POSITION_NAMES)
        self.mass = _m_stars(model, values)
        self.r_max = r_max
        self.batch_size = batch_size
        self.n_points = 0

    def __call__(self, xyz: Any) -> np.ndarray:
        """Density in Msun/kpc3 at positions ``xyz`` (N, 3) in kpc."""
        arr = _points(xyz, 3, "positions")
        out = np.zeros(arr.shape[0], dtype=np.float64)
        inside = np.einsum("ij,ij->i", arr, arr) <= self.r_max**2
        if np.any(inside):
            log_p = self._model._evaluate(
                self._flow, self._normalizer, arr[inside], self._values, self.batch_size
            )
            out[inside] = self.mass * np.exp(log_p)
        self.n_points += arr.shape[0]
        return out

    def axisymmetrized(self, n_phi: int = 8) -> AxisymmetrizedDensity:
        """This density averaged over azimuth (``n_phi`` angles) and over ``z -> -z``.

        What an axisymmetric (``symmetry="a"``, ``mmax=0``) Agama expansion should be given: such
        an expansion reads its input at one azimuth and at ``z >= 0`` only, while the learned
        density is only approximately axisymmetric and reflection-symmetric.

        Parameters
        ----------
        n_phi : int, optional
            Azimuths averaged over (evenly spaced); each point costs ``2 n_phi`` evaluations.

        Returns
        -------
        AxisymmetrizedDensity
            Callable (N, 3) [kpc] -> (N,) [Msun/kpc3], with the same total mass.
        """
        return AxisymmetrizedDensity(self, _positive_int(n_phi, "n_phi"))

    def __repr__(self) -> str:
        return f"<AgamaDensity M_stars={self.mass:.4g} Msun, r_max={self.r_max:g} kpc>"


class AxisymmetrizedDensity:
    """Average of a density callable over azimuth and over ``z -> -z`` (Msun/kpc3).

    Made by :meth:`AgamaDensity.axisymmetrized`.

    Parameters
    ----------
    density : callable
        Float64 (N, 3) [kpc] -> (N,) [Msun/kpc3].
    n_phi : int
        Evenly spaced azimuths averaged over.
    """

    def __init__(self, density: AgamaDensity, n_phi: int) -> None:
        self.density = density
        self.n_phi = n_phi
        self.mass = density.mass
        self.n_points = 0

    def __call__(self, xyz: Any) -> np.ndarray:
        """Axisymmetrised density in Msun/kpc3 at positions ``xyz`` (N, 3) in kpc."""
        arr = _points(xyz, 3, "positions")
        radius = np.hypot(arr[:, 0], arr[:, 1])
        phi = 2 * np.pi * np.arange(self.n_phi) / self.n_phi
        pts = np.empty((2, self.n_phi, arr.shape[0], 3))
        pts[:, :, :, 0] = radius[None, None, :] * np.cos(phi)[None, :, None]
        pts[:, :, :, 1] = radius[None, None, :] * np.sin(phi)[None, :, None]
        pts[0, :, :, 2] = arr[:, 2]
        pts[1, :, :, 2] = -arr[:, 2]
        values = self.density(pts.reshape(-1, 3)).reshape(2 * self.n_phi, arr.shape[0])
        self.n_points += arr.shape[0]
        return values.mean(axis=0)


def to_agama_density(
    model: Any,
    conditions: Mapping[str, Any],
    *,
    r_max: Any = DEFAULT_R_MAX,
    batch_size: int = _BATCH,
    allow_extrapolation: bool = False,
) -> AgamaDensity:
    """The galaxy's stellar mass density as a callable for Agama.

    Parameters
    ----------
    model : GalaxyModel
        A model with a ``"position"`` marginal flow, conditioned on ``M_stars``.
    conditions : mapping
        The galaxy's conditions (``M_stars`` in Msun or a mass Quantity, ``tau50`` and ``tau10``
        in Gyr, ``Z_av`` dimensionless).
    r_max : float or Quantity, optional
        Radius (kpc) beyond which the density is exactly 0; default 1000 kpc, where the flow's
        tails are far below float64's smallest number anyway.
    batch_size : int, optional
        Points per flow evaluation (bounds memory).
    allow_extrapolation : bool, optional
        Accept conditions far outside the model's training range.

    Returns
    -------
    AgamaDensity
        ``f(xyz)``: float64 array (N, 3) in kpc -> float64 array (N,) in Msun/kpc3, finite
        everywhere; usable as ``agama.Density(density=f, symmetry="a")`` or as the ``density`` of
        ``agama.Potential(type="CylSpline", ...)`` (prefer :func:`stellar_potential`, which
        tabulates it first).
    """
    _check_model(model, "position")
    values = _condition_values(model, conditions, allow_extrapolation)
    return AgamaDensity(
        model, values, _length(r_max, "r_max"), _positive_int(batch_size, "batch_size")
    )


# ---------------------------------------------------------------------------------------------
# distribution function
def _select_box(select: Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    box: dict[str, tuple[float, float]] = {}
    for name, rng in (select or {}).items():
        if name not in SELECT_NAMES:
            raise ValueError(f"select: unknown column {name!r}; choose from {list(SELECT_NAMES)}")
        try:
            lo, hi = rng
        except (TypeError, ValueError) as err:
            raise ValueError(f"select[{name!r}] must be a (low, high) pair, got {rng!r}") from err
        lo_v = float(_select_value(name, lo))
        hi_v = float(_select_value(name, hi))
        if not lo_v < hi_v:
            raise ValueError(f"select[{name!r}]: low must be below high, got {lo_v}, {hi_v}")
        box[name] = (lo_v, hi_v)
    return box


def _select_value(name: str, value: Any) -> float:
    """A value of star column ``name`` in its schema unit (Quantity or plain number)."""
    if isinstance(value, u.Quantity):
        value = in_unit(value, schema.column(name).unit, f"select[{name!r}]").value
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"select[{name!r}] holds NaN")
    return value


def _in_box(values: np.ndarray, names: tuple[str, ...], box: Mapping[str, tuple[float, float]]):
    keep = np.ones(values.shape[0], dtype=bool)
    for name, (lo, hi) in box.items():
        col = values[:, names.index(name)]
        keep &= (col >= lo) & (col <= hi)
    return keep


class AgamaDF:
    """Mass-weighted phase-space DF of one galaxy (or one population of it), for Agama.

    ``f(x, v)`` in Msun/(kpc3 (km/s)3): without a population, ``M_stars`` times the model's
    phase-space marginal flow; with one, ``M_stars`` times the eDF integrated over the population's
    box in (Z, [Fe/H], [O/Fe], age) by importance sampling (see :func:`to_agama_df`). Call it on a
    float64 array (N, 6) of ``x, y, z`` [kpc] and ``vx, vy, vz`` [km/s]; it returns float64 (N,).
    Create it with :func:`to_agama_df`.

    Attributes
    ----------
    mass : float
        ``M_stars`` in Msun.
    population_fraction : float or None
        For a population: the fraction of the galaxy's stars inside the box, from the pilot
        sample (its binomial standard error in ``population_fraction_error``).
    n_nodes : int
        Chemistry/age nodes per phase-space point (0 without a population).
    n_points : int
        Phase-space points evaluated so far.
    """

    def __init__(
        self,
        model: Any,
        values: np.ndarray,
        box: Mapping[str, tuple[float, float]],
        n_nodes: int,
        n_pilot: int,
        seed: int,
        batch_size: int,
        r_max: float,
    ) -> None:
        self._model = model
        self._values = values
        self.mass = _m_stars(model, values)
        self.box = dict(box)
        self.batch_size = batch_size
        self.r_max = r_max
        self.n_points = 0
        self.population_fraction: float | None = None
        self.population_fraction_error: float | None = None
        self.n_nodes = 0
        if box:
            self._build_nodes(n_nodes, n_pilot, seed)

    # Importance-sampling nodes in u = (log10 Z, feh, ofe, age), with weights 1/q(u) times the
    # Jacobian Z ln 10 of Z -> log10 Z; nodes outside the box weigh 0.
    def _build_nodes(self, n_nodes: int, n_pilot: int, seed: int) -> None:
        model = self._model
        names = tuple(model.star_names)
        conds = dict(zip(model.condition_names, self._values, strict=True))
        stars = model.sample(n_pilot, conds, seed=seed, allow_extrapolation=True)
        chem = np.stack([np.asarray(stars[n].value, dtype=np.float64) for n in _CHEM_NAMES], 1)
        keep = _in_box(chem, _CHEM_NAMES, self.box)
        n_in = int(keep.sum())
        self.population_fraction = n_in / n_pilot
        frac = self.population_fraction
        self.population_fraction_error = math.sqrt(max(frac * (1 - frac), 1.0 / n_pilot) / n_pilot)
        if n_in < 50:
            raise ValueError(
                f"only {n_in} of {n_pilot} pilot stars fall in the selection {self.box}: widen it "
                "or raise n_pilot"
            )
        ulog = chem[keep].copy()
        ulog[:, 0] = np.log10(ulog[:, 0])
        mean = ulog.mean(axis=0)
        cov = np.cov(ulog, rowvar=False) + 1e-10 * np.eye(4)
        # Defensive mixture: the pilot's Gaussian widened 1.5x and 3x (70 % / 30 %).
        scales = (1.5, 3.0)
        weights = (0.7, 0.3)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
        chol = np.linalg.cholesky(cov)
        which = rng.random(n_nodes) < weights[0]
        eps = rng.standard_normal((n_nodes, 4))
        nodes = mean + np.where(which[:, None], scales[0], scales[1]) * (eps @ chol.T)
        diff = nodes - mean
        maha = np.einsum("ij,ij->i", diff @ np.linalg.inv(cov), diff)
        log_det = float(np.linalg.slogdet(cov)[1])
        q = np.zeros(n_nodes)
        for s, w in zip(scales, weights, strict=True):
            # 4-D Gaussian with covariance s^2 cov
            log_norm = -0.5 * log_det - 4 * math.log(s) - 2 * math.log(2 * math.pi)
            q += w * np.exp(-0.5 * maha / s**2 + log_norm)
        phys = nodes.copy()
        phys[:, 0] = 10.0 ** nodes[:, 0]
        inside = _in_box(phys, _CHEM_NAMES, self.box)
        weight = np.where(inside, phys[:, 0] * math.log(10.0) / q, 0.0)
        self._nodes = phys[inside]
        self._weights = weight[inside]
        self._n_drawn = n_nodes
        self.n_nodes = n_nodes
        self._order = [names.index(n) for n in (*schema.PHASE_SPACE_NAMES, *_CHEM_NAMES)]

    def _marginal(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = self._model
        log_p = model._evaluate(
            model.marginals["phase_space"],
            model.normalizer.subset(schema.PHASE_SPACE_NAMES),
            arr,
            self._values,
            self.batch_size,
        )
        return np.exp(log_p), np.zeros(arr.shape[0])

    def _population(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = self._model
        k = self._nodes.shape[0]
        value = np.zeros(arr.shape[0])
        error = np.zeros(arr.shape[0])
        if k == 0:
            return value, error
        rows = max(1, self.batch_size // k)
        for start in range(0, arr.shape[0], rows):
            xv = arr[start : start + rows]
            full = np.empty((xv.shape[0] * k, 10))
            full[:, self._order[:6]] = np.repeat(xv, k, axis=0)
            full[:, self._order[6:]] = np.tile(self._nodes, (xv.shape[0], 1))
            log_f = model._evaluate(model.flow, model.normalizer, full, self._values, None)
            terms = np.exp(log_f).reshape(xv.shape[0], k) * self._weights
            # All drawn nodes count (those outside the box contribute 0).
            total = terms.sum(axis=1)
            mean = total / self._n_drawn
            second = (terms**2).sum(axis=1) / self._n_drawn
            var = np.maximum(second - mean**2, 0.0) / max(self._n_drawn - 1, 1)
            value[start : start + xv.shape[0]] = mean
            error[start : start + xv.shape[0]] = np.sqrt(var)
        return value, error

    def with_error(self, xv: Any) -> tuple[np.ndarray, np.ndarray]:
        """DF and its importance-sampling standard error, both in Msun/(kpc3 (km/s)3).

        Parameters
        ----------
        xv : array of shape (N, 6)
            Positions [kpc] and velocities [km/s].

        Returns
        -------
        value, error : numpy.ndarray
            Float64 arrays (N,); ``error`` is 0 without a population.
        """
        arr = _points(xv, 6, "phase-space points")
        value = np.zeros(arr.shape[0])
        error = np.zeros(arr.shape[0])
        inside = np.einsum("ij,ij->i", arr[:, :3], arr[:, :3]) <= self.r_max**2
        if np.any(inside):
            f, e = self._population(arr[inside]) if self.box else self._marginal(arr[inside])
            value[inside] = self.mass * f
            error[inside] = self.mass * e
        self.n_points += arr.shape[0]
        return value, error

    def __call__(self, xv: Any) -> np.ndarray:
        """DF in Msun/(kpc3 (km/s)3) at ``xv`` (N, 6): kpc and km/s."""
        return self.with_error(xv)[0]

    def __repr__(self) -> str:
        what = f"population {self.box}" if self.box else "all stars"
        return f"<AgamaDF M_stars={self.mass:.4g} Msun, {what}>"


def to_agama_df(
    model: Any,
    conditions: Mapping[str, Any],
    select: Mapping[str, Any] | None = None,
    *,
    n_nodes: int = 256,
    n_pilot: int = 20_000,
    seed: int = 0,
    r_max: Any = DEFAULT_R_MAX,
    batch_size: int = _BATCH,
    allow_extrapolation: bool = False,
) -> AgamaDF:
    """The galaxy's phase-space DF as a callable for Agama (e.g. ``agama.integrateNdim``).

    Without ``select`` it is ``M_stars`` times the model's phase-space marginal flow. With
    ``select`` it is one population: the eDF integrated over a box in chemistry and age::

        f_pop(x, v) = M_stars * ∫_box f(x, v, Z, [Fe/H], [O/Fe], age) dZ d[Fe/H] d[O/Fe] d(age),

    estimated by importance sampling with ``n_nodes`` fixed nodes (the same for every point, so
    the callable is deterministic, as Agama's integrators need). The nodes are drawn, in
    (log10 Z, [Fe/H], [O/Fe], age), from a mixture of two Gaussians (the covariance of a pilot
    sample's in-box stars widened 1.5x and 3x, weights 0.7 and 0.3); nodes outside the box weigh 0.
    The estimate is unbiased; its standard error per point is returned by
    :meth:`AgamaDF.with_error` (measured on the shipped model: see docs/agama.md). Columns not
    named in ``select`` are integrated over their whole range.

    Parameters
    ----------
    model : GalaxyModel
        The model; it needs a ``"phase_space"`` marginal flow when ``select`` is None.
    conditions : mapping
        The galaxy's conditions (``M_stars`` in Msun or a mass Quantity, ``tau50``, ``tau10`` in
        Gyr, ``Z_av`` dimensionless).
    select : mapping of str to (low, high), optional
        Ranges of ``"age"`` [Gyr], ``"feh"``, ``"ofe"`` [dex] or ``"Z"`` [dimensionless]
        (Quantities or numbers in those units), inclusive.
    n_nodes : int, optional
        Chemistry/age nodes per phase-space point (cost: ``n_nodes`` eDF evaluations per point).
    n_pilot : int, optional
        Stars sampled to place the nodes (and to estimate the population's mass fraction).
    seed : int, optional
        Seed of the pilot sample and the nodes.
    r_max : float or Quantity, optional
        Radius (kpc) beyond which the DF is exactly 0.
    batch_size : int, optional
        Rows per flow evaluation (bounds memory).
    allow_extrapolation : bool, optional
        Accept conditions far outside the model's training range.

    Returns
    -------
    AgamaDF
        ``f(xv)``: float64 (N, 6) in kpc and km/s -> float64 (N,) in Msun/(kpc3 (km/s)3).
    """
    _check_model(model, None if select else "phase_space")
    values = _condition_values(model, conditions, allow_extrapolation)
    box = _select_box(select)
    if box and not set(_CHEM_NAMES) <= set(model.star_names):
        raise ValueError(f"a population needs the eDF columns {list(_CHEM_NAMES)}")
    return AgamaDF(
        model,
        values,
        box,
        _positive_int(n_nodes, "n_nodes"),
        _positive_int(n_pilot, "n_pilot"),
        int(seed),
        _positive_int(batch_size, "batch_size"),
        _length(r_max, "r_max"),
    )


# ---------------------------------------------------------------------------------------------
# particles
def to_agama_particles(
    model: Any,
    n: int,
    conditions: Mapping[str, Any],
    seed: int,
    *,
    allow_extrapolation: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Stars sampled from the full eDF, as Agama particles.

    Parameters
    ----------
    model : GalaxyModel
        The model (conditioned on ``M_stars``).
    n : int
        Number of particles.
    conditions : mapping
        The galaxy's conditions (``M_stars`` in Msun or a mass Quantity, ``tau50``, ``tau10`` in
        Gyr, ``Z_av`` dimensionless).
    seed : int
        Random seed of the sample.
    allow_extrapolation : bool, optional
        Accept conditions far outside the model's training range.

    Returns
    -------
    xv : numpy.ndarray
        Float64 (n, 6): ``x, y, z`` [kpc], ``vx, vy, vz`` [km/s].
    masses : numpy.ndarray
        Float64 (n,), each ``M_stars / n`` [Msun]; they sum to ``M_stars``. Use as
        ``agama.Potential(type="CylSpline", particles=(xv[:, :3], masses), symmetry="a")``.
    """
    _check_model(model)
    n = _positive_int(n, "n")
    values = _condition_values(model, conditions, allow_extrapolation)
    conds = dict(zip(model.condition_names, values, strict=True))
    stars = model.sample(n, conds, seed=seed, allow_extrapolation=allow_extrapolation)
    xv = np.stack(
        [np.asarray(stars[c].to_value(schema.column(c).unit), dtype=np.float64)
         for c in schema.PHASE_SPACE_NAMES],
        axis=1,
    )
    masses = np.full(n, _m_stars(model, values) / n, dtype=np.float64)
    return np.ascontiguousarray(xv), masses


# ---------------------------------------------------------------------------------------------
# potentials
def default_grid(xyz: np.ndarray) -> dict[str, float]:
    """Grid extents (kpc) for a galaxy whose stars sit at ``xyz`` (N, 3) in kpc.

    ``Rmin = 0.01 r50``, ``zmin = min(Rmin, 0.1 |z|50)``, ``Rmax = zmax = 3 r99.9``, where
    ``r50`` and ``r99.9`` are the median and 99.9th percentile spherical radii and ``|z|50`` the
    median height.

    Parameters
    ----------
    xyz : array of shape (N, 3)
        Star positions in kpc.

    Returns
    -------
    dict
        ``Rmin, Rmax, zmin, zmax`` in kpc.
    """
    arr = _points(xyz, 3, "xyz")
    r = np.sqrt(np.einsum("ij,ij->i", arr, arr))
    r50, r999 = np.percentile(r, [50, 99.9])
    z50 = float(np.median(np.abs(arr[:, 2])))
    rmin = 0.01 * float(r50)
    return {
        "Rmin": rmin,
        "Rmax": 3.0 * float(r999),
        "zmin": min(rmin, 0.1 * z50) if z50 > 0 else rmin,
        "zmax": 3.0 * float(r999),
    }


def stellar_potential(
    model: Any,
    conditions: Mapping[str, Any],
    kind: str = "cylspline",
    *,
    source: str = "density",
    grid: Mapping[str, float] | None = None,
    grid_size: int = 40,
    lmax: int = 8,
    n_particles: int = 300_000,
    n_phi: int = 16,
    seed: int = 0,
    return_info: bool = False,
    allow_extrapolation: bool = False,
) -> Any:
    """Gravitational potential of the galaxy's stars, built by Agama.

    With ``source="density"`` the position-marginal density (:func:`to_agama_density`) is first
    tabulated on a grid (``agama.Density(type="DensityAzimuthalHarmonic", mmax=0, symmetry="a",
    fixOrder=True, ...)`` for CylSpline; ``type="DensitySphericalHarmonic"`` with ``lmax`` for
    Multipole), after averaging over azimuth and ``z -> -z``: ``2 n_phi`` flow evaluations at
    each of a couple of thousand nodes instead of the hundreds of thousands of points a direct
    build asks for. With ``source="particles"`` the potential comes from ``n_particles``
    stars of the full eDF (:func:`to_agama_particles`).

    CylSpline suits discs; a Multipole expansion is wrong for thin discs (measured on an
    exponential disc: 40 % off in v_circ at lmax 8) and is meant for spheroids.

    Parameters
    ----------
    model : GalaxyModel
        The model (with a ``"position"`` marginal for ``source="density"``).
    conditions : mapping
        The galaxy's conditions (``M_stars`` in Msun or a mass Quantity, ``tau50``, ``tau10`` in
        Gyr, ``Z_av`` dimensionless).
    kind : {"cylspline", "multipole"}
        Agama's potential expansion.
    source : {"density", "particles"}
        Where the mass comes from.
    grid : mapping, optional
        ``Rmin, Rmax, zmin, zmax`` in kpc (Multipole uses ``Rmin, Rmax`` as ``rmin, rmax``);
        default :func:`default_grid` of 20,000 sampled stars (or of the particles).
    grid_size : int, optional
        Nodes per grid dimension, for the tabulated density and the potential.
    lmax : int, optional
        Spherical-harmonic order of a Multipole expansion.
    n_particles : int, optional
        Particles for ``source="particles"``.
    n_phi : int, optional
        Azimuths over which the density is averaged (with ``z -> -z``) before it is tabulated
        (:meth:`AgamaDensity.axisymmetrized`): an axisymmetric expansion reads its input at one
        azimuth only.
    seed : int, optional
        Seed of the sampled stars.
    return_info : bool, optional
        Also return a dict with ``build_seconds`` (wall time of the Agama build, s),
        ``density_points`` (flow evaluations of the density), ``grid`` and the tabulated
        density's ``total_mass`` [Msun].
    allow_extrapolation : bool, optional
        Accept conditions far outside the model's training range.

    Returns
    -------
    agama.Potential or (agama.Potential, dict)
        The potential in Agama's units (Msun, kpc, km/s).

    Raises
    ------
    ImportError
        If Agama is not installed.
    """
    kind = kind.lower()
    if kind not in ("cylspline", "multipole"):
        raise ValueError(f"kind must be 'cylspline' or 'multipole', got {kind!r}")
    if source not in ("density", "particles"):
        raise ValueError(f"source must be 'density' or 'particles', got {source!r}")
    _check_model(model, "position" if source == "density" else None)
    grid_size = _positive_int(grid_size, "grid_size")
    if grid_size < 4:
        raise ValueError(f"grid_size must be at least 4, got {grid_size}")
    lmax = _positive_int(lmax, "lmax")
    values = _condition_values(model, conditions, allow_extrapolation)
    agama = import_agama()
    conds = dict(zip(model.condition_names, values, strict=True))

    particles = None
    if source == "particles":
        particles = to_agama_particles(
            model, n_particles, conds, seed, allow_extrapolation=allow_extrapolation
        )
    if grid is None:
        if particles is not None:
            xyz = particles[0][:, :3]
        else:
            s = model.sample(20_000, conds, seed=seed, allow_extrapolation=True)
            xyz = np.stack([np.asarray(s[c].to_value(u.kpc)) for c in ("x", "y", "z")], 1)
        grid = default_grid(xyz)
    grid = {k: _length(grid[k], f"grid[{k!r}]") for k in ("Rmin", "Rmax", "zmin", "zmax")}

    info: dict[str, Any] = {"kind": kind, "source": source, "grid": dict(grid),
                            "density_points": 0}
    start = time.perf_counter()
    if particles is not None:
        xv, masses = particles
        common = {"particles": (xv[:, :3], masses), "symmetry": "a"}
        info["total_mass"] = float(masses.sum())
    else:
        raw = to_agama_density(model, conds, allow_extrapolation=allow_extrapolation)
        density = raw.axisymmetrized(n_phi)
        if kind == "cylspline":
            table = agama.Density(
                density=density, type="DensityAzimuthalHarmonic", symmetry="a", mmax=0,
                fixOrder=True, gridsizer=grid_size, rmin=grid["Rmin"], rmax=grid["Rmax"],
                gridsizez=grid_size, zmin=grid["zmin"], zmax=grid["zmax"],
            )
        else:
            table = agama.Density(
                density=density, type="DensitySphericalHarmonic", symmetry="a", lmax=lmax,
                mmax=0, fixOrder=True, gridsizer=grid_size, rmin=grid["Rmin"],
                rmax=grid["Rmax"],
            )
        info["density_points"] = raw.n_points
        info["total_mass"] = float(table.totalMass())
        common = {"density": table, "symmetry": "a"}
    if kind == "cylspline":
        potential = agama.Potential(
            type="CylSpline", mmax=0, gridSizeR=grid_size, gridSizez=grid_size,
            Rmin=grid["Rmin"], Rmax=grid["Rmax"], zmin=grid["zmin"], zmax=grid["zmax"], **common,
        )
    else:
        potential = agama.Potential(
            type="Multipole", lmax=lmax, mmax=0, gridSizeR=grid_size, rmin=grid["Rmin"],
            rmax=grid["Rmax"], **common,
        )
    info["build_seconds"] = time.perf_counter() - start
    return (potential, info) if return_info else potential


def accelerations(potential: Any, xyz: np.ndarray) -> np.ndarray:
    """Accelerations -grad Phi in (km/s)2/kpc at positions ``xyz`` (N, 3) in kpc.

    Parameters
    ----------
    potential : agama.Potential or callable
        Anything with a ``force(points)`` method returning accelerations (an Agama potential in
        Msun, kpc, km/s units), or a callable of a float64 torch tensor (N, 3) [kpc] returning
        accelerations (N, 3) [(km/s)2/kpc] as a tensor or array.
    xyz : array of shape (N, 3)
        Positions in kpc.

    Returns
    -------
    numpy.ndarray
        Float64 (N, 3).
    """
    arr = _points(xyz, 3, "positions")
    if hasattr(potential, "force"):
        acc = potential.force(arr)
    elif callable(potential):
        with torch.no_grad():
            acc = potential(torch.from_numpy(arr))
        if isinstance(acc, torch.Tensor):
            acc = acc.detach().cpu().numpy()
    else:
        raise TypeError(
            f"potential must have a force() method or be callable, got {type(potential).__name__}"
        )
    acc = np.asarray(acc, dtype=np.float64).reshape(arr.shape)
    return acc


def compare_potentials(
    potentials: Mapping[str, Any],
    R: Any,
    *,
    reference: str | None = None,
) -> Any:
    """Circular velocity and radial force of several potentials in the plane z = 0.

    Parameters
    ----------
    potentials : mapping of str to potential
        Agama potentials (units Msun, kpc, km/s) or callables of a torch tensor (N, 3) [kpc]
        returning accelerations [(km/s)2/kpc], by name.
    R : Quantity or array
        Cylindrical radii (kpc if plain numbers), positive.
    reference : str, optional
        The potential the others are compared with; default the first.

    Returns
    -------
    xarray.Dataset
        On dimensions ``potential`` and ``R``: ``v_circ = sqrt(R dPhi/dR)`` [km/s] from the force
        on the x axis (NaN where the force pushes outwards), ``F_R = -dPhi/dR`` [(km/s)2/kpc]
        (negative: inwards),
        ``v_circ_ratio = v_circ / v_circ(reference)`` and
        ``force_difference = (F_R - F_R(reference)) / |F_R(reference)|``. Units in each variable's
        ``attrs["units"]``.
    """
    import xarray as xr

    if not isinstance(potentials, Mapping) or not potentials:
        raise ValueError("potentials must be a non-empty mapping of name to potential")
    names = [str(k) for k in potentials]
    if reference is None:
        reference = names[0]
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not among the potentials {names}")
    radii = np.atleast_1d(
        R.to_value(u.kpc) if isinstance(R, u.Quantity) else np.asarray(R, dtype=np.float64)
    ).astype(np.float64)
    if radii.ndim != 1 or not np.all(np.isfinite(radii)) or np.any(radii <= 0):
        raise ValueError("R must be a 1-D array of positive finite radii (kpc)")
    xyz = np.zeros((radii.size, 3))
    xyz[:, 0] = radii
    f_r = np.stack([accelerations(potentials[k], xyz)[:, 0] for k in potentials])
    # F_R = -dPhi/dR is negative (inwards) where gravity binds: v_circ^2 = R dPhi/dR = -R F_R.
    v_c = np.where(f_r <= 0, np.sqrt(np.maximum(-radii * f_r, 0.0)), np.nan)
    ref = names.index(reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = v_c / v_c[ref]
        dforce = (f_r - f_r[ref]) / np.abs(f_r[ref])
    return xr.Dataset(
        {
            "v_circ": (("potential", "R"), v_c, {"units": "km / s"}),
            "F_R": (("potential", "R"), f_r, {"units": "km2 / (kpc s2)"}),
            "v_circ_ratio": (("potential", "R"), ratio, {"units": ""}),
            "force_difference": (("potential", "R"), dforce, {"units": ""}),
        },
        coords={"potential": names, "R": ("R", radii, {"units": "kpc"})},
        attrs={"reference": reference},
    )

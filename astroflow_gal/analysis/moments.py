"""Density and velocity moments at given positions, integrated from the learned eDF itself.

At a position ``x`` the eDF ``f(x, w)`` over the other columns ``w = (v, Z, [Fe/H], [O/Fe], age)``
gives the density ``int f dw`` (the position marginal) and, divided by it, the distribution of
``w`` there. :func:`edf_moments` integrates over ``w`` by self-normalised importance sampling with a
proposal adapted to every position:

1. a pilot sample of the model gives the ``n_neighbours`` stars nearest to ``x``. The first
   proposal over ``u = (v, log10 Z, [Fe/H], [O/Fe], age)`` is a mixture of a Gaussian kernel
   mixture on the neighbours (kernel covariance 0.6^2 times theirs: it keeps the mix of
   populations found there), a Student-t (5 degrees of freedom) with their mean and twice their
   covariance, and a Student-t with their mean and the covariance of the whole pilot sample (so
   that a rare, broad population such as a halo under a disc is drawn);
2. a quarter of the draws come from it; their importance weights ``f / q`` give the mean and
   covariance of ``u`` under the eDF at ``x``, and the other three quarters come from the first
   mixture (70 %) plus a Student-t with those moments (30 %, scale 1.2^2 times the covariance);
3. the estimates use the second-stage draws: ``int f dw = mean(f/q)`` (unbiased, error
   ``std(f/q) / sqrt(n)``), and means and covariances ``sum r g / sum r`` with ``r = f/q``
   (delta-method errors ``sqrt(sum r^2 (g - <g>)^2) / sum r``). The effective sample size
   ``(sum r)^2 / sum r^2`` is reported per position.

Measured against the exact synthetic truth (12 positions in a disc galaxy with a spheroid,
3,000 draws, 4 seeds): the errors of the density, the mean velocities and ``sigma_R`` are
right (root-mean-square pull 0.9-1.2); those of ``sigma_phi`` and ``sigma_z`` are too small by a
factor of about 1.5, and those estimates are biased low by about half an error, because a rare
broad population (2-5 % of the stars with three times the dispersion) is drawn too rarely. More
draws shrink both.

Why importance sampling rather than a quadrature: the integral is seven-dimensional (a tensor
grid of even 10 nodes per axis needs 10^7 flow evaluations per position) and the conditional
distribution of ``w`` is a mixture of components with different means and widths; a proposal
fitted to it needs a few thousand evaluations for per-cent errors, and its error is measured
from the same draws.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import astropy.units as u
import numpy as np
from scipy import special
from scipy.spatial import cKDTree

from ..data import schema
from ..data._checks import integer, points
from ..data._cylindrical import cylindrical_axes, point_coords
from ..inputs import parse_conditions

__all__ = ["edf_moments"]

_NU = 5.0  # degrees of freedom of the Student-t proposals
_FIRST_INFLATION = 2.0  # covariance factor of the first (neighbour) proposal
_SECOND_INFLATION = 1.2**2  # scale factor of the adapted proposal (a t's variance is 5/3 of it)
_BANDWIDTH = 0.6  # kernel width of the neighbour mixture, in units of the neighbours' spread
_ADAPTED = 0.3  # share of the second stage drawn from the adapted Student-t
_CHEMISTRY = ("age", "feh", "ofe")


def _t_sample(rng: np.random.Generator, mean: np.ndarray, chol: np.ndarray, n: int) -> np.ndarray:
    """n draws of a multivariate Student-t (``_NU`` dof) with location ``mean``, scale ``chol``."""
    d = mean.size
    z = rng.standard_normal((n, d))
    scale = np.sqrt(_NU / rng.chisquare(_NU, n))
    return mean + (z @ chol.T) * scale[:, None]


def _t_logpdf(u_values: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    d = mean.size
    sol = np.linalg.solve(chol, (u_values - mean).T)  # chol is lower-triangular
    maha = np.sum(sol * sol, axis=0)
    log_det = np.sum(np.log(np.diag(chol)))
    return (
        special.gammaln(0.5 * (_NU + d)) - special.gammaln(0.5 * _NU)
        - 0.5 * d * math.log(_NU * math.pi) - log_det
        - 0.5 * (_NU + d) * np.log1p(maha / _NU)
    )


def _kde_sample(rng: np.random.Generator, centres: np.ndarray, chol: np.ndarray,
                n: int) -> np.ndarray:
    """n draws of a Gaussian kernel mixture: a random centre plus N(0, chol chol^T)."""
    pick = rng.integers(0, len(centres), n)
    return centres[pick] + rng.standard_normal((n, centres.shape[1])) @ chol.T


def _kde_logpdf(u_values: np.ndarray, centres: np.ndarray, chol: np.ndarray) -> np.ndarray:
    d = centres.shape[1]
    inv = np.linalg.inv(chol)
    a = u_values @ inv.T
    b = centres @ inv.T
    maha = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    log_det = np.sum(np.log(np.diag(chol)))
    return (special.logsumexp(-0.5 * np.maximum(maha, 0.0), axis=1) - math.log(len(centres))
            - log_det - 0.5 * d * math.log(2.0 * math.pi))


def _mixture_sample(rng: np.random.Generator, parts: list, n: int) -> np.ndarray:
    """Draws of a mixture ``[(weight, kind, a, chol), ...]``, each part its share of ``n``."""
    counts = [int(math.floor(w * n)) for w, *_ in parts]
    counts[0] += n - sum(counts)
    out = []
    for (_, kind, a, chol), k in zip(parts, counts, strict=True):
        out.append(_t_sample(rng, a, chol, k) if kind == "t" else _kde_sample(rng, a, chol, k))
    return np.concatenate(out, axis=0)


def _mixture_logpdf(u_values: np.ndarray, parts: list) -> np.ndarray:
    logs = [math.log(w) + (_t_logpdf(u_values, a, chol) if kind == "t"
                           else _kde_logpdf(u_values, a, chol)) for w, kind, a, chol in parts]
    return np.logaddexp.reduce(logs, axis=0)


def _safe_chol(cov: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Cholesky factor of a covariance, its diagonal kept above ``floor`` (variances)."""
    cov = 0.5 * (cov + cov.T)
    cov = cov + np.diag(np.maximum(floor - np.diag(cov), 0.0) + 1e-9 * floor)
    for _ in range(6):
        try:
            return np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            cov = cov + np.diag(floor)
    return np.diag(np.sqrt(np.diag(cov)))


def _weighted_moments(r: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray, np.ndarray]:
    """Self-normalised means and covariances of the columns of ``g`` (n, k) with weights ``r``,
    and their delta-method errors."""
    total = r.sum()
    mean = r @ g / total
    d = g - mean
    mean_err = np.sqrt((r * r) @ (d * d)) / total
    cov = np.einsum("n,ni,nj->ij", r, d, d) / total
    h = d[:, :, None] * d[:, None, :] - cov
    cov_err = np.sqrt(np.einsum("n,nij->ij", r * r, h * h)) / total
    return mean, mean_err, cov, cov_err


def _conditions_json(names: tuple[str, ...], values: np.ndarray) -> str:
    return json.dumps({n: {"value": float(v), "unit": str(schema.column(n).unit)}
                       for n, v in zip(names, values, strict=True)})


def edf_moments(
    model: Any,
    positions: Any,
    conditions: Mapping[str, Any] | Any = None,
    /,
    *,
    n_samples: int = 4096,
    n_pilot: int = 20_000,
    n_neighbours: int = 200,
    seed: int = 0,
    allow_extrapolation: bool = False,
    **condition_values: Any,
) -> Any:
    """Density, mean velocity, dispersion tensor and chemistry at positions, from the eDF.

    Parameters
    ----------
    model : GalaxyModel
        The learned eDF (any object with ``sample``, ``log_edf``, ``star_names`` and
        ``condition_names`` as :class:`~astroflow_gal.GalaxyModel`; ``log_marginal`` gives
        ``rho`` when the model has a position marginal).
    positions : astropy.units.Quantity or array-like, shape (N, 3)
        Galaxy-frame positions ``x, y, z`` (length Quantity, or plain numbers in kpc).
    conditions : mapping, optional
        The galaxy's conditions, or give them as keywords: ``M_stars`` (Msun), ``tau50``,
        ``tau10`` (Gyr), ``Z_av`` (dimensionless); Quantities in any compatible unit.
    n_samples : int
        Importance draws per position (a quarter for the first stage); errors fall as
        ``1 / sqrt(n_samples)``.
    n_pilot : int
        Stars of the pilot sample that seeds the proposals.
    n_neighbours : int
        Pilot stars nearest to each position used for its first proposal.
    seed : int
        Seed of the pilot sample and of the importance draws.
    allow_extrapolation : bool
        Accept conditions far outside the model's training range.
    **condition_values
        Conditions as keywords.

    Returns
    -------
    xarray.Dataset
        On ``point`` (coordinates ``x, y, z, R``, kpc) and Cartesian axes ``i, j``
        (``vx, vy, vz``):

        - ``rho`` (Msun/kpc3): ``M_stars`` times the position-marginal flow, when the model has one;
        - ``rho_edf`` and ``rho_edf_err`` (Msun/kpc3): ``M_stars int f dw``, the eDF's own
          density, a consistency check of the marginal flow against the full flow;
        - ``v_mean`` (point, i) and ``v_cov`` (point, i, j), km/s and km2/s2, with ``_err``;
        - cylindrical ``v_R``, ``v_phi``, ``v_z``, ``sigma_R``, ``sigma_phi``, ``sigma_z``
          (km/s), with ``_err`` (axes of azimuth 0 on the axis ``R = 0``);
        - ``age``, ``sigma_age`` (Gyr), ``feh``, ``sigma_feh``, ``ofe``, ``sigma_ofe`` (dex):
          mean and spread, with ``_err``;
        - ``ess``: the effective sample size of the importance weights.

        Units in ``attrs["units"]`` (see :func:`~astroflow_gal.analysis.profile_quantity`).

    Raises
    ------
    ValueError
        Bad positions, conditions or sample sizes.
    astropy.units.UnitConversionError
        Positions or conditions in incompatible units.
    """
    import xarray as xr

    pos = points(positions, u.kpc, "positions", empty=False)
    n_samples = integer(n_samples, "n_samples", 16)
    n_pilot = integer(n_pilot, "n_pilot", 100)
    n_neighbours = integer(n_neighbours, "n_neighbours", 10)
    seed = integer(seed, "seed", 0)
    cond = parse_conditions(model.condition_names, conditions, condition_values)
    if cond.ndim != 1:
        raise ValueError("edf_moments takes one galaxy: give one value per condition")
    cond_map = dict(zip(model.condition_names, cond, strict=True))
    m_stars = float(cond_map["M_stars"])
    names = tuple(model.star_names)
    pos_idx = [names.index(n) for n in schema.POSITION_NAMES]
    rest = [i for i in range(len(names)) if i not in pos_idx]
    rest_names = [names[i] for i in rest]
    log_cols = np.array([schema.column(n).transform == "log10" for n in rest_names])
    vel_in_rest = [rest_names.index(n) for n in schema.VELOCITY_NAMES]
    chem_in_rest = [(n, rest_names.index(n)) for n in _CHEMISTRY if n in rest_names]

    # Pilot sample: neighbours of every position seed its first proposal.
    pilot = model.sample(n_pilot, cond_map, seed=seed, allow_extrapolation=allow_extrapolation)
    pilot_arr = np.stack([np.asarray(pilot[n].to_value(schema.column(n).unit), dtype=np.float64)
                          for n in names], axis=1)
    if np.any(pilot_arr[:, rest][:, log_cols] <= 0):
        pilot_arr = pilot_arr[np.all(pilot_arr[:, rest][:, log_cols] > 0, axis=1)]
    u_pilot = pilot_arr[:, rest].copy()
    u_pilot[:, log_cols] = np.log10(u_pilot[:, log_cols])
    floor = 1e-4 * np.var(u_pilot, axis=0)
    tree = cKDTree(pilot_arr[:, pos_idx])
    k = min(n_neighbours, len(u_pilot))
    _, nearest = tree.query(pos, k=k)
    nearest = np.asarray(nearest).reshape(len(pos), k)

    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n_first = max(8, n_samples // 4)
    n_second = n_samples - n_first
    n_pos, d = len(pos), len(rest)

    def evaluate(u_draws: np.ndarray) -> np.ndarray:
        """log f at every (position, draw): u_draws is (P, n, d)."""
        n = u_draws.shape[1]
        rows = np.empty((n_pos * n, len(names)))
        rows[:, pos_idx] = np.repeat(pos, n, axis=0)
        w = u_draws.reshape(-1, d).copy()
        w[:, log_cols] = 10.0 ** w[:, log_cols]
        rows[:, rest] = w
        log_f = model.log_edf(rows, cond_map, allow_extrapolation=allow_extrapolation)
        return np.asarray(log_f, dtype=np.float64).reshape(n_pos, n)

    def log_jacobian(u_draws: np.ndarray) -> np.ndarray:
        # f is a density in Z; q is a density in log10 Z: q_Z = q_u / (Z ln 10).
        return np.sum(np.where(log_cols, u_draws * math.log(10.0) + math.log(math.log(10.0)),
                               0.0), axis=-1)

    # Stage 1: proposals from the neighbours: a kernel mixture on them (it keeps the mix of
    # populations found there), a Student-t with their mean and twice their covariance, and a
    # Student-t with their mean and the covariance of the whole pilot sample.
    parts1 = []
    # The spread of the whole galaxy: rare broad populations (a halo under a disc) get draws.
    chol_global = _safe_chol(np.cov(u_pilot, rowvar=False), floor)
    draws1 = np.empty((n_pos, n_first, d))
    logq1 = np.empty((n_pos, n_first))
    for p in range(n_pos):
        nb = u_pilot[nearest[p]]
        cov = np.cov(nb, rowvar=False)
        kernel = _safe_chol(_BANDWIDTH**2 * cov, floor)
        parts = [(0.3, "kde", nb, kernel),
                 (0.3, "t", nb.mean(axis=0), _safe_chol(_FIRST_INFLATION * cov, floor)),
                 (0.4, "t", nb.mean(axis=0), chol_global)]
        parts1.append(parts)
        draws1[p] = _mixture_sample(rng, parts, n_first)
        logq1[p] = _mixture_logpdf(draws1[p], parts)
    log_r1 = evaluate(draws1) - logq1 + log_jacobian(draws1)

    # Stage 2: add a Student-t with the eDF's own moments at the position (from the weighted
    # first-stage draws) to the first-stage mixture.
    draws2 = np.empty((n_pos, n_second, d))
    logq2 = np.empty((n_pos, n_second))
    for p in range(n_pos):
        lr = log_r1[p]
        finite = np.isfinite(lr)
        parts = [(w * (1.0 - _ADAPTED), kind, a, c) for w, kind, a, c in parts1[p]]
        if finite.sum() >= 2:
            r = np.exp(lr[finite] - lr[finite].max())
            ess = r.sum() ** 2 / np.sum(r * r)
            if ess >= 2 * d:
                u_f = draws1[p][finite]
                mean = r @ u_f / r.sum()
                dev = u_f - mean
                cov = np.einsum("n,ni,nj->ij", r, dev, dev) / r.sum()
                parts = [(_ADAPTED, "t", mean, _safe_chol(_SECOND_INFLATION * cov, floor)),
                         *parts]
            else:
                parts = parts1[p]
        else:
            parts = parts1[p]
        draws2[p] = _mixture_sample(rng, parts, n_second)
        logq2[p] = _mixture_logpdf(draws2[p], parts)
    log_r2 = evaluate(draws2) - logq2 + log_jacobian(draws2)

    R, cphi, sphi = cylindrical_axes(pos)
    out: dict[str, np.ndarray] = {}

    def put(name: str, p: int, value: Any, shape: tuple[int, ...] = ()) -> None:
        if name not in out:
            out[name] = np.full((n_pos,) + shape, np.nan)
        out[name][p] = value

    for p in range(n_pos):
        lr = np.where(np.isfinite(log_r2[p]), log_r2[p], -np.inf)
        top = lr.max()
        if not np.isfinite(top):
            put("rho_edf", p, 0.0)
            put("rho_edf_err", p, 0.0)
            put("ess", p, 0.0)
            continue
        r = np.exp(lr - top)
        scale = math.exp(top) * m_stars
        put("rho_edf", p, scale * r.mean())
        put("rho_edf_err", p, scale * r.std(ddof=1) / math.sqrt(r.size))
        put("ess", p, r.sum() ** 2 / np.sum(r * r))
        v = draws2[p][:, vel_in_rest]
        mean, mean_err, cov, cov_err = _weighted_moments(r, v)
        put("v_mean", p, mean, (3,))
        put("v_mean_err", p, mean_err, (3,))
        put("v_cov", p, cov, (3, 3))
        put("v_cov_err", p, cov_err, (3, 3))
        c, s = cphi[p], sphi[p]
        cyl = np.stack([v[:, 0] * c + v[:, 1] * s, v[:, 1] * c - v[:, 0] * s, v[:, 2]], axis=1)
        chem = draws2[p][:, [i for _, i in chem_in_rest]]
        g = np.concatenate([cyl, chem], axis=1)
        mean, mean_err, cov, cov_err = _weighted_moments(r, g)
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            std_err = np.where(std > 0, np.diag(cov_err) / (2.0 * std), np.nan)
        labels = [("v_R", "sigma_R"), ("v_phi", "sigma_phi"), ("v_z", "sigma_z")]
        labels += [(n, f"sigma_{n}") for n, _ in chem_in_rest]
        for j, (mean_name, std_name) in enumerate(labels):
            put(mean_name, p, mean[j])
            put(f"{mean_name}_err", p, mean_err[j])
            put(std_name, p, std[j])
            put(f"{std_name}_err", p, std_err[j])

    rho = None
    try:
        log_rho = model.log_marginal(pos, "position", cond_map,
                                     allow_extrapolation=allow_extrapolation)
        rho = np.exp(np.asarray(log_rho, dtype=np.float64)) * m_stars
    except (ValueError, AttributeError, NotImplementedError):
        rho = None

    kms, kms2 = "km / s", "km2 / s2"
    units = {"rho": "Msun / kpc3", "rho_edf": "Msun / kpc3", "v_mean": kms, "v_cov": kms2,
             "ess": ""}
    for name in ("v_R", "v_phi", "v_z", "sigma_R", "sigma_phi", "sigma_z"):
        units[name] = kms
    for n, _ in chem_in_rest:
        units[n] = units[f"sigma_{n}"] = str(schema.column(n).unit)
    long_names = {
        "rho": "M_stars times the position-marginal flow",
        "rho_edf": "M_stars times the eDF integrated over velocity, chemistry and age",
        "v_mean": "mean velocity", "v_cov": "velocity dispersion tensor",
        "ess": "effective sample size of the importance weights",
    }
    data: dict[str, Any] = {}
    if rho is not None:
        data["rho"] = (("point",), rho, {"units": units["rho"], "long_name": long_names["rho"]})
    for name, arr in out.items():
        base = name[:-4] if name.endswith("_err") else name
        dims = ("point", "i", "j")[: arr.ndim]
        attrs = {"units": units[base]}
        if base in long_names:
            attrs["long_name"] = long_names[base] + (" (error)" if name != base else "")
        elif name != base:
            attrs["long_name"] = f"integration error of {base}"
        data[name] = (dims, arr, attrs)
    ds = xr.Dataset(data, coords=point_coords(pos, R))
    ds.attrs.update({
        "method": "two-stage self-normalised importance sampling over (v, log10 Z, [Fe/H], "
                  "[O/Fe], age) with Student-t proposals adapted per position",
        "n_samples": n_samples,
        "n_pilot": n_pilot,
        "n_neighbours": n_neighbours,
        "seed": seed,
        "conditions": _conditions_json(tuple(model.condition_names), cond),
        "M_stars": m_stars,
        "M_stars_units": "Msun",
        "has_position_marginal": int(rho is not None),
    })
    return ds

"""Potentials judged by the collisionless Boltzmann equation (CBE) of a differentiable DF.

A steady-state DF ``f(x, v)`` in a potential ``Phi`` obeys::

    v . grad_x f - grad_x Phi . grad_v f = 0,   i.e.   v . grad_x log f + a . grad_v log f = 0

with ``a = -grad Phi`` the acceleration. :func:`cbe_residual` measures how far a DF is from that
at phase-space points, normalised so that the residual lies in [-1, 1]::

    r = (v . grad_x log f + a . grad_v log f) / (|v . grad_x log f| + |a . grad_v log f|)

(``r = 0`` where both terms vanish). ``r = 0`` in equilibrium; ``|r| = 1`` where one term has no
counterpart. The gradients come from torch autograd, so any differentiable log-DF works: a
model's phase-space marginal flow, its full eDF at fixed chemistry and age (abundances and ages
are conserved along orbits, so each mono-abundance, mono-age population obeys the CBE too), or a
closed-form DF. Units: positions kpc, velocities km/s, accelerations (km/s)2/kpc; both terms are
in (km/s)/kpc.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import astropy.units as u
import numpy as np
import torch

from ..data import schema
from ..data._checks import integer as _positive_int
from ..data._checks import points
from .agama import _check_model, _condition_values, accelerations

__all__ = ["cbe_residual", "cbe_terms", "model_log_df", "rank_potentials"]


def _as_array(values: Any, unit: u.UnitBase, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return points(values, unit, name, single=False)


def cbe_terms(
    log_f: Callable[[torch.Tensor], torch.Tensor],
    potential: Any,
    positions: Any,
    velocities: Any,
    *,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of the CBE, ``v . grad_x log f`` and ``a . grad_v log f``.

    Parameters
    ----------
    log_f, potential, positions, velocities, batch_size
        As for :func:`cbe_residual`.

    Returns
    -------
    streaming, forcing : numpy.ndarray
        Float64 arrays (N,) in (km/s)/kpc; their sum vanishes in equilibrium.
    """
    x = _as_array(positions, u.kpc, "positions")
    v = _as_array(velocities, u.km / u.s, "velocities")
    if x.shape != v.shape:
        raise ValueError(f"positions {x.shape} and velocities {v.shape} differ in shape")
    if not callable(log_f):
        raise TypeError("log_f must be a callable of a torch tensor (N, 6)")
    batch_size = _positive_int(batch_size, "batch_size")
    acc = accelerations(potential, x)
    if not np.all(np.isfinite(acc)):
        raise ValueError("the potential returned non-finite accelerations at some positions")
    streaming = np.empty(x.shape[0])
    forcing = np.empty(x.shape[0])
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        xv = torch.from_numpy(np.concatenate([x[sl], v[sl]], axis=1)).requires_grad_(True)
        with torch.enable_grad():
            out = log_f(xv)
            if not isinstance(out, torch.Tensor) or out.shape != (xv.shape[0],):
                raise ValueError(
                    f"log_f must return a torch tensor of shape ({xv.shape[0]},), got "
                    f"{getattr(out, 'shape', type(out))}"
                )
            (grad,) = torch.autograd.grad(out.sum(), xv)
        grad = grad.detach().to(torch.float64).numpy()
        streaming[sl] = np.einsum("ij,ij->i", v[sl], grad[:, :3])
        forcing[sl] = np.einsum("ij,ij->i", acc[sl], grad[:, 3:])
    return streaming, forcing


def cbe_residual(
    log_f: Callable[[torch.Tensor], torch.Tensor],
    potential: Any,
    positions: Any,
    velocities: Any,
    *,
    batch_size: int = 4096,
) -> np.ndarray:
    """Normalised residual of the collisionless Boltzmann equation at phase-space points.

    ``r = (v . grad_x log f + a . grad_v log f) / (|v . grad_x log f| + |a . grad_v log f|)``,
    in [-1, 1]; 0 in equilibrium (and where both terms vanish).

    Parameters
    ----------
    log_f : callable
        Differentiable natural log of the DF: takes a float64 torch tensor (N, 6) of ``x, y, z``
        [kpc] and ``vx, vy, vz`` [km/s] and returns a tensor (N,) (any constant normalisation and
        unit: only gradients enter).
    potential : agama.Potential or callable
        An Agama potential (units Msun, kpc, km/s; its ``force`` gives the accelerations) or a
        callable of a torch tensor (N, 3) [kpc] returning accelerations ``-grad Phi`` (N, 3) in
        (km/s)2/kpc.
    positions : Quantity or array of shape (N, 3)
        Positions (kpc if plain numbers).
    velocities : Quantity or array of shape (N, 3)
        Velocities (km/s if plain numbers).
    batch_size : int, optional
        Points per autograd pass.

    Returns
    -------
    numpy.ndarray
        Float64 (N,), dimensionless.
    """
    streaming, forcing = cbe_terms(log_f, potential, positions, velocities, batch_size=batch_size)
    scale = np.abs(streaming) + np.abs(forcing)
    total = streaming + forcing
    return np.divide(total, scale, out=np.zeros_like(total), where=scale > 0)


def model_log_df(
    model: Any,
    conditions: Mapping[str, Any],
    df: str = "phase_space",
    chemistry: np.ndarray | None = None,
    *,
    allow_extrapolation: bool = False,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A model's differentiable log-DF of (x, v), for :func:`cbe_residual`.

    Parameters
    ----------
    model : GalaxyModel
        The model.
    conditions : mapping
        The galaxy's conditions (``M_stars`` in Msun or a mass Quantity, ``tau50``, ``tau10`` in
        Gyr, ``Z_av`` dimensionless).
    df : {"phase_space", "edf"}
        ``"phase_space"``: the model's phase-space marginal flow (needs that marginal).
        ``"edf"``: the full eDF with the other star columns fixed to ``chemistry``.
    chemistry : array of shape (N, D - 6), optional
        For ``df="edf"``: each point's values of the non-phase-space star columns (in the model's
        column order, schema units); the callable then takes exactly N points.
    allow_extrapolation : bool, optional
        Accept conditions far outside the model's training range.

    Returns
    -------
    callable
        Torch tensor (N, 6) [kpc, km/s] -> tensor (N,): the natural log of the DF (the
        marginal flow's in 1/(kpc3 (km/s)3); the eDF's in the model's ``edf_unit``).
    """
    values = torch.from_numpy(_condition_values(model, conditions, allow_extrapolation))
    names = tuple(model.star_names)
    if df == "phase_space":
        _check_model(model, "phase_space")
        flow = model.marginals["phase_space"]
        normalizer = model.normalizer.subset(schema.PHASE_SPACE_NAMES)

        def log_f(xv: torch.Tensor) -> torch.Tensor:
            return model._log_density(flow, normalizer, xv, values)

        return log_f
    if df != "edf":
        raise ValueError(f"df must be 'phase_space' or 'edf', got {df!r}")
    others = [n for n in names if n not in schema.PHASE_SPACE_NAMES]
    if chemistry is None:
        raise ValueError(f"df='edf' needs chemistry: values of {others} per point")
    chem = torch.as_tensor(np.asarray(chemistry, dtype=np.float64))
    if chem.dim() != 2 or chem.shape[1] != len(others):
        raise ValueError(f"chemistry must have shape (N, {len(others)}), got {tuple(chem.shape)}")
    order = [names.index(n) for n in (*schema.PHASE_SPACE_NAMES, *others)]
    inverse = [order.index(i) for i in range(len(names))]

    def log_f_edf(xv: torch.Tensor) -> torch.Tensor:
        if xv.shape[0] != chem.shape[0]:
            raise ValueError(f"{xv.shape[0]} points for {chem.shape[0]} chemistry rows")
        full = torch.cat([xv, chem.to(xv.dtype)], dim=1)[:, inverse]
        return model.log_edf_torch(full, values.to(xv.dtype))

    return log_f_edf


def rank_potentials(
    model: Any,
    conditions: Mapping[str, Any],
    potentials: Mapping[str, Any],
    n: int = 2000,
    *,
    seed: int = 0,
    df: str = "phase_space",
    batch_size: int = 2048,
    allow_extrapolation: bool = False,
) -> Any:
    """Rank candidate potentials by the CBE residual of the model's DF in each.

    Stars are sampled from the model (full eDF); at each star the normalised residual
    (:func:`cbe_residual`) of the model's log-DF is computed in every candidate potential.

    Parameters
    ----------
    model : GalaxyModel
        The model.
    conditions : mapping
        The galaxy's conditions (``M_stars`` in Msun or a mass Quantity, ``tau50``, ``tau10`` in
        Gyr, ``Z_av`` dimensionless).
    potentials : mapping of str to potential
        Candidates by name: Agama potentials (Msun, kpc, km/s) or torch callables returning
        accelerations [(km/s)2/kpc].
    n : int, optional
        Stars sampled.
    seed : int, optional
        Seed of the sample.
    df : {"phase_space", "edf"}
        Which log-DF (see :func:`model_log_df`): the phase-space marginal flow (default), or the
        full eDF at each star's own chemistry and age.
    batch_size : int, optional
        Stars per autograd pass.
    allow_extrapolation : bool, optional
        Accept conditions far outside the model's training range.

    Returns
    -------
    xarray.Dataset
        On dimension ``potential`` (best first): ``mean_sq_residual`` (mean of r^2 over the
        stars), ``mean_sq_error`` (its standard error), ``median_abs_residual``, ``rank`` (1 =
        smallest mean squared residual); and ``residual`` on (``potential``, ``star``).
    """
    import xarray as xr

    if not isinstance(potentials, Mapping) or not potentials:
        raise ValueError("potentials must be a non-empty mapping of name to potential")
    n = _positive_int(n, "n")
    values = _condition_values(model, conditions, allow_extrapolation)
    conds = dict(zip(model.condition_names, values, strict=True))
    stars = model.sample(n, conds, seed=seed, allow_extrapolation=allow_extrapolation)
    x = np.stack([np.asarray(stars[c].value, dtype=np.float64) for c in ("x", "y", "z")], 1)
    v = np.stack([np.asarray(stars[c].value, dtype=np.float64) for c in ("vx", "vy", "vz")], 1)
    if df == "edf":
        others = [c for c in model.star_names if c not in schema.PHASE_SPACE_NAMES]
        chem = np.stack([np.asarray(stars[c].value, dtype=np.float64) for c in others], 1)
        log_f = model_log_df(model, conds, "edf", chem, allow_extrapolation=True)
        batch_size = max(batch_size, n)  # the eDF callable is tied to the N stars
    else:
        log_f = model_log_df(model, conds, df, allow_extrapolation=True)
    names = [str(k) for k in potentials]
    res = np.stack(
        [cbe_residual(log_f, potentials[k], x, v, batch_size=batch_size) for k in potentials]
    )
    sq = res**2
    mean_sq = sq.mean(axis=1)
    err = sq.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(names), np.nan)
    order = np.argsort(mean_sq, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(1, len(names) + 1)
    ds = xr.Dataset(
        {
            "mean_sq_residual": ("potential", mean_sq, {"units": ""}),
            "mean_sq_error": ("potential", err, {"units": ""}),
            "median_abs_residual": ("potential", np.median(np.abs(res), axis=1), {"units": ""}),
            "rank": ("potential", rank),
            "residual": (("potential", "star"), res, {"units": ""}),
        },
        coords={"potential": names},
        attrs={"n_stars": n, "seed": int(seed), "df": df},
    )
    return ds.isel(potential=order)

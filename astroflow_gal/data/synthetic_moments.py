"""Exact density, rotation and dispersion profiles of a synthetic galaxy.

The synthetic eDF (:mod:`astroflow_gal.data.synthetic_model`, ``docs/synthetic.md``) is a mixture of
components ``k`` (thin disc, thick disc, spheroid) with mass fractions ``w_k``, position densities
``p_k(x)`` and velocities Gaussian per component: diagonal in ``(v_R, v_phi, v_z)`` with mean
``(0, vbar_k(R), 0)`` and dispersions ``sigma_{R,phi,z; k}(x)``. So at a position ``x``, with the
component probabilities ``P_k = w_k p_k(x) / sum_j w_j p_j(x)``, the velocity moments are exact:

    <v> = sum_k P_k mu_k,    Cov(v) = sum_k P_k (C_k + mu_k mu_k^T) - <v><v>^T

(``mu_k = (0, vbar_k, 0)``, ``C_k = diag(sigma_R^2, sigma_phi^2, sigma_z^2)``), rotated to Cartesian
axes through the azimuth. Over all heights at a cylindrical radius ``R`` the same formulas hold with
``P_k`` replaced by the column weights ``w_k Sigma_k(R)`` and ``C_k`` by its mass-weighted mean over
``z``: discs have ``Sigma_k(R) = exp(-R/R_d) / (2 pi R_d^2)`` (the sech^2 profile integrates to 1)
and dispersions independent of ``z``; the spheroid's column integrals are 1-D quadratures over
``z``. Averages over a radial bin (what binned samples estimate) add a Gauss-Legendre quadrature in
``R`` weighted by ``2 pi R``.

Every function takes a :class:`~astroflow_gal.data.synthetic_model.SyntheticGalaxy`, or a
:class:`~astroflow_gal.data.synthetic.SyntheticTruth` with ``galaxy_id``. Densities are mass
densities: the normalised position density times the galaxy's stellar mass ``M_stars``.
"""

from __future__ import annotations

import math
from typing import Any

import astropy.units as u
import numpy as np

from ._checks import in_unit, points
from ._cylindrical import cylindrical_axes, point_coords
from .synthetic_model import Component, SyntheticGalaxy

__all__ = [
    "galaxy_params",
    "truth_density",
    "truth_surface_density",
    "truth_velocity_moments",
    "truth_column_moments",
    "truth_profiles",
]

_KMS = u.km / u.s
_GL_NODES = 24  # Gauss-Legendre nodes per radial bin


def galaxy_params(galaxy: Any, galaxy_id: str | None = None) -> SyntheticGalaxy:
    """The exact parameters of one synthetic galaxy.

    Parameters
    ----------
    galaxy : SyntheticGalaxy or SyntheticTruth
        The galaxy's parameters, or the truth of a suite (then ``galaxy_id`` names the galaxy).
    galaxy_id : str, optional
        Galaxy id in the truth.

    Returns
    -------
    SyntheticGalaxy
    """
    if isinstance(galaxy, SyntheticGalaxy):
        if galaxy_id is not None and galaxy_id != galaxy.id:
            raise ValueError(f"galaxy_id {galaxy_id!r} does not match the galaxy {galaxy.id!r}")
        return galaxy
    if hasattr(galaxy, "params"):
        if galaxy_id is None:
            raise ValueError("galaxy_id is needed to pick a galaxy of a SyntheticTruth")
        return galaxy.params(galaxy_id)
    raise TypeError(
        f"galaxy must be a SyntheticGalaxy or a SyntheticTruth, got {type(galaxy).__name__}"
    )


def _radii(R: Any) -> np.ndarray:
    if isinstance(R, u.Quantity):
        R = in_unit(R, u.kpc, "R").value
    arr = np.atleast_1d(np.asarray(R, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"R must be a scalar or a 1-D array of radii, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("R must be finite and non-negative (cylindrical radii in kpc)")
    return arr


def _rows(positions: np.ndarray) -> np.ndarray:
    values = np.zeros((positions.shape[0], 10))
    values[:, :3] = positions
    return values


def truth_density(galaxy: Any, positions: Any, galaxy_id: str | None = None) -> u.Quantity:
    """Exact mass density ``rho(x) = M_stars sum_k w_k p_k(x)``.

    Parameters
    ----------
    galaxy : SyntheticGalaxy or SyntheticTruth
        The galaxy (with ``galaxy_id`` for a truth).
    positions : astropy.units.Quantity or array-like, shape (N, 3)
        Galaxy-frame positions ``x, y, z`` (length Quantity, or plain numbers in kpc).
    galaxy_id : str, optional
        Galaxy id in a truth.

    Returns
    -------
    astropy.units.Quantity
        Shape (N,), Msun/kpc3.
    """
    gal = galaxy_params(galaxy, galaxy_id)
    pos = points(positions, u.kpc, "positions")
    return np.exp(gal.log_position(_rows(pos))) * gal.stellar_mass * u.Msun / u.kpc**3


def _component_point(comp: Component, pos: np.ndarray) -> tuple[np.ndarray, ...]:
    """log p_k(x), vbar, sigma_R, sigma_phi, sigma_z of one component at positions."""
    logp = comp.log_position(_rows(pos))
    mean, s_r, s_phi, s_z = comp.velocity_moments(pos[:, 0], pos[:, 1], pos[:, 2])
    return logp, mean, s_r, s_phi, s_z


def _mixture_moments(weights: np.ndarray, mean: np.ndarray, s_r: np.ndarray, s_phi: np.ndarray,
                     s_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (N, 3) and covariance (N, 3, 3) in (v_R, v_phi, v_z) of a Gaussian mixture.

    ``weights`` (N, K) sum to 1 over K; the other arrays are (N, K).
    """
    mu = np.zeros(weights.shape + (3,))
    mu[..., 1] = mean
    second = np.zeros(weights.shape + (3, 3))
    second[..., 0, 0] = s_r**2
    second[..., 1, 1] = s_phi**2 + mean**2
    second[..., 2, 2] = s_z**2
    m = np.einsum("nk,nki->ni", weights, mu)
    cov = np.einsum("nk,nkij->nij", weights, second) - m[:, :, None] * m[:, None, :]
    return m, cov


def truth_velocity_moments(galaxy: Any, positions: Any, galaxy_id: str | None = None) -> Any:
    """Exact density, mean velocity and velocity dispersion tensor at positions.

    Parameters
    ----------
    galaxy : SyntheticGalaxy or SyntheticTruth
        The galaxy (with ``galaxy_id`` for a truth).
    positions : astropy.units.Quantity or array-like, shape (N, 3)
        Galaxy-frame positions (length Quantity, or plain numbers in kpc).
    galaxy_id : str, optional
        Galaxy id in a truth.

    Returns
    -------
    xarray.Dataset
        On ``point`` (coordinates ``x, y, z, R`` in kpc) and Cartesian axes ``i, j``
        (``vx, vy, vz``): ``rho`` (Msun/kpc3), ``v_mean`` (point, i) and ``v_cov`` (point, i, j)
        in km/s and km2/s2, and the cylindrical ``v_R``, ``v_phi``, ``v_z``, ``sigma_R``,
        ``sigma_phi``, ``sigma_z`` (km/s), the same variables as
        :func:`astroflow_gal.analysis.edf_moments`. On the axis (``R = 0``) the cylindrical
        axes are those of azimuth 0.
    """
    import xarray as xr

    gal = galaxy_params(galaxy, galaxy_id)
    pos = points(positions, u.kpc, "positions")
    parts = [_component_point(c, pos) for c in gal.components]
    logw = np.stack([p[0] + (math.log(c.weight) if c.weight > 0 else -np.inf)
                     for p, c in zip(parts, gal.components, strict=True)], axis=1)
    top = np.max(logw, axis=1, keepdims=True)
    ex = np.exp(logw - top)
    weights = ex / ex.sum(axis=1, keepdims=True)
    rho = np.exp(np.log(ex.sum(axis=1)) + top[:, 0]) * gal.stellar_mass
    mean, s_r, s_phi, s_z = (np.stack([p[i] for p in parts], axis=1) for i in range(1, 5))
    m_cyl, cov_cyl = _mixture_moments(weights, mean, s_r, s_phi, s_z)
    R, c, s = cylindrical_axes(pos)
    rot = np.zeros((len(R), 3, 3))  # columns: unit vectors e_R, e_phi, e_z in Cartesian axes
    rot[:, 0, 0], rot[:, 1, 0] = c, s
    rot[:, 0, 1], rot[:, 1, 1] = -s, c
    rot[:, 2, 2] = 1.0
    v_mean = np.einsum("nij,nj->ni", rot, m_cyl)
    v_cov = np.einsum("nia,nab,njb->nij", rot, cov_cyl, rot)
    kms, kms2 = "km / s", "km2 / s2"
    data = {
        "rho": (("point",), rho, {"units": "Msun / kpc3", "long_name": "mass density"}),
        "v_mean": (("point", "i"), v_mean, {"units": kms, "long_name": "mean velocity"}),
        "v_cov": (("point", "i", "j"), v_cov,
                  {"units": kms2, "long_name": "velocity dispersion tensor"}),
    }
    for k, (mean_name, std_name) in enumerate(
        (("v_R", "sigma_R"), ("v_phi", "sigma_phi"), ("v_z", "sigma_z"))
    ):
        data[mean_name] = (("point",), m_cyl[:, k], {"units": kms})
        data[std_name] = (("point",), np.sqrt(np.maximum(cov_cyl[:, k, k], 0.0)),
                          {"units": kms})
    ds = xr.Dataset(data, coords=point_coords(pos, R))
    ds.attrs.update({"source": "exact synthetic truth", "galaxy_id": gal.id,
                     "M_stars": gal.stellar_mass, "M_stars_units": "Msun"})
    return ds


def _column(comp: Component, R: np.ndarray) -> np.ndarray:
    """Column integrals of one component at radii R: (len(R), 5) of
    ``Sigma_k``, ``Sigma_k vbar_k``, and ``int p_k sigma_i^2 dz`` for i = R, phi, z (per unit
    component mass: ``Sigma_k`` integrates to 1 over the plane)."""
    zero = np.zeros_like(R)
    mean, s_r, s_phi, s_z = comp.velocity_moments(R, zero, zero)
    out = np.empty((R.size, 5))
    if comp.kind == "disc":
        rd = comp.scale_length
        sigma = np.exp(-R / rd) / (2.0 * math.pi * rd * rd)
        # Disc dispersions do not depend on z.
        out[:, 0] = sigma
        out[:, 2], out[:, 3], out[:, 4] = sigma * s_r**2, sigma * s_phi**2, sigma * s_z**2
    else:
        out[:, [0, 2, 3, 4]] = _spheroid_column(comp, R)
    out[:, 1] = out[:, 0] * mean
    return out


def _spheroid_column(comp: Component, R: np.ndarray) -> np.ndarray:
    """``int p dz`` and ``int p sigma_i^2 dz`` of a spheroid at radii R, shape (len(R), 4).

    Over ``z = q a sinh(t)`` the cusp (width ~R in z) and the far tail are both smooth; the
    ``t`` range is cut into log-spaced segments from ``t_R / 4`` (``t_R = asinh(R / (q a))``) to
    the truncation (or t = 60), each with 32 Gauss-Legendre nodes.
    """
    q, a = comp.flattening, comp.scale_length
    n_seg, n_nodes = 14, 32
    if comp.truncation > 0:
        z_max = q * np.sqrt(np.maximum(comp.truncation**2 - R * R, 0.0))
        t_max = np.arcsinh(z_max / (q * a))
    else:
        t_max = np.full(R.shape, 60.0)
    t_lo = np.minimum(np.arcsinh(np.maximum(R, 1e-6 * a) / (q * a)) / 4.0, t_max)
    # Segment limits (len(R), n_seg + 1): 0, then geometric from t_lo to t_max.
    frac = np.linspace(0.0, 1.0, n_seg)
    ratio = np.where(t_lo > 0, t_max / np.where(t_lo > 0, t_lo, 1.0), 1.0)
    geometric = t_lo[:, None] * ratio[:, None] ** frac[None, :]
    limits = np.concatenate([np.zeros((R.size, 1)), geometric], axis=1)
    nodes, gl_w = np.polynomial.legendre.leggauss(n_nodes)
    lo, hi = limits[:, :-1, None], limits[:, 1:, None]
    t = (0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)).reshape(R.size, -1)
    wt = (0.5 * (hi - lo) * gl_w * np.ones_like(lo)).reshape(R.size, -1)
    z = q * a * np.sinh(t)
    w = 2.0 * wt * q * a * np.cosh(t)  # both sides of the plane
    r = np.broadcast_to(R[:, None], z.shape).ravel()
    zf = z.ravel()
    p = np.exp(comp.log_position(_rows(np.stack([r, np.zeros_like(r), zf], axis=1))))
    _, s_r, s_phi, s_z = comp.velocity_moments(r, np.zeros_like(r), zf)
    p = (p * w.ravel()).reshape(z.shape)
    out = np.empty((R.size, 4))
    out[:, 0] = p.sum(axis=1)
    out[:, 1] = (p * (s_r**2).reshape(z.shape)).sum(axis=1)
    out[:, 2] = (p * (s_phi**2).reshape(z.shape)).sum(axis=1)
    out[:, 3] = (p * (s_z**2).reshape(z.shape)).sum(axis=1)
    return out


def _combine(gal: SyntheticGalaxy, columns: list[np.ndarray], weights: np.ndarray,
             mean_by_comp: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Mass (per unit total mass), mean v_phi and dispersions from summed column integrals.

    ``columns[k]`` is (M, 5) for component k at M quadrature points; ``weights`` (M,) the
    quadrature weights (``2 pi R dR`` for bins, 1 at a single radius); sums run over the points.
    """
    mass = np.zeros(())
    s_v = np.zeros(())
    s_vv = np.zeros(())
    s_rr = np.zeros(())
    s_zz = np.zeros(())
    for comp, col, vbar in zip(gal.components, columns, mean_by_comp, strict=True):
        w = comp.weight * weights
        mass = mass + np.sum(w * col[..., 0], axis=-1)
        s_v = s_v + np.sum(w * col[..., 1], axis=-1)
        s_vv = s_vv + np.sum(w * (col[..., 3] + col[..., 0] * vbar**2), axis=-1)
        s_rr = s_rr + np.sum(w * col[..., 2], axis=-1)
        s_zz = s_zz + np.sum(w * col[..., 4], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        v_phi = s_v / mass
        return {
            "mass": mass,
            "v_phi": v_phi,
            "sigma_R": np.sqrt(s_rr / mass),
            "sigma_phi": np.sqrt(np.maximum(s_vv / mass - v_phi**2, 0.0)),
            "sigma_z": np.sqrt(s_zz / mass),
        }


def truth_surface_density(galaxy: Any, R: Any, galaxy_id: str | None = None) -> u.Quantity:
    """Exact surface density ``Sigma(R) = M_stars sum_k w_k int p_k(R, z) dz``.

    Parameters
    ----------
    galaxy : SyntheticGalaxy or SyntheticTruth
        The galaxy (with ``galaxy_id`` for a truth).
    R : astropy.units.Quantity or float or array-like
        Cylindrical radii (length Quantity, or plain numbers in kpc), non-negative.
    galaxy_id : str, optional
        Galaxy id in a truth.

    Returns
    -------
    astropy.units.Quantity
        Shape (len(R),), Msun/kpc2.
    """
    gal = galaxy_params(galaxy, galaxy_id)
    r = _radii(R)
    total = sum(c.weight * _column(c, r)[:, 0] for c in gal.components)
    return total * gal.stellar_mass * u.Msun / u.kpc**2


def truth_column_moments(galaxy: Any, R: Any, galaxy_id: str | None = None) -> Any:
    """Exact mass-weighted velocity moments over all heights at cylindrical radii.

    Parameters
    ----------
    galaxy : SyntheticGalaxy or SyntheticTruth
        The galaxy (with ``galaxy_id`` for a truth).
    R : astropy.units.Quantity or float or array-like
        Cylindrical radii (length Quantity, or plain numbers in kpc).
    galaxy_id : str, optional
        Galaxy id in a truth.

    Returns
    -------
    xarray.Dataset
        On ``R`` (kpc): ``Sigma`` (Msun/kpc2), ``v_phi``, ``sigma_R``, ``sigma_phi``, ``sigma_z``
        (km/s); ``v_R`` and ``v_z`` are exactly 0 (km/s).
    """
    gal = galaxy_params(galaxy, galaxy_id)
    r = _radii(R)
    cols = [_column(c, r) for c in gal.components]
    vbars = [c.velocity_moments(r, np.zeros_like(r), np.zeros_like(r))[0] for c in gal.components]
    stats = _combine(gal, [col[:, None, :] for col in cols], np.ones((r.size, 1)),
                     [v[:, None] for v in vbars])
    return _dataset(gal, stats, r, None, stats["mass"] * gal.stellar_mass)


def truth_profiles(galaxy: Any, bins: Any, galaxy_id: str | None = None) -> Any:
    """Exact averages over radial bins: what :func:`astroflow_gal.analysis.profiles` estimates.

    Each bin's mass, mass-weighted mean ``v_phi`` and dispersions (the law of total variance over
    the bin's stars, all heights) from a Gauss-Legendre quadrature in ``R`` (24 nodes per bin,
    weight ``2 pi R``) of the column integrals of :func:`truth_column_moments`.

    Parameters
    ----------
    galaxy : SyntheticGalaxy or SyntheticTruth
        The galaxy (with ``galaxy_id`` for a truth).
    bins : astropy.units.Quantity or array-like
        Radial bin edges (length Quantity, or plain numbers in kpc), non-negative, increasing.
    galaxy_id : str, optional
        Galaxy id in a truth.

    Returns
    -------
    xarray.Dataset
        On ``R`` (bin centres; ``R_lo``, ``R_hi``, kpc): ``Sigma`` (bin mass over its area,
        Msun/kpc2), ``v_R`` (0), ``v_phi``, ``v_z`` (0), ``sigma_R``, ``sigma_phi``,
        ``sigma_z`` (km/s).
    """
    gal = galaxy_params(galaxy, galaxy_id)
    edges = _radii(bins)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must hold at least 2 strictly increasing radii")
    nodes, gl_w = np.polynomial.legendre.leggauss(_GL_NODES)
    lo, hi = edges[:-1, None], edges[1:, None]
    r = 0.5 * (hi - lo) * nodes[None, :] + 0.5 * (hi + lo)  # (n_bins, nodes)
    w = 0.5 * (hi - lo) * gl_w[None, :] * 2.0 * math.pi * r
    flat = r.ravel()
    cols = [_column(c, flat).reshape(r.shape + (5,)) for c in gal.components]
    vbars = [c.velocity_moments(flat, np.zeros_like(flat), np.zeros_like(flat))[0].reshape(r.shape)
             for c in gal.components]
    stats = _combine(gal, cols, w, vbars)
    area = math.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    return _dataset(gal, stats, 0.5 * (edges[1:] + edges[:-1]), edges,
                    stats["mass"] * gal.stellar_mass / area)


def _dataset(gal: SyntheticGalaxy, stats: dict[str, np.ndarray], R: np.ndarray,
             edges: np.ndarray | None, sigma: np.ndarray) -> Any:
    import xarray as xr

    kms = "km / s"
    data = {"Sigma": ("R", sigma, {"units": "Msun / kpc2", "long_name": "surface density"})}
    data["v_R"] = ("R", np.zeros_like(R), {"units": kms})
    data["v_phi"] = ("R", stats["v_phi"], {"units": kms})
    data["v_z"] = ("R", np.zeros_like(R), {"units": kms})
    for name in ("sigma_R", "sigma_phi", "sigma_z"):
        data[name] = ("R", stats[name], {"units": kms})
    coords: dict[str, Any] = {"R": ("R", R, {"units": "kpc"})}
    if edges is not None:
        coords["R_lo"] = ("R", edges[:-1], {"units": "kpc"})
        coords["R_hi"] = ("R", edges[1:], {"units": "kpc"})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"source": "exact synthetic truth", "galaxy_id": gal.id,
                     "M_stars": gal.stellar_mass, "M_stars_units": "Msun"})
    return ds

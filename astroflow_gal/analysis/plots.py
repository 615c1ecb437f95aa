"""Plots of galaxy samples: corner plots of the star columns and radial profiles.

Matplotlib is imported inside the functions that draw (install it with ``pip install
matplotlib``); the backend is left to the user (matplotlib itself falls back to the
non-interactive Agg backend without a display). Every plotting function
returns its :class:`matplotlib.figure.Figure` and writes it to ``path`` when one is given.
:func:`radial_profiles` is pure numerics (no matplotlib) and returns an :class:`xarray.Dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np

from ..data import schema

__all__ = ["corner_plot", "profile_plot", "radial_profiles", "total_mass_of"]

_STAR_COLOUR = "C0"
_REFERENCE_COLOUR = "C1"


def _pyplot() -> Any:
    """``matplotlib.pyplot``; the backend is the user's (matplotlib picks Agg without a display)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is a declared dependency
        raise ImportError("plots need matplotlib: pip install matplotlib") from err
    return plt


def _save(fig: Any, path: str | os.PathLike | None, dpi: int = 110, tight: bool = True) -> None:
    if path is None:
        return
    from ..io import atomic_path

    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None)


# -- numbers ------------------------------------------------------------------------------------
def _column_values(stars: Any, name: str) -> tuple[np.ndarray, str]:
    """Values of one star column in schema units (``log10`` for Z) and its plot label."""
    if name not in stars.colnames:
        raise KeyError(f"the table has no column {name!r}; it has {stars.colnames}")
    col = schema.column(name)
    data = stars[name]
    values = np.asarray(data.to_value(col.unit) if hasattr(data, "unit") else data, dtype=float)
    if name == "Z":
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
        return values, r"$\log_{10} Z$"
    return values, col.label


def _quantity_values(stars: Any, name: str, unit: u.UnitBase) -> np.ndarray:
    if name not in stars.colnames:
        raise KeyError(f"the table has no column {name!r}; it has {stars.colnames}")
    data = stars[name]
    if not hasattr(data, "unit") or data.unit is None:
        raise u.UnitsError(f"column {name!r} has no unit; expected one convertible to {unit}")
    return np.asarray(data.to_value(unit), dtype=float)


def total_mass_of(stars: Any) -> u.Quantity | None:
    """Total stellar mass of the galaxy a sample was drawn for, from its ``meta``, or None.

    Parameters
    ----------
    stars : astropy.table.QTable
        A sample from :meth:`GalaxyModel.sample`; ``meta["conditions"]["M_stars"]`` holds the
        mass (read by :func:`astroflow_gal.inputs.sample_conditions`).

    Returns
    -------
    astropy.units.Quantity or None
        The mass in Msun, or None when the table does not record it.
    """
    from ..inputs import sample_conditions

    value = sample_conditions(stars).get("M_stars")
    if value is None:
        return None
    mass = value.value * u.Msun if value.unit == u.dimensionless_unscaled else value.to(u.Msun)
    if not np.isfinite(mass.value) or mass.value <= 0:
        raise ValueError(f"meta records a non-positive or non-finite M_stars: {value!r}")
    return mass


def _check_edges(edges: Any) -> np.ndarray:
    if isinstance(edges, u.Quantity):
        edges = edges.to_value(u.kpc)
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"edges must be a 1-D array of at least 2 radii, got shape {edges.shape}")
    if not np.all(np.isfinite(edges)):
        raise ValueError("edges hold NaN or infinite radii")
    if edges[0] < 0 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be non-negative and strictly increasing")
    return edges


def radial_profiles(
    stars: Any, edges: Any, total_mass: u.Quantity | float | None = None
) -> Any:
    """Radial profiles of a galaxy sample in bins of cylindrical radius ``R``.

    Velocities are decomposed into cylindrical components about the z axis (the disc's angular
    momentum): ``v_R = (x vx + y vy) / R`` and ``v_phi = (x vy - y vx) / R``.

    Parameters
    ----------
    stars : astropy.table.QTable
        Columns ``x, y`` (length), ``vx, vy, vz`` (velocity); ``feh`` (dex) and ``age`` (time)
        are used when present.
    edges : astropy.units.Quantity or array-like
        Bin edges in cylindrical radius, a length Quantity or plain numbers in kpc; strictly
        increasing, non-negative.
    total_mass : astropy.units.Quantity or float, optional
        Stellar mass of the whole galaxy the sample stands for (Msun if a plain number). Each star
        then weighs ``total_mass / len(stars)``. By default read from ``stars.meta`` (see
        :func:`total_mass_of`); without it the surface density counts stars.

    Returns
    -------
    xarray.Dataset
        On the dimension ``R`` (bin centres, kpc; bin limits in ``R_lo``, ``R_hi``):
        ``n_stars``; ``Sigma`` (Msun/kpc2, or 1/kpc2 counting stars); ``v_phi``, ``v_R``, ``v_z``
        (mean, km/s); ``sigma_R``, ``sigma_phi``, ``sigma_z`` (standard deviations with ddof=1,
        km/s); ``feh`` (mean, dex) and ``age`` (mean, Gyr) when present. Units are in each
        variable's ``units`` attribute. Means are NaN in empty bins, dispersions in bins of
        fewer than two stars.
    """
    from .binned import profiles

    edges = _check_edges(edges)
    # This function insists on units (profiles reads unit-less columns in schema units).
    for name, unit in (("x", u.kpc), ("y", u.kpc), ("vx", u.km / u.s), ("vy", u.km / u.s),
                       ("vz", u.km / u.s)):
        _quantity_values(stars, name, unit)
    n_total = len(stars)
    if total_mass is None:
        total_mass = total_mass_of(stars)
    if total_mass is not None:
        mass = u.Quantity(total_mass)
        mass = (mass.value * u.Msun if mass.unit == u.dimensionless_unscaled else mass).to(u.Msun)
        if not np.isfinite(mass.value) or mass.value <= 0:
            raise ValueError(f"total_mass must be positive and finite, got {total_mass!r}")
        weight, sigma_unit = (mass.value / max(n_total, 1)), "Msun / kpc2"
    else:
        weight, sigma_unit = 1.0, "1 / kpc2"

    # The numbers come from analysis.profiles (mass-weighted, equal masses here: the usual
    # ddof=1 dispersions); this function keeps its older, smaller set of variables.
    ds = profiles(stars, bins=edges, mass=weight, n_bootstrap=0)
    keep = ["n_stars", "Sigma", "v_phi", "v_R", "v_z", "sigma_R", "sigma_phi", "sigma_z"]
    keep += [name for name in ("feh", "age") if name in ds]
    ds = ds[keep]
    ds.attrs.clear()
    ds["Sigma"].attrs.update(
        {"units": sigma_unit,
         "label": r"$\Sigma$ [M$_\odot$ kpc$^{-2}$]" if sigma_unit.startswith("Msun")
         else r"$\Sigma$ [stars kpc$^{-2}$]"}
    )
    ds.attrs.update(
        {
            "n_stars_total": int(n_total),
            "star_mass": weight if sigma_unit.startswith("Msun") else float("nan"),
            "star_mass_units": "Msun" if sigma_unit.startswith("Msun") else "",
            "description": "radial profiles in cylindrical radius about the disc axis (+z)",
        }
    )
    return ds


# -- figures ------------------------------------------------------------------------------------
def _plot_range(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def corner_plot(
    stars: Any,
    columns: Sequence[str] | None = None,
    bins: int = 50,
    reference: Any = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Corner plot: 2-D histograms of every pair of columns and 1-D histograms on the diagonal.

    Parameters
    ----------
    stars : astropy.table.QTable
        The sample (schema columns in any compatible units; plotted in schema units).
    columns : sequence of str, optional
        Star columns to show (default: every schema star column in the table). ``Z`` is shown as
        ``log10 Z``.
    bins : int
        Histogram bins per axis; axis ranges cover the central 99 % of the values.
    reference : astropy.table.QTable, optional
        A second sample (e.g. drawn from the exact synthetic truth) drawn in a second colour:
        contours in the pair panels, a step histogram on the diagonal.
    path : str or path-like, optional
        Also write the figure there (format from the suffix, PNG by default).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if columns is None:
        columns = [n for n in schema.STAR_NAMES if n in stars.colnames]
    columns = list(columns)
    if not columns:
        raise ValueError("no columns to plot")
    if isinstance(bins, bool) or int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    bins = int(bins)
    values, labels, ref_values = [], [], []
    for name in columns:
        v, label = _column_values(stars, name)
        values.append(v)
        labels.append(label)
        if reference is not None:
            ref_values.append(_column_values(reference, name)[0])
    ranges = [_plot_range([v] + ([ref_values[i]] if reference is not None else []))
              for i, v in enumerate(values)]

    plt = _pyplot()
    from matplotlib.colors import LogNorm

    k = len(columns)
    from matplotlib.ticker import MaxNLocator

    fig = plt.figure(figsize=(1.9 * k + 1, 1.9 * k + 1))
    grid = fig.add_gridspec(k, k, left=0.08, right=0.98, bottom=0.06, top=0.98,
                            wspace=0.05, hspace=0.05)
    first = None
    for i in range(k):
        for j in range(i + 1):
            # Only the lower triangle gets axes: building 100 axes for 10 columns is slow.
            ax = fig.add_subplot(grid[i, j])
            first = first or ax
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            if i == j:
                edges = np.linspace(*ranges[i], bins + 1)
                ax.hist(values[i], bins=edges, density=True, histtype="stepfilled",
                        color=_STAR_COLOUR, alpha=0.45, label="sample")
                if reference is not None:
                    ax.hist(ref_values[i], bins=edges, density=True, histtype="step",
                            color=_REFERENCE_COLOUR, lw=1.4, label="reference")
                ax.set_yticks([])
            else:
                ex = np.linspace(*ranges[j], bins + 1)
                ey = np.linspace(*ranges[i], bins + 1)
                h, _, _ = np.histogram2d(values[j], values[i], bins=(ex, ey))
                if h.max() > 0:
                    ax.imshow(np.ma.masked_equal(h.T, 0), origin="lower", aspect="auto",
                              extent=(ex[0], ex[-1], ey[0], ey[-1]), cmap="Blues",
                              norm=LogNorm(vmin=1, vmax=max(h.max(), 1.5)),
                              interpolation="nearest")
                if reference is not None:
                    hr, _, _ = np.histogram2d(ref_values[j], ref_values[i], bins=(ex, ey))
                    if hr.max() > 0:
                        cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
                        levels = hr.max() * np.array([0.01, 0.1, 0.5])
                        ax.contour(cx, cy, hr.T, levels=levels, colors=_REFERENCE_COLOUR,
                                   linewidths=0.9)
                ax.set_ylim(*ranges[i])
            ax.set_xlim(*ranges[j])
            if i == k - 1:
                ax.set_xlabel(labels[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(labels[i])
            elif j > 0:
                ax.set_yticklabels([])
            ax.tick_params(labelsize=7)
    if reference is not None and k > 1:
        handles, names = first.get_legend_handles_labels()
        fig.legend(handles, names, loc="upper right", bbox_to_anchor=(0.98, 0.9), frameon=False)
    title = _title(stars, sep="\n")
    if title and k > 1:
        fig.text(0.98, 0.98, title, ha="right", va="top", fontsize=10)
    elif title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path, dpi=90, tight=False)
    return fig


def _short(value: Any) -> str:
    try:
        q = u.Quantity(value)
    except (TypeError, ValueError):
        return str(value)
    unit = "" if q.unit == u.dimensionless_unscaled else f" {q.unit:latex_inline}"
    return f"{q.value:.4g}{unit}"


def _title(stars: Any, sep: str = " | ") -> str:
    from ..inputs import sample_conditions

    meta = getattr(stars, "meta", None) or {}
    try:
        conditions = sample_conditions(stars)
    except (ValueError, TypeError):
        conditions = {}
    parts = [f"{k} = {_short(v)}" for k, v in conditions.items()]
    head = f"{len(stars):,} stars"
    if meta.get("model"):
        head += f" from {meta['model']}"
    return sep.join([head, *parts])


def profile_plot(
    stars: Any,
    path: str | os.PathLike | None = None,
    r_max: u.Quantity | float | None = None,
    n_bins: int = 30,
) -> Any:
    """Radial profiles of a sample in four panels against cylindrical radius ``R``.

    Panels: surface density ``Sigma(R)`` (Msun/kpc2 when ``stars.meta`` records ``M_stars``, else
    stars/kpc2); mean rotation ``<v_phi>`` with the dispersions ``sigma_R``, ``sigma_phi``,
    ``sigma_z`` (km/s); mean [Fe/H] (dex); mean age (Gyr). The numbers come from
    :func:`radial_profiles`.

    Parameters
    ----------
    stars : astropy.table.QTable
        The sample.
    path : str or path-like, optional
        Also write the figure there (format from the suffix, PNG by default).
    r_max : astropy.units.Quantity or float, optional
        Outer radius (kpc if a plain number); default the 95th percentile of ``R``.
    n_bins : int
        Number of equal-width radial bins from 0 to ``r_max``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if r_max is None:
        R = np.hypot(_quantity_values(stars, "x", u.kpc), _quantity_values(stars, "y", u.kpc))
        R = R[np.isfinite(R)]
        if R.size == 0:
            raise ValueError("no star with a finite radius to plot")
        r_max = float(np.percentile(R, 95.0))
    elif isinstance(r_max, u.Quantity):
        r_max = float(r_max.to_value(u.kpc))
    r_max = float(r_max)
    if not np.isfinite(r_max) or r_max <= 0:
        raise ValueError(f"r_max must be a positive, finite radius, got {r_max!r}")
    ds = radial_profiles(stars, np.linspace(0.0, r_max, int(n_bins) + 1))

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    R = ds["R"].values
    ax = axes[0, 0]
    sigma = ds["Sigma"].values
    ax.plot(R, np.where(sigma > 0, sigma, np.nan), "o-", ms=3, color="k")
    ax.set_yscale("log")
    ax.set_ylabel(ds["Sigma"].attrs["label"])
    ax = axes[0, 1]
    ax.plot(R, ds["v_phi"], "o-", ms=3, color="k", label=r"$\langle v_\phi \rangle$")
    for name, label, colour in (("sigma_R", r"$\sigma_R$", "C3"),
                                ("sigma_phi", r"$\sigma_\phi$", "C2"),
                                ("sigma_z", r"$\sigma_z$", "C0")):
        ax.plot(R, ds[name], "--", color=colour, label=label)
    ax.set_ylabel("velocity [km/s]")
    ax.legend(fontsize=8, frameon=False)
    for ax, name, label in ((axes[1, 0], "feh", r"$\langle$[Fe/H]$\rangle$ [dex]"),
                            (axes[1, 1], "age", r"$\langle$age$\rangle$ [Gyr]")):
        if name in ds:
            ax.plot(R, ds[name], "o-", ms=3, color="k")
        else:
            ax.text(0.5, 0.5, f"no {name} column", ha="center", transform=ax.transAxes)
        ax.set_ylabel(label)
        ax.set_xlabel(r"$R$ [kpc]")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.set_xlim(0, r_max)
    title = _title(stars)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig

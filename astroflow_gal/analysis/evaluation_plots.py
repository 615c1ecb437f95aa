"""Figures that judge a model against data: the paper's Figures 2 and 3, and metrics per galaxy.

- :func:`comparison_corner_plot` (paper Figure 2): every pair of star columns, the data galaxy in
  the lower triangle and the model galaxy in the upper one, on the same bins and ranges; the 1-D
  densities of both on the diagonal.
- :func:`mmd_mass_plot` (paper Figure 3): linear MMD against the difference in log stellar mass,
  model-versus-data points over the data-versus-data distribution (shaded percentile bands).
- :func:`metric_mass_plot`: one metric per galaxy (KL, classifier AUC, kernel MMD) against
  log10 M_stars, held-out galaxies marked.

Matplotlib is imported inside the functions; every function returns its Figure and writes it to
``path`` when one is given (format from the suffix).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import schema
from .plots import _column_values, _plot_range, _pyplot, _save

__all__ = ["comparison_corner_plot", "metric_mass_plot", "mmd_mass_plot", "mmd_bands"]

DATA_COLOUR = "C0"
MODEL_COLOUR = "C1"


def _label(name: str) -> str:
    """Axis label with the unit from the schema (``log10 Z`` is dimensionless)."""
    if name == "Z":
        return r"$\log_{10} Z$ [dimensionless]"
    return schema.column(name).label


def comparison_corner_plot(
    data: Any,
    model: Any,
    columns: Sequence[str] | None = None,
    bins: int = 40,
    path: str | os.PathLike | None = None,
    labels: tuple[str, str] = ("data", "model"),
    title: str | None = None,
) -> Any:
    """Corner plot of a data galaxy (lower triangle) against a model galaxy (upper triangle).

    Every column ``i`` is the x axis of the whole figure column ``i`` and the y axis of the whole
    figure row ``i``, so the model panel at (row ``j``, column ``i``) shows the same pair of
    columns as the data panel at (row ``i``, column ``j``), with the axes exchanged (the paper
    flipped its model panels instead; this keeps one variable per row and per column, labelled
    with its unit on the left and bottom edges and, for the model's triangle, on the top and right
    edges). Both triangles share the bins and ranges (central 99 % of the pooled values) and one
    logarithmic colour scale of the fraction of stars per bin, so equal colours mean equal
    densities. The diagonal shows the normalised 1-D histograms of both.

    Parameters
    ----------
    data, model : astropy.table.QTable
        The two samples (schema star columns in any compatible units; plotted in schema units,
        ``Z`` as ``log10 Z``).
    columns : sequence of str, optional
        Star columns (default: the schema star columns present in both).
    bins : int
        Bins per axis (>= 2).
    path : str or path-like, optional
        Also write the figure there.
    labels : (str, str)
        Names of the data and the model in the legend.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if columns is None:
        columns = [n for n in schema.STAR_NAMES if n in data.colnames and n in model.colnames]
    columns = list(columns)
    if not columns:
        raise ValueError("no star column common to the data and the model to plot")
    if isinstance(bins, bool) or int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if len(data) == 0 or len(model) == 0:
        raise ValueError("the data and the model sample must both hold stars")
    bins = int(bins)
    dv = [_column_values(data, n)[0] for n in columns]
    mv = [_column_values(model, n)[0] for n in columns]
    ranges = [_plot_range([a, b]) for a, b in zip(dv, mv, strict=True)]
    edges = [np.linspace(*r, bins + 1) for r in ranges]

    plt = _pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

    k = len(columns)
    hists = {}
    vmax = 0.0
    for i in range(k):
        for j in range(i):
            hd, _, _ = np.histogram2d(dv[j], dv[i], bins=(edges[j], edges[i]))
            hm, _, _ = np.histogram2d(mv[j], mv[i], bins=(edges[j], edges[i]))
            hists[i, j] = hd / len(data)
            hists[j, i] = hm.T / len(model)  # x: column i, y: column j
            vmax = max(vmax, hists[i, j].max(), hists[j, i].max())
    vmin = min(1.0 / len(data), 1.0 / len(model))
    norm = LogNorm(vmin=vmin, vmax=max(vmax, 2 * vmin))
    size = 1.55 * k + 1.2
    fig, axes = plt.subplots(k, k, figsize=(size, size), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.92, bottom=0.07, top=0.89, wspace=0.06, hspace=0.06)
    image = None
    for row in range(k):
        for col in range(k):
            ax = axes[row, col]
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(3))
            ax.tick_params(labelsize=6, direction="in", top=True, right=True)
            if row == col:
                ax.hist(dv[row], bins=edges[row], density=True, histtype="stepfilled",
                        color=DATA_COLOUR, alpha=0.45, label=labels[0])
                ax.hist(mv[row], bins=edges[row], density=True, histtype="step",
                        color=MODEL_COLOUR, lw=1.3, label=labels[1])
                ax.set_yticks([])
            else:
                h = hists[row, col]
                cmap = "Blues" if row > col else "Oranges"
                image = ax.imshow(np.ma.masked_equal(h.T, 0), origin="lower", aspect="auto",
                                  extent=(edges[col][0], edges[col][-1], edges[row][0],
                                          edges[row][-1]),
                                  cmap=cmap, norm=norm, interpolation="nearest")
                ax.set_ylim(*ranges[row])
            ax.set_xlim(*ranges[col])
            if row == k - 1:
                ax.set_xlabel(_label(columns[col]), fontsize=7)
            elif row == 0 and col > 0:
                ax.xaxis.set_label_position("top")
                ax.xaxis.tick_top()
                ax.set_xlabel(_label(columns[col]), fontsize=7)
            else:
                ax.set_xticklabels([])
            if col == 0 and row > 0:
                ax.set_ylabel(_label(columns[row]), fontsize=7)
            elif col == k - 1 and row < k - 1:
                ax.yaxis.set_label_position("right")
                ax.yaxis.tick_right()
                ax.set_ylabel(_label(columns[row]), fontsize=7)
            elif row != col:
                ax.set_yticklabels([])
    if k > 1:
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, [f"{names[0]} (lower triangle)", f"{names[1]} (upper triangle)"],
                   loc="lower left", bbox_to_anchor=(0.08, 0.945), ncol=2, frameon=False,
                   fontsize=9)
        if image is not None:
            cax = fig.add_axes((0.5, 0.965, 0.18, 0.008))
            bar = fig.colorbar(image, cax=cax, orientation="horizontal")
            bar.set_label("fraction of stars per bin (both triangles)", fontsize=7)
            bar.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10, x=0.92, y=0.985, ha="right")
    _save(fig, path, dpi=80, tight=False)
    return fig


def mmd_bands(
    dlogm: Any, mmd: Any, edges: Any, percentiles: Sequence[float] = (2.5, 16, 50, 84, 97.5)
) -> dict[str, np.ndarray]:
    """Percentiles of the data-versus-data linear MMD in bins of Delta log10 M_stars.

    Parameters
    ----------
    dlogm : array-like
        Delta log10 M_stars of each data pair [dex].
    mmd : array-like
        Linear MMD of each pair (dimensionless).
    edges : array-like
        Bin edges in Delta log10 M_stars [dex].
    percentiles : sequence of float
        Which percentiles (in per cent).

    Returns
    -------
    dict
        ``centre`` (bin centres, dex), ``count`` (pairs per bin) and ``p<q>`` for each
        percentile ``q`` (NaN in bins of fewer than 5 pairs).
    """
    dlogm, mmd, edges = (np.asarray(v, dtype=float) for v in (dlogm, mmd, edges))
    idx = np.digitize(dlogm, edges) - 1
    n_bins = edges.size - 1
    out: dict[str, np.ndarray] = {"centre": 0.5 * (edges[1:] + edges[:-1]),
                                  "count": np.zeros(n_bins, dtype=int)}
    for q in percentiles:
        out[f"p{q:g}"] = np.full(n_bins, np.nan)
    for b in range(n_bins):
        sel = mmd[idx == b]
        out["count"][b] = sel.size
        if sel.size >= 5:
            for q in percentiles:
                out[f"p{q:g}"][b] = np.percentile(sel, q)
    return out


def mmd_mass_plot(
    model_pairs: Any,
    data_pairs: Any,
    path: str | os.PathLike | None = None,
    bin_width: float = 0.25,
    title: str | None = None,
) -> Any:
    """Paper Figure 3: linear MMD against Delta log10 M_stars, model points over the data band.

    Parameters
    ----------
    model_pairs : astropy.table.Table
        One row per (model galaxy, data galaxy) pair: ``dlogm`` (log10 M_stars of the model
        galaxy minus that of the data galaxy, dex), ``mmd`` (linear MMD, dimensionless) and
        optionally ``held_out`` (bool: the model galaxy was not trained on).
    data_pairs : astropy.table.Table
        One row per ordered pair of distinct data galaxies: ``dlogm`` and ``mmd``.
    path : str or path-like, optional
        Also write the figure there.
    bin_width : float
        Width of the Delta log10 M_stars bins of the data band [dex].
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if len(data_pairs) == 0 or len(model_pairs) == 0:
        raise ValueError("both the model-data and the data-data pair tables must hold rows")
    if not bin_width > 0:
        raise ValueError(f"bin_width must be positive, got {bin_width!r}")
    d_dlogm = np.asarray(data_pairs["dlogm"], dtype=float)
    d_mmd = np.asarray(data_pairs["mmd"], dtype=float)
    m_dlogm = np.asarray(model_pairs["dlogm"], dtype=float)
    m_mmd = np.asarray(model_pairs["mmd"], dtype=float)
    held = (np.asarray(model_pairs["held_out"], dtype=bool) if "held_out" in model_pairs.colnames
            else np.ones(len(model_pairs), dtype=bool))
    lim = max(np.abs(d_dlogm).max(), np.abs(m_dlogm).max()) + bin_width
    edges = np.arange(-lim, lim + bin_width, bin_width)
    bands = mmd_bands(d_dlogm, d_mmd, edges)

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    c = bands["centre"]
    ax.fill_between(c, bands["p2.5"], bands["p97.5"], color=DATA_COLOUR, alpha=0.18, lw=0,
                    label="data vs data, 95 %")
    ax.fill_between(c, bands["p16"], bands["p84"], color=DATA_COLOUR, alpha=0.35, lw=0,
                    label="data vs data, 68 %")
    ax.plot(c, bands["p50"], color=DATA_COLOUR, lw=1, label="data vs data, median")
    if np.any(~held):
        ax.scatter(m_dlogm[~held], m_mmd[~held], s=5, color="0.35", alpha=0.5, lw=0,
                   label="model (trained galaxy) vs data")
    if np.any(held):
        ax.scatter(m_dlogm[held], m_mmd[held], s=9, color=MODEL_COLOUR, alpha=0.8, lw=0,
                   label="model (held-out galaxy) vs data")
    ax.set_yscale("log")
    positive = np.concatenate([d_mmd[d_mmd > 0], m_mmd[m_mmd > 0]])
    if positive.size:
        ax.set_ylim(np.percentile(positive, 0.5) / 2, positive.max() * 1.5)
    ax.set_xlabel(r"$\Delta \log_{10} M_\star$ (model galaxy $-$ data galaxy) [dex]")
    ax.set_ylabel("linear MMD [dimensionless]")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return fig


_METRICS = {
    "kl": ("kl", "kl_err", "KL(truth || model) [nat per star]", False),
    "auc": ("auc", "auc_err", "classifier ROC AUC [dimensionless]", False),
    "kernel_mmd": ("kernel_mmd", None, r"kernel MMD$^2$ [dimensionless]", True),
    "linear_mmd": ("linear_mmd", None, "linear MMD to its own data galaxy [dimensionless]", True),
}


def metric_mass_plot(
    table: Any,
    metrics: Sequence[str] = ("auc",),
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Any:
    """Metrics per galaxy against log10 M_stars, held-out galaxies marked.

    Parameters
    ----------
    table : astropy.table.QTable
        Metrics per galaxy (from :func:`astroflow_gal.analysis.evaluate.evaluate`): ``M_stars``
        (Msun), ``held_out`` (bool) and the metric columns.
    metrics : sequence of {"kl", "auc", "kernel_mmd", "linear_mmd"}
        One panel each, stacked; metrics missing from the table are refused.
    path : str or path-like, optional
        Also write the figure there.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import astropy.units as u

    metrics = list(metrics)
    if not metrics:
        raise ValueError("name at least one metric to plot")
    for name in metrics:
        if name not in _METRICS:
            raise ValueError(f"unknown metric {name!r}; known: {sorted(_METRICS)}")
        if _METRICS[name][0] not in table.colnames:
            raise ValueError(f"the table has no column {_METRICS[name][0]!r} for metric {name!r}")
    mass = u.Quantity(table["M_stars"])
    mass = mass.value if mass.unit == u.dimensionless_unscaled else mass.to_value(u.Msun)
    logm = np.log10(mass)
    held = np.asarray(table["held_out"], dtype=bool)

    plt = _pyplot()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(6.5, 2.6 * len(metrics) + 0.6),
                             sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], metrics, strict=True):
        col, err_col, label, log = _METRICS[name]
        y = np.asarray(table[col], dtype=float)
        err = np.asarray(table[err_col], dtype=float) if err_col in table.colnames else None
        for mask, colour, marker, what in ((~held, "0.3", "o", "trained"),
                                           (held, MODEL_COLOUR, "*", "held out")):
            if np.any(mask):
                ax.errorbar(logm[mask], y[mask], yerr=None if err is None else err[mask],
                            fmt=marker, ms=5 if marker == "o" else 10, color=colour, lw=0.8,
                            capsize=2, label=f"{what} ({int(mask.sum())})")
        if name == "auc":
            ax.axhline(0.5, color="k", lw=0.8, ls="--")
        if log and np.all(y[np.isfinite(y)] > 0):
            ax.set_yscale("log")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel(r"$\log_{10} (M_\star / M_\odot)$ [dex]")
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return fig

"""Figures of mock observations: a sky map of a catalogue, the panels of IFU maps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np

__all__ = ["plot_sky", "plot_ifu_maps"]

_IFU_PANELS = {
    "surface_density": ("log10 Σ", "viridis"),
    "v_los": ("mean v_los", "RdBu_r"),
    "sigma_los": ("σ_los", "magma"),
    "age": ("mean age", "cividis"),
    "feh": ("mean [Fe/H]", "plasma"),
    "ofe": ("mean [O/Fe]", "plasma"),
}


def plot_sky(
    catalogue: Any,
    color: str | None = "feh",
    path: str | os.PathLike | None = None,
    max_points: int = 200_000,
    seed: int = 0,
) -> Any:
    """An all-sky map of a catalogue in Galactic coordinates (Mollweide, l increasing leftwards).

    Parameters
    ----------
    catalogue : astropy.table.QTable
        Columns ``l``, ``b`` [angle] (from :func:`astroflow_gal.observe.survey`).
    color : str, optional
        Column that colours the points (its unit goes on the colour bar); None for one colour.
    path : str or path-like, optional
        Save the figure there (PNG, 150 dpi).
    max_points : int
        At most this many random stars are drawn.
    seed : int
        Seed of that random choice.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    for name in ("l", "b") + ((color,) if color else ()):
        if name not in catalogue.colnames:
            raise ValueError(f"catalogue has no column {name!r}")
    n = len(catalogue)
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    lon = u.Quantity(catalogue["l"][rows]).to_value(u.rad)
    lat = u.Quantity(catalogue["b"][rows]).to_value(u.rad)
    lon = -((lon + np.pi) % (2 * np.pi) - np.pi)  # l in (-180, 180], east (l > 0) to the left
    fig = plt.figure(figsize=(8, 4.4))
    ax = fig.add_subplot(111, projection="mollweide")
    size = 4.0 if len(rows) < 5_000 else 1.0
    if color:
        col = catalogue[color][rows]
        values = np.asarray(getattr(col, "value", col), dtype=float)
        unit = getattr(col, "unit", None)
        lo, hi = np.nanpercentile(values, [2, 98])
        sc = ax.scatter(lon, lat, c=values, s=size, cmap="viridis", vmin=lo, vmax=hi,
                        rasterized=True, linewidths=0)
        label = color + (f" [{unit.to_string()}]" if unit not in (None, "") and str(unit) else "")
        fig.colorbar(sc, ax=ax, orientation="horizontal", pad=0.08, fraction=0.05, label=label)
    else:
        ax.scatter(lon, lat, s=size, color="k", rasterized=True, linewidths=0)
    ticks = np.radians([-150, -120, -90, -60, -30, 0, 30, 60, 90, 120, 150])
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{round(t) % 360}°" for t in -np.degrees(ticks)], fontsize=7)
    ax.grid(True, alpha=0.4)
    ax.set_title(f"{len(rows):,} stars, Galactic coordinates (l, b)", fontsize=10, pad=14)
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def plot_ifu_maps(
    maps: Any,
    variables: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    min_counts: int = 1,
) -> Any:
    """The panels of IFU maps: surface density (log), v_los, σ_los, age, [Fe/H], [O/Fe].

    Parameters
    ----------
    maps : xarray.Dataset
        From :func:`astroflow_gal.observe.ifu_maps`.
    variables : sequence of str, optional
        Which maps, in order [default every one present].
    path : str or path-like, optional
        Save the figure there (PNG, 150 dpi).
    min_counts : int
        Means and dispersions are shown only in pixels with at least this many stars.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if variables is None:
        variables = [v for v in _IFU_PANELS if v in maps.data_vars]
    missing = [v for v in variables if v not in maps.data_vars]
    if missing:
        raise ValueError(f"maps have no variables {missing}; present: {list(maps.data_vars)}")
    east = maps["east"].values
    north = maps["north"].values
    de = east[1] - east[0] if len(east) > 1 else 1.0
    dn = north[1] - north[0] if len(north) > 1 else 1.0
    extent = [east[0] - de / 2, east[-1] + de / 2, north[0] - dn / 2, north[-1] + dn / 2]
    ncol = min(3, len(variables))
    nrow = int(np.ceil(len(variables) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.5 * nrow), squeeze=False)
    counts = maps["counts"].values if "counts" in maps else None
    v_sys = None
    if "systemic_velocity" in maps.attrs:
        v_sys = u.Quantity(maps.attrs["systemic_velocity"]).to_value(u.km / u.s)
    for ax, name in zip(axes.flat, variables, strict=False):
        data = np.array(maps[name].values, dtype=float)
        units = maps[name].attrs.get("units", "")
        title, cmap = _IFU_PANELS.get(name, (name, "viridis"))
        kwargs: dict[str, Any] = {}
        if name == "surface_density":
            with np.errstate(divide="ignore"):
                data = np.where(data > 0, np.log10(data), np.nan)
            label = f"log10 Σ [{units}]"
        else:
            if counts is not None and name != "counts":
                data = np.where(counts >= min_counts, data, np.nan)
            label = f"{title} [{units}]" if units else title
            if name == "v_los" and np.isfinite(data).any():
                centre = v_sys if v_sys is not None else np.nanmedian(data)
                amp = np.nanpercentile(np.abs(data - centre), 98)
                kwargs = {"vmin": centre - amp, "vmax": centre + amp}
            elif np.isfinite(data).any():
                lo, hi = np.nanpercentile(data, [2, 98])
                kwargs = {"vmin": lo, "vmax": hi}
        im = ax.imshow(data, origin="lower", extent=extent, cmap=cmap, **kwargs)
        ax.set_xlim(extent[1], extent[0])  # east to the left, as on the sky
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("east offset [arcsec]", fontsize=8)
        ax.set_ylabel("north offset [arcsec]", fontsize=8)
        fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    for ax in list(axes.flat)[len(variables):]:
        ax.set_visible(False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig

"""``astroflow-gal profiles``: radial profiles of one galaxy drawn from a model, to netCDF and PNG.

The stars are drawn from the model at the given conditions and binned with
:func:`astroflow_gal.analysis.profiles` (surface density, mean velocities, dispersions, chemistry,
bootstrap errors). The dataset goes to a netCDF file (read it with ``xarray.open_dataset``; units
are in every variable's ``units`` attribute) and a figure of the profiles beside it (same name,
``.png``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import add_condition_arguments, given_conditions, load_model


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``profiles`` sub-command."""
    p = sub.add_parser(
        "profiles",
        help="radial profiles of a galaxy drawn from a model; netCDF and PNG",
        description="Draw the stars of one galaxy from a model and write its radial profiles "
        "(surface density, mean velocities, dispersions, age and chemistry, with bootstrap "
        "errors) to netCDF, with a figure beside it.",
    )
    p.add_argument("model", help="model file (.h5), or 'default' for the shipped model")
    add_condition_arguments(p, required=True)
    p.add_argument("-n", "--n-stars", type=int, default=200_000,
                   help="stars drawn (default 200,000)")
    p.add_argument("-o", "--output", type=Path, default=Path("profiles.nc"),
                   help="netCDF file (default profiles.nc); the figure goes beside it (.png)")
    p.add_argument("--bins", type=int, default=20, help="radial bins (default 20)")
    p.add_argument("--r-max", type=float, default=None,
                   help="outer radius [kpc] (default: the 95th percentile of R)")
    p.add_argument("--n-bootstrap", type=int, default=50,
                   help="bootstrap resamplings for the errors (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="accept conditions far outside the training range")
    p.set_defaults(func=run)


def profiles_figure(ds: Any, path: str | Path | None = None, title: str = "") -> Any:
    """Four panels of a profiles dataset with its bootstrap errors.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset of :func:`astroflow_gal.analysis.profiles` (radial bins only).
    path : str or path-like, optional
        Also write the figure there (PNG).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..analysis.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    R = ds["R"].values

    def band(ax: Any, name: str, colour: str, label: str, style: str = "-") -> None:
        y = ds[name].values
        ax.plot(R, y, style, color=colour, label=label, ms=3)
        if f"{name}_err" in ds:
            e = ds[f"{name}_err"].values
            ax.fill_between(R, y - e, y + e, color=colour, alpha=0.25, lw=0)

    ax = axes[0, 0]
    sigma = ds["Sigma"].values
    ax.plot(R, np.where(sigma > 0, sigma, np.nan), "o-", ms=3, color="k")
    if "Sigma_err" in ds:
        lo = np.clip(sigma - ds["Sigma_err"].values, 1e-300, None)
        ax.fill_between(R, lo, sigma + ds["Sigma_err"].values, color="k", alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_ylabel(r"$\Sigma$ [M$_\odot$ kpc$^{-2}$]")
    ax = axes[0, 1]
    if "v_phi" in ds:
        band(ax, "v_phi", "k", r"$\langle v_\phi \rangle$", "o-")
        for name, label, colour in (("sigma_R", r"$\sigma_R$", "C3"),
                                    ("sigma_phi", r"$\sigma_\phi$", "C2"),
                                    ("sigma_z", r"$\sigma_z$", "C0")):
            band(ax, name, colour, label, "--")
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel("velocity [km/s]")
    ax = axes[1, 0]
    for name, label, colour in (("feh", "[Fe/H]", "C1"), ("ofe", "[O/Fe]", "C4")):
        if name in ds:
            band(ax, name, colour, label, "o-")
    ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel("mean abundance [dex]")
    ax = axes[1, 1]
    if "age" in ds:
        band(ax, "age", "k", "age", "o-")
    ax.set_ylabel(r"$\langle$age$\rangle$ [Gyr]")
    for ax in axes[1]:
        ax.set_xlabel(r"$R$ [kpc]")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.set_xlim(0, float(ds["R_hi"].values[-1]))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def run(args: argparse.Namespace) -> int:
    """Draw the galaxy, bin it, write the netCDF file and the figure."""
    import astropy.units as u

    from ..analysis.binned import profiles
    from ..io import atomic_path

    if args.n_stars < 100:
        raise ValueError(f"--n-stars must be at least 100, got {args.n_stars}")
    if args.bins < 1:
        raise ValueError(f"--bins must be positive, got {args.bins}")
    if args.r_max is not None and not (np.isfinite(args.r_max) and args.r_max > 0):
        raise ValueError(f"--r-max must be a positive radius in kpc, got {args.r_max}")
    conditions = given_conditions(args)
    output = Path(args.output)
    if not output.parent.exists():
        raise FileNotFoundError(f"folder {output.parent} of {output} does not exist")
    model = load_model(args.model)
    start = time.perf_counter()
    stars = model.sample(args.n_stars, conditions, seed=args.seed,
                         allow_extrapolation=args.allow_extrapolation)
    print(f"drew {len(stars):,} stars in {time.perf_counter() - start:.1f} s", flush=True)
    bins: Any = args.bins
    if args.r_max is not None:
        bins = np.linspace(0.0, args.r_max, args.bins + 1) * u.kpc
    ds = profiles(stars, bins=bins, n_bootstrap=args.n_bootstrap, seed=args.seed)
    ds.attrs["model"] = str(model.meta.get("name", "unnamed"))
    ds.attrs["n_stars_drawn"] = int(args.n_stars)
    ds.attrs["sample_seed"] = int(args.seed)
    with atomic_path(output) as tmp:
        ds.to_netcdf(tmp)
    png = output.with_suffix(".png")
    title = (f"{args.n_stars:,} stars from {ds.attrs['model']} | "
             + ", ".join(f"{k} = {v:.4g}" for k, v in conditions.items()))
    profiles_figure(ds, png, title=title)
    print(f"profiles: {output}\nfigure: {png}", flush=True)
    return 0

"""``astroflow-gal demo``: draw a Milky-Way-like galaxy from a model and write files and plots.

The stars go to an HDF5 sample file (all of them, streamed in bounded memory; read it with
:func:`astroflow_gal.samples.read_sample`) and to ECSV (by default the first 100,000 rows: the
stars are independent draws, so any rows are a random subset, and ECSV of 10^6 rows takes tens of
seconds to write). A corner plot of a random subset and a radial-profile plot go beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ._common import (
    DEFAULT_CONDITIONS,
    add_condition_arguments,
    choose_conditions,
    load_model,
    model_conditions,
)
from ._common import say as _say

__all__ = ["DEFAULT_CONDITIONS", "choose_conditions", "register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser(
        "demo",
        help="sample a Milky-Way-like galaxy; write HDF5, ECSV and plots",
        description="Draw the stars of one galaxy from the shipped model (or --model FILE) and "
        "write them to HDF5 and ECSV with a corner plot and radial profiles.",
    )
    p.add_argument("-n", "--n-stars", type=int, default=1_000_000,
                   help="number of stars (default 1,000,000)")
    p.add_argument("-o", "--output", type=Path, default=Path("demo_output"),
                   help="output folder (default demo_output/)")
    p.add_argument("--model", type=Path, default=None,
                   help="model file (default: the model shipped with the package)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    add_condition_arguments(p)
    p.add_argument("--ecsv-rows", type=int, default=100_000,
                   help="rows written to ECSV (default 100,000; 0: no ECSV; -1: all rows)")
    p.add_argument("--plot-stars", type=int, default=50_000,
                   help="random stars in the corner plot (default 50,000)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="stars per flow evaluation (default 65,536)")
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="accept conditions far outside the training range")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sample the galaxy, write the files and plots, print where they went."""
    from ..analysis.plots import corner_plot, profile_plot
    from ..io import atomic_path
    from ..samples import read_sample

    n = args.n_stars
    if n < 1:
        raise ValueError(f"-n must be a positive number of stars, got {n}")
    if args.plot_stars < 1:
        raise ValueError(f"--plot-stars must be positive, got {args.plot_stars}")
    if args.ecsv_rows < -1:
        raise ValueError(
            f"--ecsv-rows must be -1 (all), 0 (none) or positive, got {args.ecsv_rows}"
        )
    start_all = time.perf_counter()
    model = load_model(args.model, hint="give a model file with --model")
    conditions, described = model_conditions(args, model)

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    h5_path = out / "stars.h5"
    interactive = sys.stderr.isatty()
    _say(f"model: {model.meta.get('name', 'unnamed')}")
    _say(f"sampling {n:,} stars with {described} (seed {args.seed}) ...")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.sample_to_file(
            n, h5_path, conditions, seed=args.seed, batch_size=args.batch_size,
            progress=interactive, allow_extrapolation=args.allow_extrapolation,
        )
    took = time.perf_counter() - start
    for w in caught:
        _say(f"warning: {w.message}")
    _say(f"sampled and wrote {n:,} stars in {took:.1f} s ({n / max(took, 1e-9):,.0f} stars/s)")

    stars = read_sample(h5_path)
    written = [("stars (HDF5, all rows)", h5_path)]
    if args.ecsv_rows != 0:
        rows = n if args.ecsv_rows < 0 else min(args.ecsv_rows, n)
        ecsv_path = out / "stars.ecsv"
        table = stars[:rows] if rows < n else stars
        if rows < n:
            table.meta["ecsv_rows"] = (
                f"first {rows} of {n} stars; draws are independent, so a random subset; "
                f"all stars are in {h5_path.name}"
            )
        t0 = time.perf_counter()
        with atomic_path(ecsv_path) as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        what = "all rows" if rows == n else f"first {rows:,} rows, a random subset"
        written.append((f"stars (ECSV, {what})", ecsv_path))
        _say(f"wrote ECSV of {rows:,} rows in {time.perf_counter() - t0:.1f} s")

    rng = np.random.default_rng(args.seed)
    n_plot = min(args.plot_stars, n)
    subset = stars[np.sort(rng.choice(n, size=n_plot, replace=False))] if n_plot < n else stars
    corner_path, profile_path = out / "corner.png", out / "profiles.png"
    fig = corner_plot(subset, path=corner_path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    fig = profile_plot(stars, path=profile_path)
    plt.close(fig)
    written += [(f"corner plot ({n_plot:,} random stars)", corner_path),
                ("radial profiles (all stars)", profile_path)]

    total = time.perf_counter() - start_all
    _say("")
    _say(f"galaxy: {n:,} stars | {described}")
    _say(f"time: sampling {took:.1f} s ({n / max(took, 1e-9):,.0f} stars/s), total {total:.1f} s")
    for label, path in written:
        _say(f"  {label}: {path}")
    _say(f"read the stars back with astroflow_gal.samples.read_sample('{h5_path}')")
    return 0

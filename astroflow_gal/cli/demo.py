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
from typing import Any

import numpy as np

from ..data import schema

#: Milky-Way-like defaults (schema units): stellar mass [Msun], median and 10th-percentile
#: stellar age [Gyr], mean metal mass fraction. ``tau10`` (young end) is below ``tau50``.
DEFAULT_CONDITIONS: dict[str, float] = {
    "M_stars": 5e10,
    "tau50": 7.0,
    "tau10": 2.0,
    "Z_av": 0.015,
}
_OPTIONS = {"M_stars": "--M-stars", "tau50": "--tau50", "tau10": "--tau10", "Z_av": "--Z-av"}
_HELP_UNITS = {"M_stars": "Msun", "tau50": "Gyr", "tau10": "Gyr", "Z_av": "dimensionless"}


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
    for name, option in _OPTIONS.items():
        p.add_argument(option, dest=name, type=float, default=None,
                       help=f"{schema.column(name).description} [{_HELP_UNITS[name]}] "
                       f"(default {DEFAULT_CONDITIONS[name]:g}, clipped to the training range)")
    p.add_argument("--ecsv-rows", type=int, default=100_000,
                   help="rows written to ECSV (default 100,000; 0: no ECSV; -1: all rows)")
    p.add_argument("--plot-stars", type=int, default=50_000,
                   help="random stars in the corner plot (default 50,000)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="stars per flow evaluation (default 65,536)")
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="accept conditions far outside the training range")
    p.set_defaults(func=run)


def choose_conditions(
    given: dict[str, float | None], training_range: dict[str, Any] | None
) -> tuple[dict[str, float], list[str]]:
    """Conditions for the demo: the given ones, or the defaults clipped to the training range.

    Parameters
    ----------
    given : dict of str to float or None
        Values from the command line in schema units (Msun, Gyr, Gyr, dimensionless); None takes
        the default from :data:`DEFAULT_CONDITIONS`.
    training_range : dict, optional
        The model's ``training_range`` (name to (min, max), schema units).

    Returns
    -------
    conditions : dict of str to float
        One value per condition, schema units.
    notes : list of str
        One sentence per default that was moved into the training range.
    """
    conditions: dict[str, float] = {}
    notes: list[str] = []
    for name, default in DEFAULT_CONDITIONS.items():
        value = given.get(name)
        if value is not None:
            if not np.isfinite(value):
                raise ValueError(f"{_OPTIONS[name]} must be finite, got {value}")
            conditions[name] = float(value)
            continue
        value = default
        if training_range and name in training_range:
            lo, hi = (float(v) for v in training_range[name])
            clipped = min(max(value, lo), hi)
            if clipped != value:
                unit = _HELP_UNITS[name]
                notes.append(
                    f"default {name} = {value:g} {unit} lies outside the model's training range "
                    f"[{lo:.4g}, {hi:.4g}]; using {clipped:.4g}"
                )
                value = clipped
        conditions[name] = float(value)
    if conditions["tau10"] > conditions["tau50"]:
        raise ValueError(
            f"tau10 = {conditions['tau10']:g} Gyr exceeds tau50 = {conditions['tau50']:g} Gyr; "
            "tau10 is the 10th percentile of the stellar ages (the young end), so tau10 <= tau50"
        )
    return conditions, notes


def _load_model(path: Path | None) -> Any:
    from ..model import GalaxyModel

    if path is None:
        try:
            return GalaxyModel.pretrained()
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}; the package ships astroflow_gal/pretrained/default.h5 — reinstall it, "
                "or give a model file with --model"
            ) from None
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    return GalaxyModel.load(path)


def _say(message: str) -> None:
    print(message, flush=True)


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
    model = _load_model(args.model)
    given = {name: getattr(args, name) for name in DEFAULT_CONDITIONS}
    conditions, notes = choose_conditions(given, model.training_range)
    for note in notes:
        _say(f"note: {note}")
    missing = set(model.condition_names) - set(conditions)
    if missing:
        raise ValueError(f"the model needs conditions the demo does not set: {sorted(missing)}")
    conditions = {k: conditions[k] for k in model.condition_names}

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    h5_path = out / "stars.h5"
    interactive = sys.stderr.isatty()
    described = ", ".join(f"{k}={v:.4g} {_HELP_UNITS[k]}" for k, v in conditions.items())
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

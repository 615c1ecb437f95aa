"""``astroflow-gal train``: fit a model to a suite file, with checkpoints and resume.

Options come from the command line and, optionally, a TOML file (``--config``); the command line
wins. ``--config`` takes the name of a configuration shipped with the package (``--config default``,
the shipped model's; it works from any folder) or the path of a TOML file, which has up to three
tables::

    [flow]            # architecture of the flow (ConditionalSplineFlow)
    n_layers = 14
    bins = 10
    bound = 3.0
    hidden = 128
    hidden_layers = 3
    negative_slope = 0.2

    [training]        # keywords of GalaxyModel.fit
    epochs = 10
    batch_size = 1024
    lr = 9e-5
    schedule = "paper"        # or "constant"
    optimizer = "radam"       # or "adam"
    seed = 0
    device = "cuda"
    checkpoint_every = 200
    max_steps = 100000
    marginals = ["position"]
    condition_names = ["M_stars", "tau50", "tau10", "Z_av"]

    [split]           # held-out galaxies (validation)
    holdout = ["g7", "g12"]   # explicit ids, or:
    n_holdout = 5
    seed = 0
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

FLOW_KEYS = ("n_layers", "bins", "bound", "hidden", "hidden_layers", "negative_slope")
SPLIT_KEYS = ("holdout", "n_holdout", "seed")
# GalaxyModel.fit keywords that are set by the command itself, not by the [training] table
_NOT_IN_TRAINING_TABLE = ("train", "validation", "checkpoint_dir", "resume", "progress",
                          "flow_config")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a model on a suite file",
        description="Train a GalaxyModel on a suite file and save it (HDF5). Under torchrun "
        "(e.g. torchrun --nproc-per-node=2 -m astroflow_gal train ...) training is data "
        "parallel and only rank 0 writes files.",
    )
    p.add_argument("suite", type=Path, help="suite file (HDF5, see 'astroflow-gal suite')")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write")
    p.add_argument("--config", help="a named configuration shipped with the package ("
                   + ", ".join(available_configs()) + ") or a TOML file with [flow], [training], "
                   "[split]")
    p.add_argument("--holdout", nargs="+", metavar="ID", help="ids of held-out galaxies")
    p.add_argument("--n-holdout", type=int, help="hold out this many galaxies at random")
    p.add_argument("--holdout-seed", type=int, help="seed of the random holdout")
    p.add_argument("--checkpoint-dir", type=Path, help="folder of checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints")
    p.add_argument("--epochs", type=int, help="passes over the training stars")
    p.add_argument("--batch-size", type=int, help="stars per step (global batch; 1024)")
    p.add_argument("--lr", type=float, help="initial learning rate (9e-5)")
    p.add_argument("--schedule", choices=("paper", "constant"), help="learning-rate schedule")
    p.add_argument("--optimizer", choices=("radam", "adam"), help="optimiser (radam)")
    p.add_argument("--seed", type=int, help="seed of the weights and the data order (0)")
    p.add_argument("--device", help="training device, e.g. cpu or cuda")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (200)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay (0)")
    p.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    p.add_argument("--condition-noise", type=float,
                   help="noise on the standardised conditions, in training spreads (0; 0.1 "
                        "for the shipped model)")
    p.add_argument("--balance-galaxies", type=float, metavar="POWER",
                   help="repeat the stars of a galaxy of n stars round((n_max/n)**POWER) times "
                        "so that galaxies weigh more evenly (0: off; 1: galaxies alike)")
    p.add_argument("--velocity-frame", choices=("cartesian", "cylindrical"),
                   help="frame the flows model the velocities in (cartesian)")
    p.add_argument("--scale-with-mass", nargs="+", choices=("position", "velocity"),
                   help="column groups divided by a per-galaxy power law of the stellar mass")
    p.add_argument("--marginals", nargs="+", metavar="KIND",
                   help="also train marginal flows (position, phase_space)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="log lines instead of a progress bar")
    p.set_defaults(func=run)


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err


def available_configs() -> list[str]:
    """Names of the configurations shipped in ``astroflow_gal/configs`` (``--config NAME``)."""
    folder = resources.files("astroflow_gal") / "configs"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_config(config: str | os.PathLike | None) -> Path | None:
    """The TOML file of ``--config``: a shipped configuration's name or a path.

    Parameters
    ----------
    config : str, path-like or None
        A name from :func:`available_configs` (e.g. ``"default"``), which works from any folder,
        or the path of a TOML file. An existing file of that name wins over a shipped one.

    Returns
    -------
    pathlib.Path or None
        The file to read; None for None.

    Raises
    ------
    FileNotFoundError
        Neither a file nor a shipped configuration of that name (the message lists the names).
    """
    if config is None:
        return None
    path = Path(config)
    if path.is_file():
        return path
    text = str(config)
    name = text[: -len(".toml")] if text.endswith(".toml") else text
    if "/" not in text and os.sep not in text and name in available_configs():
        with resources.as_file(resources.files("astroflow_gal") / "configs" / f"{name}.toml") as f:
            return Path(f)
    raise FileNotFoundError(
        f"--config {text}: no such file, and no shipped configuration of that name; shipped: "
        + ", ".join(available_configs())
    )


def _fit_keywords() -> tuple[str, ...]:
    from ..model import GalaxyModel

    params = inspect.signature(GalaxyModel.fit).parameters
    return tuple(k for k in params if k not in _NOT_IN_TRAINING_TABLE and k != "cls")


def read_config(path: Path | None) -> dict[str, dict[str, Any]]:
    """Read and check a training TOML file.

    Parameters
    ----------
    path : pathlib.Path or None
        The file; None gives empty tables.

    Returns
    -------
    dict
        ``{"flow": {...}, "training": {...}, "split": {...}}``.

    Raises
    ------
    ValueError
        On unknown tables or keys (named in the message).
    """
    tables: dict[str, dict[str, Any]] = {"flow": {}, "training": {}, "split": {}}
    if path is None:
        return tables
    raw = _load_toml(path)
    unknown = sorted(set(raw) - set(tables))
    if unknown:
        raise ValueError(f"{path}: unknown tables {unknown}; known: [flow], [training], [split]")
    allowed = {"flow": FLOW_KEYS, "training": _fit_keywords(), "split": SPLIT_KEYS}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: '{name}' must be a table ([{name}])")
        bad = sorted(set(table) - set(allowed[name]))
        if bad:
            raise ValueError(
                f"{path}: unknown keys {bad} in [{name}]; known: {sorted(allowed[name])}"
            )
        tables[name] = dict(table)
    return tables


def _options(args: argparse.Namespace, config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    options = dict(config["training"])
    for key in ("epochs", "batch_size", "lr", "schedule", "optimizer", "seed", "device",
                "checkpoint_every", "max_steps", "marginals", "weight_decay", "grad_clip",
                "condition_noise", "balance_galaxies", "velocity_frame", "scale_with_mass"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    if "epochs" not in options:
        raise ValueError("the number of epochs is needed: --epochs N or [training] epochs")
    if "marginals" in options:
        options["marginals"] = tuple(options["marginals"])
    if config["flow"]:
        options["flow_config"] = dict(config["flow"])
    if args.checkpoint_dir is not None:
        options["checkpoint_dir"] = args.checkpoint_dir
    if args.resume:
        if args.checkpoint_dir is None:
            raise ValueError("--resume needs --checkpoint-dir")
        options["resume"] = True
    options["progress"] = args.progress
    return options


def _split(suite, args: argparse.Namespace, table: dict[str, Any]):
    holdout = args.holdout if args.holdout is not None else table.get("holdout")
    n_holdout = args.n_holdout if args.n_holdout is not None else table.get("n_holdout")
    seed = args.holdout_seed if args.holdout_seed is not None else table.get("seed")
    if args.holdout is not None and args.n_holdout is not None:
        raise ValueError("give --holdout or --n-holdout, not both")
    if args.holdout is not None:
        n_holdout = None
    elif args.n_holdout is not None:
        holdout = None
    if holdout is None and n_holdout is None:
        return suite, None
    split = suite.split(holdout=holdout, n_holdout=n_holdout, seed=seed)  # unknown ids raise
    held = split.holdout
    return split.train, (held if len(held) else None)


def run(args: argparse.Namespace) -> int:
    """Read the suite, hold out galaxies, fit, save the model (rank 0 only)."""
    from ..training import TrainingDivergedError, is_main_process

    main = is_main_process()
    logging.basicConfig(
        level=logging.INFO if main else logging.WARNING,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    config = read_config(resolve_config(args.config))
    options = _options(args, config)
    out_dir = args.output.parent if str(args.output.parent) else Path(".")
    if not out_dir.is_dir():
        raise FileNotFoundError(f"folder {out_dir} of the output file does not exist")
    if main and not os.access(out_dir, os.W_OK):
        raise PermissionError(f"cannot write to {out_dir}")

    from ..data import GalaxySuite
    from ..model import GalaxyModel

    suite = GalaxySuite.read(args.suite)
    train, validation = _split(suite, args, config["split"])
    if main:
        n_val = 0 if validation is None else len(validation)
        print(f"training on {len(train)} galaxies ({train.n_stars} stars), "
              f"{n_val} held out", file=sys.stderr)
    try:
        model = GalaxyModel.fit(train, validation=validation, **options)
    except TrainingDivergedError as err:
        print(f"astroflow-gal train: training diverged: {err}", file=sys.stderr)
        return 3
    if main:
        model.save(args.output)
        history = model.history.get("edf", {}) if isinstance(model.history, dict) else {}
        val = history.get("val_nll") or []
        last = f", last validation NLL {val[-1]:.4f}" if val else ""
        print(f"wrote {args.output}{last}")
    _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """Close the process group of a torchrun launch (after rank 0 has written the model)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

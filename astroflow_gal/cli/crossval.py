"""``astroflow-gal crossval``: k leave-out models judged on unseen galaxies."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import log_progress, print_summary


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``crossval`` sub-command."""
    p = sub.add_parser(
        "crossval",
        help="train k leave-out models and judge each on its unseen galaxies",
        description="Cross-validation as in the paper: --models leave-out sets of --holdout "
        "galaxies, one model trained per set (each in OUT/model_NN with its own checkpoints), "
        "each judged on its unseen galaxies; one metrics table for all (OUT/metrics.ecsv) and "
        "the figures. A killed run continues where it stopped when started again with the "
        "same settings.",
    )
    p.add_argument("suite", type=Path, help="suite file (HDF5, from 'astroflow-gal suite')")
    p.add_argument("--out", type=Path, required=True, help="folder of the run")
    p.add_argument("--models", type=int, default=20, help="number of leave-out models (20)")
    p.add_argument("--holdout", type=int, default=5, help="galaxies left out per model (5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the leave-out sets (0)")
    t = p.add_argument_group("training (GalaxyModel.fit)")
    t.add_argument("--epochs", type=int, default=10, help="passes over the training stars (10)")
    t.add_argument("--max-steps", type=int, help="stop each model after this many steps")
    t.add_argument("--batch-size", type=int, default=1024, help="stars per step (1024)")
    t.add_argument("--lr", type=float, help="initial learning rate (9e-5)")
    t.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    t.add_argument("--marginals", nargs="+", metavar="KIND",
                   help="also train marginal flows (position, phase_space)")
    t.add_argument("--device", help="training device, e.g. cpu or cuda")
    a = p.add_argument_group("architecture (ConditionalSplineFlow)")
    a.add_argument("--n-layers", type=int, help="flow layers")
    a.add_argument("--bins", type=int, help="spline bins")
    a.add_argument("--hidden", type=int, help="units per hidden layer")
    a.add_argument("--hidden-layers", type=int, help="hidden layers per network")
    e = p.add_argument_group("evaluation")
    e.add_argument("--max-stars", type=int, default=20_000,
                   help="stars per model galaxy: as many as the data galaxy, at most this")
    e.add_argument("--permutations", type=int, default=200, help="kernel-MMD permutations")
    e.add_argument("--test-points", type=int, default=1_000,
                   help="stars of each sample in the kernel MMD and the classifier")
    e.add_argument("--kl-stars", type=int, default=5_000, help="truth stars per galaxy for KL")
    e.add_argument("--no-classifier", action="store_true", help="skip the classifier test")
    e.add_argument("--classifier-epochs", type=int, default=150,
                   help="training steps of the classifier")
    p.add_argument("--heartbeat", type=float, default=30.0,
                   help="longest pause between progress lines, seconds (30)")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    fit: dict[str, Any] = {"epochs": args.epochs, "batch_size": args.batch_size,
                           "checkpoint_every": args.checkpoint_every}
    for key in ("max_steps", "lr", "device"):
        if getattr(args, key) is not None:
            fit[key] = getattr(args, key)
    if args.marginals:
        fit["marginals"] = list(args.marginals)
    flow = {k: getattr(args, k) for k in ("n_layers", "bins", "hidden", "hidden_layers")
            if getattr(args, k) is not None}
    if flow:
        fit["flow_config"] = flow
    evaluation = {
        "max_stars": args.max_stars,
        "kernel_permutations": args.permutations,
        "max_test_points": args.test_points,
        "n_kl_stars": args.kl_stars,
        "classifier": not args.no_classifier,
        "classifier_epochs": args.classifier_epochs,
    }
    return fit, evaluation


def run(args: argparse.Namespace) -> int:
    """Read the suite, run (or continue) the cross-validation, print the summary."""
    log_progress()
    from ..analysis.crossval import cross_validate
    from ..data import GalaxySuite

    fit, evaluation = _options(args)
    suite = GalaxySuite.read(args.suite)
    result = cross_validate(suite, args.out, n_models=args.models, n_holdout=args.holdout,
                            seed=args.seed, fit_options=fit, evaluate_options=evaluation,
                            heartbeat_s=args.heartbeat)
    print_summary(result)
    print(f"wrote {args.out / 'metrics.ecsv'} and the figures")
    return 0

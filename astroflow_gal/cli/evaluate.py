"""``astroflow-gal evaluate``: judge a model on a suite; tables (ECSV) and figures (PNG, PDF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import log_progress, print_summary


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    p = sub.add_parser(
        "evaluate",
        help="judge a model on a suite: metrics per galaxy and the paper's figures",
        description="Draw a model galaxy at the conditions of every data galaxy and compare: "
        "linear MMD against every data galaxy (paper Figure 3), kernel MMD with a permutation "
        "p-value, a classifier two-sample test (ROC AUC), per-column Wasserstein distances, "
        "and KL(truth || model) on synthetic suites. Writes metrics.ecsv, "
        "mmd_model_data.ecsv, mmd_data_data.ecsv and the figures corner, mmd_mass and "
        "metrics_mass into --out.",
    )
    p.add_argument("model", type=Path, help="model file (HDF5, from 'astroflow-gal train')")
    p.add_argument("suite", type=Path, help="suite file (HDF5, from 'astroflow-gal suite')")
    p.add_argument("--out", type=Path, required=True, help="folder of the outputs")
    p.add_argument("--galaxies", nargs="+", metavar="ID",
                   help="judge only these galaxies (all are references of the linear MMD)")
    p.add_argument("--max-stars", type=int, default=20_000,
                   help="stars per model galaxy: as many as the data galaxy, at most this (20000)")
    kl = p.add_mutually_exclusive_group()
    kl.add_argument("--kl", dest="kl", action="store_true", default=None,
                    help="compute KL(truth || model) (needs a synthetic suite; default: if any)")
    kl.add_argument("--no-kl", dest="kl", action="store_false", help="skip KL")
    p.add_argument("--kl-stars", type=int, default=5_000, help="truth stars per galaxy for KL")
    p.add_argument("--permutations", type=int, default=200,
                   help="permutations of the kernel-MMD p-value (200)")
    p.add_argument("--test-points", type=int, default=1_000,
                   help="stars of each sample in the kernel MMD and the classifier (1000)")
    p.add_argument("--no-classifier", action="store_true", help="skip the classifier test")
    p.add_argument("--classifier-epochs", type=int, default=150,
                   help="training steps of the classifier (150)")
    p.add_argument("--corner-galaxy", metavar="ID", help="galaxy of the corner plot")
    p.add_argument("--corner-columns", nargs="+", metavar="NAME",
                   help="star columns of the corner plot (default: all ten)")
    p.add_argument("--seed", type=int, default=0, help="seed of all random draws (0)")
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="accept galaxies far outside the model's training range")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"], help="figure formats")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model and the suite, evaluate, print the summary."""
    log_progress()
    from ..analysis.evaluate import evaluate
    from ..data import GalaxySuite
    from ..model import GalaxyModel

    model = GalaxyModel.load(args.model)
    suite = GalaxySuite.read(args.suite)
    result = evaluate(
        model, suite, args.out,
        galaxy_ids=args.galaxies,
        max_stars=args.max_stars,
        kl=args.kl,
        n_kl_stars=args.kl_stars,
        kernel_permutations=args.permutations,
        max_test_points=args.test_points,
        classifier=not args.no_classifier,
        classifier_epochs=args.classifier_epochs,
        corner_galaxy=args.corner_galaxy,
        corner_columns=args.corner_columns,
        seed=args.seed,
        allow_extrapolation=args.allow_extrapolation,
        formats=args.formats,
    )
    print_summary(result)
    print(f"wrote the tables and figures into {args.out}")
    return 0

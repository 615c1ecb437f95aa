"""``astroflow-gal ensemble``: one model whose eDF is the mixture of several trained models."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ensemble`` sub-command."""
    p = sub.add_parser(
        "ensemble",
        help="mix models trained alike (e.g. from other seeds) into one model file",
        description="Write a model whose eDF is the weighted mean of the eDFs of the given "
        "models (GalaxyModel.ensemble): exact, normalised, differentiable; closer to the truth "
        "than the members when they err in different places. The models must share the "
        "normaliser and training galaxies (e.g. 'astroflow-gal train' of one suite with "
        "--seed 0, 1, ...). The first model's marginal flows and meta are kept.",
    )
    p.add_argument("models", type=Path, nargs="+", help="model files (HDF5), at least two")
    p.add_argument("-o", "--output", type=Path, required=True, help="the mixture's model file")
    p.add_argument("--weights", type=float, nargs="+", metavar="W",
                   help="positive weights, one per model (default: equal)")
    p.add_argument("--weights-dtype", choices=["float32", "float16", "int8", "int6"],
                   help="precision of the stored weights; float16 halves the file, int8 stores "
                        "the hidden and output layers in 8 bits (a paper-size flow: 3.0 MB), "
                        "int6 in 6 bits (2.3 MB; coarser: measure the KL after)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the models, mix them, write the result atomically."""
    from ..model import GalaxyModel

    if len(args.models) < 2:
        raise ValueError(f"give at least two model files, got {len(args.models)}")
    if args.weights is not None and len(args.weights) != len(args.models):
        raise ValueError(f"{len(args.weights)} weights for {len(args.models)} models")
    models = [GalaxyModel.load(path) for path in args.models]
    mixture = GalaxyModel.ensemble(models, weights=args.weights)
    mixture.meta["ensemble_of"] = [str(path) for path in args.models]
    mixture.save(args.output, weights_dtype=args.weights_dtype)
    size = args.output.stat().st_size / 1e6
    print(f"wrote {args.output} ({size:.1f} MB): {mixture.architecture}")
    return 0

"""``astroflow-gal demo``: draw a galaxy and show where the results went."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser("demo", help="sample a galaxy and write it to files")
    p.add_argument("-n", "--n-stars", type=int, default=100_000, help="number of stars")
    p.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="folder")
    p.add_argument("--seed", type=int, default=42, help="random seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sample from a freshly initialised paper-configuration flow (until a model ships)."""
    from .flow import ConditionalSplineFlow

    flow = ConditionalSplineFlow(10, 4, seed=args.seed).eval()
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    with torch.inference_mode():
        x = flow.sample(args.n_stars, torch.zeros(4), generator=gen)
    took = time.perf_counter() - start
    args.output.mkdir(parents=True, exist_ok=True)
    print(f"drew {args.n_stars} rows in {took:.2f} s; mean {x.mean(0).numpy().round(3)}")
    return 0

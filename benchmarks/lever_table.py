"""The lever table of benchmarks/TRAINING.md from the curves of benchmarks/train_lever.py runs.

For every run folder: its levers (from args.json), then per KL measurement the step, epochs,
training time, and KL(truth || model) on the held-out galaxies, the training galaxies and the fresh
test galaxies (nats per star, 5,000 truth stars per galaxy by default)::

    python benchmarks/lever_table.py /work/runs/w_base /work/runs/w_noise01 [--all-steps]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULTS = {"condition_noise": 0.0, "weight_decay": 0.0, "n_galaxies": 95,
            "max_stars_per_galaxy": 200_000, "n_layers": 10, "hidden": 64, "hidden_layers": 2,
            "velocity_frame": "cartesian", "scale_with_mass": []}


def levers(args: dict) -> str:
    """The options of a run that differ from the stage-2 baseline, as text (with the learning
    rate and the starting model where they differ from the baseline's: 2e-4, stage 1)."""
    parts = [f"{k}={args[k]}" for k in DEFAULTS if k in args and args[k] != DEFAULTS[k]]
    if args.get("lr", 2e-4) != 2e-4:
        parts.append(f"lr={args['lr']:g}")
    init = args.get("init")
    if not init:
        parts.append("from scratch")
    elif Path(init).name != "old_default.h5":
        parts.append(f"started from {Path(init).name}")
    return ", ".join(parts) or "baseline"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--all-steps", action="store_true", help="every measurement, not the last")
    p.add_argument("--every", type=int, default=0,
                   help="with --all-steps: only steps that are multiples of this, and the last")
    args = p.parse_args()
    print("| run | levers | step | epochs | training time [s] | held-out KL | training KL "
          "| fresh-galaxy KL |")
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        run_args = json.loads((run / "args.json").read_text())
        rows = [json.loads(s) for s in (run / "curve.jsonl").read_text().splitlines() if s]
        if args.all_steps and args.every:
            rows = [r for r in rows if r["step"] % args.every == 0 or r is rows[-1]]
        for r in rows if args.all_steps else rows[-1:]:
            print(f"| {run.name} | {levers(run_args)} | {r['step']} | {r['epoch']:.2f} | "
                  f"{r['train_time_s']:.0f} | {r['holdout_kl']:.3f} | {r['train_kl']:.3f} | "
                  f"{r['test_kl']:.3f} |")


if __name__ == "__main__":
    main()

"""Can the flow represent one galaxy? The same architecture fitted to a single galaxy's stars.

The conditional model must describe every galaxy of the suite with one network; this script
asks the simpler question first: the flow with the model's architecture, unconditional, trained
by maximum likelihood on ``--n-train`` fresh stars of one synthetic galaxy's exact eDF (many more
than the suite holds), then KL(truth || fit) per star on fresh stars, for the phase-space
marginal (6-D), the full eDF (10-D), or both. Put beside the conditional model's KL on the
same galaxy (printed too), it splits the model's excess into what the architecture cannot
represent even for one galaxy and what the condition dependence adds::

    python benchmarks/single_galaxy_fit.py --galaxies syn373 syn177 --steps 4000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.data import schema
from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.inputs import ExtrapolationWarning
from astroflow_gal.normalizer import Normalizer
from astroflow_gal.training import TrainingData, train_flow

TARGETS = {"phase_space": schema.PHASE_SPACE_NAMES, "edf": schema.STAR_NAMES}


def fit_one(values: np.ndarray, names, conditions: np.ndarray, args, velocity_frame: str):
    """An unconditional flow of ``names`` fitted to ``values``; returns log q(values) callable."""
    normalizer = Normalizer.fit(values, conditions[None, :], names,
                                velocity_frame=velocity_frame)
    x, _ = normalizer.stars_to_flow(torch.from_numpy(values))
    data = TrainingData(x=x.float(), galaxy_index=torch.zeros(len(x), dtype=torch.int64),
                        conditions=torch.zeros(1, 0))
    flow = ConditionalSplineFlow(len(names), 0, n_layers=args.n_layers, bins=args.bins,
                                 hidden=args.hidden, hidden_layers=args.hidden_layers, seed=0)
    train_flow(flow, data, epochs=10_000, batch_size=args.batch_size, lr=args.lr,
               schedule="paper", seed=0, progress=False, max_steps=args.steps)
    flow.eval()

    def log_q(v: np.ndarray) -> np.ndarray:
        y, log_jac = normalizer.stars_to_flow(torch.from_numpy(v))
        with torch.no_grad():
            lp = flow.log_prob(y.float(), torch.zeros(len(y), 0)).double()
        return (lp + log_jac).numpy()

    return log_q


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    p.add_argument("--galaxies", nargs="+", default=["syn373", "syn177"])
    p.add_argument("--target", choices=[*TARGETS, "both"], default="phase_space")
    p.add_argument("--velocity-frame", default="cartesian", choices=["cartesian", "cylindrical"])
    p.add_argument("--n-train", type=int, default=200_000)
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--n-layers", type=int, default=10)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--hidden-layers", type=int, default=2)
    p.add_argument("--bins", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)

    model = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    targets = list(TARGETS) if args.target == "both" else [args.target]
    print(f"{args.n_layers} layers of {args.hidden_layers} x {args.hidden}, K = {args.bins}, "
          f"{args.steps} steps of {args.batch_size}, {args.n_train} training stars, "
          f"{args.velocity_frame} velocities; KL on {args.n_test} fresh stars, nats/star\n")
    print("| galaxy | M_stars [Msun] | target | single-galaxy fit | conditional model | "
          "fit time [s] |")
    print("|---|---|---|---|---|---|")
    for k, gid in enumerate(args.galaxies):
        conditions = dict(suite[gid].conditions)
        cond = np.array([conditions[n].to_value(schema.column(n).unit)
                         for n in schema.CONDITION_NAMES])
        train = suite.truth.sample_arrays(args.n_train, gid, 100 + k)
        test = suite.truth.sample_arrays(args.n_test, gid, 200 + k)
        for target in targets:
            names = TARGETS[target]
            values, fresh = train[:, : len(names)], test[:, : len(names)]
            t0 = time.perf_counter()
            log_q = fit_one(values, names, cond, args, args.velocity_frame)
            seconds = time.perf_counter() - t0
            if target == "edf":
                log_p = suite.truth.log_prob_arrays(fresh, gid)
            else:
                log_p = suite.truth.marginal_log_prob(fresh, gid, names)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExtrapolationWarning)
                if target == "edf":
                    log_model = model.log_edf(fresh, conditions, allow_extrapolation=True)
                else:
                    log_model = model.log_marginal(fresh, target, conditions,
                                                   allow_extrapolation=True)
            kl_fit = float(np.mean(log_p - log_q(fresh)))
            kl_model = float(np.mean(log_p - log_model))
            mass = conditions["M_stars"].to_value("Msun")
            print(f"| {gid} | {mass:.2g} | {target} | {kl_fit:.3f} | {kl_model:.3f} | "
                  f"{seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()

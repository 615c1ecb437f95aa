"""Cost of a mixture of flows against its first member: sampling and the exact eDF.

A mixture (``GalaxyModel.ensemble``) draws every star from one member, so sampling should cost
what one flow costs; ``log_edf`` evaluates every member, so it should cost the sum of the
members. This measures both for a mixture model file against a model made of the mixture's
first member alone (same normaliser, same conditions), in one process, alternating, best of
``--repeats``, at the Milky-Way analogue's conditions, and prints the load average::

    OMP_NUM_THREADS=1 python benchmarks/bench_ensemble.py [MIXTURE.h5] [--n 100000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from astroflow_gal import GalaxyModel
from astroflow_gal.data import schema

CONDITIONS = dict(M_stars=5e10, tau50=7.0, tau10=2.0, Z_av=0.015)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="a mixture model file (default: the shipped model)")
    p.add_argument("--n", type=int, default=100_000, help="stars per call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    mixture = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    if mixture.n_members < 2:
        raise SystemExit("the model is not a mixture of flows")
    single = GalaxyModel(
        mixture.flow.members[0], mixture.normalizer, training_range=mixture.training_range,
        training_conditions=mixture.training_conditions, meta={"name": "first member"},
    )
    stars = single.sample(args.n, CONDITIONS, seed=0)
    values = np.column_stack([stars[name].to_value(schema.column(name).unit)
                              for name in single.star_names])
    print(f"load average before: {os.getloadavg()}; {args.threads} thread(s); {args.n} stars; "
          f"{mixture.n_members} members")
    rates = {}
    for task in ("sample", "log_edf"):
        best = {"member": float("inf"), "mixture": float("inf")}
        for _ in range(args.repeats):  # alternate the two models
            for name, model in (("member", single), ("mixture", mixture)):
                if task == "sample":
                    def run(model=model):
                        model.sample(args.n, CONDITIONS, seed=1)
                else:
                    def run(model=model):
                        model.log_edf(values, CONDITIONS)
                best[name] = min(best[name], _best(run, 1))
        rates[task] = {k: args.n / v for k, v in best.items()}
        print(f"{task}: first member {rates[task]['member']:,.0f} stars/s, mixture "
              f"{rates[task]['mixture']:,.0f} stars/s, mixture / member time "
              f"{best['mixture'] / best['member']:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Numbers of the model card: KL(truth || model) per star on training and held-out galaxies.

Rebuilds the exact synthetic suite the model was trained on from the seed and size in its ``meta``,
draws fresh stars from the exact eDF of every galaxy and estimates KL with its standard error.

    python benchmarks/model_card.py [model.h5] [--n-stars 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis.metrics import kl_to_truth, summarise_kl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    parser.add_argument("--n-stars", type=int, default=20_000, help="fresh stars per galaxy")
    args = parser.parse_args()
    model = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    meta = model.meta
    suite = GalaxySuite.synthetic(n_galaxies=int(meta["n_galaxies"]), seed=int(meta["suite_seed"]))
    holdout = [str(g) for g in meta["holdout"]]
    train = [g for g in suite.ids if g not in holdout]
    print(model)
    for key in ("edf", "position", "phase_space"):
        hist = model.history.get(key)
        if hist:
            print(f"{key}: epochs {len(hist['epoch'])}, "
                  f"final train NLL {hist['train_nll'][-1]:.4f}, "
                  f"best validation NLL {np.nanmin(hist['val_nll']):.4f} (flow space, per star), "
                  f"wall time {hist['wall_time_s'][-1]:.0f} s")
    for label, ids in (("training", train), ("held-out", holdout)):
        start = time.perf_counter()
        table = kl_to_truth(model, suite, ids, n_stars=args.n_stars, seed=1)
        s = summarise_kl(table)
        print(f"KL(truth || model), {label} galaxies ({s['n_galaxies']}): "
              f"{s['mean_kl']:.3f} +- {s['mean_kl_err']:.3f} nats/star "
              f"(median {np.median(table['kl']):.3f}, {time.perf_counter() - start:.0f} s)")
        if label == "held-out":
            for row in table:
                print(f"  {row['galaxy_id']}  M_stars {row['M_stars'].value:.3g} Msun  "
                      f"KL {row['kl']:.3f} +- {row['kl_err']:.3f}")


if __name__ == "__main__":
    main()

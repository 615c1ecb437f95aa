"""Numbers of the model card: KL(truth || model) per star, split by factor, and the support.

Rebuilds the exact synthetic suite the model was trained on from the seed, size and star counts in
its ``meta``, draws fresh stars from the exact eDF of every galaxy and estimates KL with its
standard error: the mean over the training galaxies (every ``--train-every``-th) and, per held-out
galaxy, the total and its split by the chain rule into positions, velocities given positions, and
chemistry and age given phase space (``analysis.metrics.kl_to_truth(by_factor=True)``, using the
model's marginal flows). Then draws ``--n-support`` stars from the model for every held-out galaxy,
a Milky-Way analogue and a dwarf, and counts the stars outside the support of a column (age outside
``(0, 13.8)`` Gyr, Z <= 0). Prints Markdown tables::

    python benchmarks/model_card.py [model.h5] [--n-stars 20000] [--train-every 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import astropy.units as u
import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis.metrics import kl_to_truth, summarise_kl
from astroflow_gal.data import schema
from astroflow_gal.inputs import ExtrapolationWarning

MILKY_WAY = {"M_stars": 5e10 * u.Msun, "tau50": 7 * u.Gyr, "tau10": 2 * u.Gyr, "Z_av": 0.015}


def suite_of(model: GalaxyModel) -> GalaxySuite:
    """The synthetic suite recorded in the model's meta (seed, size, star-count parameters)."""
    return GalaxySuite.synthetic_of(model.meta)


def outside_support(model: GalaxyModel, conditions, n: int, seed: int) -> tuple[int, float, float]:
    """Stars of an ``n``-star sample outside the schema's supports; the sample's age range [Gyr].

    The supports are the schema's (physics), not the model's normaliser, so models without bounded
    columns are judged the same way.
    """
    stars = model.sample(n, conditions, seed=seed, allow_extrapolation=True)
    outside = np.zeros(n, dtype=bool)
    for name in model.star_names:
        col = schema.star_column(name)
        lo, hi = col.support
        v = stars[name].to_value(col.unit)
        if lo is not None:
            outside |= v <= lo
        if hi is not None:
            outside |= v >= hi
    age = stars["age"].to_value(u.Gyr)
    return int(outside.sum()), float(age.min()), float(age.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    parser.add_argument("--n-stars", type=int, default=20_000, help="fresh stars per galaxy")
    parser.add_argument("--train-every", type=int, default=1, help="every k-th training galaxy")
    parser.add_argument("--n-support", type=int, default=100_000, help="model stars per galaxy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ExtrapolationWarning)
    model = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    suite = suite_of(model)
    holdout = [str(g) for g in model.meta["holdout"]]
    train = [g for g in suite.ids if g not in holdout][:: args.train_every]
    print(model)
    for key, hist in model.history.items():
        if hist and "train_nll" in hist and hist["train_nll"]:
            print(f"{key}: epochs {len(hist['epoch'])}, final train NLL "
                  f"{hist['train_nll'][-1]:.4f}, best validation NLL "
                  f"{np.nanmin(hist['val_nll']):.4f} (flow space, per star)")

    start = time.perf_counter()
    table = kl_to_truth(model, suite, train, n_stars=args.n_stars, seed=1,
                        allow_extrapolation=True)
    s = summarise_kl(table)
    print(f"\nKL(truth || model), training galaxies ({s['n_galaxies']}): {s['mean_kl']:.3f} +- "
          f"{s['mean_kl_err']:.3f} nats/star (median {np.median(table['kl']):.3f}; "
          f"{time.perf_counter() - start:.0f} s)")

    by_factor = "position" in model.marginals
    start = time.perf_counter()
    table = kl_to_truth(model, suite, holdout, n_stars=args.n_stars, seed=1,
                        by_factor=by_factor, allow_extrapolation=True)
    s = summarise_kl(table)
    print(f"KL(truth || model), held-out galaxies ({s['n_galaxies']}): {s['mean_kl']:.3f} +- "
          f"{s['mean_kl_err']:.3f} nats/star ({time.perf_counter() - start:.0f} s)\n")
    factors = [c for c in ("kl_position", "kl_velocity_given_position",
                           "kl_chemistry_age_given_phase_space") if c in table.colnames]
    print("| galaxy | M_stars [Msun] | KL total | " + " | ".join(factors) + " |")
    print("|---|---|---|" + "---|" * len(factors))
    for row in table:
        cells = [f"{row[c]:.3f} +- {row[c + '_err']:.3f}" for c in factors]
        print(f"| {row['galaxy_id']} | {row['M_stars'].to_value(u.Msun):.2g} | "
              f"{row['kl']:.3f} +- {row['kl_err']:.3f} | " + " | ".join(cells) + " |")
    if factors:
        means = [f"{np.mean(table[c]):.3f}" for c in factors]
        print(f"| mean | | {np.mean(table['kl']):.3f} | " + " | ".join(means) + " |")

    print(f"\nStars outside the support ({args.n_support:,} model stars per galaxy):\n")
    print("| galaxy | outside | min age [Gyr] | max age [Gyr] |")
    print("|---|---|---|---|")
    dwarf_id = min(suite.ids, key=lambda g: abs(np.log10(
        suite[g].conditions["M_stars"].to_value(u.Msun)) - 8.5))
    cases = [(g, dict(suite[g].conditions)) for g in holdout]
    cases += [("Milky-Way analogue", MILKY_WAY), (f"dwarf ({dwarf_id})",
                                                  dict(suite[dwarf_id].conditions))]
    for k, (label, cond) in enumerate(cases):
        n_out, lo, hi = outside_support(model, cond, args.n_support, seed=100 + k)
        print(f"| {label} | {n_out} ({n_out / args.n_support:.2%}) | {lo:.4f} | {hi:.4f} |")


if __name__ == "__main__":
    main()

"""Train one eDF flow with one set of levers and record its learning curve in KL(truth || model).

Builds a synthetic suite (size, seed and stars per galaxy are options), holds galaxies out, trains
the ten-column eDF flow in chunks of steps (resumable checkpoints), and after every chunk measures
KL(truth || model) per star against the exact eDF on

* the suite's held-out galaxies (used for early stopping: the best chunk is kept),
* every ``--train-every``-th training galaxy,
* a fixed set of fresh galaxies from another seed (``--test-seed``): the same population, never
  seen and never used for a choice; the fair comparison between suites of different sizes.

Every line of ``<out>/curve.jsonl`` is one chunk; ``<out>/model.h5`` is the best model so far (eDF
flow only). Used for the lever table of benchmarks/TRAINING.md::

    python benchmarks/train_lever.py --out /work/runs/noise01 --condition-noise 0.1 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis.metrics import kl_to_truth
from astroflow_gal.data import schema
from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.inputs import ExtrapolationWarning
from astroflow_gal.model import MARGINALS
from astroflow_gal.normalizer import Normalizer
from astroflow_gal.training import TrainingData, galaxy_balanced_rows, train_flow


def distilled_stars(teacher: GalaxyModel, suite, galaxy_index: np.ndarray, names) -> np.ndarray:
    """Stars drawn from ``teacher``'s eDF in place of each galaxy's stars (same count per galaxy).

    The columns ``names`` of ``n_g`` eDF samples at galaxy g's conditions (seed g), in schema
    units: a marginal flow fitted to them learns the teacher's own marginal.
    """
    counts = np.bincount(galaxy_index, minlength=len(suite))
    out = np.empty((galaxy_index.size, len(names)), dtype=np.float64)
    start = 0
    t0 = time.perf_counter()
    for k, (gid, n) in enumerate(zip(suite.ids, counts, strict=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            table = teacher.sample(int(n), dict(suite[gid].conditions), seed=k, progress=False,
                                   allow_extrapolation=True)
        out[start : start + n] = np.column_stack([table[name].value for name in names])
        start += n
        if (k + 1) % 50 == 0:
            print(f"distilling: {k + 1}/{len(suite)} galaxies, {start} stars, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return out


def training_data(suite, normalizer: Normalizer, names=schema.STAR_NAMES,
                  teacher: GalaxyModel | None = None) -> TrainingData:
    """Flow-space tensors of a suite's stars under ``normalizer``.

    With ``teacher``, the stars are drawn from its eDF instead (:func:`distilled_stars`).
    """
    s, g, c = suite.to_arrays(tuple(names), schema.CONDITION_NAMES)
    if teacher is not None:
        s = distilled_stars(teacher, suite, g, names)
    sub = normalizer.subset(names)
    x, _ = sub.stars_to_flow(torch.from_numpy(s), torch.from_numpy(c[g]))
    return TrainingData(
        x=x.float(),
        galaxy_index=torch.from_numpy(g).long(),
        conditions=sub.conditions_to_flow(torch.from_numpy(c)).float(),
    )


def mean_kl(model, suite, ids, n_stars: int) -> tuple[float, list[float]]:
    """Mean KL per star over the galaxies ``ids`` and the per-galaxy values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        table = kl_to_truth(model, suite, ids, n_stars=n_stars, seed=1)
    kl = [float(v) for v in table["kl"]]
    return float(np.mean(kl)), kl


def mean_marginal_kl(model, kind, suite, ids, n_stars: int) -> tuple[float, list[float]]:
    """Mean KL per star of the ``kind`` marginal over the galaxies ``ids`` (exact truth)."""
    names = MARGINALS[kind]
    kl = []
    for k, gid in enumerate(ids):
        values = suite.truth.sample_arrays(n_stars, gid, 1 + k)[:, : len(names)]
        log_p = suite.truth.marginal_log_prob(values, gid, names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            log_f = model.log_marginal(values, kind, dict(suite[gid].conditions),
                                       allow_extrapolation=True)
        kl.append(float(np.mean(log_p - log_f)))
    return float(np.mean(kl)), kl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder of this run (checkpoints, curve, model)")
    p.add_argument("--n-galaxies", type=int, default=95)
    p.add_argument("--suite-seed", type=int, default=0)
    p.add_argument("--max-total-stars", type=int, default=2_000_000)
    p.add_argument("--min-stars", type=int, default=2_000)
    p.add_argument("--max-stars-per-galaxy", type=int, default=200_000)
    p.add_argument("--n-holdout", type=int, default=5)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--n-layers", type=int, default=10)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--hidden-layers", type=int, default=2)
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--schedule", default="paper")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--condition-noise", type=float, default=0.0)
    p.add_argument("--velocity-frame", default="cartesian", choices=["cartesian", "cylindrical"],
                   help="frame of the velocities in flow space (the normaliser's velocity_frame)")
    p.add_argument("--scale-with-mass", nargs="*", default=[], choices=["position", "velocity"],
                   help="column groups divided by a per-galaxy mass power law")
    p.add_argument("--steps", type=int, default=3000, help="optimisation steps in total")
    p.add_argument("--chunk", type=int, default=500, help="steps between KL measurements")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (training shards)")
    p.add_argument("--kl-stars", type=int, default=5000, help="truth stars per galaxy for KL")
    p.add_argument("--train-every", type=int, default=9, help="KL on every k-th train galaxy")
    p.add_argument("--init", help="start from the eDF flow of this model file (its architecture "
                   "and the standardisation of its unbounded columns and conditions)")
    p.add_argument("--target", default="edf", choices=["edf", *MARGINALS],
                   help="the eDF flow, or a marginal flow (needs --init with that marginal)")
    p.add_argument("--distill-from", help="for a marginal target: train on stars drawn from this "
                   "model's eDF (same count per galaxy) instead of the suite's stars, so that the "
                   "marginal is the eDF's own")
    p.add_argument("--input-conditioning", action="store_true",
                   help="trial variant: the couplings' data networks also take the conditions "
                   "at their first layer (benchmarks/input_conditioning.py); its model file "
                   "cannot be loaded by GalaxyModel")
    p.add_argument("--balance-galaxies", type=float, default=0.0, metavar="POWER",
                   help="repeat every star of a galaxy of n stars round((n_max / n)**POWER) "
                   "times in the training set: 0 (default) weights every star alike, so the "
                   "galaxies by their star counts; 0.5 gives a galaxy a weight growing as "
                   "sqrt(n); 1 weights the galaxies alike")
    p.add_argument("--test-seed", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1))

    t0 = time.perf_counter()
    suite = GalaxySuite.synthetic(
        n_galaxies=args.n_galaxies, seed=args.suite_seed, max_total_stars=args.max_total_stars,
        min_stars=args.min_stars, max_stars_per_galaxy=args.max_stars_per_galaxy,
    ).split(n_holdout=args.n_holdout, seed=args.split_seed)
    train, holdout = suite.train, suite.holdout
    test = GalaxySuite.synthetic(n_galaxies=args.n_test, seed=args.test_seed,
                                 max_total_stars=args.n_test * 20_000)
    stars, galaxy, conds = train.to_arrays(schema.STAR_NAMES, schema.CONDITION_NAMES)
    normalizer = Normalizer.fit(stars, conds, velocity_frame=args.velocity_frame,
                                scale_with_mass=args.scale_with_mass, galaxy_index=galaxy)
    config = dict(n_layers=args.n_layers, bins=args.bins, hidden=args.hidden,
                  hidden_layers=args.hidden_layers)
    names = schema.STAR_NAMES if args.target == "edf" else MARGINALS[args.target]
    if args.input_conditioning and args.init:
        raise SystemExit("--input-conditioning trains its trial coupling from scratch, not --init")
    if args.input_conditioning:
        from input_conditioning import input_conditioned_flow

        flow = input_conditioned_flow(len(names), 4, seed=args.seed, **config)
    else:
        flow = ConditionalSplineFlow(len(names), 4, **config, seed=args.seed)
    if args.init:
        # Warm start: the old flow's weights, and the old affine standardisation of every column
        # whose map did not change (bounded columns keep the map fitted here).
        init = GalaxyModel.load(args.init)
        if args.target == "edf" and init.n_members > 1:
            raise SystemExit(f"--init {args.init} is a mixture of {init.n_members} flows; "
                             "start from one flow's model file")
        source = init.flow if args.target == "edf" else init.marginals[args.target]
        flow = ConditionalSplineFlow(**source.config)
        flow.load_state_dict(source.state_dict())
        old = {t.name: t for t in init.normalizer.star_transforms}
        if init.normalizer.velocity_frame != args.velocity_frame:
            raise SystemExit(f"--init model's velocity frame is {init.normalizer.velocity_frame}")
        normalizer = Normalizer(
            [t if t.bounded else old[t.name] for t in normalizer.star_transforms],
            init.normalizer.condition_transforms,
            args.velocity_frame,
            init.normalizer.scale_laws,
        )
    teacher = None
    if args.distill_from:
        if args.target == "edf":
            raise SystemExit("--distill-from trains a marginal flow: give --target")
        teacher = GalaxyModel.load(args.distill_from)
        if teacher.normalizer.to_dict() != normalizer.to_dict():
            raise SystemExit("--distill-from model's normaliser differs from this run's")
    data_train = training_data(train, normalizer, names, teacher)
    if args.balance_galaxies:
        repeated = galaxy_balanced_rows(data_train.galaxy_index, args.balance_galaxies)
        print(f"balanced (power {args.balance_galaxies}): {data_train.n_stars} stars -> "
              f"{repeated.shape[0]} rows per epoch", flush=True)
    data_val = training_data(holdout, normalizer, names, teacher)
    print(f"suite {len(train)} + {len(holdout)} galaxies, {stars.shape[0]} training stars, "
          f"setup {time.perf_counter() - t0:.0f} s", flush=True)
    train_ids = train.ids[:: args.train_every]
    meta = {
        "name": f"lever run {out.name}",
        "suite_seed": args.suite_seed,
        "n_galaxies": args.n_galaxies,
        "suite_parameters": suite.meta.get("parameters"),
        "holdout": list(holdout.ids),
        "train_ids": list(train.ids),
        "n_train_stars": int(stars.shape[0]),
        "training": vars(args),
    }
    training_range = {n: [float(conds[:, i].min()), float(conds[:, i].max())]
                      for i, n in enumerate(schema.CONDITION_NAMES)}
    best = math.inf
    train_time = 0.0
    curve_path = out / "curve.jsonl"
    done = 0
    if curve_path.exists():
        lines = [json.loads(s) for s in curve_path.read_text().splitlines() if s.strip()]
        if lines:
            done, train_time = lines[-1]["step"], lines[-1]["train_time_s"]
            best = min(r["holdout_kl"] for r in lines)
    targets = list(range(done + args.chunk, args.steps + 1, args.chunk))
    if done == 0:
        targets = [0, *targets]
    for target in targets:
        t = time.perf_counter()
        result = train_flow(
            flow, data_train, data_val, epochs=10_000, batch_size=args.batch_size, lr=args.lr,
            schedule=args.schedule, seed=args.seed, checkpoint_dir=out / "ckpt",
            checkpoint_every=args.chunk, resume=True, progress=False, max_steps=target,
            weight_decay=args.weight_decay, condition_noise=args.condition_noise,
            balance_galaxies=args.balance_galaxies,
        )
        train_time += time.perf_counter() - t
        t = time.perf_counter()
        if args.target == "edf":
            model = GalaxyModel(flow, normalizer, training_range=training_range, meta=meta,
                                history={"edf": result.history})
            kl_hold, per_hold = mean_kl(model, suite, holdout.ids, args.kl_stars)
            kl_train, _ = mean_kl(model, suite, train_ids, args.kl_stars)
            kl_test, per_test = mean_kl(model, test, test.ids, args.kl_stars)
        else:
            # the model around the marginal needs an eDF flow: the --init model's, or an
            # untrained one (only the marginal is evaluated)
            edf_flow = init.flow if args.init else ConditionalSplineFlow(
                len(schema.STAR_NAMES), 4, **config, seed=args.seed)
            model = GalaxyModel(edf_flow, normalizer, training_range=training_range, meta=meta,
                                history={args.target: result.history},
                                marginals={args.target: flow})
            kl_hold, per_hold = mean_marginal_kl(model, args.target, suite, holdout.ids,
                                                 args.kl_stars)
            kl_train, _ = mean_marginal_kl(model, args.target, suite, train_ids, args.kl_stars)
            kl_test, per_test = mean_marginal_kl(model, args.target, test, test.ids,
                                                 args.kl_stars)
        row = {
            "step": target, "epoch": target * args.batch_size / stars.shape[0],
            "train_time_s": round(train_time, 1), "eval_s": round(time.perf_counter() - t, 1),
            "holdout_kl": kl_hold, "train_kl": kl_train, "test_kl": kl_test,
            "holdout_per_galaxy": per_hold, "test_per_galaxy": per_test,
            "lr": result.history["lr"][-1] if result.history["lr"] else None,
        }
        with open(curve_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if "per_galaxy" not in k}), flush=True)
        if kl_hold < best:
            best = kl_hold
            model.save(out / "model.h5")
        flow.train()


if __name__ == "__main__":
    main()

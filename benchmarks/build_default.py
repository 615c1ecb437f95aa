"""Assemble the shipped model astroflow_gal/pretrained/default.h5 from its two training stages.

Stage 1 (``astroflow-gal train --config default``, the previous shipped model): the eDF flow and the
``position`` and ``phase_space`` marginal flows, 5 epochs each on the default synthetic suite, age
standardised. Stage 2 (``benchmarks/train_lever.py --init <stage 1>``): the eDF flow continued with
the bounded (logit) age map and the levers of benchmarks/TRAINING.md; its best chunk by the held-out
galaxies' KL is kept. The marginal flows are over positions and velocities only, whose maps did not
change, so they are taken from stage 1 unchanged (checked: identical standardisation).

The result records the training galaxies' conditions and ids (for the joint extrapolation check),
the suite seed, size, star count and held-out ids, and both stages' histories::

    python benchmarks/build_default.py STAGE1.h5 STAGE2_RUN_FOLDER [-o OUTPUT.h5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.data import schema
from astroflow_gal.extrapolation import TrainingConditions

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage1", help="stage-1 model file (with the marginal flows)")
    p.add_argument("run", help="stage-2 run folder of benchmarks/train_lever.py")
    p.add_argument("-o", "--output", default=str(HERE.parent / "astroflow_gal" / "pretrained"
                                                  / "default.h5"))
    args = p.parse_args()
    run = Path(args.run)
    stage1 = GalaxyModel.load(args.stage1)
    stage2 = GalaxyModel.load(run / "model.h5")
    run_args = json.loads((run / "args.json").read_text())
    curve = [json.loads(s) for s in (run / "curve.jsonl").read_text().splitlines() if s.strip()]
    best = min(curve, key=lambda r: r["holdout_kl"])

    for name in schema.PHASE_SPACE_NAMES:
        old = next(t for t in stage1.normalizer.star_transforms if t.name == name)
        new = next(t for t in stage2.normalizer.star_transforms if t.name == name)
        if old != new:
            raise SystemExit(f"column {name} is standardised differently in the two stages")
    if stage1.normalizer.condition_transforms != stage2.normalizer.condition_transforms:
        raise SystemExit("the conditions are standardised differently in the two stages")

    suite = GalaxySuite.synthetic(
        n_galaxies=run_args["n_galaxies"], seed=run_args["suite_seed"],
        max_total_stars=run_args["max_total_stars"], min_stars=run_args["min_stars"],
        max_stars_per_galaxy=run_args["max_stars_per_galaxy"],
    ).split(n_holdout=run_args["n_holdout"], seed=run_args["split_seed"])
    train = suite.train
    if list(train.ids) != list(stage1.meta["train_ids"]):
        raise SystemExit("stage 1 was trained on other galaxies")
    names = stage2.condition_names
    values = [[g.conditions[n].to_value(schema.column(n).unit) for n in names] for g in train]
    training_conditions = TrainingConditions(list(train.ids), names, values)

    meta = dict(stage1.meta)
    meta.update({
        "name": "astroflow_gal default (synthetic suite seed 0, bounded age)",
        "suite_parameters": suite.meta.get("parameters"),
        "n_stars_suite": suite.meta.get("n_stars"),
        "holdout": list(suite.holdout.ids),
        "train_ids": list(train.ids),
        "stages": {
            "stage1": {"training": stage1.meta.get("training"), "created": stage1.meta.get(
                "created"), "what": "eDF, position and phase_space flows from scratch, "
                "age standardised"},
            "stage2": {"what": "eDF flow continued with the logit age map",
                       "options": run_args, "best_step": best["step"],
                       "train_time_s": best["train_time_s"]},
        },
    })
    history = dict(stage1.history)
    history["edf_stage2"] = stage2.history.get("edf", {})
    model = GalaxyModel(
        stage2.flow, stage2.normalizer, training_range=stage2.training_range,
        training_conditions=training_conditions, meta=meta, history=history,
        marginals=stage1.marginals,
    )
    model.save(args.output)
    size = Path(args.output).stat().st_size / 1e6
    print(f"wrote {args.output} ({size:.1f} MB): stage-2 step {best['step']}, held-out KL "
          f"{best['holdout_kl']:.3f}, training KL {best['train_kl']:.3f} (5,000 stars/galaxy)")


if __name__ == "__main__":
    main()

"""Assemble the shipped model astroflow_gal/pretrained/default.h5 from its two training stages.

Stage 1 (``astroflow-gal train --config default``: the previous shipped model): the eDF flow and the
``position`` and ``phase_space`` marginal flows, 5 epochs each on the 95-galaxy synthetic suite, age
standardised. Stage 2 (``benchmarks/train_lever.py --init <stage 1>``): every flow continued on the
suite of the stage-2 run (e.g. 400 galaxies of at most 20,000 stars), the eDF with the bounded
(logit) age map, with the levers of benchmarks/TRAINING.md; each run's best chunk by the held-out
galaxies' KL is kept. A marginal without a stage-2 run is taken from stage 1 unchanged (its columns'
standardisation is checked to be identical).

The result records the training galaxies' conditions and ids (for the joint extrapolation check),
the suite seed, size, star-count parameters and held-out ids, and every stage's history. ``--then``
ships the eDF of a later run that started from EDF_RUN's model at ``--init-step`` (e.g. without
condition noise)::

    python benchmarks/build_default.py STAGE1.h5 EDF_RUN [--then RUN2 --init-step N]
        [--marginal KIND=RUN ...] [-o OUT.h5]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.data import schema
from astroflow_gal.extrapolation import TrainingConditions

HERE = Path(__file__).resolve().parent


def _run(folder: Path) -> tuple[GalaxyModel, dict, dict]:
    model = GalaxyModel.load(folder / "model.h5")
    args = json.loads((folder / "args.json").read_text())
    curve = [json.loads(t) for t in (folder / "curve.jsonl").read_text().splitlines() if t]
    return model, args, min(curve, key=lambda r: r["holdout_kl"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage1", help="stage-1 model file (with the marginal flows)")
    p.add_argument("run", type=Path, help="stage-2 eDF run folder of benchmarks/train_lever.py")
    p.add_argument("--then", type=Path,
                   help="a later eDF run (train_lever.py --init <RUN's model at --init-step>) "
                        "whose best model is shipped instead; both stages are recorded")
    p.add_argument("--init-step", type=int,
                   help="with --then: the step of RUN whose model the later run started from")
    p.add_argument("--marginals-from", type=Path,
                   help="an earlier model built by this script: take its marginal flows, their "
                        "stage records and histories (instead of stage 1's)")
    p.add_argument("--marginal", action="append", default=[],
                   help="KIND=RUN_FOLDER: a stage-2 run of a marginal flow (same suite)")
    p.add_argument("-o", "--output", default=str(HERE.parent / "astroflow_gal" / "pretrained"
                                                  / "default.h5"))
    args = p.parse_args()
    stage1 = GalaxyModel.load(args.stage1)
    stage2, run_args, best = _run(args.run)
    then = None
    if args.then is not None:
        if args.init_step is None:
            raise SystemExit("--then needs --init-step (the step of RUN it started from)")
        curve = [json.loads(t) for t in (args.run / "curve.jsonl").read_text().splitlines() if t]
        rows = [r for r in curve if r["step"] == args.init_step]
        if not rows:
            raise SystemExit(f"{args.run} has no measured step {args.init_step}")
        then = _run(args.then)
        for key in ("n_galaxies", "suite_seed", "max_total_stars", "min_stars",
                    "max_stars_per_galaxy", "n_holdout", "split_seed"):
            if then[1][key] != run_args[key]:
                raise SystemExit(f"run {args.then} used another suite ({key})")
        first_best = rows[0]
        stage2, then_args, best = then
    for name in schema.PHASE_SPACE_NAMES:
        old = next(t for t in stage1.normalizer.star_transforms if t.name == name)
        new = next(t for t in stage2.normalizer.star_transforms if t.name == name)
        if old != new:
            raise SystemExit(f"column {name} is standardised differently in the two stages")
    if stage1.normalizer.condition_transforms != stage2.normalizer.condition_transforms:
        raise SystemExit("the conditions are standardised differently in the two stages")

    marginals = dict(stage1.marginals)
    stages = {
        "stage1": {"what": "eDF, position and phase_space flows from scratch, age standardised",
                   "suite_seed": stage1.meta.get("suite_seed"),
                   "n_galaxies": stage1.meta.get("n_galaxies"),
                   "holdout": stage1.meta.get("holdout"),
                   "training": stage1.meta.get("training"), "created": stage1.meta.get("created")},
        "stage2_edf": {"what": "eDF flow continued with the logit age map", "options": run_args,
                       "best_step": best["step"], "train_time_s": best["train_time_s"]},
    }
    if then is not None:
        stages["stage2_edf"].update(best_step=first_best["step"],
                                    train_time_s=first_best["train_time_s"])
        stages["stage3_edf"] = {"what": "eDF flow continued from stage 2's model at that step",
                                "options": then_args, "best_step": best["step"],
                                "train_time_s": best["train_time_s"]}
    history = {f"{k}_stage1": v for k, v in stage1.history.items()}
    history["edf"] = stage2.history.get("edf", {})
    if args.marginals_from is not None:
        earlier = GalaxyModel.load(args.marginals_from)
        if (earlier.normalizer.star_transforms != stage2.normalizer.star_transforms
                or earlier.normalizer.condition_transforms
                != stage2.normalizer.condition_transforms):
            raise SystemExit(f"{args.marginals_from} standardises its columns differently")
        for kind, flow in earlier.marginals.items():
            marginals[kind] = flow
            history[kind] = earlier.history.get(kind, {})
            record = earlier.meta.get("stages", {}).get(f"stage2_{kind}")
            if record is not None:
                stages[f"stage2_{kind}"] = {**record, "taken_from": earlier.meta.get("name"),
                                            "taken_from_created": earlier.meta.get("created")}
    for spec in args.marginal:
        kind, folder = spec.split("=", 1)
        m_model, m_args, m_best = _run(Path(folder))
        for key in ("n_galaxies", "suite_seed", "max_total_stars", "min_stars",
                    "max_stars_per_galaxy", "n_holdout", "split_seed"):
            if m_args[key] != run_args[key]:
                raise SystemExit(f"marginal run {folder} used another suite ({key})")
        marginals[kind] = m_model.marginals[kind]
        history[kind] = m_model.history.get(kind, {})
        stages[f"stage2_{kind}"] = {"what": f"{kind} flow continued", "options": m_args,
                                    "best_step": m_best["step"],
                                    "train_time_s": m_best["train_time_s"]}

    suite = GalaxySuite.synthetic(
        n_galaxies=run_args["n_galaxies"], seed=run_args["suite_seed"],
        max_total_stars=run_args["max_total_stars"], min_stars=run_args["min_stars"],
        max_stars_per_galaxy=run_args["max_stars_per_galaxy"],
    ).split(n_holdout=run_args["n_holdout"], seed=run_args["split_seed"])
    train = suite.train
    names = stage2.condition_names
    values = [[g.conditions[n].to_value(schema.column(n).unit) for n in names] for g in train]
    training_conditions = TrainingConditions(list(train.ids), names, values)
    stars, _, _ = train.to_arrays(("x",), names)
    meta = {
        "name": f"astroflow_gal default (synthetic suite seed {run_args['suite_seed']}, "
                f"{run_args['n_galaxies']} galaxies, bounded age)",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "astroflow_gal_version": stage1.meta.get("astroflow_gal_version"),
        "suite_source": "synthetic",
        "suite_seed": run_args["suite_seed"],
        "n_galaxies": run_args["n_galaxies"],
        "suite_parameters": suite.meta.get("parameters"),
        "n_stars_suite": suite.meta.get("n_stars"),
        "train_ids": list(train.ids),
        "holdout": list(suite.holdout.ids),
        "n_train_stars": int(stars.shape[0]),
        "stages": stages,
    }
    model = GalaxyModel(
        stage2.flow, stage2.normalizer, training_range=stage2.training_range,
        training_conditions=training_conditions, meta=meta, history=history,
        marginals=marginals,
    )
    model.save(args.output)
    size = Path(args.output).stat().st_size / 1e6
    print(f"wrote {args.output} ({size:.1f} MB): eDF step {best['step']} of its run, held-out KL "
          f"{best['holdout_kl']:.3f}, training KL {best['train_kl']:.3f} (5,000 stars/galaxy); "
          f"marginals {sorted(marginals)}")


if __name__ == "__main__":
    main()

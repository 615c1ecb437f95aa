"""Assemble the shipped model astroflow_gal/pretrained/default.h5 from its training runs.

Every flow is a run of ``benchmarks/train_lever.py`` on the same synthetic suite (e.g. 400
galaxies of at most 20,000 stars, 2 million in all) with the same flow-space maps (bounded age,
velocity frame, mass scale laws): the eDF flow (RUN), optionally continued by a later run
(``--then``, e.g. without condition noise, started from RUN's model at ``--init-step``), and the
``position`` and ``phase_space`` marginal flows (``--marginal KIND=RUN``). Each run's best chunk by
the held-out galaxies' KL is kept. The script refuses runs of another suite or whose normaliser
differs from the eDF's (the marginals are evaluated through the eDF's normaliser).

The result records the training galaxies' conditions and ids (for the joint extrapolation check),
the suite seed, size, star-count parameters and held-out ids, and every run's options, best step
and training time::

    python benchmarks/build_default.py EDF_RUN [--then RUN2 --init-step N]
        --marginal position=RUN --marginal phase_space=RUN [-o OUT.h5]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

from astroflow_gal import GalaxyModel, GalaxySuite, __version__
from astroflow_gal.data import schema
from astroflow_gal.extrapolation import TrainingConditions
from astroflow_gal.model import MARGINALS

HERE = Path(__file__).resolve().parent
SUITE_KEYS = ("n_galaxies", "suite_seed", "max_total_stars", "min_stars", "max_stars_per_galaxy",
              "n_holdout", "split_seed")


def _run(folder: Path) -> tuple[GalaxyModel, dict, dict]:
    """A run's best model, its options and its best curve row (by the held-out KL)."""
    model = GalaxyModel.load(folder / "model.h5")
    args = json.loads((folder / "args.json").read_text())
    curve = [json.loads(t) for t in (folder / "curve.jsonl").read_text().splitlines() if t]
    return model, args, min(curve, key=lambda r: r["holdout_kl"])


def _same_suite(args: dict, reference: dict, folder: Path) -> None:
    for key in SUITE_KEYS:
        if args[key] != reference[key]:
            raise SystemExit(f"run {folder} used another suite ({key})")


def _record(what: str, args: dict, best: dict) -> dict:
    return {"what": what, "options": args, "best_step": best["step"],
            "train_time_s": best["train_time_s"], "holdout_kl": best["holdout_kl"],
            "train_kl": best["train_kl"], "test_kl": best.get("test_kl")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="eDF run folder of benchmarks/train_lever.py")
    p.add_argument("--then", type=Path,
                   help="a later eDF run (train_lever.py --init <RUN's model at --init-step>) "
                        "whose best model is shipped instead; both runs are recorded")
    p.add_argument("--init-step", type=int,
                   help="with --then: the step of RUN whose model the later run started from")
    p.add_argument("--marginal", action="append", default=[], required=True,
                   help="KIND=RUN_FOLDER: a run of a marginal flow on the same suite")
    p.add_argument("-o", "--output", default=str(HERE.parent / "astroflow_gal" / "pretrained"
                                                  / "default.h5"))
    args = p.parse_args()
    edf, run_args, best = _run(args.run)
    stages = {"edf": _record("eDF flow from scratch", run_args, best)}
    if args.then is not None:
        if args.init_step is None:
            raise SystemExit("--then needs --init-step (the step of RUN it started from)")
        curve = [json.loads(t) for t in (args.run / "curve.jsonl").read_text().splitlines() if t]
        rows = [r for r in curve if r["step"] == args.init_step]
        if not rows:
            raise SystemExit(f"{args.run} has no measured step {args.init_step}")
        stages["edf"] = _record("eDF flow from scratch", run_args, rows[0])
        edf, then_args, best = _run(args.then)
        _same_suite(then_args, run_args, args.then)
        stages["edf_then"] = _record(f"eDF flow continued from the first run's step "
                                     f"{args.init_step}", then_args, best)
    history = {"edf": edf.history.get("edf", {})}
    marginals = {}
    reference = edf.normalizer.to_dict()
    for spec in args.marginal:
        kind, folder = spec.split("=", 1)
        if kind not in MARGINALS:
            raise SystemExit(f"unknown marginal {kind!r}; known: {sorted(MARGINALS)}")
        m_model, m_args, m_best = _run(Path(folder))
        _same_suite(m_args, run_args, Path(folder))
        if m_model.normalizer.to_dict() != reference:
            raise SystemExit(f"marginal run {folder} maps its columns differently from the eDF")
        marginals[kind] = m_model.marginals[kind]
        history[kind] = m_model.history.get(kind, {})
        stages[kind] = _record(f"{kind} marginal flow from scratch", m_args, m_best)
    missing = sorted(set(MARGINALS) - set(marginals))
    if missing:
        raise SystemExit(f"no run given for the marginal flows {missing}")

    suite = GalaxySuite.synthetic(
        n_galaxies=run_args["n_galaxies"], seed=run_args["suite_seed"],
        max_total_stars=run_args["max_total_stars"], min_stars=run_args["min_stars"],
        max_stars_per_galaxy=run_args["max_stars_per_galaxy"],
    ).split(n_holdout=run_args["n_holdout"], seed=run_args["split_seed"])
    train = suite.train
    names = edf.condition_names
    values = [[g.conditions[n].to_value(schema.column(n).unit) for n in names] for g in train]
    training_conditions = TrainingConditions(list(train.ids), names, values)
    stars, _, _ = train.to_arrays(("x",), names)
    meta = {
        "name": f"astroflow_gal default (synthetic suite seed {run_args['suite_seed']}, "
                f"{run_args['n_galaxies']} galaxies, bounded age, mass scale laws)",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "astroflow_gal_version": __version__,
        "suite_source": "synthetic",
        "suite_seed": run_args["suite_seed"],
        "n_galaxies": run_args["n_galaxies"],
        "suite_parameters": suite.meta.get("parameters"),
        "n_stars_suite": suite.meta.get("n_stars"),
        "train_ids": list(train.ids),
        "holdout": list(suite.holdout.ids),
        "n_train_stars": int(stars.shape[0]),
        "training": edf.meta.get("training"),
        "stages": stages,
    }
    model = GalaxyModel(
        edf.flow, edf.normalizer, training_range=edf.training_range,
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

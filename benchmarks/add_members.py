"""Make a model file's eDF the mixture of its flow and the eDF flows of further training runs.

BASE may be a single flow or already a mixture (its members are kept). Every RUN is a
``benchmarks/train_lever.py`` run of the eDF on the same synthetic suite as the BASE model (same
seed, size, star counts and held-out galaxies) with the same flow-space maps, typically from
another ``--seed``; each run's best chunk (by the held-out KL) is taken. The result's eDF is the
equal-weight mixture of BASE's eDF flows and the runs' (``GalaxyModel.ensemble``); it keeps
BASE's marginal flows, training galaxies and meta, and records every member's run under
``meta["stages"]``. With ``--weights-dtype float16`` the weights are stored in half precision
(half the file; the KL of the shipped model changes by less than 0.002 nats/star, see
docs/model_card.md)::

    python benchmarks/add_members.py astroflow_gal/pretrained/default.h5 runs/edf_seed1 \\
        --weights-dtype float16 -o astroflow_gal/pretrained/default.h5

``--replace K RUN`` puts the best model of RUN in place of member K instead (RUN continued that
member, ``train_lever.py --init``); the member's earlier record is kept inside the new one.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
from pathlib import Path

from build_default import SUITE_KEYS, _record, _run

from astroflow_gal import GalaxyModel, __version__


def _check_same_suite(run_args: dict, base: GalaxyModel, folder: Path) -> None:
    reference = base.meta.get("training") or {}
    for key in SUITE_KEYS:
        if key not in reference or run_args[key] != reference[key]:
            raise SystemExit(f"run {folder} used another suite than the base model ({key})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", type=Path, help="model file whose eDF becomes the first member")
    p.add_argument("runs", type=Path, nargs="*", help="eDF run folders of train_lever.py")
    p.add_argument("--replace", nargs=2, action="append", default=[], metavar=("K", "RUN"),
                   help="replace member K by the best model of RUN (a run continued from it)")
    p.add_argument("--weights-dtype", choices=["float32", "float16", "int8", "int6"], default=None,
                   help="precision of the stored weights (default: as the networks hold them)")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args()

    base = GalaxyModel.load(args.base)
    members = base.members()
    stages = dict(base.meta.get("stages") or {})
    if not args.runs and not args.replace:
        raise SystemExit("nothing to do: give RUN folders to add or --replace K RUN")

    def member_of(folder: Path) -> tuple[GalaxyModel, dict, dict]:
        run_model, run_args, best = _run(folder)
        _check_same_suite(run_args, base, folder)
        member = GalaxyModel(
            run_model.flow, run_model.normalizer, training_range=base.training_range,
            training_conditions=base.training_conditions, meta=run_model.meta,
            history=run_model.history, marginals=base.marginals,  # as base.members() carry them
        )
        return member, run_args, best

    for text_k, text_folder in args.replace:
        if not text_k.isdigit() or not 0 <= int(text_k) < len(members):
            raise SystemExit(f"--replace {text_k}: the base model has members 0 to "
                             f"{len(members) - 1}")
        k, folder = int(text_k), Path(text_folder)
        members[k], run_args, best = member_of(folder)
        key = "edf" if k == 0 else f"edf_member_{k}"
        stages[key] = {
            **_record(f"mixture member {k} continued (--init) with the options below",
                      run_args, best),
            "continued_from": stages.get(key),
        }
    for k, folder in enumerate(args.runs, start=len(members)):
        member, run_args, best = member_of(folder)
        members.append(member)
        stages[f"edf_member_{k}"] = _record(
            f"eDF flow from scratch (seed {run_args['seed']}), mixture member {k}", run_args, best)
    name = re.sub(r"(, mixture of \d+ eDF flows)?\)$", f", mixture of {len(members)} eDF flows)",
                  base.meta.get("name", ""))
    meta = {
        **base.meta,
        "name": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "astroflow_gal_version": __version__,
        "stages": stages,
        "ensemble": {"members": len(members), "weights": "equal",
                     "weights_dtype": args.weights_dtype or "float32"},
    }
    model = GalaxyModel.ensemble(members, meta=meta)
    model.history = {
        **{key: value for key, value in base.history.items() if key != "edf"},
        "edf_members": [m.history.get("edf", {}) for m in members],
    }
    model.save(args.output, weights_dtype=args.weights_dtype)
    size = args.output.stat().st_size / 1e6
    print(f"wrote {args.output} ({size:.1f} MB): mixture of {len(members)} eDF flows, "
          f"marginals {sorted(model.marginals)}, weights stored as {args.weights_dtype or 'is'}")


if __name__ == "__main__":
    main()

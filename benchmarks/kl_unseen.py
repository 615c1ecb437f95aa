"""KL(truth || model) of several models on the same galaxies, none of which any of them saw.

A model's held-out KL depends on which galaxies are held out: their floors (the lowest KL any
model of p(stars | conditions) can reach, `benchmarks/kl_floor.py`) range from 0.09 to 0.44
nats/star. Models trained on suites of different sizes hold out different galaxies, so this script
compares them on common ground: the held-out galaxies of every model's suite (skipping any galaxy
that another model with the same suite trained on) and fresh galaxies of another seed. All models
see the same truth stars of each galaxy, so the differences between models are paired; each is
given with its standard error. With ``--mixture`` the equal-weight mixture of all the models,
``f = mean_k f_k`` (an ensemble: its KL is at most the mean of theirs), is added as a last column::

    python benchmarks/kl_unseen.py astroflow_gal/pretrained/default.h5 runs/paper1600/model.h5
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis.metrics import galaxy_conditions
from astroflow_gal.inputs import ExtrapolationWarning


def suite_key(meta: dict) -> str:
    """The generator settings that identify a model's synthetic suite."""
    return json.dumps({"seed": meta["suite_seed"], "n": meta["n_galaxies"],
                       "parameters": meta.get("suite_parameters")}, sort_keys=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="model files, each with its suite in its meta")
    p.add_argument("--n-stars", type=int, default=10_000, help="truth stars per galaxy")
    p.add_argument("--n-fresh", type=int, default=10, help="fresh galaxies")
    p.add_argument("--fresh-seed", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mixture", action="store_true",
                   help="add the equal-weight mixture (ensemble) of the models")
    p.add_argument("--json", help="write the per-galaxy numbers here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = [GalaxyModel.load(m) for m in args.models]
    labels = [Path(m).parent.name if Path(m).name == "model.h5" else Path(m).stem
              for m in args.models]
    if args.mixture:
        labels.append("mixture")

    suites: dict[str, GalaxySuite] = {}
    trained_on: dict[str, set[str]] = {}
    for m in models:
        key = suite_key(m.meta)
        if key not in suites:
            suites[key] = GalaxySuite.synthetic_of(m.meta)
        trained_on.setdefault(key, set()).update(m.meta.get("train_ids") or [])
    galaxies = []  # (group, suite, id)
    seen = set()
    for k, m in enumerate(models):
        key = suite_key(m.meta)
        for gid in m.meta.get("holdout", []):
            if gid not in trained_on[key] and (key, gid) not in seen:
                seen.add((key, gid))
                galaxies.append((f"held out of {labels[k]}", key, gid))
    fresh = GalaxySuite.synthetic(n_galaxies=args.n_fresh, seed=args.fresh_seed,
                                  max_total_stars=args.n_fresh * 20_000)
    suites["fresh"] = fresh
    galaxies += [("fresh", "fresh", gid) for gid in fresh.ids]

    rows = []
    for k, (group, key, gid) in enumerate(galaxies):
        t0 = time.perf_counter()
        suite = suites[key]
        values = suite.truth.sample_arrays(args.n_stars, gid, 10_000 + k)
        log_p = suite.truth.log_prob_arrays(values, gid)
        diffs = []
        for m in models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExtrapolationWarning)
                log_f = m.log_edf(values, galaxy_conditions(m, suite[gid]),
                                  allow_extrapolation=True)
            diffs.append(log_p - log_f)
        if args.mixture:
            log_mix = np.logaddexp.reduce(log_p - np.stack(diffs), axis=0) - np.log(len(models))
            diffs.append(log_p - log_mix)
        d = np.stack(diffs)
        sqrt_n = np.sqrt(args.n_stars)
        row = {"group": group, "galaxy": gid,
               "M_stars": float(suite[gid].conditions["M_stars"].to_value(u.Msun)),
               "kl": d.mean(axis=1).tolist(), "kl_err": (d.std(axis=1) / sqrt_n).tolist(),
               "diff_vs_first": (d - d[0]).mean(axis=1).tolist(),
               "diff_vs_first_err": ((d - d[0]).std(axis=1) / sqrt_n).tolist()}
        rows.append(row)
        print(f"{group:>28} {gid:>8} {row['M_stars']:9.2e} Msun  "
              + "  ".join(f"{v:.3f}" for v in row["kl"])
              + f"   ({time.perf_counter() - t0:.0f} s)", flush=True)

    print("\nmean KL(truth || model) [nats/star]; difference to the first model, paired:")
    print("| galaxies | n | " + " | ".join(labels) + " | "
          + " | ".join(f"{lab} - {labels[0]}" for lab in labels[1:]) + " |")
    print("|---" * (2 + 2 * len(labels) - 1) + "|")
    groups = list(dict.fromkeys(r["group"] for r in rows)) + ["all"]
    summary = {}
    for g in groups:
        sel = [r for r in rows if g == "all" or r["group"] == g]
        kl = np.mean([r["kl"] for r in sel], axis=0)
        err = np.sqrt(np.sum(np.square([r["kl_err"] for r in sel]), axis=0)) / len(sel)
        dif = np.mean([r["diff_vs_first"] for r in sel], axis=0)
        derr = np.sqrt(np.sum(np.square([r["diff_vs_first_err"] for r in sel]), axis=0)) / len(sel)
        summary[g] = {"n": len(sel), "kl": kl.tolist(), "diff": dif.tolist()}
        print(f"| {g} | {len(sel)} | "
              + " | ".join(f"{a:.3f} +- {b:.3f}" for a, b in zip(kl, err, strict=True)) + " | "
              + " | ".join(f"{a:+.3f} +- {b:.3f}"
                           for a, b in zip(dif[1:], derr[1:], strict=True)) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"models": args.models, "labels": labels,
                                               "n_stars": args.n_stars, "galaxies": rows,
                                               "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

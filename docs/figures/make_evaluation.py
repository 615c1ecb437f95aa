"""Figures and numbers of docs/evaluation.md: the shipped model judged on its synthetic suite.

Rebuilds the synthetic suite the model was trained on (seed and size from the model's ``meta``),
judges the model on its held-out galaxies and on 15 training galaxies spread evenly in mass with
:func:`astroflow_gal.analysis.evaluate.evaluate`, copies the figures here as
``evaluation_*.png`` and writes the numbers (summary, findings, a table per galaxy) into
docs/evaluation.md between its two ``make_evaluation.py`` marker comments.
One thread, a few minutes::

    python docs/figures/make_evaluation.py [model.h5]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis.evaluate import evaluate, format_summary, held_out_ids
from astroflow_gal.inputs import ExtrapolationWarning

HERE = Path(__file__).resolve().parent
#: The part of docs/evaluation.md that this script writes lies between these lines.
START = "<!-- make_evaluation.py: results start -->"
END = "<!-- make_evaluation.py: results end -->"
N_TRAINING_JUDGED = 15


def _small_png(source: Path, target: Path) -> None:
    """Copy a PNG as a 256-colour palette image (the docs keep each PNG under ~300 KB)."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            target, optimize=True)


def main() -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    start = time.perf_counter()
    model = GalaxyModel.load(sys.argv[1]) if len(sys.argv) > 1 else GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    held = held_out_ids(model, suite)
    trained = sorted((g for g in suite.ids if g not in held),
                     key=lambda g: suite[g].conditions["M_stars"].value)
    picks = np.unique(np.round(np.linspace(0, len(trained) - 1, N_TRAINING_JUDGED)).astype(int))
    ids = sorted(held) + [trained[i] for i in picks]
    corner = sorted(held, key=lambda g: suite[g].conditions["M_stars"].value)[-1]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        result = evaluate(model, suite, tmp, galaxy_ids=ids, max_stars=10_000,
                          n_kl_stars=4_000, kernel_permutations=200, max_test_points=1_000,
                          corner_galaxy=corner, seed=0, formats=("png",))
        for stem in ("corner", "mmd_mass", "metrics_mass"):
            _small_png(Path(tmp) / f"{stem}.png", HERE / f"evaluation_{stem}.png")
    metrics = result["metrics"]
    seconds = time.perf_counter() - start
    print(f"\n{model}\njudged {len(ids)} galaxies, corner plot of {corner}; "
          f"{len(caught)} extrapolation warnings; {seconds:.0f} s\n")
    print(format_summary(metrics.meta["summary"]))
    block = results_markdown(model, suite, metrics, seconds)
    page = HERE.parent / "evaluation.md"
    text = page.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(head + START + "\n" + block + "\n" + END + tail)
    print(f"\nwrote the results into {page}")


def _range(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.min():.2f}–{values.max():.2f}"


def results_markdown(model, suite, metrics, seconds: float) -> str:
    """The generated part of docs/evaluation.md: summary, findings, table per galaxy."""
    s = metrics.meta["summary"]
    held = np.asarray(metrics["held_out"], dtype=bool)
    n, n_held = len(metrics), int(held.sum())
    rank = np.asarray(metrics["linear_mmd_rank"])
    p = np.asarray(metrics["kernel_mmd_p"])
    auc = np.asarray(metrics["auc"])
    logm = np.log10(metrics["M_stars"].value)
    factors = {"positions": "kl_position",
               "the velocity field at given positions": "kl_velocity_given_position",
               "chemistry and age at given phase-space coordinates":
               "kl_chemistry_age_given_phase_space"}
    held_means = {k: float(np.mean(metrics[c][held])) for k, c in factors.items()}
    largest = max(held_means, key=held_means.get)
    worst = metrics["galaxy_id"][np.argmax(metrics["kl"])]
    best = metrics["galaxy_id"][np.argmin(metrics["kl"])]
    grows = s["spearman_held_out"] > 0.5
    far = [f"{g} (rank {r})" for g, r in zip(metrics["galaxy_id"], rank, strict=True) if r > 4]
    lines = [
        f"Measured with `python docs/figures/make_evaluation.py` (one thread, {seconds:.0f} s in "
        "all on the shared 2-core development machine), which writes this section: the shipped "
        f"model `{model.meta.get('name', 'unnamed')}` ({model.architecture}, marginals: "
        f"{', '.join(model.marginals) or 'none'}) judged on the synthetic suite it was trained "
        f"on ({len(suite)} galaxies, seed {model.meta['suite_seed']}), on its {n_held} held-out "
        f"galaxies and on {n - n_held} training galaxies spread evenly in mass; model galaxies "
        "of at most 10,000 stars, 4,000 fresh truth stars for KL, 1,000 stars of each sample "
        "and 200 permutations for the kernel MMD, 2,000 for the classifier. Re-run the script "
        "after retraining the model.",
        "",
        f"| | all {n} judged | {n_held} held out | data vs data |",
        "|---|---|---|---|",
        f"| Spearman ρ(MMD, \\|Δlog10 M_stars\\|) | {s['spearman_model']:.3f} "
        f"({s['n_model_pairs']:,} pairs) | {s['spearman_held_out']:.3f} "
        f"({s['n_held_out_pairs']:,} pairs) | {s['spearman_data']:.3f} "
        f"({s['n_data_pairs']:,} pairs) |",
        f"| model points inside the data-data 95 % band | {s['inside_95_model']:.1%} | "
        f"{s['inside_95_held_out']:.1%} | (95 % by construction) |",
        f"| median classifier AUC | {s['median_auc']:.3f} | {s['median_auc_held_out']:.3f} | |",
        f"| kernel MMD p < 0.05 | {s['kernel_mmd_rejected']:.0%} of galaxies | | |",
        f"| mean KL(truth ‖ model) [nat/star] | {s['mean_kl']:.3f} | "
        f"{s['mean_kl_held_out']:.3f} | |",
        "",
        f"Paper Figure 3: the linear MMD {'grows' if grows else 'does NOT grow'} with the "
        f"difference in stellar mass (Spearman ρ {s['spearman_held_out']:.2f} for the "
        f"held-out galaxies, {'above' if grows else 'below'} 0.5) and "
        f"{s['inside_95_held_out']:.0%} of the held-out model points lie within the 95 % band "
        "of the data-versus-data distribution. For "
        f"{int(np.sum(rank == 1))} of the {n} galaxies the model galaxy is closer (in linear "
        f"MMD) to its own data galaxy than to any other of the {len(suite)}; "
        + (f"its own data galaxy is among the closest four for all but {', '.join(far)}."
           if far else "for all of them its own data galaxy is among the closest four."),
        "",
        "The stronger tests say more than the paper's metric: the classifier tells model stars "
        f"from data stars with an AUC of {_range(auc)} (0.5: indistinguishable), and the kernel "
        f"MMD rejects \"same distribution\" at 5 % for {int(np.sum(p < 0.05))} of the {n} "
        "galaxies. The KL split shows where the information is lost; on the held-out galaxies "
        + ", ".join(f"{_range(metrics[c][held])} nat/star in {k}" for k, c in factors.items())
        + f" (the largest share: {largest}). KL is lowest for {best} (log10 M_stars "
        f"{logm[list(metrics['galaxy_id']).index(best)]:.2f}) and highest for {worst} "
        f"(log10 M_stars {logm[list(metrics['galaxy_id']).index(worst)]:.2f}).",
        "",
        "| galaxy | held out | log10 M_stars | linear MMD (rank) | kernel MMD p | AUC | "
        "KL [nat/star] | KL(x) | KL(v\\|x) | KL(chem, age \\| x, v) | W1 x [kpc] | "
        "W1 vz [km/s] | W1 [Fe/H] [dex] | W1 age [Gyr] |",
        "|---" * 14 + "|",
    ]
    for row in metrics:
        lines.append(
            f"| {row['galaxy_id']} | {'yes' if row['held_out'] else 'no'} | "
            f"{np.log10(row['M_stars'].value):.2f} | {row['linear_mmd']:.3g} "
            f"({row['linear_mmd_rank']}) | {row['kernel_mmd_p']:.3f} | "
            f"{row['auc']:.3f} ± {row['auc_err']:.3f} | {row['kl']:.3f} ± {row['kl_err']:.3f} | "
            f"{row['kl_position']:.3f} | {row['kl_velocity_given_position']:.3f} | "
            f"{row['kl_chemistry_age_given_phase_space']:.3f} | {row['w1_x'].value:.3f} | "
            f"{row['w1_vz'].value:.2f} | {row['w1_feh'].value:.3f} | "
            f"{row['w1_age'].value:.3f} |")
    lines += [
        "",
        "The p-values of 0.005 are the smallest 200 permutations can give (1/201). Everything "
        "is seeded; only the classifier's AUC changes by up to about 0.005 between runs (its "
        "float32 training on the CPU is not bit-reproducible), well inside its error.",
    ]
    return "\n".join(lines)

if __name__ == "__main__":
    main()

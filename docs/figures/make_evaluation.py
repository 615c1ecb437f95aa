"""Figures and numbers of docs/evaluation.md: the shipped model judged on its synthetic suite.

Rebuilds the synthetic suite the model was trained on (seed and size from the model's ``meta``),
judges the model on its held-out galaxies and on 15 training galaxies spread evenly in mass with
:func:`astroflow_gal.analysis.evaluate.evaluate`, copies the figures here as
``evaluation_*.png`` and prints the summary and a Markdown table of the metrics per galaxy.
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
    suite = GalaxySuite.synthetic(n_galaxies=int(model.meta["n_galaxies"]),
                                  seed=int(model.meta["suite_seed"]))
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
    print(f"\n{model}\njudged {len(ids)} galaxies, corner plot of {corner}; "
          f"{len(caught)} extrapolation warnings; {time.perf_counter() - start:.0f} s\n")
    print(format_summary(metrics.meta["summary"]))
    print({k: (round(v, 4) if isinstance(v, float) else v)
           for k, v in metrics.meta["summary"].items()})
    print("\n| galaxy | held out | log10 M_stars | linear MMD (rank) | kernel MMD p | AUC | "
          "KL [nat/star] | KL(x) | KL(v|x) | KL(chem, age | x, v) | W1 x [kpc] | "
          "W1 vz [km/s] | W1 [Fe/H] [dex] | W1 age [Gyr] |")
    print("|---" * 14 + "|")
    for row in metrics:
        print(f"| {row['galaxy_id']} | {'yes' if row['held_out'] else 'no'} | "
              f"{np.log10(row['M_stars'].value):.2f} | {row['linear_mmd']:.3g} "
              f"({row['linear_mmd_rank']}) | {row['kernel_mmd_p']:.3f} | "
              f"{row['auc']:.3f} ± {row['auc_err']:.3f} | {row['kl']:.3f} ± {row['kl_err']:.3f} | "
              f"{row['kl_position']:.3f} | {row['kl_velocity_given_position']:.3f} | "
              f"{row['kl_chemistry_age_given_phase_space']:.3f} | {row['w1_x'].value:.3f} | "
              f"{row['w1_vz'].value:.2f} | {row['w1_feh'].value:.3f} | "
              f"{row['w1_age'].value:.3f} |")


if __name__ == "__main__":
    main()

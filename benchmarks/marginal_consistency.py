"""Do the position-marginal flow and the full eDF put the same mass inside each radius?

`to_agama_density` hands Agama M_stars times the position-marginal flow; `to_agama_particles` and
`GalaxyModel.sample` draw from the full eDF. Both should be the same galaxy. For a few galaxies of
the model's suite this prints M(<r) / M_stars at r = 0.5-20 kpc

* of the position marginal, by quadrature of `to_agama_density` (as in docs/figures/make_agama.py),
* of stars drawn from the full eDF (binomial standard error),
* of stars drawn from the exact synthetic truth,

and the largest |marginal / eDF - 1| over 1-10 kpc. No Agama needed::

    python benchmarks/marginal_consistency.py                 # the shipped model
    python benchmarks/marginal_consistency.py --model runs/candidate.h5 --n-stars 200000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis.agama import to_agama_density
from astroflow_gal.inputs import ExtrapolationWarning

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "figures"))
from make_agama import analogue, enclosed_mass_of_density  # noqa: E402

RADII = np.array([0.5, 1.0, 2.0, 5.0, 10.0, 20.0])


def enclosed_fraction(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of the stars inside each of RADII [kpc] and its binomial standard error."""
    r = np.linalg.norm(positions, axis=1)
    f = (r[:, None] < RADII[None, :]).mean(axis=0)
    return f, np.sqrt(f * (1 - f) / r.size)


def galaxies(model: GalaxyModel, suite: GalaxySuite, n_extra: int) -> list[str]:
    """The Milky-Way analogue (training galaxy nearest 5e10 Msun), the held-out galaxies and
    ``n_extra`` training galaxies spread in mass."""
    train = [g for g in model.meta.get("train_ids", suite.ids) if g in suite.ids]
    mass = {g: suite[g].conditions["M_stars"].to_value(u.Msun) for g in train}
    by_mass = sorted(train, key=mass.get)
    extra = [by_mass[int(k)] for k in np.linspace(0, len(by_mass) - 1, n_extra)]
    return list(dict.fromkeys([analogue(model)[0], *model.meta.get("holdout", []), *extra]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--n-stars", type=int, default=100_000, help="eDF and truth stars per galaxy")
    p.add_argument("--n-extra", type=int, default=4, help="training galaxies spread in mass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    print(f"model: {model.meta.get('name')}; radii {RADII.tolist()} kpc; "
          f"{args.n_stars} stars per galaxy", flush=True)
    rows = []
    for k, gid in enumerate(galaxies(model, suite, args.n_extra)):
        t0 = time.perf_counter()
        cond = dict(suite[gid].conditions)
        m_stars = cond["M_stars"].to_value(u.Msun)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            rho = to_agama_density(model, cond)
            m_marg, _ = enclosed_mass_of_density(rho, RADII)
            stars = model.sample(args.n_stars, cond, seed=k, progress=False)
        f_marg = m_marg / m_stars
        xyz = np.column_stack([stars[c].to_value(u.kpc) for c in ("x", "y", "z")])
        f_edf, e_edf = enclosed_fraction(xyz)
        f_true, e_true = enclosed_fraction(suite.truth.sample_arrays(args.n_stars, gid, 100 + k)
                                           [:, :3])
        band = (RADII >= 1) & (RADII <= 10)
        row = {
            "galaxy": gid, "M_stars": m_stars, "held_out": gid in model.meta.get("holdout", []),
            "marginal": f_marg.tolist(), "edf": f_edf.tolist(), "edf_error": e_edf.tolist(),
            "truth": f_true.tolist(), "truth_error": e_true.tolist(),
            "max_dev_marginal_vs_edf_1_10kpc": float(np.max(np.abs(f_marg / f_edf - 1)[band])),
            "max_dev_edf_vs_truth_1_10kpc": float(np.max(np.abs(f_edf / f_true - 1)[band])),
            "max_dev_marginal_vs_truth_1_10kpc": float(np.max(np.abs(f_marg / f_true - 1)[band])),
        }
        rows.append(row)
        print(f"{gid} ({m_stars:.2e} Msun{', held out' if row['held_out'] else ''}, "
              f"{time.perf_counter() - t0:.0f} s)")
        print("  M(<r)/M_stars  marginal " + " ".join(f"{v:.4f}" for v in f_marg))
        print("                 eDF      " + " ".join(f"{v:.4f}" for v in f_edf))
        print("                 truth    " + " ".join(f"{v:.4f}" for v in f_true))
        print(f"  max |ratio - 1| at 1-10 kpc: marginal/eDF "
              f"{row['max_dev_marginal_vs_edf_1_10kpc']:.3f}, eDF/truth "
              f"{row['max_dev_edf_vs_truth_1_10kpc']:.3f}, marginal/truth "
              f"{row['max_dev_marginal_vs_truth_1_10kpc']:.3f}", flush=True)
    med = {key: float(np.median([r[key] for r in rows]))
           for key in rows[0] if key.startswith("max_")}
    print("median over galaxies:", json.dumps({k: round(v, 4) for k, v in med.items()}))
    if args.json:
        Path(args.json).write_text(json.dumps({"radii_kpc": RADII.tolist(), "galaxies": rows,
                                               "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

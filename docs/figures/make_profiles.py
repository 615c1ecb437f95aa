"""Profiles of the shipped model against the exact synthetic truth, for docs/profiles.md.

For two training galaxies of the suite the shipped model was trained on (a Milky-Way analogue, the
training galaxy nearest 5e10 Msun, and a dwarf, the one nearest 10^8.5 Msun), at their conditions:

1. ``n`` stars drawn from the model, binned with ``analysis.profiles`` in 10 radial bins from 0.5 to
   3 disc scale lengths (all heights; bootstrap errors), against the exact bin averages of the truth
   (``data.synthetic_moments.truth_profiles``); the same number of stars drawn from the truth and
   binned the same way shows the sampling noise alone;
2. ``analysis.edf_moments`` in the mid-plane at 0.5 ... 3 disc scale lengths against the truth's
   exact point moments, with the densities of the position-marginal flow (``rho``) and of the eDF
   integrated over velocity, chemistry and age (``rho_edf``).

Writes docs/profiles_table.md (included by docs/profiles.md) and
docs/figures/profiles_model_vs_truth.png. One thread, about three minutes:

    python docs/figures/make_profiles.py [--n-stars 200000] [--n-bootstrap 50]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import torch

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis import edf_moments, profiles
from astroflow_gal.analysis.plots import _pyplot
from astroflow_gal.data.synthetic_moments import truth_profiles, truth_velocity_moments
from astroflow_gal.io import atomic_path

HERE = Path(__file__).resolve().parent
QUANTITIES = ("Sigma", "v_phi", "sigma_R", "sigma_phi", "sigma_z")
LABELS = {"Sigma": "Σ(R)", "v_phi": "v_φ", "sigma_R": "σ_R", "sigma_phi": "σ_φ",
          "sigma_z": "σ_z", "rho": "ρ (marginal flow)", "rho_edf": "ρ (∫ f dw)"}
TARGETS = {"Milky-Way analogue": 10.0**10.7, "dwarf": 10.0**8.5}


def pick(truth, ids, mass):
    return min(ids, key=lambda g: abs(truth[g].log_mstar - math.log10(mass)))


def binned(model, suite, gid, n, n_boot):
    gal = suite.truth[gid]
    cond = dict(suite[gid].conditions)
    edges = np.linspace(0.5, 3.0, 11) * gal.disc_scale_length
    stars = model.sample(n, cond, seed=1)
    prof = profiles(stars, bins=edges * u.kpc, n_bootstrap=n_boot, seed=2)
    exact = truth_profiles(gal, edges)
    ref_stars = suite.truth.sample(n, gid, seed=3)
    ref = profiles(ref_stars, bins=edges * u.kpc, mass=gal.stellar_mass / n,
                   n_bootstrap=0)
    return prof, exact, ref


def midplane(model, suite, gid, n_samples):
    gal = suite.truth[gid]
    cond = dict(suite[gid].conditions)
    R = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]) * gal.disc_scale_length
    pos = np.stack([R, np.zeros_like(R), np.zeros_like(R)], axis=1)
    ds = edf_moments(model, pos, cond, n_samples=n_samples, n_pilot=20_000, seed=4)
    return ds, truth_velocity_moments(gal, pos)


def pct(a, b):
    return 100.0 * (a - b) / b


def table_binned(results) -> list[str]:
    lines = [
        "| galaxy | quantity | median abs. difference | largest abs. difference | "
        "mean difference | model's bootstrap error (median) | truth sample, same size: "
        "median abs. difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, (gid, prof, exact, ref) in results.items():
        for q in QUANTITIES:
            d = pct(prof[q].values, exact[q].values)
            e = 100.0 * prof[f"{q}_err"].values / np.abs(exact[q].values)
            r = pct(ref[q].values, exact[q].values)
            lines.append(
                f"| {label} ({gid}) | {LABELS[q]} | {np.median(np.abs(d)):.1f} % | "
                f"{np.max(np.abs(d)):.1f} % | {np.mean(d):+.1f} % | {np.median(e):.1f} % | "
                f"{np.median(np.abs(r)):.1f} % |"
            )
    return lines


def table_midplane(results) -> list[str]:
    names = ("v_phi", "sigma_R", "sigma_phi", "sigma_z", "rho", "rho_edf")
    lines = ["| galaxy | R / R_d | " + " | ".join(LABELS[n] for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for label, (gid, ds, exact) in results.items():
        rd = ds["R"].values / ds["R"].values[1]
        for p in range(ds.sizes["point"]):
            cells = []
            for n in names:
                truth_value = exact["rho"].values[p] if n.startswith("rho") else \
                    exact[n].values[p]
                d = pct(ds[n].values[p], truth_value)
                if f"{n}_err" in ds:
                    e = 100.0 * ds[f"{n}_err"].values[p] / abs(truth_value)
                    cells.append(f"{d:+.1f} ± {e:.1f}")
                else:
                    cells.append(f"{d:+.1f}")
            lines.append(f"| {label} ({gid}) | {rd[p]:.1f} | " + " | ".join(cells) + " |")
    return lines


def figure(results, path):
    plt = _pyplot()
    fig, axes = plt.subplots(len(results), 3, figsize=(12, 3.6 * len(results)))
    axes = np.atleast_2d(axes)
    for row, (label, (gid, prof, exact, _)) in zip(axes, results.items(), strict=True):
        R = prof["R"].values
        ax = row[0]
        ax.errorbar(R, prof["Sigma"], prof["Sigma_err"], fmt="o", ms=3, color="C0",
                    label="model samples")
        ax.plot(R, exact["Sigma"], "-", color="k", label="exact truth")
        ax.set_yscale("log")
        ax.set_ylabel(r"$\Sigma$ [M$_\odot$ kpc$^{-2}$]")
        ax.set_title(f"{label} ({gid})", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
        ax = row[1]
        ax.errorbar(R, prof["v_phi"], prof["v_phi_err"], fmt="o", ms=3, color="C0")
        ax.plot(R, exact["v_phi"], "-", color="k")
        ax.set_ylabel(r"$\langle v_\phi \rangle$ [km/s]")
        ax = row[2]
        for name, colour, tex in (("sigma_R", "C3", r"$\sigma_R$"),
                                  ("sigma_phi", "C2", r"$\sigma_\phi$"),
                                  ("sigma_z", "C0", r"$\sigma_z$")):
            ax.errorbar(R, prof[name], prof[f"{name}_err"], fmt="o", ms=3, color=colour,
                        label=tex)
            ax.plot(R, exact[name], "-", color=colour, lw=1)
        ax.set_ylabel("dispersion [km/s]")
        ax.legend(fontsize=8, frameon=False)
        for ax in row:
            ax.set_xlabel(r"$R$ [kpc]")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-stars", type=int, default=200_000)
    parser.add_argument("--n-bootstrap", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=4096,
                        help="importance draws per mid-plane position")
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--table", type=Path, default=HERE.parent / "profiles_table.md")
    parser.add_argument("--figure", type=Path, default=HERE / "profiles_model_vs_truth.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    train = [g for g in model.meta["train_ids"] if g in suite.truth]
    binned_results, mid_results = {}, {}
    for label, mass in TARGETS.items():
        gid = pick(suite.truth, train, mass)
        prof, exact, ref = binned(model, suite, gid, args.n_stars, args.n_bootstrap)
        binned_results[label] = (gid, prof, exact, ref)
        ds, exact_pt = midplane(model, suite, gid, args.n_samples)
        mid_results[label] = (gid, ds, exact_pt)
        print(f"{label}: {gid} done at {time.perf_counter() - start:.0f} s", flush=True)
    figure(binned_results, args.figure)
    seconds = time.perf_counter() - start
    galaxies = "; ".join(
        f"{label}: {gid}, M_stars = {suite.truth[gid].stellar_mass:.3g} Msun, "
        f"R_d = {suite.truth[gid].disc_scale_length:.2f} kpc"
        for label, (gid, *_rest) in binned_results.items()
    )
    text = [
        f"Model: {model.meta.get('name', 'unnamed')}. Galaxies ({galaxies}).",
        "",
        f"Binned profiles, all heights, 10 bins from 0.5 to 3 R_d: {args.n_stars:,} stars from "
        f"the model (bootstrap: {args.n_bootstrap} resamplings) against the exact bin averages "
        "of the truth; differences (model - truth) / truth over the 10 bins.",
        "",
        *table_binned(binned_results),
        "",
        f"Mid-plane (z = 0) moments from the eDF (`edf_moments`, {args.n_samples} importance "
        "draws per position) against the truth's exact point moments: (model - truth) / truth "
        "in %, ± the integration error. ρ (marginal flow) is M_stars times the position-marginal "
        "flow; ρ (∫ f dw) is the full eDF integrated over velocity, chemistry and age.",
        "",
        *table_midplane(mid_results),
        "",
        f"Made by `python docs/figures/make_profiles.py` in {seconds:.0f} s (one thread).",
        "",
    ]
    with atomic_path(args.table) as tmp:
        tmp.write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main()

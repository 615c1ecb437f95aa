"""The lowest KL(truth || model) a model of p(stars | conditions) can reach on the synthetic suite.

Every synthetic galaxy has hidden per-galaxy scatter about the scaling relations (size, rotation
speed, thin- and thick-disc weights, flattening, formation time, age width, metallicity offset;
``data/synthetic_relations.py``). The four conditions (M_stars, tau50, tau10, Z_av) pin down only
part of it: size, rotation speed and flattening do not enter them at all. So for a held-out
galaxy the best a conditional model can do is the population's eDF at its conditions, the
mixture of the eDFs of all galaxies that share them, and KL(galaxy || that mixture) is a floor no
model, however large or long trained, gets below.

For each chosen galaxy of the model's suite this script draws ``--candidates`` galaxies of the
same stellar mass with fresh scatter, computes their conditions from ``--condition-stars`` stars
each (as the suite does), keeps the ``K`` whose (tau50, tau10, log Z_av) lie nearest the galaxy's
own (distances in units of the suite's spread of each), and estimates KL(galaxy || mixture of the
K exact eDFs) with fresh stars of the galaxy. Smaller K conditions more tightly but represents
the mixture by fewer galaxies (a single neighbour, K = 1, is far from the mixture); the table
gives several. With ``--profiles`` it also bins stars of the K = ``--profile-k`` mixture like the
model card's profiles (10 bins from 0.5 to 3 disc scale lengths) against the galaxy's exact truth:
the profile differences that the best conditional model would show. With ``--split`` it splits
the K = ``--profile-k`` floor by factor with the chain rule, like the model card's split of the
model's KL (the mixture's position and phase-space marginals are the mixtures of the members'
exact marginals): KL = KL(x) + KL(v | x) + KL(chemistry, age | x, v)::

    python benchmarks/kl_floor.py [model.h5] [--candidates 3000] [--k 10 30 100] [--profiles]
        [--split]
"""

from __future__ import annotations

import argparse
import time

import astropy.units as u
import numpy as np
from scipy.special import logsumexp

from astroflow_gal import GalaxyModel, GalaxySuite
from astroflow_gal.analysis import profiles
from astroflow_gal.data import schema
from astroflow_gal.data.conditions import compute_conditions
from astroflow_gal.data.synthetic import SyntheticTruth, _table
from astroflow_gal.data.synthetic_moments import truth_profiles
from astroflow_gal.data.synthetic_relations import draw_scatter, galaxy_from_mass

AGE, Z = schema.STAR_NAMES.index("age"), schema.STAR_NAMES.index("Z")


def condition_vector(conditions: dict) -> np.ndarray:
    """(tau50 [Gyr], tau10 [Gyr], log10 Z_av) of a conditions dict."""
    return np.array([conditions["tau50"].to_value(u.Gyr), conditions["tau10"].to_value(u.Gyr),
                     np.log10(conditions["Z_av"].to_value(u.one))])


def candidates_at_mass(log_m: float, n: int, n_stars: int, truncation, seed: int):
    """``n`` galaxies of stellar mass 10**log_m with fresh scatter, and their condition vectors."""
    rng = np.random.default_rng(seed)
    galaxies, vectors = [], []
    total = 10.0**log_m * u.Msun
    for j in range(n):
        gal = galaxy_from_mass(f"cand{j:05d}", log_m, draw_scatter(rng), n_stars, truncation)
        values = gal.sample(n_stars, rng)
        cond = compute_conditions({"age": values[:, AGE] * u.Gyr, "Z": values[:, Z]},
                                  total_mass=total)
        galaxies.append(gal)
        vectors.append(condition_vector(cond))
    return galaxies, np.array(vectors)


QUANTITIES = ("Sigma", "v_phi", "sigma_R", "sigma_phi", "sigma_z")


def mixture_profiles(galaxy, members, n_stars: int, seed: int) -> dict[str, np.ndarray]:
    """Binned profiles of an equal-weight mixture of ``members`` (same stellar mass as
    ``galaxy``) against ``galaxy``'s exact profiles: (mixture - truth) / truth in % per bin."""
    rng = np.random.default_rng(seed)
    per = n_stars // len(members)
    values = np.concatenate([m.sample(per, rng) for m in members])
    edges = np.linspace(0.5, 3.0, 11) * galaxy.disc_scale_length
    prof = profiles(_table(values), bins=edges * u.kpc, mass=galaxy.stellar_mass / len(values),
                    n_bootstrap=0)
    exact = truth_profiles(galaxy, edges)
    return {q: 100.0 * (prof[q].values - exact[q].values) / exact[q].values for q in QUANTITIES}


def factor_floor(suite, gid, stars, log_p, mixture: SyntheticTruth, members) -> list[float]:
    """KL(galaxy || mixture of ``members``) per star and its split by factor with the chain rule:
    [total, position, velocity given position, chemistry and age given phase space]."""
    kls = []
    for names in (schema.STAR_NAMES, schema.PHASE_SPACE_NAMES, schema.POSITION_NAMES):
        values = stars[:, : len(names)]
        own = log_p if len(names) == len(schema.STAR_NAMES) else suite.truth.marginal_log_prob(
            values, gid, names)
        if len(names) == len(schema.STAR_NAMES):
            log_q = np.stack([mixture.log_prob_arrays(values, m) for m in members])
        else:
            log_q = np.stack([mixture.marginal_log_prob(values, m, names) for m in members])
        kls.append(float(np.mean(own - (logsumexp(log_q, axis=0) - np.log(len(members))))))
    total, phase, position = kls
    return [total, position, phase - position, total - phase]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    p.add_argument("--galaxies", nargs="*", help="galaxy ids (default: the held-out galaxies)")
    p.add_argument("--candidates", type=int, default=3000)
    p.add_argument("--condition-stars", type=int, default=2000)
    p.add_argument("--k", type=int, nargs="+", default=[10, 30, 100])
    p.add_argument("--n-stars", type=int, default=5000, help="stars of the galaxy for the KL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profiles", action="store_true", help="profiles of the mixture vs truth")
    p.add_argument("--profile-k", type=int, default=100)
    p.add_argument("--profile-stars", type=int, default=200_000)
    p.add_argument("--split", action="store_true",
                   help="split the K = --profile-k floor by factor")
    args = p.parse_args()

    model = GalaxyModel.load(args.model) if args.model else GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    ids = args.galaxies or list(model.meta["holdout"])
    train = [g for g in model.meta.get("train_ids", suite.ids) if g in suite.ids]
    spread = np.std([condition_vector(dict(suite[g].conditions)) for g in train], axis=0)
    truncation = suite.meta["parameters"].get("spheroid_truncation")
    print(f"model: {model.meta.get('name')}; {args.candidates} candidates per galaxy, conditions "
          f"from {args.condition_stars} stars each; condition spreads (tau50, tau10, log Z_av) "
          f"{np.round(spread, 3).tolist()}", flush=True)
    print("\n| galaxy | M_stars [Msun] | " + " | ".join(
        f"floor, K = {k} [nats/star] | neighbourhood radius, K = {k}" for k in args.k) + " |")
    print("|---|---|" + "---|---|" * len(args.k))
    floors = {k: [] for k in args.k}
    profile_rows, split_rows = [], []
    for n, gid in enumerate(ids):
        t0 = time.perf_counter()
        params = suite.truth.params(gid)
        target = condition_vector(dict(suite[gid].conditions))
        cands, vectors = candidates_at_mass(params.log_mstar, args.candidates,
                                            args.condition_stars, truncation, args.seed + n)
        dist = np.linalg.norm((vectors - target) / spread, axis=1)
        order = np.argsort(dist)
        stars = suite.truth.sample_arrays(args.n_stars, gid, 10_000 + n)
        log_p = suite.truth.log_prob_arrays(stars, gid)
        near = order[: max(args.k)]
        truth = SyntheticTruth([cands[j] for j in near])
        log_q = np.stack([truth.log_prob_arrays(stars, cands[j].id) for j in near])
        cells = []
        for k in args.k:
            log_mix = logsumexp(log_q[:k], axis=0) - np.log(k)
            diff = log_p - log_mix
            kl, err = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))
            floors[k].append(kl)
            cells += [f"{kl:.3f} +- {err:.3f}", f"{dist[order[k - 1]]:.2f}"]
        print(f"| {gid} | {params.stellar_mass:.2g} | " + " | ".join(cells) + " |", flush=True)
        if args.split:
            split_rows.append((gid, factor_floor(suite, gid, stars, log_p, truth,
                                                 [cands[j].id for j in near[: args.profile_k]])))
        if args.profiles:
            profile_rows.append((gid, mixture_profiles(params, [cands[j] for j in order[
                : args.profile_k]], args.profile_stars, args.seed + 100 + n)))
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("| mean | | " + " | ".join(f"{np.mean(floors[k]):.3f} | " for k in args.k) + "")
    if split_rows:
        print(f"\nThe K = {args.profile_k} floor split by factor (nats/star):\n")
        print("| galaxy | total | position | velocity given position | chemistry and age given "
              "phase space |")
        print("|---|---|---|---|---|")
        for gid, parts in split_rows:
            print(f"| {gid} | " + " | ".join(f"{v:.3f}" for v in parts) + " |")
        means = np.mean([parts for _, parts in split_rows], axis=0)
        print("| mean | " + " | ".join(f"{v:.3f}" for v in means) + " |")
    if profile_rows:
        print(f"\nProfiles of the K = {args.profile_k} mixture against each galaxy's exact truth, "
              "10 bins from 0.5 to 3 R_d: mean (and largest absolute) difference, %\n")
        print("| galaxy | " + " | ".join(QUANTITIES) + " |")
        print("|---|" + "---|" * len(QUANTITIES))
        for gid, diffs in profile_rows:
            print(f"| {gid} | " + " | ".join(
                f"{np.mean(diffs[q]):+.1f} ({np.max(np.abs(diffs[q])):.1f})" for q in QUANTITIES)
                + " |")


if __name__ == "__main__":
    main()

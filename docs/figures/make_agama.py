"""Agama hand-off of the shipped model's Milky-Way analogue: potentials, masses, CBE ranking.

Run from the repository root (needs a hand-built Agama; a few minutes on one thread):

    python docs/figures/make_agama.py

The analogue is the model's training galaxy nearest in stellar mass to 5e10 Msun (inside the
training range); the v_circ check is repeated at the nominal Milky-Way conditions of the docs
(Z_av = 0.015, just above the largest training value). Writes docs/figures/agama_vcirc.png (v_circ
of the CylSpline potentials built from the position-marginal density and from particles of the full
eDF, and their ratio) and docs/figures/agama_numbers.json (every number quoted in docs/agama.md):
potentials and masses, the population DF's integration error, and CBE rankings of candidate
potentials for the analogue, against the exact synthetic eDF of the same galaxy.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import astropy.units as u  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from astroflow_gal.analysis.agama import (  # noqa: E402
    compare_potentials,
    import_agama,
    stellar_potential,
    to_agama_density,
    to_agama_df,
    to_agama_particles,
)
from astroflow_gal.analysis.cbe import rank_potentials  # noqa: E402
from astroflow_gal.io import atomic_path  # noqa: E402
from astroflow_gal.model import GalaxyModel  # noqa: E402

HERE = Path(__file__).resolve().parent
#: The nominal Milky-Way conditions used across the docs; Z_av = 0.015 lies just above the
#: suite's largest training value, so these conditions are a (mild) extrapolation.
NOMINAL = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)
N_PARTICLES = int(os.environ.get("AGAMA_N_PARTICLES", 200_000))
SEED = 1
RADII_ENCLOSED = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


def enclosed_mass_of_density(rho, radii, r_out=300.0):
    """M(<r) of a density callable by quadrature in (ln r, cos theta, phi).

    Trapezoid in ln r (160 nodes, 1e-3 to r_out kpc), Gauss-Legendre in cos theta (96 nodes: the
    disc is thin), midpoints in phi (16: the learned density is not exactly axisymmetric). Doubling
    the theta or phi nodes changed M(<20 kpc) and the total by < 0.1 % when this was set up.
    """
    n_r, n_t, n_p = 160, 96, 16
    ln_r = np.linspace(np.log(1e-3), np.log(r_out), n_r)
    d_ln_r = ln_r[1] - ln_r[0]
    mu, w_mu = np.polynomial.legendre.leggauss(n_t)
    phi = (np.arange(n_p) + 0.5) * 2 * np.pi / n_p
    r = np.exp(ln_r)
    rr, mm, pp = np.meshgrid(r, mu, phi, indexing="ij")
    s = np.sqrt(1 - mm**2)
    xyz = np.stack([rr * s * np.cos(pp), rr * s * np.sin(pp), rr * mm], -1).reshape(-1, 3)
    dens = rho(xyz).reshape(n_r, n_t, n_p)
    shell = (dens * w_mu[None, :, None]).sum(axis=(1, 2)) * (2 * np.pi / n_p) * r**3  # dM/dln r
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (shell[1:] + shell[:-1]) * d_ln_r)])
    return np.interp(np.log(radii), ln_r, cum), cum[-1]


class Scaled:
    """Potential with its mass scaled by k and its size by s: a(x) = k a0(x/s) / s^2."""

    def __init__(self, pot, k=1.0, s=1.0):
        self.pot, self.k, self.s = pot, k, s

    def force(self, x):
        return self.k * self.pot.force(np.asarray(x) / self.s) / self.s**2


def analogue(model) -> tuple[str, dict]:
    """The Milky-Way analogue of the model: its training galaxy nearest in M_stars to 5e10 Msun
    (id and conditions), inside the training range by construction."""
    from astroflow_gal import GalaxySuite

    meta = model.meta
    suite = GalaxySuite.synthetic_of(meta)
    train = [g for g in meta.get("train_ids", suite.ids) if g in suite.ids]
    gid = min(train, key=lambda g: abs(np.log10(
        suite[g].conditions["M_stars"].to_value(u.Msun) / NOMINAL["M_stars"].to_value(u.Msun))))
    return gid, dict(suite[gid].conditions)


def vcirc_routes(agama, model, conditions) -> tuple:
    """CylSpline potentials from the tabulated density and from particles of the full eDF."""
    pot_d, info_d = stellar_potential(model, conditions, "cylspline", seed=SEED,
                                      return_info=True)
    t0 = time.perf_counter()
    xv, masses = to_agama_particles(model, N_PARTICLES, conditions, seed=SEED)
    t_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    pot_p = agama.Potential(type="CylSpline", particles=(xv[:, :3], masses), symmetry="a",
                            mmax=0, gridSizeR=40, gridSizez=40, **info_d["grid"])
    return pot_d, info_d, pot_p, xv, t_sample, time.perf_counter() - t0


def band_deviation(ratio, radii) -> dict:
    """Largest |ratio - 1| over 2-20 kpc, and the range of the ratio there."""
    band = (radii >= 2) & (radii <= 20)
    return {"max_abs_dev": float(np.max(np.abs(ratio[band] - 1))),
            "min": float(ratio[band].min()), "max": float(ratio[band].max())}


def cbe_floor(model, agama, scaled) -> dict:
    """CBE residuals of the synthetic truth (exact gradients) and of the model, same potentials."""
    from astroflow_gal import GalaxySuite

    suite = GalaxySuite.synthetic_of(model.meta)
    gid, conds = analogue(model)
    truth = suite.truth
    params = truth.params(gid)
    m_gal = conds["M_stars"].to_value(u.Msun)
    parts = truth.sample_arrays(50_000, gid, seed=SEED)
    masses = np.full(parts.shape[0], m_gal / parts.shape[0])
    pot = agama.Potential(type="CylSpline", particles=(parts[:, :3], masses), symmetry="a",
                          mmax=0, gridSizeR=30, gridSizez=30)
    v0 = float(params.v_circ)
    candidates = {
        "stars (CylSpline of truth particles)": pot,
        "stars, mass x2": scaled(pot, k=2.0),
        "stars + log halo (v0 200 km/s, rc 5 kpc)": agama.Potential(
            pot, agama.Potential(type="Logarithmic", v0=200.0, scaleRadius=5.0)),
        f"flat rotation curve, v0 {v0:.0f} km/s (the galaxy's v_circ parameter), rc 0.5 kpc":
            agama.Potential(type="Logarithmic", v0=v0, scaleRadius=0.5),
    }
    stars = truth.sample_arrays(2000, gid, seed=SEED + 5)
    grad = truth.grad_log_prob_arrays(stars, gid)
    out = {"galaxy": gid, "conditions": {k: str(v) for k, v in conds.items()}, "n_stars": 2000,
           "truth": {}, "model_edf": {}, "model_phase_space": {}}
    from astroflow_gal.analysis.agama import accelerations

    for name, p in candidates.items():
        acc = accelerations(p, stars[:, :3])
        stream = np.einsum("ij,ij->i", stars[:, 3:6], grad[:, :3])
        force = np.einsum("ij,ij->i", acc, grad[:, 3:6])
        r = (stream + force) / (np.abs(stream) + np.abs(force))
        out["truth"][name] = float(np.mean(r**2))
    for df, key in (("edf", "model_edf"), ("phase_space", "model_phase_space")):
        ds = rank_potentials(model, conds, candidates, n=2000, seed=SEED + 5, df=df)
        for name, value in zip(ds["potential"].values, ds["mean_sq_residual"].values,
                               strict=True):
            out[key][str(name)] = float(value)
    return out


def main() -> int:
    torch.set_num_threads(1)
    agama = import_agama()
    model = GalaxyModel.pretrained()
    gid, galaxy = analogue(model)
    m_stars = galaxy["M_stars"].to_value(u.Msun)
    numbers: dict = {"model": model.meta.get("name"), "model_id": model.meta.get("model_id"),
                     "galaxy": gid, "conditions": {k: str(v) for k, v in galaxy.items()},
                     "n_particles": N_PARTICLES}

    # 1. potentials from the density (tabulated first) and from particles of the full eDF
    pot_d, info_d, pot_p, xv, t_sample, t_build = vcirc_routes(agama, model, galaxy)
    numbers["density_route"] = {k: info_d[k] for k in
                                ("build_seconds", "density_points", "total_mass", "grid")}
    numbers["particle_route"] = {"sample_seconds": t_sample, "build_seconds": t_build}
    pot_m, info_m = stellar_potential(model, galaxy, "multipole", seed=SEED, return_info=True,
                                      grid=info_d["grid"])
    numbers["multipole_route"] = {k: info_m[k] for k in
                                  ("build_seconds", "density_points", "total_mass")}

    radii = np.geomspace(0.3, 40, 60)
    ds = compare_potentials(
        {"density (CylSpline)": pot_d, "particles (CylSpline)": pot_p,
         "density (Multipole)": pot_m},
        radii, reference="particles (CylSpline)",
    )
    band = (radii >= 2) & (radii <= 20)
    ratio = ds["v_circ_ratio"].sel(potential="density (CylSpline)").values
    numbers["vcirc_density_over_particles_2_20kpc"] = band_deviation(ratio, radii)
    ratio_m = ds["v_circ_ratio"].sel(potential="density (Multipole)").values
    numbers["vcirc_multipole_over_particles_2_20kpc_max_abs_dev"] = float(
        np.max(np.abs(ratio_m[band] - 1)))
    inner = radii < 2
    numbers["vcirc_density_over_particles_below_2kpc_max_abs_dev"] = float(
        np.max(np.abs(ratio[inner] - 1)))

    # 1b. the same check at the nominal conditions, just outside the training range
    pot_dn, info_dn, pot_pn, _, _, _ = vcirc_routes(agama, model, NOMINAL)
    ds_n = compare_potentials({"density": pot_dn, "particles": pot_pn}, radii,
                              reference="particles")
    numbers["nominal"] = {
        "conditions": {k: str(v) for k, v in NOMINAL.items()},
        "vcirc_density_over_particles_2_20kpc": band_deviation(
            ds_n["v_circ_ratio"].sel(potential="density").values, radii),
        "total_mass_over_m_stars": info_dn["total_mass"] / NOMINAL["M_stars"].to_value(u.Msun),
    }

    # 2. mass: the marginal density's enclosed mass against the full eDF's particles
    rho = to_agama_density(model, galaxy)
    m_enc, m_total = enclosed_mass_of_density(rho, np.array(RADII_ENCLOSED))
    r_part = np.linalg.norm(xv[:, :3], axis=1)
    enclosed = {}
    for r, m_rho in zip(RADII_ENCLOSED, m_enc, strict=True):
        k = int(np.sum(r_part < r))
        m_p = k * m_stars / N_PARTICLES
        enclosed[f"{r:g}"] = {"marginal": float(m_rho), "edf_samples": m_p,
                              "edf_samples_error": float(np.sqrt(k) * m_stars / N_PARTICLES),
                              "ratio": float(m_rho / m_p)}
    numbers["enclosed_mass"] = enclosed
    numbers["total_mass_quadrature"] = float(m_total)
    numbers["total_mass_over_m_stars"] = {"quadrature": float(m_total / m_stars),
                                          "agama_tabulated": info_d["total_mass"] / m_stars}

    # 3. a population DF: importance-sampling error against many more nodes
    select = {"age": (0 * u.Gyr, 4 * u.Gyr)}
    pts = xv[:20]
    f_small = to_agama_df(model, galaxy, select, n_nodes=256, seed=SEED)
    t0 = time.perf_counter()
    v_small, e_small = f_small.with_error(pts)
    t_small = time.perf_counter() - t0
    f_big = to_agama_df(model, galaxy, select, n_nodes=4096, seed=SEED + 1)
    v_big, e_big = f_big.with_error(pts)
    rel = np.abs(v_small / v_big - 1)
    numbers["population_df"] = {
        "select": "age 0-4 Gyr", "population_fraction": f_small.population_fraction,
        "n_nodes": 256, "seconds_per_point": t_small / len(pts),
        "median_rel_diff_vs_4096_nodes": float(np.median(rel)),
        "max_rel_diff_vs_4096_nodes": float(np.max(rel)),
        "median_reported_rel_error": float(np.median(e_small / v_small)),
        "median_pull": float(np.median(np.abs(v_small - v_big) / np.hypot(e_small, e_big))),
    }

    # 4. CBE ranking of candidate potentials
    halo = agama.Potential(type="Logarithmic", v0=200.0, scaleRadius=5.0)
    candidates = {
        "stars (CylSpline)": pot_d,
        "stars, mass x0.5": Scaled(pot_d, k=0.5),
        "stars, mass x2": Scaled(pot_d, k=2.0),
        "stars, mass x4": Scaled(pot_d, k=4.0),
        "stars, size x0.5": Scaled(pot_d, s=0.5),
        "stars, size x2": Scaled(pot_d, s=2.0),
        "stars + log halo (v0 200 km/s, rc 5 kpc)": agama.Potential(pot_d, halo),
        "flat rotation curve (v0 210 km/s, rc 0.5 kpc)":
            agama.Potential(type="Logarithmic", v0=210.0, scaleRadius=0.5),
    }
    t0 = time.perf_counter()
    rank = rank_potentials(model, galaxy, candidates, n=2000, seed=SEED)
    numbers["cbe_ranking"] = {
        "seconds": time.perf_counter() - t0, "n_stars": 2000, "df": "phase_space",
        "table": [
            {"potential": str(p), "mean_sq_residual": float(m), "error": float(e),
             "median_abs_residual": float(a)}
            for p, m, e, a in zip(rank["potential"].values, rank["mean_sq_residual"].values,
                                  rank["mean_sq_error"].values,
                                  rank["median_abs_residual"].values, strict=True)
        ],
    }
    rank_e = rank_potentials(model, galaxy, candidates, n=2000, seed=SEED, df="edf")
    numbers["cbe_ranking_edf"] = [
        {"potential": str(p), "mean_sq_residual": float(m), "error": float(e)}
        for p, m, e in zip(rank_e["potential"].values, rank_e["mean_sq_residual"].values,
                           rank_e["mean_sq_error"].values, strict=True)
    ]

    # 5. the floor: the exact synthetic eDF of the training galaxy nearest the analogue, against
    #    the model at that galaxy's conditions, in potentials built from that galaxy's stars
    numbers["cbe_floor"] = cbe_floor(model, agama, Scaled)

    # figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True,
                                  gridspec_kw={"height_ratios": [2.2, 1]})
    styles = {"particles (CylSpline)": ("k", "-"), "density (CylSpline)": ("C0", "--"),
              "density (Multipole)": ("C3", ":")}
    for name, (color, ls) in styles.items():
        ax.plot(radii, ds["v_circ"].sel(potential=name), color=color, ls=ls,
                label=f"{name}")
        axr.plot(radii, ds["v_circ_ratio"].sel(potential=name), color=color, ls=ls)
    ax.set_ylabel(r"$v_\mathrm{circ}$ of the stars [km/s]")
    ax.set_xscale("log")
    ax.legend(frameon=False, fontsize=9)
    ax.set_title(rf"Milky-Way analogue {gid}, $M_\star = {m_stars / 1e10:.2f}"
                 r"\times10^{10}\,M_\odot$", fontsize=10)
    for a in (ax, axr):
        a.axvspan(2, 20, color="0.92", zorder=0)
    axr.axhline(1, color="0.5", lw=0.8)
    axr.set_ylabel("ratio to particles")
    axr.set_xlabel("R [kpc]")
    fig.tight_layout()
    with atomic_path(HERE / "agama_vcirc.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    with atomic_path(HERE / "agama_numbers.json") as tmp:
        Path(tmp).write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    print(json.dumps(numbers, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

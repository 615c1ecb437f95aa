"""Figures and numbers of docs/observe.md: a mock Gaia-like survey and IFU maps of a model.

1. ``n`` stars of a Milky-Way analogue (M_stars = 5e10 Msun, tau50 = 7 Gyr, tau10 = 2 Gyr,
   Z_av = 0.015) drawn from the shipped model, seen from a Sun at R = 8.122 kpc, z = 20.8 pc,
   azimuth 0, moving with the analogue's local mean rotation plus the Schönrich et al. (2010)
   peculiar motion; Gaussian errors (parallax 0.03 mas, proper motions 0.03 mas/yr, radial
   velocity 1 km/s + 0.5 km/s per kpc); parallax S/N >= 5. Sky map coloured by [Fe/H]:
   ``observe_sky.png``.
2. Oort's constants fitted to the stars within 1.5 kpc (no error-free quantity is used but the
   distance): ``4.74 mu_l / cos b = A cos 2l + B + (U sin l - V cos l) / d``, least squares for
   A, B, U, V; compared with the analogue's own local rotation (A - B = v_phi / R for a flat
   rotation curve). Proper motion in l against l: ``observe_oort.png``.
3. IFU maps of the same galaxy at 20 Mpc, inclination 60 deg, position angle 30 deg, systemic
   velocity 1000 km/s, 1 arcsec pixels, 120 arcsec field, 2 arcsec PSF: ``observe_ifu.png``.

Prints the numbers quoted in docs/observe.md. One thread, about a minute:

    python docs/figures/make_observe.py [--n-stars 300000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import astropy.units as u
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from astroflow_gal import GalaxyModel, observe  # noqa: E402

HERE = Path(__file__).resolve().parent
KMS = u.km / u.s
K_MAS = 4.740470463533348  # km/s per (kpc mas/yr)
MW_ANALOGUE = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)


def gaia_like_errors() -> dict:
    return {
        "parallax": 0.03 * u.mas,
        "pm_ra_cosdec": 0.03 * u.mas / u.yr,
        "pm_dec": 0.03 * u.mas / u.yr,
        "radial_velocity": lambda cat: (1.0 + 0.5 * cat["distance"].to_value(u.kpc)) * KMS,
    }


def fit_oort(cat) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares A, B [km/s/kpc], U, V [km/s] and their standard errors."""
    l_rad = cat["l"].to_value(u.rad)
    d = cat["distance"].to_value(u.kpc)
    y = K_MAS * cat["pm_l_cosb"].to_value(u.mas / u.yr) / np.cos(cat["b"].to_value(u.rad))
    design = np.stack([np.cos(2 * l_rad), np.ones_like(l_rad), np.sin(l_rad) / d,
                       -np.cos(l_rad) / d], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    cov = np.linalg.inv(design.T @ design) * resid.var(ddof=4)
    return coef, np.sqrt(np.diag(cov))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-stars", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = GalaxyModel.pretrained()
    stars = model.sample(args.n_stars, MW_ANALOGUE, seed=args.seed)
    t_sample = time.perf_counter() - t0
    sun = observe.SunPosition.co_rotating(stars)
    v_rot = observe.local_mean_rotation(stars, sun.R)
    t1 = time.perf_counter()
    cat = observe.survey(stars, sun, errors=gaia_like_errors(),
                         selection=observe.Selection(min_parallax_over_error=5), seed=1)
    t_survey = time.perf_counter() - t1
    print(f"model: {model.meta.get('name', 'unnamed')}")
    print(f"sampled {len(stars):,} stars in {t_sample:.1f} s; survey in {t_survey:.2f} s")
    print(f"Sun velocity {np.round(sun.velocity.to_value(KMS), 2)} km/s; "
          f"local mean v_phi at R0 = {v_rot:.1f}")
    print(f"catalogue: {len(cat):,} stars with parallax S/N >= 5 "
          f"(mass per star {cat.meta['mass_per_star']['value']:.3g} Msun)")

    fig = observe.plot_sky(cat, color="feh", path=None)
    fig.axes[0].set_title(f"mock survey of the shipped Milky-Way analogue: {len(cat):,} stars "
                          "with parallax S/N ≥ 5", fontsize=10)
    fig.savefig(HERE / "observe_sky.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    near = cat[cat["distance"] < 1.5 * u.kpc]
    coef, err = fit_oort(near)
    # the Sun's motion relative to the mean of the stars near it (what U, V measure)
    gc = observe.galactocentric(stars, sun)
    p = gc.cartesian.xyz.to_value(u.kpc).T
    v = gc.velocity.d_xyz.to_value(KMS).T
    sun_pos = np.array([-sun.R.to_value(u.kpc), 0.0, sun.z.to_value(u.kpc)])
    local = np.linalg.norm(p - sun_pos, axis=1) < 1.5
    relative = sun.velocity.to_value(KMS) - v[local].mean(axis=0)
    sem = v[local].std(axis=0) / np.sqrt(local.sum())
    print(f"Sun's velocity relative to the mean of the {local.sum():,} sampled stars within "
          f"1.5 kpc: U = {relative[0]:.2f} ± {sem[0]:.2f}, V = {relative[1]:.2f} ± {sem[1]:.2f}, "
          f"W = {relative[2]:.2f} ± {sem[2]:.2f} km/s")
    a, b, uu, vv = coef
    print(f"Oort fit to {len(near):,} stars within 1.5 kpc: A = {a:.2f} ± {err[0]:.2f}, "
          f"B = {b:.2f} ± {err[1]:.2f} km/s/kpc; U = {uu:.2f} ± {err[2]:.2f}, "
          f"V = {vv:.2f} ± {err[3]:.2f} km/s")
    print(f"A - B = {a - b:.2f} km/s/kpc; local v_phi / R0 = "
          f"{(v_rot / sun.R).to_value(KMS / u.kpc):.2f} km/s/kpc")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    l_deg = near["l"].to_value(u.deg)
    mu = near["pm_l_cosb"].to_value(u.mas / u.yr)
    ax.scatter(l_deg, mu, s=2, alpha=0.4, color="0.4", rasterized=True, label="stars, d < 1.5 kpc")
    grid = np.linspace(0, 360, 361)
    mean_d = np.median(near["distance"].to_value(u.kpc))
    g = np.radians(grid)
    model_curve = (a * np.cos(2 * g) + b + (uu * np.sin(g) - vv * np.cos(g)) / mean_d) / K_MAS
    ax.plot(grid, model_curve, color="C3",
            label=f"fit: A = {a:.1f}, B = {b:.1f} km/s/kpc (at the median d)")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlim(0, 360)
    ax.set_ylim(np.percentile(mu, [1, 99]))
    ax.set_xlabel("Galactic longitude l [deg]")
    ax.set_ylabel("μ_l cos b [mas/yr]")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(HERE / "observe_oort.png", dpi=110)
    plt.close(fig)

    t2 = time.perf_counter()
    maps = observe.ifu_maps(stars, 20 * u.Mpc, 60 * u.deg, 30 * u.deg, 1000 * KMS,
                            pixel=1 * u.arcsec, fov=120 * u.arcsec, psf_fwhm=2 * u.arcsec)
    t_ifu = time.perf_counter() - t2
    v = maps["v_los"].values - 1000
    good = maps["counts"].values >= 20
    print(f"IFU maps in {t_ifu:.2f} s: {maps.attrs['n_stars_in_field']:,} stars in the field, "
          f"pixel {maps.attrs['pixel_physical']}, max |v_los - v_sys| (pixels with >= 20 stars) "
          f"{np.nanmax(np.abs(v[good])):.0f} km/s; "
          f"median sigma_los there {np.nanmedian(maps['sigma_los'].values[good]):.0f} km/s")
    fig = observe.plot_ifu_maps(maps, min_counts=5)
    fig.savefig(HERE / "observe_ifu.png", dpi=56, bbox_inches="tight")
    plt.close(fig)
    for name in ("observe_sky.png", "observe_oort.png", "observe_ifu.png"):
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

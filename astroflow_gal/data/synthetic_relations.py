"""Scaling relations that turn a stellar mass (plus per-galaxy scatter) into component parameters.

All relations are smooth functions of ``x = log10(M_stars / Msun)`` through the "disciness"
``s(x) = 1 / (1 + exp(-(x - 9) / 0.5))`` (0 for dwarfs, 1 for Milky-Way-mass galaxies); the
numbers are listed in ``docs/synthetic.md``. Per-galaxy scatter (structure, rotation speed,
formation time, age spread, metallicity offset, component weights) is drawn from a seeded
``numpy.random.Generator``, so that tau50, tau10 and Z_av carry information beyond the mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .synthetic_model import T_UNIVERSE, Component, SyntheticGalaxy

__all__ = ["Scatter", "draw_scatter", "disciness", "galaxy_from_mass"]

LOG_MASS_MW = 10.7
"""log10 stellar mass of the reference (Milky-Way-like) galaxy [Msun]."""


def disciness(log_mstar: float) -> float:
    """Smooth transition from dispersion-dominated dwarfs (0) to discs (1) around 10^9 Msun."""
    return 1.0 / (1.0 + math.exp(-(log_mstar - 9.0) / 0.5))


@dataclass(frozen=True)
class Scatter:
    """Per-galaxy deviations from the mean scaling relations.

    Attributes
    ----------
    size : float
        Offset of log10 disc scale length [dex].
    velocity : float
        Offset of log10 rotation speed [dex].
    thin_logit, thick_logit : float
        Offsets of the thin- and thick-disc weight logits.
    flattening : float
        Spheroid axis ratio q.
    formation_shift : float
        Shift of all mean ages [Gyr].
    age_width_factor : float
        Factor on all age widths.
    feh_offset : float
        Offset from the mass-metallicity relation [dex].
    """

    size: float
    velocity: float
    thin_logit: float
    thick_logit: float
    flattening: float
    formation_shift: float
    age_width_factor: float
    feh_offset: float


def draw_scatter(rng: np.random.Generator) -> Scatter:
    """Draw one galaxy's deviations from the scaling relations (fixed order of draws)."""
    return Scatter(
        size=float(rng.normal(0.0, 0.12)),
        velocity=float(rng.normal(0.0, 0.04)),
        thin_logit=float(rng.normal(0.0, 0.4)),
        thick_logit=float(rng.normal(0.0, 0.4)),
        flattening=float(rng.uniform(0.55, 0.95)),
        formation_shift=float(np.clip(rng.normal(0.0, 1.2), -3.0, 3.0)),
        age_width_factor=float(math.exp(np.clip(rng.normal(0.0, 0.25), -0.6, 0.6))),
        feh_offset=float(rng.normal(0.0, 0.1)),
    )


def _weights(x: float, sc: Scatter) -> tuple[float, float, float]:
    logits = np.array(
        [2.0 * (x - 9.6) + sc.thin_logit, 1.0 * (x - 9.2) + sc.thick_logit, 0.0]
    )
    ex = np.exp(logits - logits.max())
    w = ex / ex.sum()
    return float(w[0]), float(w[1]), float(1.0 - w[0] - w[1])


def galaxy_from_mass(
    galaxy_id: str,
    log_mstar: float,
    scatter: Scatter,
    n_stars: int,
    spheroid_truncation: float | None = 30.0,
) -> SyntheticGalaxy:
    """Parameters of a synthetic galaxy of stellar mass ``10**log_mstar`` Msun.

    Parameters
    ----------
    galaxy_id : str
        Id of the galaxy.
    log_mstar : float
        log10 of the stellar mass [Msun].
    scatter : Scatter
        Per-galaxy deviations from the mean relations.
    n_stars : int
        Number of star particles the suite draws for it.
    spheroid_truncation : float or None
        Truncation of the spheroid at ellipsoidal radius ``spheroid_truncation * a``
        (dimensionless multiple of the Hernquist scale); ``None`` keeps the untruncated profile.

    Returns
    -------
    SyntheticGalaxy
    """
    if spheroid_truncation is not None and not spheroid_truncation > 0:
        raise ValueError(f"spheroid_truncation must be positive or None, got {spheroid_truncation}")
    x = float(log_mstar)
    s = disciness(x)
    d = 1.0 - s
    sc = scatter
    # mass-size and Tully-Fisher-like rotation speed
    r_d = 10.0 ** (0.42 + 0.25 * (x - LOG_MASS_MW) + sc.size)  # kpc
    v_c = 10.0 ** (2.33 + 0.26 * (x - LOG_MASS_MW) + sc.velocity)  # km/s
    r_turn = r_d * (0.5 + 1.5 * d)
    # mass-metallicity (Kirby et al. 2013 slope, extended) and component offsets
    feh_gal = -1.69 + 0.30 * (x - 6.0) + sc.feh_offset
    w_thin, w_thick, w_sph = _weights(x, sc)
    shift, wf = sc.formation_shift, sc.age_width_factor

    def age_mean(mu: float) -> float:
        return float(np.clip(mu + shift, 1.0, T_UNIVERSE - 1.0))

    common = {"chem_scale": r_d}
    thin = Component(
        name="thin", kind="disc", weight=w_thin,
        scale_length=r_d, scale_height=0.2 * r_d, flattening=1.0,
        v_rot=0.95 * v_c, r_turn=r_turn,
        sigma_r=v_c * (0.20 + 0.15 * d), sigma_z_ratio=0.55, anisotropy=0.7, sigma_scale=r_d,
        age_mean=age_mean(4.5), age_sigma=3.0 * wf,
        feh_mean=feh_gal + 0.25 * s, feh_age_slope=0.04, feh_gradient=0.3, feh_sigma=0.12,
        ofe_mean=0.03, ofe_age_slope=0.015, ofe_feh_slope=0.15, ofe_sigma=0.05,
        **common,
    )
    thick = Component(
        name="thick", kind="disc", weight=w_thick,
        scale_length=0.8 * r_d, scale_height=0.6 * r_d, flattening=1.0,
        v_rot=0.75 * v_c, r_turn=r_turn,
        sigma_r=v_c * (0.38 + 0.15 * d), sigma_z_ratio=0.65, anisotropy=0.75,
        sigma_scale=0.8 * r_d,
        age_mean=age_mean(9.5), age_sigma=1.5 * wf,
        feh_mean=feh_gal - 0.2 * s, feh_age_slope=0.05, feh_gradient=0.1, feh_sigma=0.18,
        ofe_mean=0.22, ofe_age_slope=0.02, ofe_feh_slope=0.2, ofe_sigma=0.06,
        **common,
    )
    a_sph = r_d * (0.35 + 0.9 * d)
    spheroid = Component(
        name="spheroid", kind="spheroid", weight=w_sph,
        scale_length=a_sph, scale_height=0.0, flattening=sc.flattening,
        v_rot=(0.05 + 0.15 * s) * v_c, r_turn=r_turn,
        sigma_r=v_c * (0.5 + 0.1 * d), sigma_z_ratio=0.9, anisotropy=1.0,
        sigma_scale=3.0 * a_sph,
        age_mean=age_mean(11.0 - 2.5 * d), age_sigma=(1.2 + 2.8 * d) * wf,
        feh_mean=feh_gal - 0.5 * s, feh_age_slope=0.06, feh_gradient=0.2,
        feh_sigma=0.25 + 0.1 * d,
        ofe_mean=0.28 - 0.08 * d, ofe_age_slope=0.02, ofe_feh_slope=0.25, ofe_sigma=0.08,
        truncation=0.0 if spheroid_truncation is None else float(spheroid_truncation) * a_sph,
        **common,
    )
    return SyntheticGalaxy(
        id=galaxy_id,
        log_mstar=x,
        n_stars=int(n_stars),
        v_circ=v_c,
        disc_scale_length=r_d,
        formation_shift=shift,
        age_width_factor=wf,
        feh_offset=sc.feh_offset,
        z_sigma=0.04,
        components=(thin, thick, spheroid),
    )

"""
Mock observations: a Gaia-like survey and IFU maps
==================================================

A learned galaxy becomes mock survey data with ``astroflow_gal.observe``. First a Milky-Way analogue
drawn from the shipped model is seen from a Sun placed inside it, as a Gaia-like catalogue with
seeded errors and cuts; then the same kind of galaxy is seen from outside, at 20 Mpc, as
integral-field maps. Small sizes: this runs in well under a minute on one core.
See ``docs/observe.md`` for every convention.
"""

# %%
# A Milky-Way analogue
# --------------------
# We draw 40,000 stars of a galaxy with the Milky Way's stellar mass and ages. Each star stands for
# ``M_stars / N`` of mass, recorded in the table's ``meta``.
import tempfile
from pathlib import Path

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import torch

from astroflow_gal import GalaxyModel, observe

torch.set_num_threads(1)

model = GalaxyModel.pretrained()
milky_way = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)
stars = model.sample(40_000, milky_way, seed=42)
print("mass per star:", stars.meta["mass_per_star"])

# %%
# The Sun inside it
# -----------------
# The learned galaxy spins about its +z axis; astropy's ``Galactocentric`` Milky Way spins the other
# way (its angular momentum points to the south Galactic pole). ``observe.galactocentric`` turns
# the galaxy over by a proper rotation (never a mirror) and puts the Sun at the chosen radius,
# azimuth (in the galaxy's frame) and height. Every frame parameter is explicit: the defaults are
# astropy's v4.0 values, written out. The analogue rotates at its own speed, so we let the Sun
# move with the analogue's local mean rotation plus the solar peculiar motion.
sun = observe.SunPosition.co_rotating(stars, R=8.122 * u.kpc, z=20.8 * u.pc, azimuth=0 * u.deg)
print("Sun's velocity:", sun.velocity)

coords = observe.galactocentric(stars, sun)
print(coords.frame)
print("recorded:", coords.info.meta["frame"]["galcen_distance"])

# %%
# A Gaia-like catalogue
# ---------------------
# Gaussian errors per column: constants, or functions of the noise-free catalogue (here a
# radial-velocity error growing with distance). The eDF has no photometry, so there are no
# magnitudes unless we bring our own; here the cuts are a parallax signal-to-noise limit and a
# random half of the stars. The same seed gives the same catalogue.
errors = {
    "parallax": 0.03 * u.mas,
    "pm_ra_cosdec": 0.03 * u.mas / u.yr,
    "pm_dec": 0.03 * u.mas / u.yr,
    "radial_velocity": lambda cat: (1.0 + 0.5 * cat["distance"].to_value(u.kpc)) * u.km / u.s,
    "feh": 0.05 * u.dex,
}
selection = observe.Selection(min_parallax_over_error=5, fraction=0.5)
catalogue = observe.survey(stars, sun, errors=errors, selection=selection, seed=1)
print(catalogue["ra", "dec", "parallax", "parallax_error", "pm_ra_cosdec", "radial_velocity"][:5])
print("stars left after each cut:", catalogue.meta["counts"])

fig = observe.plot_sky(catalogue, color="feh")

# %%
# The rotation sense
# ------------------
# Stars near the Sun show the Milky Way's pattern of proper motions in Galactic longitude: Oort's
# constant B < 0 makes the mean of mu_l negative.
near = catalogue[catalogue["distance"] < 1.5 * u.kpc]
print(f"{len(near)} stars within 1.5 kpc; mean mu_l cos b = {np.mean(near['pm_l_cosb']):.2f}")
fig, ax = plt.subplots(figsize=(6.5, 3.5), constrained_layout=True)
ax.scatter(near["l"].to_value(u.deg), near["pm_l_cosb"].to_value(u.mas / u.yr), s=4)
ax.axhline(0, color="k", lw=0.5)
ax.set_xlabel("l [deg]")
ax.set_ylabel("mu_l cos b [mas/yr]")

# %%
# The catalogue on disk
# ---------------------
# FITS, ECSV or HDF5, with every frame parameter, the seed, the error models and the cuts in the
# metadata.
folder = Path(tempfile.mkdtemp())
path = observe.write_catalogue(catalogue, folder / "mock.fits")
back = observe.read_catalogue(path)
print(len(back), "stars;", "z_sun recorded as", back.meta["galactocentric_frame"]["z_sun"])

# %%
# An external galaxy: IFU maps
# ----------------------------
# The same galaxy seen from outside at 20 Mpc, inclined by 60 deg, with the receding half of its
# major axis at a position angle of 30 deg (north through east) and a 2 arcsec PSF. The result is
# an ``xarray.Dataset`` whose ``units`` attributes astropy parses.
maps = observe.ifu_maps(
    stars,
    distance=20 * u.Mpc,
    inclination=60 * u.deg,
    position_angle=30 * u.deg,
    systemic_velocity=1000 * u.km / u.s,
    pixel=2 * u.arcsec,
    fov=120 * u.arcsec,
    psf_fwhm=2 * u.arcsec,
)
print(maps)
print("v_los unit:", u.Unit(maps["v_los"].attrs["units"]))
fig = observe.plot_ifu_maps(maps, min_counts=5)

# %%
# Face-on, the line-of-sight velocity is the systemic velocity plus the vertical motions only:
face_on = observe.ifu_maps(stars, 20 * u.Mpc, 0 * u.deg, 0 * u.deg, 1000 * u.km / u.s,
                           pixel=4 * u.arcsec, fov=120 * u.arcsec)
v = face_on["v_los"].values[face_on["counts"].values >= 20]
print(f"face-on: mean v_los = {np.mean(v):.1f} km/s in {v.size} well-filled pixels")
observe.write_ifu_maps(maps, folder / "maps.nc")

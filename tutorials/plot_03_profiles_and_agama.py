"""
Profiles, eDF moments and the stellar potential
===============================================

Two routes to the density and kinematics of a galaxy drawn from the shipped model: bin its
stars with ``analysis.profiles`` (bootstrap errors), or integrate the eDF itself at chosen
positions with ``analysis.edf_moments`` (importance sampling, integration errors). They estimate
the same quantities, so they must agree within their errors. Last, the stars' gravitational
potential through Agama, when Agama is installed.
"""

# %%
# A Milky-Way analogue and its stars
# ----------------------------------
import importlib.util

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import torch

from astroflow_gal import GalaxyModel
from astroflow_gal.analysis import edf_moments, profile_quantity, profiles

torch.set_num_threads(1)
model = GalaxyModel.pretrained()
galaxy = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)
stars = model.sample(40_000, galaxy, seed=1)

# %%
# Binned profiles
# ---------------
# Radial bins over all heights give the surface density; adding ``zbins`` gives R-z bins and
# the space density ``rho``. Every mass is ``M_stars / N`` per star (recorded in the sample's
# meta), every variable has ``<name>_err`` from 30 bootstrap resamplings, and units are strings
# in ``attrs["units"]``.
edges = np.linspace(1.0, 9.0, 9) * u.kpc
ds = profiles(stars, bins=edges, n_bootstrap=30)
print(profile_quantity(ds, "Sigma")[:3])
print(ds[["v_phi", "v_phi_err", "sigma_R", "sigma_R_err"]].to_dataframe().round(1).head())

# A mono-age population: the stars younger than 4 Gyr.
young = profiles(stars, bins=edges, n_bootstrap=30, select={"age": (None, 4 * u.Gyr)})
print(young.attrs["selection"], "-", young.attrs["n_stars_selected"], "stars")

# %%
# The same from the eDF, in the mid-plane
# ---------------------------------------
# ``edf_moments`` integrates the eDF over velocity, chemistry and age at each position. It also
# reports two densities: ``rho`` from the position-marginal flow and ``rho_edf`` from the full
# eDF integrated over the other columns; where they differ, the two flows disagree. We compare
# with stars in a thin mid-plane slab (``|z| < 0.2 kpc``) binned in R.
slab = profiles(stars, bins=edges, zbins=[-0.2, 0.2] * u.kpc, n_bootstrap=30)
R = slab["R"].values[::2]
positions = np.stack([R, np.zeros_like(R), np.zeros_like(R)], axis=1) * u.kpc
mom = edf_moments(model, positions, galaxy, n_samples=1024, n_pilot=5_000, seed=2)
print(mom[["rho", "rho_edf", "rho_edf_err", "v_phi", "v_phi_err"]].to_dataframe().round(1))

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
ax = axes[0]
ax.errorbar(slab["R"], slab["rho"][:, 0], slab["rho_err"][:, 0], fmt="o", ms=3,
            label="stars, |z| < 0.2 kpc")
ax.plot(mom["R"], mom["rho"], "s", color="C2", label="position-marginal flow")
ax.errorbar(mom["R"], mom["rho_edf"], mom["rho_edf_err"], fmt="x", color="C3",
            label=r"eDF: $M_\star \int f\, dw$")
ax.set_yscale("log")
ax.set_xlabel("R [kpc]")
ax.set_ylabel(r"$\rho$ [M$_\odot$ kpc$^{-3}$]")
ax.legend(fontsize=8)
ax = axes[1]
for name, colour in (("v_phi", "k"), ("sigma_R", "C3"), ("sigma_phi", "C2"),
                     ("sigma_z", "C0")):
    ax.errorbar(slab["R"], slab[name][:, 0], slab[f"{name}_err"][:, 0], fmt="o", ms=3,
                color=colour, alpha=0.6, label=f"{name} (stars)")
    ax.errorbar(mom["R"], mom[name], mom[f"{name}_err"], fmt="x", color=colour, ms=7)
ax.set_xlabel("R [kpc]")
ax.set_ylabel("km/s  (x: from the eDF)")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()

# %%
# The stellar potential with Agama
# --------------------------------
# ``stellar_potential`` tabulates the position-marginal density and hands it to Agama's
# CylSpline expansion; ``compare_potentials`` gives circular velocities. Agama is optional: it is
# not on the package index for offline machines (see the Agama page of the documentation).
if importlib.util.find_spec("agama") is not None:
    from astroflow_gal.analysis import compare_potentials, stellar_potential

    potential = stellar_potential(model, galaxy, kind="cylspline", grid_size=24)
    vc = compare_potentials({"stars (CylSpline)": potential}, [2.0, 4.0, 8.0, 16.0] * u.kpc)
    print(vc["v_circ"].to_dataframe().round(1))
else:
    print("Agama is not installed: skipping the potential.")

"""
Sample a galaxy from the shipped model
======================================

The package ships a trained model (``GalaxyModel.pretrained()``, no download). Here we draw the
stars of a Milky-Way-like galaxy, look at them, hand their phase-space coordinates to astropy as a
``SkyCoord``, evaluate the extended distribution function (eDF) with its unit, and take its
gradient with PyTorch's autograd.
"""

# %%
# The model and a galaxy
# ----------------------
# A galaxy is given by its four conditions: stellar mass ``M_stars``, median stellar age
# ``tau50``, the 10th percentile of the stellar ages ``tau10`` (the young end) and the mean metal
# mass fraction ``Z_av``. Quantities may be in any compatible unit.
import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import torch

from astroflow_gal import GalaxyModel

torch.set_num_threads(1)  # small settings: one core is plenty here

model = GalaxyModel.pretrained()
galaxy = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)
print(model)

# %%
# Draw stars
# ----------
# ``sample`` returns an astropy ``QTable`` in the schema's units; the same seed gives the same
# stars on any machine and for any batch size. The table's ``meta`` records the conditions and the
# stellar mass that each drawn star stands for.
stars = model.sample(20_000, galaxy, seed=42)
print(stars[:3])
print("mass per star:", stars.meta["mass_per_star"])

# %%
# Face-on and edge-on views
# -------------------------
# The galaxy's frame has its centre at the origin and the disc's angular momentum along +z, so a
# face-on view is the x-y plane and an edge-on view the x-z plane.
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
lim = 25
for ax, (a, b) in zip(axes, [("x", "y"), ("x", "z")], strict=True):
    ax.hist2d(
        stars[a].to_value(u.kpc),
        stars[b].to_value(u.kpc),
        bins=120,
        range=[[-lim, lim], [-lim, lim]],
        norm="log",
        cmap="magma",
    )
    ax.set_xlabel(f"{a} [kpc]")
    ax.set_ylabel(f"{b} [kpc]")
    ax.set_aspect("equal")
axes[0].set_title("face-on")
axes[1].set_title("edge-on")

# %%
# Chemistry and ages
# ------------------
# Older stars are more metal-poor and richer in oxygen relative to iron in a typical galaxy; the
# flow learned these relations jointly with the orbits.
fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
points = ax.scatter(
    stars["feh"][:5000], stars["ofe"][:5000], c=stars["age"][:5000].to_value(u.Gyr), s=2,
    cmap="viridis",
)
fig.colorbar(points, ax=ax, label="age [Gyr]")
ax.set_xlabel("[Fe/H] [dex]")
ax.set_ylabel("[O/Fe] [dex]")

# %%
# The disc rotates in the +z sense
# --------------------------------
# With the angular momentum along +z, the azimuthal velocity
# :math:`v_\phi = (x v_y - y v_x) / R` of disc stars is positive.
R = np.hypot(stars["x"], stars["y"])
v_phi = (stars["x"] * stars["vy"] - stars["y"] * stars["vx"]) / R
in_disc = (np.abs(stars["z"]) < 1 * u.kpc) & (R > 3 * u.kpc) & (R < 10 * u.kpc)
print(f"median v_phi of disc stars: {np.median(v_phi[in_disc]):.1f}")

# %%
# A SkyCoord in the galaxy's frame
# --------------------------------
# ``as_skycoord`` returns positions and velocities as an astropy ``SkyCoord``, so the usual astropy
# machinery (representations, differentials, frame attributes) applies.
coords = model.as_skycoord(stars)
print(coords.frame.name, coords.galaxy)
print(coords[:2].cartesian)
print("speed of the first star:", coords[0].velocity.norm())

# %%
# The eDF, with its unit
# ----------------------
# ``edf`` is the probability density of one star over the ten star columns, normalised to 1 over
# all of them; its unit is the inverse of the product of the columns' units (Z is dimensionless).
# ``log_edf`` returns the natural log of the value in ``model.edf_unit``.
f = model.edf(stars[:5], galaxy)
print(f)
print("unit:", model.edf_unit)
print("log f:", model.log_edf(stars[:5], galaxy))

# %%
# Gradients with autograd
# -----------------------
# ``log_edf_torch`` takes tensors in schema units and is differentiable in the stars and in the
# conditions: here, the gradient of ``log f`` with respect to the velocities of a few stars, and
# with respect to the galaxy's stellar mass.
names = model.star_names
x = torch.tensor(
    np.stack([stars[n].value for n in names], axis=1)[:4], dtype=torch.float64,
    requires_grad=True,
)
c = torch.tensor([5e10, 7.0, 2.0, 0.015], dtype=torch.float64, requires_grad=True)
log_f = model.log_edf_torch(x, c)
log_f.sum().backward()
velocity = [names.index(n) for n in ("vx", "vy", "vz")]
print("d log f / d v  [1/(km/s)]:\n", x.grad[:, velocity])
print("d log f / d M_stars  [1/Msun]:", c.grad[0].item())

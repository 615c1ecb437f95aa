"""Make docs/figures/readme_galaxy.png, the README's figure, from the shipped model.

Run from anywhere (about half a minute on one core)::

    python docs/figures/make_readme_figure.py
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from astroflow_gal import GalaxyModel  # noqa: E402

OUT = Path(__file__).resolve().parent / "readme_galaxy.png"
MW = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)


def main() -> Path:
    """Draw 200,000 stars of a Milky-Way analogue and plot three views; returns the file."""
    torch.set_num_threads(1)
    model = GalaxyModel.pretrained()
    stars = model.sample(200_000, MW, seed=7)
    x, y, z = (stars[c].to_value(u.kpc) for c in ("x", "y", "z"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    lim = 20
    for ax, (a, b, title) in zip(axes[:2], [(x, y, "face-on"), (x, z, "edge-on")], strict=True):
        ax.hist2d(a, b, bins=200, range=[[-lim, lim], [-lim, lim]], norm="log", cmap="magma")
        ax.set_title(title)
        ax.set_xlabel("x [kpc]")
        ax.set_aspect("equal")
    axes[0].set_ylabel("y [kpc]")
    axes[1].set_ylabel("z [kpc]")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(stars), 20_000, replace=False)
    points = axes[2].scatter(stars["feh"][pick], stars["ofe"][pick], s=1, rasterized=True,
                             c=stars["age"][pick].to_value(u.Gyr), cmap="viridis", vmin=0, vmax=14)
    axes[2].set_xlim(-2.5, 0.8)
    axes[2].set_xlabel("[Fe/H] [dex]")
    axes[2].set_ylabel("[O/Fe] [dex]")
    axes[2].set_title("chemistry")
    fig.colorbar(points, ax=axes[2], label="age [Gyr]")
    fig.suptitle("A Milky-Way analogue drawn from the shipped model "
                 "(M* = 5e10 Msun, tau50 = 7 Gyr, tau10 = 2 Gyr, Z_av = 0.015)")
    fig.savefig(OUT, dpi=80)
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())

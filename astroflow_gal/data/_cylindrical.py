"""The cylindrical frame of the galaxy at positions, for datasets of moments at points.

Shared by the exact moments of the synthetic truth (``data.synthetic_moments``) and the moments
of a model's eDF (``analysis.moments``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cylindrical_axes", "point_coords"]


def cylindrical_axes(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cylindrical radius and azimuth of positions in the galaxy frame.

    Parameters
    ----------
    pos : numpy.ndarray
        Positions (N, 3) in kpc.

    Returns
    -------
    R : numpy.ndarray
        Cylindrical radii (N,) in kpc.
    cos_phi, sin_phi : numpy.ndarray
        Cosine and sine of the azimuth (N,), dimensionless; on the axis ``R = 0`` the azimuth is
        taken as 0 (``e_R`` along +x, ``e_phi`` along +y).
    """
    R = np.hypot(pos[:, 0], pos[:, 1])
    safe = np.where(R > 0, R, 1.0)
    cos_phi = np.where(R > 0, pos[:, 0] / safe, 1.0)
    sin_phi = np.where(R > 0, pos[:, 1] / safe, 0.0)
    return R, cos_phi, sin_phi


def point_coords(pos: np.ndarray, R: np.ndarray) -> dict[str, tuple]:
    """The coordinates of a dataset of moments at points: x, y, z, R [kpc] and the axes i, j.

    Parameters
    ----------
    pos : numpy.ndarray
        Positions (N, 3) in kpc.
    R : numpy.ndarray
        Their cylindrical radii (N,) in kpc.

    Returns
    -------
    dict
        ``coords`` for :class:`xarray.Dataset`: ``x``, ``y``, ``z``, ``R`` along ``point`` and
        the velocity axes ``i``, ``j`` (``vx``, ``vy``, ``vz``) of the mean and the tensor.
    """
    return {
        "x": ("point", pos[:, 0], {"units": "kpc"}),
        "y": ("point", pos[:, 1], {"units": "kpc"}),
        "z": ("point", pos[:, 2], {"units": "kpc"}),
        "R": ("point", R, {"units": "kpc"}),
        "i": ("i", ["vx", "vy", "vz"]),
        "j": ("j", ["vx", "vy", "vz"]),
    }

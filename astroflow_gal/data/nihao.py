"""Reader for the published NIHAO star files of the GalacticFlow paper, with its cleaning cuts.

One ``.npy`` file per galaxy, named ``<prefix>_<NIHAO id>_<dark-matter mass>.npy``, holding a
float array of shape (11, N): x, y, z [kpc], vx, vy, vz [km/s], Z (metal mass fraction), [Fe/H],
[O/Fe] [dex], star-particle mass [Msun], age [Gyr].

The paper's cleaning, each step configurable through :class:`NihaoCuts`, in this order:

1. keep r <= min(95th percentile of r, 27.7 kpc); where the 27.7 kpc cap applied, also keep
   r <= the 95th percentile of r of the stars kept (r is the 3-D distance from the centre);
2. drop the 10 stars with the highest Z;
3. keep [Fe/H] >= -8 and [O/Fe] >= -1;
4. keep galaxies with at least 500 stars.

The kept stars are then rotated so that their total angular momentum points along +z, and
rotated in the x-y plane so that the major axis of the mass-weighted x-y second-moment tensor lies
along x (positions and velocities alike). The conditions (M_stars = sum of the particle masses,
tau50, tau10, Z_av) are computed from the kept stars. Rows holding NaN or inf are dropped first
and counted in a warning.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .conditions import compute_conditions
from .galaxy import Galaxy, NonFiniteRowsWarning
from .schema import SOLAR_Z, STAR_NAMES, star_column

__all__ = [
    "NihaoCuts",
    "NIHAO_ROWS",
    "parse_nihao_name",
    "radius_cut",
    "spin_rotation",
    "major_axis_rotation",
    "load_nihao_galaxy",
    "nihao_galaxies",
]

NIHAO_ROWS: tuple[str, ...] = (
    "x", "y", "z", "vx", "vy", "vz", "Z", "feh", "ofe", "mass", "age",
)
"""Meaning of the 11 rows of a NIHAO star file (``mass`` in Msun, the others schema columns)."""


@dataclass(frozen=True)
class NihaoCuts:
    """The cleaning of the NIHAO star files; the defaults are the paper's.

    Attributes
    ----------
    r_percentile : float or None
        Percentile of the 3-D radius beyond which stars are dropped (95); ``None`` disables it.
    r_cap : float or None
        Upper limit of the radius cut [kpc] (27.7); where it applies, the percentile cut is
        repeated on the stars kept. ``None`` disables the cap.
    n_highest_z : int
        Number of stars with the highest Z to drop (10); 0 disables.
    feh_min : float or None
        Lowest [Fe/H] kept [dex] (-8); ``None`` disables.
    ofe_min : float or None
        Lowest [O/Fe] kept [dex] (-1); ``None`` disables.
    z_min : float or None
        Lowest Z kept [dimensionless]; not part of the paper's cleaning (``None``), useful to drop
        Z <= 0 before a log transform.
    min_stars : int
        Galaxies with fewer stars after cleaning are left out of the suite (500).
    align_spin : bool
        Rotate so that the total stellar angular momentum points along +z.
    align_major_axis : bool
        Rotate in the x-y plane so that the disc's major axis lies along x.
    """

    r_percentile: float | None = 95.0
    r_cap: float | None = 27.7
    n_highest_z: int = 10
    feh_min: float | None = -8.0
    ofe_min: float | None = -1.0
    z_min: float | None = None
    min_stars: int = 500
    align_spin: bool = True
    align_major_axis: bool = True

    def __post_init__(self) -> None:
        if self.r_percentile is not None and not 0 < self.r_percentile <= 100:
            raise ValueError(f"r_percentile must be in (0, 100], got {self.r_percentile}")
        if self.r_cap is not None and not self.r_cap > 0:
            raise ValueError(f"r_cap must be a positive radius in kpc, got {self.r_cap}")
        if int(self.n_highest_z) < 0 or int(self.min_stars) < 0:
            raise ValueError("n_highest_z and min_stars must not be negative")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> NihaoCuts:
        """Cuts from keyword arguments, naming the valid keys when one is unknown."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown NIHAO cut(s) {unknown}; valid: {sorted(names)}")
        r_cap = kwargs.get("r_cap")
        if isinstance(r_cap, u.Quantity):
            kwargs["r_cap"] = float(r_cap.to_value(u.kpc))
        return cls(**kwargs)


def parse_nihao_name(path: str | os.PathLike) -> tuple[str, str, float]:
    """Split ``<prefix>_<id>_<Mdm>.npy`` into (prefix, id, dark-matter mass [Msun])."""
    path = Path(path)
    parts = path.stem.rsplit("_", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(
            f"{path}: file name is not <prefix>_<NIHAO id>_<dark-matter mass>.npy"
        )
    prefix, gid, mdm = parts
    try:
        m_dm = float(mdm)
    except ValueError:
        raise ValueError(
            f"{path}: the dark-matter mass {mdm!r} in the file name is not a number"
        ) from None
    return prefix, gid, m_dm


def radius_cut(r: np.ndarray, percentile: float | None = 95.0, cap: float | None = 27.7):
    """The paper's radius cut.

    Parameters
    ----------
    r : numpy.ndarray
        3-D radii [kpc].
    percentile : float or None
        Keep r <= this percentile of r (``numpy.percentile``, linear interpolation).
    cap : float or None
        Keep r <= ``cap`` [kpc] instead where the percentile exceeds it, and then also
        r <= the percentile of the radii kept.

    Returns
    -------
    keep : numpy.ndarray of bool
        Stars kept.
    r_cut : float
        The final radius limit [kpc] (inf when no cut applied).
    capped : bool
        Whether the cap applied.
    """
    r = np.asarray(r, dtype=np.float64)
    keep = np.ones(r.shape, dtype=bool)
    if r.size == 0 or (percentile is None and cap is None):
        return keep, float("inf"), False
    if percentile is None:
        return r <= cap, float(cap), True
    limit = float(np.percentile(r, percentile))
    if cap is None or limit <= cap:
        return r <= limit, limit, False
    keep = r <= cap
    if not keep.any():
        return keep, float(cap), True
    limit = float(np.percentile(r[keep], percentile))
    return keep & (r <= limit), limit, True


def spin_rotation(pos: np.ndarray, vel: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Rotation matrix turning the total angular momentum sum m (r x v) onto +z.

    Parameters
    ----------
    pos : numpy.ndarray, shape (N, 3)
        Positions [kpc].
    vel : numpy.ndarray, shape (N, 3)
        Velocities [km/s].
    mass : numpy.ndarray, shape (N,)
        Masses [Msun].

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        Proper rotation ``R`` (the smallest one) with ``R @ L`` along +z; rows map as
        ``pos_new = pos @ R.T``. The identity when the angular momentum vanishes.
    """
    spin = np.sum(mass[:, None] * np.cross(pos, vel), axis=0)
    norm = float(np.linalg.norm(spin))
    if norm == 0 or not np.isfinite(norm):
        return np.eye(3)
    lhat = spin / norm
    zhat = np.array([0.0, 0.0, 1.0])
    axis = np.cross(lhat, zhat)
    s = float(np.linalg.norm(axis))
    c = float(np.dot(lhat, zhat))
    if s < 1e-15:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]]
    )
    return np.eye(3) + k + k @ k * ((1.0 - c) / s**2)


def major_axis_rotation(pos: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Rotation about z putting the major axis of the x-y second-moment tensor along x.

    Parameters
    ----------
    pos : numpy.ndarray, shape (N, 3)
        Positions [kpc] (disc spin already along z).
    mass : numpy.ndarray, shape (N,)
        Masses [Msun], the weights of the tensor sum m (x, y)^T (x, y).

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        Rotation about z by minus the major-axis angle; of the two opposite major-axis
        directions the one with positive x in the input frame ends on +x.
    """
    x, y = pos[:, 0], pos[:, 1]
    ixx = float(np.sum(mass * x * x))
    iyy = float(np.sum(mass * y * y))
    ixy = float(np.sum(mass * x * y))
    theta = 0.5 * np.arctan2(2.0 * ixy, ixx - iyy)
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _load_array(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: not a plain numeric .npy array ({err})") from None
    except OSError as err:
        raise OSError(f"{path}: cannot be read ({err})") from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        kind = getattr(data, "dtype", type(data).__name__)
        raise ValueError(f"{path}: expected a numeric array, got {kind}")
    if data.ndim != 2 or data.shape[0] != len(NIHAO_ROWS):
        raise ValueError(
            f"{path}: expected an array of shape (11, N) (rows {', '.join(NIHAO_ROWS)}), "
            f"got shape {data.shape}"
        )
    return np.asarray(data, dtype=np.float64)


def load_nihao_galaxy(path: str | os.PathLike, cuts: NihaoCuts | None = None) -> Galaxy:
    """Read one NIHAO star file, clean it, align it and compute its conditions.

    The ``min_stars`` cut is not applied here (see :func:`nihao_galaxies`).

    Parameters
    ----------
    path : str or path-like
        A ``<prefix>_<id>_<Mdm>.npy`` file (rows x, y, z [kpc], vx, vy, vz [km/s], Z, [Fe/H],
        [O/Fe] [dex], mass [Msun], age [Gyr]).
    cuts : NihaoCuts, optional
        The cleaning; the paper's by default.

    Returns
    -------
    Galaxy
        Id = the NIHAO id from the file name; ``masses`` holds the particle masses [Msun];
        ``meta`` the file, the dark-matter mass ``M_dm`` [Msun], the star counts removed by each
        cut, the radius limit and the rotation applied.
    """
    cuts = cuts or NihaoCuts()
    path = Path(path)
    prefix, gid, m_dm = parse_nihao_name(path)
    data = _load_array(path)
    rows = {name: data[i] for i, name in enumerate(NIHAO_ROWS)}
    n_raw = data.shape[1]
    counts: dict[str, int] = {"raw": n_raw}

    finite = np.all(np.isfinite(data), axis=0)
    counts["nonfinite"] = int((~finite).sum())
    if counts["nonfinite"]:
        warnings.warn(
            f"{path}: dropped {counts['nonfinite']} star row(s) holding NaN or inf",
            NonFiniteRowsWarning,
            stacklevel=2,
        )
    keep = finite

    r = np.sqrt(rows["x"] ** 2 + rows["y"] ** 2 + rows["z"] ** 2)
    in_radius, r_limit, capped = radius_cut(r[keep], cuts.r_percentile, cuts.r_cap)
    idx = np.flatnonzero(keep)
    counts["radius"] = int((~in_radius).sum())
    keep = np.zeros(n_raw, dtype=bool)
    keep[idx[in_radius]] = True

    n_top = min(int(cuts.n_highest_z), int(keep.sum()))
    if n_top:
        idx = np.flatnonzero(keep)
        order = np.argsort(rows["Z"][idx], kind="stable")
        keep[idx[order[-n_top:]]] = False
    counts["highest_Z"] = n_top

    for key, name, limit in (
        ("feh", "feh", cuts.feh_min),
        ("ofe", "ofe", cuts.ofe_min),
        ("Z_min", "Z", cuts.z_min),
    ):
        if limit is None:
            counts[key] = 0
            continue
        low = keep & (rows[name] < limit)
        counts[key] = int(low.sum())
        keep &= ~low
    counts["kept"] = int(keep.sum())

    pos = np.stack([rows["x"][keep], rows["y"][keep], rows["z"][keep]], axis=1)
    vel = np.stack([rows["vx"][keep], rows["vy"][keep], rows["vz"][keep]], axis=1)
    mass = rows["mass"][keep]
    rotation = np.eye(3)
    if cuts.align_spin and pos.shape[0]:
        rotation = spin_rotation(pos, vel, mass)
    if cuts.align_major_axis and pos.shape[0]:
        rotation = major_axis_rotation(pos @ rotation.T, mass) @ rotation
    pos = pos @ rotation.T
    vel = vel @ rotation.T

    values = {
        "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2],
        "vx": vel[:, 0], "vy": vel[:, 1], "vz": vel[:, 2],
    }
    for name in ("Z", "feh", "ofe", "age"):
        values[name] = rows[name][keep]
    stars = QTable({name: values[name] * star_column(name).unit for name in STAR_NAMES})
    masses = mass * u.Msun
    if len(stars):
        conditions = compute_conditions(stars, masses=masses)
    else:
        conditions = {"M_stars": 0.0 * u.Msun, "tau50": 0.0 * u.Gyr, "tau10": 0.0 * u.Gyr,
                      "Z_av": 0.0 * u.dimensionless_unscaled}
    meta = {
        "file": path.name,
        "prefix": prefix,
        "nihao_id": gid,
        "M_dm": m_dm,
        "M_dm_unit": "solMass",
        "counts": counts,
        "r_cut_kpc": r_limit,
        "r_cap_applied": capped,
        "rotation": rotation.tolist(),
    }
    return Galaxy(gid, stars, conditions, meta=meta, masses=masses)


def nihao_galaxies(
    folder: str | os.PathLike, pattern: str = "*.npy", **cuts: Any
) -> tuple[list[Galaxy], dict[str, Any]]:
    """Read a folder of NIHAO star files into galaxies, with the paper's cleaning.

    :func:`astroflow_gal.data.read_nihao` (and ``GalaxySuite.from_nihao``) put them into a
    :class:`~astroflow_gal.data.suite.GalaxySuite`.

    Parameters
    ----------
    folder : str or path-like
        Folder of ``<prefix>_<id>_<Mdm>.npy`` files.
    pattern : str
        Glob pattern of the files to read.
    **cuts
        Fields of :class:`NihaoCuts` (``r_percentile``, ``r_cap`` [kpc], ``n_highest_z``,
        ``feh_min``, ``ofe_min`` [dex], ``z_min``, ``min_stars``, ``align_spin``,
        ``align_major_axis``).

    Returns
    -------
    galaxies : list of Galaxy
        Galaxies in file-name order; those with fewer than ``min_stars`` stars after cleaning
        are left out and listed in ``meta["nihao"]["left_out"]``.
    meta : dict
        Suite metadata: source, provenance, the cuts and the galaxies left out.
    """
    cut = NihaoCuts.from_kwargs(**cuts)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no NIHAO star files matching {pattern!r}")
    galaxies = []
    left_out = []
    for path in files:
        galaxy = load_nihao_galaxy(path, cut)
        if galaxy.n_stars < cut.min_stars:
            left_out.append({"id": galaxy.id, "file": path.name, "n_stars": galaxy.n_stars})
            continue
        galaxies.append(galaxy)
    meta = {
        "source": "NIHAO",
        "provenance": (
            f"NIHAO star files in {folder.resolve()}, cleaned as in Wolf & Buck (2023), "
            "GalacticFlow"
        ),
        "seed": None,
        "nihao": {
            "folder": str(folder.resolve()),
            "n_files": len(files),
            "cuts": dataclasses.asdict(cut),
            "left_out": left_out,
            "solar_Z": SOLAR_Z,
        },
    }
    return galaxies, meta

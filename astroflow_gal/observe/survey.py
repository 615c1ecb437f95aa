"""Mock Gaia-like catalogues of a Milky-Way analogue seen from the Sun.

The learned eDF has no photometry: no magnitudes, colours or extinction. A magnitude column the
user supplies (apparent, or absolute and turned apparent by the distance modulus, without
extinction) is carried into the catalogue for magnitude-dependent errors and cuts.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import (
    ICRS,
    Galactic,
    SkyCoord,
    SphericalCosLatDifferential,
    SphericalRepresentation,
)
from astropy.table import QTable

from ..inputs import star_masses
from ..io import atomic_path
from ._checks import labels, quantity, quantity_record
from .errors import NOISY_COLUMNS, check_errors, describe_errors, draw_errors
from .galactocentric import galactocentric
from .selection import Selection
from .sun import SunPosition

__all__ = ["survey", "write_catalogue", "read_catalogue", "NO_PHOTOMETRY"]

NO_PHOTOMETRY = (
    "the learned eDF has no photometry (no magnitudes, colours or extinction); magnitudes, when "
    "present, are the user's"
)
MAS_PER_YR = u.mas / u.yr
KM_S = u.km / u.s


def _magnitude_column(stars: Any, magnitude: Any) -> tuple[str | None, u.Quantity | None]:
    if magnitude is None:
        return None, None
    if isinstance(magnitude, str):
        if magnitude not in stars.colnames:
            raise ValueError(
                f"magnitude: stars have no column {magnitude!r}; columns: {stars.colnames}"
            )
        col = stars[magnitude]
        if not isinstance(col, u.Quantity):
            col = u.Quantity(np.asarray(col, dtype=np.float64), getattr(col, "unit", None) or u.mag)
        name = magnitude
    else:
        col, name = magnitude, "mag"
    values = quantity("magnitude", col, u.mag, shape=(len(stars),))
    return name, values


def _true_catalogue(stars: Any, sun: SunPosition) -> tuple[QTable, SkyCoord]:
    coord = galactocentric(stars, sun)
    icrs = coord.transform_to(ICRS())
    sph = icrs.data.represent_as(SphericalRepresentation, SphericalCosLatDifferential)
    dif = sph.differentials["s"]
    gal_rep = icrs.transform_to(Galactic()).data.represent_as(
        SphericalRepresentation, SphericalCosLatDifferential
    )
    gal_dif = gal_rep.differentials["s"]
    distance = sph.distance.to(u.kpc)
    cat = QTable()
    cat["source_id"] = np.arange(len(stars), dtype=np.int64)
    cat["ra"] = sph.lon.to(u.deg)
    cat["dec"] = sph.lat.to(u.deg)
    cat["l"] = gal_rep.lon.to(u.deg)
    cat["b"] = gal_rep.lat.to(u.deg)
    cat["distance"] = distance
    cat["parallax"] = (1.0 / distance.to_value(u.kpc)) * u.mas
    cat["pm_ra_cosdec"] = dif.d_lon_coslat.to(MAS_PER_YR)
    cat["pm_dec"] = dif.d_lat.to(MAS_PER_YR)
    cat["radial_velocity"] = dif.d_distance.to(KM_S)
    cat["pm_l_cosb"] = gal_dif.d_lon_coslat.to(MAS_PER_YR)
    cat["pm_b"] = gal_dif.d_lat.to(MAS_PER_YR)
    for name, values in labels(stars).items():
        cat[name] = values * _label_unit(name)
    return cat, coord


def _label_unit(name: str) -> u.UnitBase:
    from ..data import schema

    return schema.column(name).unit or u.dimensionless_unscaled


def _galactic_proper_motions(cat: QTable) -> None:
    # Proper motions turn from ICRS to Galactic axes by a rotation of the sky alone.
    sky = SkyCoord(ra=cat["ra"], dec=cat["dec"], pm_ra_cosdec=cat["pm_ra_cosdec"],
                   pm_dec=cat["pm_dec"], frame=ICRS())
    gal = sky.transform_to(Galactic())
    cat["pm_l_cosb"] = gal.pm_l_cosb.to(MAS_PER_YR)
    cat["pm_b"] = gal.pm_b.to(MAS_PER_YR)


def survey(
    stars: Any,
    sun: SunPosition | None = None,
    *,
    errors: Mapping[str, Any] | None = None,
    selection: Selection | None = None,
    magnitude: str | u.Quantity | None = None,
    absolute_magnitude: bool = False,
    mass: Any = None,
    seed: int | None = None,
) -> QTable:
    """A mock Gaia-like catalogue of a Milky-Way analogue seen from the Sun.

    Parameters
    ----------
    stars : astropy.table.QTable
        The analogue's stars in its own frame: x, y, z [length], vx, vy, vz [velocity]; the
        labels Z, feh, ofe [dex], age [time] are carried when present. A
        :meth:`astroflow_gal.GalaxyModel.sample` table records the mass per star.
    sun : SunPosition, optional
        The Sun's place, velocity and frame parameters [default ``SunPosition()``, astropy's v4.0
        values; ``SunPosition.co_rotating(stars)`` moves it with the analogue's rotation].
    errors : mapping of str to Quantity or callable, optional
        Gaussian standard deviation per column, in the column's unit: ``parallax`` [mas],
        ``pm_ra_cosdec``, ``pm_dec`` [mas/yr], ``radial_velocity`` [km/s], ``Z``, ``feh``,
        ``ofe`` [dex], ``age`` [Gyr], or the magnitude column [mag]. A constant (one value or one
        per star) or a callable taking the noise-free catalogue (a QTable with ``distance`` [kpc]
        and the magnitude column) and returning one value per star.
    selection : Selection, optional
        Sky region, distance, parallax S/N, magnitude and random subsampling cuts.
    magnitude : str or astropy.units.Quantity, optional
        The user's magnitudes [mag]: a column name of ``stars`` or one value per star.
    absolute_magnitude : bool
        The magnitudes are absolute: the catalogue gets apparent ones, ``M + 5 log10(d / 10 pc)``
        (no extinction).
    mass : astropy.units.Quantity, optional
        Mass per star [mass; default the table's record, see
        :func:`astroflow_gal.inputs.star_masses`].
    seed : int, optional
        Seed of the noise and subsampling draws [default: drawn from the operating system and
        recorded in ``meta["seed"]``].

    Returns
    -------
    astropy.table.QTable
        ``source_id`` (row of ``stars``), ``ra``, ``dec``, ``l``, ``b`` [deg], ``distance``
        [kpc, true], ``parallax`` [mas], ``pm_ra_cosdec``, ``pm_dec``, ``pm_l_cosb``, ``pm_b``
        [mas/yr], ``radial_velocity`` [km/s], the labels, ``mass`` [Msun] when known, the
        magnitude; for each noisy column ``<name>_error`` and ``<name>_true``. ``meta`` records
        the Sun, every Galactocentric frame parameter, the seed, the error models, the cuts and
        the counts after each.

    Raises
    ------
    ValueError
        Missing columns, NaN/inf, a Sun outside the galaxy's extent, unknown error columns,
        cuts that need columns not made.
    """
    if sun is None:
        sun = SunPosition()
    if not isinstance(sun, SunPosition):
        raise TypeError(f"sun must be a SunPosition, got {type(sun).__name__}")
    if selection is not None and not isinstance(selection, Selection):
        raise TypeError(f"selection must be a Selection, got {type(selection).__name__}")
    if not hasattr(stars, "colnames"):
        raise TypeError(f"stars must be an astropy table, got {type(stars).__name__}")
    mag_name, mag_values = _magnitude_column(stars, magnitude)
    allowed = NOISY_COLUMNS + ((mag_name,) if mag_name else ())
    errors = check_errors(errors, allowed)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    seed = int(seed)
    masses = None
    try:
        masses = star_masses(stars, mass)
    except ValueError:
        if mass is not None:
            raise

    cat, coord = _true_catalogue(stars, sun)
    missing = [n for n in errors if n not in cat.colnames and n != mag_name]
    if missing:
        raise ValueError(f"errors: stars have no columns {missing} to add errors to")
    if masses is not None:
        cat["mass"] = masses.to(u.Msun)
    if mag_name is not None:
        if absolute_magnitude:
            modulus = 5 * np.log10(cat["distance"].to_value(u.pc) / 10.0)
            cat[mag_name] = mag_values + modulus * u.mag
            cat[f"{mag_name}_abs"] = mag_values
        else:
            cat[mag_name] = mag_values

    noise_seed, subsample_seed = np.random.SeedSequence(seed).spawn(2)
    observed = draw_errors(cat, errors, np.random.default_rng(noise_seed))
    if "pm_ra_cosdec" in errors or "pm_dec" in errors:
        _galactic_proper_motions(observed)
    selection = selection or Selection()
    keep, counts = selection.mask(observed, mag_name, np.random.default_rng(subsample_seed))
    out = observed[keep]

    source_meta = getattr(stars, "meta", None) or {}
    out.meta = {
        "description": "mock catalogue of a Milky-Way analogue seen from the Sun (astroflow_gal)",
        "sun": sun.record(),
        "galactocentric_frame": coord.info.meta["frame"],
        "convention": coord.info.meta["convention"],
        "seed": seed,
        "errors": describe_errors(errors),
        "selection": selection.record(),
        "counts": counts,
        "n_stars": int(keep.sum()),
        "magnitude": (
            None if mag_name is None
            else {"column": mag_name, "absolute_given": bool(absolute_magnitude)}
        ),
        "photometry": NO_PHOTOMETRY,
        "distance": "true heliocentric distance (no error); parallax is 1/distance plus noise",
        "mass_per_star": (
            None if masses is None else quantity_record(masses[:1].to(u.Msun)[0])
            if np.all(masses == masses[0]) else "per-star column 'mass'"
        ),
        "source": {k: source_meta[k] for k in ("conditions", "model", "seed", "n_stars")
                   if k in source_meta},
    }
    return out


_FITS_META_KEY = "AFGMETA"


def write_catalogue(catalogue: QTable, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write a catalogue to FITS, ECSV or HDF5 (by suffix), atomically, with its metadata.

    Parameters
    ----------
    catalogue : astropy.table.QTable
        A table from :func:`survey`.
    path : str or path-like
        ``.fits`` (metadata as JSON in header keyword ``AFGMETA``; FITS has no ``dex``, so
        readers other than astropy see no unit for [Fe/H] and [O/Fe]), ``.ecsv`` or
        ``.h5``/``.hdf5`` (metadata as YAML, astropy's own way).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        Where it went.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True")
    with atomic_path(path) as tmp:
        if suffix in (".fits", ".fit"):
            table = QTable(catalogue, copy=False)
            table.meta = {_FITS_META_KEY: json.dumps(catalogue.meta)}
            with warnings.catch_warnings():
                # FITS has no 'dex': astropy reads it back, other readers see no unit (documented)
                warnings.filterwarnings("ignore", message=".*could not be saved in native FITS")
                table.write(tmp, format="fits", overwrite=True)
        elif suffix == ".ecsv":
            catalogue.write(tmp, format="ascii.ecsv", overwrite=True)
        elif suffix in (".h5", ".hdf5"):
            catalogue.write(tmp, format="hdf5", path="catalogue", serialize_meta=True,
                            overwrite=True)
        else:
            raise ValueError(f"output {path}: unknown format; use .fits, .ecsv or .h5")
    return path


def read_catalogue(path: str | os.PathLike) -> QTable:
    """Read a catalogue written by :func:`write_catalogue` (FITS, ECSV or HDF5), with its meta.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    astropy.table.QTable
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".fits", ".fit"):
        table = QTable.read(path, format="fits")
        raw = table.meta.pop(_FITS_META_KEY, None)
        table.meta = json.loads(raw) if raw else dict(table.meta)
        return table
    if suffix == ".ecsv":
        return QTable.read(path, format="ascii.ecsv")
    if suffix in (".h5", ".hdf5"):
        return QTable.read(path, format="hdf5", path="catalogue")
    raise ValueError(f"{path}: unknown format; use .fits, .ecsv or .h5")

"""An external galaxy seen from outside: projection on the sky and integral-field maps.

Geometry. The galaxy is first inclined about its own x axis (the line of nodes, which becomes the
projected major axis)::

    X' = x,   Y' = y cos i + z sin i,   Z' = -y sin i + z cos i      (Z' towards the observer)

a proper rotation. ``i = 0`` is face-on seen from the galaxy's +z (the angular momentum points at
the observer, so the disc turns counter-clockwise on the sky), ``i = 90 deg`` edge-on, ``i = 180
deg`` face-on from below. The line-of-sight velocity, positive when receding, is
``v_los = v_sys - v_Z'``; with this choice the +X' half of the major axis recedes. The major axis
is then turned on the sky to the position angle ``PA`` of its receding half, from north through
east::

    east = X' sin PA + Y' cos PA,   north = X' cos PA - Y' sin PA

and offsets are angles ``position / distance`` (parallel projection: the galaxy is small compared
with its distance).
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ..inputs import star_masses
from ._checks import labels, phase_space, quantity

__all__ = ["project", "ifu_maps", "write_ifu_maps", "read_ifu_maps", "FWHM_TO_SIGMA"]

#: Gaussian standard deviation per full width at half maximum, 1 / (2 sqrt(2 ln 2)).
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
KM_S = u.km / u.s


def _geometry(
    distance: Any, inclination: Any, position_angle: Any, systemic_velocity: Any
) -> tuple[u.Quantity, u.Quantity, u.Quantity, u.Quantity]:
    distance = quantity("distance", distance, u.Mpc, positive=True)
    inclination = quantity("inclination", inclination, u.deg)
    if not 0 <= inclination.value <= 180:
        raise ValueError(f"inclination must lie in [0, 180] deg, got {inclination}")
    position_angle = quantity("position_angle", position_angle, u.deg)
    systemic_velocity = quantity("systemic_velocity", systemic_velocity, KM_S)
    return distance, inclination, position_angle, systemic_velocity


def _project_arrays(
    pos: np.ndarray, vel: np.ndarray, distance: u.Quantity, inclination: u.Quantity,
    position_angle: u.Quantity, systemic_velocity: u.Quantity,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # east, north [arcsec], v_los [km/s], depth towards the observer [kpc]
    i = inclination.to_value(u.rad)
    pa = position_angle.to_value(u.rad)
    ci, si = np.cos(i), np.sin(i)
    xp = pos[:, 0]
    yp = pos[:, 1] * ci + pos[:, 2] * si
    zp = -pos[:, 1] * si + pos[:, 2] * ci
    v_toward = -vel[:, 1] * si + vel[:, 2] * ci
    east_kpc = xp * np.sin(pa) + yp * np.cos(pa)
    north_kpc = xp * np.cos(pa) - yp * np.sin(pa)
    arcsec_per_kpc = (1.0 * u.kpc / distance).to_value(u.dimensionless_unscaled) * (
        u.rad.to(u.arcsec)
    )
    v_los = systemic_velocity.to_value(KM_S) - v_toward
    return east_kpc * arcsec_per_kpc, north_kpc * arcsec_per_kpc, v_los, zp


def project(
    stars: Any,
    distance: Any,
    inclination: Any,
    position_angle: Any = 0.0 * u.deg,
    systemic_velocity: Any = 0.0 * KM_S,
) -> QTable:
    """Sky offsets and line-of-sight velocities of a galaxy's stars seen from outside.

    Parameters
    ----------
    stars : astropy.table.QTable
        Stars in the galaxy's frame: x, y, z [length], vx, vy, vz [velocity].
    distance : astropy.units.Quantity
        Distance to the galaxy's centre [length; plain numbers in Mpc].
    inclination : astropy.units.Quantity
        In [0, 180] deg: 0 face-on seen from the galaxy's +z (its angular momentum towards the
        observer), 90 edge-on [angle; plain numbers in deg].
    position_angle : astropy.units.Quantity
        Position angle of the receding half of the major axis, north through east [angle].
    systemic_velocity : astropy.units.Quantity
        The galaxy's line-of-sight velocity [velocity].

    Returns
    -------
    astropy.table.QTable
        ``east``, ``north`` (offsets from the centre [arcsec], east positive), ``v_los``
        [km/s, positive receding] and ``depth`` [kpc, towards the observer].

    Raises
    ------
    ValueError
        Missing columns, NaN/inf, an inclination outside [0, 180] deg, a non-positive distance.
    """
    geometry = _geometry(distance, inclination, position_angle, systemic_velocity)
    pos, vel = phase_space(stars)
    east, north, v_los, depth = _project_arrays(pos, vel, *geometry)
    return QTable({
        "east": east * u.arcsec,
        "north": north * u.arcsec,
        "v_los": v_los * KM_S,
        "depth": depth * u.kpc,
    })


def _field(pixel: Any, fov: Any) -> tuple[u.Quantity, u.Quantity, tuple[int, int]]:
    pixel = quantity("pixel", pixel, u.arcsec, positive=True)
    fov = quantity("fov", fov, u.arcsec, positive=True, shape=None)
    if fov.ndim == 0:
        fov = u.Quantity([fov.value, fov.value], u.arcsec)
    if fov.shape != (2,):
        raise ValueError(f"fov must be one size or (east, north) sizes, got shape {fov.shape}")
    if np.any(pixel > fov):
        raise ValueError(f"pixel ({pixel}) is larger than the field of view fov ({fov})")
    n = tuple(int(np.ceil(f / pixel.value - 1e-9)) for f in fov.value)
    return pixel, fov, (n[0], n[1])


def _gaussian_kernel(sigma_pix: float) -> np.ndarray:
    # Pixel-integrated Gaussian out to 5 sigma, normalised to sum 1 (so the PSF conserves mass).
    from scipy.special import erf

    half = max(1, int(np.ceil(5 * sigma_pix)))
    edges = np.arange(-half - 0.5, half + 1.5)
    cdf = 0.5 * (1 + erf(edges / (np.sqrt(2) * sigma_pix)))
    k1 = np.diff(cdf)
    k1 /= k1.sum()
    return np.outer(k1, k1)


def ifu_maps(
    stars: Any,
    distance: Any,
    inclination: Any,
    position_angle: Any = 0.0 * u.deg,
    systemic_velocity: Any = 0.0 * KM_S,
    *,
    pixel: Any = 1.0 * u.arcsec,
    fov: Any = 60.0 * u.arcsec,
    psf_fwhm: Any = None,
    mass: Any = None,
    density_unit: str | u.UnitBase = "solMass / pc2",
):
    """Integral-field maps of a galaxy seen from outside, on a pixel grid, as an xarray Dataset.

    Parameters
    ----------
    stars : astropy.table.QTable
        Stars in the galaxy's frame: x, y, z [length], vx, vy, vz [velocity]; maps of age,
        [Fe/H] and [O/Fe] are made for the columns ``age``, ``feh``, ``ofe`` present.
    distance, inclination, position_angle, systemic_velocity
        As for :func:`project` [length; angle; angle; velocity].
    pixel : astropy.units.Quantity
        Pixel size [angle; default 1 arcsec].
    fov : astropy.units.Quantity
        Field of view, one size or (east, north) sizes, centred on the galaxy [angle; default
        60 arcsec]; rounded up to whole pixels.
    psf_fwhm : astropy.units.Quantity, optional
        FWHM of a Gaussian point-spread function [angle]. The mass and the mass-weighted moments
        are convolved with the same normalised kernel (stars just outside the field blur into
        it), so the PSF conserves the total mass.
    mass : astropy.units.Quantity, optional
        Mass per star [mass; default the table's record, see
        :func:`astroflow_gal.inputs.star_masses`].
    density_unit : str or astropy.units.Unit
        Unit of the surface density [default ``"solMass / pc2"``; e.g. ``"solMass / kpc2"``].

    Returns
    -------
    xarray.Dataset
        On dims (``north``, ``east``) [arcsec, pixel centres]: ``surface_density``, ``v_los``
        (mass-weighted mean) and ``sigma_los`` [km/s], ``age`` [Gyr], ``feh``, ``ofe`` [dex]
        (mass-weighted means; NaN where a pixel holds no mass) and ``counts`` (stars binned per
        pixel, before the PSF). Every variable and coordinate has a ``units`` attribute that
        :class:`astropy.units.Unit` parses; the Dataset's attributes record the geometry as
        strings :class:`astropy.units.Quantity` parses.

    Raises
    ------
    ValueError
        Missing columns, NaN/inf, an inclination outside [0, 180] deg, a pixel larger than the
        field, a non-positive distance or PSF.
    """
    import xarray as xr

    geometry = _geometry(distance, inclination, position_angle, systemic_velocity)
    pixel, fov, (n_east, n_north) = _field(pixel, fov)
    if psf_fwhm is not None:
        psf_fwhm = quantity("psf_fwhm", psf_fwhm, u.arcsec, positive=True)
    try:
        density_unit = u.Unit(density_unit)
        density_unit.to(u.Msun / u.pc**2)
    except (ValueError, u.UnitConversionError) as err:
        raise ValueError(f"density_unit must be a mass per area, got {density_unit!r}") from err
    pos, vel = phase_space(stars)
    star_labels = labels(stars)
    m = star_masses(stars, mass).to_value(u.Msun)
    east, north, v_los, _ = _project_arrays(pos, vel, *geometry)
    v_sys = geometry[3].to_value(KM_S)
    dv = v_los - v_sys

    pad = 0
    kernel = None
    if psf_fwhm is not None:
        kernel = _gaussian_kernel(psf_fwhm.value * FWHM_TO_SIGMA / pixel.value)
        pad = kernel.shape[0] // 2
    p = pixel.value
    edges_e = (np.arange(n_east + 2 * pad + 1) - (n_east + 2 * pad) / 2) * p
    edges_n = (np.arange(n_north + 2 * pad + 1) - (n_north + 2 * pad) / 2) * p

    def binned(weights: np.ndarray | None) -> np.ndarray:
        h, _, _ = np.histogram2d(north, east, bins=(edges_n, edges_e), weights=weights)
        return h

    moments = {"mass": binned(m), "v1": binned(m * dv), "v2": binned(m * dv**2)}
    for name, values in star_labels.items():
        if name in ("age", "feh", "ofe"):
            moments[name] = binned(m * values)
    counts = binned(None)
    if kernel is not None:
        from scipy.ndimage import convolve

        moments = {k: convolve(v, kernel, mode="constant", cval=0.0) for k, v in moments.items()}
    inner = (slice(pad, pad + n_north), slice(pad, pad + n_east))
    moments = {k: v[inner] for k, v in moments.items()}
    counts = counts[inner]

    mass_map = moments["mass"]
    with np.errstate(divide="ignore", invalid="ignore"):
        has = mass_map > 0
        mean_dv = np.where(has, moments["v1"] / mass_map, np.nan)
        var = np.where(has, moments["v2"] / mass_map - mean_dv**2, np.nan)
        means = {k: np.where(has, moments[k] / mass_map, np.nan)
                 for k in ("age", "feh", "ofe") if k in moments}
    sigma = np.sqrt(np.clip(var, 0.0, None))
    pixel_area = (pixel.to_value(u.rad) * geometry[0]) ** 2
    density = (mass_map * u.Msun / pixel_area).to_value(density_unit)

    centres_e = 0.5 * (edges_e[:-1] + edges_e[1:])[pad:pad + n_east]
    centres_n = 0.5 * (edges_n[:-1] + edges_n[1:])[pad:pad + n_north]
    dims = ("north", "east")
    unit_str = {"age": "Gyr", "feh": "dex", "ofe": "dex"}
    long = {"age": "mass-weighted mean stellar age", "feh": "mass-weighted mean [Fe/H]",
            "ofe": "mass-weighted mean [O/Fe]"}
    data = {
        "surface_density": (dims, density, {"units": density_unit.to_string(),
                                            "long_name": "stellar surface mass density"}),
        "v_los": (dims, mean_dv + v_sys, {
            "units": "km / s", "long_name": "mass-weighted mean line-of-sight velocity"}),
        "sigma_los": (dims, sigma, {"units": "km / s",
                                    "long_name": "line-of-sight velocity dispersion"}),
    }
    for name, values in means.items():
        data[name] = (dims, values, {"units": unit_str[name], "long_name": long[name]})
    data["counts"] = (dims, counts.astype(np.int64),
                      {"units": "", "long_name": "stars binned per pixel (before the PSF)"})
    distance_q, inclination_q, pa_q, vsys_q = geometry
    pixel_kpc = (pixel.to_value(u.rad) * distance_q).to(u.kpc)
    attrs = {
        "title": "integral-field maps of a learned galaxy (astroflow_gal)",
        "distance": f"{float(distance_q.value)!r} {distance_q.unit}",
        "inclination": f"{float(inclination_q.value)!r} deg",
        "position_angle": f"{float(pa_q.value)!r} deg",
        "systemic_velocity": f"{float(vsys_q.value)!r} km / s",
        "pixel": f"{float(pixel.value)!r} arcsec",
        "pixel_physical": f"{float(pixel_kpc.value)!r} kpc",
        "fov_east": f"{float(n_east * p)!r} arcsec",
        "fov_north": f"{float(n_north * p)!r} arcsec",
        "psf_fwhm": "none" if psf_fwhm is None else f"{float(psf_fwhm.value)!r} arcsec",
        "mass_in_field": f"{float(mass_map.sum())!r} solMass",
        "n_stars_in_field": int(counts.sum()),
        "n_stars": int(len(m)),
        "conventions": (
            "inclination 0 = face-on seen from the galaxy's +z (angular momentum towards the "
            "observer); position_angle = receding half of the major axis, north through east; "
            "east offsets positive to the east; v_los positive receding; parallel projection"
        ),
    }
    coords = {
        "east": ("east", centres_e, {"units": "arcsec", "long_name": "offset to the east"}),
        "north": ("north", centres_n, {"units": "arcsec", "long_name": "offset to the north"}),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def write_ifu_maps(maps: Any, path: Any) -> Any:
    """Write IFU maps to netCDF, atomically.

    Parameters
    ----------
    maps : xarray.Dataset
        From :func:`ifu_maps`.
    path : str or path-like
        A ``.nc`` file (netCDF3 through scipy when neither netCDF4 nor h5netcdf is installed).

    Returns
    -------
    pathlib.Path
    """
    from pathlib import Path

    from ..io import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".nc":
        raise ValueError(f"output {path}: IFU maps are written as netCDF (.nc)")
    engine = _netcdf_engine()
    with atomic_path(path) as tmp:
        maps.to_netcdf(tmp, engine=engine)
    return path


def read_ifu_maps(path: Any) -> Any:
    """Read IFU maps written by :func:`write_ifu_maps`.

    Parameters
    ----------
    path : str or path-like
        A ``.nc`` file.

    Returns
    -------
    xarray.Dataset
    """
    import xarray as xr

    with xr.open_dataset(path, engine=_netcdf_engine()) as ds:
        return ds.load()


def _netcdf_engine() -> str:
    import importlib.util

    for engine, module in (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf")):
        if importlib.util.find_spec(module) is not None:
            return engine
    return "scipy"

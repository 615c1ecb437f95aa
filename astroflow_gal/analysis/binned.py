"""Profiles of stars in bins of cylindrical radius (and optionally height), with bootstrap errors.

One function for samples of a model and for real simulation stars: :func:`profiles` bins the stars
about the disc axis (+z, the galaxy frame of :mod:`astroflow_gal.frames`) and returns an
:class:`xarray.Dataset` whose variables carry their unit in ``attrs["units"]`` (a string that
:class:`astropy.units.Unit` parses back; :func:`profile_quantity` does it for you).

Every mean and dispersion is mass-weighted. With weights ``m_i`` (the star masses) the mean is
``sum m x / sum m`` and the dispersion is the square root of

    sum m (x - mean)^2 / sum m * n_eff / (n_eff - 1),   n_eff = (sum m)^2 / sum m^2,

which is the usual ``ddof = 1`` standard deviation when all stars weigh the same. Uncertainties
(``<name>_err``) are the standard deviation over ``n_bootstrap`` bootstrap resamplings of the whole
table (stars drawn with replacement, the selection and the binning applied to each resampling), so
they include the scatter in how many stars fall in a bin.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..data import schema
from ..inputs import as_schema_values, sample_conditions, star_masses, stars_to_array

__all__ = ["profiles", "profile_quantity", "SELECTABLE", "DEFAULT_BINS"]

#: Star columns a population can be selected on (``select=``), in schema units.
SELECTABLE: tuple[str, ...] = ("age", "feh", "ofe")
#: Number of equal-width radial bins when ``bins`` is not given.
DEFAULT_BINS = 20
_KMS = "km / s"
_VELOCITIES = (
    ("v_R", "mean radial velocity", "sigma_R", "radial velocity dispersion"),
    ("v_phi", "mean azimuthal (rotation) velocity", "sigma_phi", "azimuthal velocity dispersion"),
    ("v_z", "mean vertical velocity", "sigma_z", "vertical velocity dispersion"),
)
_CHEMISTRY = ("age", "feh", "ofe")


# -- checks ---------------------------------------------------------------------------------------
def _edges(name: str, value: Any, non_negative: bool) -> np.ndarray:
    """Bin edges in kpc from a length Quantity or plain numbers in kpc."""
    if isinstance(value, u.Quantity):
        try:
            value = value.to_value(u.kpc)
        except u.UnitConversionError as err:
            raise u.UnitConversionError(f"{name} must be lengths, got unit {value.unit}") from err
    try:
        edges = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric bin edges, got {value!r}") from err
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 edges, got shape {edges.shape}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{name} hold NaN or infinite values")
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    if non_negative and edges[0] < 0:
        raise ValueError(f"{name} must be non-negative (cylindrical radii)")
    return edges


def _colnames(stars: Any) -> list[str]:
    if not isinstance(stars, Table):
        raise TypeError(
            f"stars must be an astropy Table or QTable, got {type(stars).__name__}"
        )
    return list(stars.colnames)


def _selection(select: Mapping[str, Any] | None, colnames: Sequence[str]) -> dict[str, tuple]:
    """``{name: (lo, hi)}`` in schema units, ``None`` for an open end."""
    if select is None:
        return {}
    if not isinstance(select, Mapping):
        raise TypeError(f"select must be a mapping such as {{'age': (0, 2)}}, got {select!r}")
    out: dict[str, tuple] = {}
    for name, bounds in select.items():
        if name not in SELECTABLE:
            raise ValueError(f"select: cannot select on {name!r}; choose from {SELECTABLE}")
        if name not in colnames:
            raise ValueError(f"select: the stars have no {name!r} column to select on")
        if isinstance(bounds, u.Quantity) and bounds.shape == (2,):
            bounds = (bounds[0], bounds[1])
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"select[{name!r}] must be a (low, high) pair, got {bounds!r}")
        lo, hi = (None if b is None else float(as_schema_values(name, b)) for b in bounds)
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"select[{name!r}]: low {lo} must be below high {hi}")
        out[name] = (lo, hi)
    return out


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of every value, -1 outside; the last edge is inclusive (as in numpy.histogram)."""
    n_bins = edges.size - 1
    index = np.searchsorted(edges, values, side="right") - 1
    index = np.where(values == edges[-1], n_bins - 1, index)
    return np.where((index >= 0) & (index < n_bins), index, -1)


# -- statistics -----------------------------------------------------------------------------------
def _bin_sums(copies: np.ndarray, q: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sums of the rows of ``q`` over every bin, weighted by the copies of each star.

    ``copies`` is (B, N) (one row per bootstrap resampling, ones for the estimate itself), ``q``
    is (N, F) with the stars sorted by bin and ``bounds`` the (n_bins + 1) offsets of the bins in
    that order. Returns (B, n_bins, F).
    """
    out = np.zeros((copies.shape[0], bounds.size - 1, q.shape[1]))
    for j in range(bounds.size - 1):
        lo, hi = bounds[j], bounds[j + 1]
        if hi > lo:
            out[:, j] = copies[:, lo:hi] @ q[lo:hi]
    return out


def _design(mass: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-star columns whose bin sums give every statistic: 1, m, m^2, m x_k, m x_k^2."""
    cols = [np.ones_like(mass), mass, mass * mass]
    for k in range(values.shape[1]):
        cols += [mass * values[:, k], mass * values[:, k] ** 2]
    return np.stack(cols, axis=1)


def _moments(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Counts, masses, weighted means and dispersions from :func:`_bin_sums` (any leading dims).

    A star present ``c`` times counts as ``c`` stars of its mass, so a bootstrap resampling uses
    the same estimator as the sample itself.
    """
    n, v1, v2 = sums[..., 0], sums[..., 1], sums[..., 2]
    out = {"n": n, "mass": v1}
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = v1 * v1 / v2
        factor = np.where((n >= 2) & (n_eff > 1), n_eff / (n_eff - 1.0), np.nan)
        for k in range((sums.shape[-1] - 3) // 2):
            mean = np.where(v1 > 0, sums[..., 3 + 2 * k] / v1, np.nan)
            var = np.maximum(sums[..., 4 + 2 * k] / v1 - mean * mean, 0.0) * factor
            out[f"mean{k}"] = mean
            out[f"std{k}"] = np.sqrt(var)
    return out


def _describe_selection(sel: Mapping[str, tuple]) -> str:
    parts = []
    for name, (lo, hi) in sel.items():
        unit = str(schema.column(name).unit)
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        parts.append(f"{lo_s} <= {name} < {hi_s} {unit}".rstrip())
    return "; ".join(parts) if parts else "all stars"


def profiles(
    stars: Table,
    bins: Any = DEFAULT_BINS,
    mass: Any = None,
    select: Mapping[str, Any] | None = None,
    zbins: Any = None,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> Any:
    """Surface and space density, mean velocities, dispersions and chemistry in radial bins.

    Velocities are decomposed about the z axis (the disc's angular momentum):
    ``v_R = (x vx + y vy) / R`` and ``v_phi = (x vy - y vx) / R`` (positive for disc rotation).

    Parameters
    ----------
    stars : astropy.table.QTable or Table
        Columns ``x, y`` (and ``z`` when ``zbins`` is given) in length units; ``vx, vy, vz`` in
        velocity units and ``age`` (time), ``feh``, ``ofe`` (dex) are used when present. Columns of
        a plain Table are converted through their ``unit`` attribute (a column in pc is read as pc);
        columns without a unit are taken in schema units (kpc, km/s, Gyr, dex).
    bins : int or astropy.units.Quantity or array-like
        Radial bin edges (length Quantity, or plain numbers in kpc; strictly increasing and
        non-negative, the last edge inclusive), or a number of equal-width bins from 0 to the 95th
        percentile of the selected stars' ``R`` [kpc].
    mass : astropy.units.Quantity or float or array-like, optional
        Mass per star (scalar or one per row), Msun if plain numbers. By default the table's
        ``mass`` column (simulation stars) or the mass per star ``M_stars / N`` recorded in a
        model sample's ``meta`` (see :func:`astroflow_gal.inputs.star_masses`).
    select : mapping, optional
        A population: ``{"age": (lo, hi), "feh": (lo, hi), "ofe": (lo, hi)}``, bounds as
        Quantities or numbers in schema units (age in Gyr, [Fe/H] and [O/Fe] in dex), ``None`` for
        an open end; a star is kept when ``lo <= value < hi`` in every named column. Its densities
        are those of the population (the mass of the selected stars).
    zbins : astropy.units.Quantity or array-like, optional
        Edges in height ``z`` (length Quantity, or plain numbers in kpc; strictly increasing, the
        last edge inclusive). With them every variable except ``Sigma`` is on ``(R, z)`` bins and
        the space density ``rho`` is added.
    n_bootstrap : int
        Bootstrap resamplings for the ``<name>_err`` uncertainties (0: none).
    seed : int
        Seed of the bootstrap's random generator.

    Returns
    -------
    xarray.Dataset
        Coordinates ``R`` (bin centres, kpc), ``R_lo``, ``R_hi`` (and ``z``, ``z_lo``, ``z_hi``).
        Variables: ``n_stars`` (stars in the bin); ``Sigma`` (Msun/kpc2, all heights, on ``R``);
        ``rho`` (Msun/kpc3, with ``zbins``); ``v_R``, ``v_phi``, ``v_z`` and ``sigma_R``,
        ``sigma_phi``, ``sigma_z`` (km/s); ``age`` and ``sigma_age`` (Gyr), ``feh``,
        ``sigma_feh``, ``ofe``, ``sigma_ofe`` (dex) for the columns present; each with
        ``<name>_err``. Means are NaN in empty bins, dispersions in bins of fewer than two stars.
        Units in ``attrs["units"]``; the dataset's attrs record the selection, the star counts,
        the mass of the selection and the sample's conditions (JSON). ``to_netcdf`` writes it.

    Raises
    ------
    ValueError
        Missing position columns, NaN or infinite values, bad bins, an unknown or inverted
        selection, no mass per star, a negative ``n_bootstrap``.
    astropy.units.UnitConversionError
        A column or bound in an incompatible unit.
    TypeError
        ``stars`` is not an astropy table.
    """
    import xarray as xr

    colnames = _colnames(stars)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
            or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    sel = _selection(select, colnames)
    z_edges = None if zbins is None else _edges("zbins", zbins, non_negative=False)
    pos_names = ("x", "y", "z") if z_edges is not None else ("x", "y")
    pos = stars_to_array(stars, pos_names)
    have_vel = all(n in colnames for n in schema.VELOCITY_NAMES)
    chem = [n for n in _CHEMISTRY if n in colnames]
    masses = star_masses(stars, mass).to_value(u.Msun)
    n_all = len(stars)

    # Columns binned, in order: v_R, v_phi, v_z, then chemistry.
    R = np.hypot(pos[:, 0], pos[:, 1])
    columns: list[np.ndarray] = []
    if have_vel:
        vel = stars_to_array(stars, schema.VELOCITY_NAMES)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(R > 0, pos[:, 0] / R, 1.0)
            s = np.where(R > 0, pos[:, 1] / R, 0.0)
        columns += [vel[:, 0] * c + vel[:, 1] * s, vel[:, 1] * c - vel[:, 0] * s, vel[:, 2]]
    chem_values = {n: stars_to_array(stars, (n,))[:, 0] for n in chem}
    columns += [chem_values[n] for n in chem]

    keep = np.ones(n_all, dtype=bool)
    for name, (lo, hi) in sel.items():
        v = chem_values[name]
        if lo is not None:
            keep &= v >= lo
        if hi is not None:
            keep &= v < hi
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive number of bins or edges, got {bins}")
        r_sel = R[keep]
        r_max = float(np.percentile(r_sel, 95.0)) if r_sel.size else 0.0
        if not r_max > 0:
            raise ValueError("bins: no selected star off the axis to set the radial range from")
        r_edges = np.linspace(0.0, r_max, int(bins) + 1)
    else:
        r_edges = _edges("bins", bins, non_negative=True)

    n_r = r_edges.size - 1
    n_z = 1 if z_edges is None else z_edges.size - 1
    n_bins = n_r * n_z
    i_r = _bin_index(R, r_edges)
    i_z = np.zeros(n_all, dtype=np.int64) if z_edges is None else _bin_index(pos[:, 2], z_edges)
    # Stars of the selection inside the radial range (for Sigma) and inside the R-z grid, each
    # sorted by bin so that a bin is one slice.
    flat = np.where(keep & (i_r >= 0) & (i_z >= 0), i_r * n_z + i_z, -1)
    rows_rz = np.flatnonzero(flat >= 0)
    rows_rz = rows_rz[np.argsort(flat[rows_rz], kind="stable")]
    bounds_rz = np.searchsorted(flat[rows_rz], np.arange(n_bins + 1))
    r_only = np.where(keep, i_r, -1)
    rows_r = np.flatnonzero(r_only >= 0)
    rows_r = rows_r[np.argsort(r_only[rows_r], kind="stable")]
    bounds_r = np.searchsorted(r_only[rows_r], np.arange(n_r + 1))
    values = np.stack(columns, axis=1)[rows_rz] if columns else np.zeros((rows_rz.size, 0))
    m_rz, q_r = masses[rows_rz], masses[rows_r][:, None]

    # Centre every column on its bin mean: sums of squares stay accurate (v_phi >> sigma_phi).
    first = _moments(_bin_sums(np.ones((1, rows_rz.size)), _design(m_rz, values), bounds_rz)[0])
    centre = np.stack([np.nan_to_num(first[f"mean{k}"]) for k in range(values.shape[1])],
                      axis=1) if values.shape[1] else np.zeros((n_bins, 0))
    bin_of_row = np.repeat(np.arange(n_bins), np.diff(bounds_rz))
    q_rz = _design(m_rz, values - centre[bin_of_row])
    area = np.pi * (r_edges[1:] ** 2 - r_edges[:-1] ** 2)
    dz = None if z_edges is None else np.diff(z_edges)

    def fields(copies_rz: np.ndarray, copies_r: np.ndarray) -> dict[str, np.ndarray]:
        stats = _moments(_bin_sums(copies_rz, q_rz, bounds_rz))
        out = {"n_stars": stats["n"],
               "Sigma": _bin_sums(copies_r, q_r, bounds_r)[..., 0] / area}
        if dz is not None:
            out["rho"] = stats["mass"] / (area[:, None] * dz[None, :]).ravel()
        k = 0
        if have_vel:
            for mean_name, _, std_name, _ in _VELOCITIES:
                out[mean_name] = stats[f"mean{k}"] + centre[:, k]
                out[std_name] = stats[f"std{k}"]
                k += 1
        for name in chem:
            out[name] = stats[f"mean{k}"] + centre[:, k]
            out[f"sigma_{name}"] = stats[f"std{k}"]
            k += 1
        return out

    estimate = {k: v[0] for k, v in
                fields(np.ones((1, rows_rz.size)), np.ones((1, rows_r.size))).items()}
    errors: dict[str, np.ndarray] = {}
    if n_bootstrap > 0:
        rng = np.random.default_rng(int(seed))
        reps: dict[str, list[np.ndarray]] = {name: [] for name in estimate}
        chunk = max(1, min(int(n_bootstrap), 2_000_000 // max(n_all, 1)))
        done = 0
        while done < n_bootstrap:
            b = min(chunk, int(n_bootstrap) - done)
            copies = np.stack([np.bincount(rng.integers(0, n_all, n_all), minlength=n_all)
                               for _ in range(b)]).astype(np.float64)
            for name, arr in fields(copies[:, rows_rz], copies[:, rows_r]).items():
                reps[name].append(arr)
            done += b
        for name, arr_list in reps.items():
            stack = np.concatenate(arr_list, axis=0)
            finite = np.isfinite(stack)
            count = finite.sum(axis=0)
            filled = np.where(finite, stack, 0.0)
            mean = filled.sum(axis=0) / np.maximum(count, 1)
            dev = np.where(finite, stack - mean, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                err = np.sqrt((dev * dev).sum(axis=0) / (count - 1))
            errors[name] = np.where(count >= 2, err, np.nan)

    dims: tuple[str, ...] = ("R",) if z_edges is None else ("R", "z")
    shape = (n_r,) if z_edges is None else (n_r, n_z)
    units = {"n_stars": "", "Sigma": "Msun / kpc2", "rho": "Msun / kpc3"}
    long_names = {"n_stars": "stars in the bin", "Sigma": "surface density (all heights)",
                  "rho": "space density"}
    for mean_name, mean_long, std_name, std_long in _VELOCITIES:
        units[mean_name] = units[std_name] = _KMS
        long_names[mean_name], long_names[std_name] = mean_long, std_long
    for name in chem:
        units[name] = units[f"sigma_{name}"] = str(schema.column(name).unit)
        desc = schema.column(name).description
        long_names[name] = f"mean {desc}"
        long_names[f"sigma_{name}"] = f"spread (standard deviation) of {desc}"

    data: dict[str, Any] = {}
    for name, arr in estimate.items():
        var_dims, var_shape = (("R",), (n_r,)) if name == "Sigma" else (dims, shape)
        if name == "n_stars":
            arr = np.rint(arr).astype(np.int64)
        attrs = {"units": units[name], "long_name": long_names[name]}
        data[name] = xr.Variable(var_dims, arr.reshape(var_shape), attrs)
        if name in errors:
            data[f"{name}_err"] = xr.Variable(
                var_dims, errors[name].reshape(var_shape),
                {"units": units[name],
                 "long_name": f"bootstrap uncertainty of the {long_names[name]}"},
            )
    coords: dict[str, Any] = {
        "R": ("R", 0.5 * (r_edges[1:] + r_edges[:-1]),
              {"units": "kpc", "long_name": "cylindrical radius (bin centre)"}),
        "R_lo": ("R", r_edges[:-1], {"units": "kpc", "long_name": "inner bin edge"}),
        "R_hi": ("R", r_edges[1:], {"units": "kpc", "long_name": "outer bin edge"}),
    }
    if z_edges is not None:
        coords["z"] = ("z", 0.5 * (z_edges[1:] + z_edges[:-1]),
                       {"units": "kpc", "long_name": "height (bin centre)"})
        coords["z_lo"] = ("z", z_edges[:-1], {"units": "kpc", "long_name": "lower bin edge"})
        coords["z_hi"] = ("z", z_edges[1:], {"units": "kpc", "long_name": "upper bin edge"})
    ds = xr.Dataset(data, coords=coords)
    try:
        conditions = {k: {"value": float(q.value), "unit": str(q.unit)}
                      for k, q in sample_conditions(stars).items()}
    except (ValueError, TypeError):
        conditions = {}
    ds.attrs.update(
        {
            "description": "profiles in cylindrical radius about the disc axis (+z); "
                           "mass-weighted means and dispersions",
            "selection": _describe_selection(sel),
            "n_stars_total": int(n_all),
            "n_stars_selected": int(keep.sum()),
            "mass_selected": float(masses[keep].sum()),
            "mass_selected_units": "Msun",
            "n_bootstrap": int(n_bootstrap),
            "bootstrap_seed": int(seed),
            "conditions": json.dumps(conditions),
        }
    )
    return ds


def profile_quantity(ds: Any, name: str) -> u.Quantity:
    """A variable (or coordinate) of a profiles dataset as an astropy Quantity.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset of :func:`profiles` (or of :func:`astroflow_gal.analysis.edf_moments`), also
        one read back from netCDF.
    name : str
        The variable, e.g. ``"Sigma"`` (Msun/kpc2), ``"v_phi"`` (km/s), ``"feh_err"`` (dex).

    Returns
    -------
    astropy.units.Quantity
        The values in the unit of ``attrs["units"]``.

    Raises
    ------
    KeyError
        No such variable.
    ValueError
        The variable has no ``units`` attribute.
    """
    if name not in ds.variables:
        raise KeyError(f"no variable {name!r}; the dataset has {sorted(ds.variables)}")
    var = ds[name]
    if "units" not in var.attrs:
        raise ValueError(f"variable {name!r} has no 'units' attribute")
    return u.Quantity(np.asarray(var.values, dtype=np.float64), u.Unit(var.attrs["units"]))

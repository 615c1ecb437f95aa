"""A synthetic suite of NIHAO-like galaxies whose extended distribution function is known exactly.

:func:`synthetic_galaxies` draws galaxies across 10^6.5 - 10^11 Msun from the scaling relations
of :mod:`astroflow_gal.data.synthetic_relations`, draws their stars from the closed-form eDF of
:mod:`astroflow_gal.data.synthetic_model`, computes the conditions from the drawn stars with
:func:`astroflow_gal.data.conditions.compute_conditions`, and returns them with their exact
truth, a :class:`SyntheticTruth`; :func:`astroflow_gal.data.make_synthetic_suite` (or
``GalaxySuite.synthetic``) puts them into a suite:

>>> suite = GalaxySuite.synthetic(n_galaxies=95, seed=0)          # doctest: +SKIP
>>> logf = suite.truth.log_prob(suite["syn000"].stars, "syn000")  # ln f, 1/(kpc3 (km/s)3 dex2 Gyr)
>>> fresh = suite.truth.sample(10_000, "syn000", seed=1)           # QTable in schema units

The model and its numbers are described in ``docs/synthetic.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .columns import table_columns
from .conditions import compute_conditions
from .galaxy import Galaxy
from .schema import PHASE_SPACE_NAMES, POSITION_NAMES, STAR_NAMES, edf_unit, star_column
from .synthetic_model import (
    COMPONENT_NAMES,
    T_UNIVERSE,
    Z_SUN,
    Component,
    SyntheticGalaxy,
)
from .synthetic_relations import draw_scatter, galaxy_from_mass

__all__ = [
    "SyntheticTruth",
    "SyntheticGalaxy",
    "Component",
    "synthetic_galaxies",
    "star_counts",
    "T_UNIVERSE",
    "Z_SUN",
    "COMPONENT_NAMES",
]

TRUTH_FORMAT = "astroflow_gal.SyntheticTruth"
TRUTH_VERSION = 1
_MARGINALS = {
    POSITION_NAMES: "position",
    PHASE_SPACE_NAMES: "phase_space",
    ("age",): "age",
    STAR_NAMES: "full",
}


def _values_from_table(stars: Any, names: Sequence[str] = STAR_NAMES) -> np.ndarray:
    """(N, len(names)) float64 array in schema units from a Table, QTable or mapping of columns."""
    if not hasattr(stars, "colnames") and not isinstance(stars, Mapping):
        raise TypeError("stars must be an astropy Table, QTable or a mapping of columns")
    return table_columns(stars, tuple(names))


def _check_values(values: Any, ncol: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != ncol:
        raise ValueError(f"values must have shape (N, {ncol}), got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"values hold {int(bad.any(axis=1).sum())} row(s) with NaN or inf")
    return arr


def _as_rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


class SyntheticTruth:
    """The exact eDF of every galaxy of a synthetic suite.

    Parameters
    ----------
    galaxies : sequence of SyntheticGalaxy
        Per-galaxy parameters (ids must be unique).
    """

    def __init__(self, galaxies: Sequence[SyntheticGalaxy]) -> None:
        galaxies = list(galaxies)
        ids = [g.id for g in galaxies]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate galaxy ids in the synthetic truth")
        self._galaxies: dict[str, SyntheticGalaxy] = {g.id: g for g in galaxies}

    # --- access --------------------------------------------------------------------------------

    @property
    def galaxy_ids(self) -> list[str]:
        """Ids of the galaxies, in suite order."""
        return list(self._galaxies)

    def params(self, galaxy_id: str) -> SyntheticGalaxy:
        """The exact parameters of one galaxy (components, scales, ages, chemistry, mass)."""
        try:
            return self._galaxies[galaxy_id]
        except KeyError:
            raise KeyError(f"no galaxy {galaxy_id!r} in the synthetic truth") from None

    def __getitem__(self, galaxy_id: str) -> SyntheticGalaxy:
        return self.params(galaxy_id)

    def __contains__(self, galaxy_id: object) -> bool:
        return galaxy_id in self._galaxies

    def __len__(self) -> int:
        return len(self._galaxies)

    def __repr__(self) -> str:
        return f"SyntheticTruth({len(self)} galaxies)"

    # --- densities -----------------------------------------------------------------------------

    def log_prob(self, stars: QTable, galaxy_id: str) -> np.ndarray:
        """Natural log of the normalised eDF of a galaxy, per star.

        Parameters
        ----------
        stars : astropy.table.QTable or mapping of columns
            The ten schema star columns in any compatible units (plain numbers are taken in
            schema units: kpc, km/s, dimensionless Z, dex, Gyr). Extra columns are ignored.
        galaxy_id : str
            The galaxy.

        Returns
        -------
        numpy.ndarray
            ln f per star, f in 1/(kpc3 (km/s)3 dex2 Gyr); ``-inf`` outside the support
            (age outside [0, 13.8] Gyr or Z <= 0).
        """
        return self.log_prob_arrays(_values_from_table(stars), galaxy_id)

    def log_prob_arrays(self, values: np.ndarray, galaxy_id: str) -> np.ndarray:
        """ln f for an (N, 10) array in schema units and order (the fast path of log_prob)."""
        arr = _check_values(values, len(STAR_NAMES))
        return self.params(galaxy_id).log_prob_grad(arr, need_grad=False)[0]

    def grad_log_prob_arrays(self, values: np.ndarray, galaxy_id: str) -> np.ndarray:
        """Analytic gradient of ln f with respect to the ten star columns.

        Parameters
        ----------
        values : numpy.ndarray, shape (N, 10)
            Stars in schema units and order.
        galaxy_id : str
            The galaxy.

        Returns
        -------
        numpy.ndarray, shape (N, 10)
            d ln f / d column, in the inverse schema unit of each column; NaN outside the support.
        """
        arr = _check_values(values, len(STAR_NAMES))
        return self.params(galaxy_id).log_prob_grad(arr, need_grad=True)[1]

    def log_prob_unit(self) -> u.UnitBase:
        """Unit of f: 1/(kpc3 (km/s)3 dex2 Gyr)."""
        return edf_unit()

    def marginal_log_prob(
        self, values: Any, galaxy_id: str, columns: Sequence[str] = POSITION_NAMES
    ) -> np.ndarray:
        """Exact log of a marginal of the eDF.

        Parameters
        ----------
        values : numpy.ndarray of shape (N, len(columns)) or QTable
            Values of ``columns`` in schema units (or a table holding those columns, any
            compatible units).
        galaxy_id : str
            The galaxy.
        columns : sequence of str
            ``("x", "y", "z")`` (density in 1/kpc3), ``("x", ..., "vz")``
            (1/(kpc3 (km/s)3)), ``("age",)`` (1/Gyr) or all ten star columns.

        Returns
        -------
        numpy.ndarray
            ln of the marginal density per row.
        """
        columns = tuple(columns)
        kind = _MARGINALS.get(columns)
        if kind is None:
            raise NotImplementedError(
                f"closed-form marginals exist for {list(_MARGINALS)}, not for {columns}"
            )
        if hasattr(values, "colnames") or isinstance(values, Mapping):
            arr = _values_from_table(values, columns)
        else:
            arr = _check_values(values, len(columns))
        gal = self.params(galaxy_id)
        if kind == "position":
            return gal.log_position(arr)
        if kind == "phase_space":
            return gal.log_phase_space(arr)
        if kind == "age":
            return gal.log_age_marginal(arr[:, 0])
        return gal.log_prob_grad(arr, need_grad=False)[0]

    # --- sampling ------------------------------------------------------------------------------

    def sample_arrays(
        self, n: int, galaxy_id: str, seed: int | np.random.Generator
    ) -> np.ndarray:
        """Draw ``n`` fresh stars as an (n, 10) array in schema units and order."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return self.params(galaxy_id).sample(int(n), _as_rng(seed))

    def sample(self, n: int, galaxy_id: str, seed: int | np.random.Generator) -> QTable:
        """Draw ``n`` fresh stars of a galaxy.

        Parameters
        ----------
        n : int
            Number of stars.
        galaxy_id : str
            The galaxy.
        seed : int or numpy.random.Generator
            Seed or generator (the draw is reproducible for an int seed).

        Returns
        -------
        astropy.table.QTable
            The ten schema star columns in schema units.
        """
        values = self.sample_arrays(n, galaxy_id, seed)
        return _table(values)

    # --- JSON ----------------------------------------------------------------------------------

    def to_json(self) -> str:
        """All parameters as a JSON string (exact: floats are written with full precision)."""
        doc = {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "t_universe_gyr": T_UNIVERSE,
            "z_sun": Z_SUN,
            "galaxies": [dataclasses.asdict(g) for g in self._galaxies.values()],
        }
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> SyntheticTruth:
        """Rebuild a truth written by :meth:`to_json`.

        Raises
        ------
        ValueError
            Not JSON, a foreign or newer format, or a parameter set this version does not know.
        """
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"synthetic truth is not valid JSON: {err}") from None
        if not isinstance(doc, dict) or doc.get("format") != TRUTH_FORMAT:
            raise ValueError(f"not a synthetic-truth document (format {TRUTH_FORMAT!r} expected)")
        if int(doc.get("version", -1)) > TRUTH_VERSION:
            raise ValueError(
                f"synthetic truth version {doc.get('version')} is newer than this package reads"
            )
        if doc.get("t_universe_gyr") != T_UNIVERSE or doc.get("z_sun") != Z_SUN:
            raise ValueError("synthetic truth was written with different model constants")
        comp_fields = {f.name for f in dataclasses.fields(Component)}
        gal_fields = {f.name for f in dataclasses.fields(SyntheticGalaxy)}
        galaxies = []
        for g in doc.get("galaxies", []):
            if set(g) != gal_fields:
                raise ValueError(
                    f"galaxy entry has fields {sorted(g)}, expected {sorted(gal_fields)}"
                )
            comps = []
            for c in g["components"]:
                if set(c) != comp_fields:
                    raise ValueError(
                        f"component entry has fields {sorted(c)}, expected {sorted(comp_fields)}"
                    )
                comps.append(Component(**c))
            galaxies.append(SyntheticGalaxy(**{**g, "components": tuple(comps)}))
        return cls(galaxies)


def _table(values: np.ndarray) -> QTable:
    return QTable(
        {name: values[:, i] * star_column(name).unit for i, name in enumerate(STAR_NAMES)}
    )


def star_counts(
    log_mstar: np.ndarray, max_total_stars: int, min_stars: int, max_stars: int
) -> tuple[np.ndarray, float]:
    """Star counts of a fixed star-particle mass, with a floor and a cap per galaxy.

    The particle mass is the smallest for which ``sum(clip(round(M / m_p), min_stars,
    max_stars)) <= max_total_stars`` (found by bisection in log m_p).

    Parameters
    ----------
    log_mstar : numpy.ndarray
        log10 stellar masses [Msun].
    max_total_stars : int
        Upper bound of the total number of stars.
    min_stars, max_stars : int
        Floor and cap of the stars per galaxy.

    Returns
    -------
    counts : numpy.ndarray of int
        Stars per galaxy.
    particle_mass : float
        The star-particle mass [Msun] of galaxies between floor and cap.
    """
    log_mstar = np.asarray(log_mstar, dtype=np.float64)
    if min_stars < 1 or max_stars < min_stars:
        raise ValueError(f"need 1 <= min_stars <= max_stars, got {min_stars}, {max_stars}")
    if min_stars * log_mstar.size > max_total_stars:
        raise ValueError(
            f"{log_mstar.size} galaxies of at least {min_stars} stars exceed "
            f"max_total_stars={max_total_stars}"
        )

    def counts_for(log_mp: float) -> np.ndarray:
        return np.clip(np.rint(10.0 ** (log_mstar - log_mp)), min_stars, max_stars).astype(np.int64)

    lo, hi = float(log_mstar.min()) - 12.0, float(log_mstar.max()) + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if counts_for(mid).sum() > max_total_stars:
            lo = mid
        else:
            hi = mid
    return counts_for(hi), 10.0**hi


def synthetic_galaxies(
    n_galaxies: int = 95,
    seed: int = 0,
    max_total_stars: int = 2_000_000,
    min_stars: int = 2_000,
    max_stars_per_galaxy: int = 200_000,
    log_mass_range: tuple[float, float] = (6.5, 11.0),
    spheroid_truncation: float | None = 30.0,
    id_prefix: str = "syn",
) -> tuple[list[Galaxy], dict[str, Any], SyntheticTruth]:
    """Draw the galaxies of a synthetic NIHAO-like suite with an exact eDF.

    :func:`astroflow_gal.data.make_synthetic_suite` (and ``GalaxySuite.synthetic``) put them into
    a :class:`~astroflow_gal.data.suite.GalaxySuite`.

    Stellar masses are stratified log-uniform over ``log_mass_range`` (one galaxy per equal bin
    of log mass, at a random place within it), sorted by mass. Each galaxy's parameters follow
    the scaling relations with per-galaxy scatter; its stars are drawn from the eDF; its
    conditions are computed from the stars exactly as for simulations.

    Parameters
    ----------
    n_galaxies : int
        Number of galaxies.
    seed : int
        Seed of everything (the suite is identical for the same arguments).
    max_total_stars : int
        Upper bound of the total number of stars (sets the star-particle mass).
    min_stars : int
        Floor of stars per galaxy.
    max_stars_per_galaxy : int
        Cap of stars per galaxy.
    log_mass_range : (float, float)
        Range of log10 stellar mass [Msun].
    spheroid_truncation : float or None
        The spheroid is truncated at ellipsoidal radius ``spheroid_truncation * a`` (a multiple
        of its Hernquist scale ``a``; exact renormalisation), which keeps the rare stars of the
        Hernquist r^-4 tail from reaching hundreds of kpc. ``None``: untruncated Hernquist.
    id_prefix : str
        Galaxy ids are ``f"{id_prefix}{i:03d}"``.

    Returns
    -------
    galaxies : list of Galaxy
        Each galaxy carries its equal particle masses (``M_stars`` is their sum) and its
        component weights in ``meta``.
    meta : dict
        Suite metadata: ``source="synthetic"``, the seed and the generation parameters.
    truth : SyntheticTruth
        The exact eDF of every galaxy.
    """
    if isinstance(n_galaxies, bool) or int(n_galaxies) != n_galaxies or n_galaxies < 1:
        raise ValueError(f"n_galaxies must be a positive integer, got {n_galaxies!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    lo, hi = (float(v) for v in log_mass_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"log_mass_range must be finite and increasing, got {log_mass_range}")
    n_galaxies = int(n_galaxies)
    root = np.random.SeedSequence(int(seed))
    mass_seq, param_seq, star_seq = root.spawn(3)
    mass_rng = np.random.default_rng(mass_seq)
    edges = lo + (hi - lo) * (np.arange(n_galaxies) + mass_rng.random(n_galaxies)) / n_galaxies
    log_m = np.sort(edges)
    counts, particle_mass = star_counts(log_m, max_total_stars, min_stars, max_stars_per_galaxy)
    param_rng = np.random.default_rng(param_seq)
    star_rngs = [np.random.default_rng(s) for s in star_seq.spawn(n_galaxies)]
    params, galaxies = [], []
    for i in range(n_galaxies):
        gid = f"{id_prefix}{i:03d}"
        gal = galaxy_from_mass(
            gid, float(log_m[i]), draw_scatter(param_rng), int(counts[i]), spheroid_truncation
        )
        params.append(gal)
        values = gal.sample(int(counts[i]), star_rngs[i])
        stars = _table(values)
        masses = np.full(len(values), gal.stellar_mass / len(values)) * u.Msun
        conditions = compute_conditions(stars, masses=masses)
        meta = {
            "source": "synthetic",
            "log_mstar": gal.log_mstar,
            "particle_mass_msun": gal.stellar_mass / len(values),
            "weights": gal.weights,
        }
        galaxies.append(Galaxy(gid, stars, conditions, meta=meta, masses=masses))
    meta = {
        "source": "synthetic",
        "seed": int(seed),
        "generator": "astroflow_gal.data.make_synthetic_suite",
        "parameters": {
            "n_galaxies": n_galaxies,
            "max_total_stars": int(max_total_stars),
            "min_stars": int(min_stars),
            "max_stars_per_galaxy": int(max_stars_per_galaxy),
            "log_mass_range": [lo, hi],
            "spheroid_truncation": spheroid_truncation,
            "id_prefix": id_prefix,
        },
        "particle_mass_msun": particle_mass,
        "n_stars": int(counts.sum()),
    }
    return galaxies, meta, SyntheticTruth(params)

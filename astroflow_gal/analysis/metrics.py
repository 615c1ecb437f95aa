"""How close a model is to a galaxy: KL divergence against an exact eDF, split by factor, and
per-column Wasserstein distances in physical units.

- :func:`kl_to_truth`: Monte Carlo KL(truth || model) per star for suites with an exact eDF
  (``suite.truth``), optionally split by factor with the model's marginal flows:
  ``KL = KL(positions) + KL(velocities | positions) + KL(chemistry and age | phase space)``.
- :func:`wasserstein_distances`: the 1-D Wasserstein (earth mover's) distance of every star
  column between two samples, in the column's unit (kpc, km/s, dex, Gyr): the first number an
  astronomer reads.
- :func:`check_compatible`: the model and the suite must speak of the same columns and
  conditions; every metric calls it before any work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ..data import schema
from ..data._checks import integer as _positive_int

__all__ = [
    "KL_FACTORS",
    "check_compatible",
    "galaxy_conditions",
    "kl_to_truth",
    "summarise_kl",
    "wasserstein_distances",
]

#: Columns of the factor split of KL (``kl_to_truth(..., by_factor=True)``), and their meaning.
KL_FACTORS: dict[str, str] = {
    "kl_position": "KL of the position marginals rho(x)",
    "kl_velocity_given_position": "KL of p(v | x), averaged over the true positions",
    "kl_chemistry_age_given_phase_space": "KL of p(Z, [Fe/H], [O/Fe], age | x, v)",
}


def check_compatible(model: Any, suite: Any, galaxy_ids: Sequence[str] | None = None) -> list[str]:
    """Check that a model can be judged on a suite; return the galaxy ids to judge.

    Parameters
    ----------
    model : GalaxyModel
        The model.
    suite : GalaxySuite
        The data galaxies.
    galaxy_ids : sequence of str, optional
        Galaxies to judge (default: all of the suite).

    Returns
    -------
    list of str
        The galaxy ids, checked to be in the suite and to hold stars.

    Raises
    ------
    ValueError
        If the model's star columns are not the suite's, the suite lacks a condition the model
        needs, the suite or the list of ids is empty, an id is unknown, or a galaxy has no stars.
    """
    foreign = [n for n in model.star_names if n not in schema.STAR_NAMES]
    if foreign:
        raise ValueError(
            f"the model's star column(s) {foreign} are not columns of the suite, which has "
            f"{list(schema.STAR_NAMES)}"
        )
    missing = [n for n in model.condition_names if n not in suite.condition_names]
    if missing:
        raise ValueError(
            f"the suite lacks the condition(s) {missing} the model needs: the model is "
            f"conditioned on {list(model.condition_names)}, the suite has "
            f"{list(suite.condition_names)}"
        )
    if len(suite) == 0:
        raise ValueError("the suite holds no galaxies")
    if galaxy_ids is None:
        ids = list(suite.ids)
    else:
        if isinstance(galaxy_ids, str):
            galaxy_ids = [galaxy_ids]
        ids = [str(g) for g in galaxy_ids]
        if not ids:
            raise ValueError("galaxy_ids is empty: name at least one galaxy")
        unknown = [g for g in ids if g not in suite]
        if unknown:
            raise ValueError(f"galaxy_ids holds id(s) {unknown} that are not in the suite")
    empty = [g for g in ids if suite[g].n_stars == 0]
    if empty:
        raise ValueError(f"galaxy {empty[0]!r} has no stars (empty galaxies: {empty})")
    return ids


def galaxy_conditions(model: Any, galaxy: Any) -> dict[str, u.Quantity]:
    """The conditions of a suite galaxy that the model takes, by name (Quantities).

    Parameters
    ----------
    model : GalaxyModel
        The model (its ``condition_names``).
    galaxy : Galaxy
        A galaxy of a suite.

    Returns
    -------
    dict of str to astropy.units.Quantity
        ``M_stars`` [Msun], ``tau50``, ``tau10`` [Gyr], ``Z_av`` [1] as the model needs them.
    """
    missing = [n for n in model.condition_names if n not in galaxy.conditions]
    if missing:
        raise ValueError(f"galaxy {galaxy.id!r} lacks the condition(s) {missing}")
    return {n: galaxy.conditions[n] for n in model.condition_names}


def _mean_and_error(diff: np.ndarray) -> tuple[float, float]:
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))


def kl_to_truth(
    model: Any,
    suite: Any,
    galaxy_ids: Sequence[str] | None = None,
    n_stars: int = 20_000,
    seed: int = 0,
    *,
    by_factor: bool = False,
    allow_extrapolation: bool = False,
) -> QTable:
    """Monte Carlo KL(truth || model) per star, for galaxies of a suite with an exact eDF.

    For every galaxy, ``n_stars`` fresh stars are drawn from the exact eDF ``p`` (``suite.truth``)
    and ``KL = E_p[log p - log f]`` is estimated with its standard error, where ``f`` is the
    model's eDF at the galaxy's conditions. Both densities are over the same ten star columns in
    the same units, so the difference is unit-free (nats per star).

    With ``by_factor=True`` the same stars also give the split of KL by the chain rule,
    ``KL = KL(x) + KL(v | x) + KL(Z, [Fe/H], [O/Fe], age | x, v)``, using the exact marginals of
    the truth and the model's marginal flows (``position`` and ``phase_space``). The model's
    marginal flows are trained separately from its joint eDF, so its implied conditionals
    ``f / f_x`` are exact only as far as the marginal flows agree with the joint; the conditional
    terms can then be slightly negative. Each term has its own standard error (the three are
    computed on the same stars and add up to the total exactly).

    Parameters
    ----------
    model : GalaxyModel
        The model to check, over the ten schema star columns.
    suite : GalaxySuite
        Galaxies with ``suite.truth`` set (e.g. :meth:`GalaxySuite.synthetic`).
    galaxy_ids : sequence of str, optional
        Which galaxies (default: all of the suite).
    n_stars : int
        Fresh stars per galaxy (>= 2).
    seed : int
        Seed of the fresh stars (galaxy ``k`` of the list uses ``seed + k``).
    by_factor : bool
        Add the factor split (needs the model's ``position`` marginal; the velocity term also
        needs ``phase_space``; terms the model cannot give are NaN).
    allow_extrapolation : bool
        Passed to the model: accept galaxies far outside its training range. Either way an
        :class:`~astroflow_gal.inputs.ExtrapolationWarning` is given as usual for galaxies outside
        it (filter it with :mod:`warnings` if you wish).

    Returns
    -------
    astropy.table.QTable
        Columns ``galaxy_id``, ``M_stars`` (Msun), ``kl`` and ``kl_err`` (nats per star); with
        ``by_factor`` also the columns of :data:`KL_FACTORS` and their ``*_err``.

    Raises
    ------
    ValueError
        If the suite has no truth, or the model and the suite do not match (see
        :func:`check_compatible`), or the model lacks the marginal flows ``by_factor`` needs.
    """
    truth = getattr(suite, "truth", None)
    if truth is None:
        raise ValueError(
            "KL needs an exact eDF, and this suite has none (suite.truth is None); KL can be "
            "computed only on synthetic suites"
        )
    n_stars = _positive_int(n_stars, "n_stars", 2)
    ids = check_compatible(model, suite, galaxy_ids)
    if tuple(model.star_names) != schema.STAR_NAMES:
        raise ValueError("KL against the truth needs a model over all ten schema star columns")
    not_in_truth = [g for g in ids if g not in truth]
    if not_in_truth:
        raise ValueError(f"the suite's truth has no galaxy {not_in_truth}")
    marginals = getattr(model, "marginals", {}) or {}
    if by_factor and "position" not in marginals:
        raise ValueError(
            "the split of KL by factor needs the model's position marginal flow "
            f"(it has {sorted(marginals) or 'none'}); train with fit(..., marginals=('position', "
            "'phase_space'))"
        )
    n_pos, n_ps = len(schema.POSITION_NAMES), len(schema.PHASE_SPACE_NAMES)
    rows = []
    for k, gid in enumerate(ids):
        galaxy = suite[gid]
        conditions = galaxy_conditions(model, galaxy)
        values = truth.sample_arrays(n_stars, gid, seed + k)
        log_p = truth.log_prob_arrays(values, gid)
        log_f = model.log_edf(values, conditions, allow_extrapolation=allow_extrapolation)
        diff = log_p - log_f
        row: dict[str, Any] = {"galaxy_id": gid, "M_stars": galaxy.conditions["M_stars"]}
        row["kl"], row["kl_err"] = _mean_and_error(diff)
        if by_factor:
            nan = (math.nan, math.nan)
            pos = values[:, :n_pos]
            d_pos = truth.marginal_log_prob(pos, gid, schema.POSITION_NAMES) - model.log_marginal(
                pos, "position", conditions, allow_extrapolation=allow_extrapolation
            )
            terms = {"kl_position": _mean_and_error(d_pos)}
            if "phase_space" in marginals:
                ps = values[:, :n_ps]
                d_ps = truth.marginal_log_prob(
                    ps, gid, schema.PHASE_SPACE_NAMES
                ) - model.log_marginal(
                    ps, "phase_space", conditions, allow_extrapolation=allow_extrapolation
                )
                terms["kl_velocity_given_position"] = _mean_and_error(d_ps - d_pos)
                terms["kl_chemistry_age_given_phase_space"] = _mean_and_error(diff - d_ps)
            for name in KL_FACTORS:
                row[name], row[f"{name}_err"] = terms.get(name, nan)
        rows.append(row)
    names = list(rows[0])
    table = QTable(rows=[[r[n] for n in names] for r in rows], names=names)
    table.meta["n_stars"] = n_stars
    table.meta["seed"] = seed
    table.meta["kl_unit"] = "nat per star"
    return table


def summarise_kl(table: QTable) -> dict[str, float]:
    """Mean KL per star over the galaxies of a :func:`kl_to_truth` table, and its error.

    Parameters
    ----------
    table : astropy.table.QTable
        Output of :func:`kl_to_truth` (columns ``kl`` and ``kl_err`` in nats per star).

    Returns
    -------
    dict
        ``mean_kl`` and ``mean_kl_err`` (nats per star), ``n_galaxies``.
    """
    if len(table) == 0:
        raise ValueError("the KL table is empty")
    kl = np.asarray(table["kl"], dtype=float)
    err = np.asarray(table["kl_err"], dtype=float)
    return {
        "mean_kl": float(kl.mean()),
        "mean_kl_err": float(math.sqrt(np.sum(err**2)) / len(err)),
        "n_galaxies": len(kl),
    }


def _column_in_unit(stars: Any, name: str) -> np.ndarray:
    from ..inputs import stars_to_array

    return stars_to_array(stars, (name,))[:, 0]


def wasserstein_distances(
    stars_a: Any, stars_b: Any, columns: Sequence[str] | None = None
) -> dict[str, u.Quantity]:
    """1-D Wasserstein distance of every star column between two samples, in physical units.

    ``W1 = integral |F_a(t) - F_b(t)| dt`` of the two empirical distribution functions of one
    column: the mean distance a star must move along that column to turn one sample into the
    other (a shift of every value by ``d`` gives exactly ``|d|``).

    Parameters
    ----------
    stars_a, stars_b : astropy.table.QTable or mapping of columns
        The two samples (schema star columns in any compatible units; plain numbers in schema
        units: kpc, km/s, dimensionless Z, dex, Gyr).
    columns : sequence of str, optional
        Star columns to compare (default: the ten schema star columns).

    Returns
    -------
    dict of str to astropy.units.Quantity
        Per column, the distance in the column's schema unit.
    """
    from scipy.stats import wasserstein_distance

    names = list(schema.STAR_NAMES if columns is None else columns)
    for name in names:
        schema.star_column(name)
    out: dict[str, u.Quantity] = {}
    for name in names:
        a = _column_in_unit(stars_a, name)
        b = _column_in_unit(stars_b, name)
        if a.size == 0 or b.size == 0:
            raise ValueError(f"column {name!r}: a sample holds no stars")
        out[name] = wasserstein_distance(a, b) * schema.star_column(name).unit
    return out

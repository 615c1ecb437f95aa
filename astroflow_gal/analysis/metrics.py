"""How close a model is to the truth: KL divergence against an exact eDF."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import QTable

from ..inputs import ExtrapolationWarning

__all__ = ["kl_to_truth"]


def kl_to_truth(
    model: Any,
    suite: Any,
    galaxy_ids: Sequence[str] | None = None,
    n_stars: int = 20_000,
    seed: int = 0,
) -> QTable:
    """Monte Carlo KL(truth || model) per star, for galaxies of a suite with an exact eDF.

    For every galaxy, ``n_stars`` fresh stars are drawn from the exact eDF ``p`` (``suite.truth``)
    and ``KL = E_p[log p - log f]`` is estimated with its standard error, where ``f`` is the
    model's eDF at the galaxy's conditions. Both densities are over the same ten star columns in
    the same units, so the difference is unit-free (nats per star).

    Parameters
    ----------
    model : GalaxyModel
        The model to check.
    suite : GalaxySuite
        Galaxies with ``suite.truth`` set (e.g. :meth:`GalaxySuite.synthetic`).
    galaxy_ids : sequence of str, optional
        Which galaxies (default: all of the suite).
    n_stars : int
        Fresh stars per galaxy.
    seed : int
        Seed of the fresh stars (galaxy ``k`` of the list uses ``seed + k``).

    Returns
    -------
    astropy.table.QTable
        Columns ``galaxy_id``, ``M_stars`` (Msun), ``kl`` and ``kl_err`` (nats per star).
    """
    truth = getattr(suite, "truth", None)
    if truth is None:
        raise ValueError("the suite has no exact eDF (suite.truth is None)")
    ids = list(suite.ids if galaxy_ids is None else galaxy_ids)
    rows = []
    for k, gid in enumerate(ids):
        galaxy = suite[gid]
        stars = truth.sample(n_stars, gid, seed + k)
        log_p = truth.log_prob(stars, gid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            log_f = model.log_edf(stars, galaxy.conditions, allow_extrapolation=True)
        diff = log_p - log_f
        rows.append(
            (gid, galaxy.conditions["M_stars"], float(diff.mean()),
             float(diff.std() / math.sqrt(len(diff))))
        )
    table = QTable(rows=rows, names=("galaxy_id", "M_stars", "kl", "kl_err"))
    table.meta["n_stars"] = n_stars
    table.meta["seed"] = seed
    return table


def summarise_kl(table: QTable) -> dict[str, float]:
    """Mean KL per star over the galaxies of a :func:`kl_to_truth` table, and its error."""
    kl = np.asarray(table["kl"], dtype=float)
    err = np.asarray(table["kl_err"], dtype=float)
    return {
        "mean_kl": float(kl.mean()),
        "mean_kl_err": float(math.sqrt(np.sum(err**2)) / len(err)),
        "n_galaxies": len(kl),
    }

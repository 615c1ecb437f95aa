"""Judge a model on a suite: the paper's protocol and stronger tests, tables and figures.

:func:`evaluate` draws a model galaxy at the conditions of every chosen data galaxy (as many stars
as the data galaxy holds, up to a cap) and measures, per galaxy:

- the paper's linear MMD between the model galaxy and *every* data galaxy, recorded with the
  difference in log stellar mass (Figure 3), and between every pair of data galaxies (the
  reference distribution);
- the kernel MMD with its permutation p-value, and the classifier AUC with its error, against
  the galaxy's own data;
- the 1-D Wasserstein distance of every star column, in physical units;
- KL(truth || model), split by factor, where the suite has an exact truth.

It writes the tables (ECSV) and the figures (PNG and PDF) into a folder and returns the table of
metrics per galaxy, whose ``meta["summary"]`` holds the headline numbers.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from ..data import schema
from ..data._checks import integer as _positive_int
from .metrics import (
    KL_FACTORS,
    check_compatible,
    galaxy_conditions,
    kl_to_truth,
    wasserstein_distances,
)
from .two_sample import StarScaler, classifier_test, kernel_mmd, linear_mmd_matrix

__all__ = [
    "EvaluationResult",
    "evaluate",
    "format_summary",
    "held_out_ids",
    "pair_summary",
    "write_table",
]

log = logging.getLogger("astroflow_gal.analysis")

#: Files :func:`evaluate` writes into its folder.
METRICS_FILE = "metrics.ecsv"
MODEL_PAIRS_FILE = "mmd_model_data.ecsv"
DATA_PAIRS_FILE = "mmd_data_data.ecsv"


class EvaluationResult(dict):
    """The three tables of an evaluation, by name: ``metrics``, ``model_pairs``, ``data_pairs``."""


def write_table(table: Table, path: str | os.PathLike) -> Path:
    """Write a table as ECSV, atomically (a reader never sees half a file).

    Parameters
    ----------
    table : astropy.table.Table or QTable
        The table (units and ``meta`` are kept).
    path : str or path-like
        Destination file.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    return Path(path)


def held_out_ids(model: Any, suite: Any) -> set[str]:
    """Ids of the suite's galaxies that the model was not trained on.

    Taken from the model's ``meta`` (``train_ids`` when recorded, else ``holdout``), else from the
    suite's ``holdout_ids``.

    Parameters
    ----------
    model : GalaxyModel
        The model.
    suite : GalaxySuite
        The data galaxies.

    Returns
    -------
    set of str
    """
    meta = getattr(model, "meta", {}) or {}
    train_ids = meta.get("train_ids") or []
    if train_ids:
        return {g for g in suite.ids if g not in set(map(str, train_ids))}
    holdout = meta.get("holdout") or []
    if holdout:
        return {str(g) for g in holdout} & set(suite.ids)
    return set(getattr(suite, "holdout_ids", ()))


def _log_mass(galaxy: Any) -> float:
    return float(np.log10(galaxy.conditions["M_stars"].to_value(u.Msun)))


def _data_pairs(suite: Any, means: np.ndarray) -> QTable:
    ids = suite.ids
    logm = np.array([_log_mass(g) for g in suite])
    mmd = linear_mmd_matrix(means, means)
    i, j = np.nonzero(~np.eye(len(ids), dtype=bool))
    table = QTable()
    table["galaxy_a"] = np.array(ids)[i]
    table["galaxy_b"] = np.array(ids)[j]
    table["dlogm"] = (logm[i] - logm[j]) * u.dex
    table["mmd"] = mmd[i, j]
    table.meta["description"] = (
        "linear MMD between data galaxies a and b (squared distance of their mean star vectors "
        "in the suite-standardised space); dlogm = log10 M_stars(a) - log10 M_stars(b)"
    )
    return table


def pair_summary(model_pairs: Any, data_pairs: Any, bin_width: float = 0.25) -> dict[str, float]:
    """Headline numbers of Figure 3: the trend with mass, and the model within the data.

    Parameters
    ----------
    model_pairs : astropy.table.Table
        ``dlogm`` [dex] and ``mmd`` per (model galaxy, data galaxy) pair, ``held_out`` (bool).
    data_pairs : astropy.table.Table
        ``dlogm`` [dex] and ``mmd`` per pair of distinct data galaxies.
    bin_width : float
        Bins in Delta log10 M_stars [dex] for the data-data percentiles.

    Returns
    -------
    dict
        ``spearman_model`` / ``spearman_held_out`` / ``spearman_data``: Spearman rank
        correlation of MMD with ``|Delta log10 M_stars|``; ``inside_95_model`` /
        ``inside_95_held_out``: share of model points between the 2.5th and 97.5th percentile of
        the data-data MMD in their Delta log10 M_stars bin (bins with >= 5 data pairs);
        ``n_model_pairs``, ``n_held_out_pairs``, ``n_data_pairs``.
    """
    from scipy.stats import spearmanr

    from .evaluation_plots import mmd_bands

    def values(t: Any, name: str) -> np.ndarray:
        col = t[name]
        return np.asarray(getattr(col, "value", col), dtype=float)

    d_dlogm, d_mmd = values(data_pairs, "dlogm"), values(data_pairs, "mmd")
    m_dlogm, m_mmd = values(model_pairs, "dlogm"), values(model_pairs, "mmd")
    held = np.asarray(model_pairs["held_out"], dtype=bool)
    lim = max(np.abs(d_dlogm).max(), np.abs(m_dlogm).max()) + bin_width
    edges = np.arange(-lim, lim + bin_width, bin_width)
    bands = mmd_bands(d_dlogm, d_mmd, edges)
    idx = np.clip(np.digitize(m_dlogm, edges) - 1, 0, edges.size - 2)
    lo, hi = bands["p2.5"][idx], bands["p97.5"][idx]
    judged = np.isfinite(lo)
    inside = judged & (m_mmd >= lo) & (m_mmd <= hi)

    def rho(x: np.ndarray, y: np.ndarray) -> float:
        if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
            return math.nan
        return float(spearmanr(x, y).statistic)

    def share(mask: np.ndarray) -> float:
        n = int(np.sum(judged & mask))
        return float(np.sum(inside & mask) / n) if n else math.nan

    return {
        "spearman_model": rho(np.abs(m_dlogm), m_mmd),
        "spearman_held_out": rho(np.abs(m_dlogm[held]), m_mmd[held]),
        "spearman_data": rho(np.abs(d_dlogm), d_mmd),
        "inside_95_model": share(np.ones_like(held)),
        "inside_95_held_out": share(held),
        "n_model_pairs": int(m_mmd.size),
        "n_held_out_pairs": int(held.sum()),
        "n_data_pairs": int(d_mmd.size),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines of text of an evaluation's ``meta["summary"]``.

    Parameters
    ----------
    summary : dict
        From ``evaluate(...)["metrics"].meta["summary"]`` (or :func:`pair_summary` and more).

    Returns
    -------
    str
    """
    def f(key: str, fmt: str = ".3f") -> str:
        value = summary.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return format(value, fmt)

    lines = [
        f"galaxies judged: {summary.get('n_galaxies', 0)} "
        f"({summary.get('n_held_out', 0)} held out)",
        f"linear MMD vs |dlog10 M_stars|: Spearman {f('spearman_model')} (all model galaxies), "
        f"{f('spearman_held_out')} (held out), {f('spearman_data')} (data vs data)",
        f"model points inside the data-data 95 % band: {f('inside_95_model', '.1%')} (all), "
        f"{f('inside_95_held_out', '.1%')} (held out)",
        f"classifier AUC: median {f('median_auc')} (held out {f('median_auc_held_out')}); "
        f"kernel MMD p < 0.05 for {f('kernel_mmd_rejected', '.0%')} of the galaxies",
    ]
    if "mean_kl" in summary:
        lines.append(f"KL(truth || model): mean {f('mean_kl')} nat/star "
                     f"(held out {f('mean_kl_held_out')})")
    return "\n".join(lines)


def evaluate(
    model: Any,
    suite: Any,
    out_dir: str | os.PathLike | None,
    *,
    galaxy_ids: Sequence[str] | None = None,
    max_stars: int = 20_000,
    kl: bool | None = None,
    n_kl_stars: int = 5_000,
    kernel_permutations: int = 200,
    max_test_points: int = 1_000,
    classifier: bool = True,
    classifier_epochs: int = 150,
    corner_galaxy: str | None = None,
    corner_columns: Sequence[str] | None = None,
    seed: int = 0,
    allow_extrapolation: bool = False,
    formats: Sequence[str] = ("png", "pdf"),
    scaler: StarScaler | None = None,
) -> EvaluationResult:
    """Judge a model against the galaxies of a suite; write tables and figures.

    Parameters
    ----------
    model : GalaxyModel
        The model.
    suite : GalaxySuite
        The data galaxies. Every galaxy is a reference of the linear MMD (Figure 3); those in
        ``galaxy_ids`` also get a model galaxy and all per-galaxy metrics.
    out_dir : str or path-like or None
        Folder of the outputs (created if missing): ``metrics.ecsv``, ``mmd_model_data.ecsv``,
        ``mmd_data_data.ecsv``, and ``corner.*``, ``mmd_mass.*``, ``metrics_mass.*`` in every
        format of ``formats``. None writes nothing (the tables are still returned).
    galaxy_ids : sequence of str, optional
        Galaxies to draw model galaxies for (default: all of the suite).
    max_stars : int
        A model galaxy holds as many stars as its data galaxy (as in the paper), at most this
        many.
    kl : bool, optional
        Compute KL(truth || model) (split by factor when the model has marginal flows). Default:
        when the suite has an exact truth. True on a suite without one is an error.
    n_kl_stars : int
        Fresh stars of the truth per galaxy for KL.
    kernel_permutations : int
        Permutations of the kernel-MMD p-value.
    max_test_points : int
        Stars of each sample used by the kernel MMD and the classifier (seeded subsample).
    classifier : bool
        Run the classifier two-sample test (the slowest metric).
    classifier_epochs : int
        Full-batch training steps of the classifier.
    corner_galaxy : str, optional
        Galaxy of the corner plot (default: the first held-out galaxy judged, else the first).
    corner_columns : sequence of str, optional
        Star columns of the corner plot (default: all of the model's).
    seed : int
        Seed of everything random (galaxy ``k`` of ``galaxy_ids`` uses ``seed + k``).
    allow_extrapolation : bool
        Let the model draw galaxies far outside its training range (it warns either way).
    formats : sequence of str
        Figure formats (file suffixes).
    scaler : StarScaler, optional
        The normalised space of the two-sample statistics (default: fitted on ``suite``).

    Returns
    -------
    EvaluationResult
        ``metrics`` (QTable, one row per judged galaxy: ``galaxy_id``, ``held_out``, ``M_stars``
        [Msun], ``n_data``, ``n_model``, ``linear_mmd`` and ``linear_mmd_rank`` (1: the model
        galaxy is closest to its own data galaxy), ``kernel_mmd``, ``kernel_mmd_p``, ``auc``,
        ``auc_err``, ``w1_<column>`` [column unit], and ``kl``, ``kl_err`` and the factor split
        [nat per star] with KL; ``meta["summary"]`` the headline numbers), ``model_pairs`` and
        ``data_pairs`` (the points and the reference of Figure 3).

    Raises
    ------
    ValueError
        A model and a suite that do not match, an empty galaxy, KL asked of a suite without
        truth, bad options; each named in the message before any work starts.
    """
    ids = check_compatible(model, suite, galaxy_ids)
    check_compatible(model, suite)  # every reference galaxy must hold stars too
    full_edf = tuple(model.star_names) == schema.STAR_NAMES
    if kl is None:
        kl = getattr(suite, "truth", None) is not None and full_edf
    elif kl and getattr(suite, "truth", None) is None:
        raise ValueError(
            "KL was asked for, but the suite has no exact truth (suite.truth is None); "
            "pass kl=False (KL needs a synthetic suite)"
        )
    elif kl and not full_edf:
        raise ValueError("KL against the truth needs a model over all ten schema star columns")
    max_stars = _positive_int(max_stars, "max_stars", 10)
    n_kl_stars = _positive_int(n_kl_stars, "n_kl_stars", 2)
    kernel_permutations = _positive_int(kernel_permutations, "kernel_permutations")
    max_test_points = _positive_int(max_test_points, "max_test_points", 8)
    if corner_galaxy is not None and corner_galaxy not in ids:
        raise ValueError(f"corner_galaxy {corner_galaxy!r} is not among the judged galaxies")
    if corner_columns is not None:
        unknown = [c for c in corner_columns if c not in model.star_names]
        if unknown or not list(corner_columns):
            raise ValueError(f"corner_columns {list(corner_columns)} must name star columns of "
                             f"the model {list(model.star_names)}")
    formats = [str(f).lstrip(".") for f in formats]
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)

    names = tuple(model.star_names)
    scaler = scaler or StarScaler.from_suite(suite, names)
    held = held_out_ids(model, suite)
    by_factor = "position" in (getattr(model, "marginals", {}) or {})
    t0 = time.perf_counter()
    z_data = {g.id: scaler(g.stars) for g in suite}
    means = np.stack([z_data[g].mean(axis=0) for g in suite.ids])
    data_pairs = _data_pairs(suite, means)
    logm_all = np.array([_log_mass(g) for g in suite])

    rows, model_pair_rows = [], []
    corner_gid = corner_galaxy or next((g for g in ids if g in held), ids[0])
    corner_samples = None
    for k, gid in enumerate(ids):
        t_gal = time.perf_counter()
        galaxy = suite[gid]
        n_model = min(galaxy.n_stars, max_stars)
        conditions = galaxy_conditions(model, galaxy)
        sample = model.sample(n_model, conditions, seed=seed + k,
                              allow_extrapolation=allow_extrapolation)
        z_model = scaler(sample)
        mmd_all = linear_mmd_matrix(z_model.mean(axis=0)[None, :], means)[0]
        own = suite.ids.index(gid)
        for h, value in enumerate(mmd_all):
            model_pair_rows.append((gid, suite.ids[h], _log_mass(galaxy) - logm_all[h],
                                    float(value), gid in held))
        row: dict[str, Any] = {
            "galaxy_id": gid,
            "held_out": gid in held,
            "M_stars": galaxy.conditions["M_stars"].to(u.Msun),
            "n_data": galaxy.n_stars,
            "n_model": n_model,
            "linear_mmd": float(mmd_all[own]),
            "linear_mmd_rank": int(np.sum(mmd_all < mmd_all[own]) + 1),
        }
        if galaxy.n_stars >= 2 and n_model >= 2:
            res = kernel_mmd(z_model, z_data[gid], n_permutations=kernel_permutations,
                             max_points=max_test_points, seed=seed + k)
            row["kernel_mmd"], row["kernel_mmd_p"] = res.mmd2, res.p_value
        else:
            row["kernel_mmd"], row["kernel_mmd_p"] = math.nan, math.nan
        if classifier:
            if min(galaxy.n_stars, n_model) >= 8:
                c = classifier_test(z_model, z_data[gid], epochs=classifier_epochs,
                                    max_points=2 * max_test_points, seed=seed + k)
                row["auc"], row["auc_err"] = c.auc, c.auc_err
            else:
                row["auc"], row["auc_err"] = math.nan, math.nan
        for name, w in wasserstein_distances(sample, galaxy.stars, names).items():
            row[f"w1_{name}"] = w
        if kl:
            kt = kl_to_truth(model, suite, [gid], n_stars=n_kl_stars, seed=seed + k,
                             by_factor=by_factor, allow_extrapolation=allow_extrapolation)
            for col in ("kl", "kl_err", *(
                    c for f in KL_FACTORS for c in (f, f"{f}_err") if by_factor)):
                row[col] = float(kt[col][0])
        rows.append(row)
        if gid == corner_gid:
            corner_samples = (galaxy.stars, sample)
        log.info(
            "evaluate: galaxy %d/%d %s%s (log10 M_stars %.2f): linear MMD %.3g (rank %d), "
            "kernel MMD p %.3f%s%s, %.1f s",
            k + 1, len(ids), gid, " [held out]" if gid in held else "", _log_mass(galaxy),
            row["linear_mmd"], row["linear_mmd_rank"], row["kernel_mmd_p"],
            f", AUC {row['auc']:.3f} +- {row['auc_err']:.3f}" if classifier else "",
            f", KL {row['kl']:.3f} +- {row['kl_err']:.3f}" if kl else "",
            time.perf_counter() - t_gal,
        )

    metrics = QTable(rows=[[r[n] for n in rows[0]] for r in rows], names=list(rows[0]))
    for name in names:
        metrics[f"w1_{name}"] = u.Quantity([r[f"w1_{name}"] for r in rows])
    metrics["M_stars"] = u.Quantity([r["M_stars"] for r in rows])
    model_pairs = QTable(rows=model_pair_rows,
                         names=("model_galaxy", "data_galaxy", "dlogm", "mmd", "held_out"))
    model_pairs["dlogm"].unit = u.dex
    model_pairs.meta["description"] = (
        "linear MMD between the model galaxy drawn at the conditions of model_galaxy and the "
        "data galaxy data_galaxy; dlogm = log10 M_stars(model_galaxy) - log10 M_stars(data)"
    )
    summary = summarise_evaluation(metrics, model_pairs, data_pairs)
    summary["wall_time_s"] = round(time.perf_counter() - t0, 1)
    metrics.meta.update({
        "summary": summary,
        "model": str(getattr(model, "meta", {}).get("name", "model")),
        "suite_source": str(suite.meta.get("source", "")),
        "seed": seed,
        "max_stars": max_stars,
        "kernel_permutations": kernel_permutations,
        "max_test_points": max_test_points,
        "normalised_space": {"columns": list(scaler.names), "mean": scaler.mean.tolist(),
                             "std": scaler.std.tolist(),
                             "note": "log10 Z; standardised over the stars of the suite"},
    })
    log.info("evaluate: done in %.1f s\n%s", summary["wall_time_s"], format_summary(summary))
    result = EvaluationResult(metrics=metrics, model_pairs=model_pairs, data_pairs=data_pairs)
    if out is not None:
        write_table(metrics, out / METRICS_FILE)
        write_table(model_pairs, out / MODEL_PAIRS_FILE)
        write_table(data_pairs, out / DATA_PAIRS_FILE)
        write_figures(result, out, formats, corner_samples=corner_samples,
                      corner_columns=corner_columns, corner_title=f"galaxy {corner_gid}"
                      + (" (held out)" if corner_gid in held else " (trained on)"))
    return result


def summarise_evaluation(metrics: Any, model_pairs: Any, data_pairs: Any) -> dict[str, Any]:
    """Headline numbers of an evaluation (the ``meta["summary"]`` of its metrics table).

    Parameters
    ----------
    metrics : astropy.table.QTable
        Metrics per galaxy.
    model_pairs, data_pairs : astropy.table.Table
        Linear MMD pairs (see :func:`pair_summary`).

    Returns
    -------
    dict
        The numbers of :func:`pair_summary`, plus ``n_galaxies``, ``n_held_out``,
        ``median_auc`` and ``median_auc_held_out``, ``kernel_mmd_rejected`` (share of galaxies
        with a kernel-MMD p-value below 0.05) and, with KL, ``mean_kl`` and ``mean_kl_held_out``
        [nat per star].
    """
    held = np.asarray(metrics["held_out"], dtype=bool)

    def median(col: str, mask: np.ndarray) -> float:
        if col not in metrics.colnames or not mask.any():
            return math.nan
        return float(np.nanmedian(np.asarray(metrics[col], dtype=float)[mask]))

    def mean(col: str, mask: np.ndarray) -> float:
        if col not in metrics.colnames or not mask.any():
            return math.nan
        return float(np.nanmean(np.asarray(metrics[col], dtype=float)[mask]))

    everyone = np.ones_like(held)
    summary: dict[str, Any] = {"n_galaxies": len(metrics), "n_held_out": int(held.sum())}
    summary.update(pair_summary(model_pairs, data_pairs))
    summary["median_auc"] = median("auc", everyone)
    summary["median_auc_held_out"] = median("auc", held)
    p = np.asarray(metrics["kernel_mmd_p"], dtype=float)
    summary["kernel_mmd_rejected"] = float(np.mean(p[np.isfinite(p)] < 0.05)) if np.any(
        np.isfinite(p)) else math.nan
    if "kl" in metrics.colnames:
        summary["mean_kl"] = mean("kl", everyone)
        summary["mean_kl_held_out"] = mean("kl", held)
    return summary


def write_figures(
    result: EvaluationResult,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("png", "pdf"),
    *,
    corner_samples: tuple[Any, Any] | None = None,
    corner_columns: Sequence[str] | None = None,
    corner_title: str | None = None,
    max_corner_stars: int = 20_000,
) -> list[Path]:
    """Write the evaluation figures: ``corner``, ``mmd_mass``, ``metrics_mass``.

    Parameters
    ----------
    result : EvaluationResult
        From :func:`evaluate` (or a cross-validation).
    out_dir : str or path-like
        Folder of the figures.
    formats : sequence of str
        File suffixes, e.g. ``("png", "pdf")``.
    corner_samples : (QTable, QTable), optional
        Data and model stars of one galaxy for the corner plot (skipped when None).
    corner_columns : sequence of str, optional
        Star columns of the corner plot (default: all schema star columns of the samples).
    corner_title : str, optional
        Title of the corner plot.
    max_corner_stars : int
        At most this many stars of each sample in the corner plot (the first ones).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from .evaluation_plots import comparison_corner_plot, metric_mass_plot, mmd_mass_plot
    from .plots import _pyplot

    plt = _pyplot()
    out = Path(out_dir)
    written: list[Path] = []

    def save(fig: Any, stem: str) -> None:
        from .plots import _save

        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            _save(fig, path, dpi=70 if stem == "corner" else 110, tight=stem != "corner")
            written.append(path)
        plt.close(fig)

    if corner_samples is not None:
        data, model = corner_samples
        save(comparison_corner_plot(data[:max_corner_stars], model[:max_corner_stars],
                                    columns=corner_columns, title=corner_title), "corner")
    save(mmd_mass_plot(result["model_pairs"], result["data_pairs"]), "mmd_mass")
    metrics = result["metrics"]
    panels = [m for m in ("kl", "auc", "kernel_mmd") if m in metrics.colnames]
    save(metric_mass_plot(metrics, panels), "metrics_mass")
    return written


"""Cross-validation as in the paper: k leave-out models, each judged on its unseen galaxies.

:func:`cross_validate` draws ``n_models`` seeded leave-out sets of ``n_holdout`` galaxies
(:meth:`GalaxySuite.cross_validation`), trains one model per set on the remaining galaxies, and
judges each model on the galaxies it did not see with :func:`~astroflow_gal.analysis.evaluate.
evaluate` (the linear MMD of each unseen galaxy against every data galaxy, the paper's Figure 3,
and the stronger per-galaxy metrics). Everything lives in one folder::

    OUT/crossval.json              the plan (settings; a rerun with other settings is refused)
    OUT/model_00/checkpoints/      crash-safe training checkpoints of model 0
    OUT/model_00/model.h5          model 0, once trained
    OUT/model_00/metrics.ecsv      its metrics on its held-out galaxies
    OUT/model_00/mmd_model_data.ecsv
    ...
    OUT/metrics.ecsv               all models together (column ``model``)
    OUT/mmd_model_data.ecsv, OUT/mmd_data_data.ecsv, OUT/mmd_mass.*, OUT/metrics_mass.*

A run that is killed continues where it stopped when started again with the same settings:
finished models and their metrics are read back, and the model in training resumes from its last
checkpoint. Progress lines go to the ``astroflow_gal.analysis`` logger at least every
``heartbeat_s`` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import QTable, vstack

from .evaluate import (
    DATA_PAIRS_FILE,
    METRICS_FILE,
    MODEL_PAIRS_FILE,
    EvaluationResult,
    _data_pairs,
    evaluate,
    format_summary,
    summarise_evaluation,
    write_figures,
    write_table,
)
from .two_sample import StarScaler

__all__ = ["cross_validate"]

log = logging.getLogger("astroflow_gal.analysis")

PLAN_FILE = "crossval.json"
MODEL_FILE = "model.h5"
#: GalaxyModel.fit keywords that cross_validate sets itself.
_RESERVED_FIT = ("train", "validation", "checkpoint_dir", "resume", "progress", "name", "seed")


class _Heartbeat:
    """A thread that logs what the run is doing at least every ``interval`` seconds."""

    def __init__(self, interval: float, total: int) -> None:
        self.interval = float(interval)
        self.total = total
        self.model = 0
        self.phase = "starting"
        self.since = time.perf_counter()
        self.t0 = self.since
        self.checkpoints: Path | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crossval-heartbeat", daemon=True)

    def set(self, model: int, phase: str, checkpoints: Path | None = None) -> None:
        self.model, self.phase, self.checkpoints = model, phase, checkpoints
        self.since = time.perf_counter()
        self.report()

    def report(self) -> None:
        now = time.perf_counter()
        extra = ""
        if self.checkpoints is not None and self.checkpoints.is_dir():
            steps = sorted(p.name for p in self.checkpoints.rglob("checkpoint-*.h5"))
            if steps:
                extra = f", last checkpoint {steps[-1]}"
        log.info("crossval: model %d/%d: %s for %.0f s (run %.0f s)%s", self.model + 1,
                 self.total, self.phase, now - self.since, now - self.t0, extra)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _plan(suite: Any, n_models: int, n_holdout: int, seed: int,
          fit_options: Mapping[str, Any], evaluate_options: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({
        "n_models": n_models,
        "n_holdout": n_holdout,
        "seed": seed,
        "fit_options": dict(fit_options),
        "evaluate_options": dict(evaluate_options),
        "suite": {"ids": list(suite.ids), "n_stars": int(suite.n_stars),
                  "source": str(suite.meta.get("source", ""))},
    }, sort_keys=True, default=str))


def _check_plan(path: Path, plan: dict[str, Any]) -> None:
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} is not a readable cross-validation plan: {err}") from err
        if old != plan:
            keys = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise ValueError(
                f"{path.parent} holds a cross-validation with other settings (differing: {keys}); "
                "use another folder, or the settings of that run to continue it"
            )
        return
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(plan, indent=2, sort_keys=True))


def cross_validate(
    suite: Any,
    out_dir: str | os.PathLike,
    *,
    n_models: int = 20,
    n_holdout: int = 5,
    seed: int = 0,
    fit_options: Mapping[str, Any] | None = None,
    evaluate_options: Mapping[str, Any] | None = None,
    heartbeat_s: float = 30.0,
    formats: tuple[str, ...] = ("png", "pdf"),
) -> EvaluationResult:
    """Train ``n_models`` leave-out models and judge each on its unseen galaxies (resumable).

    Parameters
    ----------
    suite : GalaxySuite
        All galaxies (the paper: 95, of which each model leaves out 5).
    out_dir : str or path-like
        Folder of the run (created if missing); see the module description for its layout.
    n_models : int
        Number of leave-out models (the paper: 20).
    n_holdout : int
        Galaxies left out of each model's training (the paper: 5).
    seed : int
        Seed of the leave-out sets; model ``k`` is trained with seed ``seed + k`` and judged with
        seed ``seed + 1000 k``.
    fit_options : mapping, optional
        Keywords of :meth:`GalaxyModel.fit` (``epochs`` is needed; e.g. ``max_steps``,
        ``batch_size``, ``flow_config``, ``marginals``, ``checkpoint_every``).
    evaluate_options : mapping, optional
        Keywords of :func:`~astroflow_gal.analysis.evaluate.evaluate` (``max_stars``,
        ``kernel_permutations``, ``classifier``, ...). ``allow_extrapolation`` is True unless
        given: held-out galaxies at the edges of the suite are judged too, as in the paper.
    heartbeat_s : float
        Longest pause between progress lines [s].
    formats : tuple of str
        Formats of the figures.

    Returns
    -------
    EvaluationResult
        ``metrics`` (one row per held-out galaxy of every model, column ``model``),
        ``model_pairs`` and ``data_pairs``; also written into ``out_dir``.

    Raises
    ------
    ValueError
        On bad settings, or when ``out_dir`` holds a run with other settings.
    """
    from ..model import GalaxyModel

    fit_options = dict(fit_options or {})
    evaluate_options = dict(evaluate_options or {})
    # A galaxy left out at the edge of the suite lies outside its model's training range: it is
    # judged anyway, as in the paper (the ExtrapolationWarning still shows).
    evaluate_options.setdefault("allow_extrapolation", True)
    reserved = sorted(set(fit_options) & set(_RESERVED_FIT))
    if reserved:
        raise ValueError(f"fit_options may not set {reserved}: cross_validate sets them")
    if "epochs" not in fit_options:
        raise ValueError("fit_options needs 'epochs' (passes over the training stars)")
    bad = sorted(set(evaluate_options) & {"galaxy_ids", "scaler", "seed", "formats"})
    if bad:
        raise ValueError(f"evaluate_options may not set {bad}: cross_validate sets them")
    for name, value, low in (("n_models", n_models, 1), ("n_holdout", n_holdout, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not heartbeat_s > 0:
        raise ValueError(f"heartbeat_s must be positive, got {heartbeat_s!r}")
    splits = suite.cross_validation(n_models=n_models, n_holdout=n_holdout, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_plan(out / PLAN_FILE,
                _plan(suite, n_models, n_holdout, seed, fit_options, evaluate_options))

    scaler = StarScaler.from_suite(suite)
    metrics_parts, pair_parts = [], []
    with _Heartbeat(heartbeat_s, n_models) as beat:
        for k, split in enumerate(splits):
            folder = out / f"model_{k:02d}"
            folder.mkdir(exist_ok=True)
            model_file = folder / MODEL_FILE
            if model_file.exists():
                beat.set(k, "trained earlier, reading it back")
                model = GalaxyModel.load(model_file)
            else:
                beat.set(k, f"training without {list(split.holdout_ids)}", folder / "checkpoints")
                model = GalaxyModel.fit(
                    split.train, validation=split.holdout,
                    checkpoint_dir=folder / "checkpoints", resume=True, progress=False,
                    seed=seed + k, name=f"cross-validation model {k} of {n_models}",
                    **fit_options,
                )
                model.save(model_file)
            metrics_file, pairs_file = folder / METRICS_FILE, folder / MODEL_PAIRS_FILE
            if metrics_file.exists() and pairs_file.exists():
                beat.set(k, "evaluated earlier, reading the metrics back")
                metrics, pairs = QTable.read(metrics_file), QTable.read(pairs_file)
            else:
                beat.set(k, "evaluating on its held-out galaxies")
                result = evaluate(model, suite, None, galaxy_ids=list(split.holdout_ids),
                                  scaler=scaler, seed=seed + 1000 * k, **evaluate_options)
                metrics, pairs = result["metrics"], result["model_pairs"]
                write_table(pairs, pairs_file)
                write_table(metrics, metrics_file)  # last: its presence marks the model done
            metrics.add_column(np.full(len(metrics), k), name="model", index=0)
            pairs.add_column(np.full(len(pairs), k), name="model", index=0)
            metrics.meta.clear()
            metrics_parts.append(metrics)
            pair_parts.append(pairs)
        beat.set(n_models - 1, "combining the tables")
    metrics = vstack(metrics_parts, metadata_conflicts="silent")
    model_pairs = vstack(pair_parts, metadata_conflicts="silent")
    z_means = np.stack([scaler(g.stars).mean(axis=0) for g in suite])
    data_pairs = _data_pairs(suite, z_means)
    summary = summarise_evaluation(metrics, model_pairs, data_pairs)
    summary["n_models"] = n_models
    metrics.meta = {"summary": summary, "n_models": n_models, "n_holdout": n_holdout,
                    "seed": seed}
    result = EvaluationResult(metrics=metrics, model_pairs=model_pairs, data_pairs=data_pairs)
    write_table(data_pairs, out / DATA_PAIRS_FILE)
    write_table(model_pairs, out / MODEL_PAIRS_FILE)
    write_table(metrics, out / METRICS_FILE)
    write_figures(result, out, formats)
    log.info("crossval: %d models done\n%s", n_models, format_summary(summary))
    return result

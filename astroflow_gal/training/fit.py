"""From a suite of galaxies to trained flows: the orchestration behind ``GalaxyModel.fit``.

:func:`fit_flows` fits the normaliser on the training stars, builds one flow per target (the full
eDF and any marginals), trains each with :func:`~astroflow_gal.training.trainer.train_flow` (each
with its own checkpoint folder), and returns the pieces a
:class:`~astroflow_gal.model.GalaxyModel` is made of. It returns no model: this layer sits below
``model.py``, which wraps the result.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..flow import ConditionalSplineFlow
from ..normalizer import Normalizer
from .data import TrainingData
from .trainer import train_flow

__all__ = ["FitResult", "fit_flows"]

# training options recorded in the model's meta["training"]
_RECORDED = (
    "epochs", "batch_size", "lr", "schedule", "optimizer", "max_steps", "weight_decay",
    "grad_clip", "condition_noise", "balance_galaxies",
)


@dataclass
class FitResult:
    """The trained pieces of a model.

    Attributes
    ----------
    flows : dict of str to ConditionalSplineFlow
        One trained flow per target (``"edf"`` and the marginals), with its best epoch's weights.
    normalizer : Normalizer
        Flow-space transforms of the star columns and conditions, fitted on the training stars.
    training_range : dict of str to [float, float]
        Range of each condition over the training galaxies, schema units (Msun, Gyr, 1).
    meta : dict
        Name, dates, version, suite provenance, ids and the training settings.
    history : dict
        Per target, the training history of :func:`~astroflow_gal.training.train_flow`.
    """

    flows: dict[str, ConditionalSplineFlow]
    normalizer: Normalizer
    training_range: dict[str, list[float]]
    meta: dict[str, Any]
    history: dict[str, Any]


def _training_data(
    suite: Any, normalizer: Normalizer, names: Sequence[str], condition_names: Sequence[str]
) -> TrainingData | None:
    if suite is None or len(suite) == 0:
        return None
    stars, galaxy, conds = suite.to_arrays(tuple(names), tuple(condition_names))
    sub = normalizer.subset(names)
    x, _ = sub.stars_to_flow(torch.from_numpy(stars), torch.from_numpy(conds[galaxy]))
    return TrainingData(
        x=x.float(),
        galaxy_index=torch.from_numpy(galaxy).long(),
        conditions=sub.conditions_to_flow(torch.from_numpy(conds)).float(),
    )


def fit_flows(
    train: Any,
    validation: Any = None,
    *,
    targets: Mapping[str, Sequence[str]],
    condition_names: Sequence[str],
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    flow_config: Mapping[str, Any] | None = None,
    name: str | None = None,
    velocity_frame: str = "cartesian",
    scale_with_mass: Sequence[str] = (),
    **train_options: Any,
) -> FitResult:
    """Train one flow per target on a suite of galaxies by maximum likelihood.

    Parameters
    ----------
    train : GalaxySuite
        Training galaxies (stars in schema units: kpc, km/s, 1, dex, Gyr; conditions Msun, Gyr,
        Gyr, 1).
    validation : GalaxySuite, optional
        Held-out galaxies; their loss picks each flow's best epoch.
    targets : mapping of str to sequence of str
        Target name -> the star columns its flow is over, in order; the first target's columns
        fit the normaliser (``{"edf": STAR_NAMES, "position": ("x", "y", "z")}``).
    condition_names : sequence of str
        Conditions the flows are conditioned on, from the schema.
    seed : int
        Seed of the first target's initial weights and data order; target ``k`` uses
        ``seed + k``.
    checkpoint_dir : path-like, optional
        Folder of crash-safe checkpoints, one sub-folder per target.
    flow_config : mapping, optional
        Architecture overrides of :class:`~astroflow_gal.flow.ConditionalSplineFlow`.
    name : str, optional
        Name recorded in ``meta``.
    velocity_frame : {"cartesian", "cylindrical"}
        Frame of the velocities in flow space (:meth:`~astroflow_gal.normalizer.Normalizer.fit`).
    scale_with_mass : sequence of {"position", "velocity"}
        Column groups scaled by a per-galaxy mass power law (the same method).
    **train_options
        Passed on to :func:`~astroflow_gal.training.train_flow` for every target: ``epochs``
        (required), ``batch_size`` (stars), ``lr``, ``schedule``, ``optimizer``, ``device``,
        ``checkpoint_every`` (steps), ``resume``, ``progress``, ``max_steps``, ...

    Returns
    -------
    FitResult
    """
    if "epochs" not in train_options:
        raise TypeError("fit_flows() needs the number of epochs (epochs=...)")
    if len(train) == 0:
        raise ValueError("the training suite holds no galaxies")
    if not targets:
        raise ValueError("no targets to train")
    condition_names = tuple(condition_names)
    first = tuple(next(iter(targets.values())))
    stars, galaxy, conds = train.to_arrays(first, condition_names)
    normalizer = Normalizer.fit(stars, conds, first, condition_names,
                                velocity_frame=velocity_frame,
                                scale_with_mass=tuple(scale_with_mass), galaxy_index=galaxy)
    config = dict(flow_config or {})

    flows: dict[str, ConditionalSplineFlow] = {}
    histories: dict[str, Any] = {}
    for offset, (kind, names) in enumerate(targets.items()):
        names = tuple(names)
        flow = ConditionalSplineFlow(len(names), len(condition_names), **config, seed=seed + offset)
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / kind
        if ckpt is not None:
            ckpt.mkdir(parents=True, exist_ok=True)
        result = train_flow(
            flow,
            _training_data(train, normalizer, names, condition_names),
            _training_data(validation, normalizer, names, condition_names),
            seed=seed + offset,
            checkpoint_dir=ckpt,
            **train_options,
        )
        flow.load_state_dict(result.best_state)
        flows[kind] = flow
        histories[kind] = result.history
    training_range = {
        n: [float(conds[:, i].min()), float(conds[:, i].max())]
        for i, n in enumerate(condition_names)
    }
    suite_meta = dict(getattr(train, "meta", {}) or {})
    meta = {
        "name": name or "astroflow_gal model",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "astroflow_gal_version": __version__,
        "suite_source": suite_meta.get("source"),
        "suite_seed": suite_meta.get("seed"),
        "suite_parameters": suite_meta.get("parameters"),
        "n_galaxies": suite_meta.get("n_galaxies")
        or (suite_meta.get("parameters") or {}).get("n_galaxies")
        or len(train) + (len(validation) if validation is not None else 0),
        "train_ids": list(getattr(train, "ids", [])),
        "holdout": list(getattr(validation, "ids", [])) if validation is not None else [],
        "n_train_stars": int(stars.shape[0]),
        "training": {
            **{key: train_options.get(key) for key in _RECORDED},
            "seed": seed,
            "velocity_frame": velocity_frame,
            "scale_with_mass": list(scale_with_mass),
        },
    }
    return FitResult(flows, normalizer, training_range, meta, histories)

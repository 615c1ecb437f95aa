"""``GalaxyModel``: the learned eDF as the astronomer holds it.

A flow, the normaliser between schema units and flow space, the condition names, the training range
and the model's history, with sampling to astropy tables, the exact physical eDF, and safe files.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable

from ._version import __version__
from .data import schema
from .extrapolation import TrainingConditions
from .flow import ConditionalSplineFlow, FlowEnsemble, flow_from_config
from .flow.galacticflow import read_galacticflow_file
from .inputs import (
    check_training_range,
    parse_conditions,
    positive_int,
    sample_conditions,
    stars_to_array,
)
from .io import FileFormatError, read_tree, write_tree
from .normalizer import ColumnTransform, Normalizer

__all__ = ["GalaxyModel", "MARGINALS", "SAMPLE_BLOCK"]

FORMAT_NAME = "astroflow_gal.GalaxyModel"
#: 1: one dataset per weight tensor; 2: each flow's weights packed into one dataset per dtype;
#: 3: packed weights may hold matrices as 8-bit rows with a scale per row;
#: 4: or as 6-bit rows (four values in three bytes) with a float16 scale per row.
#: A file is written with the lowest version that describes it (4 only with 6-bit rows), so
#: a package that reads version 3 still reads every file that does not need version 4.
FORMAT_VERSION = 4
#: Latent draws come in blocks of this many stars, each from its own seeded generator, so a
#: sample does not depend on the batch size or on how many processes share the work.
SAMPLE_BLOCK = 65_536
DEFAULT_BATCH = 65_536
_MIN_ROWS = 64
_BATCH_QUANTUM = 1024
#: Marginal flows a model may carry, and the star columns each is over.
MARGINALS: dict[str, tuple[str, ...]] = {
    "position": schema.POSITION_NAMES,
    "phase_space": schema.PHASE_SPACE_NAMES,
}


def _block_seed(seed: int, block: int, stream: int = 0) -> int:
    """Seed of the latent generator of one block (independent streams per block).

    Stream 0 draws the flow's latents; stream 1 an ensemble's member choice.
    """
    entropy = [int(seed), int(block)] + ([int(stream)] if stream else [])
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _block_latents(seed: int, block: int, n_rows: int, dim: int, stream: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(_block_seed(seed, block, stream))
    return torch.randn(n_rows, dim, generator=generator, dtype=torch.float32)


def _batch_rows(batch_size: int | None) -> int:
    """Stars per flow evaluation when sampling: a multiple of 1,024 (at least 1,024).

    Batches start at multiples of 1,024 inside each block, so every star meets the same
    matrix-product code path whatever the batch size, and comes out bit-identical.
    """
    if batch_size is None:
        return DEFAULT_BATCH
    rows = positive_int(batch_size, "batch_size") // _BATCH_QUANTUM * _BATCH_QUANTUM
    return min(SAMPLE_BLOCK, max(_BATCH_QUANTUM, rows))


#: Precisions in which :meth:`GalaxyModel.save` may store the network weights.
#: For ``"int8"`` and ``"int6"``: the dtype of every weight not stored in rows of integers.
_WEIGHT_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "int8": torch.float16,
    "int6": torch.float16,
}
#: Bits per weight of the matrices that ``"int8"`` and ``"int6"`` store as integer rows.
_ROW_BITS = {"int8": 8, "int6": 6}
#: ``weights_dtype="int8"`` (``"int6"``) stores weight matrices at least this large in both
#: dimensions (the networks' hidden and output layers) in 8 (6) bits; the narrow input layers and
#: the 1 x 1 convolutions' LU factors, which cost KL when rounded so, stay float16.
INT8_MIN_WIDTH = 32

_progress_log = logging.getLogger("astroflow_gal.sampling")
# sample_to_file reports its progress by default from this many stars on
_REPORT_FROM_STARS = 500_000


def _show_progress(progress: bool | None, n: int) -> bool:
    if progress is not None:
        return bool(progress)
    return n >= 500_000 and sys.stderr.isatty()


def _describe_conditions(names: Sequence[str], values: np.ndarray) -> dict[str, Any]:
    # Numbers and unit strings that a program reads back (and that survive ECSV and HDF5 meta).
    out: dict[str, Any] = {}
    for name, value in zip(names, np.atleast_1d(values), strict=True):
        out[name] = {"value": float(value), "unit": schema.column(name).unit.to_string()}
    return out


def _mass_per_star(names: Sequence[str], values: np.ndarray, n: int) -> dict[str, Any] | None:
    # Each sampled star carries M_stars / N of mass (None for a model without M_stars).
    if "M_stars" not in names or n < 1:
        return None
    m_stars = float(np.atleast_1d(values)[list(names).index("M_stars")])
    return {"value": m_stars / n, "unit": schema.column("M_stars").unit.to_string()}


class GalaxyModel:
    """A learned extended distribution function of galaxies, in physical units.

    Parameters
    ----------
    flow : ConditionalSplineFlow or FlowEnsemble
        The flow over the star columns in flow space, or a mixture of such flows
        (:meth:`ensemble`).
    normalizer : Normalizer
        Maps star columns and conditions between schema units and flow space.
    training_range : mapping of str to (float, float), optional
        Range of every condition over the training galaxies, in schema units. Conditions outside
        it raise an :class:`~astroflow_gal.inputs.ExtrapolationWarning`.
    training_conditions : TrainingConditions or mapping, optional
        The conditions (schema units) and ids of the training galaxies: requested conditions are
        then judged jointly, by their distance to the nearest training galaxy
        (:mod:`astroflow_gal.extrapolation`). Models without them check each condition alone
        against ``training_range``.
    meta : dict, optional
        JSON-able description: name, training suite (seed, size, held-out ids), options.
    history : dict, optional
        Training history (per-epoch losses, learning rate, wall time).
    marginals : mapping of str to ConditionalSplineFlow, optional
        Flows of marginal densities, keyed by a name in :data:`MARGINALS`.
    """

    def __init__(
        self,
        flow: ConditionalSplineFlow | FlowEnsemble,
        normalizer: Normalizer,
        *,
        training_range: Mapping[str, Sequence[float]] | None = None,
        training_conditions: TrainingConditions | Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        history: Mapping[str, Any] | None = None,
        marginals: Mapping[str, ConditionalSplineFlow] | None = None,
    ) -> None:
        if flow.dim != len(normalizer.star_names):
            raise ValueError(
                f"flow has {flow.dim} data dimensions, normaliser {len(normalizer.star_names)}"
            )
        if flow.cond_dim != len(normalizer.condition_names):
            raise ValueError(
                f"flow has {flow.cond_dim} conditions, normaliser "
                f"{len(normalizer.condition_names)}"
            )
        self.flow = flow.eval()
        self.normalizer = normalizer
        self.training_range = (
            {k: [float(v[0]), float(v[1])] for k, v in training_range.items()}
            if training_range
            else None
        )
        if isinstance(training_conditions, Mapping):
            training_conditions = TrainingConditions.from_dict(training_conditions)
        if training_conditions is not None and (
            tuple(training_conditions.names) != tuple(normalizer.condition_names)
        ):
            raise ValueError(
                f"training conditions are for {training_conditions.names}, the model uses "
                f"{normalizer.condition_names}"
            )
        self.training_conditions: TrainingConditions | None = training_conditions
        self.meta = dict(meta or {})
        self.history = dict(history or {})
        self.marginals: dict[str, ConditionalSplineFlow] = {}
        for kind, marginal in (marginals or {}).items():
            if kind not in MARGINALS:
                raise ValueError(f"unknown marginal {kind!r}; known: {sorted(MARGINALS)}")
            if marginal.dim != len(MARGINALS[kind]):
                raise ValueError(f"marginal {kind} flow must have {len(MARGINALS[kind])} dims")
            self.marginals[kind] = marginal.eval()

    # -- description ----------------
    @property
    def star_names(self) -> tuple[str, ...]:
        """Star columns of the eDF, in flow order."""
        return self.normalizer.star_names

    @property
    def condition_names(self) -> tuple[str, ...]:
        """Galaxy conditions, in flow order."""
        return self.normalizer.condition_names

    @property
    def device(self) -> torch.device:
        return next(self.flow.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.flow.parameters()).dtype

    @property
    def edf_unit(self) -> u.UnitBase:
        """Unit of :meth:`edf`: the inverse of the product of the star columns' units."""
        return schema.edf_unit(self.star_names)

    @property
    def architecture(self) -> str:
        """The eDF flow's architecture in words (each member's, for a mixture)."""
        configs = self.flow.config.get("members", [self.flow.config])
        text = " + ".join(
            f"{cfg['n_layers']} layers, {cfg['bins']} bins, {cfg['hidden_layers']}x{cfg['hidden']}"
            for cfg in configs
        )
        return f"mixture of {len(configs)} flows ({text})" if len(configs) > 1 else text

    def __repr__(self) -> str:
        return (
            f"<GalaxyModel {self.meta.get('name', 'unnamed')}: {len(self.star_names)}-D eDF over "
            f"{', '.join(self.star_names)} | conditions {', '.join(self.condition_names)} | "
            f"{self.architecture}"
            f"{' | marginals ' + ', '.join(self.marginals) if self.marginals else ''}>"
        )

    @property
    def n_members(self) -> int:
        """Number of flows whose mixture is the eDF (1 for a single flow, see :meth:`ensemble`)."""
        return len(self.flow.members) if isinstance(self.flow, FlowEnsemble) else 1

    def members(self) -> list[GalaxyModel]:
        """The mixture's flows, each as a model of its own (a single flow: ``[self]``).

        Each member shares this model's networks (no copy), normaliser, training galaxies and
        marginal flows; its ``meta`` is this model's with ``"member"`` set to its index. The
        spread of the members' predictions (profiles, moments, ``log_edf``) is a measure of
        how much the fit itself is uncertain, and ``GalaxyModel.ensemble(model.members() +
        [other])`` adds a flow to a mixture.

        Returns
        -------
        list of GalaxyModel
            One model per member, in the order of ``flow.members``; their mixture weights are
            ``flow.weights``.
        """
        if not isinstance(self.flow, FlowEnsemble):
            return [self]
        histories = self.history.get("members") or [
            {"edf": h} for h in self.history.get("edf_members") or []
        ]
        meta = {k: v for k, v in self.meta.items() if k not in ("members", "ensemble")}
        return [
            GalaxyModel(
                flow,
                self.normalizer,
                training_range=self.training_range,
                training_conditions=self.training_conditions,
                meta={**meta, "member": k},
                history=histories[k] if k < len(histories) else {},
                marginals=self.marginals,
            )
            for k, flow in enumerate(self.flow.members)
        ]

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> GalaxyModel:
        """Move every network to ``device`` and/or cast it to ``dtype``; returns ``self``."""
        for net in [self.flow, *self.marginals.values()]:
            net.to(device=device, dtype=dtype)
        return self

    @contextlib.contextmanager
    def _flow_on(self, device: str | torch.device | None) -> Iterator[None]:
        """Run the block with the main flow on ``device``, then put it back where it was."""
        previous = self.device
        if device is None or torch.device(device) == previous:
            yield
            return
        self.flow.to(device)
        try:
            yield
        finally:
            self.flow.to(previous)

    # -- conditions ----------------
    def _conditions(
        self,
        conditions: Any,
        keywords: Mapping[str, Any],
        allow_extrapolation: bool,
    ) -> np.ndarray:
        values = parse_conditions(self.condition_names, conditions, keywords)
        if self.training_conditions is not None:
            # Judged jointly against the training galaxies (astroflow_gal.extrapolation).
            self.training_conditions.check(values, allow_extrapolation)
        else:
            # Files without the training galaxies' conditions: each condition alone.
            check_training_range(
                values,
                self.condition_names,
                self.training_range,
                max_excess=math.inf if allow_extrapolation else 1.0,
            )
        return values

    def _positive_columns(self) -> tuple[str, ...]:
        # Values outside a column's support are not an input error: the eDF is zero there, and
        # the normaliser gives them log f = -inf.
        return ()

    @property
    def support(self) -> dict[str, tuple[float, float]]:
        """Support ``(lower, upper)`` of every star column in schema units (``inf`` when open).

        The eDF is zero outside it: sampled stars always lie inside, and :meth:`log_edf` is
        ``-inf`` for stars outside (e.g. ``age`` outside ``(0, 13.8)`` Gyr or ``Z <= 0``).
        """
        return self.normalizer.star_supports

    def _flow_conditions(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(values, dtype=torch.float64)
        return self.normalizer.conditions_to_flow(c).to(self.device, self.dtype)

    # -- sampling ----------------
    def _latent_batches(
        self, n: int, seed: int, batch_size: int, blocks: Sequence[int] | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row, latent batch) over the given blocks of an ``n``-star sample."""
        n_blocks = -(-n // SAMPLE_BLOCK)
        for block in range(n_blocks) if blocks is None else blocks:
            lo = block * SAMPLE_BLOCK
            rows = min(n, lo + SAMPLE_BLOCK) - lo
            z = _block_latents(seed, block, rows, self.flow.dim)
            if self.flow.latent_dim > self.flow.dim:
                # An ensemble's member choice: its own stream, so the members' latents are
                # those of a single flow with the same seed.
                z = torch.cat([z, _block_latents(seed, block, rows, 1, stream=1)], dim=1)
            for start in range(0, rows, batch_size):
                yield lo + start, z[start : start + batch_size]

    def _sample_rows(
        self, z: torch.Tensor, c_flow: torch.Tensor, values: np.ndarray
    ) -> np.ndarray:
        rows = z.shape[0]
        if rows < _MIN_ROWS:
            # Matrix products of a handful of rows take other code paths in BLAS libraries and
            # round differently; padding keeps a star's value independent of the batch size.
            z = torch.cat([z, z.new_zeros(_MIN_ROWS - rows, z.shape[1])])
        x_flow = self.flow.from_latent(z.to(self.device, self.dtype), c_flow)
        x_flow = x_flow[:rows]
        physical = self.normalizer.stars_from_flow(
            x_flow.to("cpu", torch.float64), torch.from_numpy(np.asarray(values, np.float64))
        )
        return physical.numpy()

    def _prepare_sample(
        self, n: int, conditions: Any, keywords: Mapping[str, Any], seed: int | None,
        allow_extrapolation: bool,
    ) -> tuple[np.ndarray, torch.Tensor, int]:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        values = self._conditions(conditions, keywords, allow_extrapolation)
        if values.ndim != 1:
            raise ValueError("sample() draws one galaxy: give one value per condition")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return values, self._flow_conditions(values), int(seed)

    def _table_meta(self, values: np.ndarray, seed: int, n: int) -> dict[str, Any]:
        return {
            "conditions": _describe_conditions(self.condition_names, values),
            "seed": seed,
            "n_stars": int(n),
            "mass_per_star": _mass_per_star(self.condition_names, values, n),
            "model": self.meta.get("name", "unnamed"),
            "model_id": self.meta.get("model_id"),
            "astroflow_gal_version": __version__,
            "frame": "galaxy rest frame: centre at origin, disc angular momentum along +z",
        }

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        conditions: Mapping[str, Any] | Any = None,
        /,
        *,
        seed: int | None = None,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
        allow_extrapolation: bool = False,
        **condition_values: Any,
    ) -> QTable:
        """Draw the stars of one galaxy.

        Parameters
        ----------
        n : int
            Number of stars.
        conditions : mapping or astropy Row, optional
            The galaxy's conditions by name; or give them as keywords.
        seed : int, optional
            Random seed; the same seed gives the same stars whatever ``batch_size`` or device.
            Drawn from the operating system when omitted, and recorded in ``meta``.
        device : str or torch.device, optional
            Draw there (e.g. ``"cuda"``): the flow is moved there for this call and moved back to
            where it was afterwards (use :meth:`to` to move the model for good).
        batch_size : int, optional
            Stars per flow evaluation (bounds memory), rounded down to a multiple of 1,024;
            default 65,536.
        progress : bool, optional
            Show a progress bar; by default for large samples on a terminal.
        allow_extrapolation : bool
            Accept conditions far outside the training range (a warning is still given).
        **condition_values
            Conditions as keywords: ``M_stars`` (mass, Msun if a plain number), ``tau50`` and
            ``tau10`` (time, Gyr), ``Z_av`` (dimensionless); Quantities in any compatible unit.

        Returns
        -------
        astropy.table.QTable
            One row per star, the schema's columns in their units (kpc, km/s, dimensionless Z,
            dex, Gyr); ``meta`` records the conditions, the seed and the model.
        """
        from tqdm.auto import tqdm

        batch = _batch_rows(batch_size)
        with self._flow_on(device):
            values, c_flow, seed = self._prepare_sample(
                n, conditions, condition_values, seed, allow_extrapolation
            )
            out = np.empty((n, self.flow.dim), dtype=np.float64)
            with tqdm(total=n, unit="star", disable=not _show_progress(progress, n)) as bar:
                for start, z in self._latent_batches(n, seed, batch):
                    out[start : start + z.shape[0]] = self._sample_rows(z, c_flow, values)
                    bar.update(z.shape[0])
        # Columns are views of one buffer turned into Quantities without copying.
        table = QTable(
            {
                name: u.Quantity(out[:, i], schema.column(name).unit, copy=False)
                for i, name in enumerate(self.star_names)
            },
            copy=False,
        )
        table.meta.update(self._table_meta(values, seed, n))
        return table

    def sample_to_file(
        self,
        n: int,
        path: str | os.PathLike,
        conditions: Mapping[str, Any] | Any = None,
        /,
        *,
        seed: int | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        allow_extrapolation: bool = False,
        **condition_values: Any,
    ) -> Path:
        """Stream a large sample to HDF5 in bounded memory.

        Under ``torchrun`` (or with explicit ``rank``/``world_size``) every process writes a shard
        ``<path>.rank<r>of<W>.h5`` holding its share of one logical sample (the same seed gives the
        same stars however many processes), and rank 0 joins them into ``path`` as an HDF5 virtual
        dataset once all shards exist. Read the result with
        :func:`astroflow_gal.samples.read_sample`.

        Parameters
        ----------
        n : int
            Number of stars.
        path : str or path-like
            Output file (HDF5); written atomically.
        conditions, seed, batch_size, allow_extrapolation, **condition_values
            As for :meth:`sample`; ``seed`` must be given when several processes share the work.
        progress : bool, optional
            True: a progress bar; False: silent; None (default): for 500,000 stars or more, a bar
            on a terminal, otherwise a line at the start and at least every 30 s (logger
            ``astroflow_gal.sampling``, or stderr when logging is not configured).
        rank, world_size : int, optional
            This process's rank and the number of processes; taken from ``torch.distributed`` when
            it is initialised.

        Returns
        -------
        pathlib.Path
            The file written by this process (the joined file on rank 0).
        """
        from .samples import join_sample_shards, shard_path, write_sample_file
        from .training.progress import ProgressLog

        rank, world_size = _rank_and_world(rank, world_size)
        if world_size > 1 and seed is None:
            raise ValueError("give a seed when several processes share one sample")
        values, c_flow, seed = self._prepare_sample(
            n, conditions, condition_values, seed, allow_extrapolation
        )
        batch = _batch_rows(batch_size)
        n_blocks = -(-n // SAMPLE_BLOCK)
        blocks = list(range(rank, n_blocks, world_size))
        n_mine = sum(min(n, (b + 1) * SAMPLE_BLOCK) - b * SAMPLE_BLOCK for b in blocks)
        meta = self._table_meta(values, seed, n)
        target = Path(path) if world_size == 1 else shard_path(path, rank, world_size)

        # A bar on a terminal, otherwise a line at the start and at least every 30 s (rank 0).
        report = progress is not False and rank == 0 and (
            bool(progress) or n_mine >= _REPORT_FROM_STARS
        )

        def rows() -> Iterator[np.ndarray]:
            with ProgressLog(n_mine, desc=f"sampling {target.name}", unit="star", bar=progress,
                             enabled=report, logger=_progress_log) as counter:
                with torch.inference_mode():
                    for _, z in self._latent_batches(n, seed, batch, blocks):
                        out = self._sample_rows(z, c_flow, values)
                        counter.update(len(out))
                        yield out

        write_sample_file(
            target,
            rows(),
            n_mine,
            self.star_names,
            meta | {"rank": rank, "world_size": world_size, "blocks": blocks},
            progress=False,
        )
        if world_size == 1:
            return target
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        if rank == 0:
            return join_sample_shards(path, n, world_size, SAMPLE_BLOCK)
        return target

    # -- densities ----------------
    def log_edf_torch(
        self, x: torch.Tensor, c: torch.Tensor, *, allow_extrapolation: bool = False
    ) -> torch.Tensor:
        """Differentiable natural log of the physical eDF.

        The conditions are checked once per call, before any work, as in :meth:`log_edf`: NaN or
        infinite values, non-positive ``M_stars`` or ``Z_av``, and values outside the training
        range (a warning, or :class:`~astroflow_gal.inputs.ConditionRangeError` when far
        outside or breaking a physical rule). The conditions are copied to the CPU once for this
        (C numbers per row, one transfer per call). The star values ``x`` are not checked: NaN in
        ``x`` gives NaN in the result.

        Parameters
        ----------
        x : torch.Tensor
            Star values, shape (N, D), columns :attr:`star_names` in schema units (kpc, km/s,
            dimensionless Z, dex, Gyr). Gradients flow back to ``x``.
        c : torch.Tensor
            Conditions in schema units (Msun, Gyr, Gyr, dimensionless), shape (C,) for one galaxy
            or (N, C) per star.
        allow_extrapolation : bool
            Accept conditions far outside the training range (a warning is still given).

        Returns
        -------
        torch.Tensor
            ``log f`` with ``f`` in :attr:`edf_unit`, shape (N,), in ``x``'s dtype.

        Raises
        ------
        ValueError
            If ``c`` has the wrong shape or holds NaN, infinite or non-positive masses or
            metallicities.
        astroflow_gal.inputs.ConditionRangeError
            If the conditions lie far outside the training range.
        """
        self._check_condition_tensor(c, allow_extrapolation)
        return self._log_density(self.flow, self.normalizer, x, c)

    def _check_condition_tensor(self, c: torch.Tensor, allow_extrapolation: bool) -> None:
        names = self.condition_names
        if not isinstance(c, torch.Tensor):
            raise TypeError(f"c must be a torch.Tensor, got {type(c).__name__}")
        if c.dim() not in (1, 2) or c.shape[-1] != len(names):
            raise ValueError(
                f"c must have shape ({len(names)},) or (N, {len(names)}) for conditions "
                f"{list(names)}, got {tuple(c.shape)}"
            )
        # one copy of the (N, C) conditions to the CPU: C numbers per star, small beside the flow
        values = c.detach().to("cpu", torch.float64).numpy()
        columns = values.T if values.ndim == 2 else values
        self._conditions(dict(zip(names, columns, strict=True)), {}, allow_extrapolation)

    def _log_density(
        self, flow: ConditionalSplineFlow, normalizer: Normalizer, x: torch.Tensor, c: torch.Tensor
    ) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != flow.dim:
            raise ValueError(f"x must have shape (N, {flow.dim}), got {tuple(x.shape)}")
        y, log_jac = normalizer.stars_to_flow(x, c)
        c_flow = normalizer.conditions_to_flow(c.to(x.dtype))
        log_p = flow.log_prob(y.to(self.dtype), c_flow.to(self.dtype))
        return log_p.to(x.dtype) + log_jac

    def log_edf(
        self,
        stars: Any,
        conditions: Mapping[str, Any] | Any = None,
        /,
        *,
        batch_size: int | None = None,
        allow_extrapolation: bool = False,
        **condition_values: Any,
    ) -> np.ndarray:
        """Natural log of the eDF at the given stars, ``f`` in :attr:`edf_unit`.

        Parameters
        ----------
        stars : astropy QTable, mapping of columns, or array (N, D) in schema units
            The stars; columns with units are converted.
        conditions, **condition_values
            One galaxy's conditions (scalars), or one value per star (arrays of length N); as for
            :meth:`sample`.
        batch_size : int, optional
            Stars per flow evaluation.
        allow_extrapolation : bool
            Accept conditions far outside the training range.

        Returns
        -------
        numpy.ndarray
            ``log f``, shape (N,), float64; ``-inf`` for stars outside the support of a column
            (:attr:`support`: ``age`` outside ``(0, 13.8)`` Gyr, ``Z <= 0``), where the eDF is
            zero.
        """
        arr = stars_to_array(stars, self.star_names, self._positive_columns())
        values = self._conditions(conditions, condition_values, allow_extrapolation)
        return self._evaluate(self.flow, self.normalizer, arr, values, batch_size)

    def edf(
        self,
        stars: Any,
        conditions: Mapping[str, Any] | Any = None,
        /,
        **kwargs: Any,
    ) -> u.Quantity:
        """The eDF at the given stars, a Quantity in 1/(kpc3 (km/s)3 dex2 Gyr).

        Normalised to 1 over the star columns; ``edf * M_stars`` is the mass-weighted DF. Takes
        the arguments of :meth:`log_edf`.
        """
        return np.exp(self.log_edf(stars, conditions, **kwargs)) * self.edf_unit

    def log_marginal(
        self,
        stars: Any,
        kind: str = "position",
        conditions: Mapping[str, Any] | Any = None,
        /,
        *,
        batch_size: int | None = None,
        allow_extrapolation: bool = False,
        **condition_values: Any,
    ) -> np.ndarray:
        """Natural log of a marginal of the eDF from its trained marginal flow.

        Parameters
        ----------
        stars : astropy QTable, mapping, or array (N, k) in schema units
            The marginal's columns (``x, y, z`` for ``"position"``, plus ``vx, vy, vz`` for
            ``"phase_space"``).
        kind : {"position", "phase_space"}
            Which marginal; the model must have been trained with it (``fit(marginals=...)``).
        conditions, batch_size, allow_extrapolation, **condition_values
            As for :meth:`log_edf`.

        Returns
        -------
        numpy.ndarray
            log density in 1/kpc3 (position) or 1/(kpc3 (km/s)3) (phase space), shape (N,).
        """
        if kind not in self.marginals:
            raise ValueError(
                f"this model carries no {kind!r} marginal (it has "
                f"{sorted(self.marginals) or 'none'}); train with fit(..., marginals=(...))"
            )
        names = MARGINALS[kind]
        arr = stars_to_array(stars, names, self._positive_columns())
        values = self._conditions(conditions, condition_values, allow_extrapolation)
        return self._evaluate(
            self.marginals[kind], self.normalizer.subset(names), arr, values, batch_size
        )

    @torch.inference_mode()
    def _evaluate(
        self,
        flow: ConditionalSplineFlow,
        normalizer: Normalizer,
        arr: np.ndarray,
        values: np.ndarray,
        batch_size: int | None,
    ) -> np.ndarray:
        n = arr.shape[0]
        if values.ndim == 2 and values.shape[0] != n:
            raise ValueError(f"{values.shape[0]} condition rows for {n} stars")
        batch = DEFAULT_BATCH if batch_size is None else positive_int(batch_size, "batch_size")
        out = np.empty(n, dtype=np.float64)
        x_all = torch.from_numpy(arr)
        c_all = torch.from_numpy(values)
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            x = x_all[start:stop]
            c = c_all if values.ndim == 1 else c_all[start:stop]
            y, log_jac = normalizer.stars_to_flow(x, c)
            c_flow = normalizer.conditions_to_flow(c)
            log_p = flow.log_prob(y.to(self.device, self.dtype), c_flow.to(self.device, self.dtype))
            out[start:stop] = (log_p.to("cpu", torch.float64) + log_jac).numpy()
        return out

    # -- coordinates ----------------
    def as_skycoord(self, stars: QTable):
        """Positions and velocities of ``stars`` as a SkyCoord in the galaxy's own frame.

        Parameters
        ----------
        stars : astropy.table.QTable
            A sample (columns ``x, y, z`` in length units, ``vx, vy, vz`` in velocity units).

        Returns
        -------
        astropy.coordinates.SkyCoord
            In :class:`~astroflow_gal.frames.GalaxyFrame` (centre at the origin, rest frame,
            disc angular momentum along +z), whose ``galaxy`` attribute records the model and
            conditions.
        """
        from .frames import stars_to_skycoord

        conds = stars.meta.get("conditions") if hasattr(stars, "meta") else None
        label = f"{self.meta.get('name', 'model')}"
        if conds:
            label += " | " + ", ".join(f"{k}={v}" for k, v in sample_conditions(stars).items())
        return stars_to_skycoord(stars, galaxy=label)

    # -- files ----------------
    def save(self, path: str | os.PathLike, weights_dtype: str | None = None) -> None:
        """Write the model to one HDF5 file, atomically (weights as datasets, the rest as JSON).

        Parameters
        ----------
        path : str or path-like
            Destination; an existing file is replaced only once the new one is complete.
        weights_dtype : {None, "float32", "float16", "int8", "int6"}, optional
            Precision of the stored network weights; by default that of the networks.
            ``"float16"`` halves the size of a float32 model's file: every
            weight is rounded to 11 significant bits (relative error <= 2**-11) and read back
            into the model's float32 networks, so the model in the file is the rounded one
            (measure it after :meth:`load`). Saving a loaded float16 model again as float16
            changes nothing. ``"int8"`` stores the networks' hidden- and output-layer matrices
            (at least :data:`INT8_MIN_WIDTH` in both dimensions; 97 % of a paper-size flow's
            weights) as integers -127..127 times one float32 scale per row (the row's largest
            absolute weight / 127, so each weight moves by at most 1/254 of that) and every
            other weight as float16: a paper-size flow takes 3.0 MB instead of 5.9. Measured on
            the shipped suite this rounding changed no KL (``benchmarks/TRAINING.md``); measure
            your own model after :meth:`load`. Saving a loaded int8 model again as int8 changes
            nothing. ``"int6"`` stores the same matrices as integers -31..31 (four in three
            bytes) times one float16 scale per row (rounded up, so no weight is clipped): a
            paper-size flow takes 2.3 MB. The rounding is 4.1 times coarser than ``"int8"`` and
            moved the mean KL of a six-flow mixture by about 0.002 nats/star; the shipped
            eight-flow model is stored so (``benchmarks/TRAINING.md``). Measure your own model.
            Such files have format version 4, which earlier releases refuse to read with a
            clear error; every other file is written as version 3.

        Raises
        ------
        ValueError
            If ``weights_dtype`` is not one of these, or a weight overflows float16.
        """
        if weights_dtype is not None and weights_dtype not in _WEIGHT_DTYPES:
            raise ValueError(
                f"weights_dtype must be None or one of {sorted(_WEIGHT_DTYPES)}, "
                f"got {weights_dtype!r}"
            )
        dtype = None if weights_dtype is None else _WEIGHT_DTYPES[weights_dtype]
        row_bits = _ROW_BITS.get(weights_dtype)
        state_dtype = None if row_bits else dtype  # _pack_state rounds each tensor itself
        flows = {"flow": self.flow, **{f"marginal {k}": f for k, f in self.marginals.items()}}
        for label, net in flows.items():
            for name, value in net.state_dict().items():
                if row_bits and _is_int8_matrix(value):
                    if row_bits == 6 and not _int6_rows(value)[1].isfinite().all():
                        raise ValueError(f"{label} weight {name}: a row's scale overflows float16")
                    continue  # stored as integer rows with a scale per row
                if dtype is not None and value.is_floating_point() and not (
                    torch.isfinite(value.to(dtype)).all()
                ):
                    dtype_name = str(dtype).removeprefix("torch.")
                    raise ValueError(f"{label} weight {name} does not fit in {dtype_name}")
        tree = {
            "package_version": __version__,
            "flow": {
                "config": dict(self.flow.config),
                "weights": _pack_state(_cpu_state(self.flow, state_dtype), row_bits),
            },
            "normalizer": self.normalizer.to_dict(),
            "training_range": self.training_range,
            "training_conditions": (
                None if self.training_conditions is None else self.training_conditions.to_dict()
            ),
            "meta": self.meta,
            "history": self.history,
            "marginals": {
                kind: {
                    "config": dict(f.config),
                    "weights": _pack_state(_cpu_state(f, state_dtype), row_bits),
                }
                for kind, f in self.marginals.items()
            },
        }
        version = FORMAT_VERSION if row_bits == 6 else FORMAT_VERSION - 1
        write_tree(path, tree, format_name=FORMAT_NAME, format_version=version)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> GalaxyModel:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The HDF5 file.
        device : str or torch.device, optional
            Where to put the networks (default CPU).

        Raises
        ------
        FileNotFoundError
            If there is no such file.
        astroflow_gal.io.FileFormatError
            If the file is truncated, not HDF5, of another format, of a newer format version,
            or its content is inconsistent.
        """
        tree, version = read_tree(path, format_name=FORMAT_NAME, max_version=FORMAT_VERSION)
        packed = version >= 2
        try:
            flow = _flow_from_tree(tree["flow"], packed)
            marginals = {
                k: _flow_from_tree(v, packed) for k, v in (tree.get("marginals") or {}).items()
            }
            model = cls(
                flow,
                Normalizer.from_dict(tree["normalizer"]),
                training_range=tree.get("training_range"),
                training_conditions=tree.get("training_conditions"),
                meta=tree.get("meta"),
                history=tree.get("history"),
                marginals=marginals,
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise FileFormatError(f"{path}: inconsistent model file: {err}") from err
        if device is not None:
            model.to(device)
        return model

    @classmethod
    def pretrained(cls, name: str = "default") -> GalaxyModel:
        """The model shipped with the package (works offline).

        Parameters
        ----------
        name : str
            Which shipped model; ``"default"`` was trained on the default synthetic suite, and its
            ``meta`` records the suite seed, size and held-out galaxies.
        """
        resource = importlib.resources.files("astroflow_gal") / "pretrained" / f"{name}.h5"
        with importlib.resources.as_file(resource) as path:
            if not Path(path).exists():
                raise FileNotFoundError(f"no shipped model named {name!r}")
            return cls.load(path)

    @classmethod
    def from_galacticflow(cls, path: str | os.PathLike) -> GalaxyModel:
        """Read a model file saved by the original GalacticFlow API.

        The file is read with ``torch.load(weights_only=True)``: nothing in it is executed. It
        holds the flow's hyper-parameters and state_dict, the normalisation means and standard
        deviations of the ten star columns and four conditions (``M_stars`` in log10), the
        component and condition names, and the loss history.

        The eDF of the returned model is the correct density over the star columns:
        ``log f = log p_flow - sum(log std of the star columns)``. The original code also
        subtracted the log standard deviations of the conditions and added a log10 Jacobian of
        ``M_stars``: constant offsets per galaxy that do not belong in a density over stars.

        Parameters
        ----------
        path : str or path-like
            The ``.pth`` file.
        """
        gf = read_galacticflow_file(path)
        for name in gf.star_names + gf.condition_names:
            schema.column(name)  # raises on names this package does not know
        normalizer = Normalizer(
            [ColumnTransform(n, n in gf.log10, gf.mean[n], gf.std[n]) for n in gf.star_names],
            [ColumnTransform(n, n in gf.log10, gf.mean[n], gf.std[n]) for n in gf.condition_names],
        )
        meta = {
            "name": f"GalacticFlow {Path(path).name}",
            "source": "original GalacticFlow API file",
            "holdout": gf.holdout,
        }
        history = {"train_loss": gf.history} if gf.history is not None else None
        return cls(gf.flow, normalizer, meta=meta, history=history)

    @classmethod
    def ensemble(
        cls,
        models: Sequence[GalaxyModel],
        weights: Sequence[float] | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        marginals_from: int = 0,
    ) -> GalaxyModel:
        """A model whose eDF is the weighted mean of the eDFs of ``models``.

        ``f(x | c) = sum_k w_k f_k(x | c)``: still a normalised density, evaluated exactly
        (log-sum-exp of the members' log-eDFs) and differentiable. Sampling draws each star from
        one member, chosen with probability ``w_k`` from a latent stream of its own (see
        :class:`~astroflow_gal.flow.FlowEnsemble`). Models trained alike from different seeds err
        in different places, and their mixture is closer to the truth than either: by the
        convexity of KL, ``KL(truth || mixture)`` never exceeds the members' weighted mean KL.

        Parameters
        ----------
        models : sequence of GalaxyModel
            At least two models with the same normaliser (star columns, conditions, flow-space
            maps) and the same training galaxies; a member that is itself a mixture is rejected
            (pass its :meth:`members`).
        weights : sequence of float, optional
            Positive weights (dimensionless), normalised to sum to one; equal by default.
        meta : mapping, optional
            Meta of the result; by default the first model's, with the members' metas under
            ``"members"``.
        marginals_from : int
            Index of the model whose marginal flows (:meth:`log_marginal`) the result keeps.

        Raises
        ------
        ValueError
            If fewer than two models are given, their normalisers or training galaxies differ,
            a model is already a mixture, or a weight is not finite and positive.
        """
        models = list(models)
        if len(models) < 2:
            raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
        first = models[0]
        for k, model in enumerate(models):
            if not isinstance(model, GalaxyModel):
                raise TypeError(f"model {k} is a {type(model).__name__}, not a GalaxyModel")
            if isinstance(model.flow, FlowEnsemble):
                raise ValueError(f"model {k} is already a mixture; pass its members instead")
            if model.normalizer.to_dict() != first.normalizer.to_dict():
                raise ValueError(f"model {k} maps stars or conditions differently from model 0")
            if _conditions_dict(model) != _conditions_dict(first):
                raise ValueError(f"model {k} was trained on other galaxies than model 0")
        if not 0 <= marginals_from < len(models):
            raise ValueError(f"marginals_from must index the models, got {marginals_from}")
        flow = FlowEnsemble([m.flow for m in models], weights)
        if meta is None:
            meta = {**first.meta, "members": [dict(m.meta) for m in models]}
        return cls(
            flow.to(first.device),
            first.normalizer,
            training_range=first.training_range,
            training_conditions=first.training_conditions,
            meta=meta,
            history={"members": [dict(m.history) for m in models]},
            marginals=models[marginals_from].marginals,
        )

    # -- training ----------------
    @classmethod
    def fit(
        cls,
        train: Any,
        validation: Any = None,
        *,
        epochs: int,
        batch_size: int = 1024,
        lr: float = 9e-5,
        schedule: str = "paper",
        optimizer: str = "radam",
        seed: int = 0,
        device: str | torch.device | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = 200,
        resume: bool = False,
        progress: bool | None = None,
        marginals: Sequence[str] = (),
        flow_config: Mapping[str, Any] | None = None,
        condition_names: Sequence[str] = schema.CONDITION_NAMES,
        max_steps: int | None = None,
        name: str | None = None,
        weight_decay: float = 0.0,
        grad_clip: float | None = None,
        condition_noise: float = 0.0,
        balance_galaxies: float = 0.0,
        velocity_frame: str = "cartesian",
        scale_with_mass: Sequence[str] = (),
    ) -> GalaxyModel:
        """Train a model on a suite of galaxies by maximum likelihood.

        Parameters
        ----------
        train : GalaxySuite
            Training galaxies (stars in schema units, one condition row each).
        validation : GalaxySuite, optional
            Held-out galaxies; their negative log-likelihood per star is computed after every
            epoch and the best epoch's weights are kept.
        epochs : int
            Passes over the training stars.
        batch_size : int
            Stars per optimisation step (the global batch under torchrun).
        lr : float
            Initial learning rate.
        schedule : {"paper", "constant"}
            ``"paper"``: multiply by 0.998 every 10 steps, every 120 steps once below 3e-6.
        optimizer : {"radam", "adam"}
            The optimiser.
        seed : int
            Seed of the initial weights and the data order.
        device : str or torch.device, optional
            Where to train (e.g. ``"cuda"``).
        checkpoint_dir : path-like, optional
            Folder of crash-safe checkpoints; with ``resume=True`` training continues from them.
        checkpoint_every : int, optional
            Steps between checkpoints (also written at every epoch end).
        resume : bool
            Continue from the newest good checkpoint in ``checkpoint_dir``.
        progress : bool, optional
            Progress bar (default: on a terminal).
        marginals : sequence of {"position", "phase_space"}
            Also train flows of these marginals on the same stars (exact, cheap rho(x), f(x, v)).
        flow_config : mapping, optional
            Architecture overrides for :class:`~astroflow_gal.flow.ConditionalSplineFlow`
            (``n_layers``, ``bins``, ``bound``, ``hidden``, ``hidden_layers``, ``negative_slope``).
        condition_names : sequence of str
            Conditions to use, from the schema.
        max_steps : int, optional
            Stop after this many steps (for quick trials).
        name : str, optional
            Name recorded in ``meta``.
        weight_decay : float
            Decoupled weight decay of the optimiser (per unit learning rate; 0 turns it off).
        grad_clip : float, optional
            Clip the gradient's total norm to this value (flow-space units of the loss).
        condition_noise : float
            Standard deviation of Gaussian noise added to the standardised conditions of every
            batch (in units of the training galaxies' spread of each condition; 0 turns it
            off): regularises the dependence on the conditions (`docs/training.md`).
        balance_galaxies : float
            Exponent ``p`` in [0, 1] (dimensionless): every star of a galaxy of ``n`` stars is
            visited ``max(1, round((n_max / n) ** p))`` times per epoch, so that a galaxy weighs
            about ``n ** (1 - p)`` in the loss instead of ``n`` (0 turns it off; the shipped
            model's last two stages used 0.5, then 1; `docs/training.md`).
        velocity_frame : {"cartesian", "cylindrical"}
            Frame the flows model the velocities in (:class:`~astroflow_gal.normalizer.Normalizer`):
            ``"cylindrical"`` maps ``(vx, vy)`` to ``(v_R, v_phi)`` [km/s] at each star's position,
            an exact rotation that makes an axisymmetric disc's velocities depend on the position
            only through ``R`` and ``z`` (`docs/training.md`). Inputs and outputs stay Cartesian.
        scale_with_mass : sequence of {"position", "velocity"}
            Column groups divided by a per-galaxy power law of the stellar mass fitted to the
            training galaxies before standardisation (:class:`~astroflow_gal.normalizer.ScaleLaw`;
            kpc or km/s at 1e10 Msun): every galaxy then fills about the same range of flow
            space (`docs/training.md`). Needs ``M_stars`` among the conditions.
        """
        from .training.fit import fit_flows

        unknown = [m for m in marginals if m not in MARGINALS]
        if unknown:
            raise ValueError(f"unknown marginals {unknown}; known: {sorted(MARGINALS)}")
        targets = {"edf": schema.STAR_NAMES, **{m: MARGINALS[m] for m in marginals}}
        result = fit_flows(
            train, validation, targets=targets, condition_names=tuple(condition_names),
            epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, optimizer=optimizer,
            seed=seed, device=device, checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every, resume=resume, progress=progress,
            flow_config=flow_config, max_steps=max_steps, name=name,
            weight_decay=weight_decay, grad_clip=grad_clip, condition_noise=condition_noise,
            balance_galaxies=balance_galaxies, velocity_frame=velocity_frame,
            scale_with_mass=tuple(scale_with_mass),
        )
        flows = dict(result.flows)
        return cls(
            flows.pop("edf"),
            result.normalizer,
            training_range=result.training_range,
            training_conditions=_training_conditions(train, tuple(condition_names)),
            meta=result.meta,
            history=result.history,
            marginals=flows,
        )


def _training_conditions(suite: Any, names: Sequence[str]) -> TrainingConditions | None:
    """The ids and conditions (schema units) of a suite's galaxies; None for fewer than two."""
    galaxies = list(suite)
    if len(galaxies) < 2:
        return None
    values = [
        [g.conditions[n].to_value(schema.column(n).unit) for n in names] for g in galaxies
    ]
    return TrainingConditions([g.id for g in galaxies], names, np.asarray(values, dtype=float))


def _conditions_dict(model: GalaxyModel) -> dict[str, Any] | None:
    tc = model.training_conditions
    return None if tc is None else tc.to_dict()


def _cpu_state(
    flow: ConditionalSplineFlow | FlowEnsemble, weights_dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    state = {k: v.detach().cpu() for k, v in flow.state_dict().items()}
    if weights_dtype is not None:
        state = {k: v.to(weights_dtype) if v.is_floating_point() else v for k, v in state.items()}
    return state


def _is_int8_matrix(value: torch.Tensor) -> bool:
    """Whether ``"int8"``/``"int6"`` store this tensor in integer rows (hidden, output layers)."""
    return value.ndim == 2 and min(value.shape) >= INT8_MIN_WIDTH


def _int8_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``matrix`` (rows, columns) as int8 values -127..127 and a float32 scale per row."""
    rows = matrix.to(torch.float32)
    scale = rows.abs().amax(dim=1) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    values = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return values, scale


#: 6-bit integers -31..31 are stored as codes 1..63 (value + 32), four codes in three bytes
_INT6_OFFSET = 32


def _int6_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``matrix`` (rows, columns) as integers -31..31 (int8) and a float16 scale per row.

    The scale is the row's largest absolute weight / 31, rounded up to float16 so that no
    weight lies beyond 31 steps, and at least 2**-14 (float16's smallest normal number; rows
    whose largest weight is below 31 * 2**-14 = 0.0019 keep a step of 2**-14); each weight moves
    by at most half a step. Rounding a rounded row again changes nothing.
    """
    rows = matrix.to(torch.float32)
    largest = rows.abs().amax(dim=1)
    scale = (largest / 31).to(torch.float16)
    # 31 * scale is exact in float32 (11 + 5 significant bits): round up where it falls short
    scale = torch.where(scale.to(torch.float32) * 31 < largest,
                        torch.nextafter(scale, torch.full_like(scale, float("inf"))), scale)
    scale = scale.clamp(min=2**-14)
    values = torch.round(rows / scale.to(torch.float32)[:, None]).clamp(-31, 31)
    return values.to(torch.int8), scale


def _int6_bytes(n_values: int) -> int:
    """Bytes that ``n_values`` 6-bit integers take (padded to a multiple of four values)."""
    return -(-n_values // 4) * 3


def _pack_int6(values: torch.Tensor) -> torch.Tensor:
    """Integers -31..31 as uint8 bytes, four in three (little-endian 6-bit codes)."""
    codes = values.reshape(-1).to(torch.int32) + _INT6_OFFSET
    codes = torch.cat([codes, codes.new_full((-codes.numel() % 4,), _INT6_OFFSET)])
    a, b, c, d = codes.reshape(-1, 4).unbind(dim=1)
    word = a | (b << 6) | (c << 12) | (d << 18)
    return torch.stack([word & 255, (word >> 8) & 255, word >> 16], dim=1).reshape(-1).to(
        torch.uint8
    )


def _unpack_int6(packed: torch.Tensor, n_values: int) -> torch.Tensor:
    """Inverse of :func:`_pack_int6`: the first ``n_values`` integers, as float32."""
    b = packed.reshape(-1, 3).to(torch.int32)
    word = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    codes = torch.stack([(word >> shift) & 63 for shift in (0, 6, 12, 18)], dim=1).reshape(-1)
    codes = codes[:n_values]
    if bool((codes == 0).any()):
        raise ValueError("6-bit code 0 (-32) is outside -31..31")
    return (codes - _INT6_OFFSET).to(torch.float32)


def _pack_state(state: Mapping[str, torch.Tensor], row_bits: int | None = None) -> dict[str, Any]:
    """One flat array per dtype and a JSON list of ``[name, dtype, shape]`` in storage order.

    Thousands of small datasets cost about 400 bytes of HDF5 headers each; packed, a model file
    is its weights' bytes plus a few kilobytes. With ``row_bits`` 8, the hidden- and output-layer
    matrices are stored as ``[name, "int8", shape, "float32"]``: their int8 values, and one
    float32 scale per row in the float32 data. With ``row_bits`` 6, as ``[name, "int6", shape,
    "float16"]``: their 6-bit values packed four in three bytes (the ``int6`` data, uint8), and
    one float16 scale per row in the float16 data.
    """
    flat: dict[str, list[torch.Tensor]] = {}
    tensors = []
    for name, value in state.items():
        if row_bits == 8 and _is_int8_matrix(value):
            values, scale = _int8_rows(value)
            flat.setdefault("int8", []).append(values.reshape(-1))
            flat.setdefault("float32", []).append(scale)
            tensors.append([name, "int8", list(value.shape), "float32"])
            continue
        if row_bits == 6 and _is_int8_matrix(value):
            values, scale = _int6_rows(value)
            flat.setdefault("int6", []).append(_pack_int6(values))
            flat.setdefault("float16", []).append(scale)
            tensors.append([name, "int6", list(value.shape), "float16"])
            continue
        if row_bits and value.is_floating_point():
            value = value.to(torch.float16)
        dtype = str(value.dtype).removeprefix("torch.")
        flat.setdefault(dtype, []).append(value.reshape(-1))
        tensors.append([name, dtype, list(value.shape)])
    return {"tensors": tensors, "data": {k: torch.cat(v) for k, v in flat.items()}}


def _unpack_state(packed: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`_pack_state`; any inconsistency raises ``ValueError``."""
    data = {k: torch.as_tensor(v) for k, v in dict(packed["data"]).items()}
    offsets = dict.fromkeys(data, 0)

    def take(name: str, dtype: str, size: int) -> torch.Tensor:
        stored_as = "uint8" if dtype == "int6" else dtype  # 6-bit values packed in bytes
        if dtype not in data or str(data[dtype].dtype).removeprefix("torch.") != stored_as:
            raise ValueError(f"weight {name}: no packed {dtype} data")
        start = offsets[dtype]
        if start + size > data[dtype].numel():
            raise ValueError(f"weight {name}: packed {dtype} data too short")
        offsets[dtype] = start + size
        return data[dtype][start : start + size]

    state = {}
    for entry in packed["tensors"]:
        if len(entry) not in (3, 4):
            raise ValueError(f"weight entry {entry!r}: expected [name, dtype, shape(, scale)]")
        name, dtype, shape = entry[:3]
        shape = [int(n) for n in shape]
        if any(n < 0 for n in shape):
            raise ValueError(f"weight {name}: negative shape {shape}")
        if dtype == "int6":
            if len(entry) != 4:
                raise ValueError(f"weight {name}: int6 data without scales")
            values = _unpack_int6(take(name, dtype, _int6_bytes(math.prod(shape))),
                                  math.prod(shape)).reshape(shape)
        else:
            values = take(name, dtype, math.prod(shape)).reshape(shape)
        if len(entry) == 4:
            if dtype not in ("int8", "int6") or len(shape) != 2:
                raise ValueError(f"weight {name}: per-row scales need an int8 or int6 matrix")
            scale = take(name, entry[3], shape[0]).to(torch.float32)
            values = values.to(torch.float32) * scale[:, None]
        elif dtype == "int8":
            raise ValueError(f"weight {name}: int8 data without scales")
        state[name] = values
    for dtype, used in offsets.items():
        if used != data[dtype].numel():
            raise ValueError(f"packed {dtype} data has {data[dtype].numel() - used} extra values")
    return state


def _flow_from_tree(
    tree: Mapping[str, Any], packed: bool = True
) -> ConditionalSplineFlow | FlowEnsemble:
    flow = flow_from_config(dict(tree["config"]))
    weights = _unpack_state(tree["weights"]) if packed else tree["weights"]
    flow.load_state_dict(weights)
    return flow


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        if rank is None or world_size is None:
            raise ValueError("give both rank and world_size")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, {world_size})")
        return int(rank), int(world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))

"""Maximum-likelihood training of a conditional flow on flow-space tensors.

:func:`train_flow` minimises the mean negative log-likelihood per star with RAdam (or Adam) and
the paper's learning-rate schedule, evaluates held-out galaxies after every epoch, keeps the best
state, writes checkpoints that resume bit-identically, stops on a non-finite loss, and runs data
parallel under ``torchrun``.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..inputs import positive_int
from .checkpoint import CheckpointError, CheckpointManager
from .data import TrainingData, epoch_permutation, epoch_seed, galaxy_balanced_rows
from .distributed import DistributedContext, distributed_context
from .flat import FlatParameters
from .progress import ProgressReporter
from .schedule import make_schedule
from .shards import shard_count, sharded_log_prob_backward

__all__ = ["TrainingData", "TrainingDivergedError", "TrainingResult", "train_flow"]

OPTIMIZERS = ("radam", "adam")
HISTORY_KEYS = ("epoch", "step", "train_nll", "val_nll", "lr", "wall_time_s")


class TrainingDivergedError(RuntimeError):
    """The loss (or its gradient) became NaN or infinite; training stopped before the update.

    Attributes
    ----------
    step : int
        Global optimisation step (0-based) whose batch gave the non-finite value.
    epoch : int
        Epoch (0-based) of that step.
    batch : int
        Batch number within the epoch (0-based).
    rows : list of int
        Indices into the training stars of (up to 10) rows whose log-density was not finite.
    """

    def __init__(
        self, message: str, *, step: int, epoch: int, batch: int, rows: list[int] | None = None
    ) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.batch = batch
        self.rows = list(rows or [])


@dataclass
class TrainingResult:
    """What :func:`train_flow` returns.

    Attributes
    ----------
    history : dict of lists
        One entry per completed epoch under each key: ``epoch`` (0-based), ``step`` (steps done
        at its end), ``train_nll`` and ``val_nll`` (mean negative log-likelihood per star in flow
        space, nats; ``val_nll`` is NaN without validation data), ``lr`` (learning rate of the
        epoch's last step), ``wall_time_s`` (seconds of training since the start of the run,
        summed over resumed sessions).
    best_state : dict
        ``state_dict`` (CPU tensors) of the epoch with the lowest validation NLL (training NLL
        without validation data); the current weights if no epoch was completed.
    best_epoch : int
        That epoch (0-based), or -1.
    steps : int
        Optimisation steps done in total.
    resumed_from : str or None
        Checkpoint the run resumed from.
    """

    history: dict
    best_state: dict
    best_epoch: int
    steps: int
    resumed_from: str | None = None
    checkpoint_dir: str | None = field(default=None, repr=False)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _empty_history() -> dict[str, list]:
    return {k: [] for k in HISTORY_KEYS}


def _check_options(epochs, batch_size, lr, schedule, optimizer, checkpoint_every, max_steps,
                   weight_decay, grad_clip, condition_noise=0.0, balance_galaxies=0.0) -> None:
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs}")
    positive_int(batch_size, "batch_size")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be positive and finite, got {lr}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 or None, got {checkpoint_every}")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0 or None, got {max_steps}")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
    if not (condition_noise >= 0 and math.isfinite(condition_noise)):
        raise ValueError(f"condition_noise must be >= 0 and finite, got {condition_noise}")
    if not 0 <= balance_galaxies <= 1:  # also refuses NaN
        raise ValueError(f"balance_galaxies must lie in [0, 1], got {balance_galaxies}")
    make_schedule(schedule, lr)  # validates the name


def _check_data(flow: nn.Module, data: TrainingData, name: str) -> None:
    config = getattr(flow, "config", {})
    dim, cond_dim = config.get("dim"), config.get("cond_dim")
    if dim is not None and data.dim != dim:
        raise ValueError(f"{name} has {data.dim} features but the flow models {dim}")
    if cond_dim is not None and data.cond_dim != cond_dim:
        raise ValueError(
            f"{name} has {data.cond_dim} condition features but the flow takes {cond_dim}"
        )
    data.check_finite(name)


def _resolve_device(flow: nn.Module, device, ctx: DistributedContext) -> torch.device:
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and ctx.active:
            dev = torch.device("cuda", ctx.local_rank)
        return dev
    if ctx.active and ctx.backend == "nccl":
        return torch.device("cuda", ctx.local_rank)
    return next(flow.parameters()).device


def _batch(
    data: TrainingData, rows: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = data.x.index_select(0, rows).to(device=device, dtype=dtype, non_blocking=True)
    if data.cond_dim == 0:
        return x, None
    c = data.conditions.index_select(0, data.galaxy_index.index_select(0, rows))
    return x, c.to(device=device, dtype=dtype, non_blocking=True)


@torch.no_grad()
def evaluate_nll(
    flow: nn.Module,
    data: TrainingData,
    *,
    batch_size: int = 8192,
    device: torch.device | str | None = None,
    ctx: DistributedContext | None = None,
) -> float:
    """Mean negative log-likelihood per star of ``data`` under ``flow`` (nats, flow space).

    Parameters
    ----------
    flow : torch.nn.Module
        Flow with ``log_prob(x, c)``.
    data : TrainingData
        Stars and conditions in flow space.
    batch_size : int
        Stars per evaluation batch.
    device : torch.device or str, optional
        Where to evaluate (default: the flow's device).
    ctx : DistributedContext, optional
        Splits the batches over the ranks and sums the result over them.

    Returns
    -------
    float
        ``-mean log p(x | c)`` over all stars of ``data``.
    """
    batch_size = positive_int(batch_size, "batch_size")
    ctx = ctx or DistributedContext()
    param = next(flow.parameters())
    device = torch.device(device) if device is not None else param.device
    was_training = flow.training
    flow.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    n = data.n_stars
    try:
        for i, start in enumerate(range(0, n, batch_size)):
            if i % ctx.world_size != ctx.rank:
                continue
            rows = torch.arange(start, min(start + batch_size, n))
            x, c = _batch(data, rows, device, param.dtype)
            lp = flow.log_prob(x, c)
            total[0] -= lp.double().sum()
            total[1] += lp.shape[0]
    finally:
        flow.train(was_training)
    total = ctx.all_reduce_sum(total)
    return float(total[0] / total[1])


def _settings(flow, train, validation, *, batch_size, lr, schedule, optimizer, seed,
              weight_decay, grad_clip, world_size, condition_noise=0.0,
              balance_galaxies=0.0) -> dict[str, Any]:
    """Everything a checkpoint must agree on to be resumed bit-identically."""
    return {
        "flow_config": dict(getattr(flow, "config", {})),
        "data": {
            "n_train": train.n_stars,
            "dim": train.dim,
            "cond_dim": train.cond_dim,
            "n_train_galaxies": int(train.conditions.shape[0]),
            "train_fingerprint": train.fingerprint(),
            "n_validation": validation.n_stars if validation is not None else 0,
            "validation_fingerprint": (
                validation.fingerprint() if validation is not None else None
            ),
        },
        "options": {
            "batch_size": int(batch_size),
            "lr": float(lr),
            "schedule": str(schedule),
            "optimizer": str(optimizer),
            "seed": int(seed),
            "weight_decay": float(weight_decay),
            "grad_clip": None if grad_clip is None else float(grad_clip),
            "world_size": int(world_size),
            # Only when used, so that checkpoints written before the option existed resume.
            **({"condition_noise": float(condition_noise)} if condition_noise else {}),
            **({"balance_galaxies": float(balance_galaxies)} if balance_galaxies else {}),
        },
    }


def _compare_settings(saved: dict, current: dict, path: str) -> None:
    problems = []
    for section in ("flow_config", "data", "options"):
        old, new = saved.get(section, {}), current[section]
        for key in sorted(set(old) | set(new)):
            if section == "options" and key == "world_size":
                if old.get(key) != new.get(key):
                    warnings.warn(
                        f"resuming {path}, written by {old.get(key)} process(es), with "
                        f"{new.get(key)}: the data order is the same, but results agree with "
                        "an uninterrupted run only to float rounding",
                        stacklevel=3,
                    )
                continue
            if old.get(key) != new.get(key):
                problems.append(
                    f"{section}.{key}: checkpoint {old.get(key)!r}, now {new.get(key)!r}"
                )
    if problems:
        raise CheckpointError(
            f"cannot resume from {path}: it was written for another flow, data or settings "
            "(resuming must reproduce the original run exactly):\n  " + "\n  ".join(problems)
            + "\nUse a new checkpoint folder, or the original settings."
        )


def _condition_noise(c: torch.Tensor, seed: int, step: int, first_row: int) -> torch.Tensor:
    """Standard normal noise shaped like a batch's conditions ``c``, fixed by ``(seed, step)``
    and the batch's first row (so that ranks of a distributed run draw different noise)."""
    gen = torch.Generator(device="cpu").manual_seed(
        epoch_seed(epoch_seed(seed, 1_000_000_000 + step), first_row)
    )
    return torch.randn(c.shape, generator=gen).to(device=c.device, dtype=c.dtype)


def _make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr, weight_decay=weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def _keeps_global_rng(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with torch's global random state saved before and restored after.

    Resuming from a checkpoint sets the global state to the checkpoint's (so that a resumed run
    continues exactly); the caller's own random stream is put back when training returns.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        device = kwargs.get("device")
        devices: list[int] = []
        if device is not None and torch.device(device).type == "cuda":
            index = torch.device(device).index
            devices = [index if index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            return fn(*args, **kwargs)

    return wrapper


@_keeps_global_rng
def train_flow(
    flow: nn.Module,
    train: TrainingData,
    validation: TrainingData | None = None,
    *,
    epochs: int,
    batch_size: int = 1024,
    lr: float = 9e-5,
    schedule: str = "paper",
    optimizer: str = "radam",
    seed: int,
    device: torch.device | str | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = 200,
    resume: bool = False,
    progress: bool | None = None,
    max_steps: int | None = None,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    condition_noise: float = 0.0,
    balance_galaxies: float = 0.0,
) -> TrainingResult:
    """Train ``flow`` by maximum likelihood on flow-space stars.

    Every epoch visits the training stars in a permutation seeded by ``(seed, epoch)``, in
    batches of ``batch_size`` stars; the loss is the mean negative log-likelihood per star of
    the batch. With ``balance_galaxies`` an epoch visits the stars of small galaxies several
    times (:func:`~astroflow_gal.training.galaxy_balanced_rows`). The flow is changed in
    place and ends with the weights of the last step; the weights of the best epoch are in the
    result.

    Parameters
    ----------
    flow : torch.nn.Module
        A flow with ``log_prob(x, c)`` and a ``config`` dict (e.g.
        :class:`astroflow_gal.flow.ConditionalSplineFlow`).
    train : TrainingData
        Training stars and galaxy conditions in flow space (dimensionless).
    validation : TrainingData, optional
        Held-out galaxies, evaluated after every epoch.
    epochs : int
        Number of passes over the training stars (in total, counting resumed ones).
    batch_size : int
        Stars per optimisation step (the global batch when distributed).
    lr : float
        Initial learning rate (dimensionless).
    schedule : {"paper", "constant"}
        ``"paper"``: multiply by 0.998 every 10 steps, every 120 steps once below 3e-6
        (:func:`~astroflow_gal.training.paper_learning_rate`).
    optimizer : {"radam", "adam"}
        Optimiser.
    seed : int
        Seed of the data order.
    device : torch.device or str, optional
        Training device (default: the flow's; ``cuda:LOCAL_RANK`` under ``torchrun`` with NCCL).
    checkpoint_dir : str or path-like, optional
        Folder for checkpoints (``checkpoint-<step>.h5``, the last two kept).
    checkpoint_every : int or None
        Steps between checkpoints; checkpoints are also written at every epoch end.
    resume : bool
        Continue from the newest readable checkpoint in ``checkpoint_dir`` (start afresh if it
        holds none). Without it, a folder holding checkpoints is refused.
    progress : bool or None
        True: a tqdm bar; False: log lines (logger ``astroflow_gal.training``); None: a bar when
        stderr is a terminal.
    max_steps : int, optional
        Stop after this many optimisation steps in total (a checkpoint is written there).
    weight_decay : float
        Weight decay of the optimiser (dimensionless).
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    condition_noise : float
        Standard deviation of Gaussian noise added to every star's flow-space conditions in each
        training batch (dimensionless: in units of the conditions' spread over the training
        galaxies). Smooths the learned dependence on the conditions between the few training
        galaxies; seeded by ``(seed, step)``, so resuming stays bit-identical. 0 turns it off.
    balance_galaxies : float
        Exponent ``p`` in [0, 1] (dimensionless) of galaxy-balanced weights: every star of a
        galaxy of ``n`` stars is visited ``max(1, round((n_max / n) ** p))`` times per epoch, so
        that a galaxy weighs about ``n ** (1 - p)`` in the loss instead of ``n``. Where a suite
        gives small galaxies few stars, this moves the fit towards the mean over galaxies that
        the per-galaxy KL measures (the shipped model's last two stages used 0.5, then 1). 0
        turns it off; an epoch counts the repeated stars.

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDivergedError
        On a NaN or infinite loss or gradient; nothing is written for that step.
    astroflow_gal.training.CheckpointError
        When resuming from a checkpoint of another flow configuration, data set or settings.
    FileExistsError
        When ``checkpoint_dir`` holds checkpoints and ``resume`` is False.
    """
    _check_options(epochs, batch_size, lr, schedule, optimizer, checkpoint_every, max_steps,
                   weight_decay, grad_clip, condition_noise, balance_galaxies)
    if not isinstance(train, TrainingData):
        raise TypeError(f"train must be TrainingData, got {type(train).__name__}")
    if validation is not None and not isinstance(validation, TrainingData):
        raise TypeError(f"validation must be TrainingData or None, got {type(validation)}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    _check_data(flow, train, "training data")
    if validation is not None:
        _check_data(flow, validation, "validation data")

    ctx = distributed_context(device)
    if batch_size < ctx.world_size:
        raise ValueError(
            f"batch_size {batch_size} is smaller than the number of processes {ctx.world_size}"
        )
    device = _resolve_device(flow, device, ctx)
    flow.to(device)
    flow.train()
    dtype = next(flow.parameters()).dtype
    # One flat parameter: the optimiser step, the gradient norm and the gradient exchange
    # between processes each run once per step instead of once per parameter tensor.
    flat = FlatParameters(p for p in flow.parameters() if p.requires_grad)
    lr_at = make_schedule(schedule, lr)
    opt = _make_optimizer(optimizer, [flat.param], lr, weight_decay)
    settings = _settings(
        flow, train, validation, batch_size=batch_size, lr=lr, schedule=schedule,
        optimizer=optimizer, seed=seed, weight_decay=weight_decay, grad_clip=grad_clip,
        world_size=ctx.world_size, condition_noise=condition_noise,
        balance_galaxies=balance_galaxies,
    )

    # -- state of the run -----------------------------------------------------------------------
    epoch, step_in_epoch, global_step = 0, 0, 0
    history = _empty_history()
    best: dict[str, Any] = {"epoch": -1, "value": None, "state": None}
    epoch_sum, epoch_count, elapsed_before = 0.0, 0, 0.0
    resumed_from = None

    manager = CheckpointManager(checkpoint_dir) if checkpoint_dir is not None else None
    if manager is not None:
        if resume:
            if ctx.is_main:
                manager.remove_stale_temporaries()
            loaded = manager.load_latest()
            if loaded is not None:
                state, path = loaded
                _compare_settings(state["meta"]["settings"], settings, str(path))
                flow.load_state_dict(state["flow_state"])
                opt.load_state_dict(state["optimizer_state"])
                rng = state["rng"]
                torch.set_rng_state(rng["torch_cpu"])
                if device.type == "cuda" and rng.get("torch_cuda") is not None:
                    torch.cuda.set_rng_state(rng["torch_cuda"], device)
                pos = state["position"]
                epoch, step_in_epoch = int(pos["epoch"]), int(pos["step_in_epoch"])
                global_step = int(pos["global_step"])
                epoch_sum, epoch_count = float(pos["epoch_nll_sum"]), int(pos["epoch_count"])
                elapsed_before = float(pos["wall_time_s"])
                history = {k: list(state["history"].get(k, [])) for k in HISTORY_KEYS}
                best = dict(state["best"])
                resumed_from = str(path)
        elif manager.list():
            raise FileExistsError(
                f"{manager.folder} already holds checkpoints ({manager.list()[-1].name}); pass "
                "resume=True to continue that run, or use an empty folder"
            )

    # Row r of an epoch's order is star star_of[r] (each star once without balancing).
    star_of = (galaxy_balanced_rows(train.galaxy_index, balance_galaxies)
               if balance_galaxies else None)
    n = train.n_stars if star_of is None else int(star_of.shape[0])
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    reporter = ProgressReporter(
        max(total_steps, global_step), global_step, enabled=ctx.is_main, bar=progress,
        epochs=epochs,
    )
    if resumed_from is not None:
        reporter.message(
            f"resumed from {resumed_from} at step {global_step} (epoch {epoch + 1}, "
            f"batch {step_in_epoch})"
        )

    # Every rank starts from the weights of rank 0 (as DistributedDataParallel would).
    ctx.broadcast_from_main_(flat.param.data)

    t_start = time.perf_counter()
    last_saved_step = global_step if resumed_from is not None else -1

    def wall_time() -> float:
        return elapsed_before + (time.perf_counter() - t_start)

    def snapshot() -> dict[str, Any]:
        rng = {"torch_cpu": torch.get_rng_state()}
        if device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state(device)
        return {
            "meta": {"settings": settings, "epochs_requested": int(epochs)},
            "position": {
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": global_step,
                "steps_per_epoch": steps_per_epoch,
                "epoch_nll_sum": epoch_sum,
                "epoch_count": epoch_count,
                "wall_time_s": wall_time(),
            },
            "flow_state": _cpu_state(flow),
            "optimizer_state": opt.state_dict(),
            "schedule": {**lr_at.state(), "step": global_step},
            "rng": rng,
            "history": history,
            "best": best,
        }

    def save() -> None:
        nonlocal last_saved_step
        if manager is not None and ctx.is_main and last_saved_step != global_step:
            manager.save(snapshot(), global_step)
        last_saved_step = global_step
        ctx.barrier()

    lr_now = lr_at(max(global_step - 1, 0))
    try:
        while epoch < epochs and (max_steps is None or global_step < max_steps):
            perm = epoch_permutation(n, seed, epoch)
            while step_in_epoch < steps_per_epoch:
                if max_steps is not None and global_step >= max_steps:
                    break
                global_rows = perm[step_in_epoch * batch_size : (step_in_epoch + 1) * batch_size]
                rows = torch.tensor_split(global_rows, ctx.world_size)[ctx.rank]
                # A rank left without rows (last batch smaller than the number of ranks) still
                # joins the gradient exchange, with one row weighted by zero.
                weight = 1.0 if rows.numel() > 0 else 0.0
                if rows.numel() == 0:
                    rows = global_rows[:1]
                stars = rows if star_of is None else star_of[rows]
                x, c = _batch(train, stars, device, dtype)
                if condition_noise > 0 and c is not None:
                    first = int(rows[0]) if rows.numel() else 0
                    c = c + condition_noise * _condition_noise(c, seed, global_step, first)
                lr_now = lr_at(global_step)
                for group in opt.param_groups:
                    group["lr"] = lr_now
                flat.zero_grad()
                # Gradients are averaged over ranks below: scale so the result is the mean over
                # the global batch whatever the split. On the CPU the batch runs as shards on
                # threads (training/shards.py); the gradient is in flat.grad after this call.
                log_p = sharded_log_prob_backward(
                    flow, x, c, weight * ctx.world_size / global_rows.shape[0], flat,
                    shard_count(flow, x.shape[0], device),
                )
                nll_sum = -log_p.sum() * weight if weight == 0.0 else -log_p.sum()
                stats = ctx.all_reduce_sum(nll_sum.double().reshape(1))
                batch_nll = float(stats[0])
                if not math.isfinite(batch_nll):
                    bad = stars[~torch.isfinite(log_p.detach()).cpu()][:10].tolist()
                    raise TrainingDivergedError(
                        f"non-finite loss ({batch_nll}) at step {global_step} (epoch "
                        f"{epoch}, batch {step_in_epoch} of {steps_per_epoch}, 0-based); "
                        f"training rows with non-finite log-density: {bad}. The last "
                        "checkpoint was left untouched.",
                        step=global_step, epoch=epoch, batch=step_in_epoch, rows=bad,
                    )
                ctx.all_reduce_mean_(flat.grad)
                if grad_clip is not None:
                    norm = torch.nn.utils.clip_grad_norm_([flat.param], grad_clip)
                else:
                    norm = torch.linalg.vector_norm(flat.grad)
                if not bool(torch.isfinite(norm)):
                    raise TrainingDivergedError(
                        f"non-finite gradient at step {global_step} (epoch {epoch}, batch "
                        f"{step_in_epoch} of {steps_per_epoch}, 0-based). The last checkpoint "
                        "was left untouched.",
                        step=global_step, epoch=epoch, batch=step_in_epoch,
                    )
                opt.step()
                # The step wrote the flat buffer, whose views the parameters are: advance each
                # parameter's own version counter too, so that caches keyed on it (the no-grad
                # transposed weights of the flow's MLPs) see the new weights.
                for param in flat.params:
                    torch.autograd.graph.increment_version(param)
                global_step += 1
                step_in_epoch += 1
                epoch_sum += batch_nll
                epoch_count += int(global_rows.shape[0])
                reporter.step(global_step, batch_nll / global_rows.shape[0], lr_now)
                if (
                    checkpoint_every is not None
                    and global_step % checkpoint_every == 0
                    and step_in_epoch < steps_per_epoch
                ):
                    save()
            if step_in_epoch < steps_per_epoch:
                break  # max_steps reached inside the epoch
            # -- end of epoch: validation, history, best state, checkpoint ---------------------
            train_nll = epoch_sum / epoch_count
            val_nll = (
                evaluate_nll(flow, validation, batch_size=max(4 * batch_size, 4096),
                             device=device, ctx=ctx)
                if validation is not None
                else float("nan")
            )
            entry = {
                "epoch": epoch,
                "step": global_step,
                "train_nll": train_nll,
                "val_nll": val_nll,
                "lr": lr_now,
                "wall_time_s": wall_time(),
            }
            for key in HISTORY_KEYS:
                history[key].append(entry[key])
            score = val_nll if validation is not None else train_nll
            if math.isfinite(score) and (best["value"] is None or score < best["value"]):
                best = {"epoch": epoch, "value": score, "state": _cpu_state(flow)}
            reporter.epoch(entry)
            epoch += 1
            step_in_epoch, epoch_sum, epoch_count = 0, 0.0, 0
            save()
        if step_in_epoch > 0:
            save()  # stopped by max_steps inside an epoch
    finally:
        reporter.close()

    best_state = best["state"] if best["state"] is not None else _cpu_state(flow)
    return TrainingResult(
        history=history,
        best_state=best_state,
        best_epoch=int(best["epoch"]),
        steps=global_step,
        resumed_from=resumed_from,
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
    )

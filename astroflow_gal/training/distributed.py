"""Data-parallel training across processes.

Training runs distributed when a process group is already initialised, or when the process was
started by ``torchrun`` (environment ``WORLD_SIZE > 1``); the group is then initialised here with
``gloo`` on CPU and ``nccl`` on CUDA devices. Every rank takes an even slice of every global
batch; only rank 0 writes files and reports progress. Every rank starts from rank 0's weights
and, after each backward pass, the ranks average their gradients with one all-reduce of the flat
gradient buffer (the arithmetic of PyTorch's DistributedDataParallel, in one collective per
step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "distributed_context", "is_main_process"]


@dataclass(frozen=True)
class DistributedContext:
    """Rank and world size of this process (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over all ranks (returned as a new tensor; identity when alone)."""
        if not self.active:
            return values
        out = values.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def all_reduce_mean_(self, values: torch.Tensor) -> None:
        """Replace ``values`` in place by its mean over all ranks (no-op when alone)."""
        if self.active:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values.div_(self.world_size)

    def broadcast_from_main_(self, values: torch.Tensor) -> None:
        """Overwrite ``values`` in place with rank 0's copy (no-op when alone)."""
        if self.active:
            dist.broadcast(values, src=0)

    def barrier(self) -> None:
        """Wait for every rank (no-op when alone)."""
        if self.active:
            dist.barrier()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from err


def distributed_context(device: torch.device | None = None) -> DistributedContext:
    """Join (or detect) the process group this process trains in.

    Parameters
    ----------
    device : torch.device, optional
        Device of the training; CUDA devices use the ``nccl`` backend, others ``gloo``.

    Returns
    -------
    DistributedContext
        Rank 0 of 1 when the process is alone.
    """
    if not dist.is_available():
        return DistributedContext()
    if dist.is_initialized():
        return DistributedContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_env_int("LOCAL_RANK", 0),
            backend=str(dist.get_backend()),
        )
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistributedContext()
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = (device is not None and torch.device(device).type == "cuda") or (
        device is None and torch.cuda.is_available()
    )
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistributedContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed run (use it to guard file writes)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0

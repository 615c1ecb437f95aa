"""One training batch split into shards whose forward and backward passes run at once on CPU
threads.

The flow's matrices are small (a batch of 1024 stars through 128-wide layers): splitting each
operation over the cores, as torch does, leaves most of the time in the many small
element-wise operations between the products, which do not parallelise. Running the forward and
backward pass of each shard of the batch on its own thread, with torch on one thread inside
it, keeps every core busy with whole passes instead. The gradients are summed in shard order
(shard 0 accumulates into the flat gradient, the others are added after it, 1, 2, ...), so the
result is the same from run to run for a given number of shards; it differs from the unsplit
batch only by float round-off.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from ..flow.model import single_threaded_torch
from ..flow.spline import spline_backward_by_hand
from .flat import FlatParameters

__all__ = ["MIN_SHARD_ROWS", "shard_count", "sharded_log_prob_backward"]

#: Smallest shard worth a thread of its own (stars); smaller batches run unsplit.
MIN_SHARD_ROWS = 256


def shard_count(flow: nn.Module, n_rows: int, device: torch.device) -> int:
    """How many shards a batch of ``n_rows`` stars is split into.

    Parameters
    ----------
    flow : torch.nn.Module
        The flow; its ``workers`` attribute (if set and not None) caps the count, so
        ``flow.workers = 1`` turns the split off.
    n_rows : int
        Stars in the batch.
    device : torch.device
        Training device: only CPU batches are split.

    Returns
    -------
    int
        ``min(workers, n_rows // MIN_SHARD_ROWS)``, at least 1; ``workers`` defaults to
        ``torch.get_num_threads()``.
    """
    if device.type != "cpu":
        return 1
    workers = getattr(flow, "workers", None)
    workers = torch.get_num_threads() if workers is None else int(workers)
    return max(1, min(workers, n_rows // MIN_SHARD_ROWS))


def sharded_log_prob_backward(
    flow: nn.Module,
    x: torch.Tensor,
    c: torch.Tensor | None,
    scale: float,
    flat: FlatParameters,
    shards: int,
) -> torch.Tensor:
    """Log-density of a batch and the gradient of ``-scale * sum(log_prob)`` into ``flat.grad``.

    Parameters
    ----------
    flow : torch.nn.Module
        Flow with ``log_prob(x, c)`` whose parameters are packed in ``flat``.
    x : torch.Tensor
        Batch in flow space, shape ``(N, dim)`` (dimensionless).
    c : torch.Tensor or None
        Conditions in flow space, shape ``(N, cond_dim)`` (dimensionless), or None.
    scale : float
        Factor of the loss ``-scale * sum(log_prob)`` (e.g. 1 / N for the mean).
    flat : FlatParameters
        The flow's packed parameters; the gradient is added to ``flat.grad`` (zero it before).
    shards : int
        Number of shards (threads); 1 runs the batch unsplit on the calling thread.

    Returns
    -------
    torch.Tensor
        ``log_prob`` of every row, shape ``(N,)``, detached from the graph.
    """
    if shards <= 1:
        with spline_backward_by_hand():
            log_p = flow.log_prob(x, c)
        (-log_p.sum() * scale).backward()
        return log_p.detach()
    xs = torch.tensor_split(x, shards)
    cs = torch.tensor_split(c, shards) if c is not None else [None] * shards
    params = flat.params

    def run(k: int) -> tuple[torch.Tensor, tuple | None]:
        with torch.enable_grad(), spline_backward_by_hand():
            log_p = flow.log_prob(xs[k], cs[k])
            loss = -log_p.sum() * scale
            if k == 0:
                loss.backward()
                return log_p.detach(), None
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            return log_p.detach(), grads

    with single_threaded_torch(), ThreadPoolExecutor(
        shards, thread_name_prefix="astroflow-gal-shard"
    ) as pool:
        futures = [pool.submit(run, k) for k in range(shards)]
        for future in futures:
            future.exception()  # every shard finishes before the thread count is restored
        results = [future.result() for future in futures]
    for _, grads in results[1:]:
        pairs = [(p.grad, g) for p, g in zip(params, grads, strict=True) if g is not None]
        torch._foreach_add_([p for p, _ in pairs], [g for _, g in pairs])
    return torch.cat([log_p for log_p, _ in results])

"""The sharded training step: the gradient of the split batch is that of the whole batch."""

from __future__ import annotations

import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.training import TrainingData, train_flow
from astroflow_gal.training.flat import FlatParameters
from astroflow_gal.training.shards import (
    MIN_SHARD_ROWS,
    shard_count,
    sharded_log_prob_backward,
)


def _flow(dtype=torch.float64) -> tuple[ConditionalSplineFlow, FlatParameters]:
    flow = ConditionalSplineFlow(4, 2, n_layers=2, bins=5, hidden=16, hidden_layers=1, seed=3)
    flow = flow.to(dtype)
    return flow, FlatParameters(flow.parameters())


def _batch(n: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 4, generator=g, dtype=dtype)
    c = torch.randn(5, 2, generator=g, dtype=dtype)[torch.randint(0, 5, (n,), generator=g)]
    return x, c


def _gradient(shards: int, n: int = 600, dtype=torch.float64) -> tuple[torch.Tensor, ...]:
    flow, flat = _flow(dtype)
    x, c = _batch(n, dtype)
    flat.zero_grad()
    log_p = sharded_log_prob_backward(flow, x, c, 1.0 / n, flat, shards)
    return log_p, flat.grad.clone()


@pytest.mark.parametrize("shards", [2, 3, 4])
def test_sharded_gradient_equals_whole_batch(shards):
    log_p_1, grad_1 = _gradient(1)
    log_p_k, grad_k = _gradient(shards)
    assert torch.count_nonzero(grad_1) > 0.9 * grad_1.numel()
    torch.testing.assert_close(log_p_k, log_p_1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_k, grad_1, rtol=1e-10, atol=1e-12)


def test_sharded_gradient_matches_autograd_of_the_mean_loss():
    flow, flat = _flow()
    x, c = _batch(600)
    loss = -flow.log_prob(x, c).mean()  # plain autograd, no hand-written spline backward
    expected = torch.autograd.grad(loss, flat.params)
    _, grad = _gradient(3)
    torch.testing.assert_close(grad, torch.cat([g.reshape(-1) for g in expected]),
                               rtol=1e-9, atol=1e-12)


def test_sharded_gradient_is_reproducible_bit_for_bit():
    _, a = _gradient(3, dtype=torch.float32)
    _, b = _gradient(3, dtype=torch.float32)
    assert torch.equal(a, b)


def test_thread_count_restored_after_a_sharded_step():
    before = torch.get_num_threads()
    _gradient(2)
    assert torch.get_num_threads() == before


def test_shard_count_rules():
    flow, _ = _flow()
    cpu = torch.device("cpu")
    flow.workers = 4
    assert shard_count(flow, 4 * MIN_SHARD_ROWS, cpu) == 4
    assert shard_count(flow, 2 * MIN_SHARD_ROWS + 1, cpu) == 2
    assert shard_count(flow, MIN_SHARD_ROWS - 1, cpu) == 1
    assert shard_count(flow, 10 * MIN_SHARD_ROWS, torch.device("meta")) == 1
    flow.workers = 1
    assert shard_count(flow, 10 * MIN_SHARD_ROWS, cpu) == 1
    flow.workers = None
    assert shard_count(flow, 1000 * MIN_SHARD_ROWS, cpu) == torch.get_num_threads()


def test_train_flow_with_shards_follows_the_unsplit_run():
    """Two short runs, split in 2 shards and unsplit: the same losses up to float32 round-off."""
    g = torch.Generator().manual_seed(0)
    n = 4 * MIN_SHARD_ROWS
    data = TrainingData(x=torch.randn(n, 4, generator=g), galaxy_index=torch.arange(n) % 4,
                        conditions=torch.randn(4, 2, generator=g))
    losses = {}
    for workers in (1, 2):
        flow = ConditionalSplineFlow(4, 2, n_layers=2, bins=5, hidden=16, hidden_layers=1, seed=1)
        flow.workers = workers
        result = train_flow(flow, data, epochs=2, batch_size=2 * MIN_SHARD_ROWS, lr=1e-3,
                            seed=0, checkpoint_every=None, progress=False)
        losses[workers] = torch.tensor(result.history["train_nll"])
    assert losses[1].shape == (2,)
    assert losses[1][1] < losses[1][0]
    torch.testing.assert_close(losses[2], losses[1], rtol=1e-4, atol=1e-5)

"""Training engine: schedule, data order, loss, NaN guard, options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.training import (
    CheckpointManager,
    TrainingData,
    TrainingDivergedError,
    epoch_permutation,
    evaluate_nll,
    make_schedule,
    paper_learning_rate,
    paper_switch_step,
    train_flow,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_flow(dim=3, cond_dim=2, seed=1):
    return ConditionalSplineFlow(
        dim, cond_dim, n_layers=2, bins=4, bound=4.0, hidden=16, hidden_layers=1, seed=seed
    )


def toy_data(n=400, dim=3, cond_dim=2, n_gal=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(n_gal, cond_dim, generator=g)
    idx = torch.randint(0, n_gal, (n,), generator=g)
    x = 0.5 * torch.randn(n, dim, generator=g) + cond[idx, :1]
    return TrainingData(x, idx, cond)


# -- schedule -----------------------------------------------------------------------------------
def _iterative_paper_schedule(n_steps, lr0=9e-5, gamma=0.998, every=10, slow=120, thr=3e-6):
    """The rule as the paper states it, applied step by step (reference)."""
    out, lr, since = [], lr0, 0
    for _ in range(n_steps):
        out.append(lr)
        since += 1
        if since == (every if lr >= thr else slow):
            lr *= gamma
            since = 0
    return np.array(out)


def test_paper_schedule_first_steps():
    assert paper_learning_rate(0) == 9e-5
    assert paper_learning_rate(9) == 9e-5
    assert paper_learning_rate(10) == pytest.approx(9e-5 * 0.998, rel=1e-15)
    assert paper_learning_rate(19) == paper_learning_rate(10)
    assert paper_learning_rate(20) == pytest.approx(9e-5 * 0.998**2, rel=1e-15)


def test_paper_schedule_switch_point():
    switch = paper_switch_step()
    # 9e-5 * 0.998**k < 3e-6 first for k = 1699
    assert switch == 16990
    assert paper_learning_rate(switch - 1) >= 3e-6 > paper_learning_rate(switch)
    assert paper_learning_rate(switch + 119) == paper_learning_rate(switch)
    assert paper_learning_rate(switch + 120) == pytest.approx(
        paper_learning_rate(switch) * 0.998, rel=1e-14
    )


def test_paper_schedule_matches_step_by_step_rule():
    n = 20000
    reference = _iterative_paper_schedule(n)
    closed = np.array([paper_learning_rate(s) for s in range(n)])
    np.testing.assert_allclose(closed, reference, rtol=1e-11)


def test_schedule_validation_and_constant():
    assert make_schedule("constant", 1e-3)(12345) == 1e-3
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("cosine", 1e-3)
    with pytest.raises(ValueError, match="step"):
        paper_learning_rate(-1)
    with pytest.raises(ValueError, match="gamma"):
        paper_learning_rate(0, gamma=1.5)
    # starting below the threshold: slow decay from the start
    assert paper_learning_rate(119, lr0=1e-6) == 1e-6
    assert paper_learning_rate(120, lr0=1e-6) == pytest.approx(1e-6 * 0.998)


# -- data ------------------------------------------------------------------------------------
def test_epoch_permutation_depends_on_seed_and_epoch_only():
    a = epoch_permutation(1000, seed=3, epoch=2)
    assert torch.equal(a, epoch_permutation(1000, seed=3, epoch=2))
    assert torch.equal(torch.sort(a).values, torch.arange(1000))
    assert not torch.equal(a, epoch_permutation(1000, seed=3, epoch=3))
    assert not torch.equal(a, epoch_permutation(1000, seed=4, epoch=2))


def test_training_data_checks():
    d = toy_data()
    with pytest.raises(ValueError, match="galaxy_index"):
        TrainingData(d.x, d.galaxy_index.int(), d.conditions)
    with pytest.raises(ValueError, match=r"lie in \[0, 4\]"):
        TrainingData(d.x, d.galaxy_index + 3, d.conditions)
    bad = d.x.clone()
    bad[7, 1] = float("nan")
    with pytest.raises(ValueError, match="first: row 7"):
        train_flow(tiny_flow(), TrainingData(bad, d.galaxy_index, d.conditions), epochs=1,
                   seed=0, progress=False)
    with pytest.raises(ValueError, match="4 features but the flow models 3"):
        train_flow(tiny_flow(), toy_data(dim=4), epochs=1, seed=0, progress=False)


# -- training -----------------------------------------------------------------------------------
def test_loss_goes_down_on_gaussian_mixture():
    g = torch.Generator().manual_seed(5)
    n, n_val = 2000, 1000
    comp = torch.randint(0, 2, (n + n_val,), generator=g)
    centres = torch.tensor([[-1.5, 0.5], [1.5, -0.5]])
    x = centres[comp] + 0.4 * torch.randn(n + n_val, 2, generator=g)
    data = TrainingData(x[:n], torch.zeros(n, dtype=torch.long), torch.zeros(1, 0))
    val = TrainingData(x[n:], torch.zeros(n_val, dtype=torch.long), torch.zeros(1, 0))

    def log_true(v):  # exact density of the mixture
        d = v[:, None, :] - centres[None]
        lp = -0.5 * (d**2).sum(-1) / 0.16 - math.log(2 * math.pi * 0.16)
        return torch.logsumexp(lp, 1) - math.log(2)

    truth = float(-log_true(val.x).mean())
    flow = ConditionalSplineFlow(2, 0, n_layers=3, bins=8, bound=4.0, hidden=32,
                                 hidden_layers=1, seed=0)
    before = evaluate_nll(flow, val)
    result = train_flow(flow, data, val, epochs=10, batch_size=256, lr=1e-2,
                        schedule="constant", seed=0, progress=False)
    after = result.history["val_nll"][-1]
    assert result.steps == 10 * math.ceil(n / 256)
    assert after < before - 1.0
    assert after - truth < 0.25  # within a quarter nat of the true entropy
    assert result.history["train_nll"][-1] < result.history["train_nll"][0] - 0.5
    assert result.best_epoch == int(np.argmin(result.history["val_nll"]))


def test_history_best_state_and_lr():
    flow = tiny_flow()
    data, val = toy_data(seed=0), toy_data(n=150, seed=1)
    res = train_flow(flow, data, val, epochs=3, batch_size=50, lr=1e-3, seed=2,
                     progress=False)
    h = res.history
    assert h["epoch"] == [0, 1, 2] and h["step"] == [8, 16, 24]
    assert h["lr"] == [paper_learning_rate(s - 1, lr0=1e-3) for s in h["step"]]
    assert all(b >= a for a, b in zip(h["wall_time_s"], h["wall_time_s"][1:], strict=False))
    # best state is the state at the best epoch: reloaded, it gives that validation NLL
    best = tiny_flow()
    best.load_state_dict(res.best_state)
    assert evaluate_nll(best, val) == pytest.approx(h["val_nll"][res.best_epoch], rel=1e-6)
    # without validation the best epoch follows the training NLL
    res2 = train_flow(tiny_flow(), data, epochs=2, batch_size=50, lr=1e-3, seed=2,
                      progress=False)
    assert all(math.isnan(v) for v in res2.history["val_nll"])
    assert res2.best_epoch == int(np.argmin(res2.history["train_nll"]))


def test_same_seed_same_weights_and_max_steps():
    data = toy_data()
    a, b = tiny_flow(), tiny_flow()
    train_flow(a, data, epochs=2, batch_size=64, seed=9, progress=False)
    train_flow(b, data, epochs=2, batch_size=64, seed=9, progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    c = tiny_flow()
    res = train_flow(c, data, epochs=5, batch_size=64, seed=9, progress=False, max_steps=3)
    assert res.steps == 3 and res.history["epoch"] == [] and res.best_epoch == -1


def test_nan_guard_names_step_and_leaves_checkpoint(tmp_path):
    flow, data = tiny_flow(), toy_data()
    original = flow.log_prob
    calls = {"n": 0}
    snapshot = {}

    def poisoned(x, c=None):
        calls["n"] += 1
        out = original(x, c)
        if calls["n"] == 7:  # training step 6 (no validation set)
            snapshot.update({p.name: p.read_bytes() for p in tmp_path.iterdir()})
            out = out.clone()
            out[3] = float("inf")
        return out

    flow.log_prob = poisoned
    with pytest.raises(TrainingDivergedError, match="step 6") as info:
        train_flow(flow, data, epochs=2, batch_size=64, seed=0, checkpoint_dir=tmp_path,
                   checkpoint_every=2, progress=False)
    err = info.value
    assert (err.step, err.epoch, err.batch) == (6, 0, 6)
    assert "batch 6" in str(err)
    assert len(err.rows) == 1 and 0 <= err.rows[0] < data.n_stars
    assert snapshot, "the checkpoint folder was empty at the bad step"
    assert sorted(snapshot) == sorted(p.name for p in tmp_path.iterdir())
    for name, content in snapshot.items():
        assert (tmp_path / name).read_bytes() == content
    assert CheckpointManager(tmp_path).list()[-1].name == "checkpoint-0000000006.h5"


def test_option_errors(tmp_path):
    data = toy_data()
    with pytest.raises(ValueError, match="optimizer"):
        train_flow(tiny_flow(), data, epochs=1, seed=0, optimizer="sgd")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train_flow(tiny_flow(), data, epochs=1, seed=0, resume=True)
    train_flow(tiny_flow(), data, epochs=1, batch_size=200, seed=0, checkpoint_dir=tmp_path,
               progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        train_flow(tiny_flow(), data, epochs=1, batch_size=200, seed=0,
                   checkpoint_dir=tmp_path, progress=False)


def _params(flow) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in flow.parameters()])


def _steps(**options) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights before and after 3 Adam steps of the same tiny run (lr 1e-2)."""
    flow = tiny_flow()
    before = _params(flow)
    train_flow(flow, toy_data(), epochs=1, batch_size=100, max_steps=3, seed=0, optimizer="adam",
               schedule="constant", lr=1e-2, progress=False, **options)
    return before, _params(flow)


def test_weight_decay_pulls_weights_towards_zero():
    # With an L2 term of 1e4 the gradient is the decay's: Adam moves every weight by about lr
    # towards zero in each step; without it, the weights move either way.
    before, plain = _steps()
    _, decayed = _steps(weight_decay=1e4)
    big = before.abs() > 0.1
    shrunk_plain = (plain[big].abs() < before[big].abs()).float().mean()
    shrunk_decay = (decayed[big].abs() < before[big].abs()).float().mean()
    assert shrunk_decay > 0.99, shrunk_decay
    assert shrunk_plain < 0.8, shrunk_plain
    np.testing.assert_allclose((before[big].abs() - decayed[big].abs()).numpy(), 3e-2, rtol=0.05)


def test_gradient_clipping_bounds_the_gradient_norm():
    # Adam divides by the gradient's scale, so a clip to 1e-12 (far below Adam's eps 1e-8)
    # shrinks every update by ~1e-4: the weights barely move, unlike without the clip.
    before, plain = _steps()
    _, clipped = _steps(grad_clip=1e-12)
    _, loose = _steps(grad_clip=1e6)  # never reached: same as no clip
    moved = (plain - before).abs().max()
    assert moved > 1e-2
    assert (clipped - before).abs().max() < 1e-3 * moved
    assert torch.equal(loose, plain)


def test_validation_loss_is_that_of_the_current_weights():
    # Each epoch's validation NLL is evaluated on that epoch's weights (no stale no-grad cache of
    # weights from an earlier epoch): the last one equals a fresh flow's with the final weights.
    data = toy_data(n=600)
    train = TrainingData(data.x[:500], data.galaxy_index[:500], data.conditions)
    val = TrainingData(data.x[500:], data.galaxy_index[500:], data.conditions)
    flow = tiny_flow()
    res = train_flow(flow, train, val, epochs=3, batch_size=64, lr=2e-3, seed=11,
                     progress=False)
    fresh = tiny_flow()
    fresh.load_state_dict(flow.state_dict())
    assert res.history["val_nll"][-1] == pytest.approx(evaluate_nll(fresh, val), abs=1e-6)
    with torch.no_grad():  # and the trained flow itself evaluates with its final weights
        np.testing.assert_allclose(flow.log_prob(val.x, val.conditions[val.galaxy_index]),
                                   fresh.log_prob(val.x, val.conditions[val.galaxy_index]),
                                   rtol=1e-6, atol=1e-6)


def test_nonfinite_gradient_stops_before_the_update():
    flow = tiny_flow()
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    calls = {"n": 0}

    def poison(grad):
        calls["n"] += 1
        return grad * float("nan") if calls["n"] == 3 else grad

    flow.layers[0].S.register_hook(poison)
    with pytest.raises(TrainingDivergedError, match="non-finite gradient at step 2") as info:
        train_flow(flow, toy_data(), epochs=1, batch_size=64, seed=0, progress=False)
    assert info.value.step == 2
    assert not any(torch.isnan(v).any() for v in flow.state_dict().values())
    assert not all(torch.equal(before[k], v) for k, v in flow.state_dict().items())


def test_progress_log_lines_and_bar(caplog, capsys):
    import logging

    data = toy_data()
    with caplog.at_level(logging.INFO, logger="astroflow_gal.training"):
        train_flow(tiny_flow(), data, epochs=1, batch_size=64, seed=0, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("step 7/7") and "ETA" in m and "loss" in m for m in lines)
    assert any(m.startswith("epoch 1: train NLL") for m in lines)
    assert "steps/s" not in capsys.readouterr().err  # no bar
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="astroflow_gal.training"):
        train_flow(tiny_flow(), data, epochs=1, batch_size=64, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "7/7" in err and "loss=" in err  # tqdm bar on stderr
    assert not any(r.getMessage().startswith("step ") for r in caplog.records)

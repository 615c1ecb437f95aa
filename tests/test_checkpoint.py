"""Checkpoints: atomic writes, fallback, refusal of foreign runs, bit-identical resume."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import h5py
import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.io import read_tree
from astroflow_gal.training import (
    CheckpointError,
    CheckpointManager,
    CheckpointWarning,
    TrainingData,
    train_flow,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_flow(hidden=16, seed=3):
    return ConditionalSplineFlow(
        3, 2, n_layers=2, bins=4, bound=4.0, hidden=hidden, hidden_layers=1, seed=seed
    )


def toy_data(n=600, n_gal=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(n_gal, 2, generator=g)
    idx = torch.randint(0, n_gal, (n,), generator=g)
    x = 0.5 * torch.randn(n, 3, generator=g) + cond[idx, :1]
    return TrainingData(x, idx, cond)


def assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), f"{key} differs"


OPTS = dict(epochs=3, batch_size=64, lr=2e-3, seed=11, checkpoint_every=4, progress=False)


# -- the checkpoint manager ---------------------------------------------------------------------
def test_keeps_last_two_and_loads_newest(tmp_path):
    m = CheckpointManager(tmp_path)
    for step in (3, 7, 12):
        m.save({"step": step, "t": torch.arange(step)}, step)
    assert [p.name for p in m.list()] == ["checkpoint-0000000007.h5", "checkpoint-0000000012.h5"]


def test_crash_during_write_leaves_previous_file(tmp_path, monkeypatch):
    m = CheckpointManager(tmp_path)
    m.save({"a": torch.arange(5)}, 1)
    m.save({"a": torch.arange(6)}, 2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = h5py.Group.create_dataset
    count = {"n": 0}

    def crashing(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", crashing)
    with pytest.raises(OSError, match="simulated"):
        m.save({"a": torch.arange(7), "b": torch.ones(3), "c": torch.zeros(2)}, 3)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # nothing new, nothing changed, no temporary left


# -- resuming in this process ---------------------------------------------------------------------
def test_corrupt_newest_falls_back_with_warning_and_still_matches(tmp_path):
    data, val = toy_data(), toy_data(n=100, seed=5)
    reference = tiny_flow()
    ref = train_flow(reference, data, val, **OPTS)

    flow = tiny_flow()
    train_flow(flow, data, val, checkpoint_dir=tmp_path, max_steps=17, **OPTS)
    files = CheckpointManager(tmp_path).list()
    assert [p.name for p in files] == ["checkpoint-0000000016.h5", "checkpoint-0000000017.h5"]
    files[-1].write_bytes(files[-1].read_bytes()[:300])  # truncated newest

    resumed = tiny_flow(seed=99)  # different initial weights: all must come from the file
    with pytest.warns(CheckpointWarning, match="checkpoint-0000000017.h5"):
        res = train_flow(resumed, data, val, checkpoint_dir=tmp_path, resume=True, **OPTS)
    assert res.resumed_from.endswith("checkpoint-0000000016.h5")
    assert_same_state(reference.state_dict(), resumed.state_dict())
    assert_same_state(ref.best_state, res.best_state)
    assert res.history["train_nll"] == ref.history["train_nll"]
    assert res.history["val_nll"] == ref.history["val_nll"]
    assert res.steps == ref.steps == 30


def test_checkpoint_contents(tmp_path):
    flow = tiny_flow()
    train_flow(flow, toy_data(), checkpoint_dir=tmp_path, max_steps=6, **OPTS)
    state, _ = read_tree(CheckpointManager(tmp_path).list()[-1],
                         format_name="astroflow_gal.training_checkpoint", max_version=1)
    pos = state["position"]
    assert (pos["epoch"], pos["step_in_epoch"], pos["global_step"]) == (0, 6, 6)
    assert state["schedule"]["name"] == "paper" and state["schedule"]["step"] == 6
    assert state["rng"]["torch_cpu"].dtype == torch.uint8
    assert state["optimizer_state"]["state"][0]["step"] == 6
    assert_same_state(state["flow_state"], flow.state_dict())


def test_refuses_other_flow_or_data(tmp_path):
    data = toy_data()
    train_flow(tiny_flow(), data, checkpoint_dir=tmp_path, max_steps=5, **OPTS)
    with pytest.raises(CheckpointError, match="flow_config.hidden: checkpoint 16, now 8"):
        train_flow(tiny_flow(hidden=8), data, checkpoint_dir=tmp_path, resume=True, **OPTS)
    with pytest.raises(CheckpointError, match="data.n_train: checkpoint 600, now 500"):
        train_flow(tiny_flow(), toy_data(n=500), checkpoint_dir=tmp_path, resume=True, **OPTS)
    with pytest.raises(CheckpointError, match="train_fingerprint"):
        train_flow(tiny_flow(), toy_data(seed=4), checkpoint_dir=tmp_path, resume=True, **OPTS)
    with pytest.raises(CheckpointError, match="options.batch_size"):
        train_flow(tiny_flow(), data, checkpoint_dir=tmp_path, resume=True,
                   **{**OPTS, "batch_size": 32})


def test_all_unreadable_is_an_error(tmp_path):
    (tmp_path / "checkpoint-0000000004.h5").write_bytes(b"not hdf5 at all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        with pytest.raises(CheckpointError, match="no readable checkpoint"):
            train_flow(tiny_flow(), toy_data(), checkpoint_dir=tmp_path, resume=True, **OPTS)


# -- SIGKILL and resume in subprocesses --------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import h5py, torch
    torch.set_num_threads(1)
    from astroflow_gal.flow import ConditionalSplineFlow
    from astroflow_gal.io import write_tree
    from astroflow_gal.training import TrainingData, train_flow
    import astroflow_gal.training.checkpoint as ckpt

    mode, folder, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(6, 2, generator=g)
    idx = torch.randint(0, 6, (600,), generator=g)
    x = 0.5 * torch.randn(600, 3, generator=g) + cond[idx, :1]
    train = TrainingData(x[:500], idx[:500], cond)
    val = TrainingData(x[500:], idx[500:], cond)
    flow = ConditionalSplineFlow(3, 2, n_layers=2, bins=4, bound=4.0, hidden=16,
                                 hidden_layers=1, seed=3)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "kill-step":  # killed inside the kill_at-th call of log_prob
        real_lp, calls = flow.log_prob, [0]
        def log_prob(x, c=None):
            calls[0] += 1
            if calls[0] == kill_at:
                die()
            return real_lp(x, c)
        flow.log_prob = log_prob
    elif mode == "kill-write":  # killed half way through writing the kill_at-th checkpoint
        real_write, writes = ckpt.write_tree, [0]
        def write_tree_then_die(path, tree, **kw):
            writes[0] += 1
            if writes[0] == kill_at:
                real_cd, n = h5py.Group.create_dataset, [0]
                def create_dataset(self, *a, **k):
                    n[0] += 1
                    if n[0] == 5:
                        die()
                    return real_cd(self, *a, **k)
                h5py.Group.create_dataset = create_dataset
            return real_write(path, tree, **kw)
        ckpt.write_tree = write_tree_then_die
    elif mode == "pause-after-write":  # waits to be killed once its kill_at-th checkpoint is in
        import time
        real_write, writes = ckpt.write_tree, [0]
        def write_tree_then_pause(path, tree, **kw):
            result = real_write(path, tree, **kw)
            writes[0] += 1
            if writes[0] == kill_at:
                with open(out + ".paused", "w") as handle:
                    handle.write(str(path))
                time.sleep(600)
            return result
        ckpt.write_tree = write_tree_then_pause

    res = train_flow(flow, train, val, epochs=3, batch_size=64, lr=2e-3, seed=11,
                     checkpoint_dir=folder, checkpoint_every=3, resume=True,
                     progress=False)
    write_tree(out, {"final": flow.state_dict(), "best": res.best_state,
                     "history": res.history, "steps": res.steps},
               format_name="test", format_version=1)
    """
)


def _start(script: Path, mode: str, folder: Path, out: Path, kill_at: int = 0):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(folder), str(out), str(kill_at)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )


def _finish(proc, expect_kill: bool = False):
    _, err = proc.communicate(timeout=300)
    if expect_kill:
        assert proc.returncode == -9, err.decode()[-2000:]
    else:
        assert proc.returncode == 0, err.decode()[-2000:]


def _read(out: Path) -> dict:
    return read_tree(out, format_name="test", max_version=1)[0]


def _names(folder: Path) -> list[str]:
    return [p.name for p in CheckpointManager(folder).list()]


def _reference(tmp_path: Path):
    """The uninterrupted run of SCRIPT, in this process (one thread, as in the script)."""
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(6, 2, generator=g)
    idx = torch.randint(0, 6, (600,), generator=g)
    x = 0.5 * torch.randn(600, 3, generator=g) + cond[idx, :1]
    flow = tiny_flow()
    res = train_flow(flow, TrainingData(x[:500], idx[:500], cond),
                     TrainingData(x[500:], idx[500:], cond), epochs=3, batch_size=64, lr=2e-3,
                     seed=11, checkpoint_dir=tmp_path / "reference", checkpoint_every=3,
                     progress=False)
    return flow.state_dict(), res


def _compare(out: Path, reference) -> None:
    state, res = reference
    other = _read(out)
    assert_same_state(state, other["final"])
    assert_same_state(res.best_state, other["best"])
    assert other["history"]["train_nll"] == res.history["train_nll"]
    assert other["history"]["val_nll"] == res.history["val_nll"]
    assert other["steps"] == res.steps == 24


def test_sigkill_and_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    folder, out = tmp_path / "ckpt", tmp_path / "out.h5"
    # 500 stars, batch 64: 8 steps per epoch, checkpoints after steps 3, 6, 8 (epoch end),
    # 9, 12, 15, 16 (epoch end), ...
    # 1) killed half way through writing its 4th checkpoint (step 9)
    _finish(_start(script, "kill-write", folder, out, kill_at=4), expect_kill=True)
    assert _names(folder) == ["checkpoint-0000000006.h5", "checkpoint-0000000008.h5"]
    assert list(folder.glob(".checkpoint-*.tmp")), "the killed write left no temporary"
    # 2) resumed at step 8, killed inside the 6th log_prob call: training step 13, mid-epoch
    _finish(_start(script, "kill-step", folder, out, kill_at=6), expect_kill=True)
    assert _names(folder) == ["checkpoint-0000000009.h5", "checkpoint-0000000012.h5"]
    assert not list(folder.glob(".checkpoint-*.tmp"))
    # 3) resumed at step 12 and run to the end
    _finish(_start(script, "resume", folder, out))
    _compare(out, _reference(tmp_path))


@pytest.mark.slow
def test_sigkill_from_outside_after_checkpoints(tmp_path):
    """Killed from outside (SIGKILL) three times, just after the 1st, 2nd and 3rd checkpoint of
    its session is on disk, then resumed to the end: bit-identical to one uninterrupted run.

    The child writes a marker and waits once the chosen checkpoint is in, so every kill lands
    (no race with a short run) and the sequence of kills is the same on every machine.
    """
    import time

    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    folder, out = tmp_path / "ckpt", tmp_path / "out.h5"
    marker = Path(str(out) + ".paused")
    kills = 0
    for k in [1, 2, 3]:  # checkpoints at steps 3 | 6, 8 | 9, 12, 15: three kills, mid-run
        marker.unlink(missing_ok=True)
        proc = _start(script, "pause-after-write", folder, out, kill_at=k)
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, "the run ended before the checkpoint it was to stop at"
            assert time.monotonic() < deadline, "the training run did not pause"
            time.sleep(0.02)
        proc.kill()
        _finish(proc, expect_kill=True)
        kills += 1
        assert Path(marker.read_text()).name in _names(folder)
    assert kills == 3 and _names(folder)[-1] == "checkpoint-0000000015.h5"
    _finish(_start(script, "resume", folder, out))  # from step 15 to the end
    _compare(out, _reference(tmp_path))


def test_training_and_resuming_leave_the_global_rng_as_found(tmp_path):
    data = toy_data()
    opts = dict(epochs=1, batch_size=200, seed=0, checkpoint_dir=tmp_path, progress=False)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    train_flow(tiny_flow(), data, **opts)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)
    before = torch.get_rng_state()
    result = train_flow(tiny_flow(), data, resume=True, **opts)
    assert result.resumed_from is not None
    assert torch.equal(torch.get_rng_state(), before)
    # the caller's stream continues where it was
    expected = torch.rand(3, generator=torch.Generator().manual_seed(999))
    assert torch.equal(torch.rand(3), expected)

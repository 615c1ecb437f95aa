"""Two CPU processes under torchrun (gloo) train like one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.io import read_tree
from astroflow_gal.training import TrainingData, train_flow

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    from astroflow_gal.flow import ConditionalSplineFlow
    from astroflow_gal.io import write_tree
    from astroflow_gal.training import TrainingData, distributed_context, train_flow

    out, folder = sys.argv[1], sys.argv[2]
    if os.environ["RANK"] != "0":  # only rank 0 may write checkpoints
        import astroflow_gal.training.checkpoint as ckpt

        def refuse(*args, **kwargs):
            raise AssertionError("a rank other than 0 wrote a checkpoint")

        ckpt.write_tree = refuse
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(5, 2, generator=g)
    idx = torch.randint(0, 5, (701,), generator=g)
    x = 0.5 * torch.randn(701, 3, generator=g) + cond[idx, :1]
    flow = ConditionalSplineFlow(3, 2, n_layers=2, bins=4, bound=4.0, hidden=16,
                                 hidden_layers=1, seed=3)
    res = train_flow(flow, TrainingData(x[:601], idx[:601], cond),
                     TrainingData(x[601:], idx[601:], cond), epochs=2, batch_size=64,
                     lr=3e-3, seed=7, checkpoint_dir=folder, checkpoint_every=4,
                     progress=False)
    ctx = distributed_context()
    assert ctx.world_size == 2, ctx
    write_tree(f"{out}.rank{ctx.rank}", {"final": flow.state_dict(), "history": res.history,
               "steps": res.steps}, format_name="test", format_version=1)
    torch.distributed.destroy_process_group()
    """
)


def test_two_processes_match_one(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    out = tmp_path / "ddp.h5"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(script), str(out), str(tmp_path / "ckpt")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the same run in one process: 601 stars, global batch 64 -> 10 steps per epoch, the last
    # batch of 25 stars split 13 / 12 between the ranks
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(5, 2, generator=g)
    idx = torch.randint(0, 5, (701,), generator=g)
    x = 0.5 * torch.randn(701, 3, generator=g) + cond[idx, :1]
    flow = ConditionalSplineFlow(3, 2, n_layers=2, bins=4, bound=4.0, hidden=16,
                                 hidden_layers=1, seed=3)
    res = train_flow(flow, TrainingData(x[:601], idx[:601], cond),
                     TrainingData(x[601:], idx[601:], cond), epochs=2, batch_size=64, lr=3e-3,
                     seed=7, progress=False)

    ranks = [read_tree(f"{out}.rank{r}", format_name="test", max_version=1)[0] for r in (0, 1)]
    initial = ConditionalSplineFlow(3, 2, n_layers=2, bins=4, bound=4.0, hidden=16,
                                    hidden_layers=1, seed=3).state_dict()
    moved = 0.0
    for key, value in flow.state_dict().items():
        for rank in ranks:
            torch.testing.assert_close(rank["final"][key], value, rtol=1e-4, atol=2e-6)
        moved = max(moved, float((value - initial[key]).abs().max()))
    assert moved > 1e-3  # training changed the weights far beyond the tolerance
    for rank in ranks:
        assert rank["steps"] == res.steps == 20
        assert rank["history"]["train_nll"] == pytest.approx(res.history["train_nll"], rel=1e-5)
        assert rank["history"]["val_nll"] == pytest.approx(res.history["val_nll"], rel=1e-5)
    # checkpoints (written by rank 0 only, see SCRIPT): the last one is the end of epoch 2
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["checkpoint-0000000016.h5", "checkpoint-0000000020.h5"]

    # a single process may continue the two-process run (same data order; float rounding only)
    with pytest.warns(UserWarning, match="written by 2 process"):
        more = train_flow(flow, TrainingData(x[:601], idx[:601], cond),
                          TrainingData(x[601:], idx[601:], cond), epochs=3, batch_size=64,
                          lr=3e-3, seed=7, progress=False, checkpoint_dir=tmp_path / "ckpt",
                          resume=True)
    assert more.steps == 30 and more.history["epoch"] == [0, 1, 2]
    assert more.history["train_nll"][:2] == ranks[0]["history"]["train_nll"]


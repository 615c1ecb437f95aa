"""Cross-validation end to end on a tiny configuration, and its resume after an interruption."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.analysis.crossval import cross_validate
from astroflow_gal.data.suite import Galaxy, GalaxySuite

TINY_FIT = {"epochs": 1, "max_steps": 6, "batch_size": 128, "checkpoint_every": 2,
            "flow_config": {"n_layers": 2, "bins": 4, "hidden": 8, "hidden_layers": 1}}
TINY_EVAL = {"max_stars": 150, "kernel_permutations": 9, "max_test_points": 60,
             "classifier_epochs": 5, "n_kl_stars": 50}



@pytest.fixture(scope="module")
def tiny_suite(small_suite):
    galaxies = [Galaxy(g.id, g.stars[:300], dict(g.conditions)) for g in small_suite][:5]
    return GalaxySuite(galaxies, meta={"source": "test"}, truth=small_suite.truth)


class _Interrupt(Exception):
    pass


def _run(suite, out, **kw):
    return cross_validate(suite, out, n_models=2, n_holdout=2, seed=3, fit_options=TINY_FIT,
                          evaluate_options=TINY_EVAL, formats=("png",), **kw)


def test_crossval_runs_and_resumes_where_it_stopped(tiny_suite, tmp_path, monkeypatch, caplog,
                                                   one_torch_thread):
    from astroflow_gal.training import checkpoint

    # A run killed right after the second checkpoint of model 1 ...
    original = checkpoint.CheckpointManager.save
    calls = {"n": 0}

    def save_then_die(self, state, step):
        path = original(self, state, step)
        if "model_01" in str(self.folder):
            calls["n"] += 1
            if calls["n"] == 2:
                raise _Interrupt("killed")
        return path

    monkeypatch.setattr(checkpoint.CheckpointManager, "save", save_then_die)
    out = tmp_path / "cv"
    with pytest.raises(_Interrupt):
        _run(tiny_suite, out)
    assert (out / "model_00" / "model.h5").exists() and (out / "model_00" / "metrics.ecsv").exists()
    assert not (out / "model_01" / "model.h5").exists()
    assert list((out / "model_01" / "checkpoints").rglob("checkpoint-*.h5"))
    monkeypatch.setattr(checkpoint.CheckpointManager, "save", original)

    # ... continues: model 0 is read back, model 1 resumes from its checkpoint. Its evaluation
    # is made to last 0.3 s, so that the 0.05 s heartbeat must tick while that phase lasts.
    from astroflow_gal.analysis import crossval

    real_evaluate = crossval.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(0.3)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(crossval, "evaluate", slow_evaluate)
    with caplog.at_level(logging.INFO):
        resumed = _run(tiny_suite, out, heartbeat_s=0.05)
    text = caplog.text
    assert "model 1/2: trained earlier" in text and "resumed from" in text
    # Beyond the 5 phase changes, the heartbeat adds lines while a phase lasts.
    assert text.count("crossval: model") > 6
    metrics = QTable.read(out / "metrics.ecsv")
    assert len(metrics) == 4 and sorted(set(metrics["model"])) == [0, 1]
    assert np.all(metrics["held_out"])
    splits = tiny_suite.cross_validation(n_models=2, n_holdout=2, seed=3)
    for k, split in enumerate(splits):
        assert sorted(metrics["galaxy_id"][metrics["model"] == k]) == sorted(split.holdout_ids)
    pairs = QTable.read(out / "mmd_model_data.ecsv")
    assert len(pairs) == 4 * len(tiny_suite)
    assert (out / "mmd_mass.png").exists() and (out / "metrics_mass.png").exists()

    # The interrupted run gives the same models as one that was never interrupted.
    fresh = _run(tiny_suite, tmp_path / "fresh")
    np.testing.assert_allclose(resumed["metrics"]["linear_mmd"], fresh["metrics"]["linear_mmd"],
                               rtol=1e-6)
    np.testing.assert_allclose(resumed["metrics"]["kl"], fresh["metrics"]["kl"], rtol=1e-6)


def test_crossval_refuses_other_settings_and_bad_options(tiny_suite, tmp_path):
    out = tmp_path / "cv"
    out.mkdir()
    (out / "crossval.json").write_text('{"n_models": 7}')
    with pytest.raises(ValueError, match="other settings"):
        _run(tiny_suite, out)
    with pytest.raises(ValueError, match="epochs"):
        cross_validate(tiny_suite, tmp_path / "x", fit_options={})
    with pytest.raises(ValueError, match="may not set"):
        cross_validate(tiny_suite, tmp_path / "x", fit_options={"epochs": 1, "resume": False})
    with pytest.raises(ValueError, match="n_holdout"):
        cross_validate(tiny_suite, tmp_path / "x", n_holdout=0, fit_options={"epochs": 1})


def test_cli_crossval_tiny(tiny_suite, tmp_path, capsys, one_torch_thread):
    from astroflow_gal.cli import main

    suite_file = tmp_path / "s.h5"
    tiny_suite.write(suite_file)
    out = tmp_path / "cv"
    code = main(["crossval", str(suite_file), "--models", "1", "--holdout", "1", "--out",
                 str(out), "--epochs", "1", "--max-steps", "3", "--batch-size", "128",
                 "--n-layers", "2", "--bins", "4", "--hidden", "8", "--hidden-layers", "1",
                 "--max-stars", "100", "--permutations", "9", "--test-points", "40",
                 "--no-classifier", "--kl-stars", "50"])
    assert code == 0
    assert "Spearman" in capsys.readouterr().out
    assert len(QTable.read(out / "metrics.ecsv")) == 1
    assert (out / "model_00" / "model.h5").exists()

"""Long work reports its progress without a terminal: start line, periodic lines, end line."""

from __future__ import annotations

import logging
import time

import astropy.units as u
import pytest

from astroflow_gal.training.progress import ProgressLog, ProgressReporter, track

MW = dict(M_stars=5e10 * u.Msun, tau50=7 * u.Gyr, tau10=2 * u.Gyr, Z_av=0.015)


@pytest.fixture
def no_log_handlers(monkeypatch):
    """As in a plain script: logging not configured (pytest's own handlers removed)."""
    monkeypatch.setattr(logging.Logger, "hasHandlers", lambda self: False)


def test_progress_log_prints_start_periodic_and_end_lines_without_logging(
    no_log_handlers, capsys
):
    with ProgressLog(4, desc="crunching", unit="model", bar=False, interval=0.05) as p:
        for _ in range(3):
            time.sleep(0.08)  # longer than the interval: one line per update
            p.update(1)
        p.update(1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "crunching: 4 models to do"
    assert [ln.split(",")[0] for ln in lines[1:]] == [
        "crunching: 1/4 models (25 %)",
        "crunching: 2/4 models (50 %)",
        "crunching: 3/4 models (75 %)",
        "crunching: 4/4 models (100 %)",
    ]
    assert all("ETA" in ln and "model/s" in ln for ln in lines[1:])
    assert lines[-1].endswith("ETA 0:00:00")


def test_progress_log_quiet_between_intervals_and_reports_a_stop(no_log_handlers, capsys):
    with ProgressLog(1000, desc="work", unit="star", bar=False, interval=3600) as p:
        for _ in range(10):
            p.update(10)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "work: 1,000 stars to do"
    assert len(lines) == 2 and lines[1].startswith("work: 100/1,000 stars (10 %)")
    assert lines[1].endswith("(stopped)")


def test_progress_log_uses_logging_when_configured(caplog, capsys):
    logger = logging.getLogger("astroflow_gal.progress")
    with caplog.at_level(logging.INFO, logger="astroflow_gal.progress"):
        with ProgressLog(2, desc="cv", unit="model", bar=False, logger=logger) as p:
            p.update(2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "cv: 2 models to do"
    assert messages[-1].startswith("cv: 2/2 models (100 %)")
    assert "cv:" not in capsys.readouterr().err


def test_progress_log_bar_and_disabled(capsys):
    with ProgressLog(3, desc="barred", unit="step", bar=True) as p:
        p.update(3, loss=1.5)
    err = capsys.readouterr().err
    assert "barred" in err and "3/3" in err and "loss=1.5" in err
    with ProgressLog(3, desc="silent", bar=False, enabled=False) as p:
        p.update(3)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_progress_log_rejects_bad_totals(bad):
    with pytest.raises(ValueError, match="total"):
        ProgressLog(bad, desc="x")
    with pytest.raises(ValueError, match="interval"):
        ProgressLog(3, desc="x", interval=0)


def test_track_counts_items(no_log_handlers, capsys):
    assert list(track(["a", "b", "c"], desc="splits", unit="split", bar=False)) == ["a", "b", "c"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "splits: 3 splits to do" and lines[-1].startswith("splits: 3/3 splits")
    with pytest.raises(TypeError, match="total="):
        list(track(iter([1]), desc="x"))


def test_training_reporter_start_estimate_and_time_based_lines(no_log_handlers, capsys,
                                                             monkeypatch):
    monkeypatch.setattr(ProgressReporter, "ESTIMATE_AFTER_S", 0.0)
    r = ProgressReporter(50, 10, bar=False, log_every=1000, epochs=5, interval=0.2)
    r.step(11, 2.0, 1e-3)  # first step: the estimate
    time.sleep(0.3)
    r.step(12, 1.9, 1e-3)  # interval passed: a line although log_every is far
    r.step(13, 1.8, 1e-3)  # too soon after the last line: nothing
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("training: 40 steps to do over 5 epochs (steps 11 to 50)")
    assert lines[1].startswith("training: ") and "estimated time" in lines[1]
    steps = [ln for ln in lines if ln.startswith("step ")]
    assert steps[-1].startswith("step 12/50") and not any(s.startswith("step 13") for s in steps)


def test_sample_to_file_reports_without_a_terminal(no_log_handlers, capsys, monkeypatch,
                                                   tmp_path):
    import astroflow_gal.model as model_mod
    from astroflow_gal import GalaxyModel

    model = GalaxyModel.pretrained()
    monkeypatch.setattr(model_mod, "_REPORT_FROM_STARS", 2_000)
    model.sample_to_file(3_000, tmp_path / "a.h5", MW, seed=1)  # progress=None, no terminal
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "sampling a.h5: 3,000 stars to do"
    assert lines[-1].startswith("sampling a.h5: 3,000/3,000 stars (100 %)")
    model.sample_to_file(1_000, tmp_path / "b.h5", MW, seed=1)  # small: silent
    model.sample_to_file(3_000, tmp_path / "c.h5", MW, seed=1, progress=False)
    assert capsys.readouterr().err == ""

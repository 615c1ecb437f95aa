"""``astroflow-gal suite`` sub-commands, called through the command-line entry point."""

from __future__ import annotations

import numpy as np
import pytest

from astroflow_gal.cli import main
from astroflow_gal.data import GalaxySuite


def write_nihao_file(path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    pos = direction * rng.uniform(0.1, 8, size=(n, 1))
    data = np.vstack([
        pos.T,
        rng.normal(0, 60, size=(3, n)),
        rng.uniform(0.001, 0.03, size=n),
        rng.uniform(-2, 0.3, size=n),
        rng.uniform(-0.2, 0.4, size=n),
        rng.uniform(1e4, 3e4, size=n),
        rng.uniform(0, 13, size=n),
    ])
    np.save(path, data)


def test_nihao_then_info(tmp_path, capsys):
    folder = tmp_path / "nihao"
    folder.mkdir()
    write_nihao_file(folder / "snap_g1.1e11_2e11.npy", 700, 0)
    write_nihao_file(folder / "snap_g5.0e10_9e10.npy", 900, 1)
    write_nihao_file(folder / "snap_tiny_1e9.npy", 300, 2)
    out = tmp_path / "suite.h5"
    assert main(["suite", "nihao", str(folder), "-o", str(out), "--feh-min", "none"]) == 0
    text = capsys.readouterr().out
    assert "2 galaxies" in text and "left out tiny" in text
    suite = GalaxySuite.read(out)
    assert suite.ids == ["g1.1e11", "g5.0e10"]
    assert suite.meta["nihao"]["cuts"]["feh_min"] is None
    assert suite.n_stars == (700 - 35 - 10) + (900 - 45 - 10)

    assert main(["suite", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "source: NIHAO" in text
    lines = text.splitlines()
    header = next(line for line in lines if "galaxy" in line and "n_stars" in line)
    assert "M_stars [solMass]" in header and "tau10 [Gyr]" in header and "Z_av" in header
    row = next(line for line in lines if line.strip().startswith("g5.0e10"))
    fields = row.split()
    assert fields[1] == str(suite["g5.0e10"].n_stars)
    assert float(fields[2]) == pytest.approx(suite["g5.0e10"].conditions["M_stars"].value,
                                             rel=1e-4)


def test_errors_are_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("not a suite")
    assert main(["suite", "info", str(bad)]) == 2
    assert "bad.h5" in capsys.readouterr().err
    assert main(["suite", "nihao", str(tmp_path / "none"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "no folder" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()
    with pytest.raises(SystemExit):
        main(["suite", "nihao", str(tmp_path), "-o", "x.h5", "--r-cap", "wide"])


def test_synthetic_then_info(tmp_path, capsys):
    out = tmp_path / "syn.h5"
    args = ["suite", "synthetic", "-o", str(out), "--n-galaxies", "3", "--seed", "4",
            "--max-total-stars", "1500", "--min-stars", "300"]
    assert main(args) == 0
    assert "3 synthetic galaxies" in capsys.readouterr().out
    suite = GalaxySuite.read(out)
    assert len(suite) == 3 and suite.meta["seed"] == 4 and suite.meta["source"] == "synthetic"
    assert 900 <= suite.n_stars <= 1500
    assert suite.truth is not None
    assert main(["suite", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exact truth: yes" in text and "source: synthetic" in text
    for gid in suite.ids:
        assert any(line.strip().startswith(gid) for line in text.splitlines())

"""``astroflow-gal train --config default`` works from any folder; a path keeps working."""

from __future__ import annotations

import argparse

import pytest
import torch

from astroflow_gal.cli import train as train_cli
from astroflow_gal.cli.train import available_configs, read_config, resolve_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="astroflow-gal")
    train_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_shipped_config_by_name_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "default" in available_configs()
    path = resolve_config("default")
    assert path.is_file() and path.parent.name == "configs" and path.name == "default.toml"
    assert resolve_config("default.toml") == path
    tables = read_config(path)
    assert tables["training"]["epochs"] >= 1 and tables["flow"]["n_layers"] >= 1


def test_a_path_still_works_and_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").write_text("[training]\nepochs = 7\n")
    assert resolve_config("default").resolve() == tmp_path / "default"
    mine = tmp_path / "mine.toml"
    mine.write_text("[training]\nepochs = 3\n")
    assert read_config(resolve_config(str(mine)))["training"] == {"epochs": 3}
    assert resolve_config(None) is None


def test_unknown_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="shipped: .*default"):
        resolve_config("nosuchconfig")
    with pytest.raises(FileNotFoundError):
        resolve_config("sub/default")  # a path that does not exist is not looked up by name


def test_train_command_with_named_config(tmp_path, monkeypatch):
    from astroflow_gal.data import GalaxySuite
    from astroflow_gal.model import GalaxyModel

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    GalaxySuite.synthetic(n_galaxies=3, seed=0, max_total_stars=900, min_stars=200,
                          max_stars_per_galaxy=400).write(tmp_path / "s.h5")
    args = _parser().parse_args(["train", "s.h5", "-o", "m.h5", "--config", "default",
                                 "--max-steps", "2", "--n-holdout", "1", "--no-progress"])
    assert train_cli.run(args) == 0
    model = GalaxyModel.load(tmp_path / "m.h5")
    shipped = read_config(resolve_config("default"))
    assert model.flow.config["n_layers"] == shipped["flow"]["n_layers"]
    assert model.flow.config["hidden"] == shipped["flow"]["hidden"]

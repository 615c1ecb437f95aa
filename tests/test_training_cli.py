"""``astroflow-gal train``: suite file in, model file out; TOML options; resume."""

from __future__ import annotations

import pytest
import torch

from astroflow_gal.cli import main
from astroflow_gal.cli.train import read_config

CONFIG = """
[flow]
n_layers = 2
bins = 4
hidden = 16
hidden_layers = 1

[training]
batch_size = 256
lr = 1e-3
seed = 3
checkpoint_every = 2
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    from astroflow_gal.data import GalaxySuite

    path = tmp_path_factory.mktemp("suite") / "suite.h5"
    GalaxySuite.synthetic(n_galaxies=4, seed=0, max_total_stars=1600, min_stars=200,
                          max_stars_per_galaxy=600).write(path)
    return path


def test_unknown_holdout_id_is_a_clear_error(tmp_path, suite_file, capsys):
    code = main(["train", str(suite_file), "-o", str(tmp_path / "m.h5"), "--holdout", "nope",
                 "--epochs", "1", "--no-progress"])
    assert code == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "m.h5").exists()


def test_train_writes_model_with_history_and_holdout(tmp_path, suite_file, capsys):
    from astroflow_gal.data import GalaxySuite
    from astroflow_gal.model import GalaxyModel

    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "model.h5"
    held = GalaxySuite.read(suite_file).ids[1]
    code = main(["train", str(suite_file), "-o", str(out), "--config", str(cfg),
                 "--holdout", held, "--epochs", "2", "--no-progress",
                 "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert code == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    model = GalaxyModel.load(out)
    assert model.flow.config["hidden"] == 16 and model.flow.config["n_layers"] == 2
    history = model.history["edf"]
    assert history["epoch"] == [0, 1]
    assert all(v == v for v in history["val_nll"])  # validation ran (not NaN)
    assert model.meta["holdout"] == [held]
    assert list((tmp_path / "ckpt").rglob("checkpoint-*.h5"))

    # resuming a finished run trains no further and gives the same weights
    out2 = tmp_path / "model2.h5"
    code = main(["train", str(suite_file), "-o", str(out2), "--config", str(cfg),
                 "--holdout", held, "--epochs", "2", "--no-progress",
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume"])
    assert code == 0
    again = GalaxyModel.load(out2)
    for key, value in model.flow.state_dict().items():
        assert torch.equal(value, again.flow.state_dict()[key]), key


def test_bad_options_fail_before_training(tmp_path, suite_file, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[training]\nepochs = 1\nlearning_rate = 3\n")
    assert main(["train", str(suite_file), "-o", str(tmp_path / "m.h5"),
                 "--config", str(cfg)]) == 2
    assert "unknown keys ['learning_rate'] in [training]" in capsys.readouterr().err
    assert main(["train", str(suite_file), "-o", str(tmp_path / "m.h5")]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["train", str(suite_file), "-o", str(tmp_path / "no" / "m.h5"),
                 "--epochs", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", str(suite_file), "-o", str(tmp_path / "m.h5"), "--epochs", "1",
                 "--resume"]) == 2
    assert "--checkpoint-dir" in capsys.readouterr().err


def test_read_config_tables(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG + "\n[split]\nn_holdout = 1\nseed = 4\n")
    tables = read_config(cfg)
    assert tables["flow"]["hidden"] == 16
    assert tables["training"]["checkpoint_every"] == 2
    assert tables["split"] == {"n_holdout": 1, "seed": 4}
    cfg.write_text("[optimiser]\nlr = 1\n")
    with pytest.raises(ValueError, match="unknown tables"):
        read_config(cfg)


@pytest.mark.slow
def test_train_under_torchrun(tmp_path, suite_file):
    """``torchrun --nproc-per-node=2 -m astroflow_gal train``: one model file, from rank 0."""
    import os
    import subprocess
    import sys

    from astroflow_gal.model import GalaxyModel

    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "model.h5"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "astroflow_gal", "train", str(suite_file), "-o", str(out), "--config", str(cfg),
         "--n-holdout", "1", "--holdout-seed", "2", "--epochs", "1",
         "--checkpoint-dir", str(tmp_path / "ckpt")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote") == 1  # rank 0 only
    model = GalaxyModel.load(out)
    assert model.history["edf"]["epoch"] == [0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.toml", "ckpt", "model.h5"]


def test_regularisation_options_reach_training_and_the_meta(tmp_path, suite_file, capsys):
    """--condition-noise, --weight-decay and --balance-galaxies change the trained weights and
    are recorded; a negative noise and a balancing power above 1 are refused before training."""
    from astroflow_gal.model import GalaxyModel

    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    common = ["--config", str(cfg), "--epochs", "1", "--no-progress", "--max-steps", "3"]
    models = {}
    for name, extra in {"plain": [], "noisy": ["--condition-noise", "0.3",
                                               "--weight-decay", "0.01",
                                               "--balance-galaxies", "0.5"]}.items():
        out = tmp_path / f"{name}.h5"
        assert main(["train", str(suite_file), "-o", str(out), *common, *extra]) == 0
        models[name] = GalaxyModel.load(out)
    training = models["noisy"].meta["training"]
    assert training["condition_noise"] == 0.3 and training["weight_decay"] == 0.01
    assert training["balance_galaxies"] == 0.5
    assert models["plain"].meta["training"]["condition_noise"] == 0.0
    assert models["plain"].meta["training"]["balance_galaxies"] == 0.0
    plain, noisy = (m.flow.state_dict() for m in (models["plain"], models["noisy"]))
    assert any(not torch.equal(plain[k], noisy[k]) for k in plain)
    capsys.readouterr()
    assert main(["train", str(suite_file), "-o", str(tmp_path / "bad.h5"), *common,
                 "--condition-noise", "-1"]) == 2
    assert "condition_noise must be >= 0" in capsys.readouterr().err
    assert main(["train", str(suite_file), "-o", str(tmp_path / "bad.h5"), *common,
                 "--balance-galaxies", "2"]) == 2
    assert "balance_galaxies must lie in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()


def test_flow_space_maps_reach_the_model_file(tmp_path, suite_file, capsys):
    """--velocity-frame and --scale-with-mass build the normaliser the model is saved with; the
    trained marginal shares it, and the model samples and evaluates through it."""
    import numpy as np

    from astroflow_gal.model import GalaxyModel

    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "maps.h5"
    assert main(["train", str(suite_file), "-o", str(out), "--config", str(cfg), "--epochs", "1",
                 "--no-progress", "--max-steps", "3", "--marginals", "position",
                 "--velocity-frame", "cylindrical", "--scale-with-mass", "velocity",
                 "position"]) == 0
    model = GalaxyModel.load(out)
    norm = model.normalizer
    assert norm.velocity_frame == "cylindrical"
    assert [law.columns for law in norm.scale_laws] == [("vx", "vy", "vz"), ("x", "y", "z")]
    assert model.meta["training"]["scale_with_mass"] == ["velocity", "position"]
    assert model.meta["training"]["velocity_frame"] == "cylindrical"
    conditions = {n: model.training_range[n][0] * 1.01 if n == "M_stars" else
                  float(np.mean(model.training_range[n])) for n in model.condition_names}
    conditions["tau10"] = min(conditions["tau10"], conditions["tau50"])
    stars = model.sample(500, conditions, seed=0, allow_extrapolation=True)
    log_f = model.log_edf(stars, conditions, allow_extrapolation=True)
    log_rho = model.log_marginal(stars, "position", conditions, allow_extrapolation=True)
    assert np.all(np.isfinite(log_f)) and np.all(np.isfinite(log_rho))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["train", str(suite_file), "-o", str(tmp_path / "bad.h5"), "--config", str(cfg),
              "--epochs", "1", "--no-progress", "--scale-with-mass", "age"])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()

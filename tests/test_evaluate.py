"""evaluate(): the tables, the figures and the errors on bad input, on a tiny suite and model."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.analysis.evaluate import evaluate, format_summary, pair_summary
from astroflow_gal.data.suite import Galaxy, GalaxySuite


@pytest.fixture(scope="module")
def tiny_suite(small_suite):
    """Four galaxies of at most 400 stars each, with the exact truth."""
    galaxies = [Galaxy(g.id, g.stars[:400], dict(g.conditions)) for g in small_suite][:4]
    return GalaxySuite(galaxies, meta={"source": "test"}, truth=small_suite.truth)


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_writes_its_tables_and_figures(small_model, tiny_suite, tmp_path):
    held = tiny_suite.ids[1]
    small_model.meta["holdout"] = [held]
    try:
        result = evaluate(small_model, tiny_suite, tmp_path, max_stars=300, n_kl_stars=200,
                          kernel_permutations=19, max_test_points=100, classifier_epochs=20,
                          corner_columns=["x", "vz", "Z"])
    finally:
        small_model.meta.pop("holdout")
    for stem in ("corner", "mmd_mass", "metrics_mass"):
        for fmt in ("png", "pdf"):
            assert (tmp_path / f"{stem}.{fmt}").stat().st_size > 1000
    table = QTable.read(tmp_path / "metrics.ecsv")
    assert list(table["galaxy_id"]) == tiny_suite.ids
    assert list(table["held_out"]) == [g == held for g in tiny_suite.ids]
    assert str(table["w1_x"].unit) == "kpc" and str(table["w1_vz"].unit) == "km / s"
    assert str(table["M_stars"].unit) == "solMass"
    assert np.all(table["n_model"] == np.minimum(300, table["n_data"]))
    assert np.all((table["auc"] >= 0) & (table["auc"] <= 1)) and np.all(table["auc_err"] > 0)
    assert np.all((table["kernel_mmd_p"] > 0) & (table["kernel_mmd_p"] <= 1))
    assert np.all(table["kl"] > 0)  # an untrained model is far from the truth
    assert np.all(np.isfinite(table["kl_position"]))  # small_model has a position marginal
    assert np.all((table["linear_mmd_rank"] >= 1) & (table["linear_mmd_rank"] <= 4))
    pairs = QTable.read(tmp_path / "mmd_model_data.ecsv")
    data = QTable.read(tmp_path / "mmd_data_data.ecsv")
    assert len(pairs) == 4 * 4 and len(data) == 4 * 3
    # The data-data MMD is symmetric, and a model pair's dlogm is the mass difference.
    by_pair = {(a, b): m for a, b, m in zip(data["galaxy_a"], data["galaxy_b"], data["mmd"],
                                              strict=True)}
    assert all(by_pair[a, b] == pytest.approx(by_pair[b, a]) for a, b in by_pair)
    assert np.all(pairs["dlogm"][pairs["model_galaxy"] == pairs["data_galaxy"]].value == 0)
    summary = result["metrics"].meta["summary"]
    assert summary["n_galaxies"] == 4 and summary["n_held_out"] == 1
    assert "Spearman" in format_summary(summary)


def test_pair_summary_measures_trend_and_coverage():
    rng = np.random.default_rng(0)
    d = rng.uniform(-2, 2, 4000)
    data = QTable({"dlogm": d, "mmd": d**2 * np.exp(rng.normal(0, 0.3, d.size))})
    m = rng.uniform(-2, 2, 300)
    good = QTable({"dlogm": m, "mmd": m**2 * np.exp(rng.normal(0, 0.3, m.size)),
                   "held_out": np.ones(300, bool)})
    s = pair_summary(good, data)
    assert s["spearman_model"] > 0.8 and s["spearman_data"] > 0.8
    assert 0.9 < s["inside_95_model"] <= 1.0
    bad = QTable({"dlogm": m, "mmd": 10 + m**2, "held_out": np.ones(300, bool)})
    assert pair_summary(bad, data)["inside_95_model"] < 0.2


def test_evaluate_refuses_bad_input_by_name(small_model, tiny_suite, tmp_path):
    bare = GalaxySuite(list(tiny_suite), meta={})
    with pytest.raises(ValueError, match="no exact truth"):
        evaluate(small_model, bare, tmp_path, kl=True)
    g = tiny_suite[0]
    with_empty = GalaxySuite([Galaxy("void", g.stars[:0], dict(g.conditions)), g], meta={})
    with pytest.raises(ValueError, match="'void' has no stars"):
        evaluate(small_model, with_empty, tmp_path, galaxy_ids=[g.id])
    fewer = GalaxySuite([Galaxy("a", g.stars, {"M_stars": g.conditions["M_stars"]})], meta={})
    with pytest.raises(ValueError, match="lacks the condition"):
        evaluate(small_model, fewer, tmp_path)
    with pytest.raises(ValueError, match="max_stars"):
        evaluate(small_model, tiny_suite, tmp_path, max_stars=0)
    with pytest.raises(ValueError, match="corner_galaxy"):
        evaluate(small_model, tiny_suite, tmp_path, galaxy_ids=[g.id], corner_galaxy="zz")
    assert not list(tmp_path.iterdir())  # nothing was written before the errors


def test_cli_evaluate(small_model, tiny_suite, tmp_path, capsys, one_torch_thread):
    from astroflow_gal.cli import main

    model_file, suite_file = tmp_path / "m.h5", tmp_path / "s.h5"
    small_model.save(model_file)
    tiny_suite.write(suite_file)
    out = tmp_path / "out"
    code = main(["evaluate", str(model_file), str(suite_file), "--out", str(out),
                 "--galaxies", tiny_suite.ids[0], "--max-stars", "200", "--permutations", "9",
                 "--test-points", "60", "--classifier-epochs", "10", "--kl-stars", "100",
                 "--corner-columns", "x", "age", "--formats", "png"])
    assert code == 0
    assert "Spearman" in capsys.readouterr().out
    assert len(QTable.read(out / "metrics.ecsv")) == 1
    assert (out / "corner.png").exists() and (out / "mmd_mass.png").exists()
    assert not (out / "mmd_mass.pdf").exists()
    bare = GalaxySuite(list(tiny_suite), meta={})
    bare.write(tmp_path / "bare.h5")
    code = main(["evaluate", str(model_file), str(tmp_path / "bare.h5"), "--out", str(out),
                 "--kl"])
    assert code == 2 and "no exact truth" in capsys.readouterr().err


def test_shipped_model_follows_the_mass_trend_as_in_the_paper(one_torch_thread):
    # Paper Figure 3 on the shipped model: MMD grows with |dlog10 M_stars| and the model's
    # points lie within the data-data distribution (docs/evaluation.md has the full run).
    from astroflow_gal import GalaxyModel

    model = GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    result = evaluate(model, suite, None, galaxy_ids=model.meta["holdout"], max_stars=3000,
                      kl=False, classifier=False, kernel_permutations=1, max_test_points=50)
    summary = result["metrics"].meta["summary"]
    assert summary["n_held_out_pairs"] == 5 * len(suite)
    assert summary["spearman_held_out"] > 0.5 and summary["spearman_data"] > 0.5
    assert summary["inside_95_held_out"] > 0.85
    assert np.median(result["metrics"]["linear_mmd_rank"]) <= 5

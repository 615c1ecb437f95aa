"""The shipped model: loads offline, samples, and is close to the exact eDF it was trained on."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import torch

from astroflow_gal import ConditionRangeError, GalaxyModel, GalaxySuite
from astroflow_gal.analysis.metrics import kl_to_truth
from astroflow_gal.data import schema


def test_pretrained_loads_and_records_its_suite():
    model = GalaxyModel.pretrained()
    assert model.meta["suite_seed"] == 0 and model.meta["n_galaxies"] == 400
    assert len(model.meta["holdout"]) == 5
    assert set(model.marginals) == {"position", "phase_space"}
    assert model.condition_names == schema.CONDITION_NAMES
    # bounded age, and the training galaxies' conditions for the joint extrapolation check
    assert model.support["age"] == (0.0, schema.T_UNIVERSE_GYR)
    tc = model.training_conditions
    assert len(tc.ids) == 395 and list(tc.ids) == list(model.meta["train_ids"])
    assert not set(tc.ids) & set(model.meta["holdout"])


def test_pretrained_is_a_mixture_of_eight_flows_in_a_small_file(shipped_model_file):
    model = GalaxyModel.pretrained()
    assert model.n_members == 8 and model.flow.weights == pytest.approx([1 / 8] * 8)
    assert {f"edf_member_{k}" for k in range(1, 8)} <= set(model.meta["stages"])
    # members 0-5: trained from scratch, then continued twice with galaxy-balanced weights;
    # members 6-7: trained from scratch with galaxy-balanced weights (p = 0.5) throughout
    for key in ["edf"] + [f"edf_member_{k}" for k in range(1, 8)]:
        stage, chain = model.meta["stages"][key], []
        while stage is not None:
            chain.append((stage["options"].get("balance_galaxies", 0.0),
                          stage["options"]["init"] is None))
            stage = stage.get("continued_from")
        if key in ("edf_member_6", "edf_member_7"):
            assert chain == [(0.5, True)]
        else:
            assert chain == [(1.0, False), (0.5, False), (0.0, True)]
    assert model.meta["ensemble"]["weights_dtype"] == "int6"
    assert shipped_model_file.stat().st_size < 20e6  # what the package may carry
    assert model.dtype == torch.float32  # weights stored as int6 and float16, computed in float32


def test_pretrained_samples_a_disc_galaxy():
    model = GalaxyModel.pretrained()
    stars = model.sample(20_000, M_stars=5e10, tau50=7, tau10=2, Z_av=0.015, seed=1)
    x, y = stars["x"].value, stars["y"].value
    vx, vy = stars["vx"].value, stars["vy"].value
    lz = x * vy - y * vx
    assert np.mean(lz > 0) > 0.8  # a disc rotating about +z
    assert np.all(stars["Z"].value > 0)
    # Age is mapped by a logit onto (0, 13.8) Gyr: no star leaves the support.
    age = stars["age"].to_value(u.Gyr)
    assert age.min() > 0 and age.max() < schema.T_UNIVERSE_GYR


def test_pretrained_refuses_a_dwarf_with_milky_way_metallicity():
    model = GalaxyModel.pretrained()
    model.sample(10, M_stars=5e10, tau50=7, tau10=2, Z_av=0.015, seed=1)  # a Milky Way is fine
    with pytest.raises(ConditionRangeError, match="nearest training galaxy syn"):
        model.sample(10, M_stars=1e8, tau50=7, tau10=2, Z_av=0.015, seed=1)
    with pytest.raises(ConditionRangeError, match="tau10 <= tau50"):
        model.sample(10, M_stars=5e10, tau50=2, tau10=7, Z_av=0.015, seed=1)


def test_pretrained_held_out_kl_is_small():
    model = GalaxyModel.pretrained()
    suite = GalaxySuite.synthetic_of(model.meta)
    table = kl_to_truth(model, suite, model.meta["holdout"], n_stars=2000, seed=2)
    # Measured 0.49 nats/star on 10,000 stars per galaxy (docs/model_card.md; the previous model
    # 0.77, an untrained flow > 5); 2,000 stars per galaxy give a standard error of about 0.01.
    assert np.all(table["kl"] > 0)
    assert 0 < np.mean(table["kl"]) < 0.60

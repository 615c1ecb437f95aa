"""Paths a user takes through GalaxyModel: fit called directly, marginals, argument checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import condition_tensor, perturbed_flow, values_of

from astroflow_gal import ConditionRangeError, ExtrapolationWarning, GalaxyModel
from astroflow_gal.data import schema

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(n_layers=2, bins=4, hidden=12, hidden_layers=1)


@pytest.fixture(scope="module")
def fitted(small_suite):
    """GalaxyModel.fit called directly, as in the README, with both marginals (a few steps)."""
    marked = small_suite.split(n_holdout=1, seed=0)
    train, validation = marked.train, marked.holdout
    model = GalaxyModel.fit(
        train, validation, epochs=1, batch_size=8192, seed=2, progress=False,
        marginals=("position", "phase_space"), flow_config=TINY, name="tiny",
    )
    return model, train, validation


def test_fit_directly_gives_a_usable_model(fitted, mid_conditions):
    model, train, validation = fitted
    assert isinstance(model, GalaxyModel)
    assert set(model.marginals) == {"position", "phase_space"}
    assert model.meta["name"] == "tiny"
    assert model.meta["train_ids"] == train.ids and model.meta["holdout"] == validation.ids
    for kind in ("edf", "position", "phase_space"):  # one epoch each, with a validation loss
        assert len(model.history[kind]["train_nll"]) == 1
        assert math.isfinite(model.history[kind]["train_nll"][0])
        assert math.isfinite(model.history[kind]["val_nll"][0])
    lo, hi = model.training_range["M_stars"]
    masses = [g.conditions["M_stars"].value for g in train]
    assert lo == min(masses) and hi == max(masses)
    stars = model.sample(500, mid_conditions, seed=1)
    assert np.all(np.isfinite(model.log_edf(stars, mid_conditions)))


def test_log_marginal_phase_space_and_position(fitted, mid_conditions):
    model, _, _ = fitted
    stars = model.sample(300, mid_conditions, seed=3)
    log_ps = model.log_marginal(stars, "phase_space", mid_conditions)
    log_pos = model.log_marginal(stars, "position", mid_conditions)
    assert log_ps.shape == log_pos.shape == (300,)
    assert np.all(np.isfinite(log_ps)) and np.all(np.isfinite(log_pos))
    # the phase-space marginal is the phase-space flow in physical units
    names = schema.PHASE_SPACE_NAMES
    sub = model.normalizer.subset(names)
    x = torch.from_numpy(values_of(stars, names))
    y, log_jac = sub.stars_to_flow(x)
    c = sub.conditions_to_flow(condition_tensor(mid_conditions))
    with torch.no_grad():
        expected = model.marginals["phase_space"].log_prob(y.float(), c.float()).double()
    np.testing.assert_allclose(log_ps, (expected + log_jac).numpy(), rtol=1e-5, atol=1e-4)


def test_fit_refuses_unknown_marginals(small_suite):
    with pytest.raises(ValueError, match="unknown marginals"):
        GalaxyModel.fit(small_suite, epochs=1, marginals=("velocity",))


def test_position_marginal_integrates_to_one(small_model, mid_conditions):
    """A product midpoint rule on a 56^3 grid over +-7 standard deviations of the normaliser
    in each coordinate: stated error of the integral 0.5 % (grid spacing 0.25 sigma, tails
    beyond 7 sigma negligible for the flow's Gaussian tails)."""
    sub = small_model.normalizer.subset(schema.POSITION_NAMES)
    mean = np.array([t.mean for t in sub.star_transforms])
    std = np.array([t.std for t in sub.star_transforms])
    k = 56
    t = -7 + 14 * (np.arange(k) + 0.5) / k
    grid = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3)
    points = mean + grid * std
    log_rho = small_model.log_marginal(points, "position", mid_conditions)
    cell = np.prod(14 * std / k)  # kpc^3
    integral = np.exp(log_rho).sum() * cell
    assert abs(integral - 1) < 5e-3, f"integral of rho over positions = {integral}"
    # and it is not trivially 1: the density is far from uniform over the box
    assert np.exp(log_rho).max() * cell * len(points) > 5


def test_phase_space_marginal_integrates_to_one(small_model, mid_conditions):
    """Importance sampling with a broad Gaussian proposal: stated error 4 standard errors."""
    model = GalaxyModel(
        small_model.flow, small_model.normalizer,
        marginals={"phase_space": perturbed_flow(6, 4, seed=7, scale=0.05)},
    )
    sub = model.normalizer.subset(schema.PHASE_SPACE_NAMES)
    mean = np.array([t.mean for t in sub.star_transforms])
    std = np.array([t.std for t in sub.star_transforms]) * 1.3
    rng = np.random.default_rng(4)
    n = 100_000
    draws = mean + std * rng.standard_normal((n, 6))
    log_q = (-0.5 * (((draws - mean) / std) ** 2).sum(1) - np.log(std).sum()
             - 3 * math.log(2 * math.pi))
    w = np.exp(model.log_marginal(draws, "phase_space", mid_conditions) - log_q)
    integral, se = w.mean(), w.std() / math.sqrt(n)
    assert se < 0.01, f"proposal too poor: standard error {se}"
    assert abs(integral - 1) < 4 * se, f"integral = {integral} +- {se}"


# -- batch sizes --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "64", None])
def test_every_batch_size_is_checked(small_model, mid_conditions, bad, tmp_path):
    stars = small_model.sample(50, mid_conditions, seed=1)
    calls = [
        lambda: small_model.log_edf(stars, mid_conditions, batch_size=bad),
        lambda: small_model.edf(stars, mid_conditions, batch_size=bad),
        lambda: small_model.log_marginal(stars, "position", mid_conditions, batch_size=bad),
        lambda: small_model.sample(10, mid_conditions, seed=1, batch_size=bad),
        lambda: small_model.sample_to_file(10, tmp_path / "s.h5", mid_conditions, seed=1,
                                           batch_size=bad),
    ]
    if bad is None:  # None means the default
        for call in calls:
            call()
        return
    for call in calls:
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            call()


def test_training_batch_sizes_are_checked(small_suite):
    from astroflow_gal.training import TrainingData, evaluate_nll

    flow = perturbed_flow(3, 2)
    data = TrainingData(torch.zeros(10, 3), torch.zeros(10, dtype=torch.long), torch.zeros(1, 2))
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            evaluate_nll(flow, data, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        GalaxyModel.fit(small_suite, epochs=1, batch_size=-5, flow_config=TINY, progress=False)


# -- log_edf_torch checks its conditions once per call -------------------------------------------
def test_log_edf_torch_checks_conditions(small_model, mid_conditions):
    stars = small_model.sample(20, mid_conditions, seed=2)
    x = torch.from_numpy(values_of(stars))
    c = condition_tensor(mid_conditions)
    assert torch.isfinite(small_model.log_edf_torch(x, c)).all()
    per_star = c.repeat(20, 1)
    np.testing.assert_allclose(small_model.log_edf_torch(x, per_star).detach().numpy(),
                               small_model.log_edf_torch(x, c).detach().numpy(), rtol=1e-6)
    for value, match in [(math.nan, "NaN"), (math.inf, "NaN or infinite"), (-1.0, "positive")]:
        bad = c.clone()
        bad[0] = value
        with pytest.raises(ValueError, match=match):
            small_model.log_edf_torch(x, bad)
        rows = per_star.clone()
        rows[7, 0] = value  # one bad star among many
        with pytest.raises(ValueError, match=match):
            small_model.log_edf_torch(x, rows)
    far = c.clone()
    far[0] = 1e14  # M_stars far above the training range
    with pytest.raises(ConditionRangeError):
        small_model.log_edf_torch(x, far)
    with pytest.warns(ExtrapolationWarning):
        small_model.log_edf_torch(x, far, allow_extrapolation=True)
    with pytest.raises(ValueError, match="shape"):
        small_model.log_edf_torch(x, c[:3])


def test_log_edf_torch_in_range_gives_no_warning(small_model, mid_conditions):
    stars = small_model.sample(5, mid_conditions, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_model.log_edf_torch(torch.from_numpy(values_of(stars)),
                                  condition_tensor(mid_conditions))


# -- sample(device=...) leaves the model where it was --------------------------------------------
def test_sample_on_another_device_moves_the_flow_back(small_model, mid_conditions, monkeypatch):
    moves = []
    flow = small_model.flow

    def spy_to(*args, **kwargs):  # records the move; the flow stays on the CPU in this test
        moves.append(torch.device(args[0] if args else kwargs["device"]))
        return flow

    monkeypatch.setattr(flow, "to", spy_to)
    small_model.sample(10, mid_conditions, seed=1, device="cuda:0")
    assert moves == [torch.device("cuda:0"), torch.device("cpu")]
    moves.clear()
    with pytest.raises(ValueError):  # an error inside the call moves it back too
        small_model.sample(10, mid_conditions, seed=1, device="cuda:0", M_stars=1.0)
    assert moves == [torch.device("cuda:0"), torch.device("cpu")]
    moves.clear()
    small_model.sample(10, mid_conditions, seed=1, device="cpu")
    assert moves == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sample_on_cuda_leaves_the_model_on_the_cpu(small_model, mid_conditions):
    a = small_model.sample(2000, mid_conditions, seed=9, device="cuda")
    assert small_model.device.type == "cpu"
    b = small_model.sample(2000, mid_conditions, seed=9)
    np.testing.assert_allclose(values_of(a), values_of(b), rtol=1e-4, atol=1e-4)

"""Mixtures of flows: FlowEnsemble's exact density and sampling, GalaxyModel.ensemble, and model
files with float16 weights."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import perturbed_flow, values_of

from astroflow_gal import GalaxyModel
from astroflow_gal.flow import ConditionalSplineFlow, FlowEnsemble, flow_from_config
from astroflow_gal.io import read_tree

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair(dim: int = 3, cond_dim: int = 2, dtype=torch.float64):
    return [perturbed_flow(dim, cond_dim, seed=s).to(dtype) for s in (1, 7)]


def _rows(n: int, dim: int, cond_dim: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, dim, generator=g, dtype=dtype),
            torch.randn(n, cond_dim, generator=g, dtype=dtype))


def test_log_prob_is_the_weighted_mean_density():
    a, b = _pair()
    mix = FlowEnsemble([a, b], weights=[1.0, 3.0])
    assert mix.weights == pytest.approx([0.25, 0.75])
    x, c = _rows(400, 3, 2)
    with torch.no_grad():
        expected = torch.log(0.25 * a.log_prob(x, c).exp() + 0.75 * b.log_prob(x, c).exp())
        got = mix.log_prob(x, c)
    assert got.shape == (400,)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)
    # far in the tails the direct sum underflows; the log-sum-exp must not
    far = 40.0 * torch.ones(2, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.isfinite(mix.log_prob(far, c[:2])).all()


def test_gradient_is_the_responsibility_weighted_member_gradient():
    a, b = _pair()
    mix = FlowEnsemble([a, b])
    x, c = _rows(50, 3, 2, seed=3)
    x.requires_grad_(True)
    (grad_mix,) = torch.autograd.grad(mix.log_prob(x, c).sum(), x)
    grads, logs = [], []
    for member in (a, b):
        xi = x.detach().clone().requires_grad_(True)
        log_p = member.log_prob(xi, c)
        (g,) = torch.autograd.grad(log_p.sum(), xi)
        grads.append(g)
        logs.append(log_p.detach())
    resp = torch.softmax(torch.stack(logs), dim=0)  # equal weights
    expected = resp[0][:, None] * grads[0] + resp[1][:, None] * grads[1]
    assert torch.allclose(grad_mix, expected, rtol=1e-8, atol=1e-10)


def test_member_choice_follows_the_weights():
    mix = FlowEnsemble(_pair(), weights=[0.2, 0.8])
    u = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    chosen = mix.member_of_latent(u)
    assert set(chosen.unique().tolist()) == {0, 1}
    frac = float((chosen == 0).double().mean())
    assert abs(frac - 0.2) < 5 * math.sqrt(0.2 * 0.8 / u.numel())


def test_from_latent_rows_are_the_chosen_members_inverse_maps():
    a, b = _pair()
    mix = FlowEnsemble([a, b])
    z = torch.randn(300, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, c = _rows(300, 3, 2, seed=4)
    with torch.no_grad():
        x = mix.from_latent(z, c)
        chosen = mix.member_of_latent(z[:, -1])
        for k, member in enumerate((a, b)):
            rows = chosen == k
            assert rows.sum() > 50
            xk, _ = member.inverse(z[rows, :3], c[rows])
            assert torch.allclose(x[rows], xk, atol=1e-10)
    with pytest.raises(ValueError, match="latent must have shape"):
        mix.from_latent(z[:, :3], c)


def test_sample_mean_is_the_weighted_mean_of_the_members():
    a, b = [perturbed_flow(2, 0, seed=s, scale=1.0) for s in (2, 9)]
    mix = FlowEnsemble([a, b], weights=[0.3, 0.7])
    n = 60_000
    with torch.no_grad():
        mean = mix.sample(n, generator=torch.Generator().manual_seed(5)).mean(0)
        ma = a.sample(n, generator=torch.Generator().manual_seed(6)).mean(0)
        mb = b.sample(n, generator=torch.Generator().manual_seed(7)).mean(0)
    assert (ma - mb).abs().max() > 0.2  # the members differ, so the weights matter
    assert torch.allclose(mean, 0.3 * ma + 0.7 * mb, atol=0.05)


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [1.0, float("nan")], [0.0, 1.0]])
def test_bad_weights_raise(weights):
    with pytest.raises(ValueError, match="weights"):
        FlowEnsemble(_pair(), weights=weights)


def test_members_of_other_dimensions_raise():
    with pytest.raises(ValueError, match="member 1"):
        FlowEnsemble([perturbed_flow(3, 2), perturbed_flow(4, 2)])
    with pytest.raises(ValueError, match="at least one"):
        FlowEnsemble([])


def test_config_rebuilds_the_architecture():
    mix = FlowEnsemble([ConditionalSplineFlow(3, 2, n_layers=2, hidden=8),
                        ConditionalSplineFlow(3, 2, n_layers=3, hidden=16)], weights=[2, 1])
    again = flow_from_config(mix.config)
    assert isinstance(again, FlowEnsemble)
    assert again.config == mix.config
    assert [m.config["n_layers"] for m in again.members] == [2, 3]


# -- GalaxyModel.ensemble --------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_models(small_model):
    other = GalaxyModel(perturbed_flow(10, 4, seed=3), small_model.normalizer,
                        training_range=small_model.training_range, meta={"name": "other"})
    return small_model, other


def test_model_log_edf_is_the_mean_of_the_members(two_models, mid_conditions):
    a, b = two_models
    mix = GalaxyModel.ensemble([a, b])
    assert mix.n_members == 2 and a.n_members == 1
    stars = a.sample(2000, mid_conditions, seed=1)
    got = mix.log_edf(stars, mid_conditions)
    expected = np.logaddexp(a.log_edf(stars, mid_conditions), b.log_edf(stars, mid_conditions))
    assert np.allclose(got, expected - math.log(2), atol=1e-5)
    assert "mixture of 2 flows" in repr(mix)
    assert mix.marginals.keys() == a.marginals.keys()
    assert [m["name"] for m in mix.meta["members"]] == ["test model", "other"]


def test_ensemble_of_one_flow_twice_samples_as_that_flow(small_model, mid_conditions):
    twice = GalaxyModel.ensemble([small_model, small_model])
    one = values_of(small_model.sample(3000, mid_conditions, seed=4))
    two = values_of(twice.sample(3000, mid_conditions, seed=4))
    # the members' latents are the single flow's; only float32 rounding of other batch shapes
    assert np.allclose(one, two, rtol=1e-4, atol=1e-4)


def test_ensemble_sample_is_reproducible_and_inside_the_support(two_models, mid_conditions):
    mix = GalaxyModel.ensemble(two_models, weights=[0.5, 0.5])
    first = values_of(mix.sample(5000, mid_conditions, seed=8, batch_size=1024))
    again = values_of(mix.sample(5000, mid_conditions, seed=8, batch_size=4096))
    assert np.allclose(first, again, rtol=1e-5, atol=1e-4)  # float32 rounding of other shapes
    same = values_of(mix.sample(5000, mid_conditions, seed=8, batch_size=1024))
    assert np.array_equal(first, same)
    other_seed = values_of(mix.sample(5000, mid_conditions, seed=9))
    assert not np.allclose(first, other_seed)
    for k, name in enumerate(mix.star_names):
        lo, hi = mix.support[name]
        assert np.all((first[:, k] > lo) & (first[:, k] < hi)), name
    # both members contribute: each member's density is the larger on a good share of stars
    log_a = two_models[0].log_edf(first, mid_conditions)
    log_b = two_models[1].log_edf(first, mid_conditions)
    assert 0.2 < np.mean(log_a > log_b) < 0.8


def test_log_edf_torch_gradient_through_the_mixture(two_models, mid_conditions):
    mix = GalaxyModel.ensemble(two_models)
    x = torch.from_numpy(values_of(mix.sample(20, mid_conditions, seed=2)))
    x.requires_grad_(True)
    from conftest import condition_tensor

    c = condition_tensor(mid_conditions).expand(20, -1)
    log_f = mix.log_edf_torch(x, c)
    (grad,) = torch.autograd.grad(log_f.sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # against central differences of the exact float64 mixture along vx
    # a copy: the session's models keep their float32 networks whatever happens here
    mix64 = GalaxyModel.ensemble(copy.deepcopy(two_models)).to(dtype=torch.float64)
    h = 1e-4
    step = torch.zeros_like(x)
    step[:, 3] = h
    with torch.no_grad():
        fd = (mix64.log_edf_torch(x + step, c) - mix64.log_edf_torch(x - step, c)) / (2 * h)
    assert torch.allclose(grad[:, 3].double(), fd, rtol=2e-3, atol=2e-3)
    assert all(model.dtype == torch.float32 for model in two_models)


def test_ensemble_refuses_mismatched_models(small_model):
    from astroflow_gal.normalizer import Normalizer

    rng = np.random.default_rng(0)
    stars = np.abs(rng.normal(1.0, 0.3, size=(500, 10))) + 0.01
    stars[:, 9] = rng.uniform(0.5, 10.0, 500)
    conds = np.abs(rng.normal(1.0, 0.1, size=(500, 4))) * [1e9, 5.0, 2.0, 0.01]
    foreign = GalaxyModel(perturbed_flow(10, 4), Normalizer.fit(stars, conds))
    with pytest.raises(ValueError, match="maps stars or conditions differently"):
        GalaxyModel.ensemble([small_model, foreign])
    with pytest.raises(ValueError, match="at least two"):
        GalaxyModel.ensemble([small_model])
    mix = GalaxyModel.ensemble([small_model, small_model])
    with pytest.raises(ValueError, match="already a mixture"):
        GalaxyModel.ensemble([mix, small_model])


def test_members_are_the_mixtures_flows_as_models(two_models, mid_conditions):
    a, b = two_models
    assert a.members() == [a]
    mix = GalaxyModel.ensemble([a, b], weights=[1.0, 3.0])
    members = mix.members()
    assert len(members) == 2 and all(m.n_members == 1 for m in members)
    assert [m.meta["member"] for m in members] == [0, 1]
    assert members[0].flow is mix.flow.members[0]  # shared, not copied
    assert members[1].marginals.keys() == mix.marginals.keys()
    stars = a.sample(1000, mid_conditions, seed=2)
    for member, original in zip(members, (a, b), strict=True):
        assert np.array_equal(member.log_edf(stars, mid_conditions),
                              original.log_edf(stars, mid_conditions))
    # a mixture grows by a member through its members; the first two keep their relative weight
    third = GalaxyModel(perturbed_flow(10, 4, seed=11), a.normalizer,
                        training_range=a.training_range)
    grown = GalaxyModel.ensemble([*members, third], weights=[0.25, 0.75, 1.0])
    expected = np.logaddexp(mix.log_edf(stars, mid_conditions),
                            third.log_edf(stars, mid_conditions)) - math.log(2)
    assert grown.n_members == 3
    assert np.allclose(grown.log_edf(stars, mid_conditions), expected, atol=1e-5)


# -- files -------------------------------------------------------------------------------------
def test_ensemble_file_round_trip(two_models, mid_conditions, tmp_path):
    mix = GalaxyModel.ensemble(two_models, weights=[1.0, 2.0])
    mix.save(tmp_path / "mix.h5")
    back = GalaxyModel.load(tmp_path / "mix.h5")
    assert isinstance(back.flow, FlowEnsemble)
    assert back.flow.weights == pytest.approx([1 / 3, 2 / 3])
    stars = mix.sample(1000, mid_conditions, seed=3)
    assert np.array_equal(values_of(back.sample(1000, mid_conditions, seed=3)), values_of(stars))
    assert np.array_equal(back.log_edf(stars, mid_conditions), mix.log_edf(stars, mid_conditions))


def test_float16_weights_halve_the_file_and_round_the_model(small_model, mid_conditions,
                                                           tmp_path):
    small_model.save(tmp_path / "f32.h5")
    small_model.save(tmp_path / "f16.h5", weights_dtype="float16")
    size32 = (tmp_path / "f32.h5").stat().st_size
    size16 = (tmp_path / "f16.h5").stat().st_size
    n_weights = sum(p.numel() for p in small_model.flow.parameters())
    assert size32 - size16 > 1.5 * n_weights  # two bytes saved per weight, less overheads
    tree, _ = read_tree(tmp_path / "f16.h5", format_name="astroflow_gal.GalaxyModel",
                        max_version=3)
    assert {name: v.dtype for name, v in tree["flow"]["weights"]["data"].items()} == {
        "float16": torch.float16
    }
    back = GalaxyModel.load(tmp_path / "f16.h5")
    assert back.dtype == torch.float32
    for (name, p), q in zip(small_model.flow.state_dict().items(),
                            back.flow.state_dict().values(), strict=True):
        if p.is_floating_point():
            assert torch.equal(q, p.half().float()), name
    stars = small_model.sample(2000, mid_conditions, seed=5)
    d = back.log_edf(stars, mid_conditions) - small_model.log_edf(stars, mid_conditions)
    assert 0 < np.abs(d).max() < 0.05  # rounded, but only just
    # saving the rounded model as float16 again changes nothing
    back.save(tmp_path / "again.h5", weights_dtype="float16")
    again = GalaxyModel.load(tmp_path / "again.h5")
    assert np.array_equal(again.log_edf(stars, mid_conditions), back.log_edf(stars, mid_conditions))


def test_bad_weights_dtype_and_overflow_raise(small_model, tmp_path):
    with pytest.raises(ValueError, match="weights_dtype"):
        small_model.save(tmp_path / "x.h5", weights_dtype="bfloat16")
    huge = GalaxyModel(perturbed_flow(10, 4), small_model.normalizer)
    with torch.no_grad():
        next(huge.flow.parameters()).fill_(1e6)
    for weights_dtype in ("float16", "int8", "int6"):  # int8/int6: narrow weights in float16
        with pytest.raises(ValueError, match="does not fit in float16"):
            huge.save(tmp_path / "huge.h5", weights_dtype=weights_dtype)
    assert not (tmp_path / "huge.h5").exists()


def test_ensemble_command_line(two_models, mid_conditions, tmp_path, capsys):
    from astroflow_gal.cli import main

    for k, model in enumerate(two_models):
        model.save(tmp_path / f"m{k}.h5")
    status = main(["ensemble", str(tmp_path / "m0.h5"), str(tmp_path / "m1.h5"),
                   "-o", str(tmp_path / "mix.h5"), "--weights", "1", "3",
                   "--weights-dtype", "float16"])
    assert status == 0 and "mixture of 2 flows" in capsys.readouterr().out
    mix = GalaxyModel.load(tmp_path / "mix.h5")
    assert mix.n_members == 2 and mix.flow.weights == pytest.approx([0.25, 0.75])
    stars = two_models[0].sample(500, mid_conditions, seed=1)
    expected = np.logaddexp(np.log(0.25) + two_models[0].log_edf(stars, mid_conditions),
                            np.log(0.75) + two_models[1].log_edf(stars, mid_conditions))
    assert np.allclose(mix.log_edf(stars, mid_conditions), expected, atol=0.05)  # float16
    status = main(["ensemble", str(tmp_path / "m0.h5"), str(tmp_path / "m1.h5"),
                   "-o", str(tmp_path / "mix6.h5"), "--weights-dtype", "int6"])
    assert status == 0
    mix6 = GalaxyModel.load(tmp_path / "mix6.h5")
    expected = np.logaddexp(np.log(0.5) + two_models[0].log_edf(stars, mid_conditions),
                            np.log(0.5) + two_models[1].log_edf(stars, mid_conditions))
    assert np.allclose(mix6.log_edf(stars, mid_conditions), expected, atol=0.5)  # 6-bit rows
    # a wrong number of weights is an error before anything is written
    status = main(["ensemble", str(tmp_path / "m0.h5"), str(tmp_path / "m1.h5"),
                   "-o", str(tmp_path / "bad.h5"), "--weights", "1"])
    assert status == 2 and "2 models" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()

"""Parity with the original GalacticFlow code, from its reference outputs (fixtures)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from astroflow_gal.flow import from_galacticflow, galacticflow_hyper
from astroflow_gal.flow.spline import spline_bins


@pytest.fixture(autouse=True)
def _need_fixtures(galacticflow_fixtures):
    """Skips without ../shared fixtures; fails when CI is set (see conftest.require_path)."""
CONFIGS = ["A", "B"]
OUT_TOL, LOGP_TOL = 5e-5, 5e-4  # float32 tolerances of the fixtures README


def _load(name: str):
    state = torch.load(FIXTURES / f"config_{name}_state.pt", weights_only=True)
    hyper = json.loads((FIXTURES / f"config_{name}_hparams.json").read_text())
    return from_galacticflow(state, hyper).eval(), hyper


def _maxdiff(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.detach().numpy().astype(np.float64) - b.astype(np.float64)).max())


@pytest.mark.parametrize("name", CONFIGS)
def test_forward_and_log_prob_parity(name):
    flow, _ = _load(name)
    ref = np.load(FIXTURES / f"config_{name}_forward.npz")
    x, c = torch.from_numpy(ref["x"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        z, logdet = flow(x, c)
        log_prob = flow.log_prob(x, c)
    assert _maxdiff(z, ref["z"]) < OUT_TOL
    assert _maxdiff(logdet, ref["logdet"]) < LOGP_TOL
    assert _maxdiff(log_prob, ref["log_prob"]) < LOGP_TOL
    assert _maxdiff(flow.base_log_prob(z), ref["prior_logprob"]) < LOGP_TOL


@pytest.mark.parametrize("name", CONFIGS)
def test_inverse_parity(name):
    flow, _ = _load(name)
    ref = np.load(FIXTURES / f"config_{name}_backward.npz")
    z, c = torch.from_numpy(ref["z_latent"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        x, logdet = flow.inverse(z, c)
    assert _maxdiff(x, ref["x"]) < OUT_TOL
    assert _maxdiff(logdet, ref["logdet"]) < LOGP_TOL


@pytest.mark.parametrize("name", CONFIGS)
def test_first_layer_pair_parity(name):
    """The 1x1 convolution matrix, its output, the first coupling output and the spline
    parameters of its first transformed half."""
    flow, hyper = _load(name)
    ref = np.load(FIXTURES / f"config_{name}_layer01.npz")
    x, c = torch.from_numpy(ref["x"]), torch.from_numpy(ref["c"])
    conv, coupling = flow.layers[0], flow.layers[1]
    k, bound = int(hyper["K"]), float(hyper["B"])
    with torch.no_grad():
        assert _maxdiff(conv.weight(), ref["W0"]) < 1e-6
        assert abs(float(conv.log_abs_det()) - float(ref["glow_logdet"])) < 1e-6
        h, _ = conv(x)
        assert _maxdiff(h, ref["glow_out"]) < 1e-5
        out, ld = coupling(h, coupling.condition_outputs(c))
        assert _maxdiff(out, ref["cl_out"]) < OUT_TOL
        assert _maxdiff(ld, ref["cl_logdet"]) < LOGP_TOL
        cond1, _ = coupling.condition_outputs(c)
        theta = (coupling.net1(h[:, : coupling.d1]) * cond1).view(x.shape[0], coupling.d2, -1)
        assert _maxdiff(theta, ref["thetas_first_spline"]) < 1e-5
        widths, heights, derivs = spline_bins(
            theta[..., :k], theta[..., k : 2 * k], theta[..., 2 * k :], bound
        )
    assert _maxdiff(widths, ref["widths_first_spline"]) < 1e-5
    assert _maxdiff(heights, ref["heights_first_spline"]) < 1e-5
    assert _maxdiff(derivs, ref["derivs_first_spline"]) < 1e-5


@pytest.mark.parametrize("name", CONFIGS)
def test_parity_through_condition_dedupe(name):
    """Reference stars evaluated as a few galaxies (repeated condition rows) give the same
    densities as row by row."""
    flow, _ = _load(name)
    ref = np.load(FIXTURES / f"config_{name}_forward.npz")
    x, c = torch.from_numpy(ref["x"][:90]), torch.from_numpy(ref["c"][:90])
    c_few = c[torch.arange(90) % 3]
    with torch.no_grad():
        lp_few = flow.log_prob(x, c_few)
        lp_rows = torch.cat([flow.log_prob(x[i : i + 1], c_few[i : i + 1]) for i in range(90)])
        lp_one = flow.log_prob(x[::3], c[0])
    # float32 sums in other batch shapes round differently: |log p| ~ 30, relative 1e-5
    torch.testing.assert_close(lp_few, lp_rows, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp_one, lp_few[::3], atol=1e-5, rtol=1e-5)


def test_hyper_translation_and_errors():
    _, hyper = _load("B")
    kw = galacticflow_hyper(hyper)
    assert kw == dict(dim=10, cond_dim=4, n_layers=3, bins=6, bound=3.0, hidden=32,
                      hidden_layers=2, negative_slope=0.2)
    as_tensor = galacticflow_hyper({**hyper, "network_args": torch.tensor([32, 3, 0.2])})
    assert as_tensor == {**kw, "negative_slope": pytest.approx(0.2, abs=1e-7)}
    state = torch.load(FIXTURES / "config_B_state.pt", weights_only=True)
    broken = dict(state)
    broken.pop("layers.0.S")
    with pytest.raises(ValueError, match="missing"):
        from_galacticflow(broken, hyper)
    bad_shape = dict(state)
    bad_shape["layers.0.S"] = torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        from_galacticflow(bad_shape, hyper)
    with pytest.raises(KeyError, match="K"):
        galacticflow_hyper({k: v for k, v in hyper.items() if k != "K"})

"""Bounded star columns: the normaliser's bijections, their Jacobians, and the eDF's support."""

from __future__ import annotations

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
import torch

from astroflow_gal.data import schema
from astroflow_gal.normalizer import ColumnTransform, Normalizer

AGE = ColumnTransform("age", False, -0.2, 1.5, 0.0, schema.T_UNIVERSE_GYR)
Z = ColumnTransform("Z", True, -2.2, 0.4)
VX = ColumnTransform("vx", False, 3.0, 80.0)


def test_schema_declares_supports():
    assert schema.column("age").support == (0.0, schema.T_UNIVERSE_GYR)
    assert schema.column("age").transform == "logit"
    assert schema.column("Z").support[0] == 0.0
    assert schema.column("x").support == (None, None)


@pytest.mark.parametrize("t", [AGE, Z, VX], ids=lambda t: t.name)
def test_transforms_invert(t):
    lo, hi = t.support
    lo = max(lo, -500.0)
    hi = min(hi, 0.5 if t.log10 else 500.0)
    v = torch.linspace(lo, hi, 2001, dtype=torch.float64)[1:-1]
    back = t.inverse(t.forward(v))
    assert torch.allclose(back, v, rtol=1e-12, atol=1e-12)
    y = torch.linspace(-6, 6, 101, dtype=torch.float64)
    assert torch.allclose(t.forward(t.inverse(y)), y, atol=1e-9)


@pytest.mark.parametrize("t", [AGE, Z, VX], ids=lambda t: t.name)
def test_log_jacobian_matches_autograd(t):
    y = torch.linspace(-4, 4, 57, dtype=torch.float64)
    v = t.inverse(y).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(t.forward(v).sum(), v)
    assert torch.allclose(t.log_jacobian(v.detach()), torch.log(grad.abs()), atol=1e-10)


def test_inverse_stays_strictly_inside_the_support():
    y = torch.tensor([-1e6, -800.0, -40.0, 0.0, 40.0, 800.0, 1e6], dtype=torch.float64)
    age = AGE.inverse(y)
    assert bool(((age > 0) & (age < schema.T_UNIVERSE_GYR)).all())
    assert age[-1] < schema.T_UNIVERSE_GYR and age[0] > 0
    assert bool((Z.inverse(y) > 0).all())


def test_values_outside_the_support_get_minus_infinity():
    norm = Normalizer([VX, Z, AGE], [ColumnTransform("M_stars", True, 9.0, 1.0)])
    x = torch.tensor(
        [[1.0, 0.01, 5.0], [1.0, 0.01, -0.1], [1.0, 0.01, 13.9], [1.0, 0.0, 5.0],
         [1.0, -0.01, 5.0], [1.0, 0.01, 13.8]],
        dtype=torch.float64, requires_grad=True,
    )
    y, logjac = norm.stars_to_flow(x)
    assert math.isfinite(float(logjac[0].detach()))
    assert bool(torch.isinf(logjac[1:]).all()) and bool((logjac[1:] < 0).all())
    assert bool(torch.isfinite(y).all())  # finite placeholders, so log_prob stays finite
    assert norm.inside_support(x.detach()).tolist() == [True] + [False] * 5
    # gradients stay finite (zero for the rows outside)
    (grad,) = torch.autograd.grad(logjac[:1].sum() + y.sum(), x)
    assert bool(torch.isfinite(grad).all())


def test_fit_refuses_training_values_outside_the_support(small_suite):
    stars, _, conds = small_suite.to_arrays()
    bad = stars.copy()
    bad[0, schema.STAR_NAMES.index("age")] = 14.5
    with pytest.raises(ValueError, match="age.*outside its support"):
        Normalizer.fit(bad, conds)
    wider = Normalizer.fit(bad, conds, bounds={"age": (0.0, 15.0)})
    assert wider.star_supports["age"] == (0.0, 15.0)


def test_old_normaliser_descriptions_still_load():
    old = {"stars": [{"name": "age", "log10": False, "mean": 6.9, "std": 3.3}],
           "conditions": [{"name": "M_stars", "log10": True, "mean": 9.0, "std": 1.0}]}
    norm = Normalizer.from_dict(old)
    assert norm.star_supports["age"] == (-math.inf, math.inf)
    new = Normalizer.from_dict(Normalizer([AGE], norm.condition_transforms).to_dict())
    assert new.star_transforms[0] == AGE


def test_model_samples_stay_inside_and_log_edf_is_minus_inf_outside(small_model, mid_conditions):
    stars = small_model.sample(20_000, mid_conditions, seed=3)
    age = stars["age"].to_value(u.Gyr)
    assert age.min() > 0 and age.max() < schema.T_UNIVERSE_GYR
    assert stars["Z"].value.min() > 0
    assert small_model.support["age"] == (0.0, schema.T_UNIVERSE_GYR)
    probe = stars[:4].copy()
    probe["age"][1] = -0.5 * u.Gyr
    probe["age"][2] = 14.0 * u.Gyr
    probe["Z"][3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_f = small_model.log_edf(probe, mid_conditions)
    assert np.isfinite(log_f[0])
    assert np.all(np.isneginf(log_f[1:]))
    # the differentiable path agrees
    x = torch.from_numpy(np.stack([probe[n].value for n in schema.STAR_NAMES], axis=1))
    c = torch.tensor([mid_conditions[n].to_value(schema.column(n).unit)
                      for n in schema.CONDITION_NAMES], dtype=torch.float64)
    lt = small_model.log_edf_torch(x, c).detach().numpy()
    assert np.all(np.isneginf(lt[1:]))
    assert lt[0] == pytest.approx(log_f[0], abs=1e-4)  # float32 flow, other batch shape


def test_density_through_the_logit_integrates_to_one_on_the_support():
    # A standard normal in flow space, carried to physical age by the normaliser's Jacobian,
    # must integrate to 1 over (0, T) Gyr: the log-Jacobian enters the density exactly.
    from scipy.integrate import quad

    norm = Normalizer([AGE, VX], [ColumnTransform("M_stars", True, 9.0, 1.0)])

    def density(age: float) -> float:
        x = torch.tensor([[age, 0.0]], dtype=torch.float64)
        y, logjac = norm.stars_to_flow(x)
        log_normal = -0.5 * float(y[0, 0]) ** 2 - 0.5 * math.log(2 * math.pi)
        return math.exp(log_normal + float(logjac[0]) - float(VX.log_jacobian(x[:, 1])[0]))

    total, err = quad(density, 0.0, schema.T_UNIVERSE_GYR, limit=200, epsabs=1e-12)
    assert total == pytest.approx(1.0, abs=1e-7)
    assert density(-0.1) == 0.0 and density(14.0) == 0.0

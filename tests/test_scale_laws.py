"""Mass scale laws of the normaliser: per-galaxy scales of positions and velocities, exact eDF."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import perturbed_flow

from astroflow_gal import GalaxyModel
from astroflow_gal.data import schema
from astroflow_gal.normalizer import Normalizer, ScaleLaw

M = schema.CONDITION_NAMES.index("M_stars")


@pytest.fixture(scope="module")
def arrays(small_suite):
    return small_suite.to_arrays()


@pytest.fixture(scope="module")
def scaled(arrays) -> Normalizer:
    stars, galaxy, conds = arrays
    return Normalizer.fit(stars, conds, scale_with_mass=("velocity", "position"),
                          galaxy_index=galaxy)


def test_law_recovers_a_known_power_law():
    rng = np.random.default_rng(0)
    mass = 10 ** rng.uniform(7, 11, 40)
    galaxy = np.repeat(np.arange(40), 500)
    scale = 60.0 * (mass / 1e10) ** 0.25  # km/s
    values = rng.normal(size=(galaxy.size, 3)) * scale[galaxy, None]
    law = ScaleLaw.fit(("vx", "vy", "vz"), values, galaxy, mass)
    assert law.slope == pytest.approx(0.25, abs=0.01)
    assert 10**law.log10_scale == pytest.approx(60.0, rel=0.03)
    assert float(law.log_scale(torch.tensor(1e10, dtype=torch.float64))) == pytest.approx(
        math.log(10**law.log10_scale))


def test_the_suite_velocity_scale_grows_with_mass(scaled):
    law = next(law for law in scaled.scale_laws if law.columns == ("vx", "vy", "vz"))
    # rotation and dispersion grow with the stellar mass (Tully-Fisher-like, slope ~ 0.25)
    assert 0.1 < law.slope < 0.4
    assert 20.0 < 10**law.log10_scale < 200.0  # km/s at 1e10 Msun


def test_round_trip_and_log_jacobian(scaled, arrays):
    stars, galaxy, conds = arrays
    x = torch.from_numpy(stars[::97].copy())
    c = torch.from_numpy(conds[galaxy[::97]])
    y, log_jac = scaled.stars_to_flow(x, c)
    assert torch.allclose(scaled.stars_from_flow(y, c), x, rtol=1e-11, atol=1e-9)
    for i in range(0, x.shape[0], max(1, x.shape[0] // 5)):
        jac = torch.autograd.functional.jacobian(
            lambda v, i=i: scaled.stars_to_flow(v[None], c[i])[0][0], x[i])
        assert float(torch.logdet(jac)) == pytest.approx(float(log_jac[i]), abs=1e-9)


def test_every_galaxy_fills_about_the_same_velocity_range(arrays, scaled):
    # without the law a dwarf's velocities occupy a small part of the standardised axis; with
    # it, the per-galaxy spread is about one in every galaxy
    stars, galaxy, conds = arrays
    plain = Normalizer.fit(stars, conds)
    c = torch.from_numpy(conds[galaxy])
    y_plain, _ = plain.stars_to_flow(torch.from_numpy(stars))
    y_scaled, _ = scaled.stars_to_flow(torch.from_numpy(stars), c)
    def ratio(y: torch.Tensor) -> float:
        spread = np.array([float(y[galaxy == g, 3:6].std()) for g in range(len(conds))])
        return spread.max() / spread.min()

    assert ratio(y_plain) > 3.0
    assert ratio(y_scaled) < ratio(y_plain) / 2


def test_density_stays_normalised_per_galaxy(scaled, arrays):
    # A standard normal in flow space carried back through the scaled map must integrate to 1
    # over vz for fixed conditions: the log-Jacobian carries the mass-dependent scale exactly.
    from scipy.integrate import quad

    _, galaxy, conds = arrays
    c = torch.from_numpy(conds[0])
    base = torch.zeros(1, 10, dtype=torch.float64)
    base[0, 9] = 5.0  # age inside the support
    base[0, 6] = 0.01
    k = schema.STAR_NAMES.index("vz")

    def density(vz: float) -> float:
        row = base.clone()
        row[0, k] = vz
        y, log_jac = scaled.stars_to_flow(row, c)
        return math.exp(-0.5 * float(y[0, k]) ** 2 - 0.5 * math.log(2 * math.pi)
                        + float(log_jac[0]) - _other_columns_log_jacobian(scaled, row, c, k))

    total, _ = quad(density, -2000, 2000, limit=400, points=[0.0])
    assert total == pytest.approx(1.0, abs=1e-6)


def _other_columns_log_jacobian(norm, row, c, k) -> float:
    """log-Jacobian of every column but ``k``: the total minus column k's own share."""
    _, total = norm.stars_to_flow(row, c)
    law = next(law for law in norm.scale_laws if "vz" in law.columns)
    mass = c[M].reshape(1)
    own = -math.log(norm.star_transforms[k].std) - float(law.log_scale(mass)[0])
    return float(total[0]) - own


def test_conditions_are_required_and_checked(scaled, arrays):
    stars = torch.from_numpy(arrays[0][:5])
    with pytest.raises(ValueError, match="give the conditions"):
        scaled.stars_to_flow(stars)
    with pytest.raises(ValueError, match="conditions must have shape"):
        scaled.stars_to_flow(stars, torch.ones(3, 4, dtype=torch.float64))


def test_description_round_trip_and_subsets(scaled, arrays):
    stars, galaxy, conds = arrays
    again = Normalizer.from_dict(scaled.to_dict())
    assert again.scale_laws == scaled.scale_laws
    x, c = torch.from_numpy(stars[:50]), torch.from_numpy(conds[galaxy[:50]])
    assert torch.equal(again.stars_to_flow(x, c)[0], scaled.stars_to_flow(x, c)[0])
    positions = scaled.subset(schema.POSITION_NAMES)
    assert [law.columns for law in positions.scale_laws] == [("x", "y", "z")]
    assert Normalizer.from_dict({k: v for k, v in Normalizer.fit(
        stars, conds).to_dict().items() if k != "scale_laws"}).scale_laws == ()


def test_bad_laws_and_requests_are_refused(arrays, scaled):
    stars, galaxy, conds = arrays
    with pytest.raises(ValueError, match="unknown scale groups"):
        Normalizer.fit(stars, conds, scale_with_mass=("age",), galaxy_index=galaxy)
    with pytest.raises(ValueError, match="needs the star columns"):
        Normalizer.fit(stars[:, 3:], conds, star_names=schema.STAR_NAMES[3:],
                       scale_with_mass=("position",), galaxy_index=galaxy)
    with pytest.raises(ValueError, match="needs galaxy_index"):
        Normalizer.fit(stars, conds, scale_with_mass=("velocity",))
    with pytest.raises(ValueError, match="a row of conditions for every star"):
        Normalizer.fit(stars, conds, scale_with_mass=("velocity",), galaxy_index=galaxy[:-1])
    with pytest.raises(ValueError, match="not an unbounded, untransformed"):
        Normalizer(scaled.star_transforms, scaled.condition_transforms,
                   scale_laws=[ScaleLaw(("age",), 0.0, 0.0)])
    with pytest.raises(ValueError, match="finite"):
        ScaleLaw(("vx",), math.nan, 0.2)


def test_model_with_scale_laws_samples_and_saves(scaled, arrays, mid_conditions, tmp_path):
    _, _, conds = arrays
    training_range = {n: [float(conds[:, i].min()), float(conds[:, i].max())]
                      for i, n in enumerate(schema.CONDITION_NAMES)}
    model = GalaxyModel(perturbed_flow(10, 4, seed=4, scale=0.1), scaled,
                        training_range=training_range)
    table = model.sample(4000, mid_conditions, seed=2)
    law = next(law for law in scaled.scale_laws if law.columns == ("vx", "vy", "vz"))
    mass = mid_conditions["M_stars"].to_value("Msun")
    s = math.exp(float(law.log_scale(torch.tensor(mass, dtype=torch.float64))))
    # a near-identity flow: the velocity spread is the scale law's at this mass times the
    # standardisation's std
    std_vz = scaled.star_transforms[schema.STAR_NAMES.index("vz")].std
    assert np.std(table["vz"].value) == pytest.approx(s * std_vz, rel=0.3)
    path = tmp_path / "scaled.h5"
    model.save(path)
    loaded = GalaxyModel.load(path)
    assert loaded.normalizer.scale_laws == scaled.scale_laws
    probe = table[:100]
    assert np.allclose(loaded.log_edf(probe, mid_conditions), model.log_edf(probe, mid_conditions))
    # the torch path (autograd) agrees with the numpy path
    x = torch.from_numpy(np.stack([probe[n].value for n in schema.STAR_NAMES], axis=1))
    c = torch.tensor([mid_conditions[n].to_value(schema.column(n).unit)
                      for n in schema.CONDITION_NAMES], dtype=torch.float64)
    assert np.allclose(model.log_edf_torch(x, c).detach().numpy(),
                       model.log_edf(probe, mid_conditions), atol=1e-4)

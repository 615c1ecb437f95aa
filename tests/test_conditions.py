"""The condition calculator: M_stars, tau50, tau10, Z_av from stars."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astroflow_gal.data import compute_conditions
from astroflow_gal.data.schema import CONDITION_NAMES, condition_column


def stars_with(age, metal) -> QTable:
    return QTable({"age": np.asarray(age, dtype=float) * u.Gyr,
                   "Z": np.asarray(metal, dtype=float) * u.dimensionless_unscaled})


def test_known_values():
    # ages 1..10 Gyr: median 5.5; 10th percentile (linear interpolation) at position 0.9 -> 1.9
    age = np.arange(1.0, 11.0)
    metal = np.array([0.01, 0.02] * 5)
    masses = np.full(10, 3e4) * u.Msun
    c = compute_conditions(stars_with(age[::-1], metal), masses=masses)
    assert list(c) == list(CONDITION_NAMES)
    for name, q in c.items():
        assert q.unit == condition_column(name).unit and q.isscalar
    assert c["M_stars"].to_value(u.Msun) == pytest.approx(3e5, rel=1e-14)
    assert c["tau50"].to_value(u.Gyr) == pytest.approx(5.5, rel=1e-14)
    assert c["tau10"].to_value(u.Gyr) == pytest.approx(1.9, rel=1e-14)
    assert c["Z_av"].value == pytest.approx(0.015, rel=1e-14)


def test_total_mass_overrides_and_units_convert():
    stars = QTable({"age": [500.0, 1500.0, 2500.0] * u.Myr, "Z": [0.1, 0.2, 0.3]})
    c = compute_conditions(stars, masses=[1, 1, 1] * u.Msun, total_mass=2e30 * u.kg)
    assert c["M_stars"].unit == u.Msun
    assert c["M_stars"].value == pytest.approx((2e30 * u.kg).to_value(u.Msun))
    assert c["tau50"] == 1.5 * u.Gyr
    # plain numbers are in schema units (Msun, Gyr)
    plain = compute_conditions({"age": np.array([2.0, 4.0]), "Z": np.array([0.0, 0.02])},
                               masses=np.array([1.0, 2.0]))
    assert plain["M_stars"] == 3.0 * u.Msun and plain["tau50"] == 3.0 * u.Gyr
    assert plain["Z_av"].value == pytest.approx(0.01)


@pytest.mark.parametrize(
    "stars, kwargs, error, match",
    [
        (stars_with([], []), {"total_mass": 1 * u.Msun}, ValueError, "without stars"),
        (stars_with([1, np.nan], [0.1, 0.1]), {"total_mass": 1 * u.Msun}, ValueError, "NaN"),
        (stars_with([1, 2], [0.1, np.inf]), {"total_mass": 1 * u.Msun}, ValueError, "'Z'"),
        (stars_with([1, 2], [0.1, 0.1]), {}, ValueError, "masses or the total"),
        (stars_with([1, 2], [0.1, 0.1]), {"masses": [1.0] * u.Msun}, ValueError, "1 masses"),
        (stars_with([1, 2], [0.1, 0.1]), {"masses": [1, -3] * u.Msun}, ValueError, "negative"),
        (stars_with([1, 2], [0.1, 0.1]), {"masses": [1, 2] * u.kpc}, u.UnitConversionError,
         "not a mass"),
        (stars_with([1, 2], [0.1, 0.1]), {"total_mass": 0 * u.Msun}, ValueError, "positive"),
        (QTable({"age": [1, 2] * u.km, "Z": [0.1, 0.1]}), {"total_mass": 1 * u.Msun},
         u.UnitConversionError, "'age'"),
        (QTable({"Z": [0.1, 0.1]}), {"total_mass": 1 * u.Msun}, KeyError, "'age'"),
    ],
)
def test_bad_input(stars, kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_conditions(stars, **kwargs)


# -- noise on the conditions during training (a regulariser of the condition dependence) ---------
def _noise_run(noise: float, tmp_path=None, steps: int = 4, resume: bool = False):
    import torch

    from astroflow_gal.flow import ConditionalSplineFlow
    from astroflow_gal.training import TrainingData, train_flow

    gen = torch.Generator().manual_seed(0)
    data = TrainingData(torch.randn(256, 3, generator=gen), torch.arange(256) % 4,
                        torch.randn(4, 2, generator=gen))
    flow = ConditionalSplineFlow(3, 2, n_layers=2, bins=4, hidden=8, hidden_layers=1, seed=1)
    train_flow(flow, data, epochs=1, batch_size=64, lr=1e-2, seed=3, progress=False,
               condition_noise=noise, max_steps=steps, resume=resume,
               checkpoint_dir=tmp_path, checkpoint_every=2 if tmp_path else None)
    return torch.cat([p.detach().flatten() for p in flow.parameters()])


def test_condition_noise_changes_training_and_is_reproducible():
    quiet, noisy, again = _noise_run(0.0), _noise_run(0.3), _noise_run(0.3)
    assert not np.allclose(quiet.numpy(), noisy.numpy())
    np.testing.assert_array_equal(noisy.numpy(), again.numpy())
    with pytest.raises(ValueError, match="condition_noise"):
        _noise_run(-0.1)


def test_resuming_continues_the_same_noise_and_refuses_another(tmp_path):
    from astroflow_gal.training import CheckpointError

    straight = _noise_run(0.3, steps=4)
    _noise_run(0.3, tmp_path / "a", steps=2)
    resumed = _noise_run(0.3, tmp_path / "a", steps=4, resume=True)
    np.testing.assert_array_equal(straight.numpy(), resumed.numpy())
    _noise_run(0.3, tmp_path / "b", steps=2)
    with pytest.raises(CheckpointError, match="condition_noise"):
        _noise_run(0.1, tmp_path / "b", steps=4, resume=True)

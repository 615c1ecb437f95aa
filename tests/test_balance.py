"""Galaxy-balanced training: small galaxies' stars visited several times per epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.training import CheckpointError, TrainingData, galaxy_balanced_rows, train_flow

# galaxy 0 has 20 stars, galaxy 1 five, galaxy 2 one; galaxy 3 none (an empty condition row)
GALAXY_INDEX = torch.tensor([0] * 12 + [1] * 5 + [0] * 8 + [2])


@pytest.mark.parametrize(
    "power, repeats",
    [(0.0, [1, 1, 1]), (0.5, [1, 2, 4]), (1.0, [1, 4, 20])],  # round(sqrt(20)) = 4
)
def test_every_star_is_repeated_by_its_galaxys_factor(power, repeats):
    rows = galaxy_balanced_rows(GALAXY_INDEX, power)
    assert torch.equal(rows, torch.sort(rows).values)  # stars stay in order
    times = torch.bincount(rows, minlength=GALAXY_INDEX.shape[0])
    expected = torch.tensor(repeats)[GALAXY_INDEX]
    assert torch.equal(times, expected)
    # a galaxy's total weight: n * repeats, about n ** (1 - power) * n_max ** power
    weight = torch.bincount(GALAXY_INDEX[rows])
    assert weight.tolist() == [20 * repeats[0], 5 * repeats[1], 1 * repeats[2]]


@pytest.mark.parametrize("power", [-0.1, 1.5, math.nan])
def test_a_power_outside_zero_to_one_is_refused(power):
    with pytest.raises(ValueError, match="balance_galaxies must lie in"):
        galaxy_balanced_rows(GALAXY_INDEX, power)
    with pytest.raises(ValueError, match="balance_galaxies must lie in"):
        _run(_data(), balance=power)


def _data() -> TrainingData:
    gen = torch.Generator().manual_seed(0)
    index = torch.cat([torch.zeros(160, dtype=torch.long), torch.full((40,), 1),
                       torch.full((10,), 2)])
    return TrainingData(torch.randn(210, 3, generator=gen), index,
                        torch.randn(4, 2, generator=gen))


def _run(data, *, balance=0.0, steps=None, epochs=1, tmp_path=None, resume=False):
    flow = ConditionalSplineFlow(3, 2, n_layers=2, bins=4, hidden=8, hidden_layers=1, seed=1)
    result = train_flow(
        flow, data, epochs=epochs, batch_size=32, lr=1e-2, seed=3, progress=False,
        condition_noise=0.3, balance_galaxies=balance, max_steps=steps, resume=resume,
        checkpoint_dir=tmp_path, checkpoint_every=2 if tmp_path else None,
    )
    return torch.cat([p.detach().flatten() for p in flow.parameters()]).numpy(), result


def test_balanced_training_is_training_on_the_repeated_stars():
    """Bit for bit the run on a copy of the data with the stars repeated, noise included, and
    an epoch is a pass over the repeated stars."""
    data = _data()
    rows = galaxy_balanced_rows(data.galaxy_index, 0.5)  # repeats 1, 2, 4: 160 + 80 + 40 rows
    assert rows.shape[0] == 280
    repeated = TrainingData(data.x[rows], data.galaxy_index[rows], data.conditions)
    balanced, result = _run(data, balance=0.5)
    copied, _ = _run(repeated)
    plain, plain_result = _run(data)
    np.testing.assert_array_equal(balanced, copied)
    assert not np.allclose(balanced, plain)
    assert result.steps == math.ceil(280 / 32) and plain_result.steps == math.ceil(210 / 32)


def test_resuming_a_balanced_run_is_exact_and_refuses_another_power(tmp_path):
    straight, _ = _run(_data(), balance=0.5, steps=6)
    _run(_data(), balance=0.5, steps=3, tmp_path=tmp_path / "a")
    resumed, result = _run(_data(), balance=0.5, steps=6, tmp_path=tmp_path / "a", resume=True)
    assert result.resumed_from is not None
    np.testing.assert_array_equal(straight, resumed)
    _run(_data(), balance=0.5, steps=3, tmp_path=tmp_path / "b")
    with pytest.raises(CheckpointError, match="balance_galaxies"):
        _run(_data(), balance=1.0, steps=6, tmp_path=tmp_path / "b", resume=True)

"""Shared fixtures: a small synthetic suite and a small untrained model over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from astroflow_gal.data import schema
from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.model import GalaxyModel
from astroflow_gal.normalizer import Normalizer

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "galacticflow"


@pytest.fixture(scope="session")
def small_suite():
    from astroflow_gal import GalaxySuite

    return GalaxySuite.synthetic(n_galaxies=6, seed=11, max_total_stars=30_000)


def perturbed_flow(dim: int, cond_dim: int, seed: int = 0, scale: float = 0.3):
    """A small flow whose splines are far from the identity (random output layers)."""
    flow = ConditionalSplineFlow(dim, cond_dim, n_layers=3, bins=6, hidden=24, hidden_layers=2,
                                 seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in flow.named_parameters():
            if "network.4" in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return flow


@pytest.fixture(scope="session")
def small_model(small_suite):
    stars, _, conds = small_suite.to_arrays()
    normalizer = Normalizer.fit(stars, conds)
    training_range = {
        n: [float(conds[:, i].min()), float(conds[:, i].max())]
        for i, n in enumerate(schema.CONDITION_NAMES)
    }
    return GalaxyModel(
        perturbed_flow(10, 4),
        normalizer,
        training_range=training_range,
        meta={"name": "test model"},
        marginals={"position": perturbed_flow(3, 4, seed=5)},
    )


@pytest.fixture(scope="session")
def mid_conditions(small_suite):
    """Conditions of a training galaxy (inside the training range)."""
    return dict(small_suite[small_suite.ids[len(small_suite) // 2]].conditions)


def values_of(table, names=schema.STAR_NAMES) -> np.ndarray:
    return np.stack([np.asarray(table[n].value) for n in names], axis=1)

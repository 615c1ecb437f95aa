"""Shared fixtures: a small synthetic suite and a small untrained model over it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from astroflow_gal.data import schema
from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.model import GalaxyModel
from astroflow_gal.normalizer import Normalizer

# The repository is checked out beside shared/ (…/main and …/shared).
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "galacticflow"
SHIPPED = Path(__file__).resolve().parents[1] / "astroflow_gal" / "pretrained" / "default.h5"


def under_ci() -> bool:
    """True when the ``CI`` environment variable is set (and not ``0``/``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_path(path: Path, what: str) -> Path:
    """``path`` if it exists; else skip the test, or fail it when ``CI`` is set.

    Use for fixtures that live outside the package (the GalacticFlow reference outputs in
    ../shared) or are built (the shipped model): a developer without them gets a skip, a CI run
    without them fails instead of going green on skipped tests.
    """
    if path.exists():
        return path
    message = f"{what} not found at {path}"
    if under_ci():
        pytest.fail(f"{message}; CI is set, so a missing fixture fails the run", pytrace=False)
    pytest.skip(message)


@pytest.fixture()
def galacticflow_fixtures() -> Path:
    """The folder of reference outputs of the original GalacticFlow code."""
    return require_path(FIXTURES, "GalacticFlow reference outputs (../shared/fixtures)")


@pytest.fixture()
def shipped_model_file() -> Path:
    """astroflow_gal/pretrained/default.h5, the shipped model."""
    return require_path(SHIPPED, "the shipped model")


@pytest.fixture()
def one_torch_thread():
    """One intra-op torch thread during the test (steadier on a busy shared machine); the
    caller's thread count is restored afterwards. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def condition_tensor(conditions) -> torch.Tensor:
    """A mapping of condition Quantities as a float64 tensor in schema units, schema order."""
    return torch.tensor(
        [conditions[n].to_value(schema.column(n).unit) for n in schema.CONDITION_NAMES],
        dtype=torch.float64,
    )


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
def phase_model(small_model):
    """``small_model`` with a phase-space marginal flow as well (for the Agama and CBE tests)."""
    return GalaxyModel(
        small_model.flow,
        small_model.normalizer,
        training_range=small_model.training_range,
        marginals={"position": small_model.marginals["position"],
                   "phase_space": perturbed_flow(6, 4, seed=9)},
    )


@pytest.fixture(scope="session")
def mid_conditions(small_suite):
    """Conditions of a training galaxy (inside the training range)."""
    return dict(small_suite[small_suite.ids[len(small_suite) // 2]].conditions)


def values_of(table, names=schema.STAR_NAMES) -> np.ndarray:
    return np.stack([np.asarray(table[n].value) for n in names], axis=1)

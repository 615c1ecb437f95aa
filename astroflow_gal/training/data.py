"""Flow-space training tensors and the seeded order in which training visits them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TrainingData", "epoch_permutation", "epoch_seed", "galaxy_balanced_rows"]


@dataclass
class TrainingData:
    """Stars of several galaxies in flow space, ready for maximum-likelihood training.

    Parameters
    ----------
    x : torch.Tensor
        Star features in flow space (dimensionless, already normalised), shape ``(N, dim)``,
        float32 or float64, on the CPU.
    galaxy_index : torch.Tensor
        For every star, the row of ``conditions`` of its galaxy; shape ``(N,)``, int64.
    conditions : torch.Tensor
        One row of flow-space conditions (dimensionless) per galaxy, shape ``(G, cond_dim)``;
        ``(G, 0)`` for an unconditional flow.
    """

    x: torch.Tensor
    galaxy_index: torch.Tensor
    conditions: torch.Tensor

    def __post_init__(self) -> None:
        x, idx, cond = self.x, self.galaxy_index, self.conditions
        for name, t in (("x", x), ("galaxy_index", idx), ("conditions", cond)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"TrainingData.{name} must be a torch.Tensor, got {type(t)}")
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"x must have shape (N, dim) with N >= 1, got {tuple(x.shape)}")
        if x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"x must be float32 or float64, got {x.dtype}")
        if idx.shape != (x.shape[0],) or idx.dtype != torch.int64:
            raise ValueError(
                f"galaxy_index must be int64 of shape ({x.shape[0]},), "
                f"got {idx.dtype} of shape {tuple(idx.shape)}"
            )
        if cond.dim() != 2 or cond.shape[0] == 0:
            raise ValueError(
                f"conditions must have shape (G, cond_dim) with G >= 1, got {tuple(cond.shape)}"
            )
        if cond.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"conditions must be float32 or float64, got {cond.dtype}")
        if int(idx.min()) < 0 or int(idx.max()) >= cond.shape[0]:
            raise ValueError(
                f"galaxy_index must lie in [0, {cond.shape[0] - 1}], "
                f"found [{int(idx.min())}, {int(idx.max())}]"
            )

    @property
    def n_stars(self) -> int:
        """Number of stars ``N``."""
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        """Number of star features."""
        return int(self.x.shape[1])

    @property
    def cond_dim(self) -> int:
        """Number of condition features (0: unconditional)."""
        return int(self.conditions.shape[1])

    def check_finite(self, name: str = "training data") -> None:
        """Raise ``ValueError`` if any star or condition value is NaN or infinite."""
        bad_rows = ~torch.isfinite(self.x).all(dim=1)
        if bool(bad_rows.any()):
            first = int(torch.nonzero(bad_rows)[0, 0])
            raise ValueError(
                f"{name}: {int(bad_rows.sum())} star rows contain NaN or inf "
                f"(first: row {first})"
            )
        bad_gal = ~torch.isfinite(self.conditions).all(dim=1)
        if bool(bad_gal.any()):
            first = int(torch.nonzero(bad_gal)[0, 0])
            raise ValueError(
                f"{name}: {int(bad_gal.sum())} condition rows contain NaN or inf "
                f"(first: galaxy {first})"
            )

    def fingerprint(self, max_rows: int = 65536) -> str:
        """A short hash of the shapes and of up to ``max_rows`` evenly spaced rows.

        Stored in checkpoints, so that resuming on other data is refused.
        """
        n = self.n_stars
        rows = torch.linspace(0, n - 1, min(n, max_rows)).round().long().unique()
        h = hashlib.sha256()
        h.update(repr((tuple(self.x.shape), tuple(self.conditions.shape))).encode())
        h.update(np.ascontiguousarray(self.x[rows].double().numpy()).tobytes())
        h.update(np.ascontiguousarray(self.galaxy_index[rows].numpy()).tobytes())
        h.update(np.ascontiguousarray(self.conditions.double().numpy()).tobytes())
        return h.hexdigest()[:32]


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for epoch ``epoch`` of a run with seed ``seed`` (numpy SeedSequence)."""
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch)]).generate_state(
        2, dtype=np.uint32
    )
    return (int(words[0]) << 31) ^ int(words[1])


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which epoch ``epoch`` visits ``n`` stars: a permutation seeded by
    ``(seed, epoch)`` only, so that any position in the epoch is reproducible from a step count.
    """
    gen = torch.Generator(device="cpu").manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=gen)


def galaxy_balanced_rows(galaxy_index: torch.Tensor, power: float) -> torch.Tensor:
    """Star rows in which every star of a galaxy of ``n`` stars appears
    ``max(1, round((n_max / n) ** power))`` times.

    Training on these rows instead of the stars weighs a galaxy in the loss as about
    ``n ** (1 - power)`` instead of ``n``: ``power = 0`` is every star alike (each row once),
    ``power = 1`` every galaxy about alike, whatever its star count.

    Parameters
    ----------
    galaxy_index : torch.Tensor
        For every star, its galaxy's row (int64, shape ``(N,)``).
    power : float
        Balancing exponent in [0, 1] (dimensionless).

    Returns
    -------
    torch.Tensor
        Star rows (int64, ascending), each repeated as above.
    """
    if not (0 <= power <= 1):
        raise ValueError(f"balance_galaxies must lie in [0, 1], got {power}")
    counts = torch.bincount(galaxy_index).double()
    # >= 1 for every galaxy with stars; a galaxy without stars is never indexed
    repeats = torch.round((counts.max() / counts.clamp(min=1)) ** power).long()
    return torch.repeat_interleave(torch.arange(galaxy_index.shape[0]), repeats[galaxy_index])

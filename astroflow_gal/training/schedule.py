"""Learning-rate schedules as closed-form functions of the optimisation step.

The schedule of GalacticFlow (Wolf & Buck 2023, section 3.2): the learning rate starts at
``lr0 = 9e-5`` and is multiplied by ``gamma = 0.998`` every 10 optimisation steps; once it has
fallen below ``3e-6`` it is multiplied by ``gamma`` only every 120 steps.

Because the rate is a pure function of the step count, the schedule's whole state is the step,
which makes checkpoints and resumption exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["paper_learning_rate", "paper_switch_step", "LearningRateSchedule", "make_schedule"]

SCHEDULES = ("paper", "constant")


def _fast_decays(lr0: float, gamma: float, threshold: float) -> int:
    """Number of fast decays until ``lr0 * gamma**k`` first falls below ``threshold``."""
    if lr0 < threshold:
        return 0
    k = max(0, math.ceil(math.log(threshold / lr0) / math.log(gamma)))
    # Guard against rounding in the logarithms: k is the smallest count giving lr < threshold.
    while lr0 * gamma**k >= threshold:
        k += 1
    while k > 0 and lr0 * gamma ** (k - 1) < threshold:
        k -= 1
    return k


def _check(lr0: float, gamma: float, every: int, slow_every: int, threshold: float) -> None:
    if not (lr0 > 0 and math.isfinite(lr0)):
        raise ValueError(f"initial learning rate must be positive and finite, got {lr0}")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    if every < 1 or slow_every < 1:
        raise ValueError(f"decay intervals must be >= 1 step, got {every} and {slow_every}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")


def paper_switch_step(
    lr0: float = 9e-5, gamma: float = 0.998, every: int = 10, threshold: float = 3e-6
) -> int:
    """The step from which the learning rate decays only every ``slow_every`` steps.

    Parameters
    ----------
    lr0 : float
        Initial learning rate (dimensionless, per optimiser step).
    gamma : float
        Decay factor per decay (dimensionless).
    every : int
        Steps between fast decays.
    threshold : float
        Learning rate below which the slow decay takes over.

    Returns
    -------
    int
        First step whose learning rate is below ``threshold`` (``0`` if ``lr0 < threshold``).
    """
    _check(lr0, gamma, every, 1, threshold)
    return _fast_decays(lr0, gamma, threshold) * every


def paper_learning_rate(
    step: int,
    lr0: float = 9e-5,
    gamma: float = 0.998,
    every: int = 10,
    slow_every: int = 120,
    threshold: float = 3e-6,
) -> float:
    """Learning rate of the paper's schedule at optimisation step ``step``.

    Parameters
    ----------
    step : int
        Number of optimisation steps already taken (0 for the first step).
    lr0 : float
        Initial learning rate (dimensionless).
    gamma : float
        Factor applied at each decay (dimensionless).
    every : int
        Steps between decays while the rate is at or above ``threshold``.
    slow_every : int
        Steps between decays once the rate is below ``threshold``.
    threshold : float
        Learning rate below which decays become ``slow_every`` steps apart.

    Returns
    -------
    float
        ``lr0 * gamma**k`` with ``k = step // every`` up to the switch step ``S`` (the first step
        whose rate is below ``threshold``) and ``k = S // every + (step - S) // slow_every``
        after it.

    Examples
    --------
    >>> paper_learning_rate(0), paper_learning_rate(9), paper_learning_rate(10)
    (9e-05, 9e-05, 8.982e-05)
    """
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    _check(lr0, gamma, every, slow_every, threshold)
    fast = _fast_decays(lr0, gamma, threshold)
    switch = fast * every
    if step < switch:
        k = step // every
    else:
        k = fast + (step - switch) // slow_every
    return lr0 * gamma**k


@dataclass(frozen=True)
class LearningRateSchedule:
    """A named schedule: ``"paper"`` (see :func:`paper_learning_rate`) or ``"constant"``.

    Parameters
    ----------
    name : str
        ``"paper"`` or ``"constant"``.
    lr : float
        Initial (or constant) learning rate (dimensionless).
    gamma, every, slow_every, threshold
        Parameters of the paper schedule (ignored by ``"constant"``).
    """

    name: str = "paper"
    lr: float = 9e-5
    gamma: float = 0.998
    every: int = 10
    slow_every: int = 120
    threshold: float = 3e-6

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; choose one of {SCHEDULES}")
        _check(self.lr, self.gamma, self.every, self.slow_every, self.threshold)

    def __call__(self, step: int) -> float:
        """Learning rate for optimisation step ``step`` (0-based)."""
        if self.name == "constant":
            if step < 0:
                raise ValueError(f"step must be >= 0, got {step}")
            return float(self.lr)
        return paper_learning_rate(
            step, self.lr, self.gamma, self.every, self.slow_every, self.threshold
        )

    def state(self) -> dict:
        """JSON-able description, stored in checkpoints."""
        return asdict(self)


def make_schedule(name: str, lr: float) -> LearningRateSchedule:
    """The schedule ``name`` (``"paper"`` or ``"constant"``) starting at learning rate ``lr``."""
    return LearningRateSchedule(name=name, lr=float(lr))

"""Training of flows on flow-space tensors: schedule, checkpoints, resume, data parallelism.

This layer knows nothing of units; :meth:`astroflow_gal.GalaxyModel.fit` converts stars to
:class:`TrainingData` and calls :func:`train_flow`.
"""

from .checkpoint import CheckpointError, CheckpointManager, CheckpointWarning
from .data import TrainingData, epoch_permutation, galaxy_balanced_rows
from .distributed import DistributedContext, distributed_context, is_main_process
from .schedule import LearningRateSchedule, make_schedule, paper_learning_rate, paper_switch_step
from .trainer import TrainingDivergedError, TrainingResult, evaluate_nll, train_flow

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "CheckpointWarning",
    "DistributedContext",
    "LearningRateSchedule",
    "TrainingData",
    "TrainingDivergedError",
    "TrainingResult",
    "distributed_context",
    "epoch_permutation",
    "evaluate_nll",
    "galaxy_balanced_rows",
    "is_main_process",
    "make_schedule",
    "paper_learning_rate",
    "paper_switch_step",
    "train_flow",
]

"""Training checkpoints: HDF5 files written atomically, the last two kept.

A checkpoint is one file ``checkpoint-<step>.h5`` in the checkpoint folder, written with
:func:`astroflow_gal.io.write_tree` (temporary file, fsync, rename). After a new checkpoint is in
place the older ones beyond ``keep`` are deleted, so a crash at any moment leaves at least one
complete checkpoint. Loading takes the newest file; a newest file that cannot be read falls back
to the previous one with a warning.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

from ..io import FileFormatError, read_tree, write_tree

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointManager",
    "CheckpointWarning",
]

CHECKPOINT_FORMAT = "astroflow_gal.training_checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d{10})\.h5$")

log = logging.getLogger("astroflow_gal.training")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, or made for another flow, data or settings."""


class CheckpointWarning(UserWarning):
    """The newest checkpoint could not be read and an older one was used."""


class CheckpointManager:
    """Write, list and load the checkpoints of one training run.

    Parameters
    ----------
    folder : str or path-like
        Folder of the checkpoint files (created if missing).
    keep : int
        Number of most recent checkpoints to keep (>= 2 keeps a fallback).
    """

    def __init__(self, folder: str | os.PathLike, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.folder = Path(folder)
        self.keep = int(keep)

    def path_for(self, step: int) -> Path:
        """File name of the checkpoint taken after optimisation step ``step``."""
        return self.folder / f"checkpoint-{int(step):010d}.h5"

    def list(self) -> list[Path]:
        """Checkpoint files, oldest first (temporary files of interrupted writes excluded)."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict[str, Any], step: int) -> Path:
        """Write ``state`` as the checkpoint of step ``step`` atomically, then prune old ones.

        Parameters
        ----------
        state : dict
            Nested dict of tensors, arrays and JSON values.
        step : int
            Global optimisation step (number of steps taken).

        Returns
        -------
        pathlib.Path
            The file written.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        write_tree(path, state, format_name=CHECKPOINT_FORMAT, format_version=CHECKPOINT_VERSION)
        for old in self.list()[: -self.keep]:
            try:
                old.unlink()
            except FileNotFoundError:  # pragma: no cover - removed concurrently
                pass
        return path

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files left by writes that were interrupted (crash, kill)."""
        if not self.folder.is_dir():
            return
        for p in self.folder.glob(".checkpoint-*.tmp"):
            try:
                p.unlink()
            except OSError:  # pragma: no cover
                pass

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """Read the newest readable checkpoint.

        Returns
        -------
        (state, path) or None
            ``None`` when the folder holds no checkpoint.

        Raises
        ------
        CheckpointError
            If checkpoints exist but none can be read.

        Warns
        -----
        CheckpointWarning
            For every newer checkpoint that could not be read and was skipped.
        """
        files = self.list()
        if not files:
            return None
        problems = []
        for path in reversed(files):
            try:
                state, _ = read_tree(
                    path, format_name=CHECKPOINT_FORMAT, max_version=CHECKPOINT_VERSION
                )
                _require_keys(state, path)
            except (FileFormatError, CheckpointError, OSError) as err:
                problems.append(f"{path.name}: {err}")
                msg = f"checkpoint {path} is unreadable ({err}); trying the previous one"
                warnings.warn(msg, CheckpointWarning, stacklevel=2)
                log.warning(msg)
                continue
            return state, path
        raise CheckpointError(
            f"no readable checkpoint in {self.folder}: " + "; ".join(problems)
        )


_REQUIRED = (
    "meta",
    "position",
    "flow_state",
    "optimizer_state",
    "schedule",
    "rng",
    "history",
    "best",
)


def _require_keys(state: Any, path: Path) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (top level is {type(state).__name__})")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")

"""Progress of long work: a tqdm bar on a terminal, plain log lines otherwise.

Long work (training, streaming a large sample to a file, cross-validation) reports itself wherever
it runs. On a terminal it shows a tqdm bar. Without one (a script whose output goes to a file, a
batch job, a notebook) it writes a line when it starts, saying how much work there is, and then a
line at least every :data:`LOG_INTERVAL_S` seconds with the work done, the rate and the estimated
time left.

Lines go to the ``logging`` logger of the work (``astroflow_gal.training``,
``astroflow_gal.progress``, ...) at level INFO when logging has been configured (any handler on
the logger or its parents, e.g. after ``logging.basicConfig()``), so that the application decides
where they go; otherwise they are printed to standard error, so that nothing runs silently.

:class:`ProgressLog` is the general helper (any loop with a known amount of work);
:func:`track` wraps an iterable with it; :class:`ProgressReporter` is the training loop's.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["LOG_INTERVAL_S", "ProgressLog", "ProgressReporter", "emit", "track"]

LOG_INTERVAL_S: float = 30.0
"""Longest time between two progress lines when there is no terminal [s]."""

log = logging.getLogger("astroflow_gal.training")

T = TypeVar("T")


def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def emit(logger: logging.Logger, text: str) -> None:
    """Write one progress line: to ``logger`` at INFO when logging is configured, else stderr.

    Parameters
    ----------
    logger : logging.Logger
        The work's logger.
    text : str
        The line (no trailing newline).
    """
    if logger.hasHandlers():
        logger.info(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class ProgressLog:
    """Progress of a loop with a known amount of work.

    A tqdm bar on a terminal; otherwise a line at the start (the amount of work) and a line at
    least every ``interval`` seconds (work done, rate, estimated time left), and one at the end.

    Parameters
    ----------
    total : int
        Amount of work, in ``unit`` (e.g. stars, steps, models); >= 0.
    desc : str
        What is being done (starts every line, e.g. ``"sampling"``).
    unit : str
        Name of one unit of work (singular, e.g. ``"star"``).
    bar : bool or None
        True: a tqdm bar on stderr; False: log lines; None: a bar when stderr is a terminal.
    enabled : bool
        False: report nothing (e.g. on all but one process of a distributed run).
    interval : float
        Longest time between two log lines [s] (default :data:`LOG_INTERVAL_S`).
    logger : logging.Logger, optional
        Where log lines go (default: the logger ``astroflow_gal.progress``); see :func:`emit`.
    initial : int
        Work already done before this run (e.g. a resumed training).
    start_note : str, optional
        Extra text for the start line (e.g. ``"5 epochs"``).

    Examples
    --------
    >>> with ProgressLog(20, desc="cross-validation", unit="model", bar=False) as progress:
    ...     for k in range(20):
    ...         progress.update(1)
    """

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        unit: str = "item",
        bar: bool | None = None,
        enabled: bool = True,
        interval: float = LOG_INTERVAL_S,
        logger: logging.Logger | None = None,
        initial: int = 0,
        start_note: str | None = None,
    ) -> None:
        if isinstance(total, bool) or int(total) != total or total < 0:
            raise ValueError(f"total must be a non-negative integer, got {total!r}")
        if not (isinstance(interval, (int, float)) and interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.total = int(total)
        self.initial = int(initial)
        self.done = self.initial
        self.desc = str(desc)
        self.unit = str(unit)
        self.enabled = bool(enabled)
        self.interval = float(interval)
        self.logger = logger if logger is not None else logging.getLogger("astroflow_gal.progress")
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._bar = None
        self._closed = False
        if not self.enabled:
            return
        if bar is None:
            bar = _stderr_is_terminal()
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.initial,
                unit=self.unit,
                desc=self.desc,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        else:
            todo = self.total - self.initial
            text = f"{self.desc}: {todo:,} {self._units(todo)} to do"
            if self.initial:
                text += f" (from {self.initial:,} of {self.total:,})"
            if start_note:
                text += f", {start_note}"
            emit(self.logger, text)

    def _units(self, n: int) -> str:
        return self.unit if n == 1 else self.unit + "s"

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self._t0

    def eta(self) -> float:
        """Estimated seconds left, from the mean rate so far (``inf`` before any work)."""
        done = self.done - self.initial
        took = self.elapsed
        if done <= 0 or took <= 0:
            return math.inf
        return (self.total - self.done) * took / done

    def status(self) -> str:
        """One line: work done, rate and estimated time left."""
        done = self.done - self.initial
        took = self.elapsed
        rate = done / took if took > 0 else math.nan
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.desc}: {self.done:,}/{self.total:,} {self._units(self.total)} ({pct:.0f} %), "
            f"{rate:,.3g} {self.unit}/s, elapsed {_format_seconds(took)}, "
            f"ETA {_format_seconds(self.eta())}"
        )

    def update(self, n: int = 1, *, force: bool = False, **postfix: Any) -> None:
        """Record ``n`` more units of work done.

        Parameters
        ----------
        n : int
            Units just done.
        force : bool
            Write a log line now even if ``interval`` has not passed.
        **postfix
            Values shown after the bar or at the end of the log line (e.g. ``loss=1.23``).
        """
        self.done += int(n)
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(int(n))
            return
        now = time.perf_counter()
        if force or now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            text = self.status()
            if postfix:
                text += "  " + "  ".join(f"{k} {v}" for k, v in postfix.items())
            emit(self.logger, text)

    def write(self, text: str) -> None:
        """A free-form line (above the bar on a terminal, a log line otherwise)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            emit(self.logger, text)

    def close(self) -> None:
        """Close the bar (if any); a log run that did not reach ``total`` writes its last line."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.done < self.total:
            emit(self.logger, self.status() + " (stopped)")

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str,
    unit: str = "item",
    bar: bool | None = None,
    interval: float = LOG_INTERVAL_S,
    logger: logging.Logger | None = None,
) -> Iterator[T]:
    """Iterate over ``items`` reporting progress with :class:`ProgressLog` (one unit per item).

    Parameters
    ----------
    items : iterable
        The work, e.g. the splits of :meth:`astroflow_gal.GalaxySuite.cross_validation`.
    total : int, optional
        Number of items (default: ``len(items)``).
    desc, unit, bar, interval, logger
        As for :class:`ProgressLog`.

    Yields
    ------
    object
        The items, in order; an item counts as done when the next one is asked for.
    """
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("items has no length: pass total=") from None
    with ProgressLog(
        total, desc=desc, unit=unit, bar=bar, interval=interval, logger=logger
    ) as progress:
        for item in items:
            yield item
            progress.update(1)


class ProgressReporter:
    """Report training steps and epochs.

    On a terminal a tqdm bar; otherwise log lines (logger ``astroflow_gal.training``, level INFO,
    or stderr when logging is not configured, see :func:`emit`): one at the start with the number
    of steps and epochs, one with the estimated time once the first steps are timed, then one
    every ``log_every`` steps and at least every ``interval`` seconds, and one per epoch.

    Parameters
    ----------
    total_steps : int
        Number of optimisation steps of the whole run.
    initial_step : int
        Steps already done (resumed run).
    enabled : bool
        False on every rank but 0 of a distributed run: report nothing.
    bar : bool or None
        True: a tqdm bar on stderr; False: log lines; None: a bar when stderr is a terminal.
    log_every : int, optional
        Steps between log lines (default: about 20 lines per run, at most every 1000 steps).
    epochs : int, optional
        Number of epochs of the run, for the start line.
    interval : float
        Longest time between two log lines [s].
    """

    #: seconds of training after which the start-up estimate of the total time is written
    ESTIMATE_AFTER_S = 5.0

    def __init__(
        self,
        total_steps: int,
        initial_step: int = 0,
        *,
        enabled: bool = True,
        bar: bool | None = None,
        log_every: int | None = None,
        epochs: int | None = None,
        interval: float = LOG_INTERVAL_S,
    ) -> None:
        self.total = int(total_steps)
        self.initial = int(initial_step)
        self.enabled = enabled
        if bar is None:
            bar = _stderr_is_terminal()
        self.log_every = log_every or max(1, min(1000, self.total // 20))
        self.interval = float(interval)
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._estimated = False
        self._bar = None
        todo = self.total - self.initial
        note = f" over {epochs} epochs" if epochs is not None else ""
        start = f"training: {todo} steps to do{note}"
        if self.initial:
            start += f" (steps {self.initial + 1} to {self.total})"
        if not enabled:
            return
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.initial,
                unit="step",
                desc="training",
                file=sys.stderr,
                dynamic_ncols=True,
            )
            self._bar.write(start, file=sys.stderr)
        else:
            emit(log, start + "; estimated time follows after the first steps")

    def step(self, step: int, loss: float, lr: float) -> None:
        """One optimisation step done.

        Parameters
        ----------
        step : int
            All steps done so far.
        loss : float
            Mean negative log-likelihood per star of the batch [nats].
        lr : float
            Learning rate of the step.
        """
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            self._bar.update(1)
            return
        now = time.perf_counter()
        done = step - self.initial
        took = now - self._t0
        rate = done / took if took > 0 else float("nan")
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        if not self._estimated and (took >= self.ESTIMATE_AFTER_S or step == self.total):
            self._estimated = True
            emit(
                log,
                f"training: {rate:.3g} steps/s, estimated time {_format_seconds(took + eta)} "
                f"(ETA {_format_seconds(eta)})",
            )
        if step % self.log_every == 0 or step == self.total or now - self._last >= self.interval:
            self._last = now
            emit(
                log,
                f"step {step}/{self.total}  loss {loss:.4f}  lr {lr:.3e}  {rate:.2f} steps/s  "
                f"ETA {_format_seconds(eta)}",
            )

    def epoch(self, entry: dict) -> None:
        """An epoch done; ``entry`` is its history row."""
        if not self.enabled:
            return
        text = (
            f"epoch {entry['epoch'] + 1}: train NLL {entry['train_nll']:.4f}, "
            f"validation NLL {entry['val_nll']:.4f}, lr {entry['lr']:.3e}, "
            f"{entry['wall_time_s']:.1f} s"
        )
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            emit(log, text)

    def message(self, text: str) -> None:
        """A free-form note (e.g. where training resumed)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            emit(log, text)

    def close(self) -> None:
        """Close the bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["ProgressReporter"]

log = logging.getLogger("astroflow_gal.training")


class ProgressReporter:
    """Report training steps and epochs.

    Parameters
    ----------
    total_steps : int
        Number of optimisation steps of the whole run.
    initial_step : int
        Steps already done (resumed run).
    enabled : bool
        False on every rank but 0 of a distributed run: report nothing.
    bar : bool or None
        True: a tqdm bar on stderr; False: log lines (``logging``, logger
        ``astroflow_gal.training``, level INFO); None: a bar when stderr is a terminal.
    log_every : int, optional
        Steps between log lines (default: about 20 lines per run, at most every 1000 steps).
    """

    def __init__(
        self,
        total_steps: int,
        initial_step: int = 0,
        *,
        enabled: bool = True,
        bar: bool | None = None,
        log_every: int | None = None,
    ) -> None:
        self.total = int(total_steps)
        self.initial = int(initial_step)
        self.enabled = enabled
        if bar is None:
            bar = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.log_every = log_every or max(1, min(1000, self.total // 20))
        self._t0 = time.perf_counter()
        self._bar = None
        if enabled and bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.initial,
                unit="step",
                desc="training",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def step(self, step: int, loss: float, lr: float) -> None:
        """One optimisation step done; ``step`` counts all steps so far, ``loss`` is the mean
        negative log-likelihood per star of the batch."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            self._bar.update(1)
            return
        if step % self.log_every == 0 or step == self.total:
            done = step - self.initial
            took = time.perf_counter() - self._t0
            rate = done / took if took > 0 else float("nan")
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            log.info(
                "step %d/%d  loss %.4f  lr %.3e  %.2f steps/s  ETA %s",
                step,
                self.total,
                loss,
                lr,
                rate,
                _format_seconds(eta),
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
            log.info(text)

    def message(self, text: str) -> None:
        """A free-form note (e.g. where training resumed)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            log.info(text)

    def close(self) -> None:
        """Close the bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _format_seconds(seconds: float) -> str:
    if not seconds == seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"

"""Pieces shared by the sub-commands that draw a galaxy from a model (demo, observe, profiles).

The galaxy-condition options (``--M-stars``, ``--tau50``, ``--tau10``, ``--Z-av``), their
Milky-Way-like defaults, the choice of the conditions, loading a model from a file or the shipped
one, and the progress printing of the commands that evaluate a suite.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..data import schema

#: Milky-Way-like defaults (schema units): stellar mass [Msun], median and 10th-percentile
#: stellar age [Gyr], mean metal mass fraction. ``tau10`` (young end) is below ``tau50``.
DEFAULT_CONDITIONS: dict[str, float] = {
    "M_stars": 5e10,
    "tau50": 7.0,
    "tau10": 2.0,
    "Z_av": 0.015,
}
#: The command-line option of each condition.
OPTIONS = {"M_stars": "--M-stars", "tau50": "--tau50", "tau10": "--tau10", "Z_av": "--Z-av"}
#: The unit of each condition as the help text and the progress lines write it.
HELP_UNITS = {"M_stars": "Msun", "tau50": "Gyr", "tau10": "Gyr", "Z_av": "dimensionless"}


def say(message: str) -> None:
    """Print one progress line at once (standard output, flushed)."""
    print(message, flush=True)


def add_condition_arguments(p: argparse.ArgumentParser, required: bool = False) -> None:
    """Add ``--M-stars``, ``--tau50``, ``--tau10`` and ``--Z-av`` to a parser.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The sub-command's parser; the values land in ``args.M_stars`` etc. (schema units: Msun,
        Gyr, Gyr, dimensionless).
    required : bool
        True: every condition must be given. False: each defaults to None, which
        :func:`choose_conditions` replaces by :data:`DEFAULT_CONDITIONS` clipped to the model's
        training range.
    """
    for name, option in OPTIONS.items():
        described = f"{schema.column(name).description} [{HELP_UNITS[name]}]"
        if required:
            p.add_argument(option, dest=name, type=float, required=True, help=described)
        else:
            p.add_argument(option, dest=name, type=float, default=None,
                           help=f"{described} (default {DEFAULT_CONDITIONS[name]:g}, clipped to "
                           "the training range)")


def given_conditions(args: argparse.Namespace) -> dict[str, float | None]:
    """The condition values of the command line (schema units; None where not given).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of a parser with :func:`add_condition_arguments`.

    Returns
    -------
    dict of str to float or None
        One entry per condition in :data:`OPTIONS` order.

    Raises
    ------
    ValueError
        A given value is NaN or infinite (the message names the option).
    """
    given = {name: getattr(args, name) for name in OPTIONS}
    for name, value in given.items():
        if value is not None and not np.isfinite(value):
            raise ValueError(f"{OPTIONS[name]} must be finite, got {value}")
    return given


def choose_conditions(
    given: dict[str, float | None], training_range: dict[str, Any] | None
) -> tuple[dict[str, float], list[str]]:
    """Conditions of a drawn galaxy: the given ones, or the defaults clipped to the training range.

    Parameters
    ----------
    given : dict of str to float or None
        Values from the command line in schema units (Msun, Gyr, Gyr, dimensionless); None takes
        the default from :data:`DEFAULT_CONDITIONS`.
    training_range : dict, optional
        The model's ``training_range`` (name to (min, max), schema units).

    Returns
    -------
    conditions : dict of str to float
        One value per condition, schema units.
    notes : list of str
        One sentence per default that was moved into the training range.
    """
    conditions: dict[str, float] = {}
    notes: list[str] = []
    for name, default in DEFAULT_CONDITIONS.items():
        value = given.get(name)
        if value is not None:
            if not np.isfinite(value):
                raise ValueError(f"{OPTIONS[name]} must be finite, got {value}")
            conditions[name] = float(value)
            continue
        value = default
        if training_range and name in training_range:
            lo, hi = (float(v) for v in training_range[name])
            clipped = min(max(value, lo), hi)
            if clipped != value:
                unit = HELP_UNITS[name]
                notes.append(
                    f"default {name} = {value:g} {unit} lies outside the model's training range "
                    f"[{lo:.4g}, {hi:.4g}]; using {clipped:.4g}"
                )
                value = clipped
        conditions[name] = float(value)
    if conditions["tau10"] > conditions["tau50"]:
        raise ValueError(
            f"tau10 = {conditions['tau10']:g} Gyr exceeds tau50 = {conditions['tau50']:g} Gyr; "
            "tau10 is the 10th percentile of the stellar ages (the young end), so tau10 <= tau50"
        )
    return conditions, notes


def model_conditions(args: argparse.Namespace, model: Any) -> tuple[dict[str, float], str]:
    """The conditions to draw ``model`` at, from the command line; prints the clipping notes.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of a parser with :func:`add_condition_arguments` (not required).
    model : GalaxyModel
        The model; its ``training_range`` clips the defaults, its ``condition_names`` order the
        result.

    Returns
    -------
    conditions : dict of str to float
        The model's conditions in its order, schema units.
    described : str
        ``"M_stars=5e+10 Msun, ..."`` for the progress lines.

    Raises
    ------
    ValueError
        A value is not finite, tau10 > tau50, or the model needs a condition these options do
        not set.
    """
    conditions, notes = choose_conditions(given_conditions(args), model.training_range)
    for note in notes:
        say(f"note: {note}")
    missing = set(model.condition_names) - set(conditions)
    if missing:
        raise ValueError(f"the model needs conditions the command does not set: {sorted(missing)}")
    conditions = {k: conditions[k] for k in model.condition_names}
    described = ", ".join(f"{k}={v:.4g} {HELP_UNITS[k]}" for k, v in conditions.items())
    return conditions, described


def load_model(name: str | Path | None, hint: str = "give a model file") -> Any:
    """A model from a file, or the shipped one.

    Parameters
    ----------
    name : str, path-like or None
        Path of a model file (HDF5), or None or ``"default"`` for the model shipped with the
        package.
    hint : str
        How the user names a model file on this command line (ends the error when the shipped
        model is missing).

    Returns
    -------
    GalaxyModel

    Raises
    ------
    FileNotFoundError
        The file, or the shipped model, does not exist.
    """
    from ..model import GalaxyModel

    if name is None or (isinstance(name, str) and name == "default"):
        try:
            return GalaxyModel.pretrained()
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}; the package ships astroflow_gal/pretrained/default.h5 — reinstall it, "
                f"or {hint}"
            ) from None
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    return GalaxyModel.load(path)


def log_progress() -> None:
    """Send the library's INFO log lines (with the time) to standard error."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)


def print_summary(result: dict[str, Any]) -> None:
    """Print the summary of an evaluation or cross-validation result (its metrics table)."""
    from ..analysis.evaluate import format_summary

    print(format_summary(result["metrics"].meta["summary"]))

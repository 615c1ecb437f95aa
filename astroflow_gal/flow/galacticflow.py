"""Read flows saved by the original GalacticFlow code (``NSFlow`` with ``NSF_CL2`` layers).

:func:`read_galacticflow_file` reads a whole ``.pth`` model file of the original API (with
``torch.load(weights_only=True)``: nothing in it is executed) into a flow and the plain numbers of
its normalisation; :meth:`astroflow_gal.GalaxyModel.from_galacticflow` wraps them into a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..io import FileFormatError
from .model import ConditionalSplineFlow

__all__ = ["GalacticFlowFile", "from_galacticflow", "galacticflow_hyper", "read_galacticflow_file"]


def _network_args(value: Any) -> tuple[int, int, float]:
    """(hidden width, number of Linear layers, negative slope) from any stored form."""
    if isinstance(value, Mapping):
        return int(value["n_hidden"]), int(value["n_layers"]), float(value["neg_slope"])
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    width, n_linear, slope = value
    return int(width), int(n_linear), float(slope)


def galacticflow_hyper(hyper: Mapping[str, Any]) -> dict[str, Any]:
    """Translate the original constructor arguments into :class:`ConditionalSplineFlow` ones.

    Parameters
    ----------
    hyper : mapping
        The original keys ``n_layers``, ``dim_notcond``, ``dim_cond``, ``K``, ``B`` and
        ``network_args`` (hidden width, number of Linear layers, LeakyReLU slope).

    Returns
    -------
    dict
        Keyword arguments of :class:`ConditionalSplineFlow`.
    """
    missing = {"n_layers", "dim_notcond", "dim_cond", "K", "B", "network_args"} - set(hyper)
    if missing:
        raise KeyError(f"GalacticFlow hyper-parameters lack {sorted(missing)}")
    width, n_linear, slope = _network_args(hyper["network_args"])
    if n_linear < 1:
        raise ValueError(f"network_args gives {n_linear} Linear layers; at least 1 is needed")
    return dict(
        dim=int(hyper["dim_notcond"]),
        cond_dim=int(hyper["dim_cond"]),
        n_layers=int(hyper["n_layers"]),
        bins=int(hyper["K"]),
        bound=float(hyper["B"]),
        hidden=width,
        hidden_layers=n_linear - 1,
        negative_slope=slope,
    )


def from_galacticflow(
    state_dict: Mapping[str, torch.Tensor], hyper: Mapping[str, Any]
) -> ConditionalSplineFlow:
    """Build a :class:`ConditionalSplineFlow` from a state_dict of the original code.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        The original flow's ``state_dict`` (keys ``layers.{2i}.S/L/U/P`` for the convolutions,
        ``layers.{2i+1}.net1/net2/net_cond1/net_cond2.network.{j}.weight/bias`` for couplings).
    hyper : mapping
        The original constructor arguments, see :func:`galacticflow_hyper`.

    Returns
    -------
    ConditionalSplineFlow
        A flow whose ``log_prob`` equals the original's ``logdet + prior_logprob`` and whose
        ``inverse`` equals the original's ``backward``.

    Raises
    ------
    ValueError
        If the state_dict does not match the hyper-parameters (missing, extra or mis-shaped keys).
    """
    flow = ConditionalSplineFlow(**galacticflow_hyper(hyper), seed=0)
    expected = flow.state_dict()
    given = {k: v for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError(
            "state_dict does not match a GalacticFlow NSFlow with these hyper-parameters: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}"
        )
    for key, value in given.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"state_dict entry {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    flow.load_state_dict({k: v.to(torch.float32) for k, v in given.items()})
    return flow


_FILE_KEYS = frozenset(
    {"flow_hyper", "flow_dict", "mu_vals", "std_vals", "mu_names", "component_names", "cond_names"}
)


@dataclass
class GalacticFlowFile:
    """The content of an original GalacticFlow model file.

    Attributes
    ----------
    flow : ConditionalSplineFlow
        The flow, equal to the original ``NSFlow``.
    star_names, condition_names : list of str
        Names of the star columns and of the galaxy conditions, in the flow's order.
    mean, std : dict of str to float
        Normalisation of every column: ``(t(v) - mean) / std`` with ``t`` = log10 for the columns
        in ``log10`` and the identity otherwise; the units are the original's (kpc, km/s, 1, dex,
        Gyr; Msun for ``M_stars``).
    log10 : set of str
        Columns that were log10-transformed before standardisation.
    history : list of float or None
        The training loss history.
    holdout : list of str
        Ids of the galaxies the original training left out.
    """

    flow: ConditionalSplineFlow
    star_names: list[str]
    condition_names: list[str]
    mean: dict[str, float]
    std: dict[str, float]
    log10: set[str] = field(default_factory=set)
    history: list[float] | None = None
    holdout: list[str] = field(default_factory=list)


def read_galacticflow_file(path: str | os.PathLike) -> GalacticFlowFile:
    """Read a model file saved by the original GalacticFlow API.

    Parameters
    ----------
    path : str or path-like
        The ``.pth`` file. It is read with ``torch.load(weights_only=True)``: nothing in it is
        executed.

    Returns
    -------
    GalacticFlowFile

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    astroflow_gal.io.FileFormatError
        If the file is unreadable, not a GalacticFlow model file, or of an unsupported flow.
    """
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling refused or file unreadable
        raise FileFormatError(f"{path}: not a readable GalacticFlow model file: {err}") from err
    if not isinstance(data, Mapping):
        raise FileFormatError(f"{path}: a GalacticFlow model file holds a dict")
    missing = _FILE_KEYS - set(data)
    if missing:
        raise FileFormatError(f"{path}: not a GalacticFlow model file (lacks {sorted(missing)})")
    flow_name = str(data.get("flow", "NSFlow"))
    if "NSFlow" not in flow_name:
        raise FileFormatError(f"{path}: flow {flow_name!r} is not supported (only NSFlow)")
    mean = {n: float(v) for n, v in zip(data["mu_names"], data["mu_vals"], strict=True)}
    std_names = data.get("std_names", data["mu_names"])
    std = {n: float(v) for n, v in zip(std_names, data["std_vals"], strict=True)}
    logged: set[str] = set()
    prep = data.get("data_prep_args") or {}
    for fn, comps in zip(prep.get("transformation_functions", ()),
                         prep.get("transformation_components", ()), strict=False):
        if "log10" in str(fn):
            logged.update(comps)
    try:
        flow = from_galacticflow(data["flow_dict"], data["flow_hyper"])
    except (KeyError, ValueError) as err:
        raise FileFormatError(f"{path}: {err}") from err
    history = data.get("loss_history")
    return GalacticFlowFile(
        flow=flow,
        star_names=list(data["component_names"]["stars"]),
        condition_names=list(data["cond_names"].get("galaxy", [])),
        mean=mean,
        std=std,
        log10=logged,
        history=[float(v) for v in history] if history is not None else None,
        holdout=[str(v) for v in (data.get("subset_params") or {}).get("leavout_vals", [])],
    )

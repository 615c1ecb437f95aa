"""Read flows saved by the original GalacticFlow code (``NSFlow`` with ``NSF_CL2`` layers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .model import ConditionalSplineFlow

__all__ = ["from_galacticflow", "galacticflow_hyper"]


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

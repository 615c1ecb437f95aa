"""Pure-PyTorch conditional normalizing flow (no astronomy here)."""

from .ensemble import FlowEnsemble, flow_from_config
from .galacticflow import from_galacticflow, galacticflow_hyper
from .layers import MLP, DoubleCoupling, LUConv1x1
from .model import ConditionalSplineFlow
from .spline import rational_quadratic_spline

__all__ = [
    "ConditionalSplineFlow",
    "DoubleCoupling",
    "FlowEnsemble",
    "LUConv1x1",
    "MLP",
    "flow_from_config",
    "from_galacticflow",
    "galacticflow_hyper",
    "rational_quadratic_spline",
]

"""Pure-PyTorch conditional normalizing flow (no astronomy here)."""

from .galacticflow import from_galacticflow, galacticflow_hyper
from .layers import MLP, DoubleCoupling, LUConv1x1
from .model import ConditionalSplineFlow
from .spline import rational_quadratic_spline

__all__ = [
    "ConditionalSplineFlow",
    "DoubleCoupling",
    "LUConv1x1",
    "MLP",
    "from_galacticflow",
    "galacticflow_hyper",
    "rational_quadratic_spline",
]

"""All trainable parameters of a flow in one contiguous buffer, their gradients in another.

The flow of the paper has about 490 parameter tensors. An optimiser step, a gradient norm or a
gradient exchange between processes over 490 tensors is 490 small operations each (on the CPU
the "foreach" optimisers still loop over them); over one flat tensor it is one. The module's
parameters stay ordinary ``nn.Parameter`` objects: they become views into the flat buffer, and
their ``.grad`` views into the flat gradient, so autograd accumulates every gradient in place
into the flat gradient.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["FlatParameters"]


class FlatParameters:
    """One flat parameter tensor (and gradient) shared by a set of module parameters.

    Parameters
    ----------
    params : iterable of torch.nn.Parameter
        Parameters to pack, all of one dtype and on one device (dimensionless weights). Their
        values are kept; their storage moves into :attr:`param`.

    Attributes
    ----------
    param : torch.nn.Parameter
        The flat parameter, shape ``(total,)``; hand ``[param]`` to the optimiser.
    params : list of torch.nn.Parameter
        The packed parameters, in packing order.

    Notes
    -----
    Moving the module afterwards (``module.to(...)``) gives its parameters new storage and ends
    the sharing; pack after the module is on its training device. Clear gradients with
    :meth:`zero_grad`, never with ``optimizer.zero_grad(set_to_none=True)``, which would drop
    the shared gradient buffer.
    """

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("no parameters to pack")
        first = self.params[0]
        for p in self.params:
            if p.dtype != first.dtype or p.device != first.device:
                raise ValueError(
                    "all parameters must share one dtype and device to be packed; got "
                    f"{first.dtype} on {first.device} and {p.dtype} on {p.device}"
                )
        total = sum(p.numel() for p in self.params)
        flat = torch.empty(total, dtype=first.dtype, device=first.device)
        grad = torch.zeros_like(flat)
        offset = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                view = flat[offset : offset + n].view_as(p)
                view.copy_(p)
                p.data = view
                p.grad = grad[offset : offset + n].view_as(p)
                offset += n
        self.param = nn.Parameter(flat)
        self.param.grad = grad

    @property
    def grad(self) -> torch.Tensor:
        """The flat gradient, shape ``(total,)``."""
        return self.param.grad

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (the views stay shared)."""
        self.param.grad.zero_()

    def is_intact(self) -> bool:
        """True while every packed parameter and gradient still lives in the flat buffers."""
        start, end = self._span(self.param), self._span(self.param.grad)
        for p in self.params:
            if p.grad is None:
                return False
            if not (start[0] <= p.data_ptr() < start[1]):
                return False
            if not (end[0] <= p.grad.data_ptr() < end[1]):
                return False
        return True

    @staticmethod
    def _span(t: torch.Tensor) -> tuple[int, int]:
        return t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()

"""Monotonic rational-quadratic spline on ``[-B, B]`` with identity tails.

The spline of Durkan et al. (2019, "Neural Spline Flows"), written as one vectorised function:
the bin of every element is found with :func:`torch.searchsorted`, the knot values are read with
:func:`torch.gather`, and points outside ``[-B, B]`` are passed through with ``torch.where``.
There is no boolean-mask gather or scatter, so the cost is the same for every element and the
function is safe under autograd and in float32 (inputs on knots, at ``+-B`` and far outside).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import fused as _fused

__all__ = [
    "rational_quadratic_spline",
    "spline_backward_by_hand",
    "spline_bins",
    "spline_from_theta",
    "spline_parameter_count",
]


#: Range of the sum of exp(raw) over the K bins in which the softmax may skip its shift by the
#: maximum: no term overflowed (float32 maximum 3.4e38) and the largest term is a normal number
#: far above float32 underflow (1.2e-38).
_EXP_SMALLEST_SUM = 1e-25
_EXP_LARGEST_SUM = 1e35


def spline_parameter_count(bins: int) -> int:
    """Number of raw parameters per transformed dimension: ``K`` widths, ``K`` heights, ``K - 1``
    inner derivatives."""
    return 3 * bins - 1


def _knots(raw: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Knot positions (..., K + 1) from unnormalised bin sizes (..., K), and the bin sizes.

    The first knot is exactly ``-bound`` and the last exactly ``+bound``.
    """
    sizes = torch.softmax(raw, dim=-1) * (2.0 * bound)
    knots = torch.cumsum(sizes, dim=-1) - bound
    knots = F.pad(knots, (1, 0), value=-bound)
    # Pin the last knot to exactly +bound (cumsum rounding would leave it a few ulp off).
    knots = torch.cat([knots[..., :-1], torch.full_like(knots[..., :1], bound)], dim=-1)
    # A bin narrower than the float spacing at B has knots that coincide: its size would be 0
    # and the slope h / w a NaN. The floor keeps such a degenerate bin finite; it changes no bin
    # of a usable spline.
    floor = torch.finfo(knots.dtype).tiny ** 0.25
    return knots, (knots[..., 1:] - knots[..., :-1]).clamp_min(floor)


def spline_bins(
    raw_widths: torch.Tensor,
    raw_heights: torch.Tensor,
    raw_derivatives: torch.Tensor,
    bound: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin widths, bin heights and knot derivatives from the raw spline parameters.

    Parameters
    ----------
    raw_widths, raw_heights : torch.Tensor
        Unnormalised bin sizes, shape ``(..., K)`` (dimensionless).
    raw_derivatives : torch.Tensor
        Unnormalised inner-knot derivatives, shape ``(..., K - 1)`` (dimensionless).
    bound : float
        Half-width ``B`` of the spline interval (flow-space units).

    Returns
    -------
    widths, heights : torch.Tensor
        Bin sizes, shape ``(..., K)``, each row summing to ``2 B``.
    derivatives : torch.Tensor
        Derivatives at all ``K + 1`` knots, shape ``(..., K + 1)``; 1 at both ends.
    """
    _, widths = _knots(raw_widths, bound)
    _, heights = _knots(raw_heights, bound)
    derivatives = F.pad(F.softplus(raw_derivatives), (1, 1), value=1.0)
    return widths, heights, derivatives


def spline_from_theta(
    inputs: torch.Tensor,
    theta: torch.Tensor,
    bins: int,
    bound: float,
    inverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the rational-quadratic spline with all raw parameters in one tensor.

    This is the hot path of the flow: one softmax and one cumulative sum for the widths and
    heights together, one ``searchsorted`` for the bins, one gather for the four knot values
    of every element's bin and one for its two derivatives; the softplus runs on the two
    gathered derivatives only.

    Parameters
    ----------
    inputs : torch.Tensor
        Values to transform, shape ``(...)`` (dimensionless flow-space coordinates).
    theta : torch.Tensor
        Raw parameters, shape ``(..., 3 K - 1)``: ``K`` widths, ``K`` heights, ``K - 1`` inner
        derivatives (as in :func:`rational_quadratic_spline`). May be a strided view.
    bins : int
        Number of bins ``K``.
    bound : float
        Half-width ``B`` of the spline interval; identity outside ``[-B, B]``.
    inverse : bool, optional
        If True, apply the inverse map.

    Returns
    -------
    outputs : torch.Tensor
        Transformed values, shape ``(...)``.
    log_abs_det : torch.Tensor
        ``log |d outputs / d inputs|`` per element, shape ``(...)``; 0 outside ``[-B, B]``.
    """
    recording = torch.is_grad_enabled() and (inputs.requires_grad or theta.requires_grad)
    by_hand = getattr(_BACKWARD_BY_HAND, "enabled", False)
    if (not recording or by_hand) and _fused.supports(inputs, theta) and _fused.fused_wanted():
        # One compiled pass (and, under autograd, one node with a first-order backward).
        return _fused.fused_spline(inputs, theta, bins, bound, inverse=inverse)
    if not inverse and by_hand and recording:
        # Training direction under autograd: one node with a hand-written backward instead
        # of the ~100 nodes autograd would record for the operations below.
        return _ForwardSpline.apply(inputs, theta, bins, float(bound))
    outputs, log_abs_det, _ = _spline_core(inputs, theta, bins, bound, inverse)
    return outputs, log_abs_det


def _spline_core(
    inputs: torch.Tensor, theta: torch.Tensor, bins: int, bound: float, inverse: bool
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The spline of :func:`spline_from_theta`, and the per-element pieces its backward needs."""
    k = bins
    bound = float(bound)
    # Right-hand knots of the K bins, widths (row 0) and heights (row 1): (..., 2, K).
    raw = theta[..., : 2 * k].unflatten(-1, (2, k))
    # The softmax without its shift by the maximum (a slow reduction over K entries) has the
    # same value while no exp overflows and the largest one is far from underflow; checked on
    # the sums, else the shifted softmax is used.
    # The check reads two numbers on the host: on the CPU that is free, on an accelerator it
    # would wait for the device at every call, so there the shifted softmax is always used.
    shortcut = theta.device.type == "cpu"
    if shortcut:
        cum = torch.cumsum(torch.exp(raw), dim=-1)
        total = cum[..., -1:]
        low, high = torch.aminmax(total.detach()) if total.numel() else (total.new_ones(()),) * 2
        shortcut = float(low) > _EXP_SMALLEST_SUM and float(high) < _EXP_LARGEST_SUM
    if not shortcut:
        cum = torch.cumsum(torch.softmax(raw, dim=-1), dim=-1)
        total = cum[..., -1:]
    # The last knot may be a few ulp off +B here; it is pinned to +B where it is read below
    # (an in-place write here would make autograd copy all the knots).
    right = (cum * ((2.0 * bound) / total)).sub_(bound)

    inside = (inputs >= -bound) & (inputs <= bound)
    clamped = inputs.clamp(-bound, bound)
    # Bin = number of inner knots <= value; values in [-B, B] land in 0..K-1 without clipping.
    search = right[..., 1 if inverse else 0, : k - 1]
    idx = torch.searchsorted(search.contiguous(), clamped.unsqueeze(-1), right=True)
    lo = (idx - 1).clamp_(min=0)
    pair = torch.cat([lo, idx], dim=-1)  # (..., 2)

    knots = torch.gather(right, -1, pair.unsqueeze(-2).expand(*pair.shape[:-1], 2, 2))
    first = idx == 0
    x_lo = torch.where(first, -bound, knots[..., 0, :1]).squeeze(-1)
    y_lo = torch.where(first, -bound, knots[..., 1, :1]).squeeze(-1)
    last = idx == k - 1
    x_hi = torch.where(last, bound, knots[..., 0, 1:]).squeeze(-1)
    y_hi = torch.where(last, bound, knots[..., 1, 1:]).squeeze(-1)
    floor = torch.finfo(theta.dtype).tiny ** 0.25  # keeps a bin of coinciding knots finite
    w = (x_hi - x_lo).clamp_min(floor)
    h = (y_hi - y_lo).clamp_min(floor)

    raw_d = torch.gather(theta[..., 2 * k :], -1, pair.clamp(max=k - 2))
    deriv = F.softplus(raw_d)
    d_lo = torch.where(first, 1.0, deriv[..., :1]).squeeze(-1)
    d_hi = torch.where(last, 1.0, deriv[..., 1:]).squeeze(-1)

    slope = h / w
    curvature = d_hi + d_lo - 2.0 * slope
    if inverse:
        dy = clamped - y_lo
        a = h * (slope - d_lo) + dy * curvature
        b = h * d_lo - dy * curvature
        c = -slope * dy
        # Clamped at (just above) 0: rounding can make it slightly negative, and sqrt's gradient
        # at exactly 0 is infinite.
        discriminant = (b * b - 4.0 * a * c).clamp_min(torch.finfo(theta.dtype).tiny)
        xi = ((2.0 * c) / (-b - torch.sqrt(discriminant))).clamp(0.0, 1.0)
        outputs = x_lo + xi * w
    else:
        xi = ((clamped - x_lo) / w).clamp(0.0, 1.0)
    xi_1m = xi * (1.0 - xi)
    denominator = slope + curvature * xi_1m
    numerator = (slope * slope) * (
        d_hi * xi * xi + 2.0 * slope * xi_1m + d_lo * (1.0 - xi) * (1.0 - xi)
    )
    log_derivative = torch.log(numerator / (denominator * denominator))
    if inverse:
        log_derivative = -log_derivative
    else:
        outputs = y_lo + h * (slope * xi * xi + d_lo * xi_1m) / denominator
    outputs = torch.where(inside, outputs, inputs)
    log_abs_det = torch.where(inside, log_derivative, 0.0)
    pieces = dict(
        inside=inside, pair=pair, first=first, last=last, raw_d=raw_d, xi=xi, w=w, h=h,
        d_lo=d_lo, d_hi=d_hi,
    )
    return outputs, log_abs_det, pieces


_BACKWARD_BY_HAND = threading.local()


@contextmanager
def spline_backward_by_hand(enabled: bool = True) -> Iterator[None]:
    """Within this context (on this thread), the data-to-latent spline under autograd is one
    node with a hand-written first-order backward.

    Training uses it (fewer recorded operations per step). Outside it, autograd records the
    spline's operations, which allows derivatives of any order (e.g. Hessians of the eDF).
    Inside it, a second derivative through the spline raises an error.

    Parameters
    ----------
    enabled : bool, optional
        False turns the hand-written backward off inside an enclosing context.
    """
    before = getattr(_BACKWARD_BY_HAND, "enabled", False)
    _BACKWARD_BY_HAND.enabled = bool(enabled)
    try:
        yield
    finally:
        _BACKWARD_BY_HAND.enabled = before


class _ForwardSpline(torch.autograd.Function):
    """The data-to-latent spline with its gradient written out (one autograd node).

    The backward differentiates ``y = y_lo + h (s xi^2 + d_lo xi (1 - xi)) / D`` and
    ``log |dy/dx| = log(s^2 M / D^2)`` (``s = h / w``, ``xi = (x - x_lo) / w``,
    ``D = s + (d_lo + d_hi - 2 s) xi (1 - xi)``,
    ``M = d_hi xi^2 + 2 s xi (1 - xi) + d_lo (1 - xi)^2``) with respect to the input and the
    six bin quantities, then carries the bin quantities back to the raw parameters through the
    knot gather, the cumulative sum and the softmax, and the softplus of the derivatives.
    Tested against autograd of the same operations.
    """

    @staticmethod
    def forward(ctx, inputs, theta, bins, bound):  # noqa: D102
        outputs, log_abs_det, pieces = _spline_core(inputs, theta, bins, bound, False)
        ctx.bins, ctx.bound = bins, bound
        names = sorted(pieces)
        ctx.names = names
        ctx.save_for_backward(theta, *(pieces[n] for n in names))
        return outputs, log_abs_det

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_logdet):  # noqa: D102
        theta, *saved = ctx.saved_tensors
        q = dict(zip(ctx.names, saved, strict=True))
        k, bound = ctx.bins, ctx.bound
        xi, w, h, d_lo, d_hi = q["xi"], q["w"], q["h"], q["d_lo"], q["d_hi"]
        inside = q["inside"]
        zeros = torch.zeros_like(xi)
        gy = g_out if g_out is not None else zeros
        gl = g_logdet if g_logdet is not None else zeros

        s = h / w
        t = xi * (1.0 - xi)
        one_m = 1.0 - xi
        two_t = 1.0 - 2.0 * t  # dD/ds
        curvature = d_lo + d_hi - 2.0 * s
        den = s + curvature * t
        inv_den = 1.0 / den
        m = d_hi * xi * xi + 2.0 * s * t + d_lo * one_m * one_m
        inv_m = 1.0 / m
        ratio = (s * xi * xi + d_lo * t) * inv_den  # (y - y_lo) / h
        dden_dxi = curvature * (1.0 - 2.0 * xi)
        a = gy * h * inv_den
        g_s = a * (xi * xi - ratio * two_t) + gl * (
            2.0 / s + 2.0 * t * inv_m - 2.0 * two_t * inv_den
        )
        g_xi = a * (2.0 * s * xi + d_lo * (1.0 - 2.0 * xi) - ratio * dden_dxi) + gl * (
            2.0 * (d_hi * xi + s * (1.0 - 2.0 * xi) - d_lo * one_m) * inv_m
            - 2.0 * dden_dxi * inv_den
        )
        g_dlo = a * t * (1.0 - ratio) + gl * (one_m * one_m * inv_m - 2.0 * t * inv_den)
        g_dhi = -a * ratio * t + gl * (xi * xi * inv_m - 2.0 * t * inv_den)
        g_x = g_xi / w
        g_w = -(g_s * s + g_xi * xi) / w
        g_h = gy * ratio + g_s / w
        # bin quantities -> knots: x_lo, x_hi, y_lo, y_hi (constants at the ends are masked)
        lo_free = (inside & ~q["first"].squeeze(-1)).to(xi.dtype)
        hi_free = (inside & ~q["last"].squeeze(-1)).to(xi.dtype)
        g_knots = torch.stack(
            [
                torch.stack([(-g_x - g_w) * lo_free, g_w * hi_free], -1),
                torch.stack([(gy - g_h) * lo_free, g_h * hi_free], -1),
            ],
            -2,
        )  # (..., 2, 2): rows x and y, columns lower and upper knot
        pair = q["pair"]
        g_right = torch.zeros(*xi.shape, 2, k, dtype=xi.dtype, device=xi.device)
        g_right.scatter_add_(-1, pair.unsqueeze(-2).expand(*pair.shape[:-1], 2, 2), g_knots)
        # knots = 2 B cumsum(p) - B with p = softmax(raw): reverse cumulative sum, then softmax
        g_p = g_right.flip(-1).cumsum(-1).flip(-1).mul_(2.0 * bound)
        p = torch.softmax(theta[..., : 2 * k].unflatten(-1, (2, k)), dim=-1)
        g_raw = p * (g_p - (g_p * p).sum(-1, keepdim=True))
        # derivatives: softplus' = sigmoid
        sig = torch.sigmoid(q["raw_d"])
        g_dpair = torch.stack([g_dlo * lo_free, g_dhi * hi_free], -1) * sig
        g_raw_d = torch.zeros(*xi.shape, k - 1, dtype=xi.dtype, device=xi.device)
        g_raw_d.scatter_add_(-1, pair.clamp(max=k - 2), g_dpair)
        g_theta = torch.cat([g_raw.flatten(-2), g_raw_d], -1)
        g_inputs = torch.where(inside, g_x, gy)
        return g_inputs, g_theta, None, None


def rational_quadratic_spline(
    inputs: torch.Tensor,
    raw_widths: torch.Tensor,
    raw_heights: torch.Tensor,
    raw_derivatives: torch.Tensor,
    bound: float,
    inverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the rational-quadratic spline element-wise.

    Parameters
    ----------
    inputs : torch.Tensor
        Values to transform, shape ``(...)`` (dimensionless flow-space coordinates).
    raw_widths, raw_heights : torch.Tensor
        Unnormalised bin widths and heights, shape ``(..., K)``; a softmax scaled to ``2 B`` turns
        them into bin sizes.
    raw_derivatives : torch.Tensor
        Unnormalised derivatives at the ``K - 1`` inner knots, shape ``(..., K - 1)``; a softplus
        makes them positive. The derivative at both end knots is 1, matching the identity tails.
    bound : float
        Half-width ``B`` of the spline interval ``[-B, B]``; outside it the map is the identity.
    inverse : bool, optional
        If True, apply the inverse map.

    Returns
    -------
    outputs : torch.Tensor
        Transformed values, shape ``(...)``.
    log_abs_det : torch.Tensor
        ``log |d outputs / d inputs|`` per element, shape ``(...)``; 0 outside ``[-B, B]``.
    """
    bins = raw_widths.shape[-1]
    if raw_heights.shape[-1] != bins or raw_derivatives.shape[-1] != bins - 1:
        raise ValueError(
            f"spline parameters need K widths, K heights and K - 1 derivatives; got "
            f"{raw_widths.shape[-1]}, {raw_heights.shape[-1]}, {raw_derivatives.shape[-1]}"
        )
    theta = torch.cat([raw_widths, raw_heights, raw_derivatives], dim=-1)
    return spline_from_theta(inputs, theta, bins, bound, inverse=inverse)

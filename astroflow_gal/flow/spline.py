"""Monotonic rational-quadratic spline on ``[-B, B]`` with identity tails.

The spline of Durkan et al. (2019, "Neural Spline Flows"), written as one vectorised function:
the bin of every element is found with :func:`torch.searchsorted`, the knot values are read with
:func:`torch.gather`, and points outside ``[-B, B]`` are passed through with ``torch.where``.
There is no boolean-mask gather or scatter, so the cost is the same for every element and the
function is safe under autograd and in float32 (inputs on knots, at ``+-B`` and far outside).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["rational_quadratic_spline", "spline_bins", "spline_parameter_count"]


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


def _bin_index(knots: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Index of the bin holding ``value``: (number of knots <= value) - 1, clipped to the bins."""
    count = torch.searchsorted(knots, value.unsqueeze(-1), right=True)
    return (count - 1).clamp_(0, knots.shape[-1] - 2)


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
    inside = (inputs >= -bound) & (inputs <= bound)
    clamped = inputs.clamp(-bound, bound)

    x_knots, widths = _knots(raw_widths, bound)
    y_knots, heights = _knots(raw_heights, bound)
    derivatives = F.pad(F.softplus(raw_derivatives), (1, 1), value=1.0)

    idx = _bin_index(y_knots if inverse else x_knots, clamped)
    idx1 = idx + 1

    def at(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return torch.gather(t, -1, i).squeeze(-1)

    x_k, w_k = at(x_knots, idx), at(widths, idx)
    y_k, h_k = at(y_knots, idx), at(heights, idx)
    d_k, d_k1 = at(derivatives, idx), at(derivatives, idx1)
    slope = h_k / w_k
    curvature = d_k1 + d_k - 2.0 * slope

    if inverse:
        dy = clamped - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        discriminant = (b * b - 4.0 * a * c).clamp_min(0.0)
        xi = (2.0 * c) / (-b - torch.sqrt(discriminant))
        xi = xi.clamp(0.0, 1.0)
        outputs = x_k + xi * w_k
    else:
        xi = ((clamped - x_k) / w_k).clamp(0.0, 1.0)

    xi_1m = xi * (1.0 - xi)
    denominator = slope + curvature * xi_1m
    numerator_derivative = slope * slope * (
        d_k1 * xi * xi + 2.0 * slope * xi_1m + d_k * (1.0 - xi) * (1.0 - xi)
    )
    log_derivative = torch.log(numerator_derivative) - 2.0 * torch.log(denominator)

    if inverse:
        log_abs_det = -log_derivative
    else:
        outputs = y_k + h_k * (slope * xi * xi + d_k * xi_1m) / denominator
        log_abs_det = log_derivative

    outputs = torch.where(inside, outputs, inputs)
    log_abs_det = torch.where(inside, log_abs_det, torch.zeros_like(log_abs_det))
    return outputs, log_abs_det

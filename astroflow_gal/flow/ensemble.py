"""A mixture of conditional flows over the same columns: ``p(x | c) = sum_k w_k p_k(x | c)``.

Flows trained alike from different seeds fit the data about equally well but err in different
places; the mean of their densities is closer to the truth than either (the KL of a mixture is
never more than the members' weighted mean KL, by the convexity of KL). The mixture is exact:
its density is the weighted sum of the members' exact densities, its log-density is evaluated as
a log-sum-exp, and autograd differentiates through it.

A mixture has no single bijection, so it has no ``forward`` or ``inverse``. Sampling uses one
latent column more than the data: the first ``dim`` columns are the standard-normal latent of the
chosen member, the last picks the member by its standard-normal CDF (member ``k`` where the CDF
falls in the ``k``-th interval of the cumulative weights).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .model import ConditionalSplineFlow

__all__ = ["FlowEnsemble"]

# Rows of a member's share of a batch are padded to at least this many (as GalaxyModel pads its
# batches): matrix products of a handful of rows take other BLAS code paths and round otherwise.
_MIN_ROWS = 64


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    values = [float(w) for w in weights]
    if len(values) != n:
        raise ValueError(f"{len(values)} weights for {n} members")
    if not all(math.isfinite(w) and w > 0 for w in values):
        raise ValueError(f"member weights must be finite and positive, got {values}")
    total = sum(values)
    return [w / total for w in values]


class FlowEnsemble(nn.Module):
    """Weighted mixture of :class:`ConditionalSplineFlow` members over the same columns.

    Parameters
    ----------
    members : sequence of ConditionalSplineFlow
        The flows (at least one), all with the same ``dim`` and ``cond_dim``; their architectures
        may differ.
    weights : sequence of float, optional
        Positive member weights (dimensionless), normalised to sum to one; equal by default.

    Raises
    ------
    ValueError
        If there are no members, their dimensions differ, or a weight is not finite and positive.
    """

    def __init__(
        self, members: Sequence[ConditionalSplineFlow], weights: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one member flow")
        for k, member in enumerate(members):
            if not isinstance(member, ConditionalSplineFlow):
                raise TypeError(f"member {k} is a {type(member).__name__}, not a flow")
            if (member.dim, member.cond_dim) != (members[0].dim, members[0].cond_dim):
                raise ValueError(
                    f"member {k} is over {member.dim} columns and {member.cond_dim} conditions, "
                    f"member 0 over {members[0].dim} and {members[0].cond_dim}"
                )
        self.members = nn.ModuleList(members)
        self.weights = _check_weights(weights, len(members))
        self.config = {
            "members": [dict(m.config) for m in members],
            "weights": list(self.weights),
        }

    @property
    def dim(self) -> int:
        """Number of data columns."""
        return self.members[0].dim

    @property
    def cond_dim(self) -> int:
        """Number of conditions."""
        return self.members[0].cond_dim

    @property
    def latent_dim(self) -> int:
        """Columns of one latent row: the members' ``dim`` and one column choosing the member."""
        return self.dim + 1

    def _log_weights(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.weights, dtype=like.dtype, device=like.device).log()

    def member_log_probs(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Every member's log-density of the rows ``x`` (flow space), shape ``(K, N)``."""
        return torch.stack([member.log_prob(x, c) for member in self.members])

    def log_prob(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density of the mixture, ``log sum_k w_k p_k(x | c)``, shape ``(N,)``.

        Parameters
        ----------
        x : torch.Tensor
            Data in flow space, shape ``(N, dim)``.
        c : torch.Tensor, optional
            Conditions in flow space, ``(N, cond_dim)``, ``(1, cond_dim)`` or ``(cond_dim,)``.
        """
        log_p = self.member_log_probs(x, c)
        return torch.logsumexp(log_p + self._log_weights(log_p)[:, None], dim=0)

    def member_of_latent(self, u_latent: torch.Tensor) -> torch.Tensor:
        """Member index (int64) chosen by standard-normal latent values, shape ``(N,)``.

        Member ``k`` where ``Phi(u)`` lies in ``[W_{k-1}, W_k)`` of the cumulative weights
        ``W``, so member ``k`` is chosen with probability ``w_k``.
        """
        cdf = torch.special.ndtr(u_latent.detach().to("cpu", torch.float64))
        edges = torch.tensor(self.weights, dtype=torch.float64).cumsum(0)[:-1]
        return torch.searchsorted(edges, cdf.contiguous(), right=True)

    def from_latent(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Data rows for latent rows ``z`` of shape ``(N, dim + 1)`` (the sampling direction).

        Row ``i`` is member ``k``'s inverse map of ``z[i, :dim]``, with ``k`` chosen by
        ``z[i, dim]`` (:meth:`member_of_latent`).

        Parameters
        ----------
        z : torch.Tensor
            Latent rows, shape ``(N, dim + 1)``, standard normal for a sample of the mixture.
        c : torch.Tensor, optional
            Conditions in flow space, as for :meth:`log_prob`.

        Returns
        -------
        torch.Tensor
            Data in flow space, shape ``(N, dim)``.
        """
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latent must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        chosen = self.member_of_latent(z[:, -1]).to(z.device)
        per_row = c is not None and c.dim() == 2 and c.shape[0] == z.shape[0] and z.shape[0] > 1
        out = z.new_empty(z.shape[0], self.dim)
        for k, member in enumerate(self.members):
            rows = torch.nonzero(chosen == k).squeeze(1)
            if rows.numel() == 0:
                continue
            zk = z[rows, : self.dim]
            ck = c[rows] if per_row else c
            pad = _MIN_ROWS - rows.numel()
            if pad > 0:
                zk = torch.cat([zk, zk.new_zeros(pad, self.dim)])
                if per_row:
                    ck = torch.cat([ck, ck[:1].expand(pad, -1)])
            xk, _ = member.inverse(zk, ck)
            out[rows] = xk[: rows.numel()]
        return out

    def sample(
        self, n: int, c: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` rows of the mixture in flow space (see :meth:`ConditionalSplineFlow.sample`).

        Returns
        -------
        torch.Tensor
            Samples, shape ``(n, dim)``, on the members' device.
        """
        param = next(self.parameters())
        gen_device = generator.device if generator is not None else param.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=gen_device,
                        dtype=param.dtype)
        return self.from_latent(z.to(param.device), c)

    def extra_repr(self) -> str:
        return f"weights={[round(w, 4) for w in self.weights]}"


def flow_from_config(config: dict[str, Any]) -> ConditionalSplineFlow | FlowEnsemble:
    """An untrained flow or ensemble of the architecture ``config`` (a flow's ``.config``)."""
    if "members" in config:
        members = [ConditionalSplineFlow(**member) for member in config["members"]]
        return FlowEnsemble(members, config.get("weights"))
    return ConditionalSplineFlow(**config)

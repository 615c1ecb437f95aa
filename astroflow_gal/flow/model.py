"""The conditional neural spline flow of GalacticFlow."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from torch import nn

from .layers import DoubleCoupling, LUConv1x1

__all__ = ["ConditionalSplineFlow"]

_LOG_2PI = math.log(2.0 * math.pi)


def _row_ids(rows: torch.Tensor) -> torch.Tensor:
    """Dense ids (0 .. M - 1) of the distinct rows of a 2-D tensor, one per row.

    Rows are compared by their bit patterns, one column at a time with 1-D ``torch.unique``
    (several times faster than ``torch.unique(dim=0)``, which compares whole rows one by one).
    Rows equal in value but not in bits (``0.0`` and ``-0.0``) get different ids, which only
    means their shared result is computed twice.
    """
    n = rows.shape[0]
    if rows.is_floating_point():
        bits_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[rows.element_size()]
        rows = rows.contiguous().view(bits_dtype)
    ids = None
    for column in rows.unbind(1):
        _, column_ids = torch.unique(column, return_inverse=True)
        if ids is None:
            ids = column_ids
        else:
            # ids and column_ids are < n, so the pair code is < n**2 and fits in int64.
            _, ids = torch.unique(ids * n + column_ids, return_inverse=True)
    return ids if ids is not None else rows.new_zeros(n, dtype=torch.long)


class ConditionalSplineFlow(nn.Module):
    """Conditional normalizing flow: ``n_layers`` x (1x1 convolution, double spline coupling).

    The base distribution is a standard normal in ``dim`` dimensions. ``forward`` maps data to
    latent, ``inverse`` latent to data; both return the log-determinant of the map they applied.

    Conditions are given per row, shape ``(N, cond_dim)``, or once for all rows, shape
    ``(cond_dim,)`` or ``(1, cond_dim)``. The condition networks run once per distinct condition:
    once for a single galaxy, once per galaxy for a training batch mixing galaxies.

    Parameters
    ----------
    dim : int
        Number of data features (>= 2).
    cond_dim : int
        Number of condition features (0 for an unconditional flow).
    n_layers : int
        Number of (convolution, coupling) pairs.
    bins : int
        Spline bins per transformed dimension.
    bound : float
        Spline interval half-width ``B`` (flow-space units); identity outside ``[-B, B]``.
    hidden : int
        Width of the hidden layers of every MLP.
    hidden_layers : int
        Number of hidden layers of every MLP.
    negative_slope : float
        LeakyReLU slope.
    seed : int, optional
        Seed of the weight initialisation; the global torch RNG is left untouched when given.
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        n_layers: int = 14,
        bins: int = 10,
        bound: float = 3.0,
        hidden: int = 128,
        hidden_layers: int = 3,
        negative_slope: float = 0.2,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        if cond_dim < 0 or n_layers < 1 or bins < 2 or hidden < 1 or hidden_layers < 0:
            raise ValueError("cond_dim >= 0, n_layers >= 1, bins >= 2, hidden >= 1 required")
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound}")
        self.config = dict(
            dim=int(dim),
            cond_dim=int(cond_dim),
            n_layers=int(n_layers),
            bins=int(bins),
            bound=float(bound),
            hidden=int(hidden),
            hidden_layers=int(hidden_layers),
            negative_slope=float(negative_slope),
        )
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for _ in range(n_layers):
                layers.append(LUConv1x1(dim))
                layers.append(
                    DoubleCoupling(
                        dim, cond_dim, bins, bound, hidden, hidden_layers, negative_slope
                    )
                )
        self.layers = nn.ModuleList(layers)

    #: Rows per block when no gradient is recorded (keeps the working set in cache).
    chunk_size: int = 4096

    #: Blocks evaluated at once without gradient recording; ``None`` means
    #: ``torch.get_num_threads()``. See :meth:`forward`.
    workers: int | None = None

    @property
    def dim(self) -> int:
        return self.config["dim"]

    @property
    def cond_dim(self) -> int:
        return self.config["cond_dim"]

    @property
    def latent_dim(self) -> int:
        """Columns of one latent row (``dim``; a :class:`FlowEnsemble` has one more)."""
        return self.config["dim"]

    # -- conditions -------------------------------------------------------------------------
    def _condition_rows(
        self, c: torch.Tensor | None, n: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Distinct condition rows and the index of each star's row (None: broadcast one row)."""
        if self.cond_dim == 0:
            if c is not None and c.numel() > 0:
                raise ValueError("this flow is unconditional; pass c=None")
            return None, None
        if c is None:
            raise ValueError(f"this flow needs a condition of {self.cond_dim} features")
        if c.dim() == 1:
            c = c.unsqueeze(0)
        if c.dim() != 2 or c.shape[1] != self.cond_dim:
            raise ValueError(
                f"condition must have shape (N, {self.cond_dim}) or ({self.cond_dim},), "
                f"got {tuple(c.shape)}"
            )
        if c.shape[0] == 1:
            return c, None
        if c.shape[0] != n:
            raise ValueError(f"condition has {c.shape[0]} rows for {n} data rows")
        if c.requires_grad and torch.is_grad_enabled():
            # Gradients w.r.t. each condition row need each row in the graph.
            return c, None
        if n == 0:
            return c, None
        index = _row_ids(c.detach())
        n_unique = int(index.max()) + 1
        if n_unique * 2 > n:
            return c, None
        # First occurrence of every distinct row, gathered from c so gradients reach c.
        positions = torch.arange(n, device=c.device)
        first = torch.full((n_unique,), n, dtype=torch.long, device=c.device)
        first = first.scatter_reduce(0, index, positions, reduce="amin")
        return c.index_select(0, first), index

    def _condition_outputs(self, rows: torch.Tensor | None) -> list:
        return [
            layer.condition_outputs(rows) if rows is not None else None
            for layer in self.layers[1::2]
        ]

    # -- transforms ---------------------------------------------------------------------------
    def _convolution_constants(self, inverse: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Matrix and log-determinant of every 1x1 convolution, computed once per call."""
        out = []
        for conv in self.layers[0::2]:
            weight, logdet = conv.weight(), conv.log_abs_det()
            if inverse:
                weight, logdet = torch.linalg.inv(weight), -logdet
            out.append((weight, logdet))
        return out

    def _run(
        self,
        x: torch.Tensor,
        convs: list[tuple[torch.Tensor, torch.Tensor]],
        conds: list,
        index: torch.Tensor | None,
        inverse: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All layers on one block of rows; the convolutions' log-determinants are left out."""
        couplings = self.layers[1::2]
        order = range(len(couplings) - 1, -1, -1) if inverse else range(len(couplings))
        logdet = None
        for j in order:
            if inverse:
                x, ld = couplings[j].inverse(x, conds[j], index)
                x = x @ convs[j][0]
            else:
                x, ld = couplings[j](x @ convs[j][0], conds[j], index)
            if logdet is None:
                logdet = ld
            elif torch.is_grad_enabled():
                logdet = logdet + ld
            else:
                logdet = logdet.add_(ld)
        return x, logdet

    def _transform(
        self, x: torch.Tensor, c: torch.Tensor | None, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_data(x)
        n = x.shape[0]
        rows, index = self._condition_rows(c, n)
        convs = self._convolution_constants(inverse)
        conds = self._condition_outputs(rows)
        conv_logdet = torch.stack([ld for _, ld in convs]).sum()
        if torch.is_grad_enabled() or n <= self.chunk_size:
            y, logdet = self._run(x, convs, conds, index, inverse)
            return y, logdet + conv_logdet
        # No gradient recorded: blocks of rows small enough to stay in cache.
        y = torch.empty_like(x)
        logdet = x.new_empty(n)
        if index is None:
            blocks = [
                (slice(start, start + self.chunk_size), conds, None)
                for start in range(0, n, self.chunk_size)
            ]
        else:
            blocks = self._grouped_blocks(conds, index)

        def run_block(block) -> None:
            rows, conds_b, index_b = block
            y[rows], logdet[rows] = self._run(x[rows], convs, conds_b, index_b, inverse)

        _run_blocks(run_block, blocks, self._worker_count(x))
        return y, logdet.add_(conv_logdet)

    def _grouped_blocks(self, conds, index) -> list[tuple]:
        """Blocks of rows of many conditions: rows of a large group run with their one condition
        row broadcast; the rows of small groups run together, each with its gathered condition
        row. Each block is ``(row positions, condition outputs, index or None)``."""
        order = torch.argsort(index, stable=True)
        counts = torch.bincount(index, minlength=conds[0][0].shape[0]).tolist()
        min_group = max(1, self.chunk_size // 8)
        start, small, blocks = 0, [], []
        for g, count in enumerate(counts):
            if count >= min_group:
                rows_g = [tuple(out[g : g + 1] for out in layer) for layer in conds]
                for s in range(start, start + count, self.chunk_size):
                    pos = order[s : min(s + self.chunk_size, start + count)]
                    blocks.append((pos, rows_g, None))
            elif count:
                small.append(order[start : start + count])
            start += count
        if small:
            rest = torch.cat(small)
            for s in range(0, rest.shape[0], self.chunk_size):
                pos = rest[s : s + self.chunk_size]
                blocks.append((pos, conds, index[pos]))
        return blocks

    def _worker_count(self, x: torch.Tensor) -> int:
        if x.device.type != "cpu":
            return 1  # one device queue: blocks in order
        workers = torch.get_num_threads() if self.workers is None else int(self.workers)
        return max(1, workers)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data to latent.

        Without gradient recording (``torch.no_grad`` or ``torch.inference_mode``) the rows
        are processed in blocks of :attr:`chunk_size` and, for many distinct conditions,
        grouped by condition; the result is the same. On the CPU, :attr:`workers` blocks
        (default: ``torch.get_num_threads()``) run at once, each on one thread: for the flow's
        small matrices this uses the cores better than splitting every operation across them.
        The worker threads are started for the call and joined before it returns.

        .. warning:: Torch's thread count is process-wide: while such a call runs, it is 1 for
           every thread of the program (other threads running torch then run single-threaded).
           It is restored when the last concurrent call returns. Set ``flow.workers = 1`` to
           leave it untouched (the blocks then run one after another with torch's threads).

        Parameters
        ----------
        x : torch.Tensor
            Data in flow space, shape ``(N, dim)``.
        c : torch.Tensor, optional
            Conditions in flow space, shape ``(N, cond_dim)``, ``(1, cond_dim)`` or ``(cond_dim,)``.

        Returns
        -------
        z : torch.Tensor
            Latent values, shape ``(N, dim)``.
        logdet : torch.Tensor
            ``log |det dz/dx|`` per row, shape ``(N,)``.
        """
        return self._transform(x, c, inverse=False)

    def inverse(
        self, z: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map latent to data (the sampling direction).

        Parameters
        ----------
        z : torch.Tensor
            Latent values, shape ``(N, dim)``.
        c : torch.Tensor, optional
            Conditions in flow space, as for :meth:`forward`.

        Returns
        -------
        x : torch.Tensor
            Data in flow space, shape ``(N, dim)``.
        logdet : torch.Tensor
            ``log |det dx/dz|`` per row, shape ``(N,)``.
        """
        return self._transform(z, c, inverse=True)

    def from_latent(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Data rows for latent rows ``z`` (:meth:`inverse` without its log-determinant)."""
        return self.inverse(z, c)[0]

    def _check_data(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"data must have shape (N, {self.dim}), got {tuple(x.shape)}")

    # -- densities and samples ------------------------------------------------------------------
    @staticmethod
    def base_log_prob(z: torch.Tensor) -> torch.Tensor:
        """Standard normal log-density of latent rows ``z`` (N, dim) -> (N,)."""
        return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI

    def log_prob(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density of data rows ``x`` (N, dim) in flow space, given conditions ``c``.

        Returns
        -------
        torch.Tensor
            ``log p(x | c)``, shape ``(N,)``.
        """
        z, logdet = self.forward(x, c)
        return self.base_log_prob(z) + logdet

    def sample(
        self,
        n: int,
        c: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` rows in flow space.

        Parameters
        ----------
        n : int
            Number of rows.
        c : torch.Tensor, optional
            Conditions: one row for all samples (``(cond_dim,)`` or ``(1, cond_dim)``) or one per
            sample (``(n, cond_dim)``).
        generator : torch.Generator, optional
            Source of the latent draws; its device decides where they are drawn. The same
            generator state gives the same sample.

        Returns
        -------
        torch.Tensor
            Samples, shape ``(n, dim)``, on the flow's device.
        """
        param = next(self.parameters())
        gen_device = generator.device if generator is not None else param.device
        z = torch.randn(n, self.dim, generator=generator, device=gen_device, dtype=param.dtype)
        x, _ = self.inverse(z.to(param.device), c)
        return x


# -- blocks on several threads ---------------------------------------------------------------
# Torch's thread count is process-wide. Calls running blocks on workers lower it to 1 while any
# of them runs: the first to enter saves the caller's count, the last to leave restores it, so
# concurrent calls from several threads of a program cannot leave it at 1.
_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"active": 0, "saved": None}


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Torch (and its BLAS) on one thread inside the block; the caller's count restored after
    the last of any concurrent blocks."""
    with _THREADS_LOCK:
        if _THREADS_STATE["active"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
        _THREADS_STATE["active"] += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["active"] -= 1
            if _THREADS_STATE["active"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])
                _THREADS_STATE["saved"] = None


def _run_blocks(run_block: Callable[[tuple], None], blocks: list, workers: int) -> None:
    """Call ``run_block`` on every block, on ``workers`` threads at once when there are several
    blocks; the first error in a block is raised after all blocks have stopped.

    The threads are started for this call and joined before it returns: no pool outlives it.
    """
    workers = min(workers, len(blocks))
    if workers <= 1:
        for block in blocks:
            run_block(block)
        return
    # Grad and inference modes are per thread: the workers take the caller's.
    inference = torch.is_inference_mode_enabled()

    def run_share(share: list) -> None:
        with torch.inference_mode(inference), torch.no_grad():
            for block in share:
                run_block(block)

    with single_threaded_torch(), ThreadPoolExecutor(
        workers, thread_name_prefix="astroflow-gal"
    ) as pool:
        futures = [pool.submit(run_share, blocks[k::workers]) for k in range(workers)]
        for future in futures:
            future.exception()  # wait for every block before the thread count is restored
        for future in futures:
            future.result()

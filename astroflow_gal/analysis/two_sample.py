"""Two-sample statistics: are the stars of a model galaxy and of a data galaxy alike?

Three tests of increasing power, all on star columns in a *normalised* space where every column
has zero mean and unit variance over the stars of the data suite (``log10 Z`` standardised like
the rest, as in the paper), so no column dominates because of its unit:

- :func:`linear_mmd`: the paper's linear maximum mean discrepancy, the squared distance between
  the two samples' mean vectors (MMD with the linear kernel ``k(a, b) = a . b``). It sees only
  the means, but it is cheap and it orders galaxies by "physical closeness" (the paper's
  Figure 3).
- :func:`kernel_mmd`: the unbiased MMD^2 with a Gaussian kernel whose width is the median
  pairwise distance of the pooled sample (the median heuristic), and a permutation p-value. It
  sees every moment of the distributions.
- :func:`classifier_test`: a small torch MLP learns to tell model stars from data stars; the ROC
  AUC on held-out stars, with its standard error, is 0.5 when the two are indistinguishable.

The functions take plain arrays ``(N, D)`` (already normalised); a :class:`StarScaler` fitted on
the data suite turns star tables into them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data._checks import integer as _positive_int

__all__ = [
    "ClassifierResult",
    "KernelMMDResult",
    "StarScaler",
    "auc_standard_error",
    "classifier_test",
    "kernel_mmd",
    "linear_mmd",
    "linear_mmd_matrix",
    "roc_auc",
]


# -- inputs -------------------------------------------------------------------------------------
def _sample_array(values: Any, name: str, min_rows: int = 1) -> np.ndarray:
    """A finite float64 array (N, D) with at least ``min_rows`` rows, or a clear error."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an array of shape (N, D), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} holds {arr.shape[0]} stars; at least {min_rows} are needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _pair(x: Any, y: Any, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    a = _sample_array(x, "x", min_rows)
    b = _sample_array(y, "y", min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} columns and y {b.shape[1]}: they must agree")
    return a, b


class StarScaler:
    """The normalised space of the two-sample statistics: every column standardised.

    Each star column is transformed as the schema says (``log10`` for ``Z``, none for the rest)
    and standardised with the mean and standard deviation over all stars of a reference suite,
    so that no column dominates because of its unit. Fitted on the data, not on a model, the
    space is the same for every model judged against the same suite.

    Parameters
    ----------
    names : sequence of str
        Schema star columns, in order.
    mean, std : array-like
        Mean and standard deviation of each transformed column (schema units; ``log10 Z``).
    """

    def __init__(self, names: Sequence[str], mean: Any, std: Any) -> None:
        from ..data import schema

        self.names = tuple(names)
        for name in self.names:
            schema.star_column(name)
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != (len(self.names),) or self.std.shape != (len(self.names),):
            raise ValueError(f"mean and std need one value per column {self.names}")
        if not (np.all(np.isfinite(self.mean)) and np.all(self.std > 0)):
            raise ValueError("mean must be finite and std positive in every column")
        self._log = np.array([schema.star_column(n).transform == "log10" for n in self.names])

    @classmethod
    def from_suite(cls, suite: Any, names: Sequence[str] | None = None) -> StarScaler:
        """Fit on every star of a suite.

        Parameters
        ----------
        suite : GalaxySuite
            The reference galaxies.
        names : sequence of str, optional
            Star columns (default: the ten schema star columns).
        """
        from ..data import schema

        names = tuple(schema.STAR_NAMES if names is None else names)
        stars, _, _ = suite.to_arrays(names, ())
        if stars.shape[0] < 2:
            raise ValueError("the suite holds fewer than two stars: nothing to standardise")
        values = cls(names, np.zeros(len(names)), np.ones(len(names)))._transform(stars)
        std = values.std(axis=0)
        return cls(names, values.mean(axis=0), np.where(std > 0, std, 1.0))

    def _transform(self, arr: np.ndarray) -> np.ndarray:
        out = arr.copy()
        if self._log.any():
            out[:, self._log] = np.log10(out[:, self._log])
        return out

    def __call__(self, stars: Any) -> np.ndarray:
        """Stars in the normalised space.

        Parameters
        ----------
        stars : astropy.table.QTable, mapping of columns, or array (N, D)
            The scaler's columns (kpc, km/s, dimensionless Z, dex, Gyr; Quantities in any
            compatible unit; an array in schema units and in the scaler's column order).

        Returns
        -------
        numpy.ndarray
            Dimensionless values, shape ``(N, D)``, float64.
        """
        from ..inputs import stars_to_array

        positive = tuple(n for n, lg in zip(self.names, self._log, strict=True) if lg)
        arr = stars_to_array(stars, self.names, positive)
        return (self._transform(arr) - self.mean) / self.std

    def __repr__(self) -> str:
        return f"StarScaler({', '.join(self.names)})"


# -- linear MMD ---------------------------------------------------------------------------------
def linear_mmd(x: Any, y: Any) -> float:
    """The paper's linear MMD: the squared distance between the mean vectors of two samples.

    ``MMD_lin = || mean(x) - mean(y) ||^2``, the (biased) MMD^2 with the linear kernel. It is 0
    for two samples with the same mean (in particular for identical sets).

    Parameters
    ----------
    x, y : array-like, shape (N, D) and (M, D)
        Stars in a normalised, dimensionless space (see :class:`StarScaler`).

    Returns
    -------
    float
        Dimensionless, >= 0.
    """
    a, b = _pair(x, y)
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff)


def linear_mmd_matrix(means_a: Any, means_b: Any) -> np.ndarray:
    """Linear MMD between every pair of samples given their mean vectors.

    Parameters
    ----------
    means_a, means_b : array-like, shape (A, D) and (B, D)
        Mean vector of each sample in the normalised space (dimensionless).

    Returns
    -------
    numpy.ndarray, shape (A, B)
        ``|| means_a[i] - means_b[j] ||^2``.
    """
    a, b = _pair(means_a, means_b)
    diff = a[:, None, :] - b[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


# -- kernel MMD ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelMMDResult:
    """Result of :func:`kernel_mmd`.

    Attributes
    ----------
    mmd2 : float
        Unbiased estimate of MMD^2 with the Gaussian kernel (dimensionless; may be slightly
        negative when the samples are alike).
    p_value : float
        Permutation p-value, ``(1 + #{permuted >= observed}) / (1 + n_permutations)``.
    bandwidth : float
        Kernel width sigma in the normalised space, ``k = exp(-d^2 / (2 sigma^2))``.
    n_x, n_y : int
        Stars used from each sample (after subsampling).
    n_permutations : int
        Number of label permutations.
    """

    mmd2: float
    p_value: float
    bandwidth: float
    n_x: int
    n_y: int
    n_permutations: int


def _subsample(arr: np.ndarray, max_points: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_points is None or arr.shape[0] <= max_points:
        return arr
    return arr[np.sort(rng.choice(arr.shape[0], size=max_points, replace=False))]


def _squared_distances(z: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", z, z)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def median_bandwidth(z: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """Median heuristic: the median pairwise Euclidean distance of (a subsample of) ``z``.

    Parameters
    ----------
    z : numpy.ndarray, shape (N, D)
        Pooled sample in the normalised space (dimensionless).
    max_points : int
        Use at most this many points (seeded subsample).
    seed : int
        Seed of the subsample.

    Returns
    -------
    float
        The kernel width (dimensionless, > 0).
    """
    pts = _subsample(z, max_points, np.random.default_rng(seed))
    d2 = _squared_distances(pts)
    upper = d2[np.triu_indices(pts.shape[0], k=1)]
    med = float(np.sqrt(np.median(upper))) if upper.size else 0.0
    if not med > 0:
        raise ValueError("all points coincide: the median heuristic gives no kernel width")
    return med


def kernel_mmd(
    x: Any,
    y: Any,
    *,
    n_permutations: int = 200,
    bandwidth: float | None = None,
    max_points: int | None = 1000,
    seed: int = 0,
) -> KernelMMDResult:
    """Gaussian-kernel MMD^2 between two samples with a permutation p-value.

    The statistic is the unbiased U-statistic of Gretton et al. (2012),
    ``MMD^2_u = sum_{i!=j} k(x_i, x_j)/(n(n-1)) + sum_{i!=j} k(y_i, y_j)/(m(m-1))
    - 2 sum_{i,j} k(x_i, y_j)/(n m)``, with ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))`` and sigma
    from the median heuristic on the pooled sample. Its null distribution comes from
    ``n_permutations`` random relabellings of the pooled sample (one kernel matrix, reused).

    Parameters
    ----------
    x, y : array-like, shape (N, D) and (M, D)
        Stars in a normalised, dimensionless space (see :class:`StarScaler`); at least two
        of each.
    n_permutations : int
        Random relabellings for the p-value (>= 1); p-values are multiples of
        ``1 / (n_permutations + 1)``.
    bandwidth : float, optional
        Kernel width sigma (dimensionless); default the median heuristic.
    max_points : int or None
        Use a seeded subsample of at most this many stars of each sample (memory and time grow
        as the square of the pooled size); None uses all.
    seed : int
        Seed of the subsamples and of the permutations.

    Returns
    -------
    KernelMMDResult
    """
    n_permutations = _positive_int(n_permutations, "n_permutations")
    if max_points is not None:
        max_points = _positive_int(max_points, "max_points", 2)
    a, b = _pair(x, y, min_rows=2)
    rng = np.random.default_rng(seed)
    a, b = _subsample(a, max_points, rng), _subsample(b, max_points, rng)
    z = np.concatenate([a, b])
    n, m = a.shape[0], b.shape[0]
    if bandwidth is None:
        bandwidth = median_bandwidth(z, seed=seed)
    elif not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    kernel = np.exp(-_squared_distances(z) / (2.0 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)  # the U-statistic leaves out i == j
    total = kernel.sum()
    row = kernel.sum(axis=1)

    def statistic(labels: np.ndarray) -> np.ndarray:
        # labels: (P, n + m) indicators of "x"; every sum from one matrix product.
        s_xx = np.einsum("pi,pi->p", labels, labels @ kernel)
        s_x_all = labels @ row
        s_xy = s_x_all - s_xx
        s_yy = total - 2.0 * s_x_all + s_xx
        return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)

    observed_labels = np.zeros((1, n + m))
    observed_labels[0, :n] = 1.0
    observed = float(statistic(observed_labels)[0])
    exceed = 0
    block = 64
    for start in range(0, n_permutations, block):
        count = min(block, n_permutations - start)
        labels = np.zeros((count, n + m))
        for p in range(count):
            labels[p, rng.permutation(n + m)[:n]] = 1.0
        exceed += int(np.sum(statistic(labels) >= observed - 1e-12 * abs(observed)))
    p_value = (1 + exceed) / (1 + n_permutations)
    return KernelMMDResult(observed, p_value, float(bandwidth), n, m, n_permutations)


# -- classifier two-sample test -----------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierResult:
    """Result of :func:`classifier_test`.

    Attributes
    ----------
    auc : float
        ROC AUC of the classifier on held-out stars (0.5: indistinguishable, 1: separated).
    auc_err : float
        Its standard error (Hanley & McNeil 1982).
    n_train, n_test : int
        Stars (both classes together) used for training and for the AUC.
    """

    auc: float
    auc_err: float
    n_train: int
    n_test: int


def roc_auc(scores_positive: Any, scores_negative: Any) -> float:
    """ROC AUC: the probability that a positive scores above a negative (ties count half).

    Parameters
    ----------
    scores_positive, scores_negative : array-like, 1-D
        Classifier scores (any monotone scale) of the two classes.

    Returns
    -------
    float
        The Mann-Whitney U statistic divided by ``n_pos * n_neg``.
    """
    from scipy.stats import rankdata

    pos = np.asarray(scores_positive, dtype=float).ravel()
    neg = np.asarray(scores_negative, dtype=float).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("roc_auc needs at least one score of each class")
    ranks = rankdata(np.concatenate([pos, neg]))
    u_stat = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u_stat / (pos.size * neg.size))


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an ROC AUC (Hanley & McNeil 1982).

    ``SE^2 = [A(1-A) + (n_pos-1)(Q1-A^2) + (n_neg-1)(Q2-A^2)] / (n_pos n_neg)`` with
    ``Q1 = A/(2-A)`` and ``Q2 = 2A^2/(1+A)``; at ``A = 0.5`` it is close to the exact null value
    ``sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))``.

    Parameters
    ----------
    auc : float
        The AUC (dimensionless, in [0, 1]).
    n_pos, n_neg : int
        Number of scores in each class.

    Returns
    -------
    float
        The standard error (dimensionless).
    """
    a = float(auc)
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return float(math.sqrt(max(var, 0.0)))


def classifier_test(
    x: Any,
    y: Any,
    *,
    hidden: int = 64,
    epochs: int = 150,
    lr: float = 3e-3,
    test_fraction: float = 0.5,
    max_points: int | None = 2000,
    seed: int = 0,
) -> ClassifierResult:
    """Classifier two-sample test: can a small network tell ``x`` stars from ``y`` stars?

    Both samples are cut to the same size (seeded), split into training and test stars, and a
    two-hidden-layer MLP (ReLU, ``hidden`` units) is trained full-batch with Adam on the binary
    cross-entropy. The ROC AUC of its scores on the test stars (``x`` positive) estimates how
    distinguishable the samples are: 0.5 for identical distributions (then the test scores of
    both classes are exchangeable, and the AUC follows the Mann-Whitney null distribution), 1 for
    separable ones. Torch's thread settings are left as the caller set them.

    Parameters
    ----------
    x, y : array-like, shape (N, D) and (M, D)
        Stars in a normalised, dimensionless space (see :class:`StarScaler`).
    hidden : int
        Units per hidden layer.
    epochs : int
        Full-batch optimisation steps.
    lr : float
        Adam learning rate.
    test_fraction : float
        Share of the stars kept out of training for the AUC, in (0, 1).
    max_points : int or None
        At most this many stars of each sample (seeded subsample); None uses all.
    seed : int
        Seed of the subsample, the split and the initial weights.

    Returns
    -------
    ClassifierResult
    """
    import torch

    hidden = _positive_int(hidden, "hidden")
    epochs = _positive_int(epochs, "epochs")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    a, b = _pair(x, y, min_rows=4)
    rng = np.random.default_rng(seed)
    size = min(a.shape[0], b.shape[0], max_points or max(a.shape[0], b.shape[0]))
    a = a[rng.permutation(a.shape[0])[:size]]
    b = b[rng.permutation(b.shape[0])[:size]]
    n_test = max(2, int(round(size * float(test_fraction))))
    if size - n_test < 2:
        raise ValueError(f"{size} stars per sample are too few to train and test a classifier")
    train_x = np.concatenate([a[n_test:], b[n_test:]])
    train_y = np.concatenate([np.ones(size - n_test), np.zeros(size - n_test)])
    # Standardise on the training stars only (the test stars stay unseen).
    mu, sd = train_x.mean(axis=0), train_x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)

    generator = torch.Generator().manual_seed(int(seed))
    dim = a.shape[1]
    net = torch.nn.Sequential(
        torch.nn.Linear(dim, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )
    with torch.no_grad():
        for p in net.parameters():
            bound = 1.0 / math.sqrt(p.shape[-1]) if p.dim() > 1 else 0.05
            p.uniform_(-bound, bound, generator=generator)
    inputs = torch.from_numpy((train_x - mu) / sd).float()
    targets = torch.from_numpy(train_y).float()
    opt = torch.optim.Adam(net.parameters(), lr=float(lr))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(net(inputs).squeeze(1), targets)
        loss.backward()
        opt.step()
    with torch.no_grad():
        score_a = net(torch.from_numpy((a[:n_test] - mu) / sd).float()).squeeze(1).numpy()
        score_b = net(torch.from_numpy((b[:n_test] - mu) / sd).float()).squeeze(1).numpy()
    auc = roc_auc(score_a, score_b)
    return ClassifierResult(auc, auc_standard_error(auc, n_test, n_test), 2 * (size - n_test),
                            2 * n_test)

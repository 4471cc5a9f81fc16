"""Sums of ratios of means over independent rows, their per-row contributions, and percentile-bootstrap
intervals for them.

Every estimator in this package has the form

    V = sum_m (sum_i N[i, m]) / (sum_i D[i, m])

over rows i (decisions or trajectories), with ``D[:, m] = 1`` for a plain average and ``D[:, m]`` an
importance weight for a self-normalised term. Writing estimators this way lets the bootstrap redo the
self-normalisation inside each replicate instead of freezing it at its full-sample value. A ratio whose
denominator sums to zero is taken as 0 (its numerator, a weighted sum with the same weights, is then 0 too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bootstrap counts are drawn in chunks of at most this many entries (chunk * n) to bound memory.
MAX_COUNT_ENTRIES = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (1 - alpha) bootstrap confidence interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _ratios(numerator_sums: np.ndarray, denominator_sums: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator_sums / denominator_sums`` with 0 where the denominator is 0."""
    return np.divide(numerator_sums, denominator_sums, out=np.zeros_like(numerator_sums), where=denominator_sums > 0)


def ratio_contributions(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Per-row contributions ``c_i = sum_m N[i, m] / mean_j D[j, m]`` (n,) float64, whose mean is V.

    :param numerator: (n, m) float64.
    :param denominator: (n, m) float64, non-negative.
    """
    return (numerator * _ratios(np.ones(numerator.shape[1]), denominator.mean(axis=0))).sum(axis=1)


def bootstrap_interval(
    numerator: np.ndarray,
    denominator: np.ndarray,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    random_state: int | np.random.Generator | None = 0,
    groups: np.ndarray | None = None,
) -> Interval:
    """Nonparametric percentile bootstrap of V over rows (Efron & Tibshirani 1993), or over clusters.

    Each replicate resamples the n rows with replacement, as multinomial counts ``C (n,)``, and
    recomputes ``V* = sum_m (C @ N[:, m]) / (C @ D[:, m])``; the interval is the ``alpha / 2`` and
    ``1 - alpha / 2`` quantiles of the replicates, ``mean`` is V on the full sample.

    With ``groups`` (n,) int (e.g. the customer of each decision), rows of one group are summed first
    and whole groups are resampled (the cluster bootstrap, Davison & Hinkley 1997, sec. 3.8): decisions
    of one customer are correlated, and resampling them one by one makes the interval too narrow.
    V itself is unchanged, as sums over groups add up to sums over rows.

    :param numerator: (n, m) float64.
    :param denominator: (n, m) float64, non-negative.
    :param alpha: miscoverage in (0, 1).
    :param n_bootstrap: number of replicates, >= 1.
    :param random_state: seed or generator for the resampling.
    :param groups: (n,) int >= 0, the cluster of each row; None resamples rows.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (numerator.shape[0],) or not np.issubdtype(groups.dtype, np.integer) or (groups < 0).any():
            raise ValueError(f"groups must be (n,) = ({numerator.shape[0]},) non-negative integers")
        _, groups = np.unique(groups, return_inverse=True)
        numerator, denominator = (
            np.stack([np.bincount(groups, weights=a[:, j]) for j in range(a.shape[1])], axis=1) for a in (numerator, denominator)
        )
    n = numerator.shape[0]
    rng = np.random.default_rng(random_state)
    chunk = max(1, min(n_bootstrap, MAX_COUNT_ENTRIES // n))
    replicates = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        draws = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        replicates[start : start + size] = _ratios(counts @ numerator, counts @ denominator).sum(axis=1)
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Interval(float(ratio_contributions(numerator, denominator).mean()), float(low), float(high))

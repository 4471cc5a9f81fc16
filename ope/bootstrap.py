"""Sums of ratios of means over independent rows, their per-row contributions, their delta-method
standard errors, and bootstrap intervals for them.

Every estimator in this package has the form

    V = sum_m (sum_i N[i, m]) / (sum_i D[i, m])

over rows i (decisions or trajectories), with ``D[:, m] = 1`` for a plain average and ``D[:, m]`` an
importance weight for a self-normalised term. Writing estimators this way lets the bootstrap redo the
self-normalisation inside each replicate instead of freezing it at its full-sample value. A ratio whose
denominator sums to zero is taken as 0 (its numerator, a weighted sum with the same weights, is then 0 too).

Two intervals:

* ``"percentile"``: the ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the replicates ``V*``
  (Efron & Tibshirani 1993, ch. 13).
* ``"studentized"`` (bootstrap-t; Efron & Tibshirani 1993, ch. 12; Hall 1988): each replicate is
  standardised by its own delta-method standard error, ``t* = (V* - V) / se(V*)``, and the interval is
  ``[V - t*_(1 - alpha/2) se(V), V - t*_(alpha/2) se(V)]``. Off-policy contributions are sums of purchases
  times importance weights per customer: right-skewed and heavy-tailed (a few customers carry much of the
  variance). Then a sample's estimate and its standard error move together (a sample short of big spenders
  is low *and* looks precise), and the percentile interval, which inherits the replicates' shape but not
  that dependence, misses mostly on the low side. The studentized interval is second-order accurate for
  skewed statistics where the percentile one is only first-order (Hall 1988), and here it comes at no
  extra simulation cost: the delta-method variance of a replicate is a quadratic form in the same
  resampling counts (see :func:`delta_method_se`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from offerpilot.errors import InputError

# Bootstrap counts are drawn in chunks of at most this many entries (chunk * n) to bound memory.
MAX_COUNT_ENTRIES = 1 << 22

IntervalMethod = Literal["studentized", "percentile"]
INTERVAL_METHODS: tuple[str, ...] = ("studentized", "percentile")


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


def delta_method_se(numerator: np.ndarray, denominator: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Delta-method (sandwich) standard error of V, ``sqrt(sum_i phi_i^2 / (n (n - 1)))``, on the sample or,
    with ``counts`` (k, n), on each of k resamples that take row i ``counts[j, i]`` times.

    ``phi`` is linear in ``z_i = [N[i], D[i]]`` given the resample's ratios, so
    ``sum_i c_i phi_i^2 = u' (sum_i c_i z_i z_i') u``: one product of the counts with the rows' outer
    products, whatever the number of replicates. Returns (k,) float64, or a (1,) array without counts.
    """
    n = numerator.shape[0]
    counts = np.ones((1, n)) if counts is None else counts
    sum_n, sum_d = counts @ numerator, counts @ denominator  # (k, m)
    scale = _ratios(np.full(sum_d.shape, float(n)), sum_d)  # 1 / mean D per replicate
    u = np.concatenate([scale, -_ratios(sum_n, sum_d) * scale], axis=1)  # phi_i = u . z_i
    z = np.concatenate([numerator, denominator], axis=1)  # (n, 2m)
    outer = (z[:, :, None] * z[:, None, :]).reshape(n, -1)
    second = (counts @ outer).reshape(counts.shape[0], z.shape[1], z.shape[1])
    sum_sq = np.einsum("ki,kij,kj->k", u, second, u)
    return np.sqrt(np.maximum(sum_sq, 0.0) / (n * max(n - 1, 1)))


def bootstrap_interval(
    numerator: np.ndarray,
    denominator: np.ndarray,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    random_state: int | np.random.Generator | None = 0,
    groups: np.ndarray | None = None,
    method: IntervalMethod = "studentized",
) -> Interval:
    """Nonparametric bootstrap interval of V over rows (Efron & Tibshirani 1993), or over clusters.

    Each replicate resamples the n rows with replacement, as multinomial counts ``C (n,)``, and
    recomputes ``V* = sum_m (C @ N[:, m]) / (C @ D[:, m])``; ``mean`` is V on the full sample. The
    interval is the studentized one (default) or the percentile one; see the module docstring.

    With ``groups`` (n,) int (e.g. the customer of each decision), rows of one group are summed first
    and whole groups are resampled (the cluster bootstrap, Davison & Hinkley 1997, sec. 3.8): decisions
    of one customer are correlated, and resampling them one by one makes the interval too narrow.
    V itself is unchanged, as sums over groups add up to sums over rows; the standard errors are then
    cluster-robust (sums of squared per-group influence values).

    :param numerator: (n, m) float64.
    :param denominator: (n, m) float64, non-negative.
    :param alpha: miscoverage in (0, 1).
    :param n_bootstrap: number of replicates, >= 1.
    :param random_state: seed or generator for the resampling.
    :param groups: (n,) int >= 0, the cluster of each row; None resamples rows.
    :param method: ``"studentized"`` or ``"percentile"``. Both use the same replicates, so with the same
        seed they differ only in how the replicates become an interval. Where the sample's standard error
        is 0 (every row contributes alike) the studentized interval falls back to the percentile one.
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if method not in INTERVAL_METHODS:
        raise InputError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
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
    replicate_se = np.empty(n_bootstrap) if method == "studentized" else None
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        draws = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        replicates[start : start + size] = _ratios(counts @ numerator, counts @ denominator).sum(axis=1)
        if replicate_se is not None:
            replicate_se[start : start + size] = delta_method_se(numerator, denominator, counts)
    value = float(ratio_contributions(numerator, denominator).mean())
    se = float(delta_method_se(numerator, denominator)[0]) if replicate_se is not None else 0.0
    if replicate_se is None or not se > 0:
        low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
        return Interval(value, float(low), float(high))
    # A replicate with no spread of its own (all its rows alike) but a different value gets t = +-inf:
    # with so few distinct rows nothing bounds the error. inverted_cdf picks order statistics, so an
    # infinite t makes an infinite end rather than a nan from interpolating towards it.
    diff = replicates - value
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(replicate_se > 0, diff / replicate_se, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    t_low, t_high = np.quantile(t, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return Interval(value, float(value - t_high * se), float(value - t_low * se))

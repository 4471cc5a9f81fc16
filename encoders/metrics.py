"""Ranking and calibration metrics for churn and CLV predictions, with customer-resampling bootstrap intervals.

Every metric takes ``(y_true, y_score)`` arrays of shape ``(..., n)`` (``n`` customers on the last axis; leading
axes broadcast) and returns one float64 value per leading index, so the same function scores one model on all
customers (1-D inputs give a 0-d array) and a whole batch of bootstrap resamples at once. Ties in ``y_score``
are handled by midranks or tie-group averages: a metric never depends on the order of tied customers.

:func:`bootstrap` resamples customers with replacement (Efron & Tibshirani 1993) and returns the estimate with
a 95 % percentile interval; :func:`paired_bootstrap` scores two models on the same resamples and returns their
difference, which is what "model A beats model B" needs (the two models' errors are correlated across customers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]
_CHUNK_ELEMENTS = 2_000_000
"""Bootstrap resamples are scored in chunks of about this many (resample, customer) entries, to bound memory."""


@dataclass(frozen=True)
class Interval:
    """A point estimate on all customers and its bootstrap percentile interval."""

    estimate: float
    """The metric on the observed customers (mean over models when several score rows are given)."""
    low: float
    """Lower percentile of the bootstrap distribution (2.5 % for a 95 % interval)."""
    high: float
    """Upper percentile (97.5 %)."""


def churn_auc(churn: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC of ``score`` for ``churn`` (1 = churned), via the Mann-Whitney statistic on midranks.

    ``AUC = (sum of the positives' ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``; tied scores count one
    half, as in :func:`sklearn.metrics.roc_auc_score`. NaN when a row holds one class only.
    """
    churn, score = _broadcast(churn, score)
    n_pos = churn.sum(-1)
    n_neg = churn.shape[-1] - n_pos
    rank_sum = (rankdata(score, axis=-1) * churn).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def churn_pr_auc(churn: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Area under the precision-recall curve as average precision, ``AP = sum_k (R_k - R_{k-1}) P_k``.

    Thresholds are the distinct scores, so a group of tied customers enters at once; equivalently each positive
    contributes the precision at the end of its tie group, divided by the number of positives. Matches
    :func:`sklearn.metrics.average_precision_score`. A constant score gets the positive rate.
    """
    churn, score = _broadcast(churn, score)
    order = np.argsort(-score, axis=-1, kind="stable")
    sorted_score = np.take_along_axis(score, order, -1)
    positive = np.take_along_axis(churn, order, -1)
    precision = np.cumsum(positive, -1) / np.arange(1, churn.shape[-1] + 1)
    at_end = np.take_along_axis(precision, _tie_group_ends(sorted_score), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (positive * at_end).sum(-1) / positive.sum(-1)


def spearman(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Spearman rank correlation: the Pearson correlation of midranks (as :func:`scipy.stats.spearmanr`)."""
    actual, predicted = _broadcast(actual, predicted)
    a = rankdata(actual, axis=-1)
    p = rankdata(predicted, axis=-1)
    a -= a.mean(-1, keepdims=True)
    p -= p.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a * p).sum(-1) / np.sqrt((a * a).sum(-1) * (p * p).sum(-1))


def normalised_gini(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Gini of the prediction's ordering over the Gini of the perfect ordering: 1 perfect, 0 random, -1 reversed.

    With customers sorted by prediction, highest first, and ``L(k)`` the share of total actual value in the top
    ``k``, ``Gini = sum_k L(k) / n - (n + 1) / (2 n)``. Since ``sum_k L(k) = sum_i a_i r_i / sum_i a_i`` with
    ``r_i`` the ascending rank of customer ``i``'s prediction, ``Gini`` is proportional to
    ``sum_i a_i (r_i - (n + 1) / 2)``; midranks average over the orders of tied predictions.
    """
    actual, predicted = _broadcast(actual, predicted)
    centre = (actual.shape[-1] + 1) / 2
    model = (actual * (rankdata(predicted, axis=-1) - centre)).sum(-1)
    perfect = (actual * (rankdata(actual, axis=-1) - centre)).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return model / perfect


def top_decile_share(actual: np.ndarray, predicted: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Share of total actual value held by the ``round(fraction n)`` customers with the highest predictions.

    Tied predictions that straddle the cut contribute their group's mean value per place, the expectation over
    random tie-breaks (a constant prediction captures ``fraction`` of the value, up to rounding).
    """
    actual, predicted = _broadcast(actual, predicted)
    n = actual.shape[-1]
    k = min(max(int(round(fraction * n)), 1), n)
    order = np.argsort(-predicted, axis=-1, kind="stable")
    value = np.take_along_axis(actual, order, -1)
    cumulative = np.concatenate([np.zeros(value.shape[:-1] + (1,)), np.cumsum(value, -1)], -1)
    sorted_prediction = np.take_along_axis(predicted, order, -1)
    ends = _tie_group_ends(sorted_prediction)[..., k - 1]
    starts = _tie_group_starts(sorted_prediction)[..., k - 1]
    before = np.take_along_axis(cumulative, starts[..., None], -1)[..., 0]
    group = np.take_along_axis(cumulative, ends[..., None] + 1, -1)[..., 0] - before
    captured = before + group * (k - starts) / (ends - starts + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return captured / cumulative[..., -1]


def aggregate_relative_error(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Signed relative error of the total, ``sum(predicted) / sum(actual) - 1`` (0.1 = 10 % too high)."""
    actual, predicted = _broadcast(actual, predicted)
    with np.errstate(divide="ignore", invalid="ignore"):
        return predicted.sum(-1) / actual.sum(-1) - 1.0


def mae(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean absolute error per customer, ``mean |predicted - actual|``."""
    actual, predicted = _broadcast(actual, predicted)
    return np.abs(predicted - actual).mean(-1)


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) int64: customer indices drawn with replacement; the same ``seed`` gives the same resamples."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_draws(metric: Metric, y_true: np.ndarray, y_score: np.ndarray, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot,) ``metric`` on each of ``n_boot`` customer resamples, scored in memory-bounded chunks.

    :param y_true: (n,) the outcome.
    :param y_score: (n,) one model's prediction, or (s, n) several (e.g. one per training seed): then each draw
        is the metric averaged over the ``s`` rows on that resample.
    Resamples depend on ``n``, ``n_boot`` and ``seed`` only, so two models scored with one seed share them.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    scores = np.atleast_2d(np.asarray(y_score, dtype=np.float64))
    if y_true.ndim != 1 or scores.ndim != 2 or scores.shape[-1] != y_true.shape[-1]:
        raise ValueError(f"y_true must be (n,) and y_score (n,) or (s, n), got {y_true.shape} and {np.shape(y_score)}")
    n = y_true.shape[-1]
    indices = resample_indices(n, n_boot, seed)
    chunk = max(1, _CHUNK_ELEMENTS // (n * len(scores)))
    splits = np.array_split(indices, range(chunk, n_boot, chunk))
    return np.concatenate([metric(y_true[rows][None], scores[:, rows]).mean(0) for rows in splits])


def estimate(metric: Metric, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """``metric`` on the observed customers; averaged over the rows of a (s, n) ``y_score``."""
    scores = np.atleast_2d(np.asarray(y_score, dtype=np.float64))
    return float(metric(np.asarray(y_true, dtype=np.float64)[None], scores).mean())


def percentile_interval(point: float, draws: np.ndarray, level: float = 0.95) -> Interval:
    """``point`` with the central ``level`` percentile interval of its bootstrap ``draws``."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def bootstrap(metric: Metric, y_true: np.ndarray, y_score: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """``metric`` on all customers with its percentile interval over ``n_boot`` customer resamples.

    Shapes as in :func:`bootstrap_draws`: a (s, n) ``y_score`` gives the interval of the metric's mean over rows.
    """
    draws = bootstrap_draws(metric, y_true, y_score, n_boot, seed)
    return percentile_interval(estimate(metric, y_true, y_score), draws, level)


def paired_bootstrap(
    metric: Metric,
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """``metric(a) - metric(b)`` on all customers, with its interval over resamples shared by both models.

    Scoring both models on the same resampled customers keeps their correlation, so the interval is that of the
    difference itself (narrower than comparing two separate intervals). Shapes as in :func:`bootstrap_draws`.
    """
    draws = bootstrap_draws(metric, y_true, score_a, n_boot, seed) - bootstrap_draws(metric, y_true, score_b, n_boot, seed)
    point = estimate(metric, y_true, score_a) - estimate(metric, y_true, score_b)
    return percentile_interval(point, draws, level)


def _broadcast(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64, broadcast to one shape ``(..., n)``."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError("metrics need at least one customer on the last axis")
    return a, b


def _tie_group_ends(sorted_values: np.ndarray) -> np.ndarray:
    """For each position of rows sorted along the last axis, the last position holding the same value."""
    n = sorted_values.shape[-1]
    is_end = np.concatenate([sorted_values[..., 1:] != sorted_values[..., :-1], np.ones(sorted_values.shape[:-1] + (1,), bool)], -1)
    ends = np.where(is_end, np.arange(n), n)
    return np.flip(np.minimum.accumulate(np.flip(ends, -1), -1), -1)


def _tie_group_starts(sorted_values: np.ndarray) -> np.ndarray:
    """For each position of rows sorted along the last axis, the first position holding the same value."""
    is_start = np.concatenate([np.ones(sorted_values.shape[:-1] + (1,), bool), sorted_values[..., 1:] != sorted_values[..., :-1]], -1)
    return np.maximum.accumulate(np.where(is_start, np.arange(sorted_values.shape[-1]), 0), -1)

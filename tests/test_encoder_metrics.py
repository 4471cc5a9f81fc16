"""Churn and CLV metrics against hand-computed values and reference implementations, and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from offerpilot.encoders.metrics import (
    aggregate_relative_error,
    bootstrap,
    churn_auc,
    churn_pr_auc,
    mae,
    normalised_gini,
    paired_bootstrap,
    resample_indices,
    spearman,
    top_decile_share,
)


@pytest.fixture(scope="module")
def tied_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """500 customers: churn labels, a churn score with many ties, and a spend with many zeros."""
    rng = np.random.default_rng(7)
    churn = (rng.random(500) < 0.7).astype(float)
    score = np.round(churn * 0.3 + rng.random(500), 1)
    spend = np.where(rng.random(500) < 0.3, rng.lognormal(3.0, 1.0, 500), 0.0)
    return churn, score, spend


def test_auc_hand_example() -> None:
    # positives score 0.8 and 0.4, negatives 0.5 and 0.1: 3 of the 4 pairs are ordered right
    assert churn_auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.5, 0.1])) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half
    assert churn_auc(np.array([1, 0]), np.array([0.3, 0.3])) == pytest.approx(0.5)


def test_pr_auc_hand_example() -> None:
    # ranked 1, 0, 1: the positives come at precision 1/1 and 2/3
    assert churn_pr_auc(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx((1 + 2 / 3) / 2)
    # a constant score gets the positive rate
    assert churn_pr_auc(np.array([1, 0, 1, 1]), np.zeros(4)) == pytest.approx(0.75)


def test_churn_metrics_match_sklearn_with_ties(tied_data) -> None:
    churn, score, _ = tied_data
    assert churn_auc(churn, score) == pytest.approx(roc_auc_score(churn, score), abs=1e-12)
    assert churn_pr_auc(churn, score) == pytest.approx(average_precision_score(churn, score), abs=1e-12)


def test_spearman_matches_scipy_with_ties(tied_data) -> None:
    _, score, spend = tied_data
    assert spearman(spend, score) == pytest.approx(spearmanr(spend, score).statistic, abs=1e-12)


def test_normalised_gini_perfect_reversed_and_hand_example() -> None:
    actual = np.array([0.0, 5.0, 1.0, 10.0, 2.0])
    assert normalised_gini(actual, actual) == pytest.approx(1.0)
    assert normalised_gini(actual, -actual) == pytest.approx(-1.0)
    # Gini = sum_k L(k) / n - (n + 1) / (2 n) with L the cumulative share, highest prediction first
    predicted = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # order 2, 10, 1, 5, 0 of 18 in all
    model = (np.cumsum([2, 10, 1, 5, 0]) / 18).sum() / 5 - 0.6
    perfect = (np.cumsum([10, 5, 2, 1, 0]) / 18).sum() / 5 - 0.6
    assert normalised_gini(actual, predicted) == pytest.approx(model / perfect)


def test_normalised_gini_of_a_constant_is_zero() -> None:
    assert normalised_gini(np.array([0.0, 5.0, 1.0, 10.0]), np.ones(4)) == pytest.approx(0.0)


def test_top_decile_share_hand_example() -> None:
    actual = np.array([100.0, 0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] * 2)  # 300 in all
    predicted = np.arange(20.0)[::-1]  # customer 0 first, then 1, ...: the top 2 are customers 0 and 1
    assert top_decile_share(actual, predicted) == pytest.approx(100 / 300)
    assert top_decile_share(actual, -predicted) == pytest.approx(0.0)
    assert top_decile_share(actual, actual) == pytest.approx(200 / 300)


def test_top_decile_share_averages_ties_at_the_cut() -> None:
    actual = np.array([10.0, 0.0, 30.0, 60.0])
    # one place of the top 1 (round(0.25 * 4)), three customers tied for it: the mean of their values
    predicted = np.array([1.0, 1.0, 1.0, 0.0])
    assert top_decile_share(actual, predicted, fraction=0.25) == pytest.approx((40 / 3) / 100)


def test_aggregate_error_and_mae() -> None:
    actual, predicted = np.array([1.0, 3.0]), np.array([2.0, 4.0])
    assert aggregate_relative_error(actual, predicted) == pytest.approx(0.5)
    assert mae(actual, predicted) == pytest.approx(1.0)


def test_metrics_score_rows_of_a_batch_independently(tied_data) -> None:
    churn, score, spend = tied_data
    rows = np.stack([score, -score, spend])
    for metric, y in ((churn_auc, churn), (churn_pr_auc, churn), (spearman, spend), (normalised_gini, spend), (top_decile_share, spend)):
        batched = metric(y[None], rows)
        assert batched.shape == (3,)
        np.testing.assert_allclose(batched, [metric(y, r) for r in rows], rtol=0, atol=1e-12)


def test_bootstrap_contains_estimate_and_is_deterministic(tied_data) -> None:
    churn, score, _ = tied_data
    first = bootstrap(churn_auc, churn, score, n_boot=200, seed=3)
    assert first.estimate == pytest.approx(roc_auc_score(churn, score))
    assert first.low < first.estimate < first.high
    assert bootstrap(churn_auc, churn, score, n_boot=200, seed=3) == first
    assert bootstrap(churn_auc, churn, score, n_boot=200, seed=4) != first


def test_bootstrap_draws_match_a_loop_over_resamples(tied_data) -> None:
    _, score, spend = tied_data
    indices = resample_indices(len(spend), 40, seed=5)
    draws = np.array([normalised_gini(spend[i], score[i]) for i in indices])
    interval = bootstrap(normalised_gini, spend, score, n_boot=40, seed=5)
    assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])))


def test_bootstrap_of_several_seeds_averages_their_metric(tied_data) -> None:
    _, score, spend = tied_data
    interval = bootstrap(spearman, spend, np.stack([score, spend]), n_boot=50, seed=0)
    assert interval.estimate == pytest.approx((spearman(spend, score) + 1.0) / 2)


def test_paired_difference_of_a_model_with_itself_is_zero(tied_data) -> None:
    churn, score, _ = tied_data
    interval = paired_bootstrap(churn_pr_auc, churn, score, score, n_boot=100, seed=1)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_paired_difference_is_narrower_than_either_interval(tied_data) -> None:
    churn, score, _ = tied_data
    rng = np.random.default_rng(0)
    noisy = score + rng.normal(0, 0.05, len(score))
    a = bootstrap(churn_auc, churn, score, n_boot=300, seed=2)
    b = bootstrap(churn_auc, churn, noisy, n_boot=300, seed=2)
    diff = paired_bootstrap(churn_auc, churn, score, noisy, n_boot=300, seed=2)
    assert diff.estimate == pytest.approx(a.estimate - b.estimate)
    assert diff.high - diff.low < min(a.high - a.low, b.high - b.low)


def test_bootstrap_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="y_true must be"):
        bootstrap(mae, np.zeros(3), np.zeros(4), n_boot=5)

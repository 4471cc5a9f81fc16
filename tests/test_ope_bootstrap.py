"""The bootstrap behind every OPE interval: chunked replicates, clustered rows (customers), the delta-method
standard errors of the studentized bootstrap, and its coverage on heavy-tailed customers where the percentile
interval falls short."""

from __future__ import annotations

import numpy as np
import pytest

from offerpilot.ope import InverseProbabilityWeighting, SelfNormalizedIPS
from offerpilot.ope.bootstrap import bootstrap_interval, delta_method_se


def test_bootstrap_in_chunks_matches_the_sampling_distribution_of_a_mean():
    # n large enough that replicates are drawn in several chunks; the interval of a mean of
    # standard normals must be close to mean -/+ 1.96 / sqrt(n).
    n = 20_000
    values = np.random.default_rng(1).normal(size=(n, 1))
    interval = bootstrap_interval(values, np.ones_like(values), n_bootstrap=2000, random_state=0)
    half_width = 1.959964 * values.std() / np.sqrt(n)
    assert interval.high - interval.mean == pytest.approx(half_width, rel=0.1)
    assert interval.mean - interval.low == pytest.approx(half_width, rel=0.1)


def test_cluster_bootstrap_keeps_the_estimate_and_widens_for_correlated_rows():
    """Grouping rows by cluster leaves the point estimate unchanged; with strongly correlated rows
    within clusters the cluster interval is much wider than the row interval, and with one row per
    cluster it equals the row bootstrap."""
    rng = np.random.default_rng(4)
    n_clusters, per = 300, 20
    groups = np.repeat(np.arange(n_clusters), per)
    reward = np.repeat(rng.normal(0, 1, n_clusters), per) + rng.normal(0, 0.1, n_clusters * per)  # cluster effects
    n, k = reward.size, 3
    action = rng.integers(0, k, n)
    pscore = np.full(n, 1 / k)
    target = np.full((n, k), 1 / k)
    ips = InverseProbabilityWeighting()
    rows = ips.estimate_interval(reward, action, pscore, target, n_bootstrap=400)
    clusters = ips.estimate_interval(reward, action, pscore, target, n_bootstrap=400, groups=groups)
    assert clusters.mean == pytest.approx(rows.mean)
    assert (clusters.high - clusters.low) > 3 * (rows.high - rows.low)
    singletons = ips.estimate_interval(reward, action, pscore, target, n_bootstrap=400, groups=np.arange(n))
    assert (singletons.low, singletons.high) == pytest.approx((rows.low, rows.high), rel=0.05)
    with pytest.raises(ValueError, match="groups must be"):
        ips.estimate_interval(reward, action, pscore, target, groups=np.arange(n) - 1)


def test_delta_method_se_of_a_mean_and_of_a_ratio_by_hand():
    rng = np.random.default_rng(8)
    values = rng.normal(size=(50, 1))
    assert delta_method_se(values, np.ones_like(values))[0] == pytest.approx(values.std(ddof=1) / np.sqrt(50), rel=1e-12)
    # SNIPS: sum(w r) / sum(w), whose linearisation is w_i (r_i - V) / mean(w).
    weight, reward = rng.exponential(size=50), rng.normal(size=50)
    ratio = (weight * reward).sum() / weight.sum()
    by_hand = np.sqrt(((weight * (reward - ratio) / weight.mean()) ** 2).sum() / (50 * 49))
    numerator, denominator = (weight * reward)[:, None], weight[:, None]
    assert delta_method_se(numerator, denominator)[0] == pytest.approx(by_hand, rel=1e-12)


def test_replicate_standard_errors_are_those_of_the_resampled_rows():
    """The quadratic form over counts gives, for every replicate, the standard error of the rows it
    resampled (each row repeated as often as drawn), for a sum of a plain and a self-normalised term."""
    rng = np.random.default_rng(9)
    n = 40
    numerator = rng.normal(size=(n, 2))
    denominator = np.stack([np.ones(n), rng.exponential(size=n)], axis=1)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=5).astype(np.float64)
    fast = delta_method_se(numerator, denominator, counts)
    for k in range(5):
        rows = np.repeat(np.arange(n), counts[k].astype(int))
        assert fast[k] == pytest.approx(delta_method_se(numerator[rows], denominator[rows])[0], rel=1e-10)


# Customers with a heavy-tailed spend level (log-normal, sigma 1.5), 5 decisions each, uniform logging
# over 3 actions, the target always takes action 0; a decision's reward is the spend with probability 0.2.
SPEND_SIGMA, P_BUY, DECISIONS_PER_CUSTOMER = 1.5, 0.2, 5
SPEND_VALUE = P_BUY * np.exp(SPEND_SIGMA**2 / 2)  # the target's exact value: actions do not matter here


def spend_log(n_customers: int, rng: np.random.Generator) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    groups = np.repeat(np.arange(n_customers), DECISIONS_PER_CUSTOMER)
    n = groups.size
    spend = np.repeat(rng.lognormal(0.0, SPEND_SIGMA, n_customers), DECISIONS_PER_CUSTOMER)
    reward = spend * (rng.random(n) < P_BUY)
    target = np.zeros((n, 3))
    target[:, 0] = 1.0
    return (reward, rng.integers(0, 3, n), np.full(n, 1 / 3), target), groups


def test_studentized_interval_covers_heavy_tailed_customers_where_the_percentile_one_falls_short():
    """300 logs of 200 such customers: the per-customer contributions are as right-skewed as the
    simulator's, and a log short of big spenders is low *and* looks precise. The percentile interval then
    misses almost only on the low side (about 83 % coverage, 5 seeds of this study: 80-85 %); the studentized
    one covers about 90 % (89-92 %), with half as many low misses."""
    rng = np.random.default_rng(0)
    covered = {"percentile": 0, "studentized": 0}
    low_misses = dict.fromkeys(covered, 0)
    high_misses = dict.fromkeys(covered, 0)
    for replicate in range(300):
        log, groups = spend_log(200, rng)
        for method in covered:
            ci = SelfNormalizedIPS().estimate_interval(*log, n_bootstrap=200, random_state=replicate, groups=groups, method=method)
            covered[method] += ci.low <= SPEND_VALUE <= ci.high
            low_misses[method] += ci.high < SPEND_VALUE
            high_misses[method] += ci.low > SPEND_VALUE
    assert covered["studentized"] >= 261, covered  # 87 %
    assert covered["percentile"] <= covered["studentized"] - 12, covered
    assert low_misses["percentile"] >= 10 * max(high_misses["percentile"], 1), (low_misses, high_misses)
    assert low_misses["studentized"] <= 0.7 * low_misses["percentile"], low_misses


def test_studentized_interval_reaches_further_up_for_right_skewed_data():
    """On one such log the studentized interval is lopsided upwards (upper arm about twice the lower, 6 logs:
    1.8-2.6 x), more than the percentile interval from the same replicates (1.1-1.5 x), and its upper end
    lies beyond the percentile one by 0.4-0.8 of the percentile upper arm (6 logs)."""
    log, groups = spend_log(300, np.random.default_rng(2))
    ci = SelfNormalizedIPS().estimate_interval(*log, groups=groups, n_bootstrap=400)
    percentile = SelfNormalizedIPS().estimate_interval(*log, groups=groups, n_bootstrap=400, method="percentile")
    assert ci.mean == percentile.mean
    assert ci.high - ci.mean > 1.6 * (ci.mean - ci.low), ci
    assert ci.high > percentile.high + 0.3 * (percentile.high - percentile.mean), (ci, percentile)
    with pytest.raises(ValueError, match="method must be"):
        SelfNormalizedIPS().estimate_interval(*log, method="bca")

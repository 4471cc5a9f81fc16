"""Per-decision OPE estimators, the cross-fitted reward model and weight diagnostics: hand-computed
values, a uniform-logging identity, unbiasedness and interval coverage against a synthetic contextual
bandit whose true value is known exactly, out-of-fold predictions, and boundary validation (the bootstrap
itself: ``test_ope_bootstrap.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import KNeighborsRegressor

from offerpilot.ope import (
    CrossFittedRewardModel,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
    weight_diagnostics,
)

ALL_ESTIMATORS = (
    DirectMethod(),
    InverseProbabilityWeighting(),
    SelfNormalizedIPS(),
    DoublyRobust(),
    SelfNormalizedDR(),
    SwitchDoublyRobust(tau=2.0),
    DoublyRobustWithShrinkage(lambda_=1.0),
)

# A tiny log: 5 decisions, 3 actions.
ACTION = np.array([0, 1, 2, 0, 1])
PSCORE = np.array([0.5, 0.25, 0.25, 0.5, 0.5])
ACTION_DIST = np.array(
    [
        [0.5, 0.25, 0.25],  # w = 0.5 / 0.5  = 1
        [0.0, 1.0, 0.0],  # w = 1.0 / 0.25 = 4
        [0.25, 0.25, 0.5],  # w = 0.5 / 0.25 = 2
        [0.0, 0.5, 0.5],  # w = 0.0 / 0.5  = 0
        [0.2, 0.6, 0.2],  # w = 0.6 / 0.5  = 1.2
    ]
)
REWARD = np.array([1.0, 0.0, 2.0, 3.0, 2.0])
ESTIMATED = np.array(
    [
        [1.0, 0.0, 0.5],  # v = 0.5 * 1 + 0.25 * 0.5        = 0.625, q(a_i) = 1.0
        [0.5, 0.5, 0.5],  # v = 0.5                         = 0.5,   q(a_i) = 0.5
        [0.0, 1.0, 1.0],  # v = 0.25 * 1 + 0.5 * 1          = 0.75,  q(a_i) = 1.0
        [2.0, 1.0, 0.0],  # v = 0.5 * 1                     = 0.5,   q(a_i) = 2.0
        [0.0, 1.0, 2.0],  # v = 0.6 * 1 + 0.2 * 2           = 1.0,   q(a_i) = 1.0
    ]
)
TABLE = (REWARD, ACTION, PSCORE, ACTION_DIST, ESTIMATED)
DM_BY_HAND = (0.625 + 0.5 + 0.75 + 0.5 + 1.0) / 5  # 0.675
# w * (r - q(a_i)) = [1 * 0, 4 * -0.5, 2 * 1, 0 * 1, 1.2 * 1] = [0, -2, 2, 0, 1.2]; sum w = 8.2


@pytest.mark.parametrize(
    ("estimator", "by_hand"),
    [
        (DirectMethod(), DM_BY_HAND),
        (InverseProbabilityWeighting(), (1 * 1 + 4 * 0 + 2 * 2 + 0 * 3 + 1.2 * 2) / 5),  # 1.48
        (SelfNormalizedIPS(), (1 * 1 + 4 * 0 + 2 * 2 + 0 * 3 + 1.2 * 2) / (1 + 4 + 2 + 0 + 1.2)),
        (DoublyRobust(), DM_BY_HAND + (0 - 2 + 2 + 0 + 1.2) / 5),  # 0.915
        (SelfNormalizedDR(), DM_BY_HAND + (0 - 2 + 2 + 0 + 1.2) / 8.2),
        # tau = 3 drops the correction of decision 1 (w = 4 > 3) only.
        (SwitchDoublyRobust(tau=3.0), DM_BY_HAND + (0 + 2 + 0 + 1.2) / 5),  # 1.315
        # tau = 1.5 also drops decision 2 (w = 2).
        (SwitchDoublyRobust(tau=1.5), DM_BY_HAND + (0 + 0 + 1.2) / 5),
        # lambda = 4: w_hat = 4w / (w^2 + 4) = [4/5, 16/20, 8/8, 0, 4.8/5.44]; r - q = [0, -0.5, 1, 1, 1].
        (DoublyRobustWithShrinkage(lambda_=4.0), DM_BY_HAND + (0.8 * 0 + 0.8 * -0.5 + 1 * 1 + 0 + 4.8 / 5.44 * 1) / 5),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_hand_computed_values(estimator, by_hand):
    assert estimator.estimate(*TABLE) == pytest.approx(by_hand, abs=1e-12)
    rounds = estimator.estimate_round_rewards(*TABLE)
    assert rounds.shape == (5,)
    assert rounds.mean() == pytest.approx(by_hand, abs=1e-12)


def test_self_normalised_round_rewards_are_scaled_by_the_mean_weight():
    weight = np.array([1.0, 4.0, 2.0, 0.0, 1.2])
    np.testing.assert_allclose(SelfNormalizedIPS().estimate_round_rewards(*TABLE), weight * REWARD / weight.mean())
    v = np.array([0.625, 0.5, 0.75, 0.5, 1.0])
    correction = weight * (REWARD - np.array([1.0, 0.5, 1.0, 2.0, 1.0]))
    np.testing.assert_allclose(SelfNormalizedDR().estimate_round_rewards(*TABLE), v + correction / weight.mean())


def test_switch_and_shrinkage_limits_are_dm_and_dr():
    dm, dr = DirectMethod().estimate(*TABLE), DoublyRobust().estimate(*TABLE)
    assert SwitchDoublyRobust(tau=0.0).estimate(*TABLE) == pytest.approx(dm)
    assert SwitchDoublyRobust(tau=np.inf).estimate(*TABLE) == pytest.approx(dr)
    assert DoublyRobustWithShrinkage(lambda_=0.0).estimate(*TABLE) == pytest.approx(dm)
    assert DoublyRobustWithShrinkage(lambda_=np.inf).estimate(*TABLE) == pytest.approx(dr)
    assert DoublyRobustWithShrinkage(lambda_=1e9).estimate(*TABLE) == pytest.approx(dr, abs=1e-6)


def test_ips_with_uniform_logging_and_target_equal_to_logging_is_the_sample_mean():
    rng = np.random.default_rng(3)
    n, n_actions = 1000, 4
    action = rng.integers(0, n_actions, n)
    reward = rng.normal(size=n)
    uniform = np.full((n, n_actions), 1 / n_actions)
    pscore = np.full(n, 1 / n_actions)
    assert InverseProbabilityWeighting().estimate(reward, action, pscore, uniform) == pytest.approx(reward.mean(), abs=1e-12)
    assert SelfNormalizedIPS().estimate(reward, action, pscore, uniform) == pytest.approx(reward.mean(), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.sampled_from([1, 2, 100]), n_actions=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_estimates_are_finite_and_self_normalised_ones_stay_in_the_reward_range(n, n_actions, seed):
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.ones(n_actions), n)
    action = np.array([rng.choice(n_actions, p=p) for p in logging])
    target = rng.dirichlet(np.full(n_actions, 0.3), n)
    log = (rng.uniform(-1, 1, n), action, logging[np.arange(n), action], target, rng.uniform(-1, 1, (n, n_actions)))
    for estimator in ALL_ESTIMATORS:
        assert np.all(np.isfinite(estimator.estimate_round_rewards(*log)))
        interval = estimator.estimate_interval(*log, n_bootstrap=50)
        assert interval.low <= interval.high
    snips = SelfNormalizedIPS().estimate(*log)
    assert log[0].min() - 1e-12 <= snips <= log[0].max() + 1e-12 or snips == 0.0


# A synthetic contextual bandit with finitely many contexts, so the target's value is exact.
N_CONTEXTS, N_ACTIONS = 20, 3
_rng = np.random.default_rng(12345)
MEAN_REWARD = _rng.uniform(0.1, 0.9, (N_CONTEXTS, N_ACTIONS))
LOGGING = np.exp(_rng.normal(size=(N_CONTEXTS, N_ACTIONS)))
LOGGING /= LOGGING.sum(axis=1, keepdims=True)
TARGET = np.exp(2.0 * _rng.normal(size=(N_CONTEXTS, N_ACTIONS)))
TARGET /= TARGET.sum(axis=1, keepdims=True)
# A fixed, deliberately wrong reward model: DR must be unbiased anyway.
MODEL = np.clip(MEAN_REWARD + _rng.normal(0, 0.2, (N_CONTEXTS, N_ACTIONS)), 0, 1)
TRUE_VALUE = float((TARGET * MEAN_REWARD).sum(axis=1).mean())  # contexts are uniform


def bandit_log(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``(reward, action, pscore, action_dist, estimated_rewards)`` for n decisions logged under LOGGING."""
    context = rng.integers(0, N_CONTEXTS, n)
    cdf = LOGGING[context].cumsum(axis=1)
    action = np.minimum((cdf < rng.random((n, 1))).sum(axis=1), N_ACTIONS - 1)
    reward = (rng.random(n) < MEAN_REWARD[context, action]).astype(np.float64)
    return reward, action, LOGGING[context, action], TARGET[context], MODEL[context]


@pytest.mark.parametrize("estimator", [InverseProbabilityWeighting(), DoublyRobust()], ids=lambda e: e.name)
def test_unbiased_against_the_exact_value(estimator):
    rng = np.random.default_rng(7)
    estimates = np.array([estimator.estimate(*bandit_log(300, rng)) for _ in range(200)])
    standard_error = estimates.std(ddof=1) / np.sqrt(estimates.size)
    assert abs(estimates.mean() - TRUE_VALUE) < 3 * standard_error


@pytest.mark.parametrize("estimator", [DoublyRobust(), SelfNormalizedIPS()], ids=lambda e: e.name)
def test_bootstrap_interval_covers_the_truth(estimator):
    rng = np.random.default_rng(11)
    covered = 0
    for replicate in range(100):
        interval = estimator.estimate_interval(*bandit_log(400, rng), n_bootstrap=400, random_state=replicate)
        assert interval.low <= interval.mean <= interval.high
        covered += interval.low <= TRUE_VALUE <= interval.high
    assert covered >= 85


def test_interval_is_seeded_and_self_normalisation_is_redone_per_replicate():
    log = bandit_log(300, np.random.default_rng(0))
    first = SelfNormalizedIPS().estimate_interval(*log, random_state=5)
    assert first == SelfNormalizedIPS().estimate_interval(*log, random_state=5)
    assert first != SelfNormalizedIPS().estimate_interval(*log, random_state=6)
    # With a constant reward every resample's SNIPS is exactly that constant.
    constant = (np.full(300, 2.0),) + log[1:]
    interval = SelfNormalizedIPS().estimate_interval(*constant)
    assert (interval.low, interval.mean, interval.high) == pytest.approx((2.0, 2.0, 2.0))


def test_cross_fitted_predictions_come_from_the_other_folds():
    rng = np.random.default_rng(0)
    n, n_actions = 60, 3
    features = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, n)
    reward = rng.normal(size=n)  # distinct, so a memorising model reveals which rows it saw
    for n_folds in (2, 3):
        model = CrossFittedRewardModel(n_actions, n_folds=n_folds, estimator=KNeighborsRegressor(n_neighbors=1))
        estimated = model.fit_predict(features, action, reward)
        fold = model.folds(n)
        assert np.bincount(fold).tolist() == [n // n_folds] * n_folds
        design = np.hstack([features, np.eye(n_actions)[action]])
        for i in range(n):
            for a in range(n_actions):
                query = np.concatenate([features[i], np.eye(n_actions)[a]])
                others = np.flatnonzero(fold != fold[i])
                nearest = others[np.argmin(((design[others] - query) ** 2).sum(axis=1))]
                assert estimated[i, a] == reward[nearest]
        # An in-fold 1-NN would return each decision's own reward at its logged action.
        assert not np.any(estimated[np.arange(n), action] == reward)


def test_default_reward_model_learns_a_simple_reward():
    rng = np.random.default_rng(0)
    n, n_actions = 2000, 3
    features = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, n)
    truth = features[:, :1] * np.array([1.0, -1.0, 0.0]) + np.array([0.0, 0.5, 1.0])  # (n, n_actions)
    reward = truth[np.arange(n), action] + rng.normal(0, 0.1, n)
    estimated = CrossFittedRewardModel(n_actions).fit_predict(features, action, reward)
    assert estimated.shape == (n, n_actions)
    assert np.sqrt(np.mean((estimated - truth) ** 2)) < 0.2


def test_weight_diagnostics_on_a_hand_made_case():
    logging = np.array(
        [
            [0.5, 0.5, 0.0],  # target puts 0.25 on action 2, never logged here
            [0.5, 0.25, 0.25],
            [0.5, 0.25, 0.25],
            [0.5, 0.5, 0.0],  # target puts 0.5 on action 2, never logged here
            [0.25, 0.5, 0.25],
        ]
    )
    diag = weight_diagnostics(PSCORE, ACTION_DIST, ACTION, logging)
    # w = [1, 4, 2, 0, 1.2]: (sum w)^2 / sum w^2 = 8.2^2 / (1 + 16 + 4 + 0 + 1.44)
    assert diag.ess == pytest.approx(8.2**2 / 22.44)
    assert diag.ess_share == pytest.approx(8.2**2 / 22.44 / 5)
    assert diag.max_weight == 4.0
    assert diag.mean_weight == pytest.approx(8.2 / 5)
    assert diag.unsupported_share == pytest.approx(2 / 5)
    assert diag.unsupported_mass == pytest.approx((0.25 + 0.5) / 5)
    assert len(diag.warnings) == 1 and "never took" in diag.warnings[0]
    plain = weight_diagnostics(PSCORE, ACTION_DIST, ACTION)
    assert plain.unsupported_share is None and plain.warnings == ()


def test_weight_diagnostics_warn_on_tiny_ess_and_huge_weights():
    n = 1000
    action = np.zeros(n, np.int64)
    pscore = np.full(n, 0.001)
    target = np.zeros((n, 2))
    target[:, 1] = 1.0
    target[0] = [1.0, 0.0]  # one decision carries weight 1000, the rest 0
    diag = weight_diagnostics(pscore, target, action)
    assert diag.ess == pytest.approx(1.0)
    assert diag.max_weight == pytest.approx(1000.0)
    assert any("effective sample size" in w for w in diag.warnings)
    assert any("largest importance weight" in w for w in diag.warnings)


def _bad(**changes):
    args = dict(zip(("reward", "action", "pscore", "action_dist", "estimated_rewards"), TABLE))
    for key, (rows, value) in changes.items():
        args[key] = args[key].astype(np.float64, copy=True)
        args[key][list(rows)] = value
    return args


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (_bad(pscore=([1, 3], 0.0)), ["pscore", "2 of 5 rows", "rows 1, 3"]),
        (_bad(pscore=([4], np.nan)), ["pscore", "1 of 5 rows", "rows 4"]),
        (_bad(pscore=([0], 1.5)), ["pscore", "1 of 5 rows", "rows 0"]),
        (_bad(action=([2], 3)), ["action", "1 of 5 rows", "rows 2"]),
        (_bad(action=([0, 1], -1)), ["action", "2 of 5 rows", "rows 0, 1"]),
        (_bad(action=([3], 0.5)), ["action", "not integers", "rows 3"]),
        (_bad(action_dist=([1, 2], [0.5, 0.5, 0.5])), ["action_dist", "2 of 5 rows", "do not sum to 1", "rows 1, 2"]),
        (_bad(action_dist=([0], [-0.5, 1.0, 0.5])), ["action_dist", "negative", "rows 0"]),
        (_bad(reward=([2], np.inf)), ["reward", "1 of 5 rows", "rows 2"]),
        (_bad(estimated_rewards=([3], np.nan)), ["estimated_rewards", "1 of 5 rows", "rows 3"]),
        ({**_bad(), "pscore": PSCORE[:4]}, ["pscore", "shape (4,)", "(5,)"]),
        ({**_bad(), "action_dist": ACTION_DIST[:, :2]}, ["action", "range [0, 2)", "rows 2"]),
        ({**_bad(), "estimated_rewards": ESTIMATED[:, :2]}, ["estimated_rewards", "shape (5, 2)", "(5, 3)"]),
        ({**_bad(), "action_dist": ACTION_DIST[:3]}, ["action_dist", "3 rows", "expected 5"]),
        ({**_bad(), "estimated_rewards": None}, ["dr needs estimated_rewards"]),
    ],
)
def test_bad_inputs_raise_naming_rows(args, fragments):
    with pytest.raises(ValueError) as info:
        DoublyRobust().estimate(**args)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bad_inputs_in_diagnostics_and_reward_model_raise_naming_rows():
    logging = np.tile([0.5, 0.25, 0.25], (5, 1))  # pscore of decisions 3 and 4 (0.5 at actions 0 / 1) disagree at row 4
    with pytest.raises(ValueError, match=r"pscore: 1 of 5 rows differ .* \(rows 4\)"):
        weight_diagnostics(PSCORE, ACTION_DIST, ACTION, logging)
    with pytest.raises(ValueError, match=r"logging_action_dist: 5 of 5 rows do not sum to 1"):
        weight_diagnostics(PSCORE, ACTION_DIST, ACTION, logging * 2)
    with pytest.raises(ValueError, match=r"features: 1 of 5 rows are missing .* \(rows 2\)"):
        features = np.ones((5, 2))
        features[2, 1] = np.nan
        CrossFittedRewardModel(3).fit_predict(features, ACTION, REWARD)
    with pytest.raises(ValueError, match=r"action: 1 of 5 rows are outside .* \(rows 0\)"):
        CrossFittedRewardModel(3).fit_predict(np.ones((5, 2)), [7, 1, 2, 0, 1], REWARD)
    with pytest.raises(ValueError, match="tau must be >= 0"):
        SwitchDoublyRobust(tau=-1.0)


def test_float32_inputs_give_the_float64_estimates():
    """float32 columns are used without a float64 copy and give the same estimates (to float32 precision)."""
    rng = np.random.default_rng(3)
    n, k = 20_000, 5
    action = rng.integers(0, k, n)
    target = rng.random((n, k))
    target /= target.sum(axis=1, keepdims=True)
    estimated = rng.random((n, k))
    reward = rng.random(n)
    pscore = np.full(n, 1.0 / k)
    for estimator in (InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust(), SelfNormalizedDR()):
        exact = estimator.estimate(reward=reward, action=action, pscore=pscore, action_dist=target, estimated_rewards=estimated)
        single = estimator.estimate(
            reward=reward.astype(np.float32), action=action, pscore=pscore.astype(np.float32),
            action_dist=(target / target.sum(axis=1, keepdims=True)).astype(np.float32),
            estimated_rewards=estimated.astype(np.float32),
        )
        assert single == pytest.approx(exact, rel=1e-5), estimator.name

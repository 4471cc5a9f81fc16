"""Baseline policies: rule-based, churn-threshold, fitted reward-model (uplift, myopic), and their tuning.

Rules are checked on hand-built observations where the right action is known; every policy's probabilities on
real simulator observations and masks; the reward model against a planted effect; the fitted policies through
``evaluate_policy`` on fixed seeds, against numbers measured once and asserted with a stated margin.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import sklearn.ensemble  # noqa: F401  (loaded first so that its OpenMP pool can be limited below)
from threadpoolctl import threadpool_limits

from offerpilot.agents.baselines import (
    BASELINES,
    ENCODER_BASELINES,
    ChurnThresholdPolicy,
    FixedSchedulePolicy,
    NoOfferPolicy,
    UniformRandomPolicy,
    fit_reward_model_policy,
    make_baseline,
)
from offerpilot.agents.tuning import DEFAULT_GRIDS, grid_settings, tune
from offerpilot.agents.uplift_model import RewardModel, RewardModelPolicy, collect_randomised_logs
from offerpilot.envs.observers import RawFeatureObserver
from offerpilot.envs.policy import act
from offerpilot.envs.policy_evaluation import evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator

RAW = RawFeatureObserver.feature_names
WITH_CHURN = RAW + ("churn_probability",)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The test machine's cores are shared: boosting on one thread keeps fits fast and predictable."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def sim() -> PopulationSimulator:
    return PopulationSimulator()


@pytest.fixture(scope="module")
def real(sim):
    """Observations and legal masks of 1,000 customers over 8 uniform-random decision steps, plus a
    ``churn_probability`` column (a stand-in for the encoder's) so the churn rule has something to read."""
    rng = np.random.default_rng(3)
    traits, state = sim.new_customers(1000, rng)
    obs, masks = [], []
    for _ in range(8):
        o, m = sim.observe(traits, state), sim.action_mask(state)
        obs.append(o)
        masks.append(m)
        state, _ = sim.advance(traits, state, act(UniformRandomPolicy(), o, m, rng=rng)[0])
    obs, masks = np.concatenate(obs), np.concatenate(masks)
    churn = rng.random((obs.shape[0], 1)).astype(np.float32)
    return obs, masks, np.concatenate([obs, churn], axis=1)


@pytest.fixture(scope="module")
def fitted(sim):
    """The two fitted baselines, each on 10,000 randomised customers (seed 0)."""
    return {name: fit_reward_model_policy(name, sim, 10_000, seed=0) for name in ("uplift", "myopic")}


def _days_feature(days) -> np.ndarray:
    return (np.log1p(np.asarray(days, np.float32)) / np.float32(np.log(366.0))).astype(np.float32)


def _assert_valid(probs: np.ndarray, mask: np.ndarray, name: str) -> None:
    assert probs.shape == mask.shape and probs.dtype == np.float64, name
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, err_msg=name)
    assert (probs >= 0).all(), name
    assert not (probs[~mask] > 0).any(), f"{name} gives probability to illegal actions"


def test_every_policy_gives_valid_probabilities_on_simulator_observations(sim, real, fitted):
    """Rows sum to 1 and illegal actions get nothing, for every baseline on real observations and masks."""
    obs, masks, obs_churn = real
    cat = sim.catalog
    policies = [(make_baseline(name, cat), obs) for name in BASELINES]
    policies += [(make_baseline(name, cat, WITH_CHURN), obs_churn) for name in ENCODER_BASELINES]
    policies += [(FixedSchedulePolicy(cat, RAW, offer=o, every_days=d), obs) for o in ("pct20", "points", "content") for d in (3, 14)]
    policies += [(ChurnThresholdPolicy(cat, WITH_CHURN, threshold=t, offer=o), obs_churn) for t in (0.0, 0.5) for o in (None, "pct20", "points")]
    policies += [(p, obs) for p in fitted.values()]
    for policy, o in policies:
        _assert_valid(policy.action_probs(o, masks), masks, f"{policy.policy_id}: {policy!r}"[:120])
    # The rules did send something on these customers: the checks above were not vacuous.
    assert (FixedSchedulePolicy(cat, RAW, offer="pct20", every_days=3).action_probs(obs, masks)[:, cat.index("pct20")] > 0).any()
    assert (ChurnThresholdPolicy(cat, WITH_CHURN, threshold=0.0).action_probs(obs_churn, masks)[:, cat.index("pct20")] > 0).any()


def test_fixed_schedule_sends_exactly_when_enough_days_passed(sim):
    """The offer goes out iff days since the last message >= every_days and the offer is legal."""
    cat = sim.catalog
    names = ("something_else", "log_days_since_message")
    days = np.array([0, 1, 27, 28, 29, 100, 10_000, 28, 365])
    obs = np.stack([np.zeros(days.size, np.float32), _days_feature(days)], axis=1)
    mask = np.ones((days.size, cat.n_actions), bool)
    mask[-2:, cat.index("pct10")] = False  # enough days, but forbidden
    probs = FixedSchedulePolicy(cat, names, offer="pct10", every_days=28).action_probs(obs, mask)
    sends = np.array([False, False, False, True, True, True, True, False, False])
    np.testing.assert_array_equal(probs[:, cat.index("pct10")], sends)
    np.testing.assert_array_equal(probs[:, 0], ~sends)

    weekly = FixedSchedulePolicy(cat, names, offer="content", every_days=7).action_probs(obs, mask)
    np.testing.assert_array_equal(weekly[:, cat.index("content")], days >= 7)


def test_rules_name_the_feature_they_miss(sim):
    with pytest.raises(ValueError, match="log_days_since_message"):
        FixedSchedulePolicy(sim.catalog, ("progress", "log_recency"))
    with pytest.raises(ValueError, match="churn_probability"):
        ChurnThresholdPolicy(sim.catalog, RAW)
    with pytest.raises(ValueError, match="churn_probability"):
        make_baseline("churn_threshold", sim.catalog)
    with pytest.raises(ValueError, match="pct99"):
        FixedSchedulePolicy(sim.catalog, RAW, offer="pct99")
    with pytest.raises(ValueError, match="fit_reward_model_policy"):
        make_baseline("uplift", sim.catalog)


def test_churn_threshold_sends_the_deepest_legal_discount_above_the_threshold(sim):
    """Above the threshold: pct20 if legal, else pct10, else pct5, else nothing; at or below it: nothing."""
    cat = sim.catalog
    names = ("x", "churn_probability")
    churn = np.array([0.2, 0.5, 0.51, 0.9, 0.9, 0.9, 0.9, 0.9], np.float32)
    obs = np.stack([np.zeros(churn.size, np.float32), churn], axis=1)
    mask = np.ones((churn.size, cat.n_actions), bool)
    mask[4, cat.index("pct20")] = False
    mask[5, [cat.index("pct20"), cat.index("pct10")]] = False
    mask[6, [cat.index("pct20"), cat.index("pct10"), cat.index("pct5")]] = False
    mask[7, 1:] = False
    chosen = ChurnThresholdPolicy(cat, names, threshold=0.5).action_probs(obs, mask).argmax(axis=1)
    expected = ["none", "none", "pct20", "pct20", "pct10", "pct5", "none", "none"]
    assert [cat.ids[a] for a in chosen] == expected

    fixed = ChurnThresholdPolicy(cat, names, threshold=0.5, offer="free_shipping").action_probs(obs, mask).argmax(axis=1)
    assert [cat.ids[a] for a in fixed] == ["none", "none"] + ["free_shipping"] * 5 + ["none"]


def test_make_baseline_keeps_its_old_call_and_takes_parameters(sim):
    cat = sim.catalog
    assert make_baseline("recency_rule", cat).policy_id == "recency_rule"
    policy = make_baseline("fixed_schedule", cat, offer="points", every_days=56)
    assert (policy.offer, policy.every_days) == ("points", 56)
    assert make_baseline("churn_threshold", cat, WITH_CHURN, threshold=0.7).threshold == 0.7


def test_the_reward_model_recovers_a_planted_action_effect():
    """y = x0 + 2 [a == 2] + N(0, 0.5^2): action 2's uplift over 'none' is 2 everywhere, the others' 0."""
    rng = np.random.default_rng(0)
    m = 40_000
    x = rng.random((m, 3)).astype(np.float32)
    a = rng.integers(0, 4, m)
    y = x[:, 0] + 2.0 * (a == 2) + rng.normal(0.0, 0.5, m)
    model = RewardModel.fit(x, a, y, n_actions=4, seed=0)
    test = rng.random((2_000, 3)).astype(np.float32)
    uplift = model.uplift(test)
    assert abs(uplift[:, 2].mean() - 2.0) < 0.05
    assert np.abs(uplift[:, 2] - 2.0).max() < 0.2
    assert np.abs(uplift[:, [1, 3]]).max() < 0.2
    np.testing.assert_array_equal(model.predict(test), RewardModel.fit(x, a, y, n_actions=4, seed=0).predict(test))

    # The greedy policy sends action 2 wherever it is legal, and 'none' wins where it is not.
    mask = np.ones((test.shape[0], 4), bool)
    mask[::2, 2] = False
    chosen = RewardModelPolicy(model, "greedy").action_probs(test, mask).argmax(axis=1)
    assert (chosen[1::2] == 2).all() and (chosen[::2] != 2).all()


def test_reward_model_policy_takes_the_best_legal_action_and_breaks_ties_low():
    """argmax over legal actions; equal predictions go to the lower id; unscorable (NaN) actions never win."""
    pred = np.array([[1.0, 3.0, 2.0], [1.0, 1.0, 1.0], [0.5, 2.0, 2.0], [1.0, np.nan, 0.0], [-1.0, -2.0, -3.0]])
    stub = SimpleNamespace(predict=lambda obs: pred)
    mask = np.array([[True, False, True], [True, True, True], [True, True, True], [True, True, True], [True, True, True]])
    chosen = RewardModelPolicy(stub, "stub").action_probs(np.zeros((5, 1), np.float32), mask).argmax(axis=1)
    np.testing.assert_array_equal(chosen, [2, 0, 1, 0, 0])


def test_randomised_logs_sum_margins_over_the_horizon(sim):
    """Same seed, horizons 1 and 3: a 3-step outcome is the sum of the 1-step outcomes of the next 3 decisions;
    decisions whose horizon passes the period's end are dropped."""
    one = collect_randomised_logs(sim, 300, seed=5, horizon_steps=1)
    three = collect_randomised_logs(sim, 300, seed=5, horizon_steps=3)
    n = sim.config.n_decisions
    assert one.step.max() == n - 1 and three.step.max() == n - 3
    y1 = np.full((300, n), np.nan)
    y1[one.customer, one.step] = one.outcomes
    ahead = y1[three.customer, three.step] + y1[three.customer, three.step + 1] + y1[three.customer, three.step + 2]
    known = ~np.isnan(ahead)  # the customer was still alive (so logged) at all three decisions
    assert known.mean() > 0.9
    np.testing.assert_allclose(three.outcomes[known], ahead[known], rtol=1e-6, atol=1e-6)
    # Every 3-step row is a 1-step row too (the customer was alive at that decision).
    assert not np.isnan(y1[three.customer, three.step]).any()


def test_fitted_baselines_run_through_evaluation(sim, fitted):
    """Measured once (fit: 10,000 customers, seed 0; evaluation: 4,000 customers, seed 7):
    no_offer 6.688, uniform 5.944, uplift 6.462 (30.7 offers a year), myopic 6.535.

    The 30-day uplift rule does not beat sending nothing on the year-long objective (its horizon misses the
    long-run cost of offers), so we assert it stays within 0.5 of no_offer (measured -0.23; the objective's CI
    half-width here is about 0.65), and that its targeting strictly beats sending at random (measured +0.52).
    """
    results = {p.policy_id: evaluate_policy(sim, p, 4_000, seed=7) for p in (NoOfferPolicy(), UniformRandomPolicy(), *fitted.values())}
    objective = {k: r.objective.mean for k, r in results.items()}
    assert objective["uplift"] >= objective["no_offer"] - 0.5
    assert objective["uplift"] > objective["uniform"] + 0.25
    assert all(np.isfinite(v) for v in objective.values())
    assert 0 < results["uplift"].offers_sent.mean < results["uniform"].offers_sent.mean


def test_fitting_is_deterministic_given_the_seed(sim, fitted, real):
    obs, masks, _ = real
    again = fit_reward_model_policy("myopic", sim, 10_000, seed=0)
    np.testing.assert_array_equal(again.action_probs(obs, masks), fitted["myopic"].action_probs(obs, masks))


def test_tuning_picks_the_best_setting_of_a_known_grid(sim):
    """A toy evaluation with a known optimum (every_days = 28, offer = pct10): the best is found, every setting
    is scored on every seed, and ties go to the first setting in grid order."""
    seen = []

    def toy(sim_, policy, n_customers, seed):
        seen.append((policy.offer, policy.every_days, n_customers, seed))
        score = -((policy.every_days - 28) ** 2) - 10 * (policy.offer != "pct10") + seed
        return SimpleNamespace(objective=SimpleNamespace(mean=float(score)))

    def make(**params):
        return FixedSchedulePolicy(sim.catalog, RAW, **params)

    grid = DEFAULT_GRIDS["fixed_schedule"]
    result = tune(make, grid, sim, 123, seeds=(1, 2), evaluate=toy)
    assert result.best_params == {"offer": "pct10", "every_days": 28}
    assert result.best_score == pytest.approx(1.5)
    assert result.scores.shape == (len(grid["offer"]) * len(grid["every_days"]), 2)
    assert {(n, s) for *_, n, s in seen} == {(123, 1), (123, 2)}
    assert len(seen) == result.scores.size
    table = result.table()
    assert table.iloc[0][["offer", "every_days"]].tolist() == ["pct10", 28] and list(table.columns[-2:]) == ["seed_1", "seed_2"]

    flat = tune(make, {"every_days": (14, 28, 56)}, sim, 10, seeds=(0,), evaluate=lambda *a: SimpleNamespace(objective=SimpleNamespace(mean=1.0)))
    assert flat.best_params == {"every_days": 14}
    assert len(grid_settings(DEFAULT_GRIDS["churn_threshold"])) == 7


def test_tuning_on_the_simulator_is_fair_and_reproducible(sim):
    """A deep discount every 3 days loses clearly to one every 91 days (measured on 1,000 customers, seeds 0
    and 1: 4.51 against 6.23 per customer, so we ask for a gap of at least 1.0); the same seeds give the same
    table."""

    def make(every_days):
        return make_baseline("fixed_schedule", sim.catalog, offer="pct20", every_days=every_days)

    result = tune(make, {"every_days": (3, 91)}, sim, 1_000, seeds=(0, 1))
    assert result.best_params == {"every_days": 91}
    assert result.mean_scores[1] - result.mean_scores[0] > 1.0
    np.testing.assert_array_equal(tune(make, {"every_days": (3, 91)}, sim, 1_000, seeds=(0, 1)).scores, result.scores)

"""Logged decisions as arrays: rewards rebuilt from the logs equal the simulator's own accounting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from offerpilot.agents.baselines import EpsilonGreedyPolicy, RecencyRulePolicy
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.policy_evaluation import evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.ope.logged_decisions import logged_decisions


@pytest.fixture(scope="module")
def logged():
    sim = PopulationSimulator()
    policy = EpsilonGreedyPolicy(RecencyRulePolicy(sim.catalog), epsilon=0.3)
    logs = simulate_logs(sim, policy, 1500, seed=5, progress=False)
    return sim, policy, logs, logged_decisions(logs.events, logs.decisions, sim.catalog, "2025-01-01")


def test_rewards_from_logs_equal_the_simulators_objective(logged):
    """Per customer, the summed logged rewards, short-term margin and CLV equal evaluate_policy's on
    the same seed (same random stream), up to cent rounding of logged money."""
    sim, policy, _, data = logged
    truth = evaluate_policy(sim, policy, 1500, seed=5)
    per_customer = lambda v: np.bincount(data.trajectory, weights=v).mean()  # noqa: E731
    assert per_customer(data.reward) == pytest.approx(truth.objective.mean, abs=2e-3)
    assert per_customer(data.margin_short) == pytest.approx(truth.r_short.mean, abs=2e-3)
    assert per_customer(data.margin_clv) == pytest.approx(truth.clv.mean, abs=2e-3)
    assert data.n_unattributed_purchases == 0


def test_logged_arrays_are_consistent(logged):
    """Logged actions were legal; propensities equal the logged distribution; trajectories line up."""
    sim, _, logs, data = logged
    rows = np.arange(data.n_decisions)
    assert data.legal[rows, data.action].all()
    np.testing.assert_allclose(data.logging_probs[rows, data.action], data.pscore)
    assert data.n_trajectories == 1500 and data.step.max() == sim.config.n_decisions - 1
    assert data.trajectory_mask.all()
    np.testing.assert_array_equal(data.as_trajectories(data.day)[:, 1] - data.as_trajectories(data.day)[:, 0], 7)
    np.testing.assert_allclose(data.features, logs.observations, atol=1e-3)


def test_purchases_outside_every_window_are_counted():
    """A purchase more than interval_days after a customer's last decision is reported, not silently lost."""
    sim = PopulationSimulator()
    t = pd.Timestamp
    events = pd.DataFrame(
        {
            "user_id": ["a", "a", "a"],
            "ts": [t("2024-12-01 10:15"), t("2025-01-03 10:15"), t("2025-02-01 10:15")],
            "event": ["purchase"] * 3,
            "amount": [10.0, 20.0, 30.0],
        }
    )
    decisions = pd.DataFrame(
        {"user_id": ["a"], "ts": [t("2025-01-01 07:00")], "offer_id": ["pct10"], "propensity": [0.5], "policy_id": ["p"]}
    )
    data = logged_decisions(events, decisions, sim.catalog, "2025-01-01")
    assert data.n_unattributed_purchases == 1
    assert data.margin[0] == pytest.approx(0.35 * 20.0 - 0.02)  # the day-2 purchase minus the email's cost

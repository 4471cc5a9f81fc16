"""Target policies for off-policy evaluation: baselines by name and tables of probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from offerpilot.agents.baselines import BASELINES, EpsilonGreedyPolicy, RecencyRulePolicy, make_baseline
from offerpilot.agents.logged_decisions import logged_decisions
from offerpilot.agents.target_policy import policy_probs, table_probs
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.errors import DataError
from offerpilot.tables import write_table


@pytest.fixture(scope="module")
def logged():
    sim = PopulationSimulator()
    logs = simulate_logs(sim, EpsilonGreedyPolicy(RecencyRulePolicy(sim.catalog)), 300, seed=9, progress=False)
    return sim, logs, logged_decisions(logs.events, logs.decisions, sim.catalog, "2025-01-01")


def test_every_baseline_gives_legal_distributions(logged):
    """Each named baseline's probabilities sum to 1 and put no mass on forbidden offers."""
    sim, _, data = logged
    for name in BASELINES:
        probs = policy_probs(make_baseline(name, sim.catalog), data)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert not (probs[~data.legal] > 0).any(), name
    with pytest.raises(ValueError, match="unknown baseline 'greedy'"):
        make_baseline("greedy", sim.catalog)


def test_the_logging_policy_by_name_reproduces_the_logged_distribution(logged):
    """Evaluated on features rebuilt from the logs, the logging policy gives back the logged probabilities."""
    sim, _, data = logged
    probs = policy_probs(make_baseline("epsilon_greedy", sim.catalog), data)
    np.testing.assert_allclose(probs, data.logging_probs, atol=1e-12)


def test_a_table_of_probabilities_is_aligned_and_checked(logged, tmp_path):
    """A written table round-trips onto the decisions; bad rows are named; missing decisions refused."""
    sim, logs, data = logged
    table = logs.decisions[["user_id", "ts"] + [c for c in logs.decisions if c.startswith("prob_")]]
    shuffled = table.sample(frac=1.0, random_state=0)
    path = tmp_path / "target.csv"
    write_table(shuffled, path)
    np.testing.assert_allclose(table_probs(path, data, sim.catalog), data.logging_probs, atol=1e-12)

    broken = shuffled.copy()
    broken.iloc[3, broken.columns.get_loc("prob_none")] = 1.5
    write_table(broken, path)
    with pytest.raises(DataError) as err:
        table_probs(path, data, sim.catalog)
    assert any(p.row == 4 and p.field == "prob_none" for p in err.value.problems)

    write_table(shuffled.iloc[1:], path)
    with pytest.raises(DataError, match="1 logged decisions have no target row"):
        table_probs(path, data, sim.catalog)

    illegal = shuffled.copy()
    prob_cols = [c for c in illegal if c.startswith("prob_")]
    illegal[prob_cols] = 0.0
    illegal["prob_pct20"] = 1.0  # a win-back offer, forbidden to recent buyers and the unsubscribed
    write_table(illegal, path)
    with pytest.raises(DataError, match="forbid"):
        table_probs(path, data, sim.catalog)

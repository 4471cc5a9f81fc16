"""Features rebuilt from logs equal what the simulator's observer saw at each decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from offerpilot.agents.baselines import EpsilonGreedyPolicy, RecencyRulePolicy
from offerpilot.catalog import default_catalog
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.log_state import observable_state_from_logs, raw_features_from_logs
from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.tables import read_decisions, read_events, write_table


@pytest.mark.parametrize("policy_name", ["uniform", "epsilon_greedy"])
def test_features_from_logs_match_the_simulator(policy_name, tmp_path):
    """Every raw feature at every logged decision, rebuilt from the written files, equals the
    simulator's observation (money up to cent rounding)."""
    sim = PopulationSimulator()
    policy = UniformRandomPolicy() if policy_name == "uniform" else EpsilonGreedyPolicy(RecencyRulePolicy(sim.catalog))
    logs = simulate_logs(sim, policy, 800, seed=11, progress=False)
    write_table(logs.events, tmp_path / "events.parquet")
    write_table(logs.decisions, tmp_path / "decisions.csv")
    events, decisions = read_events(tmp_path / "events.parquet"), read_decisions(tmp_path / "decisions.csv")
    features = raw_features_from_logs(events, decisions, sim.catalog, "2025-01-01")
    assert features.shape == logs.observations.shape
    money = [sim.observer.feature_names.index(n) for n in ("log_mean_spend", "discount_share")]
    exact = [j for j in range(features.shape[1]) if j not in money]
    np.testing.assert_array_equal(features[:, exact], logs.observations[:, exact])
    np.testing.assert_allclose(features[:, money], logs.observations[:, money], atol=1e-3)
    assert (logs.decisions["offer_id"] != "none").mean() > 0.3  # the contact history was exercised


def test_state_from_a_hand_made_log():
    """Recency, tenure, counts, contact ages, the live offer and its redemption, unsubscribes."""
    catalog = default_catalog()
    t = pd.Timestamp
    events = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b"],
            "ts": [t("2024-12-01 10:00"), t("2024-12-01 10:15"), t("2025-01-03 10:15"), t("2025-01-04 09:00"), t("2024-12-20 10:00")],
            "event": ["visit", "purchase", "purchase", "review", "visit"],
            "amount": [np.nan, 20.0, 18.0, np.nan, np.nan],
            "offer_id": [None, None, "pct10", None, None],
            "discount": [np.nan, 0.0, 2.0, np.nan, np.nan],
            "rating": [np.nan, np.nan, np.nan, 4.0, np.nan],
        }
    )
    decisions = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "ts": [t("2025-01-01 07:00"), t("2025-01-08 07:00"), t("2025-01-15 07:00"), t("2025-01-01 07:00")],
            "offer_id": ["pct10", "content", "none", "none"],
            "propensity": [0.5, 0.5, 0.5, 1.0],
            "policy_id": ["p"] * 4,
        }
    )
    s = observable_state_from_logs(events, decisions, catalog, "2025-01-01")
    assert s.day.tolist() == [0, 7, 14, 0]
    assert s.n_purchases.tolist() == [1, 2, 2, 0]
    assert s.recency.tolist() == [31, 5, 12, 30_000]  # 'b' never bought
    assert s.age.tolist() == [31, 38, 45, 12]
    assert s.total_spend.tolist() == pytest.approx([20.0, 38.0, 38.0, 0.0])
    assert s.discount_received.tolist() == pytest.approx([0.0, 2.0, 2.0, 0.0])
    assert s.n_messages.tolist() == [0, 1, 2, 0]
    assert s.contact_age[:, 0].tolist() == [10_000, 7, 7, 10_000]
    assert s.contact_age[:, 1].tolist() == [10_000, 10_000, 14, 10_000]
    assert s.offer_days_left.tolist() == [0, 0, 0, 0]  # pct10 sent day 0 was redeemed on day 2
    assert s.last_rating.tolist() == [0, 4, 4, 0]
    assert s.days_since_visit.tolist() == [31, 38, 45, 12]
    assert s.subscribed.all()


def test_live_offer_counts_down_until_redeemed_or_expired():
    """An unredeemed 14-day offer sent on day 0 has 14 - t days left on day t, then none."""
    catalog = default_catalog()
    t = pd.Timestamp
    events = pd.DataFrame({"user_id": ["a"], "ts": [t("2024-12-01 10:15")], "event": ["purchase"], "amount": [10.0]})
    days = [1, 5, 13, 14, 20]
    decisions = pd.DataFrame(
        {
            "user_id": ["a"] * (len(days) + 1),
            "ts": [t("2025-01-01 07:00")] + [t("2025-01-01 07:00") + pd.Timedelta(days=d) for d in days],
            "offer_id": ["pct10"] + ["none"] * len(days),
            "propensity": 0.5,
            "policy_id": "p",
        }
    )
    s = observable_state_from_logs(events, decisions, catalog, "2025-01-01")
    assert s.offer_days_left.tolist() == [0, 13, 9, 1, 0, 0]
    assert s.offer.tolist() == [0, 2, 2, 2, 0, 0]

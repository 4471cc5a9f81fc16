"""Batch scoring: caps and eligibility hold, exploration keeps support, and off-policy evaluation reads the output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from offerpilot.app.cli import main
from offerpilot.deployment.bundle import Bundle, Exploration
from offerpilot.deployment.scoring import ScoringConfig, customer_inputs, score_customers
from offerpilot.schema import prob_column
from offerpilot.tables import read_decisions, read_events, read_table, write_table

START = pd.Timestamp("2025-01-01")


@pytest.fixture(scope="module")
def bundle(small_bundle) -> Bundle:
    return Bundle(small_bundle)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("logs")
    assert main(["simulate", "--out", str(out), "--customers", "400", "--seed", "9", "--policy", "uniform", "--start", str(START.date())]) == 0
    return out


@pytest.fixture(scope="module")
def events(logs) -> pd.DataFrame:
    return read_events(logs / "events.parquet")


def _daily_rounds(bundle: Bundle, events: pd.DataFrame, days: int, exploration: Exploration) -> pd.DataFrame:
    """Score every customer every day, each day's messages joining the contact history of the next."""
    sent = None
    for day in range(days):
        as_of = START + pd.Timedelta(days=day, hours=9)
        table = score_customers(bundle, events, sent, ScoringConfig(as_of=as_of, period_start=START, exploration=exploration, seed=day))
        sent = table if sent is None else pd.concat([sent, table], ignore_index=True)
    return sent


def test_caps_and_eligibility_are_never_violated(bundle, events):
    """Three weeks of daily scoring with pure exploration (every allowed offer as likely): the caps are checked on the
    messages it sent, eligibility on each customer's purchases, both computed here from the tables."""
    decisions = _daily_rounds(bundle, events, 21, Exploration(epsilon=1.0))
    caps = bundle.catalog.caps
    messages = decisions[decisions["offer_id"] != "none"].sort_values(["user_id", "ts"])
    assert len(messages) > 500  # enough sending that the caps bind
    day = ((messages["ts"] - START) / pd.Timedelta(days=1)).astype(int).to_numpy()
    same_user = (messages["user_id"].to_numpy()[1:] == messages["user_id"].to_numpy()[:-1])
    assert (np.diff(day)[same_user] >= caps.min_gap_days).all()
    k = caps.max_messages  # the message k places later must be at least window_days later
    same_user_k = messages["user_id"].to_numpy()[k:] == messages["user_id"].to_numpy()[:-k]
    assert ((day[k:] - day[:-k])[same_user_k] >= caps.window_days).all()

    purchases = events[events["event"] == "purchase"]
    unsubscribed = events[events["event"] == "unsubscribe"].groupby("user_id")["ts"].min()
    for _, row in decisions[decisions["offer_id"] != "none"].iterrows():
        bought = purchases[(purchases["user_id"] == row["user_id"]) & (purchases["ts"] < row["ts"])]
        assert not row["user_id"] in unsubscribed or unsubscribed[row["user_id"]] >= row["ts"]
        if row["offer_id"] == "points":
            assert len(bought) >= 2
        if row["offer_id"] == "pct20":
            assert (row["ts"].normalize() - bought["ts"].max().normalize()).days >= 30


def test_propensities_are_the_logged_distribution_and_keep_epsilon_support(bundle, events):
    as_of = START + pd.Timedelta(hours=9)
    inputs = customer_inputs(bundle, events, None, as_of, START)
    table = score_customers(bundle, events, None, ScoringConfig(as_of=as_of, exploration=Exploration(epsilon=0.2), seed=3))
    probs = table[[prob_column(o) for o in bundle.action_ids]].to_numpy()
    np.testing.assert_array_equal(table["user_id"], inputs.user_ids)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    chosen = probs[np.arange(len(table)), [bundle.action_ids.index(o) for o in table["offer_id"]]]
    np.testing.assert_array_equal(table["propensity"], chosen)
    assert (probs[~inputs.mask] == 0).all()
    floor = 0.2 / inputs.mask.sum(axis=1, keepdims=True)
    assert (probs[inputs.mask] >= np.broadcast_to(floor, probs.shape)[inputs.mask] - 1e-12).all()
    policy = bundle.action_probs(inputs.features, inputs.mask)
    np.testing.assert_allclose(probs, 0.8 * policy + 0.2 * inputs.mask / inputs.mask.sum(axis=1, keepdims=True), atol=1e-12)

    greedy = score_customers(bundle, events, None, ScoringConfig(as_of=as_of, exploration=Exploration(epsilon=0.0, greedy=True)))
    np.testing.assert_array_equal(greedy["offer_id"], np.asarray(bundle.action_ids)[policy.argmax(axis=1)])
    assert (greedy["propensity"] == 1.0).all()
    hot = score_customers(bundle, events, None, ScoringConfig(as_of=as_of, exploration=Exploration(epsilon=0.0, temperature=1000.0)))
    flat = hot[[prob_column(o) for o in bundle.action_ids]].to_numpy()
    np.testing.assert_allclose(flat, inputs.mask / inputs.mask.sum(axis=1, keepdims=True), atol=0.01)


def test_scoring_is_seeded(bundle, events):
    config = ScoringConfig(as_of=START + pd.Timedelta(hours=9), exploration=Exploration(epsilon=0.5), seed=4)
    first, again = score_customers(bundle, events, None, config), score_customers(bundle, events, None, config)
    pd.testing.assert_frame_equal(first, again)
    other = score_customers(bundle, events, None, ScoringConfig(as_of=config.as_of, exploration=config.exploration, seed=5))
    assert (other["offer_id"] != first["offer_id"]).any()


def test_scored_decisions_close_the_loop_through_ope(bundle, events, logs, tmp_path, capsys):
    """Four weekly rounds of `offerpilot score`, each reading the previous rounds as contact history; the decisions
    pass validation, and `offerpilot ope` on them with the simulated events accepts the propensities: evaluating the
    logged distribution itself, IPS gives back exactly what the logs earned."""
    history = tmp_path / "history.parquet"
    rounds = []
    for week in range(4):
        out = tmp_path / f"week{week}.parquet"
        as_of = START + pd.Timedelta(days=7 * week, hours=9)
        args = ["score", "--bundle", str(bundle.folder), "--customers", str(logs / "events.parquet"), "--out", str(out),
                "--as-of", str(as_of), "--period-start", str(START.date()), "--seed", str(week), "--epsilon", "0.3"]
        assert main(args + (["--decisions", str(history)] if rounds else [])) == 0
        rounds.append(read_table(out))
        write_table(pd.concat(rounds, ignore_index=True), history)
    decisions = read_decisions(history, bundle.catalog, users=set(events["user_id"]))
    assert len(decisions) == 4 * 400 and decisions["policy_id"].str.endswith("+eps0.3+T1").all()
    assert main(["validate", str(logs / "events.parquet"), str(history)]) == 0

    report = tmp_path / "ope"
    assert main(["ope", "--events", str(logs / "events.parquet"), "--decisions", str(history), "--policy", str(history),
                 "--bootstrap", "50", "--no-sequential", "--out", str(report)]) == 0
    result = json.loads((report / "ope.json").read_text())
    assert result["n_decisions"] == 1600
    ips = next(r for r in result["estimates"] if r["estimator"] == "ips")
    assert ips["value"] == pytest.approx(result["logged_per_decision"], rel=1e-9, abs=1e-12)
    capsys.readouterr()


def test_bad_inputs_are_refused_with_the_file_row_and_field(bundle, events, tmp_path, capsys):
    broken = events.head(200).copy()
    broken.loc[5, "event"] = "teleport"
    write_table(broken, tmp_path / "events.csv")
    out = tmp_path / "out.parquet"
    assert main(["score", "--bundle", str(bundle.folder), "--customers", str(tmp_path / "events.csv"), "--out", str(out)]) == 1
    assert "events.csv, row 6, field 'event'" in capsys.readouterr().err
    assert not out.exists()
    write_table(events.head(200), tmp_path / "good.csv")
    assert main(["score", "--bundle", str(bundle.folder), "--customers", str(tmp_path / "good.csv"), "--out", str(out), "--as-of", "1990-01-01"]) == 2
    assert "no customer has an event before 1990-01-01" in capsys.readouterr().err
    assert main(["score", "--bundle", str(bundle.folder), "--customers", str(tmp_path / "good.csv"), "--out", str(out),
                 "--as-of", "2025-06-01", "--period-start", "2024-01-01"]) == 2
    assert "the policy plans over days 0 to 364" in capsys.readouterr().err
    assert main(["score", "--bundle", str(bundle.folder), "--customers", str(tmp_path / "good.csv"), "--out", str(out), "--epsilon", "1.5"]) == 2
    assert "epsilon must be in [0, 1]" in capsys.readouterr().err
    assert not out.exists()

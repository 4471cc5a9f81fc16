"""Batch scoring: customers' histories in the data contract -> one decision each, in the decisions contract.

Each customer with an event before the decision time ``as_of`` gets the features a policy sees (rebuilt from
their events and the messages the shop sent them, :mod:`offerpilot.envs.log_state`, plus the encoder's features
for encoder policies) and the actions the contact caps and eligibility allow (:func:`~offerpilot.envs.masks.action_mask`).
The bundle decides with exploration, and the table it writes is a decisions log (``user_id``, ``ts``, ``offer_id``,
``propensity``, ``policy_id``, ``prob_<offer_id>`` for every offer) plus ``expected_value``: once the customers'
next events are logged, ``offerpilot ope`` reads it like any other decisions log, and the loop closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.deployment.bundle import Bundle, Decisions, Exploration
from offerpilot.envs.log_state import observable_state_from_logs
from offerpilot.envs.masks import action_mask
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.observers import RawFeatureObserver
from offerpilot.errors import InputError
from offerpilot.schema import prob_column
from offerpilot.tables import read_logs, write_table


@dataclass(frozen=True)
class ScoringConfig:
    """When decisions are taken, how they explore, and how they are seeded and labelled."""

    as_of: str | pd.Timestamp | None = None
    """Decision time: only events and messages strictly before it count (``None``: 1 s after the latest one)."""
    period_start: str | pd.Timestamp | None = None
    """Day 0 of the decision period the policy plans over (its ``progress`` feature); ``None``: the day of ``as_of``."""
    exploration: Exploration = field(default_factory=Exploration)
    seed: int = 0
    """Seeds the draw of each customer's action."""
    policy_id: str | None = None
    """``policy_id`` written with every decision (``None``: the bundle's id and the exploration setting)."""


@dataclass(frozen=True)
class CustomerInputs:
    """What the policy sees of ``n`` customers at ``as_of``."""

    user_ids: np.ndarray
    """(n,) object."""
    as_of: pd.Timestamp
    features: np.ndarray
    """(n, n_features) float32, in the bundle's feature order."""
    mask: np.ndarray
    """(n, n_actions) bool: the actions the caps and eligibility allow."""


def decision_time(events: pd.DataFrame, decisions: pd.DataFrame | None) -> pd.Timestamp:
    """One second after the latest event or logged decision: the default ``as_of``."""
    latest = events["ts"].max() if decisions is None or decisions.empty else max(events["ts"].max(), decisions["ts"].max())
    return pd.Timestamp(latest) + pd.Timedelta(seconds=1)


def customer_inputs(
    bundle: Bundle,
    events: pd.DataFrame,
    decisions: pd.DataFrame | None,
    as_of: pd.Timestamp,
    period_start: pd.Timestamp | None = None,
) -> CustomerInputs:
    """Features and legal actions at ``as_of`` of every customer with an event before it (in ``user_id`` order).

    :param events: validated events (``read_events``): the customers' histories.
    :param decisions: validated past decisions (``read_decisions``), or ``None`` when the shop sent nothing yet:
        their messages are the contact history the caps count, and the live offers.
    :param period_start: day 0 of the decision period (default: the day of ``as_of``).
    """
    as_of = pd.Timestamp(as_of)
    start = (pd.Timestamp(period_start) if period_start is not None else as_of).normalize()
    objective = ObjectiveConfig(**bundle.manifest.objective)
    day = (as_of - start).days
    if not 0 <= day < objective.horizon_days:
        raise InputError(f"as_of {as_of} is day {day} of the decision period starting {start.date()}; the policy plans over "
                         f"days 0 to {objective.horizon_days - 1}: choose a period start at most {objective.horizon_days - 1} days before it")
    users = pd.unique(events.loc[events["ts"] < as_of, "user_id"])
    if len(users) == 0:
        raise InputError(f"no customer has an event before {as_of}: nothing to score")
    sent = pd.DataFrame(columns=["user_id", "ts", "offer_id"]) if decisions is None else decisions.loc[decisions["offer_id"] != "none", ["user_id", "ts", "offer_id"]]
    queries = pd.DataFrame({"user_id": users, "ts": as_of, "offer_id": "none"}).astype({"ts": events["ts"].dtype})
    moments = pd.concat([sent.astype(queries.dtypes.to_dict()), queries], ignore_index=True)
    state = observable_state_from_logs(events, moments, bundle.catalog, start)
    rows = slice(len(sent), None)
    features = RawFeatureObserver(bundle.catalog, objective).observe(None, state)[rows]
    if bundle.tokenizer is not None:
        features = np.concatenate([features, bundle.encoder_features(events, as_of, users)], axis=1)
    return CustomerInputs(np.asarray(users, dtype=object), as_of, features, action_mask(state, bundle.catalog)[rows])


def decisions_table(bundle: Bundle, inputs: CustomerInputs, decisions: Decisions, policy_id: str) -> pd.DataFrame:
    """The decisions contract's columns, ``prob_<offer_id>`` for every action, and ``expected_value``."""
    table = pd.DataFrame({
        "user_id": inputs.user_ids,
        "ts": np.full(len(inputs.user_ids), inputs.as_of.to_datetime64()),
        "offer_id": np.asarray(bundle.action_ids, dtype=object)[decisions.actions],
        "propensity": decisions.propensities,
        "policy_id": policy_id,
    })
    probs = pd.DataFrame(decisions.probabilities, columns=[prob_column(o) for o in bundle.action_ids])
    return pd.concat([table, probs, pd.DataFrame({"expected_value": decisions.values})], axis=1)


def score_customers(bundle: Bundle, events: pd.DataFrame, decisions: pd.DataFrame | None, config: ScoringConfig = ScoringConfig()) -> pd.DataFrame:
    """One decision per customer of ``events`` at ``config.as_of`` (see :func:`customer_inputs`, :func:`decisions_table`)."""
    as_of = pd.Timestamp(config.as_of) if config.as_of is not None else decision_time(events, decisions)
    inputs = customer_inputs(bundle, events, decisions, as_of, config.period_start)
    chosen = bundle.decide(inputs.features, inputs.mask, config.exploration, np.random.default_rng(config.seed))
    return decisions_table(bundle, inputs, chosen, config.policy_id or f"{bundle.policy_id}+{config.exploration.tag}")


def score_file(
    bundle: Bundle, customers: str | Path, out: str | Path, decisions: str | Path | None = None, config: ScoringConfig = ScoringConfig()
) -> pd.DataFrame:
    """Read and validate the customers' events (and past decisions), score them, write ``out`` atomically
    (Parquet or CSV by its suffix) and return the table."""
    events, past = read_logs(customers, decisions, bundle.catalog)
    table = score_customers(bundle, events, past, config)
    write_table(table, out)
    return table


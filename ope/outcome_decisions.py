"""The decisions of an outcome log (:mod:`offerpilot.outcome_log`) as arrays for off-policy evaluation.

The reward is the outcome column itself; the reward model reads the log's context columns (and the slot, one-hot);
every action is legal (there is no history to apply caps to); a customer's rows form one trajectory, and without
customers each row is its own.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from offerpilot.ope.design import context_matrix
from offerpilot.ope.logged_decisions import LoggedDecisions
from offerpilot.outcome_log import OutcomeLog
from offerpilot.schema import PROB_PREFIX


def action_set(logged: pd.Series, named: list[str]) -> tuple[str, ...]:
    """The actions of a log without a catalog: every id logged or ``named`` (e.g. by a target table's ``prob_``
    columns), integers in numeric order, otherwise in text order."""
    ids = sorted(set(logged.dropna().astype(str)) | set(named))
    if all(re.fullmatch(r"-?\d+", i) for i in ids):
        ids.sort(key=int)
    return tuple(ids)


def outcome_decisions(table: pd.DataFrame, log: OutcomeLog, actions: tuple[str, ...]) -> LoggedDecisions:
    """Arrays of a validated outcome log (``read_outcome_log``), its rows in table order, actions indexed in ``actions``."""
    n = len(table)
    action = table[log.action].map({a: i for i, a in enumerate(actions)})
    if action.isna().any():  # read_outcome_log checks the ids against the same action set
        raise ValueError(f"actions outside the action set at rows {np.flatnonzero(action.isna().to_numpy())[:5].tolist()}")
    customers = "user_id" in table
    trajectory = pd.factorize(table["user_id"])[0].astype(np.int64) if customers else np.arange(n, dtype=np.int64)
    step = table.groupby("user_id", sort=False).cumcount().to_numpy(np.int64) if customers else np.zeros(n, np.int64)
    if "ts" in table:
        ts = table["ts"].to_numpy()
        day = ((ts - ts.min()) // np.timedelta64(1, "D")).astype(np.int64)
    else:
        ts, day = np.full(n, np.datetime64("NaT"), "datetime64[us]"), np.zeros(n, np.int64)
    prob_columns = [PROB_PREFIX + a for a in actions]
    outcome = table[log.outcome].to_numpy(np.float64)
    return LoggedDecisions(
        user_id=(table["user_id"] if customers else pd.Series(np.arange(n)).astype(str)).to_numpy(object),
        ts=ts,
        day=day,
        action=action.to_numpy(np.int64),
        pscore=table[log.propensity].to_numpy(np.float64),
        logging_probs=table[prob_columns].to_numpy(np.float64) if set(prob_columns) <= set(table.columns) else None,
        features=np.zeros((n, 0), np.float32),
        legal=np.ones((n, len(actions)), bool),
        margin=outcome,
        reward=outcome,
        margin_short=outcome,
        margin_clv=outcome,
        trajectory=trajectory,
        step=step,
        n_unattributed_purchases=0,
        context=context_matrix(table, log.context_columns(table.columns), categorical=(log.slot,) if log.slot else ()),
        table=table,
    )

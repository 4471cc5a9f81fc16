"""The target policy of an off-policy evaluation, as action probabilities at every logged decision.

A target is a policy object (a baseline by name, or anything meeting :class:`Policy`) evaluated on
the features and legal actions rebuilt from the logs (a saved policy likewise, through
``offerpilot.deployment.target_probs``); or a table giving the probabilities directly (one ``prob_<action>`` column
per action, keyed by decision columns such as ``user_id`` and ``ts``, or a slot).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.policy import Policy
from offerpilot.errors import DataError, InputError, Problem
from offerpilot.ope.logged_decisions import LoggedDecisions
from offerpilot.schema import PROB_PREFIX
from offerpilot.tables import read_table
from offerpilot.validation import target_rows, unmatched_problem, validate_target_table


def policy_probs(policy: Policy, data: LoggedDecisions) -> np.ndarray:
    """``policy``'s action probabilities (n_decisions, n_actions) at the logged decisions."""
    return np.asarray(policy.action_probs(data.features, data.legal), np.float64)


def check_actions(action_ids: tuple[str, ...], catalog: OfferCatalog, source: Path) -> None:
    if tuple(action_ids) != tuple(catalog.ids):
        raise InputError(f"{source}: the policy chooses among {list(action_ids)}, the logs' catalog has {list(catalog.ids)}")


def at_decision_times(data: LoggedDecisions, encode: Callable[[pd.Timestamp, np.ndarray], np.ndarray]) -> np.ndarray:
    """``encode(ts, user_ids)`` for the customers of every distinct decision time, stacked in decision order."""
    times, group = np.unique(data.ts, return_inverse=True)
    parts = [(np.flatnonzero(group == g), encode(pd.Timestamp(t), data.user_id[group == g])) for g, t in enumerate(times)]
    out = np.empty((data.n_decisions, parts[0][1].shape[1]), np.float32)
    for rows, values in parts:
        out[rows] = values
    return out


def table_probs(path: str | Path, data: LoggedDecisions, actions: tuple[str, ...]) -> np.ndarray:
    """Read a table of target probabilities and align it with the logged decisions.

    The table has one ``prob_<action>`` column per action and is keyed by its other columns, each a column of the
    decisions: ``user_id`` and ``ts`` for a policy that decides per customer and time, a slot or position for a
    context-free policy per slot, none for one distribution everywhere. Every decision needs exactly one row;
    probabilities must be in [0, 1], sum to 1, and give no mass to actions the caps or eligibility forbade. Every
    problem is reported with its row and column.
    """
    source = str(path)
    table = read_table(path).reset_index(drop=True)
    logged = data.table if data.table is not None else pd.DataFrame({"user_id": data.user_id, "ts": data.ts})
    problems, keys = validate_target_table(table, source, actions, logged.columns)
    if problems:
        raise DataError(problems)
    columns = [PROB_PREFIX + a for a in actions]
    if not keys:  # one distribution for every decision
        return np.repeat(table[columns].to_numpy(np.float64), data.n_decisions, axis=0)
    rows = target_rows(logged.reset_index(drop=True), table, keys)
    if (rows < 0).any():
        raise DataError([unmatched_problem(logged.reset_index(drop=True), rows, keys, source)])
    aligned = table[columns].to_numpy(np.float64)[rows]
    illegal = (aligned > 0) & ~data.legal
    if illegal.any():
        i, j = next(zip(*np.nonzero(illegal)))
        raise DataError(
            [Problem(source, int(rows[i]) + 1, columns[j], f"{int(illegal.any(axis=1).sum())} rows give probability to offers the caps or eligibility forbid at that decision")]
        )
    return aligned

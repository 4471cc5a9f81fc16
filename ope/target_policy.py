"""The target policy of an off-policy evaluation, as action probabilities at every logged decision.

A target is a policy object (a baseline by name, or anything meeting :class:`Policy`) evaluated on
the features and legal actions rebuilt from the logs (a saved policy likewise, through
``offerpilot.deployment.target_probs``); or a table giving the probabilities directly (``user_id``, ``ts``, one ``prob_<offer_id>`` column per
catalog offer).
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

PROB_TOLERANCE = 1e-6


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


def table_probs(path: str | Path, data: LoggedDecisions, catalog: OfferCatalog) -> np.ndarray:
    """Read a table of target probabilities and align it with the logged decisions.

    Every decision needs exactly one row (matched on ``user_id`` and ``ts``); probabilities must be in
    [0, 1], sum to 1, and give no mass to actions the caps or eligibility forbade. Every problem is
    reported with its row and column.
    """
    source = str(path)
    table = read_table(path)
    columns = [PROB_PREFIX + o for o in catalog.ids]
    missing = [c for c in ("user_id", "ts", *columns) if c not in table]
    if missing:
        raise DataError([Problem(source, None, c, "missing column") for c in missing])
    table = table.reset_index(drop=True)
    problems: list[Problem] = []
    duplicated = table.duplicated(["user_id", "ts"], keep="first").to_numpy()
    problems += [Problem(source, int(i) + 1, "ts", "a second row for the same user_id and ts") for i in np.flatnonzero(duplicated)[:20]]
    probs = table[columns].to_numpy(np.float64)
    bad_value = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    for i, j in zip(*np.nonzero(bad_value)):
        if len(problems) < 50:
            problems.append(Problem(source, int(i) + 1, columns[j], f"a probability must be in [0, 1], got {probs[i, j]!r}"))
    off = np.abs(np.nansum(probs, axis=1) - 1.0) > PROB_TOLERANCE
    problems += [Problem(source, int(i) + 1, None, f"probabilities sum to {np.nansum(probs[i]):.6f}, not 1") for i in np.flatnonzero(off)[:20]]
    if problems:
        raise DataError(problems)

    keys = pd.DataFrame({"user_id": data.user_id, "ts": data.ts})
    merged = keys.merge(table[["user_id", "ts", *columns]].assign(_row=np.arange(len(table))), on=["user_id", "ts"], how="left")
    unmatched = np.flatnonzero(merged["_row"].isna().to_numpy())
    if unmatched.size:
        examples = ", ".join(f"{data.user_id[i]} at {pd.Timestamp(data.ts[i])}" for i in unmatched[:3])
        raise DataError([Problem(source, None, None, f"{unmatched.size} logged decisions have no target row (e.g. {examples})")])
    aligned = merged[columns].to_numpy(np.float64)
    illegal = (aligned > 0) & ~data.legal
    if illegal.any():
        rows = merged["_row"].to_numpy(np.int64)
        i, j = next(zip(*np.nonzero(illegal)))
        raise DataError(
            [Problem(source, int(rows[i]) + 1, columns[j], f"{int(illegal.any(axis=1).sum())} rows give probability to offers the caps or eligibility forbid at that decision")]
        )
    return aligned

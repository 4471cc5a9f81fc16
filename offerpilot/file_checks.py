"""``offerpilot validate``: every problem of every file that the commands read, each with its file, row and field.

A file is told apart by its columns: events (``event``, ``amount``), decisions (``propensity``, ``policy_id``) and
target-policy tables (``prob_<action>`` columns, keyed by decision columns, as ``offerpilot ope --policy`` reads them).
Decisions are checked against the users seen in the events, and a target table against the decisions it is for. With
an :class:`OutcomeLog`, decisions files are outcome logs (a decision per row with its outcome column) and need no events.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from offerpilot.catalog import OfferCatalog, default_catalog
from offerpilot.errors import DataError, Problem
from offerpilot.outcome_log import OutcomeLog, validate_outcome_log
from offerpilot.schema import DECISIONS_REQUIRED, EVENTS_REQUIRED, PROB_PREFIX, cast_column
from offerpilot.tables import read_table
from offerpilot.validation import target_rows, unmatched_problem, validate_decisions, validate_events, validate_target_table


def validate_paths(paths: Iterable[str | Path], catalog: OfferCatalog | None = None, outcome_log: OutcomeLog | None = None) -> dict[str, list[Problem]]:
    """Read and validate each file; the problems per file (an empty list for a clean one), in the order given.

    When every file could be read and recognised, decisions are also checked against the users seen in the events,
    and target tables against the decisions (their keys, and a row for every decision). ``outcome_log``: read
    decisions files as outcome logs, whose actions are the ids they log and the targets name (no catalog).
    """
    catalog = default_catalog() if catalog is None else catalog
    results: dict[str, list[Problem]] = {}
    tables: dict[str, dict[str, pd.DataFrame]] = {"events": {}, "decisions": {}, "target": {}}
    for path in paths:
        key = str(path)
        try:
            df = read_table(path)
        except DataError as e:
            results[key] = e.problems
            continue
        kind = table_kind(df, outcome_log)
        if kind is None:
            results[key] = [Problem(key, None, None, _unrecognised(df, outcome_log))]
            continue
        results[key] = []
        tables[kind][key] = df
    all_read = all(not problems for problems in results.values())

    events, decisions, targets = tables["events"], tables["decisions"], tables["target"]
    for key, df in events.items():
        results[key] = validate_events(df, key, catalog)
    if outcome_log is not None:
        named = {str(c)[len(PROB_PREFIX):] for df in targets.values() for c in df.columns if str(c).startswith(PROB_PREFIX)}
        logged = {str(a) for df in decisions.values() if outcome_log.action in df for a in cast_column(df[outcome_log.action], "string").dropna()}
        actions = tuple(sorted(named | logged))
        for key, df in decisions.items():
            results[key] = validate_outcome_log(df, key, outcome_log)
    else:
        actions = catalog.ids
        users = _users(events) if all_read else None
        for key, df in decisions.items():
            results[key] = validate_decisions(df, key, catalog, users)
    for key, df in targets.items():
        results[key] = _validate_target(df, key, actions, decisions, all_read and not any(results[k] for k in decisions))
    return results


def table_kind(df: pd.DataFrame, outcome_log: OutcomeLog | None = None) -> str | None:
    """'events', 'decisions' or 'target' from the columns only one of the tables has; ``None`` when unclear."""
    columns = {str(c) for c in df.columns}
    probs = any(c.startswith(PROB_PREFIX) for c in columns)
    logged = {"propensity", "policy_id"} if outcome_log is None else {outcome_log.propensity, outcome_log.outcome}
    kinds = [kind for kind, has in (("events", bool(columns & {"event", "amount"})), ("decisions", bool(columns & logged)),
                                    ("target", probs and not columns & logged)) if has]
    return kinds[0] if len(kinds) == 1 else None


def _validate_target(table: pd.DataFrame, source: str, actions: tuple[str, ...], decisions: dict[str, pd.DataFrame], check_rows: bool) -> list[Problem]:
    """A target table's problems: on its own, and when one clean decisions file is given, against its decisions."""
    if len(decisions) != 1:  # which decisions it is for is unknown: check it alone, keyed by any of its columns
        own = tuple(str(c)[len(PROB_PREFIX):] for c in table.columns if str(c).startswith(PROB_PREFIX))
        return validate_target_table(table, source, own if not decisions else actions, table.columns)[0]
    (logged,) = decisions.values()
    problems, keys = validate_target_table(table, source, actions, logged.columns)
    if problems or not keys or not check_rows:
        return problems
    rows = target_rows(logged.reset_index(drop=True), table.reset_index(drop=True), keys)
    return [unmatched_problem(logged.reset_index(drop=True), rows, keys, source)] if (rows < 0).any() else []


def _users(events: dict[str, pd.DataFrame]) -> set[str] | None:
    """The user ids of the events files; ``None`` without any (events without rows are their own problem)."""
    users: set[str] = set()
    for df in events.values():
        if "user_id" in df.columns:
            users.update(cast_column(df["user_id"], "string").dropna())
    return users or None


def _unrecognised(df: pd.DataFrame, outcome_log: OutcomeLog | None) -> str:
    logged = f"columns {list(DECISIONS_REQUIRED)}" if outcome_log is None else f"an outcome log's {[outcome_log.propensity, outcome_log.outcome]}"
    return (f"neither an events table (columns {list(EVENTS_REQUIRED)}), a decisions table ({logged}) nor a target table "
            f"(prob_<action> columns); it has columns {[str(c) for c in df.columns]}")

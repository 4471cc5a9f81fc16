"""Decision logs whose outcome is a column of their own: the shape of most randomized tests and bandit logs.

Each row is one decision: the action taken, the probability the logging policy gave it, and what followed
(a click, a conversion, revenue or margin), with optional context columns (user features, the slot or position
the action was shown in) and optional customers (``user_id``: rows of one customer are resampled together;
without it, each row stands alone). No events table is needed. :class:`OutcomeLog` names the columns; the
checks follow the data contract's: every problem with its file, row and column, nothing dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.errors import DataError, InputError, Problem
from offerpilot.schema import PROB_PREFIX, Column, cast_column, prob_spec
from offerpilot.tables import read_table
from offerpilot.validation import check_columns, check_distribution, show, validate_context


@dataclass(frozen=True)
class OutcomeLog:
    """Which columns of a decision log hold what (``offerpilot ope --outcome COLUMN`` and its column flags)."""

    outcome: str
    """The decision's reward: a number per row (click or conversion 0/1, revenue, margin)."""
    action: str = "offer_id"
    """The action taken: text or integer ids."""
    propensity: str = "propensity"
    """The probability in (0, 1] the logging policy gave the action taken."""
    context: tuple[str, ...] = ()
    """Columns the reward model reads (numbers as they are, text one-hot)."""
    context_prefix: str | None = None
    """Every column whose name starts with this is context too (e.g. ``user_feature_``)."""
    slot: str | None = None
    """The slot or position the action filled: context for the reward model, and a key a target table may be given by."""

    def __post_init__(self) -> None:
        named = [self.outcome, self.action, self.propensity, *self.context, *([self.slot] if self.slot else [])]
        repeated = sorted({c for c in named if named.count(c) > 1})
        if repeated:
            raise InputError(f"each column has one role: {repeated} named more than once among the outcome, action, propensity, slot and context")
        if self.context_prefix == "":
            raise InputError("--context-prefix must not be empty (it would make every column context)")

    def context_columns(self, columns: pd.Index) -> list[str]:
        """The context columns of a table with ``columns``: the named ones, then the prefix's in file order, then the slot."""
        own = {self.outcome, self.action, self.propensity, self.slot}
        out = context_columns(columns, self.context, self.context_prefix, exclude=own)
        return out + ([self.slot] if self.slot else [])

    def specs(self, columns: pd.Index) -> tuple[Column, ...]:
        """The typed columns: action, propensity and outcome, and ``user_id``, ``ts`` and ``prob_`` columns when present."""
        specs = [
            Column(self.action, "string", True, False, "the action taken"),
            Column(self.propensity, "float", True, False, "the logging policy's probability of the action taken"),
            Column(self.outcome, "float", True, False, "the decision's outcome"),
        ]
        specs += [Column(name, kind, False, False, "") for name, kind in (("user_id", "string"), ("ts", "timestamp")) if name in columns]
        specs += [prob_spec(str(c)) for c in columns if str(c).startswith(PROB_PREFIX)]
        return tuple(specs)


def context_columns(columns: object, named: tuple[str, ...], prefix: str | None, exclude: set[str | None] = frozenset()) -> list[str]:
    """Context columns of a table with ``columns``: the ``named`` ones, then those starting with ``prefix`` (in file
    order, leaving out ``exclude``), each once."""
    prefixed = [str(c) for c in columns if prefix and str(c).startswith(prefix) and str(c) not in exclude]
    return list(dict.fromkeys([*named, *prefixed]))


def validate_outcome_log(df: pd.DataFrame, source: str, log: OutcomeLog, actions: tuple[str, ...] | None = None) -> list[Problem]:
    """Every problem in an outcome log; empty when it can be evaluated. ``actions``: the action set the ids must
    come from (``None``: any id)."""
    problems, canon, report = check_columns(df, source, log.specs(df.columns))
    if not len(df):
        report.column(None, "the table has no rows; a log needs at least one")
    if log.context_prefix and not any(str(c).startswith(log.context_prefix) for c in df.columns):
        report.column(None, f"no column starts with the context prefix {log.context_prefix!r}; the file has columns {[str(c) for c in df.columns]}")
    if log.action in canon and actions is not None:
        action = canon[log.action]
        unknown = action.notna() & ~action.isin(actions)
        report(log.action, unknown, lambda i: f"unknown action {show(action.iat[i])}; the actions are {_listed(actions)}")
    if log.propensity in canon:
        p = canon[log.propensity]
        report(log.propensity, p.notna() & ~((p > 0) & (p <= 1)), lambda i: f"{log.propensity} must be in (0, 1], got {show(p.iat[i])}")
    if log.outcome in canon:
        r = canon[log.outcome]
        report(log.outcome, np.isinf(r.to_numpy()), lambda i: f"{log.outcome} must be finite, got {show(r.iat[i])}")
    problems += validate_context(df, source, log.context_columns(df.columns))
    prob_names = [str(c) for c in df.columns if str(c).startswith(PROB_PREFIX)]
    if prob_names and actions is not None:
        chosen = {"offer_id": canon.get(log.action), "propensity": canon.get(log.propensity)}
        check_distribution(report, canon | {k: v for k, v in chosen.items() if v is not None}, prob_names, actions)
    return problems


def read_outcome_log(path: str | Path, log: OutcomeLog, actions: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read and validate an outcome log: the action column as text ids, propensity and outcome as floats, rows
    sorted by ``user_id`` then ``ts`` where the table has them (stably: file order among ties)."""
    df = read_table(path)
    problems = validate_outcome_log(df, str(path), log, actions)
    if problems:
        raise DataError(problems)
    df[log.action] = cast_column(df[log.action], "string")
    for name in (log.propensity, log.outcome):
        df[name] = cast_column(df[name], "float")
    for name in ("ts", "user_id"):
        if name in df:
            df = df.sort_values(name, kind="stable")
    return df.reset_index(drop=True)


def _listed(actions: tuple[str, ...]) -> str:
    """The action set for a message: all of a short one, the first ten of a long one."""
    return str(list(actions)) if len(actions) <= 12 else f"{', '.join(map(repr, actions[:10]))}, ... ({len(actions)} in all)"

"""Validation of the log tables against the data contract in :mod:`offerpilot.schema`.

Every check is vectorised over rows and reports each bad row as a :class:`Problem` naming the file,
the 1-based data row and the column, so a user can fix their export in one pass. Nothing is dropped:
a table either passes or is rejected with the full list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import pandas as pd

from offerpilot.catalog import OfferCatalog, default_catalog
from offerpilot.errors import Problem
from offerpilot.schema import (
    DECISIONS_COLUMNS,
    EVENT_KINDS,
    EVENTS_COLUMNS,
    PROB_PREFIX,
    Column,
    cast_column,
    is_blank,
    prob_column,
    prob_spec,
)

MAX_ROWS_PER_CHECK = 1000
"""Rows listed per check; the rest are counted in one summary problem so a broken export stays readable."""

FUTURE_SLACK = pd.Timedelta(days=1)
"""How far past the clock a timestamp may run (time zones written as UTC, clocks that disagree); anything later is
refused, since a log cannot hold what has not happened and a future event would move every default decision time."""

PROB_TOL = 1e-6
"""Tolerance on the action distribution: rows sum to 1, and the chosen offer's probability equals ``propensity``."""


def validate_events(
    df: pd.DataFrame, source: str, catalog: OfferCatalog | None = None, now: pd.Timestamp | None = None
) -> list[Problem]:
    """Every problem in an events table (``source`` names it in the problems); empty when it meets the contract.

    Offer ids are checked against ``catalog`` (the default catalog when ``None``); timestamps against ``now`` (UTC;
    ``None``: the clock) plus :data:`FUTURE_SLACK`.
    """
    catalog = default_catalog() if catalog is None else catalog
    problems, canon, report = check_columns(df, source, EVENTS_COLUMNS)
    _check_time(report, df, canon, now)

    if "event" in canon:
        event = canon["event"]
        report(
            "event",
            event.notna() & ~event.isin(EVENT_KINDS),
            lambda i: f"unknown event kind {show(event.iat[i])}; expected one of {list(EVENT_KINDS)}",
        )
    if "amount" in canon:
        amount = canon["amount"]
        if "event" in canon:  # a blank amount; one that is not a number is already reported
            purchase = (canon["event"] == "purchase").to_numpy(dtype=bool, na_value=False)
            missing = purchase & is_blank(df["amount"])
            report("amount", missing, lambda i: "a purchase needs an amount (the money the customer paid)")
        _check_money(report, "amount", amount)
    if "discount" in canon:
        _check_money(report, "discount", canon["discount"])
    if "rating" in canon:
        rating = canon["rating"]
        stars = rating.isna() | rating.isin([1.0, 2.0, 3.0, 4.0, 5.0])
        report("rating", ~stars.to_numpy(dtype=bool), lambda i: f"a rating is 1 to 5 stars, got {show(rating.iat[i])}")
    if "offer_id" in canon:
        _check_offer_ids(report, canon["offer_id"], catalog)
    _check_rows(report, df, canon)
    return problems


def validate_decisions(
    df: pd.DataFrame,
    source: str,
    catalog: OfferCatalog | None = None,
    users: Collection[str] | None = None,
    now: pd.Timestamp | None = None,
) -> list[Problem]:
    """Every problem in a decisions table; empty when it meets the contract.

    Offer ids and ``prob_`` columns are checked against ``catalog`` (the default catalog when ``None``);
    when ``users`` (the user ids seen in the events) is given, a decision for anyone else is a problem; timestamps
    are checked as in :func:`validate_events`.
    """
    catalog = default_catalog() if catalog is None else catalog
    prob_names = [c for c in df.columns if isinstance(c, str) and c.startswith(PROB_PREFIX)]
    specs = DECISIONS_COLUMNS + tuple(prob_spec(c) for c in prob_names)
    problems, canon, report = check_columns(df, source, specs)
    _check_time(report, df, canon, now)

    if "offer_id" in canon:
        _check_offer_ids(report, canon["offer_id"], catalog)
    if "propensity" in canon:
        p = canon["propensity"]
        out_of_range = p.notna() & ~((p > 0) & (p <= 1))
        report("propensity", out_of_range, lambda i: f"propensity must be in (0, 1], got {show(p.iat[i])}")
    if prob_names:
        check_distribution(report, canon, prob_names, catalog.ids)
    if users is not None and "user_id" in canon:
        uid = canon["user_id"]
        unknown = uid.notna() & ~uid.isin(list(users))
        report("user_id", unknown, lambda i: f"user {show(uid.iat[i])} never appears in the events")
    _check_rows(report, df, canon)
    return problems


def validate_context(df: pd.DataFrame, source: str, columns: list[str]) -> list[Problem]:
    """Problems with a table's context columns (read by the reward model): each must exist and have a value on every row."""
    problems: list[Problem] = []
    report = Reporter(source, problems)
    for name in columns:
        if name not in df.columns:
            report.column(name, f"missing context column; the file has columns {[str(c) for c in df.columns]}")
        else:
            report(name, is_blank(df[name]), lambda i, name=name: f"{name} is missing; a context column needs a value on every row")
    return problems


class Reporter:
    """Appends problems for one file: one per bad row, up to :data:`MAX_ROWS_PER_CHECK` per check, then a count
    of the rest; or one for a whole column."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems

    def __call__(self, field: str | None, bad: pd.Series | np.ndarray, message: Callable[[int], str]) -> None:
        """Report rows where ``bad`` (shape (n,), bool) holds; ``message(i)`` describes 0-based row ``i``."""
        rows = np.flatnonzero(np.asarray(bad, dtype=bool))
        for i in rows[:MAX_ROWS_PER_CHECK]:
            self.problems.append(Problem(self.source, int(i) + 1, field, message(int(i))))
        if len(rows) > MAX_ROWS_PER_CHECK:
            more = len(rows) - MAX_ROWS_PER_CHECK
            summary = f"{more} more rows with the same problem as row {rows[0] + 1} (first {MAX_ROWS_PER_CHECK} listed)"
            self.problems.append(Problem(self.source, None, field, summary))

    def column(self, field: str | None, message: str) -> None:
        """Report a problem with a whole column (``None``: with the whole table)."""
        self.problems.append(Problem(self.source, None, field, message))


def check_columns(df: pd.DataFrame, source: str, specs: tuple[Column, ...]) -> tuple[list[Problem], dict[str, pd.Series], Reporter]:
    """Missing columns, values of the wrong type and missing values; returns the problems, the present
    typed columns in canonical dtypes (a value of the wrong type is missing there) and a reporter for further checks."""
    problems: list[Problem] = []
    report = Reporter(source, problems)
    names = pd.Index([str(c) for c in df.columns])
    repeated = set(names[names.duplicated()])
    for name in sorted(repeated):
        report.column(name, "the column appears more than once")
    for spec in specs:
        if spec.required and spec.name not in names:
            report.column(spec.name, f"missing required column; the file has columns {list(names)}")
    canon: dict[str, pd.Series] = {}
    for spec in specs:
        if spec.name not in df.columns or spec.name in repeated:
            continue
        raw = df[spec.name]
        values = cast_column(raw, spec.kind)
        blank = is_blank(raw)
        wrong = ~blank & values.isna().to_numpy()
        report(spec.name, wrong, lambda i, raw=raw, spec=spec: _wrong_type(spec, raw.iat[i]))
        if not spec.nullable:
            empty = blank
            if spec.kind == "string":  # whitespace is no id either; later checks skip it
                empty = empty | (values.str.strip() == "").to_numpy(dtype=bool, na_value=False)
                values = values.where(~empty)
            what = "empty" if spec.kind == "string" else "missing"
            report(spec.name, empty, lambda i, spec=spec, what=what: f"{spec.name} is {what}")
        canon[spec.name] = values
    return problems, canon, report


def show(value: object) -> str:
    """``repr`` of a cell, with numpy scalars shown as the Python values they hold."""
    return repr(_plain(value))


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _wrong_type(spec: Column, value: object) -> str:
    value = _plain(value)
    if spec.kind == "timestamp":
        return f"cannot read {value!r} as a timestamp; expected ISO 8601 text such as 2024-01-31 or 2024-01-31T09:30:00"
    if spec.kind == "float":
        return f"{spec.name} must be a number, got {type(value).__name__} {value!r}"
    return f"{spec.name} must be text (integers are read as their digits), got {type(value).__name__} {value!r}"


def _check_money(report: Reporter, field: str, values: pd.Series) -> None:
    report(field, np.isinf(values), lambda i: f"{field} must be finite, got {show(values.iat[i])}")
    report(field, values < 0, lambda i: f"{field} must be >= 0, got {show(values.iat[i])}")


def _check_offer_ids(report: Reporter, offer_id: pd.Series, catalog: OfferCatalog) -> None:
    report(
        "offer_id",
        offer_id.notna() & ~offer_id.isin(catalog.ids),
        lambda i: f"unknown offer id {show(offer_id.iat[i])}; the catalog has {list(catalog.ids)}",
    )


def check_distribution(report: Reporter, canon: dict[str, pd.Series], prob_names: list[str], ids: tuple[str, ...]) -> None:
    """The ``prob_`` columns: one per action of ``ids``, each in [0, 1], rows summing to 1, agreeing with ``propensity``
    (``canon["offer_id"]`` and ``canon["propensity"]``: the action taken and its probability, when present)."""
    for name in prob_names:
        offer = name[len(PROB_PREFIX) :]
        if offer not in ids:
            report.column(name, f"column for offer {offer!r}, which is not in the catalog {list(ids)}")
    for offer in ids:
        if prob_column(offer) not in prob_names:
            report.column(prob_column(offer), f"the action distribution has no column for catalog offer {offer!r}")
    present = [n for n in prob_names if n in canon]
    if not present:
        return
    probs = np.column_stack([canon[n].to_numpy() for n in present])  # (n_rows, n_present), float64
    for j, name in enumerate(present):
        col = probs[:, j]
        report(
            name,
            (col < 0) | (col > 1),
            lambda i, col=col, name=name: f"{name} must be in [0, 1], got {show(col[i])}",
        )
    valid = ((probs >= 0) & (probs <= 1)).all(axis=1)
    total = probs.sum(axis=1)
    off = valid & (np.abs(total - 1) > PROB_TOL)
    report("prob_*", off, lambda i: f"the action probabilities sum to {total[i]:.9g}, not 1")
    if "offer_id" in canon and "propensity" in canon:
        column_of = {name[len(PROB_PREFIX) :]: j for j, name in enumerate(present)}
        j = canon["offer_id"].map(column_of).to_numpy(dtype=float, na_value=np.nan)
        has = ~np.isnan(j)
        chosen = np.full(len(j), np.nan)
        chosen[has] = probs[np.flatnonzero(has), j[has].astype(int)]
        propensity = canon["propensity"].to_numpy()
        report(
            "propensity",
            valid & (np.abs(chosen - propensity) > PROB_TOL),
            lambda i: f"propensity {show(propensity[i])} disagrees with {present[int(j[i])]} = {show(chosen[i])}, "
            "the chosen offer's probability",
        )


def _check_time(report: Reporter, df: pd.DataFrame, canon: dict[str, pd.Series], now: pd.Timestamp | None) -> None:
    """The table's rows in time: there is at least one, and none is later than ``now`` (the clock when ``None``)
    plus :data:`FUTURE_SLACK`."""
    if not len(df):
        report.column(None, "the table has no rows; a log needs at least one")
    if "ts" in canon:
        latest = (pd.Timestamp.now(tz="UTC").tz_localize(None) if now is None else pd.Timestamp(now)) + FUTURE_SLACK
        ts = canon["ts"]
        report(
            "ts",
            (ts > latest).to_numpy(dtype=bool, na_value=False),
            lambda i: f"ts {ts.iat[i]} is in the future (after {latest:%Y-%m-%d %H:%M} UTC, today plus a day of slack); "
            "check the export's clock and time zone",
        )


def _check_rows(report: Reporter, df: pd.DataFrame, canon: dict[str, pd.Series]) -> None:
    """Checks across columns: exact duplicate rows, and time running backwards within a user."""
    if len(df) and len(df.columns):
        # Positional keys survive duplicate column names; repr keeps None, "None" and 1, "1" apart and hashes anything.
        columns = (df.iloc[:, j] for j in range(len(df.columns)))
        key = pd.DataFrame({j: c.map(repr) if c.dtype == object else c for j, c in enumerate(columns)})
        dup = key.duplicated(keep="first").to_numpy()
        if dup.any():
            group = key.groupby(list(key.columns), dropna=False, sort=False).ngroup().to_numpy()
            first = pd.Series(np.arange(len(df))).groupby(group).transform("min").to_numpy()
            report(None, dup, lambda i: f"exact duplicate of row {first[i] + 1}")
    if "user_id" in canon and "ts" in canon:
        ts = canon["ts"]
        rows = np.flatnonzero((canon["user_id"].notna() & ts.notna()).to_numpy())
        seq = pd.DataFrame({"user": canon["user_id"].to_numpy()[rows], "ts": ts.to_numpy()[rows], "row": rows})
        prev = seq.groupby("user", sort=False)[["ts", "row"]].shift()
        prev_row = np.full(len(df), -1)
        prev_ts = np.full(len(df), np.datetime64("NaT"), dtype=ts.dtype)
        prev_row[rows] = prev["row"].fillna(-1).to_numpy(dtype=int)
        prev_ts[rows] = prev["ts"].to_numpy()
        report(
            "ts",
            ts.to_numpy() < prev_ts,
            lambda i: f"ts {ts.iat[i]} is earlier than row {prev_row[i] + 1} ({pd.Timestamp(prev_ts[i])}) "
            "of the same user; a user's rows must be in time order",
        )


def validate_target_table(table: pd.DataFrame, source: str, actions: tuple[str, ...], decision_columns: object) -> tuple[list[Problem], list[str]]:
    """The problems of a target-policy table (``prob_<action>`` columns keyed by decision columns; see
    ``offerpilot.ope.target_policy.table_probs``) on its own: its columns, probabilities and repeated keys; and its keys.

    :param decision_columns: the columns of the decisions it is for; every key must be one of them.
    """
    columns = [PROB_PREFIX + a for a in actions]
    problems = [Problem(source, None, c, "missing column: a target table gives every action's probability") for c in columns if c not in table]
    extra = [str(c) for c in table.columns if str(c).startswith(PROB_PREFIX) and str(c) not in columns]
    problems += [Problem(source, None, c, f"probability of an action the log does not have; the actions are {list(actions)[:12]}") for c in extra]
    keys = [str(c) for c in table.columns if not str(c).startswith(PROB_PREFIX)]
    unknown = [k for k in keys if k not in set(map(str, decision_columns))]
    problems += [Problem(source, None, k, f"neither a prob_<action> column nor a column of the decisions, so rows cannot be matched "
                                          f"to decisions by it (the decisions have {[str(c) for c in decision_columns]})") for k in unknown]
    if not len(table):
        problems.append(Problem(source, None, None, "the table has no rows"))
    if problems:
        return problems, keys
    if keys:
        duplicated = table.duplicated(keys, keep="first").to_numpy()
        problems += [Problem(source, int(i) + 1, keys[-1], f"a second row for the same {', '.join(keys)}") for i in np.flatnonzero(duplicated)[:20]]
    elif len(table) > 1:
        problems.append(Problem(source, None, None, f"{len(table)} rows but no key column: a table without keys gives one distribution for every decision"))
    probs = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad_value = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    for i, j in list(zip(*np.nonzero(bad_value)))[:50]:
        problems.append(Problem(source, int(i) + 1, columns[j], f"a probability must be a number in [0, 1], got {table[columns[j]].iat[i]!r}"))
    off = ~bad_value.any(axis=1) & (np.abs(probs.sum(axis=1) - 1.0) > PROB_TOL)
    problems += [Problem(source, int(i) + 1, None, f"probabilities sum to {probs[i].sum():.9g}, not 1") for i in np.flatnonzero(off)[:20]]
    return problems, keys


def target_rows(decisions: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """For each decision (row of ``decisions``), the 0-based row of the target ``table`` with its ``keys``; -1 where none."""
    logged, wanted = _comparable(decisions[keys], table[keys])
    merged = logged.merge(wanted.assign(_row=np.arange(len(table))), on=keys, how="left")
    return merged["_row"].fillna(-1).to_numpy(np.int64)


def unmatched_problem(decisions: pd.DataFrame, rows: np.ndarray, keys: list[str], source: str) -> Problem:
    """The problem of decisions that no row of the target table at ``source`` covers (``rows`` from :func:`target_rows`)."""
    unmatched = np.flatnonzero(rows < 0)
    examples = "; ".join(", ".join(f"{k} {decisions[k].iat[i]}" for k in keys) for i in unmatched[:3])
    return Problem(source, None, None, f"{unmatched.size} logged decisions have no target row (e.g. {examples})")


def _comparable(logged: pd.DataFrame, wanted: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The key columns of both sides in one dtype each: as they are where the dtypes agree, as text where they do
    not (a position read as 1 in one file and '1' in the other)."""
    logged, wanted = logged.copy(), wanted.copy()
    for k in logged.columns:
        if logged[k].dtype != wanted[k].dtype and not (pd.api.types.is_numeric_dtype(logged[k]) and pd.api.types.is_numeric_dtype(wanted[k])):
            logged[k], wanted[k] = logged[k].astype(str), wanted[k].astype(str)
    return logged, wanted

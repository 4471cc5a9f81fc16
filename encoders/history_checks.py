"""Checks on an events table before histories are cut from it, each failure a :class:`DataError` naming the row and field."""

from __future__ import annotations

import numpy as np
import pandas as pd

from offerpilot.errors import DataError, Problem
from offerpilot.schema import EVENT_KINDS


def validated_order(events: pd.DataFrame, ts: np.ndarray, user_code: np.ndarray, uniques: pd.Index, kind_code: np.ndarray, source: str) -> np.ndarray:
    """The rows grouped by user (table order within a user), after checking every row has a user, a time and a
    known event kind, and each user's events are in time order.

    :raises DataError: naming the row and field of every problem.
    """
    problems = [Problem(source, int(r) + 1, "user_id", "missing user id") for r in np.flatnonzero(user_code < 0)]
    problems += [Problem(source, int(r) + 1, "ts", "missing timestamp") for r in np.flatnonzero(np.isnat(ts))]
    unknown = np.flatnonzero(kind_code < 0)
    problems += [
        Problem(source, int(r) + 1, "event", f"unknown event kind {v!r}; expected one of {list(EVENT_KINDS)}")
        for r, v in zip(unknown, events["event"].to_numpy(dtype=object)[unknown])
    ]
    if problems:
        raise DataError(sorted(problems, key=lambda p: p.row))

    order = np.argsort(user_code, kind="stable")  # grouped by user, table order (= ts order) within a user
    user, t = user_code[order], ts[order]
    same_user = user[1:] == user[:-1]
    backwards = np.flatnonzero(same_user & (t[1:] < t[:-1]))
    if backwards.size:
        raise DataError(
            [
                Problem(
                    source,
                    int(order[i + 1]) + 1,
                    "ts",
                    f"{pd.Timestamp(t[i + 1])} is earlier than the previous event of user {uniques[user[i]]!r} "
                    f"(row {int(order[i]) + 1}, {pd.Timestamp(t[i])}); sort each user's events by ts",
                )
                for i in backwards
            ]
        )
    return order


def checked_times(
    events: pd.DataFrame, as_of: pd.Timestamp | str, required: tuple[str, ...], source: str
) -> tuple[pd.Series, pd.Timestamp]:
    """``events.ts`` and ``as_of`` as naive UTC, after checking ``required`` columns are present and ``ts``
    holds timestamps; raises :class:`DataError` naming the column otherwise."""
    missing = [c for c in required if c not in events.columns]
    if missing:
        raise DataError([Problem(source, None, c, "required column is missing") for c in missing])
    ts = events["ts"]
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    if not pd.api.types.is_datetime64_dtype(ts.dtype):
        raise DataError([Problem(source, None, "ts", f"must hold timestamps (datetime64), got dtype {ts.dtype}")])
    cutoff = pd.Timestamp(as_of)
    if cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert("UTC").tz_localize(None)
    return ts, cutoff

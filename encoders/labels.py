"""Supervised targets for the customer encoder: churn and spend in a window after a cutoff.

For a cutoff ``as_of`` and a window of ``W`` days, customer ``u``'s labels are::

    spend_u = sum of amount over u's purchases with as_of <= ts < as_of + W      (money the customer paid)
    churn_u = 1 if u made no purchase with as_of <= ts < as_of + W, else 0

The encoder reads the history strictly before ``as_of`` (:class:`~offerpilot.encoders.tokenizer.EventTokenizer`),
so the window and the history never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from offerpilot.encoders.history_checks import checked_times
from offerpilot.errors import DataError, InputError, Problem


@dataclass(frozen=True)
class Labels:
    """Churn and spend of ``n`` customers in one window, in the order of ``user_ids``."""

    user_ids: np.ndarray
    """(n,) object: the customer of each entry."""
    churn: np.ndarray
    """(n,) float32: 1.0 when the customer made no purchase in the window, else 0.0."""
    spend: np.ndarray
    """(n,) float32 >= 0: money the customer paid in the window (0 for churners)."""

    def __len__(self) -> int:
        return len(self.user_ids)


def window_labels(
    events: pd.DataFrame,
    as_of: pd.Timestamp | str,
    window_days: float,
    user_ids: Sequence[str] | np.ndarray,
    source: str = "events",
) -> Labels:
    """Churn and spend of each of ``user_ids`` in ``[as_of, as_of + window_days)`` (see the module docstring).

    :param events: the events table (data contract: ``user_id``, ``ts``, ``event``, ``amount``).
    :param as_of: start of the window; timezone-aware timestamps are compared in UTC.
    :param window_days: length of the window in days, > 0.
    :param user_ids: (n,) the customers, unique; those without events in the window churn with spend 0.
    :param source: the name problems are reported under (e.g. the file the table came from).
    :raises ValueError: ``window_days <= 0`` or ``user_ids`` has duplicates.
    :raises DataError: a required column is missing, ``ts`` is not a timestamp column, or a purchase in the
        window has a missing, negative or non-finite amount (each problem names its 1-based row).
    """
    if not window_days > 0:
        raise InputError(f"window_days must be > 0, got {window_days}")
    index = pd.Index(np.asarray(user_ids, dtype=object).reshape(-1))
    if not index.is_unique:
        raise InputError(f"user_ids has duplicates: {index[index.duplicated()].unique().tolist()[:10]}")
    ts, start = checked_times(events, as_of, ("user_id", "ts", "event", "amount"), source)
    end = start + pd.Timedelta(days=window_days)

    in_window = ((ts >= start) & (ts < end) & (events["event"] == "purchase")).to_numpy(dtype=bool)
    amount = pd.to_numeric(events["amount"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(in_window & ~(np.isfinite(amount) & (amount >= 0)))
    if bad.size:
        raise DataError(
            [Problem(source, int(r) + 1, "amount", f"a purchase needs a finite amount >= 0, got {events['amount'].iloc[r]!r}") for r in bad]
        )
    window = pd.DataFrame({"user_id": events["user_id"].to_numpy(dtype=object)[in_window], "amount": amount[in_window]})
    per_user = window.groupby("user_id", sort=False)["amount"].agg(["size", "sum"]).reindex(index)
    return Labels(
        user_ids=index.to_numpy(dtype=object),
        churn=per_user["size"].isna().to_numpy().astype(np.float32),
        spend=per_user["sum"].fillna(0.0).to_numpy(dtype=np.float32),
    )


def check_labels(labels: Labels) -> None:
    """Raise :class:`InputError` unless ``labels`` hold >= 2 customers, churn in {0, 1} and finite spend >= 0."""
    n = len(labels.user_ids)
    if n < 2 or labels.churn.shape != (n,) or labels.spend.shape != (n,):
        raise InputError(f"need labels of >= 2 customers with churn and spend of shape (n,), got {n} user ids, churn {labels.churn.shape}, spend {labels.spend.shape}")
    if not np.isin(labels.churn, (0.0, 1.0)).all():
        raise InputError("churn labels must be 0 or 1")
    if not (np.isfinite(labels.spend) & (labels.spend >= 0)).all():
        raise InputError("spend labels must be finite and >= 0")

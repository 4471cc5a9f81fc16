"""The data contract: the columns of the two log tables, their kinds and canonical dtypes.

Real logs and simulated logs share this schema, so everything downstream reads the same tables.
``events`` is what customers did; ``decisions`` is what the marketing engine sent them, with the
probability the logging policy gave each choice (what off-policy evaluation needs). Validation lives in
:mod:`offerpilot.validation`, file I/O in :mod:`offerpilot.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

ColumnKind = Literal["string", "timestamp", "float"]

EVENT_KINDS = ("visit", "view", "cart", "purchase", "review", "unsubscribe")
"""What a customer can do; ``events.event`` takes one of these values."""

PROB_PREFIX = "prob_"
"""Decisions may carry the logging policy's full action distribution as ``prob_<offer_id>`` columns."""

DTYPES: dict[str, str] = {"string": "str", "timestamp": "datetime64[us]", "float": "float64"}
"""Canonical pandas dtype of each column kind. Timestamps are tz-naive UTC, at pandas' default resolution."""


@dataclass(frozen=True)
class Column:
    """One column of a log table."""

    name: str
    kind: ColumnKind
    required: bool
    """A file must have the column."""
    nullable: bool
    """Values may be missing (a required column may still be nullable, e.g. ``amount`` off purchases)."""
    doc: str


EVENTS_COLUMNS: tuple[Column, ...] = (
    Column("user_id", "string", True, False, "customer id; kept as text so '00001' stays '00001'"),
    Column("ts", "timestamp", True, False, "when it happened"),
    Column("event", "string", True, False, f"one of {', '.join(EVENT_KINDS)}"),
    Column("amount", "float", True, True, "money the customer paid: finite and >= 0 on purchases, else may be missing"),
    Column("category", "string", False, True, "product category"),
    Column("text", "string", False, True, "review or message text"),
    Column("offer_id", "string", False, True, "catalog offer redeemed on a purchase; missing when none"),
    Column("discount", "float", False, True, "money the redeemed offer gave away (>= 0); list value = amount + it"),
    Column("rating", "float", False, True, "stars of a review, 1 to 5"),
)

DECISIONS_COLUMNS: tuple[Column, ...] = (
    Column("user_id", "string", True, False, "customer id, as in events"),
    Column("ts", "timestamp", True, False, "when the decision was made"),
    Column("offer_id", "string", True, False, "catalog offer chosen; 'none' (send nothing) is an action"),
    Column("propensity", "float", True, False, "probability in (0, 1] the logging policy gave the chosen action"),
    Column("policy_id", "string", True, False, "which logging policy decided"),
)
"""Plus, optionally, the full action distribution: one ``prob_<offer_id>`` column per catalog offer, each in
[0, 1], summing to 1 on every row, the chosen offer's equal to ``propensity`` (see :func:`prob_spec`)."""

EVENTS_REQUIRED = tuple(c.name for c in EVENTS_COLUMNS if c.required)
EVENTS_OPTIONAL = tuple(c.name for c in EVENTS_COLUMNS if not c.required)
DECISIONS_REQUIRED = tuple(c.name for c in DECISIONS_COLUMNS if c.required)

_KINDS: dict[str, ColumnKind] = {c.name: c.kind for c in EVENTS_COLUMNS + DECISIONS_COLUMNS}


def prob_column(offer_id: str) -> str:
    """Name of the column holding the logging policy's probability of ``offer_id``."""
    return PROB_PREFIX + offer_id


def prob_spec(name: str) -> Column:
    """The spec of a ``prob_<offer_id>`` column of decisions."""
    return Column(name, "float", False, False, f"probability the logging policy gave {name[len(PROB_PREFIX):]!r}")


def column_kind(name: Any) -> ColumnKind | None:
    """Kind of a contract column (either table, or a ``prob_`` column); ``None`` for columns outside the contract."""
    if not isinstance(name, str):
        return None
    if name.startswith(PROB_PREFIX):
        return "float"
    return _KINDS.get(name)


def is_blank(values: pd.Series) -> np.ndarray:
    """Which values are missing or the empty string (CSV cannot tell the two apart, so neither can we).

    Returns shape (n,), bool.
    """
    blank = values.isna().to_numpy(dtype=bool)
    if holds_text(values.dtype):
        blank = blank | (values == "").to_numpy(dtype=bool, na_value=False)
    return blank


def cast_column(values: pd.Series, kind: ColumnKind) -> pd.Series:
    """``values`` in the canonical dtype of ``kind``; a value that does not convert becomes missing.

    Strings: text stays text and integers become their decimal text (nothing is lost); any other type
    (floats, booleans, dates) does not convert, because ids such as '00001' would already have lost digits.
    Timestamps: datetimes, or ISO 8601 text (offsets are converted to UTC). Floats: numbers, or text of numbers.
    Empty strings become missing in every kind.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    dtype = values.dtype
    blank = is_blank(values)
    types = pd.api.types
    nothing = pd.Series(None, index=values.index, dtype=DTYPES[kind])
    if kind == "string":
        if dtype == object:
            convertible = values.map(lambda v: isinstance(v, (str, int, np.integer)) and not isinstance(v, bool))
            out = values.where(convertible.to_numpy(dtype=bool)).astype(DTYPES[kind])
        elif types.is_string_dtype(dtype) or types.is_integer_dtype(dtype):
            out = values.astype(DTYPES[kind])
        else:
            out = nothing
    elif kind == "timestamp":
        if isinstance(dtype, pd.DatetimeTZDtype):
            out = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif types.is_datetime64_dtype(dtype):
            out = values
        elif holds_text(dtype):
            out = pd.to_datetime(values.where(~blank), format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
        else:
            out = nothing
    else:
        if types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype):
            out = pd.Series(values.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
        elif holds_text(dtype):
            skip = blank
            if dtype == object:  # to_numeric would read True as 1.0
                skip = skip | values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
            out = pd.to_numeric(values.where(~skip), errors="coerce")
        else:
            out = nothing
    return out.astype(DTYPES[kind]).where(~blank)


def holds_text(dtype: Any) -> bool:
    """Whether a column of ``dtype`` can hold text (object or a string dtype)."""
    return dtype == object or pd.api.types.is_string_dtype(dtype)

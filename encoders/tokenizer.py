"""Customer event histories -> fixed-size token arrays (and English text) for the customer encoder.

A customer's history is their LAST ``max_len`` events strictly before the cutoff ``as_of``. Each event
becomes one token per field; rows are RIGHT-padded: columns ``0 .. k-1`` hold the ``k`` kept events,
oldest first (column ``k-1`` is the most recent), and columns ``k ..`` are padding (``attention_mask``
False, every token id 0). The model reads positions as recency from the mask, so it does not depend on
the padding side.

Vocabularies (id 0 is padding, or "absent", in every field):

=============  ==================================================================================
field          ids
=============  ==================================================================================
event_ids      0 PAD, 1 MASK, ``2 + i`` for ``EVENT_KINDS[i]``
category_ids   0 PAD / no category, 1 UNK (not in ``categories``), ``2 + i`` for ``categories[i]``
amount_ids     0 PAD / no amount, 1 MASK, ``2 + searchsorted(amount_edges, amount, "right")``
offer_ids      0 PAD / no offer redeemed (or ``"none"``), 1 UNK, ``2 + i`` for ``offers[i]``
gap_ids        0 PAD, 1 first event of the customer, ``2 + searchsorted(time_edges, gap_days, "right")``
=============  ==================================================================================

``gap_days`` is the time since the customer's previous event (even one dropped by the ``max_len``
truncation); bucket ``j`` of an edge list covers ``[edges[j-1], edges[j])``. The default edges are powers
of two: money 1, 2, 4, ..., 2048 and days 1/256 (5.6 minutes), 1/128, ..., 1024.

The tokens say nothing about ``as_of``: a customer's tokens change only when they have a new event, so an
embedding of them can be cached while time passes. The time since the last event of each kind,
``elapsed_days``, travels beside the tokens and enters the model after the transformer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.encoders.history_checks import checked_times, validated_order
from offerpilot.errors import InputError
from offerpilot.schema import EVENT_KINDS

PAD_ID = 0
"""Padding (and "absent" for category, amount and offer) in every field."""
MASK_ID = 1
"""Masked position for masked-event modelling (``event_ids`` and ``amount_ids``)."""
UNK_ID = 1
"""A category or offer id missing from the tokenizer's vocabulary (``category_ids`` and ``offer_ids``)."""
FIRST_EVENT_ID = 1
"""``gap_ids`` of a customer's first event: there is no previous one."""

TOKEN_FIELDS = ("event_ids", "category_ids", "amount_ids", "offer_ids", "gap_ids")
"""The token arrays of a :class:`HistoryBatch`, named as the model's ``forward`` arguments."""
AMOUNT_EDGES = tuple(float(2.0**k) for k in range(0, 12))
"""Default money bucket edges: 1, 2, 4, ..., 2048."""
TIME_EDGES_DAYS = tuple(float(2.0**k) for k in range(-8, 11))
"""Default time bucket edges in days: 1/256 (5.6 min), 1/128, ..., 1024."""
NO_HISTORY_TEXT = "No recorded activity."
"""What :meth:`EventTokenizer.render_text` writes for a customer without events before ``as_of``."""
_TEXT_COLUMNS = ("event", "category", "amount", "offer_id", "text")
_DAY = np.timedelta64(1, "D")
_MISSING = -2
_TOKENIZER_FILE = "event_tokenizer.json"


@dataclass(frozen=True)
class HistoryBatch:
    """Tokenised histories of ``n`` customers, right-padded to ``max_len`` (see the module docstring).

    Every token array has shape ``(n, max_len)`` and dtype int64.
    """

    user_ids: np.ndarray
    """(n,) object: the customer of each row."""
    event_ids: np.ndarray
    category_ids: np.ndarray
    amount_ids: np.ndarray
    offer_ids: np.ndarray
    gap_ids: np.ndarray
    attention_mask: np.ndarray
    """(n, max_len) bool: True on real events."""
    elapsed_days: np.ndarray
    """(n, len(EVENT_KINDS)) float32: days from the customer's last event of each kind to ``as_of``; NaN for
    kinds they never had (counted over their whole history, not only the kept events)."""
    n_events: np.ndarray
    """(n,) int64: events strictly before ``as_of``, before truncation to ``max_len``."""

    @property
    def has_history(self) -> np.ndarray:
        """(n,) bool: the customer has at least one event before ``as_of`` (else the row is all padding)."""
        return self.n_events > 0

    def __len__(self) -> int:
        return len(self.user_ids)

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The token arrays, ``attention_mask`` and ``elapsed_days``, keyed by the model's ``forward`` argument names."""
        return {name: getattr(self, name) for name in (*TOKEN_FIELDS, "attention_mask", "elapsed_days")}

    def select(self, rows: slice | np.ndarray) -> HistoryBatch:
        """The customers at ``rows`` (a slice, int indices or a bool mask of shape (n,))."""
        return HistoryBatch(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass(frozen=True)
class _Selection:
    """The events kept for a batch, one entry per kept event, grouped by customer and oldest first."""

    user_ids: np.ndarray  # (n,) object
    rows: np.ndarray  # (m,) int64 positions in the events table
    event_codes: np.ndarray  # (m,) int64 index in EVENT_KINDS
    customer: np.ndarray  # (m,) int64 batch row
    column: np.ndarray  # (m,) int64 batch column
    gap_days: np.ndarray  # (m,) float64, NaN on a customer's first event
    age_days: np.ndarray  # (m,) float64, > 0
    n_events: np.ndarray  # (n,) int64
    elapsed_days: np.ndarray  # (n, len(EVENT_KINDS)) float32, NaN for kinds never seen


class EventTokenizer:
    """Turns events tables (the data contract's ``events``) into :class:`HistoryBatch` and text.

    :param catalog_ids: offer ids of the catalog (``default_catalog().ids``); ``"none"`` is not a
        redeemable offer and is left out of the vocabulary.
    :param categories: product categories (``offerpilot.envs.population.CATEGORIES``); others map to UNK.
    :param max_len: events kept per customer (the most recent ones).
    :param amount_edges: increasing money bucket edges.
    :param time_edges: increasing day bucket edges of the gap between events.
    """

    def __init__(
        self,
        catalog_ids: Sequence[str],
        categories: Sequence[str],
        max_len: int = 64,
        amount_edges: Sequence[float] = AMOUNT_EDGES,
        time_edges: Sequence[float] = TIME_EDGES_DAYS,
    ) -> None:
        if max_len < 1:
            raise InputError(f"max_len must be >= 1, got {max_len}")
        for name, edges in (("amount_edges", amount_edges), ("time_edges", time_edges)):
            if len(edges) == 0 or np.any(np.diff(np.asarray(edges, dtype=np.float64)) <= 0):
                raise InputError(f"{name} must be a non-empty strictly increasing sequence, got {list(edges)}")
        self.offers = tuple(str(o) for o in catalog_ids if o != "none")
        self.categories = tuple(str(c) for c in categories)
        self.max_len = int(max_len)
        self.amount_edges = np.asarray(amount_edges, dtype=np.float64)
        self.time_edges = np.asarray(time_edges, dtype=np.float64)

    def vocab_sizes(self) -> dict[str, int]:
        """Size of each field's vocabulary, keyed as :class:`CustomerEncoderConfig` fields."""
        n_time = len(self.time_edges) + 1
        return {
            "event_vocab_size": 2 + len(EVENT_KINDS),
            "category_vocab_size": 2 + len(self.categories),
            "amount_vocab_size": 2 + len(self.amount_edges) + 1,
            "offer_vocab_size": 2 + len(self.offers),
            "gap_vocab_size": 2 + n_time,
        }

    def encode(
        self,
        events: pd.DataFrame,
        as_of: pd.Timestamp | str,
        user_ids: Sequence[str] | np.ndarray | None = None,
        source: str = "events",
    ) -> HistoryBatch:
        """Tokenise the last ``max_len`` events strictly before ``as_of`` of each customer.

        :param events: the events table; each user's rows in ``ts`` order (users may interleave).
        :param user_ids: the customers, one row each, in this order; those without events before
            ``as_of`` get an all-padding row (``has_history`` False). ``None``: every user in
            ``events``, in order of first appearance.
        :param source: the name problems are reported under (e.g. the file the table came from).
        :raises ValueError: ``events`` is empty, or ``user_ids`` has duplicates.
        :raises DataError: a required column is missing, ``ts`` is not a timestamp column, or rows have a
            missing user id or timestamp, an unknown event kind, or a timestamp earlier than the previous
            event of the same user; each problem names the 1-based row and the field.
        """
        sel = self._select(events, as_of, user_ids, self.max_len, source)
        n = len(sel.user_ids)
        tokens = {
            "event_ids": 2 + sel.event_codes,
            "category_ids": self._lookup(events, "category", self.categories, sel.rows, absent=("",)),
            "amount_ids": self._amount_ids(events, sel.rows),
            "offer_ids": self._lookup(events, "offer_id", self.offers, sel.rows, absent=("", "none")),
            "gap_ids": np.where(
                np.isnan(sel.gap_days), FIRST_EVENT_ID, 2 + np.searchsorted(self.time_edges, sel.gap_days, side="right")
            ),
        }
        arrays = {}
        for name, values in tokens.items():
            grid = np.zeros((n, self.max_len), dtype=np.int64)
            grid[sel.customer, sel.column] = values
            arrays[name] = grid
        mask = np.zeros((n, self.max_len), dtype=bool)
        mask[sel.customer, sel.column] = True
        return HistoryBatch(user_ids=sel.user_ids, attention_mask=mask, n_events=sel.n_events, elapsed_days=sel.elapsed_days, **arrays)

    def render_text(
        self,
        events: pd.DataFrame,
        as_of: pd.Timestamp | str,
        user_ids: Sequence[str] | np.ndarray | None = None,
        max_events: int = 32,
        source: str = "events",
    ) -> list[str]:
        """A compact English rendering of each customer's last ``max_events`` events, most recent last.

        For example ``"12 days ago: purchase music $23.10 with pct10. 3 days ago: review music: 'Great
        sound.'"``; a customer without events before ``as_of`` gets :data:`NO_HISTORY_TEXT`. Arguments
        and errors as in :meth:`encode`. Returns one string per customer, in the order of the batch.
        """
        sel = self._select(events, as_of, user_ids, max_events, source)
        days = np.floor(sel.age_days).astype(np.int64)
        columns = [events[c].to_numpy(dtype=object)[sel.rows] if c in events.columns else np.full(len(sel.rows), None) for c in _TEXT_COLUMNS]
        sentences = pd.Series([_describe(*values) for values in zip(days, *columns)], dtype=object)
        joined = sentences.groupby(sel.customer, sort=True).agg(" ".join)
        out = np.full(len(sel.user_ids), NO_HISTORY_TEXT, dtype=object)
        out[joined.index.to_numpy()] = joined.to_numpy()
        return out.tolist()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the vocabularies and edges to ``directory/event_tokenizer.json``; returns the file."""
        path = Path(directory) / _TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = {
            "catalog_ids": list(self.offers),
            "categories": list(self.categories),
            "max_len": self.max_len,
            "amount_edges": self.amount_edges.tolist(),
            "time_edges": self.time_edges.tolist(),
        }
        path.write_text(json.dumps(spec, indent=2) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> EventTokenizer:
        """The tokenizer :meth:`save_pretrained` wrote to ``directory``."""
        return cls(**json.loads((Path(directory) / _TOKENIZER_FILE).read_text()))

    # -- internals ---------------------------------------------------------------------------------

    def _amount_ids(self, events: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        if "amount" not in events.columns:
            return np.zeros(len(rows), dtype=np.int64)
        amount = events["amount"].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
        bucket = 2 + np.searchsorted(self.amount_edges, np.nan_to_num(amount), side="right")
        return np.where(np.isnan(amount), PAD_ID, bucket).astype(np.int64)

    @staticmethod
    def _lookup(events: pd.DataFrame, column: str, vocab: tuple[str, ...], rows: np.ndarray, absent: tuple[str, ...]) -> np.ndarray:
        """Ids ``2 + i`` for ``vocab[i]``, UNK for other values, PAD for missing values and those in ``absent``."""
        if column not in events.columns:
            return np.zeros(len(rows), dtype=np.int64)
        code = _vocab_codes(events[column], vocab, absent)[rows]
        return np.where(code == _MISSING, PAD_ID, np.where(code >= 0, 2 + code, UNK_ID))

    @staticmethod
    def _select(
        events: pd.DataFrame,
        as_of: pd.Timestamp | str,
        user_ids: Sequence[str] | np.ndarray | None,
        max_len: int,
        source: str,
    ) -> _Selection:
        """Validate ``events`` and pick each customer's last ``max_len`` events before ``as_of``, vectorised."""
        if len(events) == 0:
            raise InputError(f"{source}: the events table is empty; there is no history to encode")
        ts, cutoff = checked_times(events, as_of, ("user_id", "ts", "event"), source)
        ts = ts.to_numpy()
        user_code, uniques = pd.factorize(events["user_id"])
        kind_code = _vocab_codes(events["event"], EVENT_KINDS)

        order = validated_order(events, ts, user_code, uniques, kind_code, source)
        user, t = user_code[order], ts[order]

        before = t < np.datetime64(cutoff)  # a prefix of each user's group, as groups are sorted by ts
        order, user, t = order[before], user[before], t[before]
        gap_days = np.full(len(t), np.nan)
        follows = np.flatnonzero(user[1:] == user[:-1]) + 1
        gap_days[follows] = (t[follows] - t[follows - 1]) / _DAY
        age_days = (np.datetime64(cutoff) - t) / _DAY
        # Within a user, later rows are younger: the minimum age per (user, kind) is the last such event.
        n_kinds = len(EVENT_KINDS)
        elapsed = np.full(len(uniques) * n_kinds, np.inf)
        np.minimum.at(elapsed, user * n_kinds + kind_code[order], age_days)
        elapsed = np.where(np.isinf(elapsed), np.nan, elapsed).reshape(len(uniques), n_kinds).astype(np.float32)

        if user_ids is None:
            batch_ids = np.asarray(uniques, dtype=object)
            customer = user.astype(np.int64)
            elapsed_days = elapsed
        else:
            batch_ids = np.asarray(user_ids, dtype=object).reshape(-1)
            index = pd.Index(batch_ids)
            if not index.is_unique:
                raise InputError(f"user_ids has duplicates: {index[index.duplicated()].unique().tolist()[:10]}")
            row_of_user = index.get_indexer(pd.Index(uniques))
            elapsed_days = np.full((len(batch_ids), n_kinds), np.nan, dtype=np.float32)
            elapsed_days[row_of_user[row_of_user >= 0]] = elapsed[row_of_user >= 0]
            customer = row_of_user[user].astype(np.int64)
            asked = customer >= 0
            order, customer, gap_days, age_days = order[asked], customer[asked], gap_days[asked], age_days[asked]

        n = len(batch_ids)
        n_events = np.bincount(customer, minlength=n).astype(np.int64)
        m = len(customer)
        starts = np.r_[True, customer[1:] != customer[:-1]] if m else np.zeros(0, dtype=bool)
        position = np.arange(m) - np.maximum.accumulate(np.where(starts, np.arange(m), 0))  # groupby cumcount
        from_end = n_events[customer] - 1 - position  # 0 = the customer's most recent event
        kept = from_end < max_len
        column = np.minimum(n_events[customer], max_len) - 1 - from_end
        return _Selection(
            user_ids=batch_ids,
            rows=order[kept].astype(np.int64),
            event_codes=kind_code[order[kept]],
            customer=customer[kept],
            column=column[kept].astype(np.int64),
            gap_days=gap_days[kept],
            age_days=age_days[kept],
            n_events=n_events,
            elapsed_days=elapsed_days,
        )


def _vocab_codes(values: pd.Series, vocab: tuple[str, ...], absent: tuple[str, ...] = ()) -> np.ndarray:
    """(n,) int64: the index of each value in ``vocab``; -1 for values outside it; ``_MISSING`` for missing
    values and those in ``absent``. Factorises first, so each distinct value is looked up once."""
    codes, uniques = pd.factorize(values)
    position = {v: i for i, v in enumerate(vocab)}
    lookup = [_MISSING if u in absent else position.get(u, -1) for u in uniques]
    return np.array([*lookup, _MISSING], dtype=np.int64)[codes]  # factorize codes missing values as -1


def _describe(days: int, event: str, category: object, amount: object, offer_id: object, text: object) -> str:
    """One event as a sentence: ``"3 days ago: purchase music $23.10 with pct10."``, or one ending in the
    quoted text: ``"today: review music: 'Great sound.'"``."""
    when = "today" if days == 0 else "1 day ago" if days == 1 else f"{days} days ago"
    sentence = f"{when}: {event}"
    if _present(category):
        sentence += f" {category}"
    if _present(amount):
        sentence += f" ${amount:.2f}"
    if _present(offer_id) and offer_id != "none":
        sentence += f" with {offer_id}"
    if _present(text):
        return sentence + f": '{text}'"
    return sentence + "."


def _present(value: object) -> bool:
    return value is not None and not pd.isna(value) and value != ""

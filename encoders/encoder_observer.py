"""The encoder observer: the agent sees simulated customers through a trained customer encoder.

Each customer's last ``max_len`` events are kept as tokens in an :class:`EventHistory`, written as the simulator
produces the events and equal to what :class:`~offerpilot.encoders.tokenizer.EventTokenizer` makes of the same
events in the logs. The tokens do not depend on the present moment, so a customer's embedding is cached and
recomputed only after they had new events; the time since each kind of event reaches the model's heads (churn,
CLV) and the agent beside the embedding, and time passing costs no transformer pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from offerpilot.catalog import OfferCatalog
from offerpilot.encoders.encoder_folder import load_encoder
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import FIRST_EVENT_ID, TOKEN_FIELDS, UNK_ID, EventTokenizer
from offerpilot.envs.history import AcquisitionRecorder, DayRecorder
from offerpilot.envs.log_generation import DECISION_MINUTE, EVENT_MINUTE
from offerpilot.envs.population import CATEGORIES, F32, FUNNEL, CustomerState, DayOutcome
from offerpilot.errors import InputError
from offerpilot.schema import EVENT_KINDS

MINUTES_PER_DAY = 1440
NEVER = np.iinfo(np.int64).min
"""``EventHistory`` minute of an event that never happened."""
_KIND = {kind: i for i, kind in enumerate(EVENT_KINDS)}


@dataclass
class EventHistory:
    """Per-customer event buffers and cached embeddings of ``n`` customers (minutes count from day 0 of the
    decision period, so the history lies at negative minutes)."""

    tokens: np.ndarray
    """(n, len(TOKEN_FIELDS), max_len) int16: the kept events' tokens, right-padded, oldest first."""
    length: np.ndarray
    """(n,) int16: events kept (at most ``max_len``)."""
    last_minute: np.ndarray
    """(n,) int64: minute of the customer's most recent event (``NEVER`` if none); the next gap counts from it."""
    kind_minute: np.ndarray
    """(n, len(EVENT_KINDS)) int64: minute of the last event of each kind (``NEVER`` if none)."""
    embedding: np.ndarray
    """(n, embedding_dim) float32: the cached embedding, valid where ``stale`` is False."""
    stale: np.ndarray
    """(n,) bool: the customer had events since ``embedding`` was computed."""


class EncoderObserver:
    """Encoder features of simulated customers: embedding, churn probability and expected CLV.

    Use :meth:`empty` for new customers' buffers, pass :meth:`recorders` to the simulator while it simulates
    them, and :meth:`observe` at each decision. ``customers_embedded`` counts transformer passes per customer.
    """

    def __init__(self, model: CustomerEncoderModel, tokenizer: EventTokenizer, catalog: OfferCatalog, batch_size: int = 256) -> None:
        if model.config.backbone != "events":
            raise InputError(f"the encoder observer runs the events backbone in the loop; this model's backbone is {model.config.backbone!r}")
        if tokenizer.max_len > model.config.max_len:
            raise InputError(f"the tokenizer keeps {tokenizer.max_len} events but the model reads at most {model.config.max_len}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_len = tokenizer.max_len
        self.embedding_dim = model.config.embedding_dim
        self.feature_names = model.policy_feature_names()
        self.customers_embedded = 0
        categories = {c: i for i, c in enumerate(tokenizer.categories)}
        self._category_id = np.array([2 + categories[c] if c in categories else UNK_ID for c in CATEGORIES], np.int16)
        offers = {o: i for i, o in enumerate(tokenizer.offers)}
        self._offer_id = np.array([0] + [2 + offers[o] if o in offers else UNK_ID for o in catalog.ids[1:]], np.int16)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, catalog: OfferCatalog) -> EncoderObserver:
        """The observer of the encoder that ``offerpilot encoder train`` wrote to ``model_dir``."""
        model, tokenizer = load_encoder(model_dir)
        return cls(model, tokenizer, catalog)

    def empty(self, n: int) -> EventHistory:
        """Buffers of ``n`` customers without events."""
        return EventHistory(
            tokens=np.zeros((n, len(TOKEN_FIELDS), self.max_len), np.int16),
            length=np.zeros(n, np.int16),
            last_minute=np.full(n, NEVER, np.int64),
            kind_minute=np.full((n, len(EVENT_KINDS)), NEVER, np.int64),
            embedding=np.zeros((n, self.embedding_dim), F32),
            stale=np.ones(n, bool),
        )

    def recorders(self, history: EventHistory) -> tuple[DayRecorder, AcquisitionRecorder]:
        """``(on_day, on_acquire)`` callbacks for the simulator that write its events into ``history``."""

        def on_acquire(day: int, customers: np.ndarray, list_value: np.ndarray, category: np.ndarray) -> None:
            minute = day * MINUTES_PER_DAY
            for stage in ("visit", "view", "cart"):
                self._append(history, customers, minute + EVENT_MINUTE[stage], stage)
            amount = self._amount_id(list_value.astype(np.float64))
            self._append(history, customers, minute + EVENT_MINUTE["purchase"], "purchase", self._category_id[category], amount)

        def on_day(customers: np.ndarray, state: CustomerState, out: DayOutcome) -> None:
            minute = (state.day.astype(np.int64) - 1) * MINUTES_PER_DAY
            hit = np.flatnonzero(out.unsubscribed)
            self._append(history, customers[hit], minute[hit] + EVENT_MINUTE["unsubscribe"], "unsubscribe")
            for level, stage in enumerate(FUNNEL[1:], start=1):
                hit = np.flatnonzero(out.stage >= level)
                if stage != "purchase":
                    self._append(history, customers[hit], minute[hit] + EVENT_MINUTE[stage], stage)
                    continue
                paid = (out.list_value[hit] - out.discount[hit]).astype(np.float64)
                tokens = (self._category_id[out.category[hit]], self._amount_id(paid), self._offer_id[out.redeemed[hit]])
                self._append(history, customers[hit], minute[hit] + EVENT_MINUTE[stage], stage, *tokens)
            hit = np.flatnonzero(out.rating > 0)
            self._append(history, customers[hit], minute[hit] + EVENT_MINUTE["review"], "review", self._category_id[out.category[hit]])

        return on_day, on_acquire

    def elapsed_days(self, history: EventHistory, day: np.ndarray) -> np.ndarray:
        """(n, len(EVENT_KINDS)) float32 days from each kind's last event to the decision on ``day``; NaN: never."""
        now = day.astype(np.int64)[:, None] * MINUTES_PER_DAY + DECISION_MINUTE
        return np.where(history.kind_minute == NEVER, np.nan, (now - history.kind_minute) / MINUTES_PER_DAY).astype(F32)

    @torch.inference_mode()
    def observe(self, history: EventHistory, state: CustomerState) -> np.ndarray:
        """(n, len(feature_names)) float32 at the decision on ``state.day``: embeddings (recomputed for stale
        customers only), churn probability and ``log1p`` of expected CLV from the heads."""
        self.refresh(history)
        elapsed = torch.from_numpy(self.elapsed_days(history, state.day))
        return self.model.policy_features(torch.from_numpy(history.embedding).to(self.model.device), elapsed).float().cpu().numpy()

    def refresh(self, history: EventHistory) -> None:
        """Recompute the embeddings of stale customers (the cache's only transformer passes)."""
        rows = np.flatnonzero(history.stale)
        if rows.size == 0:
            return
        tokens = torch.from_numpy(history.tokens[rows].astype(np.int64))
        inputs = {name: tokens[:, i] for i, name in enumerate(TOKEN_FIELDS)}
        inputs["attention_mask"] = torch.arange(self.max_len) < torch.from_numpy(history.length[rows].astype(np.int64))[:, None]
        history.embedding[rows] = self.model.embed(inputs, self.batch_size).numpy()
        history.stale[rows] = False
        self.customers_embedded += rows.size

    # -- internals ---------------------------------------------------------------------------------------

    def _amount_id(self, paid: np.ndarray) -> np.ndarray:
        """Money bucket ids as the tokenizer gives them to amounts stored with 2 decimals."""
        return (2 + np.searchsorted(self.tokenizer.amount_edges, np.round(paid, 2), side="right")).astype(np.int16)

    def _append(
        self,
        history: EventHistory,
        customers: np.ndarray,
        minute: np.ndarray | int,
        kind: str,
        category_id: np.ndarray | int = 0,
        amount_id: np.ndarray | int = 0,
        offer_id: np.ndarray | int = 0,
    ) -> None:
        """Append one event of ``kind`` to each of ``customers`` (distinct), dropping the oldest of full buffers."""
        if customers.size == 0:
            return
        last = history.last_minute[customers]
        gap_id = 2 + np.searchsorted(self.tokenizer.time_edges, (minute - last) / MINUTES_PER_DAY, side="right")
        gap_id[last == NEVER] = FIRST_EVENT_ID
        length = history.length[customers]
        full = customers[length >= self.max_len]
        if full.size:
            history.tokens[full, :, :-1] = history.tokens[full, :, 1:]
        values = np.empty((customers.size, len(TOKEN_FIELDS)), np.int16)  # columns in TOKEN_FIELDS order
        values[:, 0] = 2 + _KIND[kind]
        values[:, 1] = category_id
        values[:, 2] = amount_id
        values[:, 3] = offer_id
        values[:, 4] = gap_id
        history.tokens[customers, :, np.minimum(length, self.max_len - 1)] = values
        history.length[customers] = np.minimum(length + 1, self.max_len)
        history.last_minute[customers] = minute
        history.kind_minute[customers, _KIND[kind]] = minute
        history.stale[customers] = True

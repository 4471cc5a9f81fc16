"""The offer catalog: the actions the policy chooses between, their costs, eligibility and caps.

A catalog is read from YAML (see ``offerpilot/data/offers.yaml`` for the default) and validated at
the boundary; every problem names the file and the key path. Downstream code uses the array views
(``value``, ``send_cost``, ...), indexed by action id, so that costs and masks are vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from offerpilot.errors import DataError, InputError, Problem

OFFER_KINDS = ("none", "percent_off", "amount_off", "free_shipping", "loyalty_points", "content_only")
"""Kinds of action. ``value`` means: a fraction of list price for ``percent_off`` and
``loyalty_points``, money for ``amount_off`` and ``free_shipping``, nothing for the others."""

_FRACTION_KINDS = ("percent_off", "loyalty_points")
_MONEY_KINDS = ("amount_off", "free_shipping")
_ELIGIBILITY_KEYS = ("min_days_since_purchase", "max_days_since_purchase", "min_purchases")
NONE_ID = "none"
"""Id of the send-nothing action that a catalog without one gets."""


@dataclass(frozen=True)
class Eligibility:
    """Who may receive an offer, from what the shop knows of the customer."""

    min_days_since_purchase: int = 0
    max_days_since_purchase: int | None = None
    min_purchases: int = 0


@dataclass(frozen=True)
class Offer:
    """One action. ``none`` (send nothing) is an action too and costs nothing."""

    id: str
    kind: str
    value: float = 0.0
    channel: str | None = None
    validity_days: int = 0
    breakage: float = 0.3
    """Loyalty points only: share of granted points never spent, so never a cost."""
    eligibility: Eligibility = field(default_factory=Eligibility)

    @property
    def is_message(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True)
class ContactCaps:
    """Contact-frequency caps over all messages: at most ``max_messages`` in any ``window_days``
    window, and at least ``min_gap_days`` between two messages."""

    max_messages: int = 2
    window_days: int = 14
    min_gap_days: int = 0


@dataclass(frozen=True)
class OfferCatalog:
    """The action set. Action ``i`` is ``offers[i]``; action 0 is always ``none``."""

    offers: tuple[Offer, ...]
    channels: dict[str, float]
    caps: ContactCaps = ContactCaps()
    currency: str = "USD"
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What reading the file changed and the user should hear of (e.g. a ``none`` action added)."""

    @property
    def n_actions(self) -> int:
        return len(self.offers)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.offers)

    def index(self, offer_id: str) -> int:
        """Action index of ``offer_id``; a ValueError naming the known ids if absent."""
        try:
            return self.ids.index(offer_id)
        except ValueError:
            raise InputError(f"unknown offer id {offer_id!r}; the catalog has {list(self.ids)}") from None

    # Array views, shape (n_actions,), used by the vectorised simulator and the masks.
    @cached_property
    def kind_code(self) -> np.ndarray:
        return np.array([OFFER_KINDS.index(o.kind) for o in self.offers], dtype=np.int8)

    @cached_property
    def value(self) -> np.ndarray:
        return np.array([o.value for o in self.offers], dtype=np.float32)

    @cached_property
    def send_cost(self) -> np.ndarray:
        return np.array([self.channels[o.channel] if o.is_message else 0.0 for o in self.offers], dtype=np.float32)

    @cached_property
    def validity_days(self) -> np.ndarray:
        return np.array([o.validity_days for o in self.offers], dtype=np.int16)

    @cached_property
    def breakage(self) -> np.ndarray:
        return np.array([o.breakage for o in self.offers], dtype=np.float32)

    @cached_property
    def is_message(self) -> np.ndarray:
        return np.array([o.is_message for o in self.offers], dtype=bool)

    @cached_property
    def is_offer(self) -> np.ndarray:
        """Actions that give something on a purchase (and so become the customer's live offer)."""
        return np.isin(self.kind_code, [OFFER_KINDS.index(k) for k in _FRACTION_KINDS + _MONEY_KINDS])

    @cached_property
    def min_days_since_purchase(self) -> np.ndarray:
        return np.array([o.eligibility.min_days_since_purchase for o in self.offers], dtype=np.int32)

    @cached_property
    def max_days_since_purchase(self) -> np.ndarray:
        big = np.iinfo(np.int32).max
        return np.array(
            [big if o.eligibility.max_days_since_purchase is None else o.eligibility.max_days_since_purchase for o in self.offers],
            dtype=np.int32,
        )

    @cached_property
    def min_purchases(self) -> np.ndarray:
        return np.array([o.eligibility.min_purchases for o in self.offers], dtype=np.int32)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form that :func:`parse_catalog` reads back (YAML/JSON friendly)."""
        offers = []
        for o in self.offers:
            d: dict[str, Any] = {"id": o.id, "kind": o.kind}
            if o.is_message:
                d.update(value=o.value, channel=o.channel, validity_days=o.validity_days)
                if o.kind == "loyalty_points":
                    d["breakage"] = o.breakage
                elig = {k: getattr(o.eligibility, k) for k in _ELIGIBILITY_KEYS}
                elig = {k: v for k, v in elig.items() if v not in (0, None)}
                if elig:
                    d["eligibility"] = elig
            offers.append(d)
        return {
            "currency": self.currency,
            "channels": {k: {"send_cost": v} for k, v in self.channels.items()},
            "contact_caps": {
                "max_messages": self.caps.max_messages,
                "window_days": self.caps.window_days,
                "min_gap_days": self.caps.min_gap_days,
            },
            "offers": offers,
        }


def default_catalog() -> OfferCatalog:
    """The catalog shipped with offerpilot (``offerpilot/data/offers.yaml``)."""
    resource = files("offerpilot") / "data" / "offers.yaml"
    return parse_catalog(yaml.safe_load(resource.read_text()), source="offerpilot/data/offers.yaml")


def load_catalog(path: str | Path | None) -> OfferCatalog:
    """Read and validate a catalog YAML file; ``None`` gives the default catalog."""
    if path is None:
        return default_catalog()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError([Problem(str(path), None, None, "file not found")]) from None
    except yaml.YAMLError as e:
        raise DataError([Problem(str(path), None, None, f"not valid YAML: {e}")]) from None
    return parse_catalog(data, source=str(path))


def parse_catalog(data: Any, source: str = "<catalog>") -> OfferCatalog:
    """Build a catalog from parsed YAML, collecting every problem before raising :class:`DataError`."""
    problems: list[Problem] = []

    def bad(key: str, msg: str) -> None:
        problems.append(Problem(source, None, key, msg))

    if not isinstance(data, dict):
        raise DataError([Problem(source, None, None, "a catalog must be a mapping with 'channels' and 'offers'")])

    channels: dict[str, float] = {}
    raw_channels = data.get("channels")
    if not isinstance(raw_channels, dict) or not raw_channels:
        bad("channels", "must map each channel name to {send_cost: money}")
    else:
        for name, spec in raw_channels.items():
            cost = spec.get("send_cost") if isinstance(spec, dict) else None
            if not _is_number(cost) or cost < 0:
                bad(f"channels.{name}.send_cost", f"must be a number >= 0, got {cost!r}")
            else:
                channels[str(name)] = float(cost)

    caps = ContactCaps()
    raw_caps = data.get("contact_caps", {})
    if not isinstance(raw_caps, dict):
        bad("contact_caps", "must be a mapping")
    else:
        unknown = set(raw_caps) - {"max_messages", "window_days", "min_gap_days"}
        for key in sorted(unknown):
            bad(f"contact_caps.{key}", "unknown key (expected max_messages, window_days, min_gap_days)")
        values = {}
        for key, lo in (("max_messages", 1), ("window_days", 1), ("min_gap_days", 0)):
            v = raw_caps.get(key, getattr(caps, key))
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                bad(f"contact_caps.{key}", f"must be an integer >= {lo}, got {v!r}")
            else:
                values[key] = v
        if len(values) == 3:
            caps = ContactCaps(**values)

    offers: list[Offer] = []
    raw_offers = data.get("offers")
    if not isinstance(raw_offers, list) or not raw_offers:
        bad("offers", "must be a non-empty list")
        raw_offers = []
    seen: set[str] = set()
    for i, spec in enumerate(raw_offers):
        raw_id = _offer_id(spec.get("id")) if isinstance(spec, dict) else None
        if raw_id is not None and raw_id in seen:
            bad(f"offers[{i}].id", f"duplicate offer id {raw_id!r}")
            continue
        if raw_id is not None:
            seen.add(raw_id)
        offer = _parse_offer(spec, f"offers[{i}]", channels, problems, source)
        if offer is not None:
            offers.append(offer)
    nones = [o for o in offers if o.kind == "none"]
    if len(nones) > 1:
        bad("offers", "only one offer may have kind 'none'")
    notes: list[str] = []
    if offers and not nones and not problems:
        if NONE_ID in seen:
            bad("offers", f"no offer has kind 'none', and the id {NONE_ID!r} that offerpilot would give the send-nothing action is taken")
        else:
            offers.insert(0, Offer(id=NONE_ID, kind="none"))
            notes.append(f"{source}: no offer has kind 'none'; added the send-nothing action {NONE_ID!r} as action 0")
    elif len(nones) == 1 and offers[0].kind != "none":
        offers.remove(nones[0])
        offers.insert(0, nones[0])
        notes.append(f"{source}: moved the send-nothing action {nones[0].id!r} to the front (action 0)")

    if problems:
        raise DataError(problems)
    currency = str(data.get("currency", "USD"))
    return OfferCatalog(offers=tuple(offers), channels=channels, caps=caps, currency=currency, notes=tuple(notes))


def _parse_offer(spec: Any, key: str, channels: dict[str, float], problems: list[Problem], source: str) -> Offer | None:
    def bad(sub: str, msg: str) -> None:
        problems.append(Problem(source, None, f"{key}.{sub}" if sub else key, msg))

    if not isinstance(spec, dict):
        bad("", "each offer must be a mapping")
        return None
    n_before = len(problems)
    allowed = {"id", "kind", "value", "channel", "validity_days", "breakage", "eligibility"}
    for k in sorted(set(spec) - allowed):
        bad(k, f"unknown key (expected one of {sorted(allowed)})")
    offer_id = _offer_id(spec.get("id"))
    if offer_id is None:
        bad("id", f"must be a non-empty string or an integer (YAML reads an unquoted 0 as one), got {spec.get('id')!r}")
    kind = spec.get("kind")
    if kind not in OFFER_KINDS:
        bad("kind", f"must be one of {list(OFFER_KINDS)}, got {kind!r}")
        return None
    if kind == "none":
        if len(problems) > n_before:
            return None
        return Offer(id=offer_id, kind="none")

    value = spec.get("value", 0.0)
    if not _is_number(value) or value < 0:
        bad("value", f"must be a number >= 0, got {value!r}")
    elif kind in _FRACTION_KINDS and not 0 < value < 1:
        bad("value", f"a {kind} value is a fraction of list price in (0, 1), got {value!r}")
    elif kind in _MONEY_KINDS and value <= 0:
        bad("value", f"a {kind} value is money and must be > 0, got {value!r}")
    channel = spec.get("channel")
    if channel not in channels:
        bad("channel", f"must be one of the channels {sorted(channels)}, got {channel!r}")
    validity = spec.get("validity_days", 0 if kind == "content_only" else 14)
    if not isinstance(validity, int) or isinstance(validity, bool) or validity < 0 or validity > 365:
        bad("validity_days", f"must be an integer in [0, 365], got {validity!r}")
    elif kind != "content_only" and validity < 1:
        bad("validity_days", "an offer that gives something must be valid for at least 1 day")
    breakage = spec.get("breakage", 0.3)
    if not _is_number(breakage) or not 0 <= breakage < 1:
        bad("breakage", f"must be a number in [0, 1), got {breakage!r}")

    elig = Eligibility()
    raw_elig = spec.get("eligibility", {}) or {}
    if not isinstance(raw_elig, dict):
        bad("eligibility", "must be a mapping")
    else:
        for k in sorted(set(raw_elig) - set(_ELIGIBILITY_KEYS)):
            bad(f"eligibility.{k}", f"unknown key (expected one of {list(_ELIGIBILITY_KEYS)})")
        vals = {}
        for k in _ELIGIBILITY_KEYS:
            if k in raw_elig:
                v = raw_elig[k]
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    bad(f"eligibility.{k}", f"must be an integer >= 0, got {v!r}")
                else:
                    vals[k] = v
        elig = Eligibility(**vals)
        if elig.max_days_since_purchase is not None and elig.max_days_since_purchase < elig.min_days_since_purchase:
            bad("eligibility", "max_days_since_purchase is below min_days_since_purchase: nobody is eligible")

    if len(problems) > n_before:
        return None
    return Offer(
        id=offer_id,
        kind=kind,
        value=float(value) if kind not in ("content_only",) else 0.0,
        channel=channel,
        validity_days=int(validity),
        breakage=float(breakage),
        eligibility=elig,
    )


def _offer_id(raw: Any) -> str | None:
    """An offer id as text: a non-empty string, or an integer's digits (the logs read integer ids as text too);
    ``None`` for anything else (a float or a date would have lost or changed characters)."""
    if isinstance(raw, str) and raw.strip():
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)

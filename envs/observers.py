"""Observers turn the simulator's state into what a policy sees.

``RawFeatureObserver`` sees only what a shop's database holds (RFM-style features, contact
history, the time in the decision period); ``LatentObserver`` adds the simulator's hidden state and
is for the oracle alone. The encoder observer (``offerpilot.encoders``) plugs in with the same shape.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.population import F32, CustomerState, CustomerTraits


class Observer(Protocol):
    """Maps (traits, state) of n customers to float32 observations of shape (n, n_features)."""

    feature_names: tuple[str, ...]

    def observe(self, traits: CustomerTraits, state: CustomerState) -> np.ndarray: ...


def _log_days(days: np.ndarray) -> np.ndarray:
    return (np.log1p(days.astype(F32)) / F32(np.log(366.0))).astype(F32)


class RawFeatureObserver:
    """Observable features, each scaled to roughly [0, 1]."""

    feature_names = (
        "progress",  # day / horizon: the reward's time weighting depends on it
        "log_recency",
        "log_purchases",
        "log_mean_spend",
        "log_tenure",
        "log_days_since_message",
        "messages_in_window",
        "subscribed",
        "offer_days_left",
        "log_messages",
        "discount_share",
        "last_rating",
        "log_days_since_visit",
    )

    def __init__(self, catalog: OfferCatalog, objective: ObjectiveConfig) -> None:
        self.window = catalog.caps.window_days
        self.horizon = objective.horizon_days

    def observe(self, traits: CustomerTraits, state: CustomerState) -> np.ndarray:
        spent = state.total_spend
        n_buy = np.maximum(state.n_purchases, 1).astype(F32)
        columns = (
            state.day.astype(F32) / F32(self.horizon),
            _log_days(state.recency),
            np.log1p(state.n_purchases.astype(F32)) / F32(5),
            np.log1p(spent / n_buy) / F32(6),
            _log_days(state.age),
            _log_days(state.contact_age[:, 0]),
            (state.contact_age < self.window).sum(axis=1).astype(F32) / F32(state.contact_age.shape[1]),
            state.subscribed.astype(F32),
            state.offer_days_left.astype(F32) / F32(30),
            np.log1p(state.n_messages.astype(F32)) / F32(5),
            state.discount_received / np.maximum(spent + state.discount_received, F32(1e-6)),
            state.last_rating.astype(F32) / F32(5),
            _log_days(state.days_since_visit),
        )
        return np.stack(columns, axis=1).astype(F32, copy=False)


LATENT_FEATURES = (
    "alive",
    "log_purchase_rate",
    "log_dropout_rate",
    "log_spend_scale",
    "price_sensitivity",
    "satisfaction",
    "engagement",
    "habituation",
    "fatigue",
)
"""The simulator's hidden state as the oracle sees it, in this order."""


class LatentObserver(RawFeatureObserver):
    """Raw features plus the simulator's latent state: the oracle's privileged view.

    ``latent`` picks which latent variables are seen (default: all): an oracle that sees a subset measures
    what knowing those variables is worth.
    """

    def __init__(self, catalog: OfferCatalog, objective: ObjectiveConfig, latent: tuple[str, ...] = LATENT_FEATURES) -> None:
        super().__init__(catalog, objective)
        unknown = [name for name in latent if name not in LATENT_FEATURES]
        if unknown or not latent:
            raise ValueError(f"latent features must be a non-empty subset of {LATENT_FEATURES}, got {list(latent)}")
        self.columns = [LATENT_FEATURES.index(name) for name in latent]
        self.feature_names = RawFeatureObserver.feature_names + tuple(latent)

    def observe(self, traits: CustomerTraits, state: CustomerState) -> np.ndarray:
        latent = np.stack(
            (
                state.alive.astype(F32),
                np.log(traits.purchase_rate + F32(1e-6)) / F32(10),
                np.log(traits.dropout_rate + F32(1e-6)) / F32(10),
                np.log(traits.spend_scale + F32(1e-3)) / F32(5),
                traits.price_sensitivity / F32(10),
                state.satisfaction,
                state.engagement,
                state.habituation * F32(5),
                state.fatigue / F32(3),
            ),
            axis=1,
        )
        return np.concatenate([super().observe(traits, state), latent[:, self.columns]], axis=1).astype(F32, copy=False)


def latent_observer_name(latent_features: tuple[str, ...] | None) -> str:
    """The :func:`make_observer` name of an oracle that sees ``latent_features`` (``None``: every latent variable)."""
    return "latent" if latent_features is None else "latent:" + ",".join(latent_features)


def make_observer(name: str, catalog: OfferCatalog, objective: ObjectiveConfig) -> Observer:
    """Observer by name: ``raw`` (default), ``latent`` (oracle only) or ``latent:NAME,NAME`` (an oracle that
    sees only those of :data:`LATENT_FEATURES`)."""
    if name == "raw":
        return RawFeatureObserver(catalog, objective)
    if name == "latent":
        return LatentObserver(catalog, objective)
    if name.startswith("latent:"):
        return LatentObserver(catalog, objective, tuple(name.removeprefix("latent:").split(",")))
    raise ValueError(f"unknown observer {name!r}; choose raw, latent or latent:NAME,NAME")

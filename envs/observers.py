"""Observers turn the simulator's state into what a policy sees.

``RawFeatureObserver`` sees only what a shop's database holds (RFM-style features, contact
history, the time in the decision period); ``LatentObserver`` adds the simulator's hidden state and
is for the oracle alone. The encoder observer (``offerpilot.encoders``) plugs in with the same shape.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.common_random import Draw, open_uniforms
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.population import F32, CustomerState, CustomerTraits, PopulationParams
from offerpilot.errors import InputError


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

STABLE_TRAITS = ("log_purchase_rate", "log_dropout_rate", "log_spend_scale", "price_sensitivity")
"""The latent variables fixed for a customer's life: the only ones an oracle may see through noise."""
LOG_INFORMED_FEATURES = ("log_purchase_rate@0.51", "log_dropout_rate@0.49", "log_spend_scale@0.76", "price_sensitivity@0.32")
"""The log-informed oracle's view: the four stable traits, each as well as a year of the shop's logs tells it (the held-out
R^2 of ``scripts/trait_recoverability.py`` from every feature after 52 weeks of random offers). The yardstick of a policy
that reads logs, beside the full oracle, which sees what no log shows."""


def parse_latent_feature(spec: str) -> tuple[str, float]:
    """``NAME`` (seen exactly) or ``NAME@R2`` (a stable trait seen through noise, such that the best prediction of
    the trait from what is seen explains the share ``R2`` of its variance) -> (name, R2)."""
    name, _, r2_text = spec.partition("@")
    if name not in LATENT_FEATURES:
        raise InputError(f"unknown latent feature {name!r}; choose from {LATENT_FEATURES}")
    if not r2_text:
        return name, 1.0
    try:
        r2 = float(r2_text)
    except ValueError:
        raise InputError(f"{spec!r}: the share of variance after '@' must be a number in (0, 1]") from None
    if not 0.0 < r2 <= 1.0:
        raise InputError(f"{spec!r}: the share of variance after '@' must be in (0, 1], got {r2}")
    if r2 < 1.0 and name not in STABLE_TRAITS:
        raise InputError(f"{spec!r}: only the stable traits {STABLE_TRAITS} can be seen through noise")
    return name, r2


def _trait_columns(traits: CustomerTraits) -> np.ndarray:
    """The :data:`STABLE_TRAITS` as the oracle sees them, scaled to roughly unit range, shape (n, 4)."""
    return np.stack(
        (
            np.log(traits.purchase_rate + F32(1e-6)) / F32(10),
            np.log(traits.dropout_rate + F32(1e-6)) / F32(10),
            np.log(traits.spend_scale + F32(1e-3)) / F32(5),
            traits.price_sensitivity / F32(10),
        ),
        axis=1,
    )


def _latent_columns(traits: CustomerTraits, state: CustomerState) -> np.ndarray:
    """Every latent variable of :data:`LATENT_FEATURES`, scaled to roughly unit range, shape (n, 9)."""
    dynamic = (state.satisfaction, state.engagement, state.habituation * F32(5), state.fatigue / F32(3))
    return np.concatenate([state.alive.astype(F32)[:, None], _trait_columns(traits), np.stack(dynamic, axis=1)], axis=1)


def customer_normal(traits: CustomerTraits, stream: int) -> np.ndarray:
    """One standard normal draw per customer and ``stream``, the same at every decision of the customer's life.

    A common random number of the customer's noise key, so an observer needs no memory of who is who.
    """
    from scipy.special import ndtri

    return ndtri(open_uniforms(traits.noise_key, stream, Draw.OBSERVATION_NOISE))


class LatentObserver(RawFeatureObserver):
    """Raw features plus the simulator's latent state: the oracle's privileged view.

    ``latent`` picks which latent variables are seen (default: all): an oracle that sees a subset measures
    what knowing those variables is worth. ``NAME@R2`` shows a stable trait through noise fixed per customer, with
    the share ``R2`` of its variance explained (see :func:`parse_latent_feature`): an oracle that knows a trait
    only as well as a shop's logs can tell it; ``population`` gives the traits' spread the noise is scaled to.
    """

    def __init__(self, catalog: OfferCatalog, objective: ObjectiveConfig, latent: tuple[str, ...] = LATENT_FEATURES, population: PopulationParams | None = None) -> None:
        super().__init__(catalog, objective)
        if not latent:
            raise InputError(f"latent features must be a non-empty subset of {LATENT_FEATURES}, got []")
        parsed = [parse_latent_feature(spec) for spec in latent]
        self.columns = [LATENT_FEATURES.index(name) for name, _ in parsed]
        self.feature_names = RawFeatureObserver.feature_names + tuple(latent)
        noisy = [(i, name, r2) for i, (name, r2) in enumerate(parsed) if r2 < 1.0]
        self.noise_scale = np.zeros(len(parsed), F32)
        if noisy:
            spread = _trait_spread(population or PopulationParams())
            for i, name, r2 in noisy:
                self.noise_scale[i] = spread[STABLE_TRAITS.index(name)] * np.sqrt((1.0 - r2) / r2)

    def observe(self, traits: CustomerTraits, state: CustomerState) -> np.ndarray:
        latent = _latent_columns(traits, state)[:, self.columns]
        for i in np.flatnonzero(self.noise_scale):
            latent[:, i] += self.noise_scale[i] * customer_normal(traits, self.columns[i]).astype(F32)
        return np.concatenate([super().observe(traits, state), latent], axis=1).astype(F32, copy=False)


def _trait_spread(population: PopulationParams, n: int = 200_000) -> np.ndarray:
    """Standard deviation of each of :data:`STABLE_TRAITS`' columns over ``n`` customers of ``population`` (fixed seed)."""
    from offerpilot.envs.population import sample_traits

    return _trait_columns(sample_traits(population, n, np.random.default_rng(0))).std(axis=0)


def latent_observer_name(latent_features: tuple[str, ...] | None) -> str:
    """The :func:`make_observer` name of an oracle that sees ``latent_features`` (``None``: every latent variable)."""
    return "latent" if latent_features is None else "latent:" + ",".join(latent_features)


def make_observer(name: str, catalog: OfferCatalog, objective: ObjectiveConfig, population: PopulationParams | None = None) -> Observer:
    """Observer by name: ``raw`` (default), ``latent`` (oracle only) or ``latent:NAME,NAME@R2`` (an oracle that
    sees only those of :data:`LATENT_FEATURES`, the ones with ``@R2`` through noise scaled to ``population``)."""
    if name == "raw":
        return RawFeatureObserver(catalog, objective)
    if name == "latent":
        return LatentObserver(catalog, objective)
    if name.startswith("latent:"):
        return LatentObserver(catalog, objective, tuple(name.removeprefix("latent:").split(",")), population)
    raise InputError(f"unknown observer {name!r}; choose raw, latent or latent:NAME,NAME")

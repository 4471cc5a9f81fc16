"""The customer population: its parameters, traits and day-to-day state, and how they are drawn.

Every array has shape ``(n_customers,)`` (``contact_age`` is ``(n_customers, k)``). The day kernel that
advances them is :class:`~offerpilot.envs.day_kernel.DayKernel`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.common_random import new_keys

F32 = np.float32
NO_CONTACT = np.int16(10_000)
"""Days-since-contact value for 'never contacted' (any cap window is shorter)."""
MAX_DAYS = np.int16(30_000)

CATEGORIES = ("music", "books", "electronics", "home", "fashion", "beauty", "sports", "toys")
FUNNEL = ("none", "visit", "view", "cart", "purchase")
"""Deepest funnel stage a customer reaches on a day; each stage implies the ones before it."""

@dataclass(frozen=True)
class PopulationParams:
    """Hyperparameters of the population, in days and money. Defaults: the CDNOW-calibrated shape
    (Pareto/NBD + Gamma-Gamma fitted on the real CDNOW log, converted to days) plus behavioural
    effects whose sizes are documented in ``docs/simulator.md``."""

    r: float = 0.5974
    """Shape of the purchase-rate distribution ``lam ~ Gamma(r, rate=alpha)`` (purchases/day)."""
    alpha: float = 81.1
    """Rate of the purchase-rate distribution (days)."""
    s: float = 0.5222
    """Shape of the dropout-hazard distribution ``mu ~ Gamma(s, rate=beta)`` (per day)."""
    beta: float = 61.79
    """Rate of the dropout-hazard distribution (days)."""
    spend_p: float = 6.275
    """Gamma-Gamma: shape of one purchase's list value."""
    spend_q: float = 3.624
    """Gamma-Gamma: shape of the customers' spend-rate distribution."""
    spend_gamma: float = 14.98
    """Gamma-Gamma: scale of the customers' spend-rate distribution (money)."""

    price_sensitivity_mean: float = 6.0
    """Mean of ``b_i`` (log-normal): 10 % off multiplies the purchase rate by ``exp(0.1 * b_i)``."""
    price_sensitivity_cv: float = 0.7
    """Coefficient of variation of ``b_i`` across customers."""
    price_sensitivity_spend_elasticity: float = 0.5
    """Bargain hunters spend less: ``b_i`` scales with (mean spend / population mean) ** -this."""
    max_offer_lift: float = 5.0
    """No offer multiplies a day's purchase rate by more than this."""
    habituation_rate: float = 0.1
    """Each offer moves the reference discount ``h`` this share of the way to the offer's discount."""
    habituation_half_life: float = 60.0
    """Days for the reference discount to halve without offers."""

    engagement_half_life: float = 21.0
    """Days for engagement to halve."""
    engagement_purchase: float = 0.3
    """Share of the gap to full engagement (1) closed by a purchase."""
    engagement_message: float = 0.03
    """Share of the gap to full engagement closed by reading an offer."""
    engagement_content: float = 0.12
    """Share of the gap to full engagement closed by reading a content-only message."""
    engagement_buy_weight: float = 0.4
    """``w_eb``: log purchase-rate gain at full engagement (engagement is in [0, 1])."""
    engagement_hazard_weight: float = 0.5
    """``w_eh``: log dropout-hazard reduction at full engagement."""

    inactivity_weight: float = 1.0
    """``w_in``: log dropout-hazard increase after ``inactivity_days`` without a purchase."""
    inactivity_days: float = 365.0
    """``R``: inactivity saturates after this many days."""
    satisfaction_weight: float = 2.0
    """``w_sat``: log dropout-hazard increase per unit of satisfaction below ``satisfaction_ref``."""
    satisfaction_ref: float = 0.75
    """Satisfaction at which dissatisfaction adds no hazard."""
    satisfaction_rate: float = 0.3
    """Each purchase moves satisfaction this share of the way to the purchase's experience."""
    quality_mean: float = 0.75
    """Mean of the customer's typical experience (Beta-distributed, in [0, 1])."""
    quality_concentration: float = 8.0
    """Beta concentration of the typical experience across customers."""
    experience_noise: float = 0.15
    """Spread of one purchase's experience around the customer's typical one."""

    fatigue_half_life: float = 10.0
    """Days for contact fatigue to halve."""
    fatigue_threshold: float = 2.0
    """Fatigue above which satisfaction erodes (a weekly message peaks just above it)."""
    fatigue_satisfaction_loss: float = 0.005
    """Satisfaction lost per day per unit of fatigue above the threshold."""
    unsubscribe_base: float = 0.002
    """``u0``: chance a message unsubscribes a fresh customer."""
    unsubscribe_fatigue_weight: float = 0.5
    """``w_f``: log unsubscribe-chance increase per unit of fatigue."""

    review_rate: float = 0.15
    """Chance a purchase is followed by a review."""
    favourite_category_share: float = 0.7
    """Share of purchases in the customer's favourite category."""
    funnel_cart: float = 1.6
    """Cart-adds per purchase intent for a customer of mean price sensitivity; price-sensitive
    customers abandon more carts: ``P(cart) = P(buy) * (1 + (funnel_cart - 1) * b_i / mean(b))``."""
    funnel_view: float = 3.0
    """Product views per purchase intent."""
    funnel_visit: float = 5.0
    """Visits per purchase intent."""
    browse_rate: float = 0.02
    """Daily visits per unit engagement without purchase intent."""
    loyalty_perceived: float = 0.5
    """How much a point is worth to the customer, relative to cash off."""

    def replace(self, **changes: float) -> PopulationParams:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CustomerTraits:
    """Latent, fixed per customer: what the shop never observes. Shapes ``(n,)``."""

    purchase_rate: np.ndarray  # float32, purchases/day, lam_i
    dropout_rate: np.ndarray  # float32, per day, mu_i
    spend_scale: np.ndarray  # float32, money: one purchase's list value ~ Gamma(p, spend_scale)
    price_sensitivity: np.ndarray  # float32, b_i
    quality: np.ndarray  # float32 in [0, 1], typical experience
    favourite_category: np.ndarray  # int8 index into CATEGORIES
    noise_key: np.ndarray  # uint64: keys every random draw of the customer's days (see common_random)


@dataclass(frozen=True)
class CustomerState:
    """What changes day by day. Shapes ``(n,)`` unless noted."""

    alive: np.ndarray  # bool: latent, never observed by the shop
    subscribed: np.ndarray  # bool
    day: np.ndarray  # int16: day of the decision period (negative while the history is simulated)
    age: np.ndarray  # int16: days since acquisition
    recency: np.ndarray  # int16: days since the last purchase (1 on the day after it)
    n_purchases: np.ndarray  # int16
    total_spend: np.ndarray  # float32: money paid so far
    discount_received: np.ndarray  # float32: money given away by redeemed offers
    n_messages: np.ndarray  # int16
    contact_age: np.ndarray  # int16 (n, k): days since each of the k latest messages, newest first
    days_since_visit: np.ndarray  # int16: 1 on the day after a visit
    last_rating: np.ndarray  # int8: stars of the latest review, 0 = none
    offer: np.ndarray  # int8: live offer (action index), 0 = none
    offer_days_left: np.ndarray  # int16
    offer_discount: np.ndarray  # float32: perceived discount of the live offer, fraction of price
    satisfaction: np.ndarray  # float32 in [0, 1], latent
    engagement: np.ndarray  # float32 in [0, 1], latent
    habituation: np.ndarray  # float32 >= 0: reference discount, latent
    fatigue: np.ndarray  # float32 >= 0, latent

    @property
    def n_customers(self) -> int:
        return self.alive.shape[0]


@dataclass(frozen=True)
class DayOutcome:
    """What happened to each customer on one day. Shapes ``(n,)``; money in float32."""

    action: np.ndarray  # int8: the action applied (an illegal one is replaced by 0, 'none')
    sent: np.ndarray  # bool: a message went out
    unsubscribed: np.ndarray  # bool
    stage: np.ndarray  # uint8: deepest funnel stage reached, index into FUNNEL
    purchased: np.ndarray  # bool
    list_value: np.ndarray  # float32: full-price value bought
    discount: np.ndarray  # float32: value the redeemed offer gave away
    send_cost: np.ndarray  # float32
    redeemed: np.ndarray  # int8: offer redeemed on the purchase, 0 = none
    category: np.ndarray  # int8: category of the purchase (-1 = none)
    rating: np.ndarray  # int8: stars of a review written today, 0 = none
    churned: np.ndarray  # bool: dropped out today (latent)
    expected_list_value: np.ndarray  # float32: E[list_value] given the morning's state and action (0 for the dead)
    expected_discount: np.ndarray  # float32: E[discount] likewise

    @property
    def revenue(self) -> np.ndarray:
        """Money the customers paid: list value minus discount."""
        return self.list_value - self.discount


T = TypeVar("T")
"""A dataclass whose fields are per-customer arrays of the same length (traits, states, histories)."""


def take(arrays: T, index: np.ndarray | slice) -> T:
    """The customers at ``index`` (a copy for integer/bool indices, a view for slices)."""
    return type(arrays)(**{f.name: getattr(arrays, f.name)[index] for f in dataclasses.fields(arrays)})


def put(arrays: T, index: np.ndarray | slice, values: T) -> None:
    """Overwrite the customers at ``index`` with ``values`` (in place; used for resets)."""
    for f in dataclasses.fields(arrays):
        getattr(arrays, f.name)[index] = getattr(values, f.name)


def concat(parts: list[T]) -> T:
    """Stack populations end to end."""
    first = parts[0]
    return type(first)(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)})


def nbytes_per_customer(arrays: CustomerTraits | CustomerState) -> float:
    """Memory one customer takes in these arrays."""
    total = sum(getattr(arrays, f.name).nbytes for f in dataclasses.fields(arrays))
    return total / max(len(getattr(arrays, dataclasses.fields(arrays)[0].name)), 1)


def mean_spend(traits: CustomerTraits, params: PopulationParams) -> np.ndarray:
    """Expected list value of one purchase per customer (float32, money)."""
    return (params.spend_p * traits.spend_scale).astype(F32)


def sample_traits(params: PopulationParams, n: int, rng: np.random.Generator) -> CustomerTraits:
    """Draw ``n`` customers' latent traits."""
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    mu = rng.gamma(params.s, 1.0 / params.beta, n)
    nu = rng.gamma(params.spend_q, 1.0 / params.spend_gamma, n)
    cv2 = np.log1p(params.price_sensitivity_cv**2)
    relative_spend = (params.spend_q - 1) / (params.spend_gamma * nu)  # mean spend / population mean
    b = rng.lognormal(np.log(params.price_sensitivity_mean) - cv2 / 2, np.sqrt(cv2), n)
    b = b * relative_spend ** -params.price_sensitivity_spend_elasticity
    c = params.quality_concentration
    quality = rng.beta(params.quality_mean * c, (1 - params.quality_mean) * c, n)
    fav = rng.integers(0, len(CATEGORIES), n)
    keys = new_keys(n, rng)
    return CustomerTraits(
        purchase_rate=lam.astype(F32),
        dropout_rate=mu.astype(F32),
        spend_scale=(1.0 / nu).astype(F32),
        price_sensitivity=b.astype(F32),
        quality=quality.astype(F32),
        favourite_category=fav.astype(np.int8),
        noise_key=keys,
    )


def acquired_state(traits: CustomerTraits, catalog: OfferCatalog, day: np.ndarray) -> CustomerState:
    """State on ``day`` (int16 array), the day after each customer's first purchase: alive, subscribed,
    never contacted, one day of tenure since that purchase. The history simulation adds its spend."""
    n = traits.purchase_rate.shape[0]
    k = catalog.caps.max_messages
    zeros = np.zeros(n, F32)
    return CustomerState(
        alive=np.ones(n, bool),
        subscribed=np.ones(n, bool),
        day=day.astype(np.int16),
        age=np.ones(n, np.int16),
        recency=np.ones(n, np.int16),
        n_purchases=np.ones(n, np.int16),
        total_spend=zeros.copy(),
        discount_received=zeros.copy(),
        n_messages=np.zeros(n, np.int16),
        contact_age=np.full((n, k), NO_CONTACT, np.int16),
        days_since_visit=np.ones(n, np.int16),
        last_rating=np.zeros(n, np.int8),
        offer=np.zeros(n, np.int8),
        offer_days_left=np.zeros(n, np.int16),
        offer_discount=zeros.copy(),
        satisfaction=traits.quality.copy(),
        engagement=np.full(n, 0.3, F32),
        habituation=zeros.copy(),
        fatigue=zeros.copy(),
    )

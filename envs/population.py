"""The customer population: traits, state and the vectorised one-day step.

Every array has shape ``(n_customers,)`` (``contact_age`` is ``(n_customers, k)``); one call of
:func:`step` advances every customer by one day. Nothing here loops over customers. The step is a
pure function: it returns a new :class:`CustomerState` and never mutates its inputs.

Model (one day, time unit = day; see ``docs/simulator.md`` for the full specification):

* purchase rate   ``rate_i = lam_i * exp(b_i * (d_i - h_i) + w_eb * e_i)``, ``P(buy) = 1 - exp(-rate_i)``
  where ``lam_i ~ Gamma(r, alpha)`` (the NBD part of Pareto/NBD), ``b_i`` the price sensitivity,
  ``d_i`` the perceived discount of the customer's live offer, ``h_i`` the reference discount the
  customer has come to expect (habituation) and ``e_i`` engagement;
* dropout hazard  ``mu_i * exp(w_in * min(rec_i, R) / R + w_sat * (s_ref - s_i) - w_eh * e_i)``, with
  ``mu_i ~ Gamma(s, beta)`` (the Pareto part), rec the days since the last purchase, s satisfaction;
* spend           list value of a purchase ``~ Gamma(p, 1 / nu_i)``, ``nu_i ~ Gamma(q, gamma)`` (Gamma-Gamma);
* an offer's perceived discount ``d`` is its fraction of price, or ``value / (value + mean spend)`` for
  money offers, and its lift ``exp(b_i * (d - h))`` is capped at ``max_offer_lift``;
* messages raise fatigue ``f``; each message unsubscribes with ``P = u0 * exp(w_f * f)``; fatigue above
  a threshold erodes satisfaction; each offer pulls ``h`` towards its discount (reference-price habituation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.special import gammainc, gammaincc, gammaincinv

from offerpilot.catalog import OFFER_KINDS, OfferCatalog
from offerpilot.envs.common_random import Draw, new_keys, open_uniforms, uniforms

F32 = np.float32
NO_CONTACT = np.int16(10_000)
"""Days-since-contact value for 'never contacted' (any cap window is shorter)."""
MAX_DAYS = np.int16(30_000)

CATEGORIES = ("music", "books", "electronics", "home", "fashion", "beauty", "sports", "toys")
FUNNEL = ("none", "visit", "view", "cart", "purchase")
"""Deepest funnel stage a customer reaches on a day; each stage implies the ones before it."""

_KIND = {k: np.int8(i) for i, k in enumerate(OFFER_KINDS)}


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


class DayKernel:
    """Steps a population by one day. Holds the derived constants (decays, per-action arrays) so the
    hot path is pure array arithmetic; :meth:`step` itself keeps no state."""

    def __init__(self, params: PopulationParams, catalog: OfferCatalog) -> None:
        self.params = params
        self.catalog = catalog
        p = params
        self._decay_h = F32(0.5 ** (1.0 / p.habituation_half_life))
        self._decay_e = F32(0.5 ** (1.0 / p.engagement_half_life))
        self._decay_f = F32(0.5 ** (1.0 / p.fatigue_half_life))
        self._cart_excess = F32((p.funnel_cart - 1) / p.price_sensitivity_mean)
        self._max_log_lift = F32(np.log(p.max_offer_lift))
        kind = catalog.kind_code
        self._is_message = catalog.is_message
        self._is_offer = catalog.is_offer
        self._is_content = kind == _KIND["content_only"]
        self._is_money = np.isin(kind, [_KIND["amount_off"], _KIND["free_shipping"]])
        self._is_loyalty = kind == _KIND["loyalty_points"]
        self._value = catalog.value
        self._send_cost = catalog.send_cost
        self._validity = catalog.validity_days
        # Money a redeemed offer costs per unit of list value (fraction offers) or flat (money offers).
        self._cost_fraction = np.where(self._is_loyalty, catalog.value * (1 - catalog.breakage), np.where(self._is_money, 0, catalog.value)).astype(F32)
        self._cost_flat = np.where(self._is_money, catalog.value, 0).astype(F32)
        # Perceived discount: fraction offers directly (points at a discount), money offers relative to typical spend.
        self._perceived_fraction = np.where(self._is_loyalty, catalog.value * p.loyalty_perceived, np.where(self._is_money, 0, catalog.value)).astype(F32)

    def step(self, traits: CustomerTraits, state: CustomerState, action: np.ndarray, legal: np.ndarray) -> tuple[CustomerState, DayOutcome]:
        """Advance every customer one day.

        Every draw is a common random number of (customer, day, kind) (see :mod:`offerpilot.envs.common_random`),
        so the step is a deterministic function of its inputs and two policies meet the same luck.

        :param action: int array (n,), action index per customer, applied at the start of the day.
        :param legal: bool array (n, n_actions) from :func:`offerpilot.envs.masks.action_mask`;
            an illegal action is replaced by 'none' (0) and nothing is sent.
        """
        p = self.params
        n = state.n_customers
        rows = np.arange(n)
        action = np.where(legal[rows, action], action, 0).astype(np.int8)
        keys, today = traits.noise_key, state.day
        alive = state.alive

        # 1. Messages go out in the morning: cost, fatigue, unsubscribes, the live offer.
        sent = self._is_message[action]
        send_cost = self._send_cost[action]
        fatigue = state.fatigue + sent
        p_unsub = F32(p.unsubscribe_base) * np.exp(F32(p.unsubscribe_fatigue_weight) * fatigue)
        unsubscribed = sent & alive & (uniforms(keys, today, Draw.UNSUBSCRIBE) < p_unsub)
        subscribed = state.subscribed & ~unsubscribed
        is_offer = self._is_offer[action]
        reads = sent & alive & ~unsubscribed
        spend_mean = F32(p.spend_p) * traits.spend_scale
        money = self._value[action]
        perceived = np.where(self._is_money[action], money / (money + spend_mean), self._perceived_fraction[action])
        offer = np.where(is_offer, action, state.offer).astype(np.int8)
        offer_days_left = np.where(is_offer, self._validity[action], state.offer_days_left)
        offer_discount = np.where(is_offer, perceived, state.offer_discount)
        habit_pull = np.where(is_offer & reads, F32(p.habituation_rate), F32(0))
        habituation = state.habituation + habit_pull * (perceived - state.habituation)
        gain = reads * np.where(self._is_content[action], F32(p.engagement_content), F32(p.engagement_message))
        engagement = state.engagement + gain * (F32(1) - state.engagement)
        contact_age = np.where(sent[:, None], np.concatenate([np.zeros((n, 1), np.int16), state.contact_age[:, :-1]], axis=1), state.contact_age)

        # 2. Shopping: one uniform drives the whole funnel, so each stage implies the ones before.
        live_discount = np.where(offer_days_left > 0, offer_discount, F32(0))
        price_effect = np.minimum(traits.price_sensitivity * (live_discount - habituation), self._max_log_lift)
        rate = traits.purchase_rate * np.exp(price_effect + F32(p.engagement_buy_weight) * engagement)
        p_buy = -np.expm1(-rate)
        p_visit = np.minimum(p_buy * F32(p.funnel_visit) + F32(p.browse_rate) * engagement, F32(1))
        p_view = np.minimum(p_buy * F32(p.funnel_view), p_visit)
        p_cart = np.minimum(p_buy * (F32(1) + self._cart_excess * traits.price_sensitivity), p_view)
        expected_list_value, expected_discount = self._expected_purchase(traits, alive, p_buy, offer, offer_days_left, spend_mean)
        u0 = np.where(alive, uniforms(keys, today, Draw.FUNNEL), F32(2))  # the dead do nothing
        stage = ((u0 < p_visit).astype(np.uint8) + (u0 < p_view) + (u0 < p_cart) + (u0 < p_buy)).astype(np.uint8)
        purchased = stage == 4

        list_value = np.zeros(n, F32)
        discount = np.zeros(n, F32)
        redeemed = np.zeros(n, np.int8)
        category = np.full(n, -1, np.int8)
        rating = np.zeros(n, np.int8)
        satisfaction = state.satisfaction.copy()
        buyers = np.flatnonzero(purchased)
        if buyers.size:
            bkeys, bday = keys[buyers], today[buyers]
            lv = (gammaincinv(p.spend_p, open_uniforms(bkeys, bday, Draw.SPEND)) * traits.spend_scale[buyers]).astype(F32)
            has_offer = offer_days_left[buyers] > 0
            off = np.where(has_offer, offer[buyers], 0)
            disc = np.minimum(self._cost_fraction[off] * lv + self._cost_flat[off], lv)
            list_value[buyers] = lv
            discount[buyers] = disc
            redeemed[buyers] = off
            experience_u = uniforms(bkeys, bday, Draw.EXPERIENCE)
            experience = np.clip(traits.quality[buyers] + F32(p.experience_noise) * F32(3.4641) * (experience_u - F32(0.5)), 0, 1)
            s_new = satisfaction[buyers] + F32(p.satisfaction_rate) * (experience - satisfaction[buyers])
            satisfaction[buyers] = s_new
            wrote = uniforms(bkeys, bday, Draw.REVIEW) < F32(p.review_rate)
            rating[buyers] = np.where(wrote, 1 + np.minimum(np.floor(s_new * 5), 4), 0).astype(np.int8)
            category_u = uniforms(bkeys, bday, Draw.CATEGORY)
            fav = category_u < F32(p.favourite_category_share)
            other = (category_u * 1e4).astype(np.int64) % len(CATEGORIES)
            category[buyers] = np.where(fav, traits.favourite_category[buyers], other).astype(np.int8)
        used = purchased & (offer_days_left > 0)
        offer = np.where(used, 0, offer).astype(np.int8)
        offer_days_left = np.where(used, 0, np.maximum(offer_days_left - 1, 0)).astype(np.int16)
        offer = np.where(offer_days_left > 0, offer, 0).astype(np.int8)
        engagement = engagement + purchased * F32(p.engagement_purchase) * (F32(1) - engagement)
        recency = np.where(purchased, 1, np.minimum(state.recency + 1, MAX_DAYS)).astype(np.int16)

        # 3. Dropout at the end of the day: inactivity and dissatisfaction raise it, engagement lowers it.
        satisfaction = np.maximum(
            satisfaction - F32(p.fatigue_satisfaction_loss) * np.maximum(fatigue - F32(p.fatigue_threshold), 0), 0
        )
        inactivity = np.minimum(recency, F32(p.inactivity_days)) / F32(p.inactivity_days)
        hazard = traits.dropout_rate * np.exp(
            F32(p.inactivity_weight) * inactivity
            + F32(p.satisfaction_weight) * (F32(p.satisfaction_ref) - satisfaction)
            - F32(p.engagement_hazard_weight) * engagement
        )
        churned = alive & (uniforms(keys, today, Draw.DROPOUT) < -np.expm1(-hazard))

        new_state = CustomerState(
            alive=alive & ~churned,
            subscribed=subscribed,
            day=state.day + np.int16(1),
            age=np.minimum(state.age + 1, MAX_DAYS).astype(np.int16),
            recency=recency,
            n_purchases=state.n_purchases + purchased.astype(np.int16),
            total_spend=state.total_spend + (list_value - discount),
            discount_received=state.discount_received + discount,
            n_messages=state.n_messages + sent.astype(np.int16),
            contact_age=np.minimum(contact_age + np.int16(1), NO_CONTACT).astype(np.int16),
            days_since_visit=np.where(stage > 0, 1, np.minimum(state.days_since_visit + 1, MAX_DAYS)).astype(np.int16),
            last_rating=np.where(rating > 0, rating, state.last_rating).astype(np.int8),
            offer=offer,
            offer_days_left=offer_days_left,
            offer_discount=np.where(offer > 0, offer_discount, F32(0)).astype(F32),
            satisfaction=satisfaction.astype(F32),
            engagement=(engagement * self._decay_e).astype(F32),
            habituation=(habituation * self._decay_h).astype(F32),
            fatigue=(fatigue * self._decay_f).astype(F32),
        )
        outcome = DayOutcome(
            action=action,
            sent=sent,
            unsubscribed=unsubscribed,
            stage=stage,
            purchased=purchased,
            list_value=list_value,
            discount=discount,
            send_cost=send_cost,
            redeemed=redeemed,
            category=category,
            rating=rating,
            churned=churned,
            expected_list_value=expected_list_value,
            expected_discount=expected_discount,
        )
        return new_state, outcome

    def _expected_purchase(self, traits, alive, p_buy, offer, offer_days_left, spend_mean) -> tuple[np.ndarray, np.ndarray]:
        """``(E[list_value], E[discount])`` of the day before its draws: ``P(buy)`` times the Gamma spend's mean and
        the live offer's expected cost, ``cost_fraction * mean + E[min(flat, X)]`` for ``X ~ Gamma(p, scale)``.

        Summing these instead of the drawn money gives the same expected return with far less noise (the day's
        purchase and spend draws are averaged out), which is what a policy-gradient learner needs.
        """
        off = np.where(offer_days_left > 0, offer, 0)
        flat = self._cost_flat[off]
        expected_cost = self._cost_fraction[off] * spend_mean
        has_flat = np.flatnonzero(flat > 0)
        if has_flat.size:
            k, scale, c = F32(self.params.spend_p), traits.spend_scale[has_flat], flat[has_flat]
            x = (c / scale).astype(np.float64)
            expected_cost[has_flat] += (k * scale * gammainc(k + 1, x) + c * gammaincc(k, x)).astype(F32)
        buy = np.where(alive, p_buy, F32(0))
        return (buy * spend_mean).astype(F32), (buy * expected_cost).astype(F32)

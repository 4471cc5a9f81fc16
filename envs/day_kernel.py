"""The vectorised one-day step of the customer population.

One call of :meth:`DayKernel.step` advances every customer by one day; nothing here loops over customers.
The step is a pure function: it returns a new :class:`CustomerState` and never mutates its inputs.

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

import numpy as np
from scipy.special import gammainc, gammaincc, gammaincinv

from offerpilot.catalog import OFFER_KINDS, OfferCatalog
from offerpilot.envs.common_random import Draw, open_uniforms, uniforms
from offerpilot.envs.population import (
    CATEGORIES,
    F32,
    MAX_DAYS,
    NO_CONTACT,
    CustomerState,
    CustomerTraits,
    DayOutcome,
    PopulationParams,
)

_KIND = {k: np.int8(i) for i, k in enumerate(OFFER_KINDS)}


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

        One function on purpose: the day is a single causal sequence (messages, shopping and spend, dropout, state
        update, numbered in the code), each stage reading the arrays the ones before it made;
        split into helpers it would pass a dozen arrays between them and hide the order that is the model.

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

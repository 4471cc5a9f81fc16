"""The day kernel's behaviour: purchases, offers and habituation, contact fatigue, dropout, reviews and spend.

Every behavioural test drives the real kernel with fixed seeds and asserts a number or a direction;
large-N comparisons use common random numbers (the same generator seed per arm) where the kernel's
draws stay aligned, and state set by hand (``dataclasses.replace``) where one mechanism is isolated.
Statistical tolerances are stated as multiples of the standard error of the Monte Carlo estimate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offerpilot.envs.day_kernel import DayKernel
from offerpilot.envs.population import CATEGORIES, FUNNEL, mean_spend

from population_helpers import CATALOG, KERNEL, PARAMS, SETTINGS, A, catalog_with, one_day, population, replace_state, run_days, se, uniform_traits

# --- purchase behaviour -----------------------------------------------------------------------


@given(
    seed=st.integers(0, 2**32 - 1),
    b_mean=st.floats(0.5, 30.0),
    cv=st.floats(0.05, 2.0),
    d_low=st.floats(0.0, 0.6),
    extra=st.floats(0.001, 0.6),
    habituation=st.floats(0.0, 0.5),
)
@SETTINGS
def test_bigger_live_discount_never_lowers_the_chance_to_buy(seed, b_mean, cv, d_low, extra, habituation):
    """Same customers, same random numbers: a bigger live discount buys (and reaches each funnel stage) whenever a smaller one does."""
    params = PARAMS.replace(price_sensitivity_mean=b_mean, price_sensitivity_cv=cv)
    kernel = DayKernel(params, CATALOG)
    traits, state = population(3_000, seed, params, offer=A["pct10"], offer_days_left=5, habituation=habituation)
    outs = []
    for d in (d_low, d_low + extra):
        _, out = one_day(traits, replace_state(state, offer_discount=d), 0, seed, kernel)
        outs.append(out)
    low, high = outs
    assert not (low.purchased & ~high.purchased).any()
    assert np.all(low.stage <= high.stage)


def test_bigger_percent_offer_buys_more_with_common_random_numbers():
    """Sending 0/5/10/20/40 % off to the same customers: purchase sets are nested and the buy rate rises strictly."""
    offers = [{"id": f"p{v}", "kind": "percent_off", "value": v / 100, "channel": "email"} for v in (5, 10, 20, 40)]
    catalog = catalog_with(offers)
    kernel = DayKernel(PARAMS, catalog)
    traits, state = population(50_000, seed=3, catalog=catalog)
    bought = [one_day(traits, state, a, 4, kernel)[1].purchased for a in range(5)]
    rates = [b.mean() for b in bought]
    for small, big in zip(bought, bought[1:]):
        assert not (small & ~big).any()
    assert np.all(np.diff(rates) > 0), rates
    assert rates[4] > 2 * rates[0]


def test_purchase_frequency_matches_the_documented_rate():
    """P(buy) = 1 - exp(-lam * exp(b * (d - h) + w_eb * e)) on hand-set state, within 4.5 standard errors."""
    n = 200_000
    lam, b, d, h, e = 0.02, 6.0, 0.15, 0.05, 0.5
    traits = uniform_traits(n, purchase_rate=lam, price_sensitivity=b)
    _, state = population(n, seed=0)
    state = replace_state(state, offer=A["pct10"], offer_days_left=3, offer_discount=d, habituation=h, engagement=e)
    _, out = one_day(traits, state, 0, seed=8)
    expected = -np.expm1(-lam * np.exp(b * (d - h) + PARAMS.engagement_buy_weight * e))
    assert abs(out.purchased.mean() - expected) < 4.5 * se(expected, n)
    assert (out.stage >= 1).mean() > out.purchased.mean()  # the funnel: more visits than purchases
    assert out.stage.max() == len(FUNNEL) - 1


def test_offers_cannibalise_purchases_that_would_have_happened_anyway():
    """With common random numbers every no-offer buyer also buys with 10 % off and is paid a discount: ~half of the offer's discounts are pure cost."""
    traits, state = population(100_000, seed=9, recency=40, n_purchases=3)
    _, base = one_day(traits, state, A["none"], seed=10)
    _, offer = one_day(traits, state, A["pct10"], seed=10)
    anyway = base.purchased
    assert anyway.sum() > 300
    assert offer.purchased[anyway].all()
    assert np.all(offer.discount[anyway] > 0)
    np.testing.assert_allclose(offer.discount[anyway], 0.10 * offer.list_value[anyway], rtol=1e-6)
    share = offer.discount[anyway].sum() / offer.discount.sum()
    assert 0.3 < share < 0.8, share  # the rest is discount on purchases the offer caused


def test_habituation_lowers_full_price_buying_after_a_coupon_spell():
    """After 60 days of maximal 10 %-off coupons, customers buy less at full price than identical never-couponed ones, and the gap is habituation's."""
    n = 30_000

    def full_price_rate(offer_id: str, habituation_rate: float) -> float:
        params = PARAMS.replace(habituation_rate=habituation_rate)
        kernel = DayKernel(params, CATALOG)
        traits, state = population(n, seed=41, params=params)
        bought = alive_days = 0
        choose = lambda d, s, legal: np.full(n, A[offer_id] if d < 60 else 0)  # noqa: E731
        for day, (before, out) in enumerate(run_days(kernel, traits, state, choose, 130, seed=42)):
            if day >= 75:  # the last coupon (day 59, valid 14 days) has expired
                assert not (out.redeemed > 0).any()
                bought += out.purchased.sum()
                alive_days += before.alive.sum()
        return bought / alive_days

    never = full_price_rate("none", 0.1)
    couponed = full_price_rate("pct10", 0.1)
    couponed_no_habit = full_price_rate("pct10", 0.0)
    assert couponed < 0.92 * never, (couponed, never)
    assert couponed < 0.92 * couponed_no_habit, (couponed, couponed_no_habit)


def test_habituation_state_follows_the_offers_read():
    """Reading a 10 % offer pulls the reference discount 10 % of the way to 0.10; it then halves every 60 days."""
    traits, state = population(4, seed=2, engagement=0.0, habituation=0.0)
    new, out = one_day(traits, state, A["pct10"], seed=3)
    read = out.sent & ~out.unsubscribed
    assert read.sum() >= 3
    decay = 0.5 ** (1 / 60)
    np.testing.assert_allclose(new.habituation[read], 0.1 * 0.10 * decay, rtol=1e-5)
    for _ in range(60):
        new, _ = one_day(traits, new, 0, seed=4)
    np.testing.assert_allclose(new.habituation[read], 0.01 * decay * 0.5, rtol=1e-3)


# --- contact fatigue --------------------------------------------------------------------------


def test_more_messages_mean_more_unsubscribes_and_lower_satisfaction():
    """Content messages every 14 days, every 7 days, or as often as the caps allow vs never: unsubscribes rise and satisfaction falls with frequency."""
    n = 20_000
    traits, state = population(n, seed=51)
    result = {}
    for every in (0, 14, 7, 1):
        choose = lambda d, s, legal, k=every: np.full(n, A["content"] if k and d % k == 0 else 0)  # noqa: E731
        sent = 0
        for last, out in run_days(KERNEL, traits, state, choose, 90, seed=52):
            sent += out.sent.sum()
        result[every] = (sent / n, 1 - last.subscribed.mean(), last.satisfaction.mean())  # state on day 89
    sends = [result[k][0] for k in (0, 14, 7, 1)]
    unsub = [result[k][1] for k in (0, 14, 7, 1)]
    sat = [result[k][2] for k in (0, 14, 7, 1)]
    assert np.all(np.diff(sends) > 0), sends
    assert unsub[0] == 0 and np.all(np.diff(unsub) > 0), unsub
    assert sat[1] <= sat[0] + 1e-3 and sat[2] < sat[1] - 0.02 and sat[3] < sat[2], sat


def test_unsubscribe_chance_grows_with_fatigue_as_documented():
    """P(unsubscribe | message) = u0 * exp(w_f * (f + 1)) on hand-set fatigue, within 4.5 standard errors."""
    n = 200_000
    traits = uniform_traits(n)
    rates = []
    for fatigue in (0.0, 3.0):
        _, state = population(n, seed=0, fatigue=fatigue)
        _, out = one_day(traits, state, A["content"], seed=6)
        expected = PARAMS.unsubscribe_base * np.exp(PARAMS.unsubscribe_fatigue_weight * (fatigue + 1))
        assert abs(out.unsubscribed.mean() - expected) < 4.5 * se(expected, n)
        rates.append(out.unsubscribed.mean())
    assert rates[1] > 4 * rates[0]


# --- dropout ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn_by_state():
    """One-day churn frequency of 200,000 identical non-buying customers (mu = 0.02) per hand-set state."""
    n = 200_000
    traits = uniform_traits(n, dropout_rate=0.02, purchase_rate=0.0)
    cases = {
        "base": dict(recency=0, engagement=0.0, satisfaction=0.75),
        "inactive": dict(recency=400, engagement=0.0, satisfaction=0.75),
        "half_inactive": dict(recency=182, engagement=0.0, satisfaction=0.75),
        "engaged": dict(recency=0, engagement=1.0, satisfaction=0.75),
        "dissatisfied": dict(recency=0, engagement=0.0, satisfaction=0.25),
        "delighted": dict(recency=0, engagement=0.0, satisfaction=1.0),
    }
    rates = {}
    for i, (name, values) in enumerate(cases.items()):
        _, state = population(n, seed=0, **values)
        _, out = one_day(traits, state, 0, seed=100 + i)
        assert not out.purchased.any()
        rates[name] = (out.churned.mean(), values)
    return n, rates


def test_dropout_rises_with_inactivity_falls_with_engagement_rises_with_dissatisfaction(churn_by_state):
    """Churn rates order as documented: inactive > half-inactive > base > engaged; dissatisfied > base > delighted."""
    n, rates = churn_by_state
    r = {k: v[0] for k, v in rates.items()}
    gap = 5 * se(r["base"], n)
    assert r["inactive"] > r["half_inactive"] + gap and r["half_inactive"] > r["base"] + gap
    assert r["engaged"] < r["base"] - gap
    assert r["dissatisfied"] > r["base"] + gap and r["delighted"] < r["base"] - gap


def test_dropout_frequency_matches_the_documented_hazard(churn_by_state):
    """P(churn) = 1 - exp(-mu * exp(w_in * min(rec, R) / R + w_sat * (s_ref - s) - w_eh * e)), rec counted after the day."""
    n, rates = churn_by_state
    p = PARAMS
    for name, (observed, v) in rates.items():
        recency = min(v["recency"] + 1, p.inactivity_days) / p.inactivity_days
        hazard = 0.02 * np.exp(
            p.inactivity_weight * recency + p.satisfaction_weight * (p.satisfaction_ref - v["satisfaction"]) - p.engagement_hazard_weight * v["engagement"]
        )
        expected = -np.expm1(-hazard)
        assert abs(observed - expected) < 4.5 * se(expected, n), (name, observed, expected)


def test_the_dead_do_nothing():
    """A customer who has dropped out never visits, buys, unsubscribes or churns again (messages still cost)."""
    traits, state = population(5_000, seed=7, alive=False, recency=40, n_purchases=3)
    traits = dataclasses.replace(traits, purchase_rate=np.full(5_000, 5.0, np.float32))
    new, out = one_day(traits, state, A["pct10"], seed=8)
    assert not (out.purchased.any() or out.churned.any() or out.unsubscribed.any() or (out.stage > 0).any())
    assert out.sent.all() and np.allclose(out.send_cost, 0.02)
    assert not new.alive.any()


# --- reviews and spend ------------------------------------------------------------------------


def test_star_ratings_rise_with_satisfaction():
    """Same buyers and random numbers at satisfaction 0.05 ... 1.0: each reviewer's stars never fall and the mean rises strictly."""
    n = 20_000
    params = PARAMS.replace(review_rate=1.0)
    kernel = DayKernel(params, CATALOG)
    traits = uniform_traits(n, purchase_rate=1e3, quality=0.5)
    stars = []
    for s in (0.05, 0.25, 0.45, 0.65, 0.85, 1.0):
        _, state = population(n, seed=0, satisfaction=s)
        _, out = one_day(traits, state, 0, seed=9, kernel=kernel)
        assert out.purchased.all() and np.all((out.rating >= 1) & (out.rating <= 5))
        stars.append(out.rating.astype(int))
    for low, high in zip(stars, stars[1:]):
        assert np.all(low <= high)
    means = [s.mean() for s in stars]
    assert np.all(np.diff(means) > 0.2), means
    assert means[0] < 2.0 and means[-1] > 4.0


def test_reviews_follow_purchases_at_the_review_rate():
    """Only buyers review, at ~15 % of purchases; categories are valid and ~70 % in the favourite one."""
    n = 100_000
    traits, state = population(n, seed=12)
    traits = dataclasses.replace(traits, purchase_rate=np.full(n, 1e3, np.float32))
    _, out = one_day(traits, state, 0, seed=13)
    assert np.all(out.rating[~out.purchased] == 0)
    wrote = (out.rating > 0).mean()
    assert abs(wrote - PARAMS.review_rate) < 4.5 * se(PARAMS.review_rate, n)
    assert out.category.min() >= 0 and out.category.max() < len(CATEGORIES)
    fav = (out.category == traits.favourite_category).mean()
    assert 0.70 <= fav < 0.70 + 0.3 / len(CATEGORIES) + 0.01  # 70 % by choice, plus chance picks of it


def test_spend_follows_the_gamma_gamma_mean():
    """A purchase's list value ~ Gamma(p, spend_scale): value / scale has mean and variance p (within 1 % and 4 %)."""
    n = 100_000
    traits, state = population(n, seed=14)
    traits = dataclasses.replace(traits, purchase_rate=np.full(n, 1e3, np.float32))
    _, out = one_day(traits, state, 0, seed=15)
    assert out.purchased.all()
    ratio = out.list_value.astype(np.float64) / traits.spend_scale
    assert abs(ratio.mean() / PARAMS.spend_p - 1) < 0.01
    assert abs(ratio.var() / PARAMS.spend_p - 1) < 0.04
    expected = mean_spend(traits, PARAMS).astype(np.float64)
    assert abs(out.list_value.mean() / expected.mean() - 1) < 0.03
    # Population mean spend of the Gamma-Gamma: p * gamma / (q - 1) = 35.8 (within 3 %).
    assert abs(expected.mean() / (PARAMS.spend_p * PARAMS.spend_gamma / (PARAMS.spend_q - 1)) - 1) < 0.03

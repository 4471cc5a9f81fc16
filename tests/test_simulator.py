"""The population simulator: the one-day kernel, masks, objective and decision steps.

Every behavioural test drives the real kernel with fixed seeds and asserts a number or a direction;
large-N comparisons use common random numbers (the same generator seed per arm) where the kernel's
draws stay aligned, and state set by hand (``dataclasses.replace``) where one mechanism is isolated.
Statistical tolerances are stated as multiples of the standard error of the Monte Carlo estimate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.envs.policy import act
from offerpilot.catalog import default_catalog, parse_catalog
from offerpilot.envs.common_random import Draw, new_keys, open_uniforms, uniforms
from offerpilot.envs.masks import action_mask
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.population import (
    CATEGORIES,
    FUNNEL,
    NO_CONTACT,
    CustomerState,
    CustomerTraits,
    DayKernel,
    PopulationParams,
    acquired_state,
    mean_spend,
    nbytes_per_customer,
    sample_traits,
)
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig

CATALOG = default_catalog()
PARAMS = PopulationParams()
KERNEL = DayKernel(PARAMS, CATALOG)
A = {offer_id: i for i, offer_id in enumerate(CATALOG.ids)}
SETTINGS = settings(max_examples=12, derandomize=True, deadline=None, database=None)


# --- helpers ----------------------------------------------------------------------------------


def population(n: int, seed: int, params: PopulationParams = PARAMS, catalog=CATALOG, **state_changes):
    """``n`` freshly acquired customers at day 0 (no simulated history), state fields overridden."""
    traits = sample_traits(params, n, np.random.default_rng(seed))
    state = acquired_state(traits, catalog, np.zeros(n, np.int16))
    return traits, replace_state(state, **state_changes)


def replace_state(state: CustomerState, **changes) -> CustomerState:
    """Broadcast scalar overrides to full arrays of the field's dtype."""
    full = {}
    for name, value in changes.items():
        old = getattr(state, name)
        full[name] = np.broadcast_to(np.asarray(value, old.dtype), old.shape).copy()
    return dataclasses.replace(state, **full)


def uniform_traits(n: int, **values) -> CustomerTraits:
    """``n`` identical customers (a homogeneous population isolates one mechanism)."""
    base = dict(purchase_rate=0.0, dropout_rate=0.0, spend_scale=5.0, price_sensitivity=6.0, quality=0.75, favourite_category=0)
    base.update(values)
    return CustomerTraits(
        purchase_rate=np.full(n, base["purchase_rate"], np.float32),
        dropout_rate=np.full(n, base["dropout_rate"], np.float32),
        spend_scale=np.full(n, base["spend_scale"], np.float32),
        price_sensitivity=np.full(n, base["price_sensitivity"], np.float32),
        quality=np.full(n, base["quality"], np.float32),
        favourite_category=np.full(n, base["favourite_category"], np.int8),
        noise_key=new_keys(n, np.random.default_rng(0)),
    )


def rekeyed(traits: CustomerTraits, seed: int) -> CustomerTraits:
    """The same customers with the luck of ``seed`` (every draw of the kernel is keyed by ``noise_key``)."""
    return dataclasses.replace(traits, noise_key=new_keys(traits.noise_key.shape[0], np.random.default_rng(seed)))


def one_day(traits, state, action, seed: int, kernel: DayKernel = KERNEL):
    """One kernel step with the state's own mask; ``action`` is an int or an (n,) array."""
    action = np.broadcast_to(np.asarray(action, np.int64), (state.n_customers,)).copy()
    return kernel.step(rekeyed(traits, seed), state, action, action_mask(state, kernel.catalog))


def run_days(kernel: DayKernel, traits, state, choose, days: int, seed: int):
    """Yield ``(state_before, outcome)`` for ``days`` kernel steps; ``choose(day, state, legal) -> (n,)``."""
    traits = rekeyed(traits, seed)
    for day in range(days):
        legal = action_mask(state, kernel.catalog)
        new, out = kernel.step(traits, state, choose(day, state, legal), legal)
        yield state, out
        state = new


def se(p: float, n: int) -> float:
    """Standard error of a Bernoulli frequency."""
    return float(np.sqrt(max(p * (1 - p), 1e-12) / n))


def catalog_with(offers: list[dict], caps: dict | None = None):
    """A catalog with 'none' first, channels email (0.02) and sms (0.06), and the given offers."""
    data = {
        "channels": {"email": {"send_cost": 0.02}, "sms": {"send_cost": 0.06}},
        "offers": [{"id": "none", "kind": "none"}, *offers],
    }
    if caps is not None:
        data["contact_caps"] = caps
    return parse_catalog(data)


# --- accounting identities --------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_policy_days():
    """120 days of 3,000 customers with a history, a uniformly random legal action every day."""
    sim = PopulationSimulator(SimulatorConfig(decision_interval_days=1))
    rng = np.random.default_rng(11)
    traits, state = sim.new_customers(3_000, rng)
    policy = UniformRandomPolicy()

    def choose(day, s, legal):
        return act(policy, sim.observe(traits, s), legal, rng=rng)[0]

    return list(run_days(sim.kernel, traits, state, choose, 120, seed=12))


def test_money_identities_hold_for_every_customer_day(random_policy_days):
    """margin = 0.35 * list_value - discount - send_cost; revenue = list_value - discount >= 0; no redemption, no discount; each kind's discount formula."""
    value, breakage = CATALOG.value, CATALOG.breakage
    objective = ObjectiveConfig()
    redeemed_kinds = set()
    for _, out in random_policy_days:
        margin = 0.35 * out.list_value.astype(np.float64) - out.discount - out.send_cost
        np.testing.assert_allclose(objective.margin(out.list_value, out.discount, out.send_cost), margin, rtol=1e-6, atol=1e-6)
        assert np.all(out.discount >= 0) and np.all(out.discount <= out.list_value)
        assert np.all(out.revenue >= 0)
        np.testing.assert_array_equal(out.revenue, out.list_value - out.discount)
        assert np.all(out.discount[out.redeemed == 0] == 0)
        assert np.all(out.list_value[~out.purchased] == 0) and np.all(out.redeemed[~out.purchased] == 0)
        assert np.all(out.list_value[out.purchased] > 0)
        assert not np.isin(out.redeemed, [A["none"], A["content"]])[out.purchased & (out.discount > 0)].any()
        for offer_id in ("pct5", "pct10", "pct20"):
            hit = out.redeemed == A[offer_id]
            np.testing.assert_allclose(out.discount[hit], value[A[offer_id]] * out.list_value[hit], rtol=1e-6)
            redeemed_kinds.update([offer_id] if hit.any() else [])
        hit = out.redeemed == A["free_shipping"]
        np.testing.assert_allclose(out.discount[hit], np.minimum(6.0, out.list_value[hit]), rtol=1e-6)
        hit = out.redeemed == A["points"]
        np.testing.assert_allclose(out.discount[hit], 0.05 * (1 - breakage[A["points"]]) * out.list_value[hit], rtol=1e-6)
        redeemed_kinds.update(k for k in ("free_shipping", "points") if (out.redeemed == A[k]).any())
    assert redeemed_kinds == {"pct5", "pct10", "pct20", "free_shipping", "points"}


def test_send_cost_is_the_channel_cost_of_sent_messages_only(random_policy_days):
    """A sent message costs its channel's price (email 0.02, sms 0.06); 'none' and suppressed actions cost 0."""
    n_sent = 0
    for before, out in random_policy_days:
        np.testing.assert_array_equal(out.sent, CATALOG.is_message[out.action])
        np.testing.assert_allclose(out.send_cost[out.sent], CATALOG.send_cost[out.action[out.sent]])
        assert np.all(out.send_cost[~out.sent] == 0)
        sms = out.action == A["pct20"]
        np.testing.assert_allclose(out.send_cost[sms], 0.06, rtol=1e-6)
        np.testing.assert_allclose(out.send_cost[out.sent & ~sms], 0.02, rtol=1e-6)
        assert not (out.sent & ~before.subscribed).any(), "a message went to an unsubscribed customer"
        assert np.all(action_mask(before, CATALOG)[np.arange(out.action.size), out.action])
        n_sent += out.sent.sum()
    assert n_sent > 10_000


def test_illegal_actions_become_none_and_send_nothing():
    """An action outside the mask (unsubscribed, ineligible) is applied as 'none': no message, no cost, no offer."""
    traits, state = population(6, seed=1, recency=5, n_purchases=1)
    state = replace_state(state, subscribed=np.array([0, 0, 0, 1, 1, 1], bool))
    action = np.array([A["pct10"], A["content"], A["free_shipping"], A["pct20"], A["points"], A["pct5"]])
    legal = action_mask(state, CATALOG)
    new, out = KERNEL.step(traits, state, action, legal)
    np.testing.assert_array_equal(out.action, [0, 0, 0, 0, 0, A["pct5"]])
    np.testing.assert_array_equal(out.sent, [False] * 5 + [True])
    np.testing.assert_allclose(out.send_cost, [0, 0, 0, 0, 0, 0.02])
    np.testing.assert_array_equal(new.n_messages, [0, 0, 0, 0, 0, 1])
    assert np.all(new.fatigue[:5] == 0) and np.all(new.contact_age[:5] == NO_CONTACT)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_decision_step_reward_is_the_weighted_day_margins(lam):
    """One 7-day decision step: margin_short and margin_clv re-derived from the day outcomes; reward = (1-lam)*short + lam*clv."""
    config = SimulatorConfig(objective=ObjectiveConfig(lam=lam))
    sim = PopulationSimulator(config)
    rng = np.random.default_rng(5)
    traits, state = sim.new_customers(2_000, rng)
    # Start some customers late in the period so both the W = 30 and H = 365 boundaries fall inside a step.
    state = dataclasses.replace(state, day=rng.choice(np.array([0, 26, 27, 100, 360], np.int16), 2_000))
    days, margins = [], []

    def record(customers, after, out):
        days.append(after.day.astype(np.int64) - 1)
        margins.append(0.35 * out.list_value.astype(np.float64) - out.discount - out.send_cost)

    legal = sim.action_mask(state)
    action = np.where(legal[:, A["pct10"]], A["pct10"], 0)
    _, step = sim.advance(traits, state, action, on_day=record)
    t, m = np.array(days), np.array(margins)
    gamma = 1.10 ** (-1 / 365)
    short = (m * (t < 30)).sum(axis=0)
    clv = (m * np.where(t < 365, gamma ** t.astype(np.float64), 0.0)).sum(axis=0)
    np.testing.assert_allclose(step.margin_short, short, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(step.margin_clv, clv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(step.reward, (1 - lam) * short + lam * clv, rtol=1e-5, atol=1e-5)
    if lam == 1.0:
        np.testing.assert_array_equal(step.reward, step.margin_clv)
    if lam == 0.0:
        np.testing.assert_array_equal(step.reward, step.margin_short)
    late = state.day >= 30
    assert np.all(step.margin_short[late] == 0) and np.any(step.margin_clv[late] != 0)
    assert step.revenue.dtype == np.float32 and np.all(step.revenue >= 0)


def test_episode_return_equals_objective_from_day_outcomes():
    """Summed over a full decision period, rewards equal (1-lam)*R_short + lam*CLV computed from the day outcomes (days >= H count 0)."""
    lam = 0.3
    sim = PopulationSimulator(SimulatorConfig(objective=ObjectiveConfig(lam=lam)))
    rng = np.random.default_rng(21)
    n = 600
    traits, state = sim.new_customers(n, rng)
    policy = UniformRandomPolicy()
    day_margin = np.zeros((371, n))

    def record(customers, after, out):
        t = int(after.day[0]) - 1  # every customer starts on day 0, so they share the day
        day_margin[t, customers] += 0.35 * out.list_value.astype(np.float64) - out.discount - out.send_cost

    returns = np.zeros(n)
    for _ in range(sim.config.n_decisions):
        action, _ = act(policy, sim.observe(traits, state), sim.action_mask(state), rng=rng)
        state, step = sim.advance(traits, state, action, on_day=record)
        returns += step.reward
    assert sim.config.n_decisions == 53 and int(state.day[0]) == 371
    t = np.arange(371)[:, None]
    r_short = (day_margin * (t < 30)).sum(axis=0)
    clv = (day_margin * np.where(t < 365, 1.10 ** (-t / 365), 0.0)).sum(axis=0)
    np.testing.assert_allclose(returns, (1 - lam) * r_short + lam * clv, rtol=1e-4, atol=2e-3)
    assert np.abs(day_margin[365:]).sum() > 0, "days past the horizon had no margin, so the cut-off is untested"
    assert (r_short != clv).mean() > 0.9


# --- masks ------------------------------------------------------------------------------------


def test_mask_boundaries_on_hand_set_state():
    """Caps and eligibility flip exactly at their thresholds (gap 3 days, 2 per 14 days, 30 days since purchase, 2 purchases)."""
    _, state = population(8, seed=0, recency=40, n_purchases=3)
    ages = np.array(
        [[NO_CONTACT] * 2, [2, NO_CONTACT], [3, NO_CONTACT], [3, 13], [3, 14], [5, 20], [NO_CONTACT] * 2, [NO_CONTACT] * 2],
        np.int16,
    )
    state = replace_state(state, contact_age=ages, recency=[40, 40, 40, 40, 40, 40, 29, 30], n_purchases=[3, 3, 3, 3, 3, 3, 1, 2])
    mask = action_mask(state, CATALOG)
    np.testing.assert_array_equal(mask[:, A["content"]], [1, 0, 1, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(mask[:, A["pct20"]], [1, 0, 1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(mask[:, A["points"]], [1, 0, 1, 0, 1, 1, 0, 1])
    assert mask[:, A["none"]].all()
    unsubscribed = action_mask(replace_state(state, subscribed=False), CATALOG)
    assert unsubscribed[:, 0].all() and not unsubscribed[:, 1:].any()


def test_max_days_since_purchase_and_min_purchases_on_a_custom_catalog():
    """A custom eligibility window (10-20 days since purchase, >= 3 purchases) is legal exactly inside its bounds."""
    catalog = catalog_with(
        [{"id": "winback", "kind": "percent_off", "value": 0.1, "channel": "email",
          "eligibility": {"min_days_since_purchase": 10, "max_days_since_purchase": 20, "min_purchases": 3}}]
    )
    _, state = population(6, seed=0, catalog=catalog)
    state = replace_state(state, recency=[9, 10, 20, 21, 15, 15], n_purchases=[3, 3, 3, 3, 2, 4])
    np.testing.assert_array_equal(action_mask(state, catalog)[:, 1], [0, 1, 1, 0, 0, 1])


@given(seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_none_is_always_legal(seed):
    """Whatever the state (random contact history, subscription, recency), 'none' is legal for everyone."""
    rng = np.random.default_rng(seed)
    n = 500
    _, state = population(n, seed)
    state = replace_state(
        state,
        subscribed=rng.random(n) < 0.5,
        recency=rng.integers(0, 400, n),
        n_purchases=rng.integers(0, 5, n),
        contact_age=np.sort(rng.integers(0, 30, (n, 2)), axis=1),
    )
    mask = action_mask(state, CATALOG)
    assert mask.shape == (n, CATALOG.n_actions) and mask.dtype == bool
    assert mask[:, 0].all()
    assert not mask[~state.subscribed, 1:].any()


def _send_history(offer_id: str, n: int = 1_500, days: int = 365, catalog=CATALOG):
    """``days`` of trying ``offer_id`` every single day (the kernel applies the mask); returns befores and outcomes."""
    kernel = KERNEL if catalog is CATALOG else DayKernel(PARAMS, catalog)
    traits, state = population(n, seed=31, catalog=catalog)
    index = catalog.index(offer_id)
    return list(run_days(kernel, traits, state, lambda d, s, legal: np.full(n, index), days, seed=32))


LOOSE_CAPS = catalog_with(
    [{"id": "content", "kind": "content_only", "channel": "email"}],
    caps={"max_messages": 3, "window_days": 7, "min_gap_days": 0},
)


@pytest.mark.parametrize(
    ("catalog", "days", "max_messages", "window", "min_gap"),
    [(CATALOG, 365, 2, 14, 3), (LOOSE_CAPS, 120, 3, 7, 1)],
    ids=["default_2_per_14_days_gap_3", "custom_3_per_7_days_no_gap"],
)
def test_contact_caps_hold_under_an_always_send_policy(catalog, days, max_messages, window, min_gap):
    """Trying to message every customer every day: never more than max_messages in any window, never two sends closer than the gap."""
    history = _send_history("content", days=days, catalog=catalog)
    sent = np.array([out.sent for _, out in history])  # (days, n)
    window_sums = np.cumsum(np.vstack([np.zeros((1, sent.shape[1])), sent]), axis=0)
    in_window = window_sums[window:] - window_sums[:-window]  # sends in days [t, t + window)
    assert in_window.max() == max_messages, "the cap must bind and never be exceeded"
    send_days = [np.flatnonzero(col) for col in sent.T]
    gaps = np.concatenate([np.diff(d) for d in send_days if d.size > 1])
    assert gaps.min() == min_gap
    subscribed_throughout = history[-1][0].subscribed
    assert sent[:, subscribed_throughout].sum(axis=0).min() >= max_messages * (days // window)  # the caps are the only limit
    for before, out in history:
        assert not (out.sent & ~before.subscribed).any()


@pytest.mark.parametrize(
    ("offer_id", "rule"),
    [("pct20", lambda s: s.recency >= 30), ("points", lambda s: s.n_purchases >= 2)],
    ids=["pct20_needs_30_days_since_purchase", "points_needs_2_purchases"],
)
def test_eligibility_is_enforced_under_an_always_send_policy(offer_id, rule):
    """An offer tried every day goes only to customers meeting its eligibility on that day; the rest get 'none'."""
    history = _send_history(offer_id, n=1_000, days=200)
    sent_ok = blocked = 0
    for before, out in history:
        eligible = rule(before)
        assert not (out.sent & ~eligible).any()
        assert np.all(out.action[~eligible] == 0)
        sent_ok += out.sent.sum()
        blocked += (~eligible & before.alive).sum()
    assert sent_ok > 1_000 and blocked > 1_000  # both sides of the rule were exercised


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


# --- numerical sanity -------------------------------------------------------------------------


def _assert_sane(state: CustomerState, out) -> None:
    for arrays in (state, out):
        for f in dataclasses.fields(arrays):
            value = getattr(arrays, f.name)
            if value.dtype.kind == "f":
                assert np.isfinite(value).all(), f.name
    for name in ("satisfaction", "engagement"):
        value = getattr(state, name)
        assert np.all((value >= 0) & (value <= 1)), name
    assert np.all(state.habituation >= 0) and np.all(state.fatigue >= 0)
    assert np.all(state.offer_discount >= 0)
    assert np.all(out.list_value >= 0) and np.all(out.discount >= 0) and np.all(out.discount <= out.list_value)
    assert np.all(out.stage <= 4) and np.all(out.purchased == (out.stage == 4))
    assert np.all((out.rating >= 0) & (out.rating <= 5))


@given(
    seed=st.integers(0, 2**32 - 1),
    r=st.floats(0.05, 5.0),
    alpha=st.floats(0.5, 200.0),
    s=st.floats(0.05, 5.0),
    beta=st.floats(0.5, 200.0),
    b_mean=st.floats(0.1, 40.0),
    cv=st.floats(0.05, 3.0),
    habituation_rate=st.floats(0.0, 1.0),
    w_f=st.floats(0.0, 5.0),
    w_sat=st.floats(0.0, 5.0),
)
@SETTINGS
def test_single_customer_stays_finite_and_in_bounds(seed, r, alpha, s, beta, b_mean, cv, habituation_rate, w_f, w_sat):
    """N = 1 over random population parameters: history plus 60 days of random legal actions, no NaN and every fraction in [0, 1]."""
    params = PARAMS.replace(
        r=r, alpha=alpha, s=s, beta=beta, price_sensitivity_mean=b_mean, price_sensitivity_cv=cv,
        habituation_rate=habituation_rate, unsubscribe_fatigue_weight=w_f, satisfaction_weight=w_sat,
    )
    sim = PopulationSimulator(SimulatorConfig(population=params, decision_interval_days=1, history_days=60))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        traits, state = sim.new_customers(1, rng)
        for _ in range(60):
            legal = sim.action_mask(state)
            action = rng.choice(np.flatnonzero(legal[0]), 1)
            state, out = sim.kernel.step(traits, state, action, legal)
            _assert_sane(state, out)
    assert state.n_customers == 1


def test_large_population_stays_finite_and_in_bounds():
    """N = 100,000 customers, 20 days of random legal actions: no NaN, fractions in [0, 1], frequencies plausible."""
    n = 100_000
    traits, state = population(n, seed=61)
    rng = np.random.default_rng(62)
    purchases = 0
    for before, out in run_days(
        KERNEL, traits, state, lambda d, s, legal: (rng.random(legal.shape) * legal).argmax(axis=1), 20, seed=63
    ):
        _assert_sane(before, out)
        purchases += out.purchased.sum()
    assert 0.002 < purchases / (20 * n) < 0.2


def test_step_is_pure():
    """``DayKernel.step`` never mutates its inputs (the kernel is a pure function of traits, state and action)."""
    traits, state = population(2_000, seed=71)
    for state, _ in run_days(KERNEL, traits, state, lambda d, s, legal: np.full(2_000, A["pct10"]), 30, seed=70):
        pass  # 30 days of offers: fatigue, habituation, live offers and contact history are all non-trivial
    assert (state.fatigue > 0).any() and (state.habituation > 0).any() and (state.offer > 0).any()
    copies = {f.name: getattr(state, f.name).copy() for f in dataclasses.fields(state)}
    tcopies = {f.name: getattr(traits, f.name).copy() for f in dataclasses.fields(traits)}
    action = np.random.default_rng(0).integers(0, CATALOG.n_actions, 2_000)
    legal = action_mask(state, CATALOG)
    legal_copy = legal.copy()
    new, _ = KERNEL.step(traits, state, action, legal)
    for name, value in copies.items():
        np.testing.assert_array_equal(getattr(state, name), value, err_msg=name)
        assert not np.shares_memory(getattr(new, name), getattr(state, name)), name
    for name, value in tcopies.items():
        np.testing.assert_array_equal(getattr(traits, name), value, err_msg=name)
    np.testing.assert_array_equal(legal, legal_copy)


def test_same_seed_same_population_different_seed_different():
    """``new_customers`` and ``advance`` are functions of the seed: equal seeds give equal arrays, different seeds differ."""
    sim = PopulationSimulator()

    def run(seed):
        rng = np.random.default_rng(seed)
        traits, state = sim.new_customers(500, rng)
        _, step = sim.advance(traits, state, np.full(500, A["content"]) * sim.action_mask(state)[:, A["content"]])
        return state, step

    (s1, o1), (s2, o2), (s3, o3) = run(3), run(3), run(4)
    for f in dataclasses.fields(s1):
        np.testing.assert_array_equal(getattr(s1, f.name), getattr(s2, f.name))
    np.testing.assert_array_equal(o1.reward, o2.reward)
    assert not np.array_equal(s1.recency, s3.recency) and not np.array_equal(o1.reward, o3.reward)


def test_recency_and_age_agree_for_customers_whose_only_purchase_was_the_acquisition():
    """For a customer who never bought again, days since the last purchase (recency) equals days since acquisition (age)."""
    sim = PopulationSimulator()
    _, state = sim.new_customers(2_000, np.random.default_rng(91))
    only_first = state.n_purchases == 1
    assert only_first.sum() > 500
    np.testing.assert_array_equal(state.recency[only_first], state.age[only_first])


# --- memory -----------------------------------------------------------------------------------


def test_state_and_traits_fit_in_200_bytes_per_customer_and_keep_their_dtypes():
    """Traits + state <= 200 bytes per customer, before and after decision steps (no silent dtype widening)."""
    sim = PopulationSimulator()
    rng = np.random.default_rng(81)
    traits, state = sim.new_customers(1_000, rng)
    dtypes = {f.name: getattr(state, f.name).dtype for f in dataclasses.fields(state)}
    size = nbytes_per_customer(traits) + nbytes_per_customer(state)
    assert size <= 200, size
    for _ in range(5):
        legal = sim.action_mask(state)
        action = (rng.random(legal.shape) * legal).argmax(axis=1)
        state, _ = sim.advance(traits, state, action)
    assert {f.name: getattr(state, f.name).dtype for f in dataclasses.fields(state)} == dtypes
    assert nbytes_per_customer(traits) + nbytes_per_customer(state) == size


def test_expected_reward_has_the_drawn_rewards_mean_with_less_noise():
    """Summing each day's expected money gives the same mean return as the drawn money, and less spread."""
    sim = PopulationSimulator()
    rng, actions_rng = np.random.default_rng(11), np.random.default_rng(12)
    traits, state = sim.new_customers(20_000, rng)
    drawn = np.zeros(20_000)
    expected = np.zeros(20_000)
    for _ in range(sim.config.n_decisions):
        mask = sim.action_mask(state)
        actions = (actions_rng.random(mask.shape) * mask).argmax(axis=1)  # uniform over legal: every offer kind
        state, out = sim.advance(traits, state, actions)
        drawn += out.reward
        expected += out.expected_reward
    difference = drawn - expected
    assert abs(difference.mean()) < 3 * difference.std() / np.sqrt(difference.size)
    assert abs(difference.mean()) < 0.01 * drawn.mean()
    assert expected.var() < 0.9 * drawn.var()  # measured: 0.85 (most of the spread is between customers)


# --- common random numbers --------------------------------------------------------------------


def test_common_random_numbers_are_uniform_and_independent_across_kinds_and_days():
    """Each (customer, day, kind) gets its own uniform: flat on [0, 1), uncorrelated across kinds and days."""
    from scipy.stats import kstest

    keys = new_keys(200_000, np.random.default_rng(5))
    u = {(day, kind): uniforms(keys, day, kind) for day in (-3, 0, 1) for kind in (Draw.FUNNEL, Draw.DROPOUT, Draw.SPEND)}
    for sample in u.values():
        assert sample.dtype == np.float32 and sample.min() >= 0 and sample.max() < 1
        assert kstest(sample, "uniform").pvalue > 1e-3
    pairs = [(u[0, Draw.FUNNEL], u[0, Draw.DROPOUT]), (u[0, Draw.FUNNEL], u[1, Draw.FUNNEL]), (u[-3, Draw.SPEND], u[0, Draw.SPEND])]
    for a, b in pairs:
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.01
    assert np.array_equal(uniforms(keys[::7], 1, Draw.FUNNEL), u[1, Draw.FUNNEL][::7])  # a customer's draw ignores the others
    days = np.array([0, 1, -3] * (keys.size // 3 + 1))[: keys.size]
    assert np.array_equal(uniforms(keys, days, Draw.FUNNEL)[days == 1], u[1, Draw.FUNNEL][days == 1])
    assert (0 < open_uniforms(keys, 0, Draw.SPEND)).all() and (open_uniforms(keys, 0, Draw.SPEND) < 1).all()


def test_two_policies_meet_the_same_luck_until_their_actions_differ():
    """The same customers under no offer and under a policy that starts sending on decision 20: every state and
    outcome is identical before then, whatever the other customers do; afterwards the draws are still shared."""
    sim = PopulationSimulator()
    traits, start = sim.new_customers(3_000, np.random.default_rng(11))
    again, start_again = sim.new_customers(3_000, np.random.default_rng(11))
    assert all(np.array_equal(getattr(start, f.name), getattr(start_again, f.name)) for f in dataclasses.fields(start))
    quiet = sending = start
    purchased_quiet, purchased_sending = [], []
    for k in range(30):
        legal = sim.action_mask(sending)
        offer = np.where(legal[:, A["pct20"]], A["pct20"], 0) if k >= 20 else np.zeros(3_000, np.int64)
        quiet, out_quiet = sim.advance(traits, quiet, np.zeros(3_000, np.int64))
        sending, out_sending = sim.advance(traits, sending, offer)
        if k < 20:
            assert all(np.array_equal(getattr(quiet, f.name), getattr(sending, f.name)) for f in dataclasses.fields(quiet))
            assert np.array_equal(out_quiet.reward, out_sending.reward) and np.array_equal(out_quiet.churn_day, out_sending.churn_day)
        purchased_quiet.append(out_quiet.purchases)
        purchased_sending.append(out_sending.purchases)
    # After decision 20 the offers lift purchases; shared luck makes the paired difference far less noisy than
    # two independent populations would be.
    diff = np.sum(purchased_sending[20:], axis=0).astype(float) - np.sum(purchased_quiet[20:], axis=0)
    assert diff.mean() > 0
    _, independent = sim.new_customers(3_000, np.random.default_rng(12))
    assert not np.array_equal(independent.n_purchases, start.n_purchases)


def test_an_offer_only_adds_purchases_on_the_same_day_with_the_same_draws():
    """One day, the same customers and state, 'none' against 20 % off: the offer raises the threshold the same
    funnel uniform is compared to, so everyone who buys without it buys with it (monotone coupling)."""
    traits, state = population(50_000, seed=21, recency=40, n_purchases=2)
    traits = dataclasses.replace(traits, purchase_rate=np.full(50_000, 0.05, np.float32))
    legal = action_mask(state, CATALOG)
    _, none = KERNEL.step(traits, state, np.zeros(50_000, np.int64), legal)
    _, offer = KERNEL.step(traits, state, np.full(50_000, A["pct20"]), legal)
    assert none.purchased.sum() > 1_000
    assert (offer.purchased | ~none.purchased).all()
    assert legal[:, A["pct20"]].all() and offer.purchased.sum() > 1.3 * none.purchased.sum()
    both = none.purchased & offer.purchased
    assert np.array_equal(none.list_value[both], offer.list_value[both])  # the same basket, at a discount
    assert (none.churned != offer.churned).mean() < 0.002  # the same dropout draw; only the hazard moved

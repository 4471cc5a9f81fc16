"""The population simulator's accounting and masks: money identities, rewards, the objective, caps and eligibility.

Every test drives the real kernel with fixed seeds and asserts a number; state set by hand
(``dataclasses.replace``) isolates one mechanism.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offerpilot.envs.day_kernel import DayKernel
from offerpilot.envs.masks import action_mask
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.policy import UniformRandomPolicy, act
from offerpilot.envs.population import NO_CONTACT
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig

from population_helpers import CATALOG, KERNEL, PARAMS, SETTINGS, A, catalog_with, population, replace_state, run_days

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

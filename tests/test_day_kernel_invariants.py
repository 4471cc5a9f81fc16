"""The day kernel's invariants: finite and in-bounds states, purity, determinism, memory per customer and
common random numbers (two policies meet the same luck until their actions differ)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from offerpilot.envs.common_random import Draw, new_keys, open_uniforms, uniforms
from offerpilot.envs.masks import action_mask
from offerpilot.envs.population import CustomerState, nbytes_per_customer
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig

from population_helpers import CATALOG, KERNEL, PARAMS, SETTINGS, A, population, run_days

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

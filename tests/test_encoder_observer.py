"""The encoder observer: buffers written in the loop equal the tokenizer's view of the same events in the logs,
its cached features equal a fresh pass of the encoder, and only customers with new events are re-embedded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from offerpilot.catalog import default_catalog
from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.encoder_observer import EncoderObserver
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import TOKEN_FIELDS, EventTokenizer
from offerpilot.envs.log_generation import DECISION_MINUTE, simulate_logs
from offerpilot.envs.policy import UniformRandomPolicy, sample_actions
from offerpilot.envs.population import CATEGORIES
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.envs.vec_env import RetentionVecEnv

N_CUSTOMERS, SEED, START = 300, 7, pd.Timestamp("2025-01-01")
CHECKED_STEPS = (0, 1, 2, 10, 30, 52)


@pytest.fixture(scope="module")
def observer() -> EncoderObserver:
    """A random model over a short buffer (16 events: full buffers drop events); categories in sorted order
    as ``train_encoder`` builds them, so the simulator's category codes must be mapped."""
    tokenizer = EventTokenizer(default_catalog().ids, sorted(CATEGORIES), max_len=16)
    torch.manual_seed(0)
    model = CustomerEncoderModel(CustomerEncoderConfig(**tokenizer.vocab_sizes(), hidden_size=32, num_heads=2, intermediate_size=64, max_len=16))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return EncoderObserver(model, tokenizer, default_catalog())


@pytest.fixture(scope="module")
def run(observer):
    """The loop of ``simulate_logs`` (same draws in the same order) with the observer's buffers attached;
    snapshots of the buffers and features at the decisions in ``CHECKED_STEPS``, and the logs themselves."""
    sim, policy = PopulationSimulator(), UniformRandomPolicy()
    rng = np.random.default_rng(SEED)
    history = observer.empty(N_CUSTOMERS)
    on_day, on_acquire = observer.recorders(history)
    traits, state = sim.new_customers(N_CUSTOMERS, rng, on_day=on_day, on_acquire=on_acquire)
    snapshots, embedded = {}, []
    for step in range(sim.config.n_decisions):
        before = observer.customers_embedded
        stale = int(history.stale.sum())
        features = observer.observe(history, state)
        embedded.append((stale, observer.customers_embedded - before))
        if step in CHECKED_STEPS:
            snapshots[step] = (int(state.day[0]), history.tokens.copy(), history.length.copy(), observer.elapsed_days(history, state.day), features)
        actions, _ = sample_actions(policy.action_probs(sim.observe(traits, state), sim.action_mask(state)), rng)
        state, _ = sim.advance(traits, state, actions, on_day=on_day)
    logs = simulate_logs(PopulationSimulator(), policy, N_CUSTOMERS, seed=SEED, start=START, progress=False)
    return snapshots, embedded, logs


def test_buffers_equal_the_tokenizer_on_the_logs_at_every_checked_decision(observer, run):
    snapshots, _, logs = run
    user_ids = logs.customers["user_id"].to_numpy()
    assert logs.events["offer_id"].notna().any() and (logs.events["event"] == "review").any()
    for step, (day, tokens, length, elapsed, _) in snapshots.items():
        as_of = START + pd.Timedelta(days=day, minutes=DECISION_MINUTE)
        batch = observer.tokenizer.encode(logs.events, as_of, user_ids=user_ids)
        assert np.array_equal(length, batch.attention_mask.sum(1)), step
        assert (batch.n_events > observer.max_len).any()  # buffers did drop their oldest events
        for i, name in enumerate(TOKEN_FIELDS):
            assert np.array_equal(tokens[:, i], getattr(batch, name)), (step, name)
        np.testing.assert_array_equal(elapsed, batch.elapsed_days)


def test_cached_features_equal_a_fresh_pass_of_the_encoder(observer, run):
    snapshots, _, logs = run
    user_ids = logs.customers["user_id"].to_numpy()
    for day, _, _, _, features in snapshots.values():
        encoded = observer.model.encode(observer.tokenizer.encode(logs.events, START + pd.Timedelta(days=day, minutes=DECISION_MINUTE), user_ids=user_ids))
        expected = np.column_stack([encoded.embedding, encoded.churn_probability, np.log1p(encoded.expected_clv)])
        assert features.shape == (N_CUSTOMERS, len(observer.feature_names))
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_only_customers_with_new_events_are_embedded_again(run):
    _, embedded, _ = run
    stale, passes = np.array(embedded).T
    assert np.array_equal(stale, passes)  # every pass is for a customer whose buffer changed, and only those
    assert passes[0] == N_CUSTOMERS  # at first, every customer
    assert passes[1:].mean() < 0.5 * N_CUSTOMERS  # after that, the quiet majority comes from the cache


def test_vec_env_with_the_encoder_observer_appends_encoder_features(observer):
    plain = RetentionVecEnv(64, seed=3)
    env = RetentionVecEnv(64, seed=3, encoder=observer)
    raw, obs = plain.reset(), env.reset()
    assert obs.shape == (64, plain.observation_space.shape[0] + len(observer.feature_names)) == (64, env.observation_space.shape[0])
    np.testing.assert_array_equal(obs[:, : raw.shape[1]], raw)  # same customers, same draws
    actions = np.zeros(64, np.int64)
    for _ in range(60):  # past the horizon: finished slots refilled with fresh customers and fresh buffers
        raw, plain_reward, plain_done, _ = plain.step(actions)
        obs, reward, done, _ = env.step(actions)
        np.testing.assert_array_equal(obs[:, : raw.shape[1]], raw)
        np.testing.assert_array_equal(reward, plain_reward)
    assert env.customers_started > 64
    env.history.stale[:] = True  # recompute every slot's embedding: the cache, refilled slots included, must agree
    np.testing.assert_allclose(obs[:, raw.shape[1] :], observer.observe(env.history, env.state), rtol=1e-5, atol=1e-5)

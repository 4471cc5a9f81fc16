"""The gymnasium env and the SB3 VecEnv over the population simulator: API conformance, seeding,
auto-reset, the reward's accounting as seen through ``info``, and a MaskablePPO smoke run."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from offerpilot.agents.baselines import NoOfferPolicy
from offerpilot.catalog import default_catalog
from offerpilot.envs import ENV_ID
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.policy import UniformRandomPolicy, act
from offerpilot.envs.policy_evaluation import RETENTION_DAYS, evaluate_policy
from offerpilot.envs.retention_env import RetentionEnv
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig
from offerpilot.envs.vec_env import RetentionVecEnv

CATALOG = default_catalog()
A = {offer_id: i for i, offer_id in enumerate(CATALOG.ids)}
N_FEATURES = 13
INFO_KEYS = ("revenue", "discount", "send_cost", "churned", "margin_short", "margin_clv", "unsubscribed")


def random_legal(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random legal action per row of ``mask`` (n, n_actions)."""
    return (rng.random(mask.shape) * mask).argmax(axis=1)


def rollout(env: RetentionEnv, seed: int, action_seed: int = 0, max_steps: int = 60):
    """One episode with random legal actions; returns observations, rewards, dones and infos."""
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    observations, rewards, dones, infos = [obs], [], [], []
    for _ in range(max_steps):
        action = int(random_legal(env.action_masks()[None], rng)[0])
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        dones.append((terminated, truncated))
        infos.append(info)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), dones, infos


def long_episode_seed(env: RetentionEnv, min_steps: int = 20) -> int:
    """The first seed whose customer survives at least ``min_steps`` decision steps under random actions."""
    for seed in range(200):
        _, rewards, _, _ = rollout(env, seed)
        if len(rewards) >= min_steps:
            return seed
    raise AssertionError("no customer survived 20 decision steps in 200 seeds")


# --- API conformance --------------------------------------------------------------------------


def test_gymnasium_check_env_passes():
    """gymnasium's ``check_env`` accepts RetentionEnv; its only complaints are the documented unbounded Box."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(RetentionEnv(), skip_render_check=True)
    other = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert other == []


def test_sb3_check_env_passes_without_warnings():
    """stable-baselines3's ``check_env`` accepts RetentionEnv with no warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(RetentionEnv(), warn=True)
    assert [str(w.message) for w in caught] == []


def test_gymnasium_make_builds_the_registered_env():
    """``gymnasium.make("offerpilot/Retention-v1")`` gives a seeded, steppable RetentionEnv."""
    env = gym.make(ENV_ID)
    assert env.spec.id == ENV_ID == "offerpilot/Retention-v1"
    assert isinstance(env.unwrapped, RetentionEnv)
    obs, info = env.reset(seed=0)
    assert obs.shape == (N_FEATURES,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Discrete(CATALOG.n_actions)
    obs2, reward, terminated, truncated, info = env.step(0)
    assert env.observation_space.contains(obs2) and isinstance(reward, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)
    assert info["send_cost"] == 0.0 and info["applied_action"] == 0
    mask = env.unwrapped.action_masks()
    assert mask.shape == (CATALOG.n_actions,) and mask.dtype == bool and mask[0]
    env.close()


def test_env_refuses_to_step_before_reset():
    """Stepping or masking a never-reset env raises instead of returning garbage."""
    env = RetentionEnv()
    with pytest.raises(RuntimeError):
        env.step(0)
    with pytest.raises(RuntimeError):
        env.action_masks()


def test_env_applies_illegal_actions_as_none():
    """An action outside ``action_masks()`` is applied as 'none': no cost, reported in ``applied_action``."""
    env = RetentionEnv()
    for seed in range(100):
        env.reset(seed=seed)
        mask = env.action_masks()
        if not mask[A["pct20"]]:  # the customer bought within 30 days: the win-back offer is illegal
            break
    else:
        raise AssertionError("pct20 was legal for every customer")
    _, _, _, _, info = env.step(A["pct20"])
    assert info["applied_action"] == 0 and info["send_cost"] == 0.0 and info["discount"] == 0.0


def test_envs_survive_a_pickle_round_trip():
    """A pickled-and-restored RetentionEnv / RetentionVecEnv continues exactly the original trajectory."""
    env = RetentionEnv()
    env.reset(seed=long_episode_seed(env))
    twin = pickle.loads(pickle.dumps(env))
    for action in (A["content"], 0, A["pct10"], 0, 0, A["free_shipping"], 0, 0):
        o1, r1, term1, trunc1, i1 = env.step(action)
        o2, r2, term2, trunc2, i2 = twin.step(action)
        np.testing.assert_array_equal(o1, o2)
        assert (r1, term1, trunc1, i1) == (r2, term2, trunc2, i2)
    vec = RetentionVecEnv(16, seed=1)
    vec.reset()
    vec_twin = pickle.loads(pickle.dumps(vec))
    rng = np.random.default_rng(0)
    for _ in range(10):
        actions = random_legal(vec.action_masks(), rng)
        (o1, r1, d1, _), (o2, r2, d2, _) = vec.step(actions), vec_twin.step(actions)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)


# --- the VecEnv -------------------------------------------------------------------------------


def test_vec_env_shapes_and_dtypes():
    """reset/step/action_masks have SB3's shapes: obs (n, 13) float32, rewards (n,) float, dones (n,) bool, masks (n, 7)."""
    n = 32
    vec = RetentionVecEnv(n, seed=1)
    obs = vec.reset()
    assert obs.shape == (n, N_FEATURES) and obs.dtype == np.float32
    assert np.all(obs[:, 0] == 0)  # every customer starts on day 0 of the decision period
    mask = vec.action_masks()
    assert mask.shape == (n, CATALOG.n_actions) and mask.dtype == bool and mask[:, 0].all()
    assert [m.shape for m in vec.env_method("action_masks")] == [(CATALOG.n_actions,)] * n
    obs, rewards, dones, infos = vec.step(random_legal(mask, np.random.default_rng(0)))
    assert obs.shape == (n, N_FEATURES) and obs.dtype == np.float32
    assert rewards.shape == (n,) and rewards.dtype.kind == "f" and np.isfinite(rewards).all()
    assert dones.shape == (n,) and dones.dtype == bool
    assert isinstance(infos, list) and len(infos) == n and all(isinstance(i, dict) for i in infos)
    assert vec.observation_space.shape == (N_FEATURES,) and vec.action_space.n == CATALOG.n_actions


def test_vec_env_infos_match_the_step_arrays():
    """Each slot's info carries revenue, discount, send_cost, churned (and margins) equal to the array step's values."""
    n = 64
    a, b = RetentionVecEnv(n, seed=2), RetentionVecEnv(n, seed=2)
    a.reset(), b.reset()
    rng = np.random.default_rng(3)
    for _ in range(10):
        actions = random_legal(a.action_masks(), rng)
        _, rewards, dones, infos = a.step(actions)
        _, out, terminated, truncated, _ = b.step_arrays(actions)
        np.testing.assert_array_equal(rewards, out.reward)
        np.testing.assert_array_equal(dones, terminated | truncated)
        for key in INFO_KEYS:
            assert np.array_equal([info[key] for info in infos], getattr(out, key)), key
        for info in infos:
            assert info["revenue"] >= 0 and info["discount"] >= 0 and info["send_cost"] in (0.0, np.float32(0.02), np.float32(0.06))
            assert isinstance(info["churned"], bool)
        sent_cost = CATALOG.send_cost[out.action]
        np.testing.assert_array_equal(out.send_cost, sent_cost)


def test_vec_env_auto_resets_finished_customers():
    """Every customer stays the 53 decisions of the period (dropped out or not), then the slot gets a fresh
    customer on day 0."""
    n = 256
    vec = RetentionVecEnv(n, seed=4)
    vec.reset()
    rng = np.random.default_rng(5)
    first = vec.customers_started
    alive_at_end = None
    for step in range(1, 54):
        alive_at_end = vec.state.alive.mean()
        _, _, terminated, truncated, _ = vec.step_arrays(random_legal(vec.action_masks(), rng))
        assert not truncated.any()
        assert terminated.all() == (step == 53) and terminated.any() == (step == 53)
    assert np.all(vec.state.day == 0) and vec.customers_started == first + n
    assert alive_at_end < 0.5 < vec.state.alive.mean() < 0.8  # replacements are fresh draws, not the finished customers


def test_vec_env_sb3_step_reports_terminal_observations_and_episodes():
    """Through SB3's ``step``: at the horizon every slot has ``terminal_observation`` (its last view) and the new
    obs shows day 0; ``episode`` holds the finished customer's return and decisions."""
    n = 256
    vec = RetentionVecEnv(n, seed=6)
    vec.reset()
    rng = np.random.default_rng(7)
    returns = np.zeros(n)
    for step in range(1, 54):
        obs, rewards, dones, infos = vec.step(random_legal(vec.action_masks(), rng))
        returns += rewards
        assert dones.all() == (step == 53) and dones.any() == (step == 53)
        for i, info in enumerate(infos):
            assert ("terminal_observation" in info) == ("episode" in info) == bool(dones[i])
            assert "TimeLimit.truncated" not in info  # the objective ends at the horizon: nothing to bootstrap
    for i, info in enumerate(infos):
        terminal = info["terminal_observation"]
        assert terminal.shape == (N_FEATURES,) and terminal.dtype == np.float32
        assert terminal[0] >= 1.0 and obs[i, 0] == 0 and vec.state.day[i] == 0
        np.testing.assert_allclose(info["episode"]["r"], returns[i], rtol=1e-5)
        assert info["episode"]["l"] == 53


def test_vec_env_copies_of_a_customer_share_their_luck_and_differ_only_by_their_actions():
    """With ``copies`` 2, slots ``i`` and ``i + n/2`` hold the same customer: the same actions give the same
    rewards and observations for a whole period (common random numbers), refills stay paired, and other actions in
    one copy change that copy alone."""
    n, half = 128, 64
    vec = RetentionVecEnv(n, seed=11, copies=2)
    obs = vec.reset()
    np.testing.assert_array_equal(obs[:half], obs[half:])
    assert len(set(vec.traits.noise_key[:half].tolist())) == half  # different customers within a copy
    rng = np.random.default_rng(12)
    for step in range(1, 60):
        actions = random_legal(vec.action_masks()[:half], rng)
        twin = actions.copy()
        if step < 10:
            twin[:8] = 0  # the first 8 customers' second copies send nothing for 9 decisions
        obs, rewards, dones, _ = vec.step(np.concatenate([actions, twin]))
        np.testing.assert_array_equal(dones[:half], dones[half:])
        if step == 9:
            differs = obs[:half] != obs[half:]
            assert differs[:8].any() and not differs[8:].any()
        if step == 53:
            assert dones.all()
            np.testing.assert_array_equal(obs[:half], obs[half:])  # refilled with one fresh customer per pair
            np.testing.assert_array_equal(vec.traits.noise_key[:half], vec.traits.noise_key[half:])
    with pytest.raises(ValueError, match="copies must be >= 1 and divide n_envs"):
        RetentionVecEnv(10, copies=3)


# --- determinism ------------------------------------------------------------------------------


def test_env_same_seed_same_trajectory_different_seed_different():
    """RetentionEnv: reset(seed) plus the same actions reproduces obs, rewards and dones exactly; another seed does not."""
    env = RetentionEnv()
    seed = long_episode_seed(env)
    o1, r1, d1, _ = rollout(env, seed)
    o2, r2, d2, _ = rollout(RetentionEnv(), seed)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    assert d1 == d2 and len(r1) >= 20
    o3, _, _, _ = rollout(env, seed + 1000)
    assert not np.array_equal(o1[0], o3[0])


def test_vec_env_same_seed_same_trajectory_different_seed_different():
    """RetentionVecEnv: equal seeds (constructor or ``seed()``) reproduce obs, rewards and dones; different seeds differ."""

    def run(vec: RetentionVecEnv, steps: int = 55):
        rng = np.random.default_rng(0)
        obs = [vec.reset()]
        rewards, dones = [], []
        for _ in range(steps):
            o, r, d, _ = vec.step(random_legal(vec.action_masks(), rng))
            obs.append(o), rewards.append(r), dones.append(d)
        return np.array(obs), np.array(rewards), np.array(dones)

    a, b, c = run(RetentionVecEnv(64, seed=9)), run(RetentionVecEnv(64, seed=9)), run(RetentionVecEnv(64, seed=10))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[2].any()  # some slots finished and were refilled inside the compared window
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    reseeded = RetentionVecEnv(64, seed=123)
    reseeded.seed(9)
    d = run(reseeded)
    reseeded.seed(9)
    e = run(reseeded)
    for x, y in zip(d, e):
        np.testing.assert_array_equal(x, y)


# --- accounting seen through the env ----------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0])
def test_env_reward_is_the_objective_mix_of_its_margins(lam):
    """Per step, reward = (1-lam)*margin_short + lam*margin_clv (exactly margin_clv at lam 1, margin_short at 0); margin_short stops
    after day 30, and at lam 0, where nothing later carries reward, so does the episode."""
    env = RetentionEnv(SimulatorConfig(objective=ObjectiveConfig(lam=lam)))
    total = mixed = 0.0
    late_short = []
    for seed in range(12):
        obs, rewards, _, infos = rollout(env, seed, action_seed=seed)
        for o, r, info in zip(obs[:-1], rewards, infos):
            expected = (1 - lam) * info["margin_short"] + lam * info["margin_clv"]
            assert r == pytest.approx(expected, rel=1e-5, abs=1e-6)
            if lam == 1.0:
                assert r == np.float32(info["margin_clv"])
            if lam == 0.0:
                assert r == np.float32(info["margin_short"])
            assert info["revenue"] >= 0 and info["discount"] >= 0
            if round(float(o[0]) * 365) >= 30:  # the step starts after the short-term window
                late_short.append(info["margin_short"])
            total += r
            mixed += expected
        assert len(rewards) == (5 if lam == 0.0 else 53)
    assert total == pytest.approx(mixed, rel=1e-5)
    assert (not late_short) if lam == 0.0 else (late_short and all(m == 0 for m in late_short))


# --- the vec env under sb3-contrib (that PPO learns: tests/test_ppo_training.py) ----------------


def test_maskable_ppo_updates_its_network_on_the_vec_env_and_acts_within_the_masks():
    """sb3-contrib's MaskablePPO takes the RetentionVecEnv as it is: a 64-step learn on 8 slots changes every layer
    of the network, and its deterministic actions are legal under the env's masks."""
    torch = pytest.importorskip("torch")
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    vec = RetentionVecEnv(8, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render_mode.*")
        model = MaskablePPO("MlpPolicy", vec, n_steps=8, batch_size=64, n_epochs=2, seed=0, device="cpu")
        before = {k: v.clone() for k, v in model.policy.state_dict().items()}
        model.learn(64)
    assert model.num_timesteps == 64
    changed = {k for k, v in model.policy.state_dict().items() if not torch.equal(v, before[k])}
    assert {k.split(".")[0] for k in changed} >= {"mlp_extractor", "action_net", "value_net"}
    obs = vec.reset()
    mask = vec.action_masks()
    actions, _ = model.predict(obs, action_masks=mask, deterministic=True)
    assert actions.shape == (8,) and mask[np.arange(8), actions].all()


# --- evaluation in simulation -----------------------------------------------------------------


def test_evaluation_reports_the_objective_mix_and_sends_nothing_for_no_offer():
    """evaluate_policy: objective = (1-lam)*R_short + lam*CLV; the no-offer policy sends nothing and gives no discount."""
    lam = 0.25
    sim = PopulationSimulator(SimulatorConfig(objective=ObjectiveConfig(lam=lam)))
    none = evaluate_policy(sim, NoOfferPolicy(), n_customers=400, seed=0)
    assert none.offers_sent.mean == 0 and none.discount_spend.mean == 0
    assert none.objective.mean == pytest.approx((1 - lam) * none.r_short.mean + lam * none.clv.mean, rel=1e-5)
    assert 0 < none.retention[365].mean < none.retention[180].mean < none.retention[90].mean <= 1
    rand = evaluate_policy(sim, UniformRandomPolicy(), n_customers=400, seed=0)
    assert rand.offers_sent.mean > 5 and rand.discount_spend.mean > 0
    assert rand.objective.mean == pytest.approx((1 - lam) * rand.r_short.mean + lam * rand.clv.mean, rel=1e-5)


def test_evaluation_retention_is_the_share_alive_on_day_d():
    """retention[d] equals the share of customers alive on day d, replayed day by day on the same seed."""
    sim = PopulationSimulator()
    n, seed, policy = 2_000, 3, NoOfferPolicy()
    evaluation = evaluate_policy(sim, policy, n_customers=n, seed=seed)
    rng = np.random.default_rng(seed)  # replay evaluate_policy's exact random stream
    traits, state = sim.new_customers(n, rng)
    alive_on = {}

    def record(customers, after, out):
        if int(after.day[0]) in RETENTION_DAYS:  # the state after day d - 1, i.e. on day d
            alive_on[int(after.day[0])] = after.alive.mean()

    revenue = np.zeros(n)
    for _ in range(sim.config.n_decisions):
        actions, _ = act(policy, sim.observe(traits, state), sim.action_mask(state), rng=rng)
        state, out = sim.advance(traits, state, actions, on_day=record)
        revenue += out.revenue
    assert revenue.mean() == evaluation.revenue.mean  # the replay is the same trajectory
    assert {d: e.mean for d, e in evaluation.retention.items()} == alive_on

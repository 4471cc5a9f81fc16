"""PPO training: it learns, it resumes after a kill, its masks hold, its config and budget behave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from offerpilot.agents.baselines import NoOfferPolicy
from offerpilot.agents.discount_budget import DiscountBudget
from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.agents.ppo_training import simulator_config, train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.app.cli import main
from offerpilot.envs.policy import UniformRandomPolicy, sample_actions
from offerpilot.envs.policy_evaluation import evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.envs.vec_env import RetentionVecEnv

SMALL = {"observation": "raw", "n_envs": 256, "batch_size": 1024, "n_epochs": 10, "learning_rate": 3e-3, "ent_coef": 0.0, "net_arch": (32, 32), "eval_customers": 2000}
"""256 slots x 53 decisions: 13,568 decisions per rollout."""
ROLLOUT = 256 * 53
TEST_SEED = 424242


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """8 rollouts (108,544 decisions) on the default simulator with raw features."""
    config = TrainConfig(total_timesteps=8 * ROLLOUT, eval_every=3 * ROLLOUT, checkpoint_every=3 * ROLLOUT, seed=3, **SMALL)
    return config, train_ppo(config, tmp_path_factory.mktemp("ppo") / "run", progress=False)


def test_a_short_run_beats_random_offers_on_held_out_customers(short_run):
    config, result = short_run
    sim = PopulationSimulator(simulator_config(config))
    policy = PPOPolicy.load(result.best_policy_dir)
    ppo = evaluate_policy(sim, policy, 20_000, TEST_SEED, deterministic=True)
    uniform = evaluate_policy(sim, UniformRandomPolicy(), 20_000, TEST_SEED)
    none = evaluate_policy(sim, NoOfferPolicy(), 20_000, TEST_SEED)
    print(f"short run: ppo {ppo.objective.mean:.3f}, no offer {none.objective.mean:.3f}, uniform {uniform.objective.mean:.3f}")
    # Random offers lose about 0.8 per customer against sending nothing; the learned policy must recover at
    # least half of that (measured on these seeds: uniform 6.36, no offer 7.32, PPO 7.32).
    assert ppo.objective.mean > uniform.objective.mean + 0.5 * (none.objective.mean - uniform.objective.mean)
    assert ppo.objective.mean > uniform.objective.high


def test_run_folder_holds_the_learning_curve_policies_and_a_checkpoint(short_run):
    config, result = short_run
    run = result.run_dir
    curve = np.genfromtxt(run / "eval.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(curve["timesteps"], [3 * ROLLOUT, 6 * ROLLOUT, 8 * ROLLOUT])
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["num_timesteps"] == result.num_timesteps == 8 * ROLLOUT
    assert TrainConfig.from_file(run / "config.json") == config
    best = int(np.argmax(curve["objective"]))
    assert PPOPolicy.load(run / "best_policy").metadata["num_timesteps"] == curve["timesteps"][best]
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))


def test_masks_are_never_violated_and_probabilities_are_a_distribution(short_run):
    _, result = short_run
    policy = PPOPolicy.load(result.policy_dir)
    sim = PopulationSimulator()
    rng = np.random.default_rng(0)
    traits, state = sim.new_customers(3000, rng)
    for _ in range(sim.config.n_decisions):
        mask = sim.action_mask(state)
        probs = policy.action_probs(sim.observe(traits, state), mask)
        assert (probs[~mask] == 0).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
        actions, _ = sample_actions(probs, rng)
        state, out = sim.advance(traits, state, actions)
        np.testing.assert_array_equal(out.action, actions)  # the simulator turns illegal actions into 'none'


def test_kill_during_training_then_resume_completes_with_a_loadable_model(tmp_path):
    run = tmp_path / "run"
    flags = ["--observation", "raw", "--n-envs", "128", "--n-steps", "8", "--batch-size", "1024", "--eval-every", "0",
             "--checkpoint-every", "2000", "--seed", "1", "--no-progress"]
    command = [sys.executable, "-m", "offerpilot", "train", "--out", str(run), "--total-timesteps", "2000000", *flags]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    state_file = run / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while not state_file.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert state_file.exists(), child.stderr.read().decode()
    killed_at = json.loads(state_file.read_text())["num_timesteps"]
    assert 0 < killed_at < 2_000_000

    assert main(["train", "--out", str(run), "--observation", "raw"]) == 2  # a second run would overwrite the first
    assert main(["train", "--out", str(run), "--resume", "--lam", "0.2"]) == 2  # resume keeps the run's config
    target = killed_at + 10_000
    assert main(["train", "--out", str(run), "--resume", "--total-timesteps", str(target), "--no-progress"]) == 0
    state = json.loads(state_file.read_text())
    assert target <= state["num_timesteps"] < target + 128 * 8
    assert state["n_updates"] > 0
    policy = PPOPolicy.load(run / "policy")
    assert policy.metadata["num_timesteps"] == state["num_timesteps"]
    assert TrainConfig.from_file(run / "config.json").total_timesteps == target


def test_config_file_flags_and_errors(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("lam: 0.8\nn_envs: 512\nnet_arch: [64, 32]\n")
    config = TrainConfig.from_file(path, n_envs=128, lam=None)
    assert (config.lam, config.n_envs, config.net_arch) == (0.8, 128, (64, 32))
    path.write_text("lamda: 0.8\n")
    with pytest.raises(ValueError, match=r"train.yaml: unknown training option\(s\) \['lamda'\]"):
        TrainConfig.from_file(path)
    with pytest.raises(ValueError, match="lam must be in"):
        TrainConfig(lam=1.5)
    with pytest.raises(ValueError, match="observation must be one of"):
        TrainConfig(observation="pixels")


def test_the_same_seed_trains_the_same_weights_however_often_a_run_evaluates_and_checkpoints(tmp_path):
    tiny = {**SMALL, "n_envs": 16, "batch_size": 212, "total_timesteps": 3 * 16 * 53, "eval_customers": 200}
    weights = []
    for i, every in enumerate((16 * 53, 0)):
        result = train_ppo(TrainConfig(**tiny, eval_every=every, checkpoint_every=every, seed=5), tmp_path / str(i), progress=False)
        weights.append(PPOPolicy.load(result.policy_dir).network.state_dict())
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0, msg=name)


def test_threads_apply_while_training_are_recorded_and_restored(tmp_path):
    """``threads`` sets torch's thread count for the run only, and the saved policy records the count it trained with."""
    before = torch.get_num_threads()
    tiny = {**SMALL, "n_envs": 16, "batch_size": 212, "total_timesteps": 16 * 53, "eval_every": 0}
    result = train_ppo(TrainConfig(**tiny, threads=1, seed=5), tmp_path / "one", progress=False)
    assert PPOPolicy.load(result.policy_dir).metadata["torch_threads"] == 1
    assert torch.get_num_threads() == before
    result = train_ppo(TrainConfig(**tiny, seed=5), tmp_path / "default", progress=False)
    assert PPOPolicy.load(result.policy_dir).metadata["torch_threads"] == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        TrainConfig(threads=0)


def test_a_finished_run_continued_with_more_timesteps_evaluates_each_step_count_once(tmp_path):
    rollout = 16 * 53
    config = TrainConfig(**{**SMALL, "n_envs": 16, "batch_size": 212, "eval_customers": 200}, total_timesteps=2 * rollout, eval_every=rollout, seed=2)
    train_ppo(config, tmp_path / "run", progress=False)
    (tmp_path / "run" / "config.json").write_text(json.dumps({**config.to_dict(), "total_timesteps": 4 * rollout}))
    train_ppo(TrainConfig.from_file(tmp_path / "run" / "config.json"), tmp_path / "run", resume=True, progress=False)
    steps = [int(line.split(",")[0]) for line in (tmp_path / "run" / "eval.csv").read_text().splitlines()[1:]]
    assert steps == [rollout, 2 * rollout, 3 * rollout, 4 * rollout]


def test_cli_flags_reach_the_run_config_and_the_saved_network(tmp_path):
    run = tmp_path / "run"
    flags = ["--observation", "raw", "--net-arch", "16", "8", "--gae-lambda", "0.9", "--total-timesteps", "1", "--n-envs", "8",
             "--batch-size", "64", "--eval-every", "0", "--no-progress"]
    assert main(["train", "--out", str(run), *flags]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["net_arch"], config["gae_lambda"], config["n_envs"]) == ([16, 8], 0.9, 8)
    assert PPOPolicy.load(run / "policy").net_arch == (16, 8)


def test_the_budget_multiplier_rises_while_spend_exceeds_the_budget_and_not_otherwise():
    rng = np.random.default_rng(0)
    for budget, rises in ((0.5, True), (1e6, False)):
        env = DiscountBudget(RetentionVecEnv(512, seed=0), budget=budget, step_size=0.1)
        env.reset()
        for _ in range(60):
            actions, _ = sample_actions(UniformRandomPolicy().action_probs(None, env.venv.action_masks()), rng)
            env.step(actions)
        spend = env.update()
        assert spend is not None and spend > 0.5  # random offers give away more than 0.5 per customer
        assert (env.multiplier > 0) == rises
        if rises:
            np.testing.assert_allclose(env.multiplier, 0.1 * (spend - budget) / budget)


def test_training_on_encoder_features_and_evaluating_through_the_same_observer(tmp_path):
    from offerpilot.catalog import default_catalog
    from offerpilot.encoders.configuration import CustomerEncoderConfig
    from offerpilot.encoders.encoder_observer import EncoderObserver
    from offerpilot.encoders.modeling import CustomerEncoderModel
    from offerpilot.encoders.tokenizer import EventTokenizer
    from offerpilot.envs.population import CATEGORIES

    tokenizer = EventTokenizer(default_catalog().ids, CATEGORIES)
    model = CustomerEncoderModel(CustomerEncoderConfig(**tokenizer.vocab_sizes(), embedding_dim=8))
    model.save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    config = TrainConfig(observation="encoder", encoder=str(tmp_path / "encoder"), n_envs=64, total_timesteps=64 * 53, eval_every=0, checkpoint_every=0, net_arch=(16,))
    result = train_ppo(config, tmp_path / "run", progress=False)
    policy = PPOPolicy.load(result.policy_dir)
    sim = PopulationSimulator(simulator_config(config))
    assert policy.feature_names == sim.observer.feature_names + tuple(f"emb_{i}" for i in range(8)) + ("churn_probability", "log_expected_clv")
    assert policy.metadata["encoder"] == str((tmp_path / "encoder").resolve())
    observer = EncoderObserver(model, tokenizer, sim.catalog)
    evaluation = evaluate_policy(sim, policy, 500, TEST_SEED, deterministic=True, encoder=observer)
    assert observer.customers_embedded >= 500 and np.isfinite(evaluation.objective.mean)
    with pytest.raises(ValueError, match="reads 23 features, got observations with 13"):
        evaluate_policy(sim, policy, 10, TEST_SEED)  # without the encoder's features


def test_at_lam_0_an_episode_ends_with_the_30_day_window_and_rollouts_hold_whole_episodes():
    """Nothing after day 30 carries reward at lam 0, so a training episode ends there: every sample counts."""
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.envs.simulator import SimulatorConfig

    env = RetentionVecEnv(32, SimulatorConfig(objective=ObjectiveConfig(lam=0.0)), seed=1)
    env.reset()
    lengths = []
    for _ in range(11):
        env.step_async(np.zeros(32, np.int64))
        _, _, done, infos = env.step_wait()
        lengths += [info["episode"]["l"] for info in infos if "episode" in info]
    assert env.sim.config.n_reward_decisions == 5 and lengths == [5] * 64  # two episodes per slot in 11 steps
    assert SimulatorConfig(objective=ObjectiveConfig(lam=0.01)).n_reward_decisions == 53


def test_the_untrained_policy_prefers_none_and_the_linear_schedule_decays_to_zero(tmp_path):
    from offerpilot.agents.ppo_policy import build_network
    from offerpilot.agents.ppo_training import learning_rate_schedule, prefer_none

    network = build_network(13, 8, (32, 32))
    prefer_none(network, 0.75)
    obs = torch.randn(2_000, 13)
    with torch.no_grad():
        probs = torch.softmax(network.action_net(network.mlp_extractor.forward_actor(obs)), dim=1).mean(dim=0)
    assert probs[0].item() == pytest.approx(0.75, abs=0.01) and probs[1:].numpy() == pytest.approx(np.full(7, 0.25 / 7), abs=0.005)
    schedule = learning_rate_schedule(TrainConfig(learning_rate=2e-3, learning_rate_schedule="linear"))
    assert (schedule(1.0), schedule(0.25), schedule(0.0)) == pytest.approx((2e-3, 5e-4, 0.0))
    assert learning_rate_schedule(TrainConfig(learning_rate=2e-3)) == 2e-3
    with pytest.raises(ValueError, match="initial_none_probability must be in"):
        TrainConfig(initial_none_probability=1.0)
    with pytest.raises(ValueError, match="learning_rate_schedule must be one of"):
        TrainConfig(learning_rate_schedule="cosine")
    tiny = {**SMALL, "n_envs": 16, "batch_size": 212, "total_timesteps": 16 * 53, "eval_every": 0, "initial_none_probability": 0.9}
    result = train_ppo(TrainConfig(**tiny, seed=5), tmp_path / "run", progress=False)
    sim = PopulationSimulator(simulator_config(result_config := TrainConfig(**tiny)))
    traits, state = sim.new_customers(2_000, np.random.default_rng(0))
    mask = sim.action_mask(state)
    p = PPOPolicy.load(result.policy_dir).action_probs(sim.observe(traits, state), mask)
    assert result_config.initial_none_probability == 0.9 and p[:, 0].mean() > 0.6  # still near the prior after one rollout


EASY_POPULATION = {"price_sensitivity_mean": 12.0, "price_sensitivity_cv": 0.3, "habituation_rate": 0.0, "unsubscribe_base": 0.0,
                   "fatigue_satisfaction_loss": 0.0}
"""Customers for whom a 10 % discount is plainly worth sending: they buy far more with one, never tire of messages and
never learn to wait. Sending nothing leaves most of the margin on the table (no offer 7.30, uniform random offers 10.74,
10 % off every week 15.21 per customer on 5,000 customers), so a learner that works must find it quickly."""


def test_a_short_run_on_an_easy_population_beats_no_offer_by_a_wide_margin(tmp_path):
    population = tmp_path / "easy.json"
    population.write_text(json.dumps(EASY_POPULATION))
    config = TrainConfig(total_timesteps=6 * ROLLOUT, eval_every=0, checkpoint_every=0, seed=7, population=str(population), threads=1, **SMALL)
    result = train_ppo(config, tmp_path / "run", progress=False)
    sim = PopulationSimulator(simulator_config(config))
    ppo = evaluate_policy(sim, PPOPolicy.load(result.policy_dir), 5_000, TEST_SEED, deterministic=True)
    none = evaluate_policy(sim, NoOfferPolicy(), 5_000, TEST_SEED)
    uniform = evaluate_policy(sim, UniformRandomPolicy(), 5_000, TEST_SEED)
    gain = ppo.per_customer["objective"] - none.per_customer["objective"]
    print(f"easy population: ppo {ppo.objective.mean:.3f}, no offer {none.objective.mean:.3f}, uniform {uniform.objective.mean:.3f}")
    assert gain.mean() > 6.0 and gain.mean() - 3 * gain.std() / np.sqrt(gain.size) > 5.5
    assert ppo.objective.mean > uniform.objective.mean + 2.5  # measured: PPO 13.68, no offer 7.30, uniform 10.74


def test_a_run_started_from_a_saved_policy_carries_its_weights_and_refuses_one_that_does_not_fit(short_run, tmp_path):
    """``init_policy``: with a learning rate of 0 the run's final policy is the saved one, weight for weight (and
    acts the same on fresh customers); a policy that reads other features is refused before anything trains."""
    _, result = short_run
    start = PPOPolicy.load(result.best_policy_dir)
    config = TrainConfig(total_timesteps=2 * ROLLOUT, eval_every=0, checkpoint_every=0, seed=5, lam=1.0,
                         init_policy=str(result.best_policy_dir), **{**SMALL, "learning_rate": 0.0})
    continued = PPOPolicy.load(train_ppo(config, tmp_path / "lam1", progress=False).policy_dir)
    for name, weight in start.network.state_dict().items():
        torch.testing.assert_close(continued.network.state_dict()[name], weight, rtol=0, atol=0)
    fresh = TrainConfig(total_timesteps=ROLLOUT, eval_every=0, checkpoint_every=0, seed=5, **SMALL)
    untrained = PPOPolicy.load(train_ppo(fresh.with_overrides(learning_rate=0.0), tmp_path / "fresh", progress=False).policy_dir)
    assert not torch.equal(untrained.network.action_net.weight, start.network.action_net.weight)
    latent = TrainConfig(total_timesteps=ROLLOUT, eval_every=0, checkpoint_every=0, **{**SMALL, "observation": "latent"}, init_policy=str(result.best_policy_dir))
    with pytest.raises(ValueError, match="init policy reads other features than this run"):
        train_ppo(latent, tmp_path / "latent", progress=False)
    with pytest.raises(ValueError, match="init_policy and initial_none_probability exclude each other"):
        fresh.with_overrides(init_policy="x", initial_none_probability=0.5)

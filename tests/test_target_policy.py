"""Target policies for off-policy evaluation: baselines by name, trained policies and tables of probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offerpilot.agents.baselines import BASELINES, EpsilonGreedyPolicy, RecencyRulePolicy, make_baseline
from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.deployment.export import ExportConfig, export_bundle
from offerpilot.deployment.target_probs import trained_policy_probs
from offerpilot.encoders.configuration import CustomerEncoderConfig
from offerpilot.encoders.modeling import CustomerEncoderModel
from offerpilot.encoders.tokenizer import EventTokenizer
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.population import CATEGORIES
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.errors import DataError
from offerpilot.ope.logged_decisions import logged_decisions
from offerpilot.ope.target_policy import policy_probs, table_probs
from offerpilot.tables import write_table

from small_training import small_training


@pytest.fixture(scope="module")
def logged():
    sim = PopulationSimulator()
    logs = simulate_logs(sim, EpsilonGreedyPolicy(RecencyRulePolicy(sim.catalog)), 300, seed=9, progress=False)
    return sim, logs, logged_decisions(logs.events, logs.decisions, sim.catalog, "2025-01-01")


def test_every_baseline_gives_legal_distributions(logged):
    """Each named baseline's probabilities sum to 1 and put no mass on forbidden offers."""
    sim, _, data = logged
    for name in BASELINES:
        probs = policy_probs(make_baseline(name, sim.catalog), data)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert not (probs[~data.legal] > 0).any(), name
    with pytest.raises(ValueError, match="unknown baseline 'greedy'"):
        make_baseline("greedy", sim.catalog)


def test_the_logging_policy_by_name_reproduces_the_logged_distribution(logged):
    """Evaluated on features rebuilt from the logs, the logging policy gives back the logged probabilities."""
    sim, _, data = logged
    probs = policy_probs(make_baseline("epsilon_greedy", sim.catalog), data)
    np.testing.assert_allclose(probs, data.logging_probs, atol=1e-12)


def test_a_table_of_probabilities_is_aligned_and_checked(logged, tmp_path):
    """A written table round-trips onto the decisions; bad rows are named; missing decisions refused."""
    sim, logs, data = logged
    table = logs.decisions[["user_id", "ts"] + [c for c in logs.decisions if c.startswith("prob_")]]
    shuffled = table.sample(frac=1.0, random_state=0)
    path = tmp_path / "target.csv"
    write_table(shuffled, path)
    np.testing.assert_allclose(table_probs(path, data, sim.catalog.ids), data.logging_probs, atol=1e-12)

    broken = shuffled.copy()
    broken.iloc[3, broken.columns.get_loc("prob_none")] = 1.5
    write_table(broken, path)
    with pytest.raises(DataError) as err:
        table_probs(path, data, sim.catalog.ids)
    assert any(p.row == 4 and p.field == "prob_none" for p in err.value.problems)

    write_table(shuffled.iloc[1:], path)
    with pytest.raises(DataError, match="1 logged decisions have no target row"):
        table_probs(path, data, sim.catalog.ids)

    illegal = shuffled.copy()
    prob_cols = [c for c in illegal if c.startswith("prob_")]
    illegal[prob_cols] = 0.0
    illegal["prob_pct20"] = 1.0  # a win-back offer, forbidden to recent buyers and the unsubscribed
    write_table(illegal, path)
    with pytest.raises(DataError, match="forbid"):
        table_probs(path, data, sim.catalog.ids)


TINY = small_training(total_timesteps=512, eval_every=0, checkpoint_every=500_000)
"""One 512-decision rollout: a real run folder in a few seconds."""


@pytest.mark.parametrize("observation", ["raw", "encoder"])
def test_a_trained_run_its_policy_folder_and_its_bundle_give_the_same_targets(logged, tmp_path, observation):
    """The torch policy on features rebuilt from the logs (the encoder reading each history as of each decision)
    and the exported ONNX bundle agree; the oracle, which reads latent state, is refused."""
    sim, logs, data = logged
    extra = {}
    if observation == "encoder":
        tokenizer = EventTokenizer(sim.catalog.ids, CATEGORIES)
        torch.manual_seed(0)
        encoder = CustomerEncoderModel(CustomerEncoderConfig(**tokenizer.vocab_sizes(), hidden_size=16, intermediate_size=32, embedding_dim=8))
        encoder.save_pretrained(tmp_path / "encoder")
        tokenizer.save_pretrained(tmp_path / "encoder")
        extra = {"encoder": str(tmp_path / "encoder")}
    run = train_ppo(TrainConfig(observation=observation, **extra, **TINY), tmp_path / "run", progress=False).run_dir
    export_bundle(run, tmp_path / "bundle", ExportConfig(n_random=100, n_customers=20))
    from_run = trained_policy_probs(run, data, logs.events, sim.catalog)
    np.testing.assert_array_equal(from_run, trained_policy_probs(run / "policy", data, logs.events, sim.catalog))
    np.testing.assert_allclose(from_run.sum(axis=1), 1.0, atol=1e-9)
    assert not (from_run[~data.legal] > 0).any()
    assert from_run.std(axis=0).max() > 1e-4  # the probabilities depend on the customer, not one row repeated
    np.testing.assert_allclose(trained_policy_probs(tmp_path / "bundle", data, logs.events, sim.catalog), from_run, atol=1e-5)


def test_an_oracle_run_is_refused_as_an_off_policy_target(logged, tmp_path):
    sim, logs, data = logged
    run = train_ppo(TrainConfig(observation="latent", **TINY), tmp_path / "oracle", progress=False).run_dir
    with pytest.raises(ValueError, match="latent state, which logs do not hold"):
        trained_policy_probs(run, data, logs.events, sim.catalog)

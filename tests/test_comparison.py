"""``offerpilot evaluate``: every policy through the same path, on the same customers, with the oracle's yardstick."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from offerpilot.agents.baselines import NoOfferPolicy
from offerpilot.agents.ppo_policy import PPOPolicy
from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.app.cli import main
from offerpilot.envs.policy_evaluation import Estimate, PolicyEvaluation, evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig
from offerpilot.evaluation.comparison import Comparison, Contender

TINY = {"n_envs": 64, "total_timesteps": 64 * 53, "eval_every": 0, "checkpoint_every": 0, "net_arch": (16,)}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    train_ppo(TrainConfig(observation="raw", **TINY), root / "raw", progress=False)
    train_ppo(TrainConfig(observation="latent", **TINY), root / "oracle", progress=False)
    code = main(["evaluate", "--runs", str(root / "raw"), str(root / "oracle"), "--baselines", "no_offer", "uniform", "fixed_schedule",
                 "--customers", "3000", "--seed", "77", "--tuning-customers", "1000", "--out", str(root / "report"), "--no-progress"])
    assert code == 0
    return root


def test_report_has_every_policy_its_files_and_the_oracle_yardstick(report):
    rows = {r["policy"]: r for r in json.loads((report / "report" / "evaluation.json").read_text())}
    assert set(rows) == {"no_offer", "uniform", "fixed_schedule", "ppo (raw, lam 0.5)", "oracle"}
    assert rows["oracle"]["oracle_gain_share"][0] == pytest.approx(1.0)
    assert rows["no_offer"]["oracle_gain_share"][0] == pytest.approx(0.0)
    assert rows["uniform"]["offers_sent"]["mean"] > 30  # sampled, not its mode
    for name in ("clv_by_policy.png", "frontier.png", "evaluation.md"):
        assert (report / "report" / name).stat().st_size > 1000
    assert not (report / "report" / "learning_curves.png").exists()  # these runs never evaluated on validation
    table = (report / "report" / "evaluation.md").read_text()
    assert "| oracle |" in table and '"fixed_schedule": {"offer"' in table


def test_the_report_equals_direct_evaluations_on_the_same_customers(report):
    rows = {r["policy"]: r for r in json.loads((report / "report" / "evaluation.json").read_text())}
    direct = evaluate_policy(PopulationSimulator(), NoOfferPolicy(), 3000, 77)
    assert rows["no_offer"]["CLV"]["mean"] == pytest.approx(direct.clv.mean, rel=1e-12)
    oracle = evaluate_policy(PopulationSimulator(SimulatorConfig(observer="latent")), PPOPolicy.load(report / "oracle" / "policy"), 3000, 77, deterministic=True)
    assert rows["oracle"]["CLV"]["mean"] == pytest.approx(oracle.clv.mean, rel=1e-12)
    share = (rows["uniform"]["CLV"]["mean"] - direct.clv.mean) / (oracle.clv.mean - direct.clv.mean)
    assert rows["uniform"]["oracle_gain_share"][0] == pytest.approx(share, rel=1e-9)
    low, high = rows["uniform"]["oracle_gain_share"][1:]
    assert low < share < high and np.isfinite([low, high]).all()


def test_churn_threshold_without_an_encoder_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--baselines", "churn_threshold", "--out", str(tmp_path / "r")]) == 2
    assert "churn_threshold baseline reads the encoder's churn probability" in capsys.readouterr().err


def test_paired_differences_cancel_who_the_customers_were():
    """Policies met the same customers: the paired interval is the CI of per-customer differences, far
    narrower than a policy's own interval when customers differ much more than the policies do."""
    rng = np.random.default_rng(0)
    customers = rng.lognormal(2.0, 1.0, 5000)  # who the customer is: most of the variance
    values = {"no_offer": customers, "fixed_schedule": customers + 0.1 + rng.normal(0, 0.05, 5000), "ppo": customers + 0.3}
    evaluations = []
    for name, v in values.items():
        e = Estimate.of(v)
        evaluations.append(PolicyEvaluation(name, 5000, 0, e, e, e, e, e, {}, e, e, per_customer={"objective": v, "clv": v, "r_short": v}))
    contenders = [Contender(name, NoOfferPolicy()) for name in values]
    contenders[2] = Contender("ppo", NoOfferPolicy(), run_dir=Path("run"))  # a trained run, not a baseline
    comparison = Comparison(tuple(contenders), tuple(evaluations), {})
    assert comparison.best_baseline() == "fixed_schedule"
    diff = comparison.paired_difference("ppo", "fixed_schedule")
    d = values["ppo"] - values["fixed_schedule"]
    assert diff.mean == pytest.approx(d.mean())
    assert diff.high - diff.low == pytest.approx(2 * 1.959963984540054 * d.std(ddof=1) / np.sqrt(5000))
    assert 0.19 < diff.low < diff.high < 0.21
    assert diff.high - diff.low < (evaluations[2].objective.high - evaluations[2].objective.low) / 20


def test_a_baseline_is_dominated_by_the_trained_policy_that_beats_it_on_margin_and_clv_with_paired_intervals_above_zero():
    """``dominating``: a trained policy with more 30-day margin and more CLV (both paired lower bounds > 0); of two,
    the one with the higher weaker bound; an oracle never counts; a baseline no trained policy beats on both is
    named as such in the report's sentence."""
    from offerpilot.app.report import _dominance

    rng = np.random.default_rng(1)
    customers = rng.lognormal(2.0, 1.0, 5000)
    noise = lambda: rng.normal(0, 0.05, 5000)  # noqa: E731
    margins_clv = {
        "no_offer": (customers, customers),
        "schedule": (customers + 0.5 + noise(), customers + 0.1 + noise()),
        "ppo": (customers + 0.2 + noise(), customers + 0.4 + noise()),  # beats no_offer, loses schedule on margin
        "ppo_lam0": (customers + 0.7 + noise(), customers + 0.3 + noise()),  # beats both
        "oracle": (customers + 5.0, customers + 5.0),
    }
    evaluations, contenders = [], []
    for name, (margin, clv) in margins_clv.items():
        e = Estimate.of(clv)
        evaluations.append(PolicyEvaluation(name, 5000, 0, e, e, e, e, e, {}, e, e, per_customer={"objective": clv, "clv": clv, "r_short": margin}))
        trained = name.startswith("ppo") or name == "oracle"
        contenders.append(Contender(name, NoOfferPolicy(), run_dir=Path(name) if trained else None, observation="latent" if name == "oracle" else "raw"))
    comparison = Comparison(tuple(contenders), tuple(evaluations), {})
    name, margin, clv = comparison.dominating("schedule")
    assert name == "ppo_lam0" and 0.15 < margin.low < margin.mean < 0.25 and 0.15 < clv.low < clv.mean < 0.25
    assert comparison.dominating("no_offer")[0] == "ppo_lam0"  # weaker bound 0.3 against ppo's 0.2
    assert "every baseline" in _dominance(comparison)
    evaluations[1].per_customer["r_short"] = customers + 0.9  # now more margin than any trained policy
    assert comparison.dominating("schedule") is None
    assert "No trained policy beats `schedule`" in _dominance(comparison)


def test_an_oracle_that_sees_part_of_the_latent_state_is_trained_and_evaluated_on_exactly_that_part(tmp_path):
    from offerpilot.envs.observers import LATENT_FEATURES, RawFeatureObserver
    from offerpilot.evaluation.comparison import arena_for, compare, load_run

    with pytest.raises(ValueError, match="latent_features applies to observation 'latent'"):
        TrainConfig(observation="raw", latent_features=("alive",))
    with pytest.raises(ValueError, match="unknown latent feature 'shoe_size'"):
        TrainConfig(observation="latent", latent_features=("alive", "shoe_size"))
    train_ppo(TrainConfig(observation="latent", latent_features=("price_sensitivity", "alive"), **TINY), tmp_path / "partial", progress=False)
    train_ppo(TrainConfig(observation="latent", **TINY), tmp_path / "full", progress=False)
    partial, full = load_run(tmp_path / "partial"), load_run(tmp_path / "full")
    assert partial.name == "oracle (price_sensitivity, alive)" and full.name == "oracle"
    assert partial.policy.feature_names == RawFeatureObserver.feature_names + ("price_sensitivity", "alive")
    assert full.policy.feature_names == RawFeatureObserver.feature_names + LATENT_FEATURES

    arena = arena_for(0.5)
    sim = arena.latent(("price_sensitivity", "alive"))
    traits, state = sim.new_customers(50, np.random.default_rng(0))
    seen, everything = sim.observe(traits, state), arena.latent().observe(traits, state)
    n_raw = len(RawFeatureObserver.feature_names)
    assert np.array_equal(seen, np.concatenate([everything[:, :n_raw], everything[:, [n_raw + 4, n_raw]]], axis=1))

    comparison = compare(arena, [Contender("no_offer", NoOfferPolicy()), partial, full], 500, seed=5, progress=False)
    direct = evaluate_policy(sim, partial.policy, 500, 5, deterministic=True)
    assert comparison.evaluations[1].objective.mean == direct.objective.mean
    assert comparison.oracle_share["oracle"][0] == pytest.approx(1.0)  # the yardstick is the oracle that sees everything
    assert comparison.informed_share == {}  # no log-informed oracle ran


def test_every_table_shows_the_shares_of_the_full_and_of_the_log_informed_oracle(tmp_path):
    """``--latent-features log-informed`` trains the log-informed oracle; ``compare`` reports both yardsticks."""
    from offerpilot.app.cli import main
    from offerpilot.envs.observers import LOG_INFORMED_FEATURES
    from offerpilot.evaluation.comparison import arena_for, compare, load_run

    flags = ["--n-envs", "64", "--total-timesteps", str(64 * 53), "--eval-every", "0", "--checkpoint-every", "0", "--net-arch", "16", "--no-progress"]
    assert main(["train", "--out", str(tmp_path / "informed"), "--observation", "latent", "--latent-features", "log-informed", *flags]) == 0
    train_ppo(TrainConfig(observation="latent", **TINY), tmp_path / "full", progress=False)
    informed, full = load_run(tmp_path / "informed"), load_run(tmp_path / "full")
    assert informed.name == "log-informed oracle" and informed.policy.metadata["latent_features"] == list(LOG_INFORMED_FEATURES)
    comparison = compare(arena_for(0.5), [Contender("no_offer", NoOfferPolicy()), informed, full], 2_000, seed=5, progress=False)
    by_name = {c.name: e for c, e in zip(comparison.contenders, comparison.evaluations)}
    gain = {name: by_name[name].clv.mean - by_name["no_offer"].clv.mean for name in by_name}
    assert comparison.informed_share["log-informed oracle"][0] == pytest.approx(1.0)
    assert comparison.informed_share["oracle"][0] == pytest.approx(gain["oracle"] / gain["log-informed oracle"])
    assert comparison.oracle_share["log-informed oracle"][0] == pytest.approx(gain["log-informed oracle"] / gain["oracle"])
    header = comparison.markdown().splitlines()[0]
    assert header.endswith("| share of oracle gain | share of log-informed oracle gain |")


def test_an_oracle_sees_a_stable_trait_through_noise_that_leaves_the_stated_share_of_its_variance_explained():
    """``NAME@R2``: the yardstick of a policy that knows a trait only as well as logs tell it. The noise is fixed per
    customer (the same at every decision, whatever else changes), scaled so the squared correlation with the exact
    trait is R2, and the same in training and in evaluation (the arena rebuilds the observer from the name)."""
    from offerpilot.envs.observers import RawFeatureObserver
    from offerpilot.evaluation.comparison import arena_for

    for spec, message in (("price_sensitivity@0", r"in \(0, 1\]"), ("price_sensitivity@1.5", r"in \(0, 1\]"), ("price_sensitivity@x", "must be a number"),
                          ("satisfaction@0.5", "only the stable traits")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(observation="latent", latent_features=(spec,))
    arena = arena_for(0.5)
    noisy = arena.latent(("log_purchase_rate@0.5", "price_sensitivity@0.25", "alive"))
    exact = arena.latent(("log_purchase_rate", "price_sensitivity", "alive"))
    traits, state = noisy.new_customers(40_000, np.random.default_rng(3))
    seen, truth = noisy.observe(traits, state), exact.observe(traits, state)
    n_raw = len(RawFeatureObserver.feature_names)
    assert np.array_equal(seen[:, : n_raw], truth[:, : n_raw]) and np.array_equal(seen[:, n_raw + 2], truth[:, n_raw + 2])  # alive: exact
    r2 = [np.corrcoef(seen[:, n_raw + i], truth[:, n_raw + i])[0, 1] ** 2 for i in (0, 1)]
    assert r2 == pytest.approx([0.5, 0.25], abs=0.015)
    assert abs(np.corrcoef(seen[:, n_raw] - truth[:, n_raw], seen[:, n_raw + 1] - truth[:, n_raw + 1])[0, 1]) < 0.02  # independent noises

    later, _ = noisy.advance(traits, state, np.zeros(40_000, np.int64))
    again = noisy.observe(traits, later)
    assert np.array_equal(again[:, n_raw : n_raw + 2] - exact.observe(traits, later)[:, n_raw : n_raw + 2], seen[:, n_raw : n_raw + 2] - truth[:, n_raw : n_raw + 2])
    assert np.array_equal(arena_for(0.5).latent(("log_purchase_rate@0.5", "price_sensitivity@0.25", "alive")).observe(traits, state), seen)


def test_best_of_seeds_keeps_the_seed_with_the_best_objective_on_the_tuning_customers_and_leaves_other_configs_alone(tmp_path):
    """Runs that differ only in seed (and thread count) are one policy whose seed is picked where baselines are tuned."""
    from offerpilot.evaluation.comparison import arena_for, best_of_seeds, load_run
    from offerpilot.seeds import TUNING_SEEDS

    train_ppo(TrainConfig(observation="raw", seed=0, **TINY), tmp_path / "s0", progress=False)
    train_ppo(TrainConfig(observation="raw", seed=1, threads=1, **TINY), tmp_path / "s1", progress=False)
    train_ppo(TrainConfig(observation="raw", seed=0, lam=0.8, **TINY), tmp_path / "other", progress=False)
    arena = arena_for(0.5)
    runs = [load_run(tmp_path / name) for name in ("s0", "s1", "other")]
    scores = [np.mean([arena.evaluate(run, 400, seed).objective.mean for seed in TUNING_SEEDS]) for run in runs[:2]]
    assert scores[0] != scores[1]
    chosen = best_of_seeds(arena, runs, 400)
    assert len(chosen) == 2 and chosen[1] is runs[2]
    best = int(np.argmax(scores))
    assert chosen[0].run_dir == runs[best].run_dir and chosen[0].params["seed"] == best
    assert chosen[0].name == "ppo (raw, lam 0.5), best of 2 seeds" == chosen[0].policy.policy_id
    assert chosen[0].params["tuning_objective_by_seed"] == {"0": round(scores[0], 4), "1": round(scores[1], 4)}

    code = main(["evaluate", "--runs", *(str(tmp_path / n) for n in ("s0", "s1")), "--baselines", "no_offer", "--best-of-seeds", "--customers", "300",
                 "--tuning-customers", "400", "--out", str(tmp_path / "report"), "--no-progress"])
    assert code == 0
    rows = [r["policy"] for r in json.loads((tmp_path / "report" / "evaluation.json").read_text())]
    assert rows == ["no_offer", "ppo (raw, lam 0.5), best of 2 seeds"]

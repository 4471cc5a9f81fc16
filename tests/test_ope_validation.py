"""Per-decision off-policy estimators against simulator truth: a small version of scripts/ope_validation.py.

Uniform-random logging, the no_offer target, 8 simulated logs (seeds 0-7) of 600 customers (31,800
decisions each), per-decision estimators only (``OPEConfig(sequential=False, n_bootstrap=100)``, whose
intervals resample customers); the truth is :func:`per_decision_value` on 30,000 customers (standard error
about 0.0024, against a spread of about 0.023 between seeds). Everything is seeded, so the outcome is fixed.

What is real (scripts/ope_validation.py, 2,000 customers per log, studentized cluster-bootstrap intervals):
DR and SNIPS are unbiased in this setting (+0.0009 ± 0.0023 over seeds 0-49) and their intervals cover the
truth about 91 % of the time (250 seeds: 91 %; seeds 0-49: 92 % DR, 90 % SNIPS), a little short of 95 % as a customer's
contributions are heavy-tailed (a few big spenders carry much of the variance; see
:mod:`offerpilot.ope.bootstrap`). The tests ask for at least 6 of 8 covering intervals, which an
interval covering 90 % of the time meets 96 % of the time (one covering 78 %, as the percentile interval did
on seeds 0-49 of the uniform -> recency_rule study, 75 %). DM's interval holds the fitted reward model fixed, so it is
narrower than DR's (about 0.6 x) while its point error is of DR's size; and DM is biased where it matters,
in the difference between policies: its cross-fitted gradient-boosted reward model barely separates the
actions, so DM shrinks the target's value toward the logging policy's and finds almost no advantage where
there is one (over 40 seeds of this set-up: true advantage 0.0072, DR 0.0053 ± 0.0026, SNIPS 0.0060 ± 0.0025,
DM 0.0007 ± 0.0012).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from offerpilot.agents.baselines import NoOfferPolicy
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.ope.logged_decisions import logged_decisions
from offerpilot.ope.off_policy import OPEConfig, evaluate_off_policy
from offerpilot.ope.target_policy import policy_probs
from offerpilot.ope.truth import per_decision_value

N_SEEDS = 8
N_CUSTOMERS = 600
TRUTH_CUSTOMERS = 30_000
TRUTH_SEED = 12_345


@dataclass(frozen=True)
class Study:
    truth: float
    """V1(no_offer) under uniform logging."""
    truth_se: float
    logging_truth: float
    """V1(uniform), the logging policy's own per-decision value, on the same seed as ``truth``."""
    logging_truth_se: float
    runs: dict[str, np.ndarray]
    """Per estimator, (N_SEEDS, 3) float64: value, low, high."""
    logged: np.ndarray
    """(N_SEEDS,) float64, the mean logged reward per decision of each log."""


@pytest.fixture(scope="module")
def study() -> Study:
    sim = PopulationSimulator()
    logging, target = UniformRandomPolicy(), NoOfferPolicy()
    truth, truth_se = per_decision_value(sim, logging, target, TRUTH_CUSTOMERS, seed=TRUTH_SEED)
    logging_truth, logging_truth_se = per_decision_value(sim, logging, logging, TRUTH_CUSTOMERS, seed=TRUTH_SEED)
    runs: dict[str, list[tuple[float, float, float]]] = {}
    logged = []
    for seed in range(N_SEEDS):
        logs = simulate_logs(sim, logging, N_CUSTOMERS, seed=seed, progress=False)
        data = logged_decisions(logs.events, logs.decisions, sim.catalog, "2025-01-01")
        report = evaluate_off_policy(data, policy_probs(target, data), OPEConfig(n_bootstrap=100, sequential=False, seed=seed))
        for row in report.rows:
            runs.setdefault(row.estimator, []).append((row.value, row.low, row.high))
        logged.append(report.logged_per_decision)
    return Study(truth, truth_se, logging_truth, logging_truth_se, {k: np.array(v) for k, v in runs.items()}, np.array(logged))


def covered(runs: np.ndarray, truth: float) -> int:
    return int(((runs[:, 1] <= truth) & (truth <= runs[:, 2])).sum())


def test_truth_is_precise_enough_to_judge_by(study):
    """The truth's own error (about 0.0024) is small beside the estimators' spread between seeds
    (about 0.023), and the truth lies where 40 seeds of DR put it (0.125 ± 0.004)."""
    assert 0 < study.truth_se < 0.005 and 0 < study.logging_truth_se < 0.005
    assert 0.11 < study.truth < 0.14


@pytest.mark.parametrize("estimator", ["dr", "snips"])
def test_dr_and_snips_are_unbiased(study, estimator):
    """The mean estimate over seeds is within 3 standard errors of the truth (the seeds' standard
    error of the mean and the truth's own, in quadrature)."""
    values = study.runs[estimator][:, 0]
    se = math.sqrt(values.var(ddof=1) / values.size + study.truth_se**2)
    assert abs(values.mean() - study.truth) <= 3 * se, (estimator, values.mean(), study.truth, se)
    assert 0.005 < values.std(ddof=1) < 0.06  # a real spread: a frozen or wild estimator fails here


@pytest.mark.parametrize("estimator", ["dr", "snips"])
def test_dr_and_snips_intervals_cover_the_truth(study, estimator):
    """At least 6 of 8 nominal 95 % intervals cover the truth (true coverage is about 91 %: see the
    module docstring for why not 95 %); here all 8 do."""
    assert covered(study.runs[estimator], study.truth) >= 6, (estimator, study.runs[estimator], study.truth)


def test_dm_intervals_leave_out_the_reward_models_error(study):
    """DM's interval holds the fitted reward model fixed, so it is narrower than DR's (about 0.6 x with
    customers resampled), though its point error is of DR's size."""
    dm, dr = study.runs["dm"], study.runs["dr"]
    assert (dm[:, 2] - dm[:, 1]).mean() < 0.8 * (dr[:, 2] - dr[:, 1]).mean()
    rmse = lambda r: math.sqrt(np.mean((r[:, 0] - study.truth) ** 2))  # noqa: E731
    assert rmse(dm) < 2 * rmse(dr)


def test_dm_shrinks_the_targets_advantage_toward_zero(study):
    """The true advantage of no_offer over uniform logging is positive (0.0072); DM's estimate of it,
    averaged over the seeds, falls short of it (40 seeds: 0.0007 ± 0.0012; an 8-seed mean misses
    this by chance about 1 % of the time), while DR's is within 3 standard errors of it."""
    advantage = study.truth - study.logging_truth
    noise = math.hypot(study.truth_se, study.logging_truth_se)  # generous: the two truths share random numbers
    assert advantage > 0.002, advantage
    dm = study.runs["dm"][:, 0] - study.logged
    assert dm.mean() < advantage, (dm, advantage)
    dr = study.runs["dr"][:, 0] - study.logged
    assert abs(dr.mean() - advantage) <= 3 * math.hypot(dr.std(ddof=1) / math.sqrt(dr.size), noise), (dr, advantage)

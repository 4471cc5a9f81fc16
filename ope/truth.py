"""Simulator truth for validating off-policy estimators.

* per decision: ``V1(pi) = E_{s ~ d_mu} E_{a ~ pi(s)} [reward of the decision window]``, the states
  being those the logging policy mu reaches. Found by branching: at every decision the customers
  are copied, the copy takes pi's action for one window (on its own random stream) and is discarded,
  and the original goes on under mu. This is what DM, IPS, SNIPS, DR and their kin estimate.
* per customer: the objective over the decision period when pi decides throughout, what trajectory
  estimators (PDIS, WPDIS, FQE, WDR) estimate; see :func:`offerpilot.envs.policy_evaluation.evaluate_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerpilot.envs.history import HistoryFeatures
from offerpilot.envs.policy import Policy, sample_actions
from offerpilot.envs.rollout import Cohort, Decision, rollout
from offerpilot.envs.simulator import PopulationSimulator


@dataclass(frozen=True)
class _SimulatorFeaturesOnly:
    """``policy`` reading the simulator's features alone when the cohort also shows encoder features."""

    policy: Policy
    n_features: int

    @property
    def policy_id(self) -> str:
        return self.policy.policy_id

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.policy.action_probs(obs[:, : self.n_features], mask)


def per_decision_value(
    sim: PopulationSimulator, logging: Policy, target: Policy, n_customers: int, seed: int, encoder: HistoryFeatures | None = None,
    progress: bool = False,
) -> tuple[float, float]:
    """``(V1(target), standard error)`` per decision window, over ``n_customers`` x decisions.

    :param encoder: the target reads this encoder observer's features after the simulator's (a policy trained
        on encoder features); the logging policy reads the simulator's alone.
    """
    rng = np.random.default_rng(seed)
    branch_rng = np.random.default_rng([seed, 1])
    cohort = Cohort.new(sim, n_customers, rng, encoder)
    rewards = []

    def branch(decision: Decision) -> None:
        """The copy that takes the target's action for one window, from the state the decision was taken in."""
        target_actions, _ = sample_actions(target.action_probs(decision.obs, decision.mask), branch_rng)
        _, out = sim.advance(cohort.traits, decision.state, target_actions)
        rewards.append(out.reward.astype(np.float64))

    for _ in rollout(cohort, _SimulatorFeaturesOnly(logging, sim.n_features), rng, before_step=branch, progress=progress, desc="simulating the truth"):
        pass
    per_customer = np.mean(rewards, axis=0)  # customers are independent; decisions within one are not
    return float(per_customer.mean()), float(per_customer.std(ddof=1) / np.sqrt(n_customers))

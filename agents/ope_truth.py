"""Simulator truth for validating off-policy estimators.

* per decision: ``V1(pi) = E_{s ~ d_mu} E_{a ~ pi(s)} [reward of the decision window]``, the states
  being those the logging policy mu reaches. Found by branching: at every decision the customers
  are copied, the copy takes pi's action for one window (on its own random stream) and is discarded,
  and the original goes on under mu. This is what DM, IPS, SNIPS, DR and their kin estimate.
* per customer: the objective over the decision period when pi decides throughout, what trajectory
  estimators (PDIS, WPDIS, FQE, WDR) estimate; see :func:`offerpilot.agents.evaluation.evaluate_policy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from offerpilot.agents.policy import Policy, sample_actions
from offerpilot.envs.simulator import PopulationSimulator

if TYPE_CHECKING:
    from offerpilot.encoders.observer import EncoderObserver


def per_decision_value(
    sim: PopulationSimulator, logging: Policy, target: Policy, n_customers: int, seed: int, encoder: EncoderObserver | None = None,
    progress: bool = False,
) -> tuple[float, float]:
    """``(V1(target), standard error)`` per decision window, over ``n_customers`` x decisions.

    :param encoder: the target reads this encoder observer's features after the simulator's (a policy trained
        on encoder features); the logging policy reads the simulator's alone.
    """
    rng = np.random.default_rng(seed)
    branch_rng = np.random.default_rng([seed, 1])
    history = on_day = on_acquire = None
    if encoder is not None:
        history = encoder.empty(n_customers)
        on_day, on_acquire = encoder.recorders(history)
    traits, state = sim.new_customers(n_customers, rng, on_day=on_day, on_acquire=on_acquire)
    rewards = []
    for _ in tqdm(range(sim.config.n_decisions), desc="simulating the truth", unit="decision", disable=not progress):
        obs, mask = sim.observe(traits, state), sim.action_mask(state)
        target_obs = obs if encoder is None else np.concatenate([obs, encoder.observe(history, state)], axis=1)
        target_actions, _ = sample_actions(target.action_probs(target_obs, mask), branch_rng)
        _, branch = sim.advance(traits, state, target_actions)
        rewards.append(branch.reward.astype(np.float64))
        actions, _ = sample_actions(logging.action_probs(obs, mask), rng)
        state, _ = sim.advance(traits, state, actions, on_day=on_day)
    per_customer = np.mean(rewards, axis=0)  # customers are independent; decisions within one are not
    return float(per_customer.mean()), float(per_customer.std(ddof=1) / np.sqrt(n_customers))

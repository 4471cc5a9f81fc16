"""The one rollout loop: a cohort of customers lives one decision period under a policy.

Evaluation, log generation, the off-policy truth, the export's parity check and the uplift baseline's
training data all walk customers through the period here and differ only in what they read at each
decision. (Training steps the same simulator through SB3's ``VecEnv`` interface in ``vec_env``.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from offerpilot.envs.history import DayRecorder, HistoryFeatures
from offerpilot.envs.policy import Policy, choose_actions
from offerpilot.envs.population import CustomerState, CustomerTraits
from offerpilot.envs.simulator import PopulationSimulator, StepOutcome


@dataclass
class Cohort:
    """Customers living a decision period together; with ``features``, also the buffers their history features
    are read from (kept up to date by ``on_day`` as the simulator simulates them)."""

    sim: PopulationSimulator
    traits: CustomerTraits
    state: CustomerState
    features: HistoryFeatures | None = None
    history: Any = None
    on_day: DayRecorder | None = None

    @classmethod
    def new(cls, sim: PopulationSimulator, n_customers: int, rng: np.random.Generator, features: HistoryFeatures | None = None) -> Cohort:
        """``n_customers`` fresh customers, their history simulated up to day 0 (and recorded for ``features``)."""
        history = on_day = on_acquire = None
        if features is not None:
            history = features.empty(n_customers)
            on_day, on_acquire = features.recorders(history)
        traits, state = sim.new_customers(n_customers, rng, on_day=on_day, on_acquire=on_acquire)
        return cls(sim, traits, state, features, history, on_day)

    @property
    def n_customers(self) -> int:
        return self.state.n_customers

    def observe(self) -> np.ndarray:
        """What a policy sees now: the simulator's features, then the history features if any."""
        obs = self.sim.observe(self.traits, self.state)
        return obs if self.features is None else np.concatenate([obs, self.features.observe(self.history, self.state)], axis=1)


@dataclass(frozen=True)
class Decision:
    """One decision of the whole cohort: what the policy saw and chose, before the step is simulated."""

    step: int
    state: CustomerState
    obs: np.ndarray
    mask: np.ndarray
    probs: np.ndarray
    actions: np.ndarray
    propensity: np.ndarray


def rollout(
    cohort: Cohort,
    policy: Policy,
    rng: np.random.Generator | None = None,
    deterministic: bool = False,
    before_step: Callable[[Decision], None] | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> Iterator[tuple[Decision, StepOutcome]]:
    """Walk ``cohort`` through its decision period under ``policy`` (its mode with ``deterministic``, else a draw
    from ``rng``), yielding each decision and its step's outcome; ``cohort.state`` moves on as it goes.

    :param before_step: called with each decision while ``cohort`` still holds the state it was taken in (the
        history buffers change during the step), for readers that need more than the decision itself.
    """
    if not deterministic and rng is None:
        raise ValueError("sampling needs an rng (or pass deterministic=True)")
    sim = cohort.sim
    for step in tqdm(range(sim.config.n_decisions), desc=desc or f"simulating {policy.policy_id}", unit="decision", disable=not progress):
        obs, mask = cohort.observe(), sim.action_mask(cohort.state)
        probs = policy.action_probs(obs, mask)
        actions, propensity = choose_actions(probs, deterministic=deterministic, rng=rng)
        decision = Decision(step, cohort.state, obs, mask, probs, actions, propensity)
        if before_step is not None:
            before_step(decision)
        cohort.state, outcome = sim.advance(cohort.traits, cohort.state, actions, on_day=cohort.on_day)
        yield decision, outcome

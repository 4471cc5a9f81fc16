"""A per-action outcome model fitted on randomised logs (a T-learner), and the policy that maximises it.

Customers live one decision period under :class:`~offerpilot.envs.policy.UniformRandomPolicy`; every
decision of a customer alive at the time becomes a row ``(x, a, y)`` with ``y`` the customer's margin over the
next ``horizon_steps`` decision steps. Because the logging policy is uniform over the legal actions, one
regressor per action, ``mu_a(x) ~ E[y | x, a]``, estimates each action's expected outcome without confounding
by the marketer's targeting (Kuenzel et al., 2019, "Metalearners for estimating heterogeneous treatment effects
using machine learning", PNAS: the T-learner). ``mu_a(x) - mu_none(x)`` is offer ``a``'s uplift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.envs.rollout import Cohort, rollout
from offerpilot.envs.simulator import PopulationSimulator, StepOutcome
from offerpilot.errors import InputError


@dataclass(frozen=True)
class RandomisedLogs:
    """Decisions of alive customers under uniform-random actions, with their outcomes. ``m`` rows."""

    obs: np.ndarray  # float32 (m, n_features): what the policy saw
    actions: np.ndarray  # int64 (m,): the action applied
    outcomes: np.ndarray  # float64 (m,): undiscounted margin over the next horizon_steps decision steps
    step: np.ndarray  # int64 (m,): decision step of the row (0-based)
    customer: np.ndarray  # int64 (m,): row of the customer in the cohort
    horizon_steps: int


def step_margin(sim: PopulationSimulator, out: StepOutcome) -> np.ndarray:
    """Undiscounted margin (n,) float64 of one decision step:
    ``gross_margin_rate * list_value - discount - send_cost`` with ``list_value = revenue + discount``."""
    margin = sim.config.objective.margin(out.revenue + out.discount, out.discount, out.send_cost)
    return margin.astype(np.float64)


def collect_randomised_logs(sim: PopulationSimulator, n_customers: int, seed: int, horizon_steps: int) -> RandomisedLogs:
    """Run ``n_customers`` fresh customers (seeded by ``seed``) through one decision period under uniform-random
    legal actions and log each alive customer's decisions with ``y_t = sum_{k=t}^{t+h-1} margin_k``.

    ``margin_k`` is the undiscounted margin of step ``k`` (:func:`step_margin`), steps after ``t`` under the same
    uniform-random policy; a customer who drops out during the horizon buys nothing after that (but messages sent
    to them still cost, as they do to a shop that cannot see the dropout). Customers dead before a decision give no row for it, and decisions
    whose horizon runs past the period's last step (``t + h > n_decisions``) are dropped, not truncated.
    """
    n_decisions = sim.config.n_decisions
    if not 1 <= horizon_steps <= n_decisions:
        raise InputError(f"horizon_steps must be in [1, {n_decisions}] (the period's decision steps), got {horizon_steps}")
    rng = np.random.default_rng(seed)
    cohort = Cohort.new(sim, n_customers, rng)
    margins = np.zeros((n_customers, n_decisions), np.float64)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (customers, obs, actions) per step
    for decision, out in rollout(cohort, UniformRandomPolicy(), rng):
        t = decision.step
        margins[:, t] = step_margin(sim, out)
        if t + horizon_steps <= n_decisions:
            alive = np.flatnonzero(decision.state.alive)
            rows.append((alive, decision.obs[alive], out.action[alive].astype(np.int64)))
    # ahead[i, t] = margins[i, t] + ... + margins[i, t + h - 1]
    cumulative = np.concatenate([np.zeros((n_customers, 1)), np.cumsum(margins, axis=1)], axis=1)
    ahead = cumulative[:, horizon_steps:] - cumulative[:, :-horizon_steps]
    step = np.concatenate([np.full(c.size, t, np.int64) for t, (c, _, _) in enumerate(rows)])
    customers = np.concatenate([c for c, _, _ in rows])
    return RandomisedLogs(
        obs=np.concatenate([o for _, o, _ in rows]).astype(np.float32, copy=False),
        actions=np.concatenate([a for _, _, a in rows]),
        outcomes=ahead[customers, step],
        step=step,
        customer=customers,
        horizon_steps=horizon_steps,
    )


@dataclass(frozen=True)
class RewardModel:
    """``mu_a(x)``: one gradient-boosted regressor per action, fitted on the rows that took that action.

    Build it with :meth:`fit`. An action absent from the logs has no regressor and predicts NaN.
    """

    regressors: tuple[Any, ...]  # HistGradientBoostingRegressor | None per action
    n_features: int

    @property
    def n_actions(self) -> int:
        return len(self.regressors)

    @classmethod
    def fit(
        cls,
        obs: np.ndarray,
        actions: np.ndarray,
        outcomes: np.ndarray,
        n_actions: int,
        seed: int = 0,
        max_iter: int = 100,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 1000,
        learning_rate: float = 0.05,
    ) -> RewardModel:
        """Fit ``mu_a`` on the rows with ``actions == a`` for each of ``n_actions`` actions.

        ``obs`` (m, n_features), ``actions`` (m,) int, ``outcomes`` (m,) float. The boosting settings are modest
        and heavily regularised (big leaves, small steps: per-customer margins are heavy-tailed, and an argmax over
        noisy uplifts sends offers on noise); no early stopping, so a fit is deterministic given ``seed`` and takes
        seconds on 200k rows.
        """
        from sklearn.ensemble import HistGradientBoostingRegressor

        obs = np.asarray(obs)
        actions = np.asarray(actions)
        outcomes = np.asarray(outcomes, np.float64)
        if obs.ndim != 2 or not obs.shape[0] == actions.shape[0] == outcomes.shape[0]:
            raise ValueError(f"obs (m, n_features), actions (m,) and outcomes (m,) must agree, got {obs.shape}, {actions.shape}, {outcomes.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
            raise ValueError(f"actions must be in [0, {n_actions}), got range [{actions.min()}, {actions.max()}]")
        regressors = []
        for a in range(n_actions):
            rows = actions == a
            if not rows.any():
                regressors.append(None)
                continue
            regressor = HistGradientBoostingRegressor(
                max_iter=max_iter,
                max_leaf_nodes=max_leaf_nodes,
                min_samples_leaf=min_samples_leaf,
                learning_rate=learning_rate,
                early_stopping=False,
                random_state=seed,
            )
            regressors.append(regressor.fit(obs[rows], outcomes[rows]))
        return cls(tuple(regressors), obs.shape[1])

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Expected outcome of each action (n, n_actions) float64 for observations (n, n_features)."""
        if obs.ndim != 2 or obs.shape[1] != self.n_features:
            raise ValueError(f"the model was fitted on {self.n_features} features, got obs of shape {obs.shape}")
        pred = np.full((obs.shape[0], self.n_actions), np.nan)
        for a, regressor in enumerate(self.regressors):  # a loop over actions, not customers
            if regressor is not None and obs.shape[0]:
                pred[:, a] = regressor.predict(obs)
        return pred

    def uplift(self, obs: np.ndarray) -> np.ndarray:
        """``mu_a(x) - mu_none(x)`` (n, n_actions) float64: each action's predicted gain over sending nothing."""
        pred = self.predict(obs)
        return pred - pred[:, :1]


@dataclass(frozen=True)
class RewardModelPolicy:
    """Greedy on a reward model: each row gets the legal action with the highest predicted outcome.

    ``argmax_a mu_a(x)`` over legal ``a`` equals sending the offer with the highest positive uplift
    ``mu_a(x) - mu_none(x)``, else nothing; ties go to the lowest action id (so to ``none``), and actions the
    model cannot score (NaN) are never chosen.
    """

    model: RewardModel
    policy_id: str = "reward_model"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        pred = self.model.predict(obs)
        scores = np.where(mask & ~np.isnan(pred), pred, -np.inf)
        scores[:, 0] = np.nan_to_num(pred[:, 0], nan=0.0)  # 'none' is always legal and always possible
        chosen = scores.argmax(axis=1)  # first maximum: the lowest action id
        probs = np.zeros(mask.shape, np.float64)
        probs[np.arange(mask.shape[0]), chosen] = 1.0
        return probs

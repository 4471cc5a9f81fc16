"""Fitted-Q evaluation (FQE; Le, Voloshin & Yue 2019, "Batch policy learning under constraints"):
the target policy's action-value function regressed from logged trajectories.

Starting from ``Q_0 = 0``, each iteration k = 1..K fits a regressor on ``[features_it, one_hot(a_it)]``
over the real steps to the targets

    y_it = r_it + gamma * sum_a' pi(a' | s_{i,t+1}) Q_{k-1}(s_{i,t+1}, a')     (t + 1 a real step)
    y_it = r_it                                                           (the trajectory's last step)

so a trajectory's end is absorbing with value 0, as in ``sequential``. For a finite horizon H the
backups are exact after K = H iterations when the regressor can represent Q; Q depends on the time
step then, so the time index belongs among the features the caller passes. The value estimate is
``V_FQE = (1/n) sum_i sum_a pi(a | s_i0) Q_K(s_i0, a)``; ``q_and_v`` gives the inputs WDR needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError

from offerpilot.errors import InputError
from offerpilot.ope.bootstrap import Interval, bootstrap_interval
from offerpilot.ope.checks import as_actions, as_float_array, as_mask, check_distributions, check_finite
from offerpilot.ope.design import predict_all_actions, state_action_design


@dataclass(eq=False)
class FittedQEvaluation:
    """Fitted-Q evaluation of a target policy; ``fit`` sets ``model_`` (the last Q regressor)."""

    n_actions: int
    """Number of actions."""
    gamma: float
    """Discount in [0, 1] (1 when rewards are already discounted, as offerpilot's per-step objective is)."""
    n_iterations: int
    """Number of fitted backups K, >= 1; use the horizon for finite-horizon problems."""
    estimator: RegressorMixin | None = None
    """Any scikit-learn regressor (cloned per iteration); None: a small HistGradientBoostingRegressor."""
    name: str = "fqe"

    def __post_init__(self) -> None:
        if self.n_actions < 1:
            raise InputError(f"n_actions must be >= 1, got {self.n_actions}")
        if not 0 <= self.gamma <= 1:
            raise InputError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.n_iterations < 1:
            raise InputError(f"n_iterations must be >= 1, got {self.n_iterations}")

    def _regressor(self) -> RegressorMixin:
        if self.estimator is not None:
            return clone(self.estimator)
        return HistGradientBoostingRegressor(
            max_iter=40, learning_rate=0.2, max_leaf_nodes=15, early_stopping=False, random_state=0
        )

    def _states(self, features: object, target_probs: object, mask: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated features (n, horizon, d), target_probs (n, horizon, n_actions) and mask (n, horizon)."""
        features = as_float_array("features", features, ndim=3)
        n, horizon = features.shape[:2]
        if n * horizon == 0:
            raise ValueError(f"no trajectories (features has shape {features.shape})")
        mask = as_mask(mask, (n, horizon))
        target_probs = as_float_array("target_probs", target_probs, (n, horizon, self.n_actions))
        check_finite("features", features, mask)
        check_distributions("target_probs", target_probs, mask)
        return features, target_probs, mask

    def fit(self, features: object, action: object, reward: object, mask: object, target_probs: object) -> FittedQEvaluation:
        """Fit Q of the target policy.

        :param features: (n, horizon, d) float, the state at each step (include the time index).
        :param action: (n, horizon) int in [0, n_actions) on real steps.
        :param reward: (n, horizon) float.
        :param mask: (n, horizon) bool, True on real steps.
        :param target_probs: (n, horizon, n_actions) float, pi(. | s_it), rows summing to 1 on real steps.
        """
        features, target_probs, mask = self._states(features, target_probs, mask)
        n, horizon, d = features.shape
        action = as_actions("action", action, (n, horizon), self.n_actions, mask)
        reward = as_float_array("reward", reward, (n, horizon))
        check_finite("reward", reward, mask)
        states = features[mask]
        design = state_action_design(states, action[mask], self.n_actions)
        # Real steps whose successor is real, and that successor's row among the real steps.
        has_next = np.zeros((n, horizon), bool)
        has_next[:, :-1] = mask[:, 1:]
        row = np.cumsum(mask.ravel()).reshape(n, horizon) - 1
        next_rows = row[:, 1:][has_next[:, :-1]]
        has_next_real = has_next[mask]
        next_probs = target_probs[mask][next_rows]
        model = None
        for _ in range(self.n_iterations):
            target = reward[mask]
            if model is not None:
                next_q = predict_all_actions(model, states[next_rows], self.n_actions, where=next_probs > 0)
                target[has_next_real] += self.gamma * (next_probs * next_q).sum(axis=1)
            model = self._regressor().fit(design, target)
        self.model_ = model
        return self

    def predict(self, features: object) -> np.ndarray:
        """Q_hat at every action: features (..., d) -> (..., n_actions) float64."""
        if not hasattr(self, "model_"):
            raise NotFittedError("FittedQEvaluation is not fitted; call fit first")
        features = np.asarray(features, np.float64)
        flat = features.reshape(-1, features.shape[-1])
        return predict_all_actions(self.model_, flat, self.n_actions).reshape(*features.shape[:-1], self.n_actions)

    def q_and_v(self, features: object, action: object, target_probs: object, mask: object) -> tuple[np.ndarray, np.ndarray]:
        """``q_hat`` = Q_hat(s_it, a_it) and ``v_hat`` = sum_a pi(a | s_it) Q_hat(s_it, a), each
        (n, horizon) float64 and 0 on padding, for ``WeightedDoublyRobust``."""
        features, target_probs, mask = self._states(features, target_probs, mask)
        action = as_actions("action", action, mask.shape, self.n_actions, mask)
        q = np.zeros((*mask.shape, self.n_actions))
        q[mask] = self.predict(features[mask])
        q_hat = np.take_along_axis(q, action[..., None], axis=2)[..., 0]
        return np.where(mask, q_hat, 0.0), np.where(mask, (target_probs * q).sum(axis=2), 0.0)

    def estimate_trajectory_values(self, features: object, target_probs: object, mask: object) -> np.ndarray:
        """Per-trajectory ``sum_a pi(a | s_i0) Q_hat(s_i0, a)`` (n,) float64 (0 for an empty trajectory)."""
        features, target_probs, mask = self._states(features, target_probs, mask)
        started = mask[:, 0]
        values = np.zeros(mask.shape[0])
        values[started] = (target_probs[started, 0] * self.predict(features[started, 0])).sum(axis=1)
        return values

    def estimate(self, features: object, target_probs: object, mask: object) -> float:
        """V_FQE, the mean of ``estimate_trajectory_values``."""
        return float(self.estimate_trajectory_values(features, target_probs, mask).mean())

    def estimate_interval(
        self,
        features: object,
        target_probs: object,
        mask: object,
        *,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        random_state: int | np.random.Generator | None = 0,
    ) -> Interval:
        """V_FQE with a percentile-bootstrap interval over trajectories; the fitted Q is held fixed, so the
        interval leaves out the model's own estimation error."""
        values = self.estimate_trajectory_values(features, target_probs, mask)[:, None]
        return bootstrap_interval(values, np.ones_like(values), alpha, n_bootstrap, random_state, method="percentile")

"""Cross-fitted reward model q_hat(x, a) for the direct method and the doubly robust family.

Decisions are split into ``n_folds`` folds; the prediction for a decision in fold k comes from a
regressor fitted on the other folds only (cross-fitting, Chernozhukov et al. 2018, "Double/debiased
machine learning"), so a flexible model's overfitting to a decision's own reward cannot leak into
that decision's DR correction ``r_i - q_hat(x_i, a_i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor

from offerpilot.errors import InputError
from offerpilot.ope.checks import as_actions, as_float_array, check_finite
from offerpilot.ope.design import predict_all_actions, state_action_design


@dataclass(frozen=True)
class CrossFittedRewardModel:
    """Cross-fitted regression of reward on ``[features, one_hot(action)]``."""

    n_actions: int
    """Number of actions; predictions have this many columns."""
    n_folds: int = 2
    """Number of folds, >= 2."""
    estimator: RegressorMixin | None = None
    """Any scikit-learn regressor (cloned per fold); None: a small HistGradientBoostingRegressor."""
    random_state: int = 0
    """Seeds the fold assignment and the default regressor."""

    def __post_init__(self) -> None:
        if self.n_actions < 1:
            raise InputError(f"n_actions must be >= 1, got {self.n_actions}")
        if self.n_folds < 2:
            raise InputError(f"n_folds must be >= 2, got {self.n_folds}")

    def folds(self, n: int) -> np.ndarray:
        """Fold of each of n decisions (n,) int64: a seeded shuffle of near-equal folds."""
        if n < self.n_folds:
            raise InputError(f"need at least n_folds={self.n_folds} decisions, got {n}")
        fold = np.empty(n, np.int64)
        fold[np.random.default_rng(self.random_state).permutation(n)] = np.arange(n) % self.n_folds
        return fold

    def _regressor(self) -> RegressorMixin:
        if self.estimator is not None:
            return clone(self.estimator)
        return HistGradientBoostingRegressor(
            max_iter=100, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False, random_state=self.random_state
        )

    def fit_predict(self, features: object, action: object, reward: object) -> np.ndarray:
        """Out-of-fold predictions ``estimated_rewards`` (n, n_actions) float64.

        :param features: (n, d) float, the context of each decision.
        :param action: (n,) int in [0, n_actions).
        :param reward: (n,) float.
        """
        features = as_float_array("features", features, ndim=2)
        n = features.shape[0]
        action = as_actions("action", action, (n,), self.n_actions)
        reward = as_float_array("reward", reward, (n,))
        check_finite("features", features)
        check_finite("reward", reward)
        fold = self.folds(n)
        design = state_action_design(features, action, self.n_actions)
        estimated = np.empty((n, self.n_actions))
        for k in range(self.n_folds):
            held_out = fold == k
            model = self._regressor().fit(design[~held_out], reward[~held_out])
            estimated[held_out] = predict_all_actions(model, features[held_out], self.n_actions)
        return estimated

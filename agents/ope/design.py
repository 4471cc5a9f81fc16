"""Regression design matrices ``[features, one_hot(action)]`` shared by reward models and fitted-Q evaluation."""

from __future__ import annotations

import numpy as np


def state_action_design(features: np.ndarray, action: np.ndarray, n_actions: int) -> np.ndarray:
    """``[features, one_hot(action)]`` (n, d + n_actions) float64 from features (n, d) and action (n,) int."""
    return np.hstack([features, np.eye(n_actions)[action]])


def predict_all_actions(model: object, features: np.ndarray, n_actions: int) -> np.ndarray:
    """``model.predict`` at every action for every row of features (n, d): (n, n_actions) float64."""
    n = features.shape[0]
    design = np.hstack([np.repeat(features, n_actions, axis=0), np.tile(np.eye(n_actions), (n, 1))])
    return np.asarray(model.predict(design), np.float64).reshape(n, n_actions)

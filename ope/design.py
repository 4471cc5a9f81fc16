"""Regression design matrices ``[features, one_hot(action)]`` shared by reward models and fitted-Q evaluation, and
the matrix of a log's own context columns."""

from __future__ import annotations

import numpy as np
import pandas as pd


def state_action_design(features: np.ndarray, action: np.ndarray, n_actions: int) -> np.ndarray:
    """``[features, one_hot(action)]`` (n, d + n_actions) float64 from features (n, d) and action (n,) int."""
    return np.hstack([features, np.eye(n_actions)[action]])


def predict_all_actions(model: object, features: np.ndarray, n_actions: int, where: np.ndarray | None = None) -> np.ndarray:
    """``model.predict`` at every action for every row of features (n, d): (n, n_actions) float64.

    With ``where`` (n, n_actions) bool, only those state-action pairs are predicted (the rest are 0):
    an expectation under a policy needs only the actions it gives probability to.
    """
    n = features.shape[0]
    rows, actions = np.nonzero(np.ones((n, n_actions), bool) if where is None else where)
    out = np.zeros((n, n_actions))
    if rows.size:
        out[rows, actions] = model.predict(state_action_design(features[rows], actions, n_actions))
    return out


def context_matrix(table: pd.DataFrame, columns: list[str], categorical: tuple[str, ...] = ()) -> np.ndarray:
    """A log's context columns as a design matrix (n, k) float32: numbers as they are, anything else (text ids,
    hashed features) and the ``categorical`` columns (a slot numbered 1, 2, 3) one column per value seen (one-hot,
    values in sorted order)."""
    parts = [np.zeros((len(table), 0), np.float32)]
    for name in columns:
        values = table[name]
        if name not in categorical and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            parts.append(values.to_numpy(np.float32)[:, None])
        else:
            codes, _ = pd.factorize(values.astype(str), sort=True)
            parts.append(np.eye(codes.max() + 1, dtype=np.float32)[codes])
    return np.hstack(parts)

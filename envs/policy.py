"""The one interface every policy meets: trained, baseline, oracle or logging policy.

Off-policy evaluation needs the full action distribution, so ``action_probs`` is the primitive and
``act`` samples from it (or takes its mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Maps observations (n, n_features) float32 and legal-action masks (n, n_actions) bool to
    action probabilities (n, n_actions) float64 whose rows sum to 1 and are 0 on illegal actions."""

    policy_id: str

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def act(
    policy: Policy,
    obs: np.ndarray,
    mask: np.ndarray,
    *,
    deterministic: bool = False,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose an action per row; returns ``(actions (n,) int64, propensities (n,) float64)``."""
    return choose_actions(policy.action_probs(obs, mask), deterministic=deterministic, rng=rng)


def choose_actions(probs: np.ndarray, *, deterministic: bool = False, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mode of each row of ``probs`` with ``deterministic``, else a draw from it (inverse CDF on one uniform per
    row, vectorised and seeded by ``rng``); returns ``(actions (n,) int64, their probabilities (n,))``."""
    if deterministic:
        actions = probs.argmax(axis=1)
        return actions, probs[np.arange(probs.shape[0]), actions]
    if rng is None:
        raise ValueError("sampling needs an rng (or pass deterministic=True)")
    return sample_actions(probs, rng)


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One action per row of ``probs`` (n, n_actions) by inverse CDF on one uniform per row;
    returns ``(actions (n,) int64, their probabilities (n,))``. A zero-probability action is never drawn."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
    actions = np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1).astype(np.int64)
    return actions, probs[np.arange(probs.shape[0]), actions]


def uniform_over(mask: np.ndarray) -> np.ndarray:
    """Equal probability on each legal action of every row of ``mask``."""
    m = mask.astype(np.float64)
    return m / m.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class UniformRandomPolicy:
    """Each legal action with equal probability: the ideal logging policy for off-policy evaluation."""

    policy_id: str = "uniform"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return uniform_over(mask)

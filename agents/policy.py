"""The one interface every policy meets: trained, baseline, oracle or logging policy.

Off-policy evaluation needs the full action distribution, so ``action_probs`` is the primitive and
``act`` samples from it (or takes its mode).
"""

from __future__ import annotations

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
    """Choose an action per row; returns ``(actions (n,) int64, propensities (n,) float64)``.

    Sampling is inverse-CDF on one uniform per row, so it is vectorised and seeded by ``rng``.
    """
    probs = policy.action_probs(obs, mask)
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

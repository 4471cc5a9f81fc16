"""Simple policies: what shops do without learning, and the logging policies of simulated logs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerpilot.catalog import OfferCatalog


def _uniform_over(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.float64)
    return m / m.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class NoOfferPolicy:
    """Never sends anything."""

    policy_id: str = "no_offer"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        probs = np.zeros(mask.shape, np.float64)
        probs[:, 0] = 1.0
        return probs


@dataclass(frozen=True)
class UniformRandomPolicy:
    """Each legal action with equal probability: the ideal logging policy for off-policy evaluation."""

    policy_id: str = "uniform"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _uniform_over(mask)


@dataclass(frozen=True)
class RecencyRulePolicy:
    """A marketer's rule: send ``offer`` to customers whose last purchase is at least
    ``min_days_since_purchase`` days old (when legal), else nothing.

    Reads the raw observer's ``log_recency`` feature (``log1p(days) / log(366)``).
    """

    catalog: OfferCatalog
    offer: str = "pct10"
    min_days_since_purchase: int = 60
    recency_column: int = 1
    policy_id: str = "recency_rule"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        days = np.expm1(obs[:, self.recency_column].astype(np.float64) * np.log(366.0))
        target = self.catalog.index(self.offer)
        send = (days >= self.min_days_since_purchase - 0.5) & mask[:, target]
        probs = np.zeros(mask.shape, np.float64)
        probs[:, 0] = ~send
        probs[:, target] = send
        return probs


@dataclass(frozen=True)
class EpsilonGreedyPolicy:
    """With probability ``1 - epsilon`` the base policy's choice, else a uniformly random legal action.

    ``pi(a|x) = (1 - epsilon) * base(a|x) + epsilon * mask(a|x) / n_legal(x)``: every legal action keeps
    probability at least ``epsilon / n_actions``, which off-policy evaluation needs.
    """

    base: RecencyRulePolicy | NoOfferPolicy
    epsilon: float = 0.2
    policy_id: str = "epsilon_greedy"

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1], got {self.epsilon}")

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (1.0 - self.epsilon) * self.base.action_probs(obs, mask) + self.epsilon * _uniform_over(mask)


BASELINES = ("no_offer", "uniform", "recency_rule", "epsilon_greedy")
"""Baseline policies available by name (``make_baseline``)."""


def make_baseline(name: str, catalog: OfferCatalog) -> NoOfferPolicy | UniformRandomPolicy | RecencyRulePolicy | EpsilonGreedyPolicy:
    """A baseline policy by name, with its default parameters."""
    if name == "no_offer":
        return NoOfferPolicy()
    if name == "uniform":
        return UniformRandomPolicy()
    if name == "recency_rule":
        return RecencyRulePolicy(catalog)
    if name == "epsilon_greedy":
        return EpsilonGreedyPolicy(RecencyRulePolicy(catalog))
    raise ValueError(f"unknown baseline {name!r}; choose one of {list(BASELINES)}")

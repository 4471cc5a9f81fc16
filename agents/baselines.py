"""Simple policies: what shops do without learning, and the logging policies of simulated logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offerpilot.agents.uplift_model import RewardModel, RewardModelPolicy, collect_randomised_logs
from offerpilot.catalog import OFFER_KINDS, OfferCatalog
from offerpilot.envs.observers import RawFeatureObserver
from offerpilot.envs.policy import UniformRandomPolicy, uniform_over
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.errors import InputError


@dataclass(frozen=True)
class NoOfferPolicy:
    """Never sends anything."""

    policy_id: str = "no_offer"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        probs = np.zeros(mask.shape, np.float64)
        probs[:, 0] = 1.0
        return probs


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
            raise InputError(f"epsilon must be in (0, 1], got {self.epsilon}")

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (1.0 - self.epsilon) * self.base.action_probs(obs, mask) + self.epsilon * uniform_over(mask)


def _column(feature_names: Sequence[str], name: str, policy: str) -> int:
    """Index of feature ``name``; a ValueError naming it (and what the policy needs it for) if absent."""
    try:
        return list(feature_names).index(name)
    except ValueError:
        raise InputError(f"{policy} needs the observation feature {name!r}, which is not among the {len(feature_names)} feature_names") from None


def _one_hot(chosen: np.ndarray, n_actions: int) -> np.ndarray:
    """(n, n_actions) float64 with a 1 at each row's ``chosen`` action (int, (n,))."""
    probs = np.zeros((chosen.shape[0], n_actions), np.float64)
    probs[np.arange(chosen.shape[0]), chosen] = 1.0
    return probs


@dataclass(frozen=True)
class FixedSchedulePolicy:
    """A calendar campaign: send ``offer`` whenever it is legal and at least ``every_days`` days passed since the
    customer's last message (of any kind), else nothing.

    Reads the ``log_days_since_message`` feature (``log1p(days) / log(366)``), found by name in ``feature_names``.
    """

    catalog: OfferCatalog
    feature_names: Sequence[str] = RawFeatureObserver.feature_names
    offer: str = "pct10"
    every_days: int = 28
    policy_id: str = "fixed_schedule"
    _column: int = field(init=False, repr=False, compare=False)
    _target: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.every_days < 1:
            raise InputError(f"every_days must be >= 1, got {self.every_days}")
        object.__setattr__(self, "_column", _column(self.feature_names, "log_days_since_message", type(self).__name__))
        object.__setattr__(self, "_target", self.catalog.index(self.offer))

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        days = np.expm1(obs[:, self._column].astype(np.float64) * np.log(366.0))
        # Half a day of slack: the feature is float32, and days are whole numbers.
        send = (days >= self.every_days - 0.5) & mask[:, self._target]
        return _one_hot(np.where(send, self._target, 0), mask.shape[1])


@dataclass(frozen=True)
class ChurnThresholdPolicy:
    """The churn-prediction playbook: give customers whose predicted churn probability exceeds ``threshold`` the
    best discount, everyone else nothing.

    The churn probability is the ``churn_probability`` feature the encoder observer appends. With ``offer=None``
    the discount is the deepest *legal* ``percent_off`` offer of each row (so a row where the deepest is forbidden
    gets the next deepest, and one where none is legal gets nothing); with an offer id, that offer where legal.
    """

    catalog: OfferCatalog
    feature_names: Sequence[str]
    threshold: float = 0.5
    offer: str | None = None
    policy_id: str = "churn_threshold"
    _column: int = field(init=False, repr=False, compare=False)
    _candidates: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise InputError(f"threshold must be in [0, 1], got {self.threshold}")
        object.__setattr__(self, "_column", _column(self.feature_names, "churn_probability", type(self).__name__))
        if self.offer is not None:
            candidates = np.array([self.catalog.index(self.offer)])
        else:
            percent = np.flatnonzero(self.catalog.kind_code == OFFER_KINDS.index("percent_off"))
            if percent.size == 0:
                raise InputError("ChurnThresholdPolicy with offer=None needs a percent_off offer in the catalog")
            # Deepest first; a stable sort keeps the lower action id first among equal depths.
            candidates = percent[np.argsort(-self.catalog.value[percent], kind="stable")]
        object.__setattr__(self, "_candidates", candidates)

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        legal = mask[:, self._candidates]  # (n, n_candidates), deepest first
        best = self._candidates[legal.argmax(axis=1)]  # the first legal one (argmax of bool)
        send = (obs[:, self._column] > self.threshold) & legal.any(axis=1)
        return _one_hot(np.where(send, best, 0), mask.shape[1])


BASELINES = ("no_offer", "uniform", "recency_rule", "epsilon_greedy", "fixed_schedule")
"""Baselines that ``make_baseline(name, catalog)`` builds on the raw observer's features."""

ENCODER_BASELINES = ("churn_threshold",)
"""Baselines that need encoder features (``churn_probability``): pass the encoder observer's ``feature_names``."""

FITTED_BASELINES = ("uplift", "myopic")
"""Baselines fitted to randomised simulator logs: build them with :func:`fit_reward_model_policy`."""

COMPARED_BASELINES = ("no_offer", "uniform", "recency_rule", "fixed_schedule", "churn_threshold", "uplift", "myopic")
"""The baselines ``offerpilot evaluate`` tunes and compares by default."""

REWARD_MODEL_HORIZON_DAYS = {"uplift": 30, "myopic": None}
"""Days of margin each fitted baseline maximises; ``None``: one decision window."""


def make_baseline(
    name: str,
    catalog: OfferCatalog,
    feature_names: Sequence[str] = RawFeatureObserver.feature_names,
    **params: Any,
) -> NoOfferPolicy | UniformRandomPolicy | RecencyRulePolicy | EpsilonGreedyPolicy | FixedSchedulePolicy | ChurnThresholdPolicy:
    """A baseline policy by name; ``params`` override its defaults (e.g. ``every_days=56``, ``threshold=0.7``).

    ``feature_names`` names the observation columns (default: the raw observer's); only the feature-reading
    baselines use it.
    """
    if name == "no_offer":
        return NoOfferPolicy(**params)
    if name == "uniform":
        return UniformRandomPolicy(**params)
    if name == "recency_rule":
        return RecencyRulePolicy(catalog, **params)
    if name == "epsilon_greedy":
        return EpsilonGreedyPolicy(RecencyRulePolicy(catalog), **params)
    if name == "fixed_schedule":
        return FixedSchedulePolicy(catalog, tuple(feature_names), **params)
    if name == "churn_threshold":
        return ChurnThresholdPolicy(catalog, tuple(feature_names), **params)
    if name in FITTED_BASELINES:
        raise InputError(f"baseline {name!r} is fitted to simulator logs: use fit_reward_model_policy({name!r}, sim, n_customers, seed)")
    raise InputError(f"unknown baseline {name!r}; choose one of {list(BASELINES + ENCODER_BASELINES)}")


def fit_reward_model_policy(
    name: str,
    sim: PopulationSimulator,
    n_customers: int,
    seed: int,
) -> RewardModelPolicy:
    """Fit the ``uplift`` or ``myopic`` baseline on ``n_customers`` randomised customers (seeded by ``seed``).

    Both pick the legal action with the highest predicted margin (a T-learner on uniform-random logs): ``uplift``
    over about 30 days (``ceil(30 / decision_interval_days)`` steps), so an offer goes out only where its
    predicted uplift over sending nothing, net of its discount and send cost, is positive; ``myopic`` over the
    next decision window alone.
    """
    if name not in FITTED_BASELINES:
        raise InputError(f"unknown fitted baseline {name!r}; choose one of {list(FITTED_BASELINES)}")
    days = REWARD_MODEL_HORIZON_DAYS[name]
    interval = sim.config.decision_interval_days
    horizon_steps = 1 if days is None else -(-days // interval)
    logs = collect_randomised_logs(sim, n_customers, seed, horizon_steps)
    model = RewardModel.fit(logs.obs, logs.actions, logs.outcomes, sim.catalog.n_actions, seed)
    return RewardModelPolicy(model, policy_id=name)

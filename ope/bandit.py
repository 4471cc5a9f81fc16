"""Per-decision off-policy estimators: the value of a target policy pi from decisions logged under mu.

Notation, for logged decisions i = 1..n with context x_i, action a_i ~ mu(. | x_i), reward r_i:

- importance weight  ``w_i = pi(a_i | x_i) / mu(a_i | x_i)``  (``action_dist[i, a_i] / pscore[i]``);
- reward model       ``q_i(a) = q_hat(x_i, a)``                (``estimated_rewards[i, a]``);
- its value under pi ``v_i = sum_a pi(a | x_i) q_i(a)``.

Arguments follow Open Bandit Pipeline (Saito et al. 2021): ``reward`` (n,) float, ``action`` (n,) int,
``pscore`` (n,) float in (0, 1], ``action_dist`` (n, n_actions) float with rows summing to 1,
``estimated_rewards`` (n, n_actions) float. Every estimator takes the same arguments, so a list of them
can be run over one batch; the reward model is optional for the pure importance-weighting ones.
Self-normalised estimators divide by the mean weight, so their per-decision contributions are scaled
by it as in OBP; their bootstrap redoes that normalisation in each replicate. Intervals are studentized
bootstrap (bootstrap-t) intervals by default; see :mod:`offerpilot.ope.bootstrap`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from offerpilot.errors import InputError
from offerpilot.ope.bootstrap import Interval, IntervalMethod, bootstrap_interval, ratio_contributions
from offerpilot.ope.checks import (
    as_actions,
    as_float_array,
    check_distributions,
    check_finite,
    check_propensities,
)


class _Logged(NamedTuple):
    """Validated per-decision quantities; ``q_logged`` and ``v`` are None without a reward model."""

    reward: np.ndarray  # (n,) float64, r_i
    weight: np.ndarray  # (n,) float64, w_i
    q_logged: np.ndarray | None  # (n,) float64, q_i(a_i)
    v: np.ndarray | None  # (n,) float64, v_i


def _logged_decisions(
    reward: object,
    action: object,
    pscore: object,
    action_dist: object,
    estimated_rewards: object | None = None,
) -> _Logged:
    """Validate one batch of logged decisions and derive weights and reward-model terms."""
    reward = as_float_array("reward", reward, ndim=1)
    n = reward.shape[0]
    if n == 0:
        raise ValueError("no logged decisions (reward is empty)")
    action_dist = as_float_array("action_dist", action_dist, ndim=2)
    if action_dist.shape[0] != n:
        raise ValueError(f"action_dist has {action_dist.shape[0]} rows, expected {n} (one per decision)")
    n_actions = action_dist.shape[1]
    pscore = as_float_array("pscore", pscore, (n,))
    check_finite("reward", reward)
    action = as_actions("action", action, (n,), n_actions)
    check_propensities("pscore", pscore)
    check_distributions("action_dist", action_dist)
    rows = np.arange(n)
    weight = action_dist[rows, action] / pscore
    if estimated_rewards is None:
        return _Logged(reward, weight, None, None)
    estimated_rewards = as_float_array("estimated_rewards", estimated_rewards, (n, n_actions))
    check_finite("estimated_rewards", estimated_rewards)
    v = (action_dist * estimated_rewards).sum(axis=1)
    return _Logged(reward, weight, estimated_rewards[rows, action], v)


class BanditEstimator(ABC):
    """Shape shared by the per-decision estimators: ``estimate_round_rewards`` is the primitive."""

    name: str
    needs_reward_model: ClassVar[bool] = True

    @abstractmethod
    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        """Numerator and denominator columns (n, m) of ``V = sum_m sum_i N[i, m] / sum_i D[i, m]``."""

    def _validated_terms(
        self, reward: object, action: object, pscore: object, action_dist: object, estimated_rewards: object | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.needs_reward_model and estimated_rewards is None:
            raise ValueError(f"{self.name} needs estimated_rewards (n, n_actions) from a reward model")
        return self._terms(_logged_decisions(reward, action, pscore, action_dist, estimated_rewards))

    def estimate_round_rewards(
        self, reward: object, action: object, pscore: object, action_dist: object, estimated_rewards: object | None = None
    ) -> np.ndarray:
        """Per-decision contributions (n,) float64 whose mean is the estimate."""
        return ratio_contributions(*self._validated_terms(reward, action, pscore, action_dist, estimated_rewards))

    def estimate(
        self, reward: object, action: object, pscore: object, action_dist: object, estimated_rewards: object | None = None
    ) -> float:
        """The estimated policy value: the mean of ``estimate_round_rewards``."""
        return float(self.estimate_round_rewards(reward, action, pscore, action_dist, estimated_rewards).mean())

    def estimate_interval(
        self,
        reward: object,
        action: object,
        pscore: object,
        action_dist: object,
        estimated_rewards: object | None = None,
        *,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        random_state: int | np.random.Generator | None = 0,
        groups: np.ndarray | None = None,
        method: IntervalMethod = "studentized",
    ) -> Interval:
        """The estimate with a (1 - alpha) bootstrap interval over decisions, or over ``groups`` (n,) int
        such as customers, whose decisions are resampled together (the reward model is held fixed).

        ``method="studentized"`` (bootstrap-t with the cluster-robust delta-method standard error) is the
        default: importance-weighted contributions are right-skewed and heavy-tailed, and the percentile
        interval (``method="percentile"``) then misses mostly on the low side; see
        :mod:`offerpilot.ope.bootstrap`."""
        numerator, denominator = self._validated_terms(reward, action, pscore, action_dist, estimated_rewards)
        return bootstrap_interval(numerator, denominator, alpha, n_bootstrap, random_state, groups, method)


def _plain(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Terms of ``sum_k mean(column_k)``."""
    numerator = np.stack(columns, axis=1)
    return numerator, np.ones_like(numerator)


def _self_normalised(baseline: np.ndarray, weighted: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Terms of ``mean(baseline) + sum(weighted) / sum(weight)``."""
    return np.stack([baseline, weighted], axis=1), np.stack([np.ones_like(weight), weight], axis=1)


@dataclass(frozen=True)
class DirectMethod(BanditEstimator):
    """Direct method (Beygelzimer & Langford 2009; Dudík, Langford & Li 2011):

        V_DM = (1/n) sum_i sum_a pi(a | x_i) q_hat(x_i, a).

    Unbiased only if the reward model is; ``reward``, ``action`` and ``pscore`` are validated but unused.
    """

    name: str = "dm"

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        return _plain(d.v)


@dataclass(frozen=True)
class InverseProbabilityWeighting(BanditEstimator):
    """Inverse probability weighting (Horvitz & Thompson 1952; Precup, Sutton & Singh 2000):

        V_IPS = (1/n) sum_i w_i r_i.

    Unbiased when mu > 0 wherever pi > 0; variance grows with the weights.
    """

    name: str = "ips"
    needs_reward_model: ClassVar[bool] = False

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        return _plain(d.weight * d.reward)


@dataclass(frozen=True)
class SelfNormalizedIPS(BanditEstimator):
    """Self-normalised IPS (Swaminathan & Joachims 2015):

        V_SNIPS = sum_i w_i r_i / sum_i w_i.

    Biased but consistent; bounded by the reward range whatever the weights.
    """

    name: str = "snips"
    needs_reward_model: ClassVar[bool] = False

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        return _self_normalised(np.zeros_like(d.weight), d.weight * d.reward, d.weight)


@dataclass(frozen=True)
class DoublyRobust(BanditEstimator):
    """Doubly robust (Dudík, Langford & Li 2011):

        V_DR = (1/n) sum_i [ v_i + w_i (r_i - q_hat(x_i, a_i)) ].

    Unbiased if either the propensities or the reward model are correct.
    """

    name: str = "dr"

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        return _plain(d.v, d.weight * (d.reward - d.q_logged))


@dataclass(frozen=True)
class SelfNormalizedDR(BanditEstimator):
    """Self-normalised doubly robust (as in Open Bandit Pipeline; Kallus & Uehara 2019):

        V_SNDR = (1/n) sum_i v_i + sum_i w_i (r_i - q_hat(x_i, a_i)) / sum_i w_i.
    """

    name: str = "sndr"

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        return _self_normalised(d.v, d.weight * (d.reward - d.q_logged), d.weight)


@dataclass(frozen=True)
class SwitchDoublyRobust(BanditEstimator):
    """Switch doubly robust (Wang, Agarwal & Dudík 2017), in Open Bandit Pipeline's form that needs only
    the logged action's propensity: the DR correction is kept where the weight is at most ``tau`` and
    dropped (leaving the direct method) where it is larger:

        V_switch = (1/n) sum_i [ v_i + 1{w_i <= tau} w_i (r_i - q_hat(x_i, a_i)) ].

    ``tau = inf`` gives DR; ``tau = 0`` gives DM (zero weights contribute nothing either way).
    """

    tau: float
    name: str = "switch-dr"

    def __post_init__(self) -> None:
        if not self.tau >= 0:
            raise InputError(f"tau must be >= 0, got {self.tau}")

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        return _plain(d.v, (d.weight <= self.tau) * d.weight * (d.reward - d.q_logged))


@dataclass(frozen=True)
class DoublyRobustWithShrinkage(BanditEstimator):
    """Doubly robust with optimistic shrinkage (DRos; Su, Dimakopoulou, Krishnamurthy & Dudík 2020):
    the weight is shrunk towards 0 as ``w_hat = lambda w / (w^2 + lambda)``, and

        V_DRos = (1/n) sum_i [ v_i + w_hat_i (r_i - q_hat(x_i, a_i)) ].

    ``lambda_ = 0`` gives DM, ``lambda_ -> inf`` gives DR (``lambda_ = inf`` is accepted and is DR).
    """

    lambda_: float
    name: str = "dr-os"

    def __post_init__(self) -> None:
        if not self.lambda_ >= 0:
            raise InputError(f"lambda_ must be >= 0, got {self.lambda_}")

    def _terms(self, d: _Logged) -> tuple[np.ndarray, np.ndarray]:
        if np.isinf(self.lambda_):
            shrunk = d.weight
        else:
            denominator = d.weight**2 + self.lambda_
            shrunk = np.divide(self.lambda_ * d.weight, denominator, out=np.zeros_like(d.weight), where=denominator > 0)
        return _plain(d.v, shrunk * (d.reward - d.q_logged))

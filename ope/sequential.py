"""Long-horizon off-policy estimators over customers' trajectories of decisions.

Arrays have shape (n, horizon): trajectory i has ``T_i`` real steps, marked by ``mask[i, t]`` (True for
t < T_i, then False for padding). At step t, ``rho_it = pi(a_it | s_it) / mu(a_it | s_it)``
(``target_prob / pscore``) and the cumulative weight is

    w_it = prod_{k <= t} rho_ik,        w_{i,-1} = 1.

A trajectory that has ended sits in an absorbing state that both policies leave with probability 1:
its rewards (and q_hat, v_hat) are 0 and its weight stays at its last value ``w_{i, T_i - 1}``, so the
estimand is ``E_pi[sum_{t < T} gamma^t r_t]`` and padding values are never read. With ``target == logging``
every weight is 1 and all three estimators reduce to the mean discounted return.

Each estimator is ``V = sum_m (sum_i N[i, m]) / (sum_i D[i, m])`` (see ``bootstrap``), so
``estimate_trajectory_values`` returns per-trajectory contributions whose mean is V, and
``estimate_interval`` bootstraps over trajectories, redoing any self-normalisation in each replicate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from offerpilot.errors import InputError
from offerpilot.ope.bootstrap import Interval, bootstrap_interval, ratio_contributions
from offerpilot.ope.checks import (
    as_float_array,
    as_mask,
    check_finite,
    check_probabilities,
    check_propensities,
)


class _Trajectories(NamedTuple):
    """Validated trajectory quantities (n, horizon) float64, zero (weights: frozen) after each end."""

    discounted_reward: np.ndarray  # gamma^t r_it
    weight: np.ndarray  # w_it
    previous_weight: np.ndarray  # w_{i,t-1}
    discounted_q: np.ndarray | None  # gamma^t q_hat(s_it, a_it)
    discounted_v: np.ndarray | None  # gamma^t v_hat(s_it)


def _trajectories(
    gamma: float,
    reward: object,
    pscore: object,
    target_prob: object,
    mask: object,
    q_hat: object | None,
    v_hat: object | None,
) -> _Trajectories:
    reward = as_float_array("reward", reward, ndim=2)
    if reward.size == 0:
        raise ValueError(f"no trajectories (reward has shape {reward.shape})")
    shape = reward.shape
    mask = as_mask(mask, shape)
    pscore = as_float_array("pscore", pscore, shape)
    target_prob = as_float_array("target_prob", target_prob, shape)
    check_finite("reward", reward, mask)
    check_propensities("pscore", pscore, mask)
    check_probabilities("target_prob", target_prob, mask)
    discount = gamma ** np.arange(shape[1])
    weight = np.cumprod(np.where(mask, target_prob / np.where(mask, pscore, 1.0), 1.0), axis=1)
    previous_weight = np.hstack([np.ones((shape[0], 1)), weight[:, :-1]])
    discounted = []
    for name, values in (("q_hat", q_hat), ("v_hat", v_hat)):
        if values is None:
            discounted.append(None)
            continue
        values = as_float_array(name, values, shape)
        check_finite(name, values, mask)
        discounted.append(np.where(mask, values, 0.0) * discount)
    return _Trajectories(np.where(mask, reward, 0.0) * discount, weight, previous_weight, *discounted)


class TrajectoryEstimator(ABC):
    """Shape shared by the trajectory estimators: ``estimate_trajectory_values`` is the primitive."""

    name: str
    gamma: float
    needs_value_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not 0 <= self.gamma <= 1:
            raise InputError(f"gamma must be in [0, 1], got {self.gamma}")

    @abstractmethod
    def _terms(self, d: _Trajectories) -> tuple[np.ndarray, np.ndarray]:
        """Numerator and denominator columns (n, m) of ``V = sum_m sum_i N[i, m] / sum_i D[i, m]``."""

    def _validated_terms(
        self, reward: object, pscore: object, target_prob: object, mask: object, q_hat: object | None, v_hat: object | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.needs_value_model and (q_hat is None or v_hat is None):
            raise ValueError(f"{self.name} needs q_hat and v_hat (n, horizon), e.g. from FittedQEvaluation.q_and_v")
        return self._terms(_trajectories(self.gamma, reward, pscore, target_prob, mask, q_hat, v_hat))

    def estimate_trajectory_values(
        self,
        reward: object,
        pscore: object,
        target_prob: object,
        mask: object,
        q_hat: object | None = None,
        v_hat: object | None = None,
    ) -> np.ndarray:
        """Per-trajectory contributions (n,) float64 whose mean is the estimate.

        :param reward: (n, horizon) float.
        :param pscore: (n, horizon) float in (0, 1], mu(a_it | s_it).
        :param target_prob: (n, horizon) float in [0, 1], pi(a_it | s_it).
        :param mask: (n, horizon) bool, True on real steps.
        :param q_hat: (n, horizon) float, Q_hat(s_it, a_it) (WDR only).
        :param v_hat: (n, horizon) float, sum_a pi(a | s_it) Q_hat(s_it, a) (WDR only).
        """
        return ratio_contributions(*self._validated_terms(reward, pscore, target_prob, mask, q_hat, v_hat))

    def estimate(
        self,
        reward: object,
        pscore: object,
        target_prob: object,
        mask: object,
        q_hat: object | None = None,
        v_hat: object | None = None,
    ) -> float:
        """The estimated policy value: the mean of ``estimate_trajectory_values``."""
        return float(self.estimate_trajectory_values(reward, pscore, target_prob, mask, q_hat, v_hat).mean())

    def estimate_interval(
        self,
        reward: object,
        pscore: object,
        target_prob: object,
        mask: object,
        q_hat: object | None = None,
        v_hat: object | None = None,
        *,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        random_state: int | np.random.Generator | None = 0,
    ) -> Interval:
        """The estimate with a (1 - alpha) percentile-bootstrap interval over trajectories (q_hat and
        v_hat are held fixed)."""
        numerator, denominator = self._validated_terms(reward, pscore, target_prob, mask, q_hat, v_hat)
        # Percentile, not studentized: the trajectory estimators have not been validated with studentized
        # intervals, and with degenerate trajectory weights a replicate's standard error can be near 0.
        return bootstrap_interval(numerator, denominator, alpha, n_bootstrap, random_state, method="percentile")


@dataclass(frozen=True)
class PerDecisionIS(TrajectoryEstimator):
    """Per-decision importance sampling (PDIS; Precup, Sutton & Singh 2000):

        V_PDIS = (1/n) sum_i sum_t gamma^t w_it r_it.

    Unbiased when mu > 0 wherever pi > 0; a reward is weighted only by the decisions before it.
    """

    gamma: float = 1.0
    name: str = "pdis"

    def _terms(self, d: _Trajectories) -> tuple[np.ndarray, np.ndarray]:
        numerator = (d.weight * d.discounted_reward).sum(axis=1, keepdims=True)
        return numerator, np.ones_like(numerator)


@dataclass(frozen=True)
class WeightedPDIS(TrajectoryEstimator):
    """Weighted (self-normalised per step) PDIS (Precup, Sutton & Singh 2000; Thomas 2015):

        V_WPDIS = sum_t gamma^t (sum_i w_it r_it) / (sum_i w_it).

    Biased but consistent, and each step's term is bounded by that step's reward range.
    """

    gamma: float = 1.0
    name: str = "wpdis"

    def _terms(self, d: _Trajectories) -> tuple[np.ndarray, np.ndarray]:
        return d.weight * d.discounted_reward, d.weight


@dataclass(frozen=True)
class WeightedDoublyRobust(TrajectoryEstimator):
    """Weighted doubly robust (WDR; Thomas & Brunskill 2016, "Data-efficient off-policy policy
    evaluation for reinforcement learning", eq. 10), with per-step normalised weights
    ``wbar_it = w_it / sum_j w_jt`` and ``wbar_{i,-1} = 1/n``:

        V_WDR = sum_i sum_t gamma^t [ wbar_it (r_it - q_hat(s_it, a_it)) + wbar_{i,t-1} v_hat(s_it) ],

    where ``v_hat(s) = sum_a pi(a | s) q_hat(s, a)``. The t = 0 control-variate term is the direct
    method ``(1/n) sum_i v_hat(s_i0)``; with a perfect model the remaining terms have mean zero.
    """

    gamma: float = 1.0
    name: str = "wdr"
    needs_value_model: ClassVar[bool] = True

    def _terms(self, d: _Trajectories) -> tuple[np.ndarray, np.ndarray]:
        numerator = np.hstack([d.weight * (d.discounted_reward - d.discounted_q), d.previous_weight * d.discounted_v])
        return numerator, np.hstack([d.weight, d.previous_weight])

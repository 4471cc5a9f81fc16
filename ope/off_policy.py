"""One off-policy evaluation run: every estimator on one set of logged decisions, with diagnostics.

Two questions, two families of estimators:

* **per decision** (contextual bandit): the mean reward of one decision window if that decision
  followed the target policy, the rest of the log as it was. DM, IPS, SNIPS, DR, SNDR, switch-DR and
  DRos, with a cross-fitted reward model.
* **per customer** (trajectory): the target policy's objective over a customer's whole decision
  period, the quantity evaluation in simulation reports. PDIS, WPDIS, and WDR with a Q-function from
  fitted-Q evaluation. Long horizons make trajectory importance weights heavy; the diagnostics say
  when there is too little overlap to trust them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from offerpilot.errors import InputError
from offerpilot.ope import (
    CrossFittedRewardModel,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    FittedQEvaluation,
    InverseProbabilityWeighting,
    PerDecisionIS,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
    WeightDiagnostics,
    WeightedDoublyRobust,
    WeightedPDIS,
    weight_diagnostics,
)
from offerpilot.ope.bootstrap import INTERVAL_METHODS
from offerpilot.ope.logged_decisions import LoggedDecisions


@dataclass(frozen=True)
class OPEConfig:
    """How an off-policy evaluation is run."""

    n_bootstrap: int = 1000
    """Bootstrap replicates for every interval."""
    alpha: float = 0.05
    """1 - confidence level of the intervals."""
    n_folds: int = 2
    """Cross-fitting folds of the reward model."""
    switch_tau: float = 10.0
    """switch-DR: importance weights above this fall back to the reward model."""
    shrinkage_lambda: float = 10.0
    """DRos: shrinkage strength (Su et al. 2020)."""
    sequential: bool = True
    """Also run the trajectory estimators (fitted-Q evaluation is the slow part)."""
    fqe_iterations: int | None = None
    """Fitted-Q backups; default: the longest trajectory (exact for a finite horizon)."""
    interval_method: str = "studentized"
    """Intervals of the per-decision estimators: ``"studentized"`` (bootstrap-t with the cluster-robust
    delta-method standard error) or ``"percentile"``. On 250 simulated logs of 2,000 customers under uniform
    logging (scripts/ope_validation.py), DR's and SNIPS's percentile intervals covered 88-90 % and missed on the
    low side 2-5 times as often as on the high side; the studentized ones covered 90-91 % with balanced misses
    (see :mod:`offerpilot.ope.bootstrap`). The trajectory estimators keep percentile intervals."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.interval_method not in INTERVAL_METHODS:
            raise InputError(f"interval_method must be one of {INTERVAL_METHODS}, got {self.interval_method!r}")
        for name, flag, ok, rule in (("n_bootstrap", "--bootstrap", self.n_bootstrap >= 2, ">= 2"), ("alpha", "--alpha", 0 < self.alpha < 1, "in (0, 1)"),
                                     ("n_folds", "--folds", self.n_folds >= 2, ">= 2"), ("switch_tau", "--switch-tau", self.switch_tau > 0, "> 0"),
                                     ("shrinkage_lambda", "--dros-lambda", self.shrinkage_lambda >= 0, ">= 0")):
            if not ok:
                raise InputError(f"{name} ({flag}) must be {rule}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class EstimateRow:
    """One estimator's answer."""

    estimator: str
    scope: str  # "per decision" or "per customer"
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class OPEReport:
    """All estimates, what the logging policy actually earned, and the overlap diagnostics."""

    rows: list[EstimateRow]
    logged_per_decision: float
    logged_per_customer: float
    n_decisions: int
    n_customers: int
    decision_diagnostics: WeightDiagnostics
    trajectory_ess: float | None
    """Effective sample size of the customers' cumulative importance weights."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "estimates": [asdict(r) for r in self.rows],
            "logged_per_decision": self.logged_per_decision,
            "logged_per_customer": self.logged_per_customer,
            "n_decisions": self.n_decisions,
            "n_customers": self.n_customers,
            "decision_diagnostics": asdict(self.decision_diagnostics),
            "trajectory_ess": self.trajectory_ess,
            "warnings": self.warnings,
        }


def evaluate_off_policy(data: LoggedDecisions, target_probs: np.ndarray, config: OPEConfig | None = None) -> OPEReport:
    """Estimate the target policy's value on ``data``.

    :param target_probs: float (n_decisions, n_actions), the target policy at every logged decision.
    """
    config = config or OPEConfig()
    if target_probs.shape != data.legal.shape:
        raise ValueError(f"target_probs has shape {target_probs.shape}, expected {data.legal.shape}")
    interval = {"alpha": config.alpha, "n_bootstrap": config.n_bootstrap, "random_state": config.seed}
    rows: list[EstimateRow] = []

    arrays = dict(reward=data.reward, action=data.action, pscore=data.pscore, action_dist=target_probs)
    model = CrossFittedRewardModel(target_probs.shape[1], n_folds=config.n_folds, random_state=config.seed)
    estimated = model.fit_predict(data.model_features, data.action, data.reward)
    bandit = (
        DirectMethod(),
        InverseProbabilityWeighting(),
        SelfNormalizedIPS(),
        DoublyRobust(),
        SelfNormalizedDR(),
        SwitchDoublyRobust(tau=config.switch_tau),
        DoublyRobustWithShrinkage(lambda_=config.shrinkage_lambda),
    )
    for estimator in bandit:  # a customer's decisions are correlated: resample customers
        ci = estimator.estimate_interval(
            **arrays, estimated_rewards=estimated, groups=data.trajectory, method=config.interval_method, **interval
        )
        rows.append(EstimateRow(estimator.name, "per decision", ci.mean, ci.low, ci.high))
    diagnostics = weight_diagnostics(data.pscore, target_probs, data.action, data.logging_probs)
    warnings = list(diagnostics.warnings)

    trajectory_ess = None
    if config.sequential:
        mask = data.trajectory_mask
        reward = data.as_trajectories(data.reward)
        pscore = data.as_trajectories(data.pscore, fill=1.0)
        target_prob = data.as_trajectories(target_probs[np.arange(data.n_decisions), data.action], fill=1.0)
        for estimator in (PerDecisionIS(), WeightedPDIS()):
            ci = estimator.estimate_interval(reward, pscore, target_prob, mask, **interval)
            rows.append(EstimateRow(estimator.name, "per customer", ci.mean, ci.low, ci.high))
        features = data.as_trajectories(data.model_features)
        action = data.as_trajectories(data.action)
        probs = data.as_trajectories(target_probs, fill=1.0 / target_probs.shape[1])
        fqe = FittedQEvaluation(
            target_probs.shape[1], gamma=1.0, n_iterations=config.fqe_iterations or mask.shape[1]
        ).fit(features, action, reward, mask, probs)
        q_hat, v_hat = fqe.q_and_v(features, action, probs, mask)
        ci = fqe.estimate_interval(features, probs, mask, **interval)
        rows.append(EstimateRow("fqe", "per customer", ci.mean, ci.low, ci.high))
        ci = WeightedDoublyRobust().estimate_interval(reward, pscore, target_prob, mask, q_hat=q_hat, v_hat=v_hat, **interval)
        rows.append(EstimateRow("wdr", "per customer", ci.mean, ci.low, ci.high))
        final_weight = np.where(mask, target_prob / pscore, 1.0).prod(axis=1)
        trajectory_ess = float(final_weight.sum() ** 2 / max((final_weight**2).sum(), 1e-300))
        if trajectory_ess < 0.01 * mask.shape[0]:
            warnings.append(
                f"trajectory importance weights are degenerate (effective sample size {trajectory_ess:.1f} of "
                f"{mask.shape[0]} customers): PDIS and WPDIS rest on a handful of customers, and FQE and WDR on a "
                "fitted Q-function that was biased low in validation at this horizon; rely on the per-decision DR "
                "and SNIPS estimates"
            )

    per_customer = np.bincount(data.trajectory, weights=data.reward)
    return OPEReport(
        rows=rows,
        logged_per_decision=float(data.reward.mean()),
        logged_per_customer=float(per_customer.mean()),
        n_decisions=data.n_decisions,
        n_customers=data.n_trajectories,
        decision_diagnostics=diagnostics,
        trajectory_ess=trajectory_ess,
        warnings=warnings,
    )

"""Policy evaluation in simulation: every policy through the same path, every metric with a CI.

A cohort of held-out customers lives one decision period under the policy; per-customer totals
give the mean and a 95 % normal-approximation confidence interval (the cohort is large, and the
customers are independent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from offerpilot.envs.history import HistoryFeatures
from offerpilot.envs.policy import Policy
from offerpilot.envs.rollout import Cohort, rollout
from offerpilot.envs.simulator import PopulationSimulator

RETENTION_DAYS = (90, 180, 365)
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95 % confidence interval."""

    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> Estimate:
        values = np.asarray(values, np.float64)
        mean = float(values.mean())
        half = Z95 * float(values.std(ddof=1)) / np.sqrt(values.size) if values.size > 1 else float("nan")
        return cls(mean, mean - half, mean + half)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class PolicyEvaluation:
    """Per-customer means over one decision period, each with a 95 % CI."""

    policy_id: str
    n_customers: int
    seed: int
    objective: Estimate  # (1 - lam) * R_short + lam * CLV
    r_short: Estimate  # margin over the first W days
    clv: Estimate  # discounted margin over the horizon
    revenue_short: Estimate  # money paid over the first W days
    revenue: Estimate  # money paid over the horizon, undiscounted
    retention: dict[int, Estimate]  # share still active at day d
    offers_sent: Estimate
    discount_spend: Estimate
    per_customer: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    """Per-customer totals (``objective``, ``clv``, ``r_short``) for paired comparisons on the same customers."""

    def row(self) -> dict[str, str]:
        row = {"policy": self.policy_id, "R_short": str(self.r_short), "CLV": str(self.clv)}
        row.update({f"retained_{d}d": str(e) for d, e in self.retention.items()})
        row.update({"offers_sent": str(self.offers_sent), "discount_spend": str(self.discount_spend)})
        return row


def evaluate_policy(
    sim: PopulationSimulator,
    policy: Policy,
    n_customers: int,
    seed: int,
    deterministic: bool = False,
    progress: bool = False,
    encoder: HistoryFeatures | None = None,
) -> PolicyEvaluation:
    """Run ``n_customers`` fresh customers (seeded by ``seed``) through one decision period under ``policy``.

    :param encoder: append this encoder observer's features to the simulator's (as the training environment
        does); the customers and their outcomes under a given sequence of actions are the same either way.
    """
    rng = np.random.default_rng(seed)  # draws the customers, then the actions of a policy that samples
    cohort = Cohort.new(sim, n_customers, rng, encoder)
    horizon = sim.config.objective.horizon_days
    totals = {k: np.zeros(n_customers) for k in ("objective", "short", "clv", "revenue_short", "revenue", "sent", "discount")}
    # Day each customer dropped out on: -1 for those gone before decisions began, horizon if never.
    dropout_day = np.where(cohort.state.alive, horizon, -1)
    for _, out in rollout(cohort, policy, rng, deterministic, progress=progress, desc=f"evaluating {policy.policy_id}"):
        dropout_day = np.where(out.churned, out.churn_day, dropout_day)
        totals["objective"] += out.reward
        totals["short"] += out.margin_short
        totals["clv"] += out.margin_clv
        totals["revenue"] += out.revenue
        totals["revenue_short"] += out.revenue_short
        totals["sent"] += out.sent
        totals["discount"] += out.discount
    return PolicyEvaluation(
        policy_id=policy.policy_id,
        n_customers=n_customers,
        seed=seed,
        objective=Estimate.of(totals["objective"]),
        r_short=Estimate.of(totals["short"]),
        clv=Estimate.of(totals["clv"]),
        revenue_short=Estimate.of(totals["revenue_short"]),
        revenue=Estimate.of(totals["revenue"]),
        retention={d: Estimate.of(dropout_day >= d) for d in RETENTION_DAYS if d <= horizon},  # alive on day d
        offers_sent=Estimate.of(totals["sent"]),
        discount_spend=Estimate.of(totals["discount"]),
        per_customer={"objective": totals["objective"], "clv": totals["clv"], "r_short": totals["short"]},
    )

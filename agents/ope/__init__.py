"""Off-policy evaluation: what a policy would have earned on logged decisions."""

from offerpilot.agents.ope.bandit import (
    BanditEstimator,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
)
from offerpilot.agents.ope.bootstrap import Interval
from offerpilot.agents.ope.diagnostics import WeightDiagnostics, weight_diagnostics
from offerpilot.agents.ope.fqe import FittedQEvaluation
from offerpilot.agents.ope.reward_model import CrossFittedRewardModel
from offerpilot.agents.ope.sequential import PerDecisionIS, TrajectoryEstimator, WeightedDoublyRobust, WeightedPDIS

__all__ = [
    "BanditEstimator",
    "CrossFittedRewardModel",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "FittedQEvaluation",
    "InverseProbabilityWeighting",
    "Interval",
    "PerDecisionIS",
    "SelfNormalizedDR",
    "SelfNormalizedIPS",
    "SwitchDoublyRobust",
    "TrajectoryEstimator",
    "WeightDiagnostics",
    "WeightedDoublyRobust",
    "WeightedPDIS",
    "weight_diagnostics",
]

"""Off-policy evaluation: what a policy would have earned on logged decisions."""

from offerpilot.ope.bandit import (
    BanditEstimator,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedDR,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
)
from offerpilot.ope.bootstrap import Interval
from offerpilot.ope.diagnostics import WeightDiagnostics, weight_diagnostics
from offerpilot.ope.fqe import FittedQEvaluation
from offerpilot.ope.regression_model import CrossFittedRewardModel
from offerpilot.ope.sequential import PerDecisionIS, TrajectoryEstimator, WeightedDoublyRobust, WeightedPDIS

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

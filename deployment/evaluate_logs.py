"""One off-policy evaluation of a target policy on a shop's logs: the logged decisions, the target's action
probabilities at each of them, and the estimates. ``offerpilot ope`` and the demo run it; a study that evaluates
several targets on one log (``scripts/ope_validation.py``) builds the decisions once and calls :func:`target_probs`.
Logs come as events and decisions (:func:`evaluate_logs`) or as one table with an outcome column (:func:`evaluate_outcome_log`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.agents.baselines import BASELINES, make_baseline
from offerpilot.catalog import OfferCatalog
from offerpilot.deployment.target_probs import trained_policy_probs
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.policy import Policy
from offerpilot.errors import InputError
from offerpilot.ope.logged_decisions import LoggedDecisions, logged_decisions
from offerpilot.ope.off_policy import OPEConfig, OPEReport, evaluate_off_policy
from offerpilot.ope.outcome_decisions import outcome_decisions
from offerpilot.ope.target_policy import policy_probs, table_probs
from offerpilot.outcome_log import OutcomeLog

Target = str | Path | Policy
"""A baseline's name, a table of probabilities (``user_id``, ``ts``, ``prob_<offer_id>``), an exported bundle, a
policy or run folder of ``offerpilot train``, or a :class:`Policy` object."""


def check_target(target: Target) -> None:
    """Refuse a target that names nothing (before any log is read)."""
    if isinstance(target, (str, Path)) and str(target) not in BASELINES and not Path(target).exists():
        raise InputError(f"--policy {str(target)!r} is neither a baseline ({', '.join(BASELINES)}), a table file, nor a bundle, policy or run folder")


def target_probs(target: Target, data: LoggedDecisions, events: pd.DataFrame, catalog: OfferCatalog) -> np.ndarray:
    """The target's action probabilities (n_decisions, n_actions) at the logged decisions."""
    if not isinstance(target, (str, Path)):
        return policy_probs(target, data)
    check_target(target)
    if str(target) in BASELINES:
        return policy_probs(make_baseline(str(target), catalog), data)
    if Path(target).is_file():
        return table_probs(target, data, catalog.ids)
    return trained_policy_probs(target, data, events, catalog)


REWARDS = ("objective", "margin")
"""What a decision earned in an events log: its window's margin weighted by the objective's day weights (``lam``), or
the margin itself (``gross_margin_rate * list value - discount - send cost``, undiscounted)."""


def evaluate_logs(events: pd.DataFrame, decisions: pd.DataFrame, catalog: OfferCatalog, target: Target, objective: ObjectiveConfig,
                  config: OPEConfig, period_start: str | pd.Timestamp | None = None, interval_days: int = 7,
                  reward: str = "objective", context: tuple[str, ...] = ()) -> tuple[LoggedDecisions, OPEReport]:
    """The logged decisions (day 0: ``period_start``, default the first decision's day) and the target's estimates.

    :param events, decisions: validated tables (``offerpilot.tables.read_logs``).
    :param reward: one of :data:`REWARDS`.
    :param context: decisions columns the reward model reads besides the features rebuilt from the events (checked by
        ``offerpilot.validation.validate_context``).
    """
    if reward not in REWARDS:
        raise InputError(f"--reward must be one of {REWARDS}, got {reward!r}")
    start = period_start if period_start is not None else decisions["ts"].min().normalize()
    data = logged_decisions(events, decisions, catalog, start, objective, interval_days=interval_days, context=context)
    if reward == "margin":
        data = replace(data, reward=data.margin)
    return data, evaluate_off_policy(data, target_probs(target, data, events, catalog), config)


def evaluate_outcome_log(table: pd.DataFrame, log: OutcomeLog, actions: tuple[str, ...], target: str | Path,
                         config: OPEConfig) -> tuple[LoggedDecisions, OPEReport]:
    """The decisions of an outcome log (validated by ``read_outcome_log`` against ``actions``) and the estimates of a
    target given as a table (``prob_<action>`` columns keyed by decision columns, such as a slot)."""
    if str(target) in BASELINES or not Path(target).is_file():
        raise InputError(f"--policy {str(target)!r}: an outcome log is evaluated against a target table (one prob_<action> column per action, "
                         "keyed by decision columns such as the slot); baselines and trained policies read customer features that only an events log gives")
    data = outcome_decisions(table, log, actions)
    if "user_id" not in table:  # each row its own customer: the per-customer estimators would repeat the per-decision ones
        config = replace(config, sequential=False)
    return data, evaluate_off_policy(data, table_probs(target, data, actions), config)

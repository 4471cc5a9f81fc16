"""Logged decisions as arrays for off-policy evaluation and scoring.

Each decision gets what the policy would have seen (the raw observer's features rebuilt from the
logs), its legal actions, the logging policy's propensity (and full distribution when logged), and
the margin that followed it: purchases and send costs are attributed to the customer's latest
decision at or before them, within ``interval_days``. Margin per day follows the objective
(``gross_margin_rate * list_value - discount - send_cost``) and is weighted by its day's reward weight.
Purchases that no decision window covers are counted, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from offerpilot.catalog import OfferCatalog
from offerpilot.envs.log_state import observable_state_from_logs
from offerpilot.envs.masks import action_mask
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.observers import RawFeatureObserver
from offerpilot.errors import InputError
from offerpilot.ope.design import context_matrix
from offerpilot.schema import PROB_PREFIX


@dataclass(frozen=True)
class LoggedDecisions:
    """n logged decisions, sorted by customer then time. Arrays have shape (n,) unless noted."""

    user_id: np.ndarray  # object
    ts: np.ndarray  # datetime64, when the decision was made
    day: np.ndarray  # int64, day of the decision period
    action: np.ndarray  # int64, catalog index of the logged offer
    pscore: np.ndarray  # float64, logging probability of the logged action
    logging_probs: np.ndarray | None  # float64 (n, n_actions) when the log carries prob_ columns
    features: np.ndarray  # float32 (n, n_features), the raw observer's view at the decision
    legal: np.ndarray  # bool (n, n_actions), the actions the caps and eligibility allowed
    margin: np.ndarray  # float64, undiscounted margin in the decision's window
    reward: np.ndarray  # float64, margin weighted by the objective's day weights
    margin_short: np.ndarray  # float64, margin of days t < W in the window
    margin_clv: np.ndarray  # float64, gamma**t-discounted margin in the window
    trajectory: np.ndarray  # int64, customer index 0..n_customers-1
    step: np.ndarray  # int64, decision index within the customer's trajectory
    n_unattributed_purchases: int
    """Purchases after the decisions began that no decision window covered."""
    context: np.ndarray | None = None
    """float32 (n, k): the log's own context columns (user features, the slot), read by the reward model only."""
    table: pd.DataFrame | None = None
    """The decisions' rows in this order: the columns a target table may be keyed by."""

    @property
    def model_features(self) -> np.ndarray:
        """What the reward model and fitted-Q evaluation read: the features, then the context columns."""
        return self.features if self.context is None else np.hstack([self.features, self.context])

    @property
    def n_decisions(self) -> int:
        return self.action.shape[0]

    @property
    def n_trajectories(self) -> int:
        return int(self.trajectory.max()) + 1 if self.n_decisions else 0

    def as_trajectories(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Arrange per-decision ``values`` (n, ...) as (n_trajectories, horizon, ...) padded with ``fill``."""
        horizon = int(self.step.max()) + 1
        out = np.full((self.n_trajectories, horizon, *values.shape[1:]), fill, dtype=values.dtype)
        out[self.trajectory, self.step] = values
        return out

    @property
    def trajectory_mask(self) -> np.ndarray:
        """Bool (n_trajectories, horizon): True where a decision exists."""
        return self.as_trajectories(np.ones(self.n_decisions, bool), fill=False)


def logged_decisions(
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    catalog: OfferCatalog,
    period_start: str | pd.Timestamp,
    objective: ObjectiveConfig | None = None,
    interval_days: int = 7,
    context: tuple[str, ...] = (),
) -> LoggedDecisions:
    """Assemble validated events and decisions tables (``read_events`` / ``read_decisions``) into arrays.

    :param context: columns of the decisions table the reward model reads besides the features (checked with
        ``offerpilot.validation.validate_context``).
    """
    objective = objective or ObjectiveConfig()
    origin = pd.Timestamp(period_start).normalize()
    decisions = decisions.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
    n = len(decisions)
    if n == 0:
        raise InputError("the decisions table is empty: nothing to evaluate")
    action = decisions["offer_id"].map({o: i for i, o in enumerate(catalog.ids)})
    if action.isna().any():
        rows = np.flatnonzero(action.isna().to_numpy())[:5].tolist()
        raise InputError(f"decisions with offers not in the catalog at rows {rows} (0-based, sorted by user and time)")
    action = action.to_numpy(np.int64)
    prob_columns = [PROB_PREFIX + o for o in catalog.ids]
    logging_probs = decisions[prob_columns].to_numpy(np.float64) if set(prob_columns) <= set(decisions) else None

    state = observable_state_from_logs(events, decisions, catalog, origin)
    features = RawFeatureObserver(catalog, objective).observe(None, state)
    legal = action_mask(state, catalog)
    day = state.day.astype(np.int64)

    trajectory = pd.factorize(decisions["user_id"])[0].astype(np.int64)
    step = decisions.groupby("user_id").cumcount().to_numpy(np.int64)

    # Money per decision window: the decision's own send cost, plus purchases attributed to it.
    send_cost = catalog.send_cost[action].astype(np.float64)
    purchases = events[events["event"] == "purchase"]
    discount = purchases["discount"].fillna(0.0) if "discount" in purchases else pd.Series(0.0, index=purchases.index)
    bought = pd.DataFrame(
        {
            "user_id": purchases["user_id"].to_numpy(),
            "ts": purchases["ts"].to_numpy(),
            "margin": (objective.gross_margin_rate * (purchases["amount"] + discount) - discount).to_numpy(np.float64),
        }
    ).sort_values("ts", kind="stable")
    windows = decisions[["user_id", "ts"]].assign(_decision=np.arange(n)).sort_values("ts", kind="stable")
    matched = pd.merge_asof(bought, windows.rename(columns={"ts": "decision_ts"}), left_on="ts", right_on="decision_ts", by="user_id")
    inside = matched["_decision"].notna() & (matched["ts"] - matched["decision_ts"] < pd.Timedelta(days=interval_days))
    after_start = matched["ts"] >= windows["ts"].min()
    n_unattributed = int((~inside & after_start).sum())
    matched = matched[inside]
    which = matched["_decision"].to_numpy(np.int64)
    purchase_day = np.floor((matched["ts"] - origin) / pd.Timedelta(days=1)).to_numpy(np.int64)
    money = matched["margin"].to_numpy(np.float64)

    def per_decision(weights_purchase: np.ndarray, weights_send: np.ndarray) -> np.ndarray:
        return np.bincount(which, weights=money * weights_purchase, minlength=n) - send_cost * weights_send

    ones_p, ones_d = np.ones(which.size), np.ones(n)
    return LoggedDecisions(
        user_id=decisions["user_id"].to_numpy(object),
        ts=decisions["ts"].to_numpy(),
        day=day,
        action=action,
        pscore=decisions["propensity"].to_numpy(np.float64),
        logging_probs=logging_probs,
        features=features,
        legal=legal,
        margin=per_decision(ones_p, ones_d),
        reward=per_decision(objective.reward_weight(purchase_day), objective.reward_weight(day)),
        margin_short=per_decision(objective.short_weight(purchase_day), objective.short_weight(day)),
        margin_clv=per_decision(objective.clv_weight(purchase_day), objective.clv_weight(day)),
        trajectory=trajectory,
        step=step,
        n_unattributed_purchases=n_unattributed,
        context=context_matrix(decisions, list(context)) if context else None,
        table=decisions,
    )

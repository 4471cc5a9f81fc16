"""The simulator both environment views share: new customers with a history, then decision steps.

One decision step covers ``decision_interval_days`` days: the chosen action is applied on the
first day, nothing is sent on the others, and the day's margins are summed with the objective's
weights. Money components are kept separately so evaluation can report short-term revenue and CLV
whatever ``lam`` the policy was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from offerpilot.catalog import OfferCatalog, default_catalog
from offerpilot.envs.day_kernel import DayKernel
from offerpilot.envs.history import AcquisitionRecorder, DayRecorder, simulate_lives
from offerpilot.envs.masks import action_mask
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.observers import Observer, make_observer
from offerpilot.envs.population import (
    F32,
    CustomerState,
    CustomerTraits,
    PopulationParams,
    sample_traits,
)
from offerpilot.errors import InputError


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that defines a simulated business."""

    population: PopulationParams = field(default_factory=PopulationParams)
    """Customer behaviour (defaults: the CDNOW-calibrated shape)."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """Margin, horizon and the short-term / lifetime trade-off ``lam``."""
    catalog: OfferCatalog = field(default_factory=default_catalog)
    """The actions and their costs, eligibility and caps."""
    decision_interval_days: int = 7
    """Days between two decisions for a customer."""
    history_days: int = 365
    """Customers' tenure when decisions begin is uniform on [1, history_days] days."""
    observer: str = "raw"
    """What the policy sees: ``raw`` features, or ``latent`` (the oracle's privileged view)."""

    def __post_init__(self) -> None:
        if self.decision_interval_days < 1:
            raise InputError("decision_interval_days must be >= 1")
        if self.history_days < 1:
            raise InputError("history_days must be >= 1")

    @property
    def n_decisions(self) -> int:
        """Decision steps in one customer's decision period."""
        return -(-self.objective.horizon_days // self.decision_interval_days)

    @property
    def n_reward_decisions(self) -> int:
        """Decision steps until the last day that carries reward (``ObjectiveConfig.reward_days``): a training
        episode's length. Evaluation still follows customers for the whole period, to report CLV at any ``lam``."""
        return -(-self.objective.reward_days // self.decision_interval_days)


@dataclass(frozen=True)
class StepOutcome:
    """Per-customer totals over one decision step. Shapes ``(n,)``, float32 money."""

    reward: np.ndarray
    expected_reward: np.ndarray  # the reward with each day's purchase money replaced by its expectation (see DayKernel)
    margin_short: np.ndarray  # margin of days t < W (undiscounted)
    margin_clv: np.ndarray  # sum of gamma**t * margin over days t < H
    revenue: np.ndarray  # money paid by the customers
    revenue_short: np.ndarray  # money paid on days t < W
    discount: np.ndarray
    send_cost: np.ndarray
    purchases: np.ndarray  # int16
    sent: np.ndarray  # bool
    action: np.ndarray  # int8: the action applied (illegal ones became 'none')
    unsubscribed: np.ndarray  # bool
    churn_day: np.ndarray  # int16: day of the decision period the customer dropped out on, -1 if not

    @property
    def churned(self) -> np.ndarray:
        """Bool (n,): dropped out during the step (latent)."""
        return self.churn_day >= 0


class PopulationSimulator:
    """Creates customers and advances them decision by decision; vectorised over customers."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.kernel = DayKernel(self.config.population, self.config.catalog)
        self.observer: Observer = make_observer(self.config.observer, self.config.catalog, self.config.objective, self.config.population)

    @property
    def catalog(self) -> OfferCatalog:
        return self.config.catalog

    @property
    def n_features(self) -> int:
        return len(self.observer.feature_names)

    def new_customers(
        self,
        n: int,
        rng: np.random.Generator,
        on_day: DayRecorder | None = None,
        on_acquire: AcquisitionRecorder | None = None,
    ) -> tuple[CustomerTraits, CustomerState]:
        """Draw ``n`` customers and simulate their history up to day 0 of the decision period."""
        traits = sample_traits(self.config.population, n, rng)
        acquisition = -rng.integers(1, self.config.history_days + 1, n)
        state = simulate_lives(self.kernel, traits, acquisition, 0, on_day=on_day, on_acquire=on_acquire)
        return traits, state

    def observe(self, traits: CustomerTraits, state: CustomerState) -> np.ndarray:
        return self.observer.observe(traits, state)

    def action_mask(self, state: CustomerState) -> np.ndarray:
        return action_mask(state, self.catalog)

    def done(self, state: CustomerState) -> tuple[np.ndarray, np.ndarray]:
        """(terminated, truncated): the days that carry reward are over (the horizon; the 30-day window at ``lam``
        0), and never truncated.

        A customer who dropped out stays until the end, as in a shop, which cannot see it happen: the policy
        keeps deciding for them (messages still cost their send cost) and the objective ends there, so nothing
        lies beyond it to bootstrap.
        """
        terminated = state.day >= self.config.objective.reward_days
        return terminated, np.zeros_like(terminated)

    def advance(
        self,
        traits: CustomerTraits,
        state: CustomerState,
        action: np.ndarray,
        on_day: DayRecorder | None = None,
    ) -> tuple[CustomerState, StepOutcome]:
        """One decision step: apply ``action`` (int, (n,)) then simulate ``decision_interval_days`` days.

        Deterministic given its inputs: the days' draws are the customers' common random numbers."""
        objective = self.config.objective
        n = state.n_customers
        short = np.zeros(n, F32)
        clv = np.zeros(n, F32)
        expected = np.zeros(n, F32)
        revenue = np.zeros(n, F32)
        revenue_short = np.zeros(n, F32)
        discount = np.zeros(n, F32)
        send_cost = np.zeros(n, F32)
        purchases = np.zeros(n, np.int16)
        unsubscribed = np.zeros(n, bool)
        churn_day = np.full(n, -1, np.int16)
        everyone = np.arange(n)
        none = np.zeros(n, np.int8)
        legal = self.action_mask(state)
        for d in range(self.config.decision_interval_days):
            day = state.day
            # Only the first day carries an action; 'none' is always legal on the others.
            state, out = self.kernel.step(traits, state, action if d == 0 else none, legal)
            if d == 0:
                applied, sent = out.action, out.sent
            margin = objective.margin(out.list_value, out.discount, out.send_cost)
            short += margin * objective.short_weight(day)
            clv += margin * objective.clv_weight(day)
            expected += objective.margin(out.expected_list_value, out.expected_discount, out.send_cost) * objective.reward_weight(day)
            revenue += out.revenue
            revenue_short += out.revenue * objective.short_weight(day)
            discount += out.discount
            send_cost += out.send_cost
            purchases += out.purchased
            unsubscribed |= out.unsubscribed
            churn_day[out.churned] = day[out.churned]
            if on_day is not None:
                on_day(everyone, state, out)
        lam = F32(objective.lam)
        reward = (F32(1) - lam) * short + lam * clv
        return state, StepOutcome(
            reward=reward,
            expected_reward=expected,
            margin_short=short,
            margin_clv=clv,
            revenue=revenue,
            revenue_short=revenue_short,
            discount=discount,
            send_cost=send_cost,
            purchases=purchases,
            sent=sent,
            action=applied,
            unsubscribed=unsubscribed,
            churn_day=churn_day,
        )

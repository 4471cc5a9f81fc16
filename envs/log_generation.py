"""Simulated logs in the data contract: events and decisions with exact propensities.

A fixed cohort of customers lives its history (no offers), then a behaviour policy decides for
every customer at every decision step of the decision period: the dead too, because the shop
cannot tell them from the quiet. Decisions carry the full action distribution, so off-policy
evaluation can later be checked against the simulator's truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from offerpilot.envs.history import simulate_lives
from offerpilot.envs.policy import Policy
from offerpilot.envs.population import CATEGORIES, FUNNEL, CustomerState, DayOutcome, sample_traits
from offerpilot.envs.rollout import Cohort, rollout
from offerpilot.envs.simulator import PopulationSimulator

REVIEW_TEMPLATES = {
    1: (
        "Very disappointed with my {cat} order. Would not buy again.",
        "Terrible experience, the {cat} item was not as described.",
        "Awful. Late delivery and poor quality {cat} product.",
    ),
    2: (
        "Not great. The {cat} purchase was below my expectations.",
        "Mediocre {cat} item, customer service was slow.",
        "I expected better from this shop; the {cat} order was disappointing.",
    ),
    3: (
        "It was okay. The {cat} item does the job.",
        "Average {cat} purchase, nothing special.",
        "Fine, but the {cat} order took a while to arrive.",
    ),
    4: (
        "Good {cat} purchase, arrived on time.",
        "Happy with my {cat} order, would buy again.",
        "Nice quality {cat} item for the price.",
    ),
    5: (
        "Excellent! Love my new {cat} item, fast delivery too.",
        "Fantastic shop, the {cat} order was perfect. Highly recommend.",
        "Absolutely delighted with this {cat} purchase.",
    ),
}
"""Review texts by star rating: sentiment follows the customer's satisfaction."""

EVENT_MINUTE = {"unsubscribe": 9 * 60, "visit": 600, "view": 605, "cart": 610, "purchase": 615, "review": 18 * 60}
"""Minute of the day each kind of simulated event carries; a day's events happen in this order."""
DECISION_MINUTE = 7 * 60
"""Minute of the day decisions are taken: before any of that day's events."""


@dataclass(frozen=True)
class SimulatedLogs:
    """Tables in the data contract, plus the simulator's latent truth per customer and the
    observations the behaviour policy saw, row-aligned with ``decisions``."""

    events: pd.DataFrame
    decisions: pd.DataFrame
    customers: pd.DataFrame
    observations: np.ndarray  # float32 (n_decisions, n_features)


class _EventBuffer:
    """Collects events as arrays day by day; builds the DataFrame once at the end."""

    def __init__(self, catalog_ids: tuple[str, ...]) -> None:
        self.catalog_ids = catalog_ids
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, customers: np.ndarray, day: np.ndarray, kind: str, minute: int, **cols: np.ndarray) -> None:
        if customers.size:
            self.parts.append({"customer": customers, "day": day, "kind": np.full(customers.size, kind), "minute": np.full(customers.size, minute), **cols})

    def acquisition(self, day: int, customers: np.ndarray, list_value: np.ndarray, category: np.ndarray) -> None:
        days = np.full(customers.size, day)
        for stage in ("visit", "view", "cart"):
            self.add(customers, days, stage, EVENT_MINUTE[stage])
        self.add(customers, days, "purchase", EVENT_MINUTE["purchase"], amount=list_value, discount=np.zeros_like(list_value), category=category, offer=np.zeros(customers.size, np.int8))

    def day(self, customers: np.ndarray, state: CustomerState, out: DayOutcome) -> None:
        day = state.day.astype(np.int64) - 1
        for level, stage in enumerate(FUNNEL[1:], start=1):
            hit = np.flatnonzero(out.stage >= level)
            if stage == "purchase":
                self.add(customers[hit], day[hit], stage, EVENT_MINUTE[stage], amount=out.list_value[hit] - out.discount[hit], discount=out.discount[hit], category=out.category[hit], offer=out.redeemed[hit])
            else:
                self.add(customers[hit], day[hit], stage, EVENT_MINUTE[stage])
        hit = np.flatnonzero(out.rating > 0)
        self.add(customers[hit], day[hit], "review", EVENT_MINUTE["review"], rating=out.rating[hit], category=out.category[hit])
        hit = np.flatnonzero(out.unsubscribed)
        self.add(customers[hit], day[hit], "unsubscribe", EVENT_MINUTE["unsubscribe"])

    def frame(self, user_ids: np.ndarray, start: pd.Timestamp) -> pd.DataFrame:
        cols = ("customer", "day", "kind", "minute", "amount", "discount", "category", "offer", "rating")
        merged = {}
        for c in cols:
            pieces = []
            for part in self.parts:
                n = part["customer"].size
                pieces.append(part[c] if c in part else np.full(n, -1 if c in ("category", "offer", "rating") else np.nan))
            merged[c] = np.concatenate(pieces) if pieces else np.array([])
        order = np.lexsort((merged["minute"], merged["day"], merged["customer"]))
        merged = {c: v[order] for c, v in merged.items()}
        customer, rating, category, offer = merged["customer"], merged["rating"].astype(int), merged["category"].astype(int), merged["offer"].astype(int)
        cat_names = np.array(CATEGORIES + ("",), dtype=object)[np.where(category >= 0, category, len(CATEGORIES))]
        text = np.full(customer.size, None, dtype=object)
        for stars, templates in REVIEW_TEMPLATES.items():
            rows = np.flatnonzero(rating == stars)
            variant = (customer[rows] * 31 + merged["day"][rows].astype(np.int64)) % len(templates)
            text[rows] = [templates[v].format(cat=c) for v, c in zip(variant, cat_names[rows])]
        offer_ids = np.array(self.catalog_ids, dtype=object)
        redeemed = np.where(offer > 0, offer_ids[np.maximum(offer, 0)], None)
        ts = start + pd.to_timedelta(merged["day"].astype(np.int64), unit="D") + pd.to_timedelta(merged["minute"].astype(np.int64), unit="min")
        return pd.DataFrame(
            {
                "user_id": user_ids[customer],
                "ts": ts,
                "event": merged["kind"],
                "amount": merged["amount"].astype(np.float64).round(2),
                "category": np.where(category >= 0, cat_names, None),
                "text": text,
                "offer_id": redeemed,
                "discount": merged["discount"].astype(np.float64).round(2),
                "rating": np.where(rating > 0, rating, np.nan).astype(np.float64),
            }
        )


def simulate_logs(
    sim: PopulationSimulator,
    policy: Policy,
    n_customers: int,
    seed: int,
    start: str | pd.Timestamp = "2025-01-01",
    progress: bool = True,
) -> SimulatedLogs:
    """Simulate ``n_customers`` through their history and one decision period under ``policy``.

    Day 0 of the decision period is ``start``; history events carry earlier timestamps.
    """
    start = pd.Timestamp(start)
    rng = np.random.default_rng(seed)
    catalog = sim.catalog
    user_ids = np.array([f"c{i:07d}" for i in range(n_customers)], dtype=object)
    buffer = _EventBuffer(catalog.ids)
    traits = sample_traits(sim.config.population, n_customers, rng)

    acquisition = -rng.integers(1, sim.config.history_days + 1, n_customers)
    state = simulate_lives(sim.kernel, traits, acquisition, 0, on_day=buffer.day, on_acquire=buffer.acquisition)
    truth = pd.DataFrame({"user_id": user_ids, "acquisition_day": acquisition, "alive_at_start": state.alive, **asdict(traits)})

    decisions = []
    everyone = np.arange(n_customers)
    cohort = Cohort(sim, traits, state, on_day=lambda c, s, o: buffer.day(everyone, s, o))
    for d, _ in rollout(cohort, policy, rng, progress=progress, desc="simulating decisions"):
        decisions.append((d.state.day.copy(), d.actions, d.propensity, d.probs, d.obs))
    state = cohort.state

    events = buffer.frame(user_ids, start)
    days = np.concatenate([d[0] for d in decisions]).astype(np.int64)
    actions = np.concatenate([d[1] for d in decisions])
    probs = np.concatenate([d[3] for d in decisions])
    customer = np.tile(everyone, len(decisions))
    order = np.lexsort((days, customer))
    ids = np.array(catalog.ids, dtype=object)
    decision_frame = pd.DataFrame(
        {
            "user_id": user_ids[customer[order]],
            "ts": start + pd.to_timedelta(days[order], unit="D") + pd.Timedelta(minutes=DECISION_MINUTE),
            "offer_id": ids[actions[order]],
            "propensity": np.concatenate([d[2] for d in decisions])[order],
            "policy_id": policy.policy_id,
        }
    )
    for j, offer_id in enumerate(catalog.ids):
        decision_frame[f"prob_{offer_id}"] = probs[order, j]
    truth["alive_at_end"] = state.alive
    observations = np.concatenate([d[4] for d in decisions])[order]
    return SimulatedLogs(events=events, decisions=decision_frame, customers=truth, observations=observations)


"""Customers' lives before decisions begin: acquisition, then days without offers.

Each customer is acquired with a first purchase on their own day, then lives day by day until a
common end day. Customers are processed in order of acquisition, so on every day the ones already
acquired form a contiguous block and each day is one vectorised kernel call.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from scipy.special import gammaincinv

from offerpilot.envs.common_random import Draw, open_uniforms
from offerpilot.envs.day_kernel import DayKernel
from offerpilot.envs.population import (
    F32,
    CustomerState,
    CustomerTraits,
    DayOutcome,
    acquired_state,
    put,
    take,
)
from offerpilot.errors import InputError


class DayRecorder(Protocol):
    """Receives every simulated day: ``customers`` index the caller's customer arrays; the day each
    outcome happened on is ``state.day - 1`` (``state`` is the state after the day)."""

    def __call__(self, customers: np.ndarray, state: CustomerState, outcome: DayOutcome) -> None: ...


class AcquisitionRecorder(Protocol):
    """Receives the first purchases: list value and category (the favourite) per acquired customer."""

    def __call__(self, day: int, customers: np.ndarray, list_value: np.ndarray, category: np.ndarray) -> None: ...


class HistoryFeatures(Protocol):
    """Features of each customer's own recorded history (the customer encoder's, from ``encoders``). The
    simulator records into the buffers :meth:`empty` makes while it simulates the customers; :meth:`observe`
    reads them at each decision. The buffers are a dataclass of per-customer arrays (``take``/``put`` apply)."""

    feature_names: tuple[str, ...]

    def empty(self, n: int) -> Any: ...

    def recorders(self, history: Any) -> tuple[DayRecorder, AcquisitionRecorder]: ...

    def observe(self, history: Any, state: CustomerState) -> np.ndarray: ...


def first_purchase_value(traits: CustomerTraits, spend_p: float, acquisition_day: np.ndarray) -> np.ndarray:
    """List value of each customer's acquisition purchase (float32), a common random number of its day."""
    u = open_uniforms(traits.noise_key, acquisition_day, Draw.FIRST_PURCHASE)
    return (gammaincinv(spend_p, u) * traits.spend_scale).astype(F32)


def simulate_lives(
    kernel: DayKernel,
    traits: CustomerTraits,
    acquisition_day: np.ndarray,
    until_day: int,
    on_day: DayRecorder | None = None,
    on_acquire: AcquisitionRecorder | None = None,
) -> CustomerState:
    """Simulate each customer from their acquisition day (int array, < ``until_day``) up to
    ``until_day`` (exclusive) with no messages; returns the state on ``until_day``, in the input order."""
    acquisition_day = np.asarray(acquisition_day, dtype=np.int64)
    if acquisition_day.size and acquisition_day.max() >= until_day:
        raise InputError("every customer must be acquired before until_day")
    order = np.argsort(acquisition_day, kind="stable")
    sorted_days = acquisition_day[order]
    traits_sorted = take(traits, order)
    first_value = first_purchase_value(traits_sorted, kernel.params.spend_p, sorted_days)
    state = acquired_state(traits_sorted, kernel.catalog, (sorted_days + 1).astype(np.int16))
    state.total_spend[:] = first_value
    if on_acquire is not None:
        for day in np.unique(sorted_days):
            lo, hi = np.searchsorted(sorted_days, [day, day + 1])
            on_acquire(int(day), order[lo:hi], first_value[lo:hi], traits_sorted.favourite_category[lo:hi])
    start = int(sorted_days[0]) + 1 if sorted_days.size else until_day
    nothing = np.zeros(order.size, np.int8)
    legal = np.ones((order.size, kernel.catalog.n_actions), bool)  # 'none' is always legal
    for day in range(start, until_day):
        k = int(np.searchsorted(sorted_days, day, side="left"))  # acquired strictly before `day`
        block = slice(0, k)
        new, outcome = kernel.step(take(traits_sorted, block), take(state, block), nothing[block], legal[block])
        put(state, block, new)
        if on_day is not None:
            on_day(order[:k], new, outcome)
    restore = np.empty_like(order)
    restore[order] = np.arange(order.size)
    return take(state, restore)

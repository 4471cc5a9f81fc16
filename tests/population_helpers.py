"""Shared helpers of the simulator's tests: hand-built populations, one kernel day, a few kernel days, a catalog."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import settings

from offerpilot.catalog import default_catalog, parse_catalog
from offerpilot.envs.common_random import new_keys
from offerpilot.envs.day_kernel import DayKernel
from offerpilot.envs.masks import action_mask
from offerpilot.envs.population import CustomerState, CustomerTraits, PopulationParams, acquired_state, sample_traits

CATALOG = default_catalog()
PARAMS = PopulationParams()
KERNEL = DayKernel(PARAMS, CATALOG)
A = {offer_id: i for i, offer_id in enumerate(CATALOG.ids)}
SETTINGS = settings(max_examples=12, derandomize=True, deadline=None, database=None)


def population(n: int, seed: int, params: PopulationParams = PARAMS, catalog=CATALOG, **state_changes):
    """``n`` freshly acquired customers at day 0 (no simulated history), state fields overridden."""
    traits = sample_traits(params, n, np.random.default_rng(seed))
    state = acquired_state(traits, catalog, np.zeros(n, np.int16))
    return traits, replace_state(state, **state_changes)


def replace_state(state: CustomerState, **changes) -> CustomerState:
    """Broadcast scalar overrides to full arrays of the field's dtype."""
    full = {}
    for name, value in changes.items():
        old = getattr(state, name)
        full[name] = np.broadcast_to(np.asarray(value, old.dtype), old.shape).copy()
    return dataclasses.replace(state, **full)


def uniform_traits(n: int, **values) -> CustomerTraits:
    """``n`` identical customers (a homogeneous population isolates one mechanism)."""
    base = dict(purchase_rate=0.0, dropout_rate=0.0, spend_scale=5.0, price_sensitivity=6.0, quality=0.75, favourite_category=0)
    base.update(values)
    return CustomerTraits(
        purchase_rate=np.full(n, base["purchase_rate"], np.float32),
        dropout_rate=np.full(n, base["dropout_rate"], np.float32),
        spend_scale=np.full(n, base["spend_scale"], np.float32),
        price_sensitivity=np.full(n, base["price_sensitivity"], np.float32),
        quality=np.full(n, base["quality"], np.float32),
        favourite_category=np.full(n, base["favourite_category"], np.int8),
        noise_key=new_keys(n, np.random.default_rng(0)),
    )


def rekeyed(traits: CustomerTraits, seed: int) -> CustomerTraits:
    """The same customers with the luck of ``seed`` (every draw of the kernel is keyed by ``noise_key``)."""
    return dataclasses.replace(traits, noise_key=new_keys(traits.noise_key.shape[0], np.random.default_rng(seed)))


def one_day(traits, state, action, seed: int, kernel: DayKernel = KERNEL):
    """One kernel step with the state's own mask; ``action`` is an int or an (n,) array."""
    action = np.broadcast_to(np.asarray(action, np.int64), (state.n_customers,)).copy()
    return kernel.step(rekeyed(traits, seed), state, action, action_mask(state, kernel.catalog))


def run_days(kernel: DayKernel, traits, state, choose, days: int, seed: int):
    """Yield ``(state_before, outcome)`` for ``days`` kernel steps; ``choose(day, state, legal) -> (n,)``."""
    traits = rekeyed(traits, seed)
    for day in range(days):
        legal = action_mask(state, kernel.catalog)
        new, out = kernel.step(traits, state, choose(day, state, legal), legal)
        yield state, out
        state = new


def se(p: float, n: int) -> float:
    """Standard error of a Bernoulli frequency."""
    return float(np.sqrt(max(p * (1 - p), 1e-12) / n))


def catalog_with(offers: list[dict], caps: dict | None = None):
    """A catalog with 'none' first, channels email (0.02) and sms (0.06), and the given offers."""
    data = {
        "channels": {"email": {"send_cost": 0.02}, "sms": {"send_cost": 0.06}},
        "offers": [{"id": "none", "kind": "none"}, *offers],
    }
    if caps is not None:
        data["contact_caps"] = caps
    return parse_catalog(data)

"""Common random numbers: every random draw of the simulator is a function of (customer, day, draw kind).

Each customer carries a 64-bit ``noise_key`` drawn with their traits. The uniform a customer meets on a day for
one kind of draw (the funnel, dropout, the spend of a purchase, ...) is the SplitMix64 output at a counter made of
the day and the kind, keyed by the customer. Nothing depends on the actions taken or on how many other customers
bought that day, so two policies run on the same customers meet the same luck: a customer who would buy on a day
without an offer also buys with one (the offer only raises the threshold the same uniform is compared to). Paired
comparisons, validation-based selection and baseline tuning then see the policies' difference, not the noise.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_DAY_OFFSET = 1 << 16
"""Days may be negative (a customer's history before the decision period); the counter never is."""
_KINDS_PER_DAY = 16


class Draw(IntEnum):
    """The kinds of random draw; each has its own stream per customer and day."""

    FUNNEL = 0
    """The day's shopping: one uniform drives visit, view, cart and purchase."""
    DROPOUT = 1
    UNSUBSCRIBE = 2
    SPEND = 3
    """List value of a purchase (Gamma quantile)."""
    EXPERIENCE = 4
    REVIEW = 5
    CATEGORY = 6
    FIRST_PURCHASE = 7
    """List value of the acquisition purchase."""
    OBSERVATION_NOISE = 8
    """Noise of an oracle's view of a trait; drawn at ``day = stream``, fixed for the customer's life."""


def new_keys(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` customers' noise keys (uint64)."""
    return rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)


def _bits(keys: np.ndarray, day: np.ndarray | int, kind: Draw) -> np.ndarray:
    """SplitMix64 of ``keys`` at the counter of (day, kind): 64 well-mixed bits per customer (uint64)."""
    counter = (np.asarray(day, np.int64) + _DAY_OFFSET) * _KINDS_PER_DAY + int(kind)
    with np.errstate(over="ignore"):
        z = keys + counter.astype(np.uint64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def uniforms(keys: np.ndarray, day: np.ndarray | int, kind: Draw) -> np.ndarray:
    """One uniform on [0, 1) per customer (float32, 24 random bits) for ``kind`` on ``day`` (int or (n,))."""
    return (_bits(keys, day, kind) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


def open_uniforms(keys: np.ndarray, day: np.ndarray | int, kind: Draw) -> np.ndarray:
    """One uniform on (0, 1) per customer (float64, 53 bits), for quantile functions that are infinite at 0 or 1."""
    return ((_bits(keys, day, kind) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53

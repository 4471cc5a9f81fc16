"""The business objective: margin, and its split between short-term revenue and lifetime value.

``margin_t = gross_margin_rate * list_value_t - discount_t - send_cost_t`` on day ``t`` of the
decision period; the per-day reward is ``r_t = margin_t * ((1 - lam) * [t < W] + lam * gamma**t)``,
so ``sum_t r_t = (1 - lam) * R_short + lam * CLV`` with ``gamma`` the daily discount factor of
``annual_discount_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerpilot.errors import InputError

DEFAULT_LAM = 0.5
"""The trade-off every command and config starts from: half 30-day margin, half 365-day CLV."""
GROSS_MARGIN_RATE = 0.35
"""The share of the list price kept as margin unless the shop says otherwise (``offerpilot ope --margin-rate``)."""


@dataclass(frozen=True)
class ObjectiveConfig:
    """What the policy is paid for."""

    lam: float = DEFAULT_LAM
    """Trade-off: 0 = short-term margin only, 1 = discounted lifetime margin only."""
    short_window_days: int = 30
    """``W``: days counted in the short-term revenue ``R_short``."""
    horizon_days: int = 365
    """``H``: days of the decision period; CLV sums margins over it."""
    annual_discount_rate: float = 0.10
    """Yearly cost of capital; the daily factor is ``(1 + rate) ** (-1 / 365)``."""
    gross_margin_rate: float = GROSS_MARGIN_RATE
    """Share of the list price kept as margin before offers and contact costs."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise InputError(f"lam must be in [0, 1], got {self.lam}")
        if not 0 < self.short_window_days <= self.horizon_days:
            raise InputError("short_window_days must be in (0, horizon_days]")
        if not 0.0 <= self.gross_margin_rate <= 1.0:
            raise InputError(f"gross_margin_rate (--margin-rate) must be in [0, 1], got {self.gross_margin_rate}")
        if self.annual_discount_rate <= -1.0:
            raise InputError("annual_discount_rate must be > -1")

    @property
    def daily_discount(self) -> float:
        """``gamma``: the daily discount factor."""
        return (1.0 + self.annual_discount_rate) ** (-1.0 / 365.0)

    @property
    def reward_days(self) -> int:
        """Days that carry reward: the short window alone at ``lam`` 0, else the whole horizon. Nothing after them
        changes the objective, so a decision period ends there."""
        return self.short_window_days if self.lam == 0 else self.horizon_days

    def margin(self, list_value: np.ndarray, discount: np.ndarray, send_cost: np.ndarray) -> np.ndarray:
        """Per-customer margin of one day (float32)."""
        return (np.float32(self.gross_margin_rate) * list_value - discount - send_cost).astype(np.float32)

    def clv_weight(self, day: np.ndarray) -> np.ndarray:
        """``gamma ** t`` for days inside the horizon, 0 outside (float32)."""
        day = np.asarray(day)
        inside = (day >= 0) & (day < self.horizon_days)
        return np.where(inside, np.float32(self.daily_discount) ** day.astype(np.float32), 0).astype(np.float32)

    def short_weight(self, day: np.ndarray) -> np.ndarray:
        """``[0 <= t < W]`` (float32)."""
        day = np.asarray(day)
        return ((day >= 0) & (day < self.short_window_days)).astype(np.float32)

    def reward_weight(self, day: np.ndarray) -> np.ndarray:
        """``(1 - lam) * [t < W] + lam * gamma**t``: multiply a day's margin by this to get its reward."""
        return (np.float32(1 - self.lam) * self.short_weight(day) + np.float32(self.lam) * self.clv_weight(day)).astype(np.float32)

"""A budget on discount spend per customer, enforced by a Lagrangian penalty on the reward.

Training maximises ``reward - multiplier * discount``; after each rollout the multiplier takes a projected
dual-ascent step, ``multiplier <- max(0, multiplier + step * (spend - budget) / budget)``, where ``spend`` is
the mean discount of the customers whose decision period ended during the rollout. So the multiplier grows
while customers get more discount than the budget allows and shrinks back to 0 once they get less.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from offerpilot.errors import InputError


class DiscountBudget(VecEnvWrapper):
    """Penalises discount money in the reward of ``venv`` (whose infos carry ``discount``) by a learned multiplier."""

    def __init__(self, venv: VecEnv, budget: float, step_size: float = 0.05, multiplier: float = 0.0) -> None:
        super().__init__(venv)
        if budget < 0:
            raise InputError(f"the discount budget must be >= 0, got {budget}")
        self.budget = float(budget)
        self.step_size = float(step_size)
        self.multiplier = float(multiplier)
        self._spend = np.zeros(venv.num_envs)
        self._finished: list[np.ndarray] = []

    def reset(self) -> np.ndarray:
        self._spend[:] = 0.0
        return self.venv.reset()

    def step_wait(self):
        obs, reward, done, infos = self.venv.step_wait()
        discount = np.fromiter((info["discount"] for info in infos), np.float64, len(infos))
        self._spend += discount
        if done.any():
            self._finished.append(self._spend[done].copy())
            self._spend[done] = 0.0
        return obs, (reward - self.multiplier * discount).astype(np.float32), done, infos

    def update(self) -> float | None:
        """One dual step from the customers finished since the last call; returns their mean spend (None: none)."""
        if not self._finished:
            return None
        spend = float(np.concatenate(self._finished).mean())
        self._finished.clear()
        self.multiplier = max(0.0, self.multiplier + self.step_size * (spend - self.budget) / max(self.budget, 1e-6))
        return spend

"""One customer as a ``gymnasium.Env``: for checkers, debugging and any single-env tooling.

Training uses :class:`offerpilot.envs.vec_env.RetentionVecEnv`, which steps thousands of customers
at once through the same :class:`PopulationSimulator`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from offerpilot.envs.population import CustomerState, CustomerTraits
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig


class RetentionEnv(gym.Env):
    """A customer from acquisition history to the end of the decision period.

    Observation: the observer's features (float32). Action: an index into the offer catalog.
    Reward: the day-weighted margin of the objective. ``terminated`` once no later day carries reward (the horizon; the 30-day window at lam 0), for every customer:
    one who dropped out (latent: ``info["churned"]`` on the step it happened) stays to the end, as in a shop.
    ``action_masks()`` gives the legal actions (sb3-contrib's MaskablePPO calls it).
    """

    metadata = {"render_modes": []}

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__()
        self.sim = PopulationSimulator(config)
        n_features = self.sim.n_features
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_features,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.sim.catalog.n_actions)
        self._traits: CustomerTraits | None = None
        self._state: CustomerState | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._traits, self._state = self.sim.new_customers(1, self.np_random)
        return self.sim.observe(self._traits, self._state)[0], {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._state, out = self.sim.advance(self._traits, self._state, np.array([action], np.int64))
        terminated, truncated = self.sim.done(self._state)
        info = {
            "revenue": float(out.revenue[0]),
            "discount": float(out.discount[0]),
            "send_cost": float(out.send_cost[0]),
            "margin_short": float(out.margin_short[0]),
            "margin_clv": float(out.margin_clv[0]),
            "purchases": int(out.purchases[0]),
            "applied_action": int(out.action[0]),
            "unsubscribed": bool(out.unsubscribed[0]),
            "churned": bool(out.churned[0]),
        }
        obs = self.sim.observe(self._traits, self._state)[0]
        return obs, float(out.reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def action_masks(self) -> np.ndarray:
        if self._state is None:
            raise RuntimeError("call reset() before action_masks()")
        return self.sim.action_mask(self._state)[0]

"""Thousands of customers as one stable-baselines3 ``VecEnv``.

Slot ``i`` holds one customer; when that customer drops out or reaches the horizon, the slot is
refilled from a pool of fresh customers whose histories were simulated in a batch (auto-reset).
This is the only place SB3's list-of-dicts ``infos`` are built; :meth:`step_arrays` gives the
same step as arrays for offerpilot's own evaluation code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from offerpilot.envs.population import CustomerState, CustomerTraits, concat, put, take
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig, StepOutcome

_INFO_KEYS = ("revenue", "discount", "send_cost", "margin_short", "margin_clv", "churned", "unsubscribed")


class RetentionVecEnv(VecEnv):
    """``n_envs`` customers stepped together; seeded by ``seed`` (or ``VecEnv.seed`` before reset)."""

    render_mode = None

    def __init__(
        self,
        n_envs: int,
        config: SimulatorConfig | None = None,
        seed: int | None = None,
        pool_size: int | None = None,
    ) -> None:
        self.sim = PopulationSimulator(config)
        obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.sim.n_features,), dtype=np.float32)
        super().__init__(n_envs, obs_space, gym.spaces.Discrete(self.sim.catalog.n_actions))
        self.pool_size = pool_size or max(n_envs // 4, 256)
        self._rng = np.random.default_rng(seed)
        self._pool: tuple[CustomerTraits, CustomerState] | None = None
        self._pool_next = 0
        self._traits: CustomerTraits | None = None
        self._state: CustomerState | None = None
        self._actions: np.ndarray | None = None
        self.customers_started = 0
        """Customers drawn so far (initial ones and replacements)."""

    # -- customers -------------------------------------------------------------------------------
    def _draw(self, n: int) -> tuple[CustomerTraits, CustomerState]:
        """``n`` fresh customers at day 0, taken from the pool (refilled in batches)."""
        parts_t, parts_s = [], []
        while n > 0:
            if self._pool is None or self._pool_next >= self._pool[1].n_customers:
                self._pool = self.sim.new_customers(max(self.pool_size, n), self._rng)
                self._pool_next = 0
            k = min(n, self._pool[1].n_customers - self._pool_next)
            block = slice(self._pool_next, self._pool_next + k)
            parts_t.append(take(self._pool[0], block))
            parts_s.append(take(self._pool[1], block))
            self._pool_next += k
            n -= k
        self.customers_started += sum(p.n_customers for p in parts_s)
        return concat(parts_t), concat(parts_s)

    # -- VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds else None
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._pool = None
        self._reset_seeds()
        self._traits, self._state = self._draw(self.num_envs)
        return self.sim.observe(self._traits, self._state)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, out, terminated, truncated, terminal_obs = self.step_arrays(self._actions)
        done = terminated | truncated
        columns = [getattr(out, k).tolist() for k in _INFO_KEYS]
        infos = [dict(zip(_INFO_KEYS, values)) for values in zip(*columns)]
        for j, i in enumerate(np.flatnonzero(done)):
            infos[i]["terminal_observation"] = terminal_obs[j]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i])
        return obs, out.reward, done, infos

    def step_arrays(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, StepOutcome, np.ndarray, np.ndarray, np.ndarray]:
        """One decision step for every slot, as arrays.

        Returns ``(obs, outcome, terminated, truncated, terminal_obs)``: ``obs`` already shows the
        replacement customers in finished slots; ``terminal_obs`` (n_done, n_features) is what the
        finished customers looked like at the end, in slot order.
        """
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._state, out = self.sim.advance(self._traits, self._state, np.asarray(actions, np.int64), self._rng)
        terminated, truncated = self.sim.done(self._state)
        obs = self.sim.observe(self._traits, self._state)
        done_idx = np.flatnonzero(terminated | truncated)
        terminal_obs = obs[done_idx].copy()
        if done_idx.size:
            new_traits, new_state = self._draw(done_idx.size)
            put(self._traits, done_idx, new_traits)
            put(self._state, done_idx, new_state)
            obs[done_idx] = self.sim.observe(new_traits, new_state)
        return obs, out, terminated, truncated, terminal_obs

    def action_masks(self) -> np.ndarray:
        """Bool (n_envs, n_actions): the legal actions of every slot now."""
        return self.sim.action_mask(self._state)

    @property
    def state(self) -> CustomerState:
        """The live customers' state (read it, do not write it)."""
        return self._state

    @property
    def traits(self) -> CustomerTraits:
        return self._traits

    def close(self) -> None:
        self._pool = None

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> Sequence[Any]:
        if method_name == "action_masks":
            masks = self.action_masks()
            return list(masks[list(self._get_indices(indices))])
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

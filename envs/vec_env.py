"""Thousands of customers as one stable-baselines3 ``VecEnv``.

Slot ``i`` holds one customer; when that customer reaches the horizon (those who dropped out stay until
then, as in a shop, which cannot see it), the slot is refilled from a pool of fresh customers whose histories were simulated in a batch (auto-reset).
With an encoder observer, every customer also carries their event buffer and cached embedding, and the
observation is the simulator's features followed by the encoder's.
This is the only place SB3's list-of-dicts ``infos`` are built; :meth:`step_arrays` gives the
same step as arrays for offerpilot's own evaluation code. A customer's ``infos`` entry at the end of their
decision period carries SB3's ``episode`` summary (return, decisions).

With ``copies`` K > 1, slots ``i, i + n/K, ..., i + (K-1) n/K`` hold the same customer (the same traits, noise key
and history), so the K copies meet the same luck (common random numbers) and differ only by the actions taken:
each copy's outcome is a baseline for the others'. Episodes have one length, so copies start and end together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from offerpilot.envs.history import HistoryFeatures
from offerpilot.envs.population import CustomerState, CustomerTraits, concat, put, take
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig, StepOutcome
from offerpilot.errors import InputError

_INFO_KEYS = ("revenue", "discount", "send_cost", "margin_short", "margin_clv", "churned", "unsubscribed")


class RetentionVecEnv(VecEnv):
    """``n_envs`` customers stepped together; seeded by ``seed`` (or ``VecEnv.seed`` before reset).

    :param encoder: an history-features observer (:class:`~offerpilot.envs.history.HistoryFeatures`, the customer encoder's) whose features are appended to
        the observations (the simulator's draws, and so its customers and rewards, are the same either way).
    :param expected_reward: give SB3 ``StepOutcome.expected_reward`` (the same expected return, much less
        noise) instead of the drawn money's ``reward``.
    """

    render_mode = None

    def __init__(
        self,
        n_envs: int,
        config: SimulatorConfig | None = None,
        seed: int | None = None,
        pool_size: int | None = None,
        encoder: HistoryFeatures | None = None,
        expected_reward: bool = False,
        copies: int = 1,
    ) -> None:
        if copies < 1 or n_envs % copies:
            raise InputError(f"copies must be >= 1 and divide n_envs ({n_envs}), got {copies}")
        self.copies = copies
        self.sim = PopulationSimulator(config)
        self.encoder = encoder
        self.expected_reward = expected_reward
        n_features = self.sim.n_features + (len(encoder.feature_names) if encoder is not None else 0)
        obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_features,), dtype=np.float32)
        super().__init__(n_envs, obs_space, gym.spaces.Discrete(self.sim.catalog.n_actions))
        self.pool_size = pool_size or max(n_envs // 4, 256)
        self._rng = np.random.default_rng(seed)
        self._pool: tuple[CustomerTraits, CustomerState, Any] | None = None
        self._pool_next = 0
        self._traits: CustomerTraits | None = None
        self._state: CustomerState | None = None
        self._history: Any = None
        self._actions: np.ndarray | None = None
        self._episode_return = np.zeros(n_envs)
        self._episode_length = np.zeros(n_envs, np.int64)
        self.customers_started = 0
        """Customers drawn so far (initial ones and replacements)."""

    # -- customers -------------------------------------------------------------------------------
    def _draw(self, n: int) -> tuple[CustomerTraits, CustomerState, Any]:
        """``n`` customers at day 0 for ``n`` slots: ``n / copies`` fresh ones, each repeated ``copies`` times
        (copy ``k`` of customer ``j`` at ``k * n / copies + j``)."""
        fresh = self._draw_fresh(n // self.copies)
        if self.copies == 1:
            return fresh
        return tuple(None if p is None else concat([p] * self.copies) for p in fresh)

    def _draw_fresh(self, n: int) -> tuple[CustomerTraits, CustomerState, Any]:
        """``n`` fresh customers at day 0 (and their event buffers), taken from the pool (refilled in batches)."""
        parts: list[tuple] = []
        while n > 0:
            if self._pool is None or self._pool_next >= self._pool[1].n_customers:
                self._pool = self._new_pool(max(self.pool_size, n))
                self._pool_next = 0
            k = min(n, self._pool[1].n_customers - self._pool_next)
            block = slice(self._pool_next, self._pool_next + k)
            parts.append(tuple(None if p is None else take(p, block) for p in self._pool))
            self._pool_next += k
            n -= k
        self.customers_started += sum(p[1].n_customers for p in parts)
        traits, state, history = (None if p[0] is None else concat(list(p)) for p in zip(*parts))
        return traits, state, history

    def _new_pool(self, n: int) -> tuple[CustomerTraits, CustomerState, Any]:
        """``n`` new customers with their histories simulated (recorded into event buffers with an encoder)."""
        if self.encoder is None:
            return (*self.sim.new_customers(n, self._rng), None)
        history = self.encoder.empty(n)
        on_day, on_acquire = self.encoder.recorders(history)
        return (*self.sim.new_customers(n, self._rng, on_day=on_day, on_acquire=on_acquire), history)

    def _observe(self, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Observations of the slots at ``index``: the simulator's features, then the encoder's if any."""
        traits, state = take(self._traits, index), take(self._state, index)
        obs = self.sim.observe(traits, state)
        if self.encoder is None:
            return obs
        history = take(self._history, index) if isinstance(index, np.ndarray) else self._history
        features = self.encoder.observe(history, state)
        if isinstance(index, np.ndarray):
            put(self._history, index, history)  # keep the embeddings just computed
        return np.concatenate([obs, features], axis=1)

    # -- VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds else None
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._pool = None
        self._reset_seeds()
        self._traits, self._state, self._history = self._draw(self.num_envs)
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        return self._observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, out, terminated, truncated, terminal_obs = self.step_arrays(self._actions)
        done = terminated | truncated
        columns = [getattr(out, k).tolist() for k in _INFO_KEYS]
        infos = [dict(zip(_INFO_KEYS, values)) for values in zip(*columns)]
        reward = out.expected_reward if self.expected_reward else out.reward
        self._episode_return += reward
        self._episode_length += 1
        for j, i in enumerate(np.flatnonzero(done)):
            infos[i]["terminal_observation"] = terminal_obs[j]
            infos[i]["episode"] = {"r": float(self._episode_return[i]), "l": int(self._episode_length[i]), "t": 0.0}
        self._episode_return[done] = 0.0
        self._episode_length[done] = 0
        return obs, reward, done, infos

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
        on_day = None if self.encoder is None else self.encoder.recorders(self._history)[0]
        self._state, out = self.sim.advance(self._traits, self._state, np.asarray(actions, np.int64), on_day=on_day)
        terminated, truncated = self.sim.done(self._state)
        obs = self._observe()
        done_idx = np.flatnonzero(terminated | truncated)
        terminal_obs = obs[done_idx].copy()
        if done_idx.size:
            done_idx = self._copies_of(done_idx)
            new_traits, new_state, new_history = self._draw(done_idx.size)
            put(self._traits, done_idx, new_traits)
            put(self._state, done_idx, new_state)
            if new_history is not None:
                put(self._history, done_idx, new_history)
            obs[done_idx] = self._observe(done_idx)
        return obs, out, terminated, truncated, terminal_obs

    def _copies_of(self, done_idx: np.ndarray) -> np.ndarray:
        """``done_idx`` ordered copy by copy (as :meth:`_draw` lays them out), after checking every copy of a
        finished customer finished with it."""
        if self.copies == 1:
            return done_idx
        group = self.num_envs // self.copies
        first = done_idx[done_idx < group]
        ordered = (first[None, :] + group * np.arange(self.copies)[:, None]).ravel()
        if not np.array_equal(np.sort(ordered), done_idx):
            raise RuntimeError("copies of a customer finished their decision periods on different steps")
        return ordered

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

    @property
    def history(self) -> Any:
        """The live customers' event buffers and cached embeddings (with an encoder observer)."""
        return self._history

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

"""Grid search for baseline parameters in simulation: every setting on the same customers, best mean objective wins.

A baseline is only a fair comparison for a learned policy once its own knobs are tuned on the same objective.
Each setting is evaluated with :func:`~offerpilot.envs.policy_evaluation.evaluate_policy` on the same training seeds
and cohort size (common random numbers), and scored by its per-customer objective averaged over the seeds.
Report the chosen setting on held-out seeds, not these.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from offerpilot.envs.policy import Policy
from offerpilot.envs.policy_evaluation import PolicyEvaluation, evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.errors import InputError

Grid = Mapping[str, Sequence[Any]]
"""Parameter name -> the values to try; the settings are the Cartesian product, in the grid's order."""

Evaluate = Callable[[PopulationSimulator, Policy, int, int], PolicyEvaluation]
"""``(sim, policy, n_customers, seed) -> PolicyEvaluation``, like :func:`evaluate_policy`."""

DEFAULT_GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "fixed_schedule": {
        "offer": ("pct5", "pct10", "pct20", "free_shipping", "points", "content"),  # the default catalog's messages
        "every_days": (14, 28, 56, 91),
    },
    "churn_threshold": {"threshold": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
}
"""Grids for the tunable named baselines (``make_baseline`` parameters), for the default catalog."""


@dataclass(frozen=True)
class TuningResult:
    """Every setting's objective on every training seed, and the best setting (first in grid order on ties)."""

    settings: tuple[dict[str, Any], ...]
    seeds: tuple[int, ...]
    scores: np.ndarray  # float64 (n_settings, n_seeds): mean per-customer objective of each setting on each seed

    @property
    def mean_scores(self) -> np.ndarray:
        """(n_settings,) float64: each setting's objective averaged over the seeds."""
        return self.scores.mean(axis=1)

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.mean_scores))

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.settings[self.best_index])

    @property
    def best_score(self) -> float:
        return float(self.mean_scores[self.best_index])

    def table(self) -> pd.DataFrame:
        """One row per setting: its parameters, ``objective`` (mean over seeds) and one ``seed_<s>`` column each,
        best first."""
        table = pd.DataFrame(list(self.settings))
        table["objective"] = self.mean_scores
        for j, seed in enumerate(self.seeds):
            table[f"seed_{seed}"] = self.scores[:, j]
        return table.sort_values("objective", ascending=False, kind="stable").reset_index(drop=True)


def grid_settings(grid: Grid) -> tuple[dict[str, Any], ...]:
    """The Cartesian product of ``grid`` as parameter dicts, the last parameter varying fastest."""
    names = list(grid)
    return tuple(dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names)))


def tune(
    make_policy: Callable[..., Policy],
    grid: Grid,
    sim: PopulationSimulator,
    n_customers: int,
    seeds: Sequence[int],
    evaluate: Evaluate = evaluate_policy,
    progress: bool = False,
    desc: str = "tuning",
) -> TuningResult:
    """Evaluate ``make_policy(**setting)`` for every setting of ``grid`` on ``n_customers`` customers per seed.

    Every setting meets the same customers (the same ``seeds`` and ``n_customers``); the score is the mean over
    seeds of the per-customer objective ``(1 - lam) * R_short + lam * CLV``. ``evaluate`` replaces
    :func:`evaluate_policy` (e.g. for policies that need encoder features).
    """
    settings = grid_settings(grid)
    seeds = tuple(int(s) for s in seeds)
    if not settings or not seeds:
        raise InputError("tuning needs at least one setting and one seed")
    bar = tqdm(total=len(settings) * len(seeds), desc=desc, unit="run", disable=not progress)
    scores = np.empty((len(settings), len(seeds)), np.float64)
    for i, setting in enumerate(settings):
        for j, seed in enumerate(seeds):
            scores[i, j] = evaluate(sim, make_policy(**setting), n_customers, seed).objective.mean
            bar.update()
    bar.close()
    return TuningResult(settings, seeds, scores)

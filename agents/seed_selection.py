"""``offerpilot train --seeds K``: K runs that differ only in their seed, the best one chosen on validation customers.

One PPO run is a draw from a wide distribution of policies; K runs and a fair choice among them make the result
depend far less on luck. The folder holds::

    config.json        the resolved TrainConfig of the first seed (a resumed run reads it back)
    seeds.json         the seeds; once all are trained, every seed's selection score and the chosen seed
    encoder/model      the customer encoder all K runs share, when one was trained for them
    seed_<S>/          one ordinary run folder per seed (see ``ppo_training``)

Every run's best policy is scored on the same selection customers (``SELECTION_SEED``: validation customers of
their own, never training, tuning or held-out ones), with common random numbers, so the runs meet the same luck
and the choice measures the policies. Commands that read a run (``evaluate``, ``export``, ``ope``) read the chosen
seed's folder through :func:`resolve_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from offerpilot.agents.seeds import SELECTION_SEED
from offerpilot.agents.train_config import TrainConfig
from offerpilot.atomic import write_text_atomic

SEEDS_FILE = "seeds.json"


def resolve_run(path: str | Path) -> Path:
    """The run folder ``path`` stands for: the chosen seed's folder of a ``--seeds`` run, else ``path`` itself."""
    path = Path(path)
    index = path / SEEDS_FILE
    if not index.is_file():
        return path
    try:
        chosen = json.loads(index.read_text())["chosen_run"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{index}: not a seeds file of 'offerpilot train --seeds' ({e})") from None
    if chosen is None:
        raise ValueError(f"{path}: its seeds are not all trained yet; continue with 'offerpilot train --out {path} --resume'")
    return path / chosen


def seeds_of(path: str | Path) -> list[int] | None:
    """The seeds of the multi-seed run in ``path``, ``None`` if it is not one."""
    index = Path(path) / SEEDS_FILE
    return json.loads(index.read_text())["seeds"] if index.is_file() else None


@dataclass(frozen=True)
class SeedsResult:
    """Every seed's selection objective and the chosen run."""

    run_dir: Path
    objectives: dict[int, float]
    chosen_seed: int

    @property
    def chosen_dir(self) -> Path:
        return self.run_dir / f"seed_{self.chosen_seed}"


def seed_list(first: int, k: int) -> list[int]:
    """The seeds of K runs: ``first, first + 1, ...``."""
    if k < 1:
        raise ValueError(f"--seeds must be >= 1, got {k}")
    return [first + i for i in range(k)]


def train_seeds(config: TrainConfig, run_dir: str | Path, k: int, selection_customers: int = 20_000, resume: bool = False,
                progress: bool = True) -> SeedsResult:
    """Train ``k`` runs of ``config`` (seeds ``config.seed`` ...) in ``run_dir/seed_<S>`` one after another, then choose.

    A finished run is kept as it is; with ``resume`` an unfinished one continues from its checkpoint. Runs on
    encoder features without ``config.encoder`` share one encoder, trained once into ``run_dir/encoder``.
    """
    from offerpilot.agents.comparison import arena_for, load_run
    from offerpilot.agents.ppo_training import check_inputs, encoder_observer, train_ppo

    run_dir = Path(run_dir)
    seeds = seed_list(config.seed, k)
    if resume and not (run_dir / SEEDS_FILE).is_file():
        raise FileNotFoundError(f"{run_dir}: no multi-seed run to resume (expected {run_dir / SEEDS_FILE})")
    if not resume and ((run_dir / SEEDS_FILE).is_file() or (run_dir / "config.json").is_file()):
        raise FileExistsError(f"{run_dir} already holds a training run; pass --resume to continue it, or choose another output folder")
    check_inputs(config)
    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")
        write_text_atomic(run_dir / SEEDS_FILE, json.dumps({"seeds": seeds, "chosen_run": None}, indent=2) + "\n")
    if config.observation == "encoder" and not config.encoder:
        encoder_observer(config, run_dir, progress)  # trained once, into run_dir/encoder
        config = replace(config, encoder=str((run_dir / "encoder" / "model").resolve()))
    for seed in seeds:
        folder = run_dir / f"seed_{seed}"
        if (folder / "policy").is_dir():
            continue  # finished (a resumed multi-seed run keeps its finished seeds)
        train_ppo(replace(config, seed=seed), folder, resume=resume and (folder / "checkpoint").is_dir(), progress=progress)
    arena = arena_for(config.lam, config.population)
    objectives = {}
    for seed in seeds:
        run = load_run(run_dir / f"seed_{seed}", f"seed {seed}")
        objectives[seed] = arena.evaluate(run, selection_customers, SELECTION_SEED, progress).objective.mean
    chosen = max(seeds, key=lambda s: (objectives[s], -s))
    record: dict[str, Any] = {
        "seeds": seeds,
        "selection": {"seed": SELECTION_SEED, "customers": selection_customers, "metric": f"mean objective, lam {config.lam}",
                      "objective_by_seed": {str(s): objectives[s] for s in seeds}},
        "chosen_seed": chosen,
        "chosen_run": f"seed_{chosen}",
    }
    write_text_atomic(run_dir / SEEDS_FILE, json.dumps(record, indent=2) + "\n")
    return SeedsResult(run_dir, objectives, chosen)

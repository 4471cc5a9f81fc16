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
seed's folder through :func:`~offerpilot.agents.trained_run.resolve_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from offerpilot.agents.ppo_training import check_inputs, encoder_observer, simulator_config, train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.agents.trained_run import POLICY_FOLDERS, SEEDS_FILE, TrainedRun
from offerpilot.atomic import write_text_atomic
from offerpilot.envs.policy_evaluation import evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.errors import InputError
from offerpilot.seeds import SELECTION_SEED


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
        raise InputError(f"--seeds must be >= 1, got {k}")
    return [first + i for i in range(k)]


def train_seeds(config: TrainConfig, run_dir: str | Path, k: int, selection_customers: int = 20_000, resume: bool = False,
                progress: bool = True) -> SeedsResult:
    """Train ``k`` runs of ``config`` (seeds ``config.seed`` ...) in ``run_dir/seed_<S>`` one after another, then choose.

    A finished run is kept as it is; with ``resume`` an unfinished one continues from its checkpoint. Runs on
    encoder features without ``config.encoder`` share one encoder, trained once into ``run_dir/encoder``.
    """
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
        if (folder / POLICY_FOLDERS["final"]).is_dir():
            continue  # finished (a resumed multi-seed run keeps its finished seeds)
        train_ppo(replace(config, seed=seed), folder, resume=resume and (folder / "checkpoint").is_dir(), progress=progress)
    sim = PopulationSimulator(simulator_config(config))
    observer = TrainedRun.from_pretrained(run_dir / f"seed_{seeds[0]}").encoder_observer(sim.catalog)  # one encoder for all
    objectives = {}
    for seed in seeds:
        run = TrainedRun.from_pretrained(run_dir / f"seed_{seed}")
        run.policy.policy_id = f"seed {seed}"
        evaluation = evaluate_policy(sim, run.policy, selection_customers, SELECTION_SEED, deterministic=True, progress=progress, encoder=observer)
        objectives[seed] = evaluation.objective.mean
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

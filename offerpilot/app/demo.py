"""``offerpilot demo``: the whole loop on the built-in defaults, from logged decisions to a report.

Simulate a shop's logs under uniformly random offers (a randomised test) -> train the customer encoder on
them -> train PPO on encoder features (plus the frontier's other ``lam`` and the oracle) -> evaluate every
policy against tuned baselines on held-out customers -> estimate the trained policy's value off-policy on
the logs, beside its simulated truth -> export a bundle -> score every logged customer with it -> write the
report. Each step's outputs land in a folder of their own under the demo folder, the way a user would
produce them with the single commands.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from offerpilot.agents.baselines import COMPARED_BASELINES
from offerpilot.agents.ppo_training import train_ppo
from offerpilot.agents.train_config import TrainConfig
from offerpilot.app.report import DemoReport, write_report
from offerpilot.atomic import write_text_atomic
from offerpilot.deployment.bundle import Bundle
from offerpilot.deployment.evaluate_logs import evaluate_logs
from offerpilot.deployment.export import ExportConfig, export_bundle
from offerpilot.deployment.scoring import ScoringConfig, score_customers
from offerpilot.encoders.embedding import embed_customers
from offerpilot.encoders.encoder_folder import load_encoder
from offerpilot.encoders.simulated import train_encoder_on_logs
from offerpilot.encoders.training_config import EncoderTrainingConfig
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.objective import DEFAULT_LAM
from offerpilot.envs.observers import LOG_INFORMED_FEATURES
from offerpilot.envs.policy import UniformRandomPolicy
from offerpilot.evaluation.comparison import Comparison, arena_for, compare, load_run, tuned_baselines
from offerpilot.ope.off_policy import OPEConfig
from offerpilot.ope.truth import per_decision_value
from offerpilot.seeds import HELD_OUT_SEED
from offerpilot.tables import read_decisions, read_events, write_table

SUMMARY = "summary.json"
"""The demo's verdicts as numbers (see :func:`summary`), for scripts that compare demos across seeds."""
DEMO_MARKER = "demo.json"
"""Written first into a demo folder: a later demo may replace a folder that holds it, and no other."""
START = pd.Timestamp("2025-01-01")
"""Day 0 of the logged decision period."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of every step. The defaults take about 15 minutes on 2 CPU cores; :meth:`quick` under 2."""

    customers: int = 20_000
    """Logged customers: the encoder's training data, the off-policy evaluation's logs and the scored batch."""
    lam: float = DEFAULT_LAM
    """The objective's trade-off between 30-day margin (0) and 365-day CLV (1) the policy is trained for."""
    ppo_timesteps: int = 6_000_000
    oracle_timesteps: int = 3_500_000
    """Steps of the full and the log-informed oracle: yardsticks, trained for less than the policy to keep the
    demo short (README's study trains its oracle for 18 M)."""
    frontier_lams: tuple[float, ...] = (0.0, 1.0)
    """Further ``lam`` trained (at ``frontier_timesteps``) to draw the revenue-vs-CLV frontier."""
    frontier_timesteps: int = 500_000
    """Steps of each frontier run, which starts from the trained policy's best weights (``init_policy``): a
    neighbouring trade-off needs a fraction of the steps of a run from scratch."""
    n_envs: int = 1024
    eval_every: int = 500_000
    """Timesteps between a run's validation evaluations (its learning curve and best-policy choice)."""
    validation_customers: int = 4_000
    encoder_pretrain_epochs: int | None = None
    encoder_finetune_epochs: int | None = None
    """Encoder epochs; ``None``: the encoder's defaults."""
    tuning_customers: int = 5_000
    """Customers per tuning seed of the baselines' grid search."""
    eval_customers: int = 20_000
    """Held-out customers every policy is evaluated on."""
    truth_customers: int = 50_000
    """Simulated customers behind the off-policy estimates' true value (more than the logs hold, so the truth's
    own sampling error is small beside the estimates')."""
    bootstrap: int = 200
    """Bootstrap replicates of the off-policy intervals."""
    parity_customers: int = 500
    """Simulated customers of the export's parity check."""
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """Every step at a size that runs in under 2 minutes: the loop works, the numbers are rough."""
        return cls(customers=2_000, ppo_timesteps=60_000, oracle_timesteps=30_000, frontier_lams=(1.0,), frontier_timesteps=30_000,
                   n_envs=256, eval_every=30_000, validation_customers=1_000, encoder_pretrain_epochs=1, encoder_finetune_epochs=3,
                   tuning_customers=1_000, eval_customers=2_000, truth_customers=10_000, bootstrap=100, parity_customers=100, seed=seed)


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things, and how long each step took (seconds)."""

    out: Path
    report: Path
    timings: dict[str, float]


class _Steps:
    """Numbered step headings on stderr with each step's wall time, so a long run says where it is."""

    def __init__(self, total: int, verbose: bool) -> None:
        self.total, self.verbose, self.done = total, verbose, 0
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.done += 1
        if self.verbose:
            print(f"[{self.done}/{self.total}] {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - started
        if self.verbose:
            print(f"      done in {self.timings[name]:.0f} s", file=sys.stderr, flush=True)


def prepare_folder(out: Path, config: DemoConfig) -> None:
    """Make ``out`` an empty demo folder: created, or emptied when an earlier demo wrote it.

    :raises FileExistsError: ``out`` holds anything else, which the demo will not delete.
    """
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder: choose another --out")
        if any(out.iterdir()) and not (out / DEMO_MARKER).is_file():
            raise FileExistsError(f"{out} is not empty and was not written by 'offerpilot demo': choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_text_atomic(out / DEMO_MARKER, json.dumps({"config": asdict(config), "start": str(START.date())}, indent=2) + "\n")


def run_demo(config: DemoConfig, out: str | Path, progress: bool = True) -> DemoResult:
    """Run the whole loop into ``out`` (see the module docstring) and write ``out/report``."""
    out = Path(out)
    prepare_folder(out, config)
    steps = _Steps(8, progress)
    arena = arena_for(config.lam)
    catalog = arena.raw.catalog
    horizon = arena.config.objective.horizon_days

    with steps(f"simulating the logs: {config.customers:,} customers, one year of weekly decisions under uniformly random offers"):
        logs = simulate_logs(arena.raw, UniformRandomPolicy(), config.customers, seed=config.seed, start=START, progress=progress)
        for name, frame in (("events", logs.events), ("decisions", logs.decisions), ("customers", logs.customers)):
            write_table(frame, out / "logs" / f"{name}.parquet")
        # From here on the logs are read back through the data contract, as a user's would be.
        events = read_events(out / "logs" / "events.parquet", catalog)
        decisions = read_decisions(out / "logs" / "decisions.parquet", catalog, users=set(events["user_id"]))

    with steps("training the customer encoder on the logs"):
        training = EncoderTrainingConfig(seed=config.seed, pretrain_epochs=config.encoder_pretrain_epochs, finetune_epochs=config.encoder_finetune_epochs)
        encoder = train_encoder_on_logs(logs, horizon, out / "encoder", config.seed, training=training, progress=progress)
        encoder_dir = encoder.model_dir

    base = TrainConfig(lam=config.lam, n_envs=config.n_envs, eval_every=config.eval_every, eval_customers=config.validation_customers,
                       checkpoint_every=config.eval_every, seed=config.seed, encoder=str(encoder_dir.resolve()))
    runs = {"ppo": replace(base, total_timesteps=config.ppo_timesteps)}
    start = str((out / "runs" / "ppo" / "best_policy").resolve())
    runs |= {f"ppo_lam{lam:g}": replace(base, lam=lam, total_timesteps=config.frontier_timesteps, init_policy=start) for lam in config.frontier_lams}
    runs["oracle"] = replace(base, observation="latent", encoder=None, total_timesteps=config.oracle_timesteps)
    runs["informed_oracle"] = replace(runs["oracle"], latent_features=LOG_INFORMED_FEATURES)
    with steps(f"training PPO: lam {config.lam} ({config.ppo_timesteps:,} steps), the frontier's lam {list(config.frontier_lams)}, the oracle "
               "and the log-informed oracle"):
        for name, train_config in runs.items():
            if progress:
                print(f"      {name}: {train_config.observation} observation, lam {train_config.lam}, {train_config.total_timesteps:,} steps", file=sys.stderr, flush=True)
            train_ppo(train_config, out / "runs" / name, progress=progress)

    with steps(f"evaluating every policy on {config.eval_customers:,} held-out customers (baselines tuned first)"):
        contenders = tuned_baselines(arena, COMPARED_BASELINES, encoder_dir, config.tuning_customers, progress=progress)
        contenders += [load_run(out / "runs" / name, name) for name in runs]
        comparison = compare(arena, contenders, config.eval_customers, HELD_OUT_SEED, progress=progress)

    with steps("off-policy evaluation of the trained policy on the logs, and its simulated truth"):
        _, ope = evaluate_logs(events, decisions, catalog, out / "runs" / "ppo", arena.config.objective,
                               OPEConfig(n_bootstrap=config.bootstrap, sequential=False, seed=config.seed), START)
        ppo = next(c for c in contenders if c.name == "ppo")
        truth = per_decision_value(arena.raw, UniformRandomPolicy(), ppo.policy, config.truth_customers, HELD_OUT_SEED + config.seed,
                                   encoder=arena.observer(encoder_dir), progress=progress)

    with steps("exporting the trained policy"):
        manifest = export_bundle(out / "runs" / "ppo", out / "bundle", ExportConfig(n_customers=config.parity_customers, seed=config.seed))

    with steps(f"scoring the {config.customers:,} logged customers with the bundle at the start of the next period"):
        scored = score_customers(Bundle(out / "bundle"), events, decisions, ScoringConfig(seed=config.seed))
        write_table(scored, out / "scores" / "decisions.parquet")
        model, tokenizer = load_encoder(encoder_dir)
        predictions = embed_customers(model, tokenizer, events, scored["ts"].iloc[0], user_ids=scored["user_id"].to_numpy())

    with steps("writing the report"):
        report = DemoReport(config=config, comparison=comparison, ope=ope, ope_truth=truth, manifest=manifest, bundle_dir=out / "bundle",
                            scored=scored, predictions=predictions[["user_id", "churn_probability", "expected_clv"]], events=events,
                            timings=steps.timings, n_events=len(events), n_decisions=len(decisions))
        path = write_report(report, out / "report")
    write_text_atomic(out / SUMMARY, json.dumps(summary(comparison, steps.timings), indent=2) + "\n")
    return DemoResult(out, path, steps.timings)


def summary(comparison: Comparison, timings: dict[str, float]) -> dict:
    """The demo's verdicts as numbers: each trained policy minus the best baseline and minus no offer (paired, mean
    and 95 % CI), which trained policy beats each baseline on 30-day margin and CLV, and each step's wall time."""
    best, best_clv = comparison.best_baseline(), comparison.best_baseline("clv")
    trained = [c.name for c in comparison.contenders if c.run_dir is not None and c.observation != "latent"]

    def paired(name: str, other: str, metric: str) -> list[float]:
        e = comparison.paired_difference(name, other, metric)
        return [e.mean, float(e.low), float(e.high)]

    dominated = {c.name: comparison.dominating(c.name) for c in comparison.contenders if c.run_dir is None}
    return {
        "best_baseline": best,
        "versus_best_baseline": {n: {m: paired(n, best, m) for m in ("objective", "clv", "r_short")} for n in trained},
        "best_baseline_by_clv": best_clv,
        "clv_versus_best_clv_baseline": {n: paired(n, best_clv, "clv") for n in trained},
        "versus_no_offer": {n: {m: paired(n, "no_offer", m) for m in ("objective", "clv", "r_short")} for n in trained},
        "oracle_share": comparison.oracle_share,
        "informed_oracle_share": comparison.informed_share,
        "dominated_by": {b: None if v is None else v[0] for b, v in dominated.items()},
        "timings_s": timings,
    }

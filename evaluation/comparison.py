"""Every policy on the same held-out customers: what ``offerpilot evaluate`` reports.

Trained policies come from their run folders (``best_policy/``: chosen on validation customers) and are
evaluated through the observation they were trained on: raw features, raw plus the customer encoder's, or the
simulator's latent state (the oracle). Baselines are tuned first, on training seeds of their own, with the same
objective. Every policy then meets the same customers (one seed draws them, whatever the policy sees), so
differences between policies are paired per customer; the oracle's gain over "no offer" is the yardstick of
what a policy achieves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from offerpilot.agents.baselines import FITTED_BASELINES, make_baseline
from offerpilot.agents.trained_run import TrainedRun
from offerpilot.agents.tuning import DEFAULT_GRIDS, tune
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.observers import LOG_INFORMED_FEATURES, latent_observer_name
from offerpilot.envs.policy import Policy
from offerpilot.envs.policy_evaluation import Estimate, PolicyEvaluation, evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig
from offerpilot.errors import InputError
from offerpilot.seeds import HELD_OUT_SEED, TUNING_SEEDS


@dataclass(frozen=True)
class Contender:
    """A policy and how it sees customers: ``raw``, ``encoder`` (needs ``encoder_dir``) or ``latent``."""

    name: str
    policy: Policy
    observation: str = "raw"
    encoder_dir: Path | None = None
    lam: float | None = None
    """The trade-off a trained policy was trained for (for the frontier), ``None`` for baselines."""
    run_dir: Path | None = None
    params: dict[str, Any] | None = None
    """Tuned parameters of a baseline."""


def load_run(run_dir: str | Path, name: str | None = None) -> Contender:
    """The best validated policy of a training run (the chosen seed's, for ``train --seeds``), with the observation it
    was trained on."""
    run = TrainedRun.from_pretrained(run_dir)
    latent = run.latent_features
    oracle = "oracle" if latent is None else "log-informed oracle" if latent == LOG_INFORMED_FEATURES else f"oracle ({', '.join(latent)})"
    label = name or (oracle if run.observation == "latent" else f"ppo ({run.observation}, lam {run.lam})")
    run.policy.policy_id = label
    return Contender(label, run.policy, run.observation, run.encoder_dir, run.lam, run.run_dir)


class Arena:
    """One simulated business (``config`` with the objective's ``lam``) and the observers policies need."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.raw = PopulationSimulator(config)
        self._latent: dict[str, PopulationSimulator] = {}
        self._encoders: dict[Path, Any] = {}

    def latent(self, latent_features: tuple[str, ...] | None = None) -> PopulationSimulator:
        """The simulator as an oracle that sees ``latent_features`` (``None``: all of them) observes it."""
        name = latent_observer_name(latent_features)
        if name not in self._latent:
            self._latent[name] = PopulationSimulator(replace(self.config, observer=name))
        return self._latent[name]

    def evaluate(self, contender: Contender, n_customers: int, seed: int, progress: bool = False) -> PolicyEvaluation:
        sim = self.latent(_latent_features(contender)) if contender.observation == "latent" else self.raw
        observer = self.observer(contender.encoder_dir) if contender.observation == "encoder" else None
        deterministic = contender.run_dir is not None  # a trained policy acts on its mode; baselines as they are defined
        return evaluate_policy(sim, contender.policy, n_customers, seed, deterministic=deterministic, progress=progress, encoder=observer)

    def observer(self, encoder_dir: Path | None):
        if encoder_dir is None:
            raise InputError("a policy on encoder features needs an encoder folder (--encoder, or a run trained on one)")
        key = Path(encoder_dir).resolve()
        if key not in self._encoders:
            from offerpilot.encoders.encoder_observer import EncoderObserver

            self._encoders[key] = EncoderObserver.from_pretrained(key, self.raw.catalog)
        return self._encoders[key]


def tuned_baselines(arena: Arena, names: tuple[str, ...], encoder_dir: Path | None, n_customers: int, seeds: tuple[int, ...] = TUNING_SEEDS,
                    progress: bool = False) -> list[Contender]:
    """The named baselines, their parameters tuned (grid search) or their models fitted on ``seeds``."""
    from offerpilot.agents.baselines import fit_reward_model_policy

    contenders = []
    for name in names:
        needs_encoder = name == "churn_threshold"
        observation = "encoder" if needs_encoder else "raw"
        feature_names = arena.raw.observer.feature_names + (arena.observer(encoder_dir).feature_names if needs_encoder else ())
        if name in FITTED_BASELINES:
            policy = fit_reward_model_policy(name, arena.raw, n_customers, seeds[0])
            contenders.append(Contender(name, policy, "raw"))
            continue
        params: dict[str, Any] = {}
        if name in DEFAULT_GRIDS:
            def evaluate(sim, policy, n, seed, _observation=observation):
                return arena.evaluate(Contender(name, policy, _observation, encoder_dir), n, seed)

            result = tune(lambda **p: make_baseline(name, arena.raw.catalog, feature_names, **p), DEFAULT_GRIDS[name], arena.raw, n_customers, seeds,
                          evaluate=evaluate, progress=progress, desc=f"tuning {name}")
            params = result.best_params
        contenders.append(Contender(name, make_baseline(name, arena.raw.catalog, feature_names, **params), observation, encoder_dir if needs_encoder else None, params=params))
    return contenders


SEED_FREE_OPTIONS = ("seed", "threads", "device", "eval_every", "eval_customers", "checkpoint_every", "encoder")
"""Training options that do not make two runs different configurations (the encoder is compared by folder)."""


def best_of_seeds(arena: Arena, runs: list[Contender], n_customers: int, seeds: tuple[int, ...] = TUNING_SEEDS, progress: bool = False) -> list[Contender]:
    """Runs that differ only in their training seed become one contender: the run whose policy has the best mean
    objective on ``n_customers`` per tuning seed, the customers the baselines are tuned on, so a seed is picked as
    fairly as a baseline's parameters and never on the held-out customers. Other runs pass through unchanged."""
    groups: dict[str, list[Contender]] = {}
    for run in runs:
        metadata = getattr(run.policy, "metadata", {})
        config = {k: v for k, v in (metadata.get("train_config") or {"run": str(run.run_dir)}).items() if k not in SEED_FREE_OPTIONS}
        key = json.dumps([config, str(Path(run.encoder_dir).resolve()) if run.encoder_dir else None], sort_keys=True)
        groups.setdefault(key, []).append(run)
    chosen = []
    for group in groups.values():
        if len(group) == 1:
            chosen.append(group[0])
            continue
        scores = [float(np.mean([arena.evaluate(run, n_customers, seed, progress).objective.mean for seed in seeds])) for run in group]
        best = group[int(np.argmax(scores))]
        picked = {"seed": best.policy.metadata["train_config"]["seed"], "tuning_objective_by_seed": {
            str(run.policy.metadata["train_config"]["seed"]): round(score, 4) for run, score in zip(group, scores)}}
        chosen.append(replace(renamed(best, f"{best.name}, best of {len(group)} seeds"), params=picked))
    return chosen


def renamed(contender: Contender, name: str) -> Contender:
    """``contender`` under ``name``, in the tables and in its policy's evaluations."""
    contender.policy.policy_id = name
    return replace(contender, name=name)


@dataclass(frozen=True)
class Comparison:
    """The evaluations of every contender on one cohort, and each one's share of the oracle's gain."""

    contenders: tuple[Contender, ...]
    evaluations: tuple[PolicyEvaluation, ...]
    oracle_share: dict[str, tuple[float, float, float]]
    """Name -> (share, low, high): (policy - no offer) / (oracle - no offer) in CLV, 95 % paired bootstrap."""
    informed_share: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """The same against the log-informed oracle (:data:`~offerpilot.envs.observers.LOG_INFORMED_FEATURES`), if it ran."""

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for c, e in zip(self.contenders, self.evaluations):
            row = {
                "policy": c.name,
                "objective": e.objective,
                "revenue_30d": e.revenue_short,
                "CLV": e.clv,
                **{f"retained_{d}d": v for d, v in e.retention.items()},
                "offers_sent": e.offers_sent,
                "discount_spend": e.discount_spend,
            }
            if c.name in self.oracle_share:
                row["oracle_gain_share"] = self.oracle_share[c.name]
            if c.name in self.informed_share:
                row["informed_oracle_gain_share"] = self.informed_share[c.name]
            rows.append(row)
        return rows

    def markdown(self) -> str:
        """The table: mean [95 % CI] per customer; shares of the oracle's CLV gain with their paired intervals."""
        rows = self.rows()
        shares = {"oracle_gain_share": ("share of oracle gain", self.oracle_share),
                  "informed_oracle_gain_share": ("share of log-informed oracle gain", self.informed_share)}
        shown = [key for key, (_, values) in shares.items() if values]
        header = [k for k in rows[0] if k not in shares] + [shares[key][0] for key in shown]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [row["policy"]] + [_cell(row[k]) for k in rows[0] if k not in shares and k != "policy"]
            for key in shown:
                share = row.get(key)
                cells.append("" if share is None else f"{share[0]:.0%} [{share[1]:.0%}, {share[2]:.0%}]")
            lines.append("| " + " | ".join(cells) + " |")
        trained = [c.name for c in self.contenders if c.run_dir is not None and c.observation != "latent"]
        if trained and any(c.run_dir is None for c in self.contenders):
            best = self.best_baseline()
            lines += ["", f"Paired on the same customers, minus the best baseline (`{best}`), per customer (95 % CI):", ""]
            lines += [f"- `{name}`: objective {self.paired_difference(name, best)}, CLV {self.paired_difference(name, best, 'clv')}, "
                      f"30-day margin {self.paired_difference(name, best, 'r_short')}" for name in trained]
        return "\n".join(lines) + "\n"

    def paired_difference(self, name: str, other: str, metric: str = "objective") -> Estimate:
        """``name`` minus ``other`` per customer (``objective``, ``clv`` or ``r_short``), mean and 95 % CI: the
        same customers met both policies, so their differences cancel who the customers were."""
        by_name = {c.name: e for c, e in zip(self.contenders, self.evaluations)}
        return Estimate.of(by_name[name].per_customer[metric] - by_name[other].per_customer[metric])

    def dominating(self, baseline: str) -> tuple[str, Estimate, Estimate] | None:
        """The trained policy (an oracle aside) that beats ``baseline`` on both axes of the frontier, 30-day margin
        and CLV, with paired 95 % intervals above zero, as ``(name, margin difference, CLV difference)``; of several,
        the one whose weaker lower bound is highest. ``None``: no trained policy does."""
        best = None
        for c in self.contenders:
            if c.run_dir is None or c.observation == "latent":
                continue
            margin, clv = self.paired_difference(c.name, baseline, "r_short"), self.paired_difference(c.name, baseline, "clv")
            worst = min(float(margin.low), float(clv.low))
            if worst > 0 and (best is None or worst > best[0]):
                best = (worst, c.name, margin, clv)
        return None if best is None else best[1:]

    def best_baseline(self, metric: str = "objective") -> str:
        """The baseline (not a trained run) with the highest mean ``metric``."""
        baselines = [(getattr(e, metric).mean, c.name) for c, e in zip(self.contenders, self.evaluations) if c.run_dir is None]
        return max(baselines)[1]

    def to_json(self) -> str:
        def plain(v: Any) -> Any:
            if hasattr(v, "mean") and hasattr(v, "low"):
                return {"mean": v.mean, "low": float(v.low), "high": float(v.high)}
            return list(v) if isinstance(v, tuple) else v

        return json.dumps([{k: plain(v) for k, v in row.items()} for row in self.rows()], indent=2) + "\n"


def _cell(estimate: Any) -> str:
    return f"{estimate.mean:.3f} [{float(estimate.low):.3f}, {float(estimate.high):.3f}]"


def compare(arena: Arena, contenders: list[Contender], n_customers: int, seed: int = HELD_OUT_SEED, n_boot: int = 500, progress: bool = True) -> Comparison:
    """Evaluate every contender on the same ``n_customers`` (drawn by ``seed``); shares of the oracle's gain if
    ``no_offer`` and the full oracle (latent observation) are among them, and of the log-informed oracle's if it is."""
    evaluations = tuple(arena.evaluate(c, n_customers, seed, progress) for c in contenders)
    by_name = {c.name: e for c, e in zip(contenders, evaluations)}

    def yardstick(features: tuple[str, ...] | None) -> PolicyEvaluation | None:
        return next((e for c, e in zip(contenders, evaluations) if c.observation == "latent" and _latent_features(c) == features), None)

    shares: dict[str, dict[str, tuple[float, float, float]]] = {}
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n_customers, n_customers) for _ in range(n_boot)]
    for key, oracle in (("full", yardstick(None)), ("informed", yardstick(LOG_INFORMED_FEATURES))):
        shares[key] = {}
        if oracle is None or "no_offer" not in by_name:
            continue
        base, top = by_name["no_offer"].per_customer["clv"], oracle.per_customer["clv"]
        for c, e in zip(contenders, evaluations):
            values = e.per_customer["clv"]
            share = (values.mean() - base.mean()) / (top.mean() - base.mean())
            boot = np.array([(values[i].mean() - base[i].mean()) / (top[i].mean() - base[i].mean()) for i in draws])
            shares[key][c.name] = (float(share), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
    return Comparison(tuple(contenders), evaluations, shares["full"], shares["informed"])


def _latent_features(contender: Contender) -> tuple[str, ...] | None:
    """The latent variables an oracle contender sees (``None``: all)."""
    latent = getattr(contender.policy, "metadata", {}).get("latent_features")
    return None if latent is None else tuple(latent)


def arena_for(lam: float, population: str = "default") -> Arena:
    from offerpilot.envs.presets import load_population

    return Arena(SimulatorConfig(population=load_population(population), objective=ObjectiveConfig(lam=lam)))

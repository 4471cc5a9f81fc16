"""How far each off-policy estimator can be trusted: bias, RMSE and interval coverage against simulator truth.

Run:  .venv/bin/python scripts/ope_validation.py [--seeds 50] [--customers 2000] [--bootstrap 200]
          [--interval studentized|percentile] [--sequential-seeds K | --no-sequential] [--workers 2]
          [--json out.json] [--cache-dir DIR]

For each logging policy (uniform random; epsilon-greedy around the recency rule, epsilon 0.3) and each
target policy (no_offer; recency_rule):

1. the truths, once, from large simulations on fixed seeds:
   * per decision, ``V1(pi)`` from :func:`offerpilot.ope.truth.per_decision_value` (branching
     under the logging policy's state distribution): what dm, ips, snips, dr, sndr, switch-dr, dr-os estimate;
   * per customer, the target's objective over one decision period from
     :func:`offerpilot.envs.policy_evaluation.evaluate_policy`: what pdis, wpdis, fqe, wdr estimate;
2. for seeds s = 0..S-1, logs of N customers under the logging policy (``simulate_logs(seed=s)``, shared by
   both targets), one :func:`offerpilot.ope.off_policy.evaluate_off_policy` per target
   (``OPEConfig(seed=s)``), and every estimate with its 95 % bootstrap interval kept (per-decision estimators:
   ``--interval``, studentized by default; trajectory estimators: percentile);
3. per estimator, over seeds with ``e_s`` the estimate and ``v`` the truth:
   ``bias = mean_s(e_s) - v`` (with the standard error of that mean), ``RMSE = sqrt(mean_s (e_s - v)^2)``,
   the spread ``sd_s(e_s)``, ``coverage = #{s : low_s <= v <= high_s} / S`` with a 95 % Wilson interval, the
   misses on each side (``high_s < v``: the interval lies below the truth; ``low_s > v``: above it), and the
   mean interval width. A well-calibrated 95 % interval has width about ``3.92 * sd``, covers 95 % of the
   time and misses about as often on each side.

The trajectory estimators (fitted-Q evaluation refits 53 gradient-boosted regressors) dominate the time,
so ``--sequential-seeds K`` runs them on the first K seeds only (``--no-sequential``: none); every table row
says how many seeds it rests on. Seeds are pinned (truth seeds below, seed s for the logs and the
estimators' bootstrap and folds), so the numbers reproduce, whatever ``--workers`` and ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from offerpilot.agents.baselines import EpsilonGreedyPolicy, NoOfferPolicy, RecencyRulePolicy
from offerpilot.atomic import write_text_atomic
from offerpilot.deployment.evaluate_logs import target_probs
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.policy import Policy, UniformRandomPolicy
from offerpilot.envs.policy_evaluation import Z95, evaluate_policy
from offerpilot.envs.simulator import PopulationSimulator
from offerpilot.ope.bootstrap import INTERVAL_METHODS
from offerpilot.ope.logged_decisions import logged_decisions
from offerpilot.ope.off_policy import OPEConfig, evaluate_off_policy
from offerpilot.ope.truth import per_decision_value
from offerpilot.seeds import HELD_OUT_SEED, OPE_TRUTH_SEED

PERIOD_START = "2025-01-01"
EPSILON = 0.3
PER_CUSTOMER_TRUTH_SEED = HELD_OUT_SEED
"""Seed of the per-customer truth; the k-th target uses this + k (the per-decision one: ``OPE_TRUTH_SEED`` + k)."""
PER_DECISION = "per decision"
PER_CUSTOMER = "per customer"


@dataclass(frozen=True)
class ValidationConfig:
    """One validation study."""

    seeds: int = 50
    """Number of simulated logs per logging policy (seeds 0..seeds-1)."""
    customers: int = 2000
    """Customers per simulated log (each has 53 decisions)."""
    bootstrap: int = 200
    """Bootstrap replicates per interval."""
    sequential_seeds: int = 50
    """Run the per-customer (trajectory) estimators on the first this many seeds."""
    truth_customers: int = 200_000
    """Customers in each truth simulation."""
    workers: int = 1
    """Processes working on seeds in parallel (results do not depend on it)."""
    threads: int | None = 1
    """BLAS/OpenMP threads per process (None: the libraries' default). 1 avoids OpenMP oversubscription,
    which on a busy machine made one gradient-boosting fit over 100x slower; use ``workers`` for more cores."""
    interval: str = "studentized"
    """Interval of the per-decision estimators (``OPEConfig.interval_method``): studentized or percentile bootstrap."""


@dataclass(frozen=True)
class Truth:
    """A simulated true value with its Monte Carlo standard error."""

    value: float
    se: float
    n_customers: int
    seed: int


@dataclass(frozen=True)
class Summary:
    """One estimator's record over seeds against one truth."""

    estimator: str
    scope: str
    n_seeds: int
    truth: float
    mean: float
    bias: float
    bias_se: float
    """Standard error of the bias: the seeds' spread over sqrt(n) and the truth's own error, in quadrature."""
    rmse: float
    sd: float
    covered: int
    missed_below: int
    """Seeds whose interval lies entirely below the truth."""
    missed_above: int
    """Seeds whose interval lies entirely above the truth."""
    coverage: float
    coverage_low: float
    coverage_high: float
    mean_width: float


def policies(sim: PopulationSimulator) -> tuple[dict[str, Policy], dict[str, Policy]]:
    """The logging and target policies of the study, by name."""
    logging = {
        "uniform": UniformRandomPolicy(),
        f"epsilon_greedy({EPSILON})": EpsilonGreedyPolicy(RecencyRulePolicy(sim.catalog), epsilon=EPSILON),
    }
    targets = {"no_offer": NoOfferPolicy(), "recency_rule": RecencyRulePolicy(sim.catalog)}
    return logging, targets


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k / n."""
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def summarise(estimator: str, scope: str, runs: list[dict], truth: Truth) -> Summary:
    """Bias, RMSE, coverage and width of ``estimator`` over ``runs`` (each a list of estimate dicts)."""
    rows = [next(r for r in run if r["estimator"] == estimator) for run in runs]
    value = np.array([r["value"] for r in rows])
    low, high = np.array([r["low"] for r in rows]), np.array([r["high"] for r in rows])
    n = value.size
    sd = float(value.std(ddof=1)) if n > 1 else float("nan")
    covered = int(((low <= truth.value) & (truth.value <= high)).sum())
    c_low, c_high = wilson(covered, n)
    return Summary(
        estimator=estimator,
        scope=scope,
        n_seeds=n,
        truth=truth.value,
        mean=float(value.mean()),
        bias=float(value.mean() - truth.value),
        bias_se=math.sqrt(sd**2 / n + truth.se**2) if n > 1 else float("nan"),
        rmse=float(np.sqrt(np.mean((value - truth.value) ** 2))),
        sd=sd,
        covered=covered,
        missed_below=int((high < truth.value).sum()),
        missed_above=int((low > truth.value).sum()),
        coverage=covered / n,
        coverage_low=c_low,
        coverage_high=c_high,
        mean_width=float((high - low).mean()),
    )


def markdown_table(title: str, summaries: list[Summary]) -> str:
    """One logging x target pair as a Markdown table."""
    lines = [
        f"#### {title}",
        "",
        "| estimator | scope | seeds | truth | mean estimate | bias (± se) | RMSE | sd over seeds | 95 % CI coverage [Wilson 95 %] | misses below / above | mean CI width |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries:
        lines.append(
            f"| {s.estimator} | {s.scope} | {s.n_seeds} | {s.truth:.4f} | {s.mean:.4f} | {s.bias:+.4f} ± {s.bias_se:.4f} | "
            f"{s.rmse:.4f} | {s.sd:.4f} | {s.covered}/{s.n_seeds} = {s.coverage:.0%} [{s.coverage_low:.0%}, {s.coverage_high:.0%}] | "
            f"{s.missed_below} / {s.missed_above} | {s.mean_width:.4f} |"
        )
    return "\n".join(lines)


def compute_truths(
    sim: PopulationSimulator, logging: dict[str, Policy], targets: dict[str, Policy], n_customers: int
) -> tuple[dict[tuple[str, str], Truth], dict[str, Truth]]:
    """Per-decision truth per (logging, target) and per-customer truth per target, on pinned seeds."""
    per_decision: dict[tuple[str, str], Truth] = {}
    pairs = [(lo, ta) for lo in logging for ta in targets]
    for k, (lo, ta) in enumerate(tqdm(pairs, desc="per-decision truths", unit="pair")):
        seed = OPE_TRUTH_SEED + k
        value, se = per_decision_value(sim, logging[lo], targets[ta], n_customers, seed)
        per_decision[lo, ta] = Truth(value, se, n_customers, seed)
    per_customer: dict[str, Truth] = {}
    for k, ta in enumerate(tqdm(list(targets), desc="per-customer truths", unit="target")):
        seed = PER_CUSTOMER_TRUTH_SEED + k
        objective = evaluate_policy(sim, targets[ta], n_customers, seed).objective
        per_customer[ta] = Truth(objective.mean, (objective.high - objective.mean) / Z95, n_customers, seed)
    return per_decision, per_customer


def run_seed(logging_name: str, seed: int, config: ValidationConfig) -> dict[str, dict]:
    """One simulated log under the named logging policy and one off-policy evaluation per target."""
    with threadpool_limits(limits=config.threads):
        sim = PopulationSimulator()
        logging, targets = policies(sim)
        return _run_seed(sim, logging[logging_name], targets, seed, config)


def _run_seed(
    sim: PopulationSimulator, logging: Policy, targets: dict[str, Policy], seed: int, config: ValidationConfig
) -> dict[str, dict]:
    logs = simulate_logs(sim, logging, config.customers, seed=seed, start=PERIOD_START, progress=False)
    data = logged_decisions(logs.events, logs.decisions, sim.catalog, PERIOD_START)
    sequential = seed < config.sequential_seeds
    out = {}
    for name, target in targets.items():
        started = time.perf_counter()
        ope = OPEConfig(n_bootstrap=config.bootstrap, sequential=sequential, interval_method=config.interval, seed=seed)
        report = evaluate_off_policy(data, target_probs(target, data, logs.events, sim.catalog), ope)
        out[name] = {**report.to_dict(), "seconds": time.perf_counter() - started}
    return out


def main(argv: list[str] | None = None) -> int:
    args, config = _parse(argv)
    wall_start = time.perf_counter()
    sim = PopulationSimulator()
    logging, targets = policies(sim)
    print(f"OPE validation: {config}", flush=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)

    started = time.perf_counter()
    with threadpool_limits(limits=config.threads):
        per_decision_truth, per_customer_truth = compute_truths(sim, logging, targets, config.truth_customers)
    truth_seconds = time.perf_counter() - started
    print(f"\ntruths ({config.truth_customers:,} customers each, {truth_seconds:.0f} s):")
    for (lo, ta), t in per_decision_truth.items():
        print(f"  per decision, logging {lo}, target {ta}: {t.value:.5f} (se {t.se:.5f}, seed {t.seed})")
    for ta, t in per_customer_truth.items():
        print(f"  per customer, target {ta}: {t.value:.4f} (se {t.se:.4f}, seed {t.seed})")
    sys.stdout.flush()

    started = time.perf_counter()
    results, n_reused = _run_seeds(config, list(logging), args.cache_dir)
    seeds_seconds = time.perf_counter() - started
    raw: dict[str, dict[str, list[dict]]] = {
        lo: {ta: [{"seed": s, "sequential": s < config.sequential_seeds, **results[lo, s][ta]} for s in range(config.seeds)] for ta in targets}
        for lo in logging
    }
    summaries = _summarise(raw, config, per_decision_truth, per_customer_truth)

    wall = time.perf_counter() - wall_start
    per_seed = seeds_seconds / config.seeds
    print(
        f"wall time {wall:.0f} s ({wall / 60:.1f} min): truths {truth_seconds:.0f} s, "
        f"{config.seeds} seeds {seeds_seconds:.0f} s ({per_seed:.1f} s per seed for {len(logging)} logs x {len(targets)} targets, "
        f"{config.workers} worker(s); trajectory estimators on the first {config.sequential_seeds} seeds)"
        + (f"; {n_reused} of {config.seeds * len(logging)} (logging policy, seed) runs were reused from {args.cache_dir}" if n_reused else "")
    )
    if args.json is not None:
        payload = {
            "config": asdict(config),
            "period_start": PERIOD_START,
            "epsilon": EPSILON,
            "wall_seconds": wall,
            "truth_seconds": truth_seconds,
            "seeds_seconds": seeds_seconds,
            "truths": {
                "per_decision": {f"{lo}|{ta}": asdict(t) for (lo, ta), t in per_decision_truth.items()},
                "per_customer": {ta: asdict(t) for ta, t in per_customer_truth.items()},
            },
            "summaries": {lo: {ta: [asdict(s) for s in rows] for ta, rows in by_target.items()} for lo, by_target in summaries.items()},
            "runs": raw,
        }
        write_text_atomic(args.json, json.dumps(payload, indent=1))  # a killed run leaves the old file or the new one
        print(f"wrote {args.json}")
    return 0


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, ValidationConfig]:
    """The command line and the study's configuration."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50, help="simulated logs per logging policy (default: %(default)s)")
    parser.add_argument("--customers", type=int, default=2000, help="customers per log (default: %(default)s)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates per interval (default: %(default)s)")
    parser.add_argument(
        "--interval", choices=INTERVAL_METHODS, default="studentized",
        help="interval of the per-decision estimators: studentized (bootstrap-t) or percentile bootstrap (default: %(default)s)",
    )
    parser.add_argument("--truth-customers", type=int, default=200_000, help="customers per truth simulation (default: %(default)s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--sequential-seeds", type=int, default=None, help="run the per-customer estimators on the first K seeds only (default: all)")
    group.add_argument("--no-sequential", action="store_true", help="skip the per-customer estimators (PDIS, WPDIS, FQE, WDR)")
    parser.add_argument("--workers", type=int, default=1, help="processes working on seeds in parallel (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per process; 0: the libraries' own (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="write truths, every raw estimate and the summaries here")
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="keep each finished (logging policy, seed) here and reuse it when run again with the same settings, "
        "so an interrupted study resumes where it stopped",
    )
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.customers < 2 or args.bootstrap < 1 or args.workers < 1:
        parser.error("need --seeds >= 2, --customers >= 2, --bootstrap >= 1 and --workers >= 1")
    sequential_seeds = 0 if args.no_sequential else min(args.seeds if args.sequential_seeds is None else args.sequential_seeds, args.seeds)
    config = ValidationConfig(
        args.seeds, args.customers, args.bootstrap, sequential_seeds, args.truth_customers, args.workers, args.threads or None,
        args.interval,
    )
    return args, config


def _run_seeds(config: ValidationConfig, logging: list[str], cache_dir: Path | None) -> tuple[dict[tuple[str, int], dict[str, dict]], int]:
    """Every (logging policy, seed) run, in parallel over ``config.workers`` processes, reusing the finished ones
    kept in ``cache_dir``; returns the results and how many were reused."""
    tasks = [(lo, seed) for seed in range(config.seeds) for lo in logging]
    results: dict[tuple[str, int], dict[str, dict]] = {}
    # One bar step per seed: a seed is done when every logging policy's log has been evaluated.
    bar = tqdm(total=config.seeds, desc="seeds", unit="seed")
    done_per_seed = dict.fromkeys(range(config.seeds), 0)

    def finished(lo: str, seed: int, result: dict[str, dict], save: bool = True) -> None:
        results[lo, seed] = result
        if save and cache_dir is not None:
            write_text_atomic(_cache_path(cache_dir, lo, seed), json.dumps({"key": _cache_key(config, seed), "result": result}))
        done_per_seed[seed] += 1
        if done_per_seed[seed] == len(logging):
            bar.update(1)
            bar.set_postfix_str(f"seed {seed} done; trajectory estimators on seeds < {config.sequential_seeds}")

    n_reused = 0
    if cache_dir is not None:
        for lo, seed in list(tasks):
            path = _cache_path(cache_dir, lo, seed)
            cached = json.loads(path.read_text()) if path.is_file() else None
            if cached is not None and cached["key"] == _cache_key(config, seed):
                tasks.remove((lo, seed))
                finished(lo, seed, cached["result"], save=False)
                n_reused += 1
        if n_reused:
            print(f"reusing {n_reused} finished (logging policy, seed) runs from {cache_dir}", flush=True)
    if config.workers == 1:
        for lo, seed in tasks:
            finished(lo, seed, run_seed(lo, seed, config))
    else:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            futures = {pool.submit(run_seed, lo, seed, config): (lo, seed) for lo, seed in tasks}
            for future in as_completed(futures):
                finished(*futures[future], future.result())
    bar.close()
    return results, n_reused


def _summarise(raw: dict[str, dict[str, list[dict]]], config: ValidationConfig, per_decision_truth: dict, per_customer_truth: dict) -> dict[str, dict[str, list[Summary]]]:
    """Bias, RMSE and coverage of every estimator for every (logging, target) pair, printed as tables."""
    summaries: dict[str, dict[str, list[Summary]]] = {}
    print()
    for lo in raw:
        summaries[lo] = {}
        for ta in raw[lo]:
            runs = raw[lo][ta]
            rows = []
            for estimator, scope in [(r["estimator"], r["scope"]) for r in runs[0]["estimates"]]:
                scoped = [r["estimates"] for r in runs if any(e["estimator"] == estimator for e in r["estimates"])]
                truth = per_decision_truth[lo, ta] if scope == PER_DECISION else per_customer_truth[ta]
                rows.append(summarise(estimator, scope, scoped, truth))
            summaries[lo][ta] = rows
            ess = np.mean([r["decision_diagnostics"]["ess_share"] for r in runs])
            traj = [r["trajectory_ess"] for r in runs if r["trajectory_ess"] is not None]
            title = f"logging {lo}, target {ta}"
            print(markdown_table(title, rows))
            note = f"\nper-decision ESS share {ess:.1%} (mean over seeds)"
            if traj:
                note += f"; trajectory ESS {np.mean(traj):.2f} of {config.customers} customers (mean over {len(traj)} seeds)"
            print(note + "\n")
    return summaries


def _cache_path(cache_dir: Path, logging_name: str, seed: int) -> Path:
    return cache_dir / f"{logging_name}-seed{seed}.json"


def _cache_key(config: ValidationConfig, seed: int) -> dict:
    """What a cached run depends on (not workers, threads or the truths)."""
    return {"customers": config.customers, "bootstrap": config.bootstrap, "sequential": seed < config.sequential_seeds,
            "period_start": PERIOD_START, "epsilon": EPSILON, "interval": config.interval}


if __name__ == "__main__":
    raise SystemExit(main())

"""Logs in and out: ``offerpilot simulate``, ``validate`` and ``calibrate``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from offerpilot.app.commands.options import add_outcome_log_arguments, outcome_log, read_catalog, timestamp
from offerpilot.atomic import write_text_atomic
from offerpilot.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add 'simulate', 'validate', 'calibrate' to the ``offerpilot`` command."""
    sim = sub.add_parser("simulate", help="write simulated events and decisions logs in the data contract",
                         description="Simulate customers' histories, then one decision period under a behaviour "
                         "policy, and write events, decisions (with exact propensities and the full action "
                         "distribution) and the customers' latent truth.")
    sim.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    sim.add_argument("--customers", type=int, default=5_000, help="number of customers (default: %(default)s)")
    sim.add_argument("--policy", choices=("uniform", "epsilon-greedy", "rule", "no-offer"), default="epsilon-greedy",
                     help="behaviour policy: uniform over legal offers; epsilon-greedy around the recency rule; "
                     "the rule alone; or no offers (default: %(default)s)")
    sim.add_argument("--epsilon", type=float, default=0.2, help="exploration share of epsilon-greedy (default: %(default)s)")
    sim.add_argument("--rule-offer", default="pct10", help="offer the recency rule sends (default: %(default)s)")
    sim.add_argument("--rule-days", type=int, default=60, help="days since purchase that trigger the rule (default: %(default)s)")
    sim.add_argument("--population", default="default", help="population: 'default', 'cdnow' or a JSON file from 'calibrate'")
    sim.add_argument("--catalog", type=Path, default=None, help="offer catalog YAML (default: the built-in catalog)")
    sim.add_argument("--history-days", type=int, default=365, help="longest customer tenure before decisions (default: %(default)s)")
    sim.add_argument("--horizon-days", type=int, default=365, help="days of the decision period (default: %(default)s)")
    sim.add_argument("--interval-days", type=int, default=7, help="days between decisions (default: %(default)s)")
    sim.add_argument("--start", type=timestamp, default="2025-01-01", help="date of the first decision (default: %(default)s)")
    sim.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sim.set_defaults(run=run_simulate)

    val = sub.add_parser("validate", help="check every file offerpilot reads: events, decisions, outcome logs, target tables",
                         description="Report every problem with its file, row and column; exit 1 if any is found. Files are told apart "
                         "by their columns: events, decisions (or, with --outcome, outcome logs) and target-policy tables (prob_<action> "
                         "columns, as 'offerpilot ope --policy' reads them), which are checked against the decisions given with them.")
    val.add_argument("paths", nargs="+", type=Path, help="events, decisions and target-policy files (.parquet or .csv)")
    val.add_argument("--catalog", type=Path, default=None, help="offer catalog YAML the offer ids must come from")
    add_outcome_log_arguments(val)
    val.set_defaults(run=run_validate)

    cal = sub.add_parser("calibrate", help="fit the population's purchase, dropout and spend model to a purchase log",
                         description="Fit Pareto/NBD (purchase and dropout heterogeneity) and Gamma-Gamma (spend) by "
                         "maximum likelihood, in days, and write a population JSON for --population.")
    src = cal.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", type=Path, help="events file in the data contract (purchases are used)")
    src.add_argument("--cdnow", action="store_true", help="use the real CDNOW log shipped with the Lifetimes package")
    cal.add_argument("--calibration-end", type=timestamp, default=None, help="last day of the calibration period (default: the last purchase; "
                     "CDNOW: 1997-09-30)")
    cal.add_argument("--holdout-end", type=timestamp, default=None, help="also simulate the cohort to this day and compare with the real holdout")
    cal.add_argument("--out", type=Path, required=True, help="population JSON to write")
    cal.set_defaults(run=run_calibrate)


def run_simulate(args: argparse.Namespace) -> int:
    from offerpilot.agents.baselines import EpsilonGreedyPolicy, NoOfferPolicy, RecencyRulePolicy
    from offerpilot.envs.log_generation import simulate_logs
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.envs.policy import UniformRandomPolicy
    from offerpilot.envs.presets import load_population
    from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig
    from offerpilot.tables import write_table

    if args.customers < 1:
        raise InputError("--customers must be >= 1")
    catalog = read_catalog(args.catalog)
    config = SimulatorConfig(
        population=load_population(args.population),
        objective=ObjectiveConfig(horizon_days=args.horizon_days, short_window_days=min(30, args.horizon_days)),
        catalog=catalog,
        decision_interval_days=args.interval_days,
        history_days=args.history_days,
    )
    catalog.index(args.rule_offer)  # an unknown offer is a clear error before any work
    sim = PopulationSimulator(config)
    rule = RecencyRulePolicy(catalog, offer=args.rule_offer, min_days_since_purchase=args.rule_days)
    policy = {
        "uniform": UniformRandomPolicy(),
        "epsilon-greedy": EpsilonGreedyPolicy(rule, epsilon=args.epsilon),
        "rule": rule,
        "no-offer": NoOfferPolicy(),
    }[args.policy]
    logs = simulate_logs(sim, policy, args.customers, seed=args.seed, start=args.start)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "." + args.format
    for name, frame in (("events", logs.events), ("decisions", logs.decisions), ("customers", logs.customers)):
        write_table(frame, args.out / f"{name}{suffix}")
    resolved = {
        "command": "simulate",
        "seed": args.seed,
        "customers": args.customers,
        "policy": args.policy,
        "epsilon": args.epsilon if args.policy == "epsilon-greedy" else None,
        "start": args.start.isoformat(),
        "population": asdict(config.population),
        "objective": asdict(config.objective),
        "decision_interval_days": config.decision_interval_days,
        "history_days": config.history_days,
        "catalog": catalog.to_dict(),
    }
    write_text_atomic(args.out / "config.json", json.dumps(resolved, indent=2))
    print(f"wrote {len(logs.events):,} events, {len(logs.decisions):,} decisions and {args.customers:,} customers to {args.out}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from offerpilot.file_checks import validate_paths

    if args.outcome is not None and args.catalog is not None:
        raise InputError("an outcome log needs no --catalog: its actions are the ids in --action-column and the target table's prob_<action> columns")
    catalog = read_catalog(args.catalog)
    report = validate_paths(args.paths, catalog, outcome_log(args) if args.outcome is not None else None)
    n_problems = 0
    for path, problems in report.items():
        if problems:
            print(f"{path}: {len(problems)} problem(s)")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"{path}: OK")
        n_problems += len(problems)
    return 1 if n_problems else 0


def run_calibrate(args: argparse.Namespace) -> int:
    from offerpilot.envs.calibration import calibrate, holdout_fidelity
    from offerpilot.envs.cdnow import load_cdnow
    from offerpilot.tables import read_events

    if args.cdnow:
        events, end = load_cdnow(), "1997-09-30" if args.calibration_end is None else args.calibration_end
    else:
        events, end = read_events(args.events), args.calibration_end
    result = calibrate(events, calibration_end=end)
    write_text_atomic(args.out, json.dumps(result.to_dict(), indent=2))
    p = result.params
    print(f"fitted on {result.n_customers:,} customers up to {result.calibration_end} (days):")
    print(f"  purchase rate ~ Gamma(r={p.r:.4g}, alpha={p.alpha:.4g}); dropout ~ Gamma(s={p.s:.4g}, beta={p.beta:.4g}); "
          f"spend Gamma-Gamma p={p.spend_p:.4g}, q={p.spend_q:.4g}, gamma={p.spend_gamma:.4g}")
    if args.holdout_end:
        h = holdout_fidelity(events, p, result.calibration_end, args.holdout_end)
        print(f"holdout to {args.holdout_end}: share with no purchase real {h.real_zero_share:.3f} vs simulated "
              f"{h.sim_zero_share:.3f}; purchases per customer {h.real_mean_purchases:.3f} vs {h.sim_mean_purchases:.3f}; "
              f"spend per buyer {h.real_mean_spend_per_buyer:.2f} vs {h.sim_mean_spend_per_buyer:.2f}")
    print(f"wrote {args.out}")
    return 0

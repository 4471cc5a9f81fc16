"""A policy's value estimated from logged decisions: ``offerpilot ope``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from offerpilot.app.commands.options import read_catalog, timestamp
from offerpilot.atomic import atomic_directory
from offerpilot.envs.objective import DEFAULT_LAM
from offerpilot.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add 'ope' to the ``offerpilot`` command."""
    ope = sub.add_parser("ope", help="estimate a policy's value from logged decisions (off-policy evaluation)",
                         description="Estimate what a target policy would have earned on the customers in the logs, "
                         "with per-decision (DM, IPS, SNIPS, DR, SNDR, switch-DR, DRos) and per-customer (PDIS, WPDIS, "
                         "FQE, WDR) estimators, bootstrap confidence intervals and overlap diagnostics.")
    ope.add_argument("--logs", type=Path, help="folder holding events.{parquet,csv} and decisions.{parquet,csv}")
    ope.add_argument("--events", type=Path, help="events file (instead of --logs)")
    ope.add_argument("--decisions", type=Path, help="decisions file (instead of --logs)")
    ope.add_argument("--policy", required=True, help="target policy: a baseline (no_offer, uniform, recency_rule, "
                     "epsilon_greedy), an exported bundle ('offerpilot export'), a trained run or policy folder ('offerpilot train'), "
                     "or a table with user_id, ts and prob_<offer_id> for every decision")
    ope.add_argument("--catalog", type=Path, default=None, help="offer catalog YAML (default: the built-in catalog)")
    ope.add_argument("--period-start", type=timestamp, default=None, help="day 0 of the decision period (default: the first decision's day)")
    ope.add_argument("--lam", type=float, default=DEFAULT_LAM, help="short-term / lifetime trade-off of the objective (default: %(default)s)")
    ope.add_argument("--interval-days", type=int, default=7, help="days of margin credited to a decision (default: %(default)s)")
    ope.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates per interval (default: %(default)s)")
    ope.add_argument("--no-sequential", action="store_true", help="skip the per-customer estimators (faster)")
    ope.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ope.add_argument("--out", type=Path, default=None, help="folder for ope.json and ope.png")
    ope.set_defaults(run=run_ope)


OPE_OUTPUTS = ("ope.json", "ope.png")


def run_ope(args: argparse.Namespace) -> int:
    from offerpilot.deployment.evaluate_logs import check_target, evaluate_logs
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.ope.off_policy import OPEConfig
    from offerpilot.ope.plot import plot_ope
    from offerpilot.tables import read_logs

    # The flags first: a bad one is refused before the logs are read.
    objective = ObjectiveConfig(lam=args.lam)
    config = OPEConfig(n_bootstrap=args.bootstrap, sequential=not args.no_sequential, seed=args.seed)
    check_target(args.policy)
    if args.out is not None:
        check_own_folder(args.out, OPE_OUTPUTS, "--out")
    events_path, decisions_path = log_paths(args)
    catalog = read_catalog(args.catalog)
    events, decisions = read_logs(events_path, decisions_path, catalog)
    data, report = evaluate_logs(events, decisions, catalog, args.policy, objective, config, args.period_start, args.interval_days)
    print(f"off-policy evaluation of {args.policy} on {report.n_decisions:,} decisions of {report.n_customers:,} customers "
          f"(lam = {args.lam}, {1 - config.alpha:.0%} bootstrap intervals, {config.n_bootstrap} replicates, seed {args.seed})")
    print_table([
        {"estimator": r.estimator, "scope": r.scope, "value": f"{r.value:.4f}", "interval": f"[{r.low:.4f}, {r.high:.4f}]"}
        for r in report.rows
    ])
    print("note: dm, switch-dr and dr-os keep the reward model fitted once across bootstrap replicates, so their "
          "intervals understate the uncertainty; dr and snips are the ones validated to cover (README)")
    d = report.decision_diagnostics
    print(f"logging policy realised {report.logged_per_decision:.4f} per decision, {report.logged_per_customer:.4f} per customer")
    print(f"importance weights: effective sample size {d.ess:,.0f} ({d.ess_share:.1%} of decisions), max {d.max_weight:.1f}")
    if data.n_unattributed_purchases:
        print(f"note: {data.n_unattributed_purchases:,} purchases fell outside every decision window and earn no decision credit")
    for w in report.warnings:
        print(f"warning: {w}")
    if args.out is not None:
        with atomic_directory(args.out) as folder:  # both files or neither: the folder moves as one
            (folder / "ope.json").write_text(json.dumps({"policy": args.policy, "lam": args.lam, **report.to_dict()}, indent=2))
            plot_ope(report, folder / "ope.png", f"off-policy evaluation of {args.policy}")
        print(f"wrote {args.out / 'ope.json'} and {args.out / 'ope.png'}")
    return 0


def check_own_folder(folder: Path, outputs: tuple[str, ...], flag: str) -> None:
    """Refuse an output folder that holds more than ``outputs``: it is replaced as a whole, which would lose the rest."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{flag} {folder} is a file; give a folder for {' and '.join(outputs)}")
    others = sorted(p.name for p in folder.iterdir() if p.name not in outputs) if folder.is_dir() else []
    if others:
        raise FileExistsError(f"{flag} {folder} holds other files ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); "
                              f"it is replaced as a whole, so give a folder of its own for {' and '.join(outputs)}")


def log_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The events and decisions files, from --logs DIR or --events/--decisions."""
    if args.logs is None:
        if args.events is None or args.decisions is None:
            raise InputError("give --logs DIR, or both --events and --decisions")
        return args.events, args.decisions
    found = []
    for name in ("events", "decisions"):
        candidates = [args.logs / f"{name}{suffix}" for suffix in (".parquet", ".csv")]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            raise FileNotFoundError(f"{args.logs}: no {name}.parquet or {name}.csv")
        found.append(existing[0])
    return found[0], found[1]


def print_table(rows: list[dict[str, str]]) -> None:
    headers = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(r[h].ljust(w) for h, w in zip(headers, widths)))

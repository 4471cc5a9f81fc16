"""A policy's value estimated from logged decisions: ``offerpilot ope``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from offerpilot.app.commands.options import add_outcome_log_arguments, outcome_log, read_catalog, timestamp
from offerpilot.atomic import atomic_directory
from offerpilot.envs.objective import DEFAULT_LAM, GROSS_MARGIN_RATE
from offerpilot.errors import InputError

if TYPE_CHECKING:
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.ope.logged_decisions import LoggedDecisions
    from offerpilot.ope.off_policy import OPEConfig, OPEReport


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
                     "or a table of prob_<action> columns keyed by decision columns (user_id and ts; a slot; or none: one distribution for all)")
    ope.add_argument("--catalog", type=Path, default=None, help="offer catalog YAML (default: the built-in catalog)")
    ope.add_argument("--period-start", type=timestamp, default=None, help="day 0 of the decision period (default: the first decision's day)")
    reward = ope.add_argument_group("reward of an events log", "what a decision earned: the margin of the purchases in its window")
    reward.add_argument("--reward", choices=("objective", "margin"), default="objective",
                        help="objective: margin weighted by the objective's day weights (lam); margin: the margin itself (default: %(default)s)")
    reward.add_argument("--lam", type=float, default=DEFAULT_LAM, help="short-term / lifetime trade-off of the objective (default: %(default)s)")
    reward.add_argument("--margin-rate", type=float, default=GROSS_MARGIN_RATE, help="gross margin as a share of the list value (default: %(default)s)")
    reward.add_argument("--interval-days", type=int, default=7, help="days of margin credited to a decision (default: %(default)s)")
    add_outcome_log_arguments(ope)
    est = ope.add_argument_group("estimators")
    est.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates per interval (default: %(default)s)")
    est.add_argument("--alpha", type=float, default=0.05, help="1 - the intervals' confidence level (default: %(default)s)")
    est.add_argument("--interval-method", choices=("studentized", "percentile"), default="studentized",
                     help="per-decision intervals: bootstrap-t with the cluster-robust standard error, or percentile (default: %(default)s)")
    est.add_argument("--switch-tau", type=float, default=10.0, help="switch-DR: importance weights above this use the reward model (default: %(default)s)")
    est.add_argument("--dros-lambda", type=float, default=10.0, help="DRos: shrinkage strength of the importance weights (default: %(default)s)")
    est.add_argument("--folds", type=int, default=2, help="cross-fitting folds of the reward model (default: %(default)s)")
    est.add_argument("--digits", type=int, default=6, help="significant digits in the printed table; ope.json keeps full precision (default: %(default)s)")
    ope.add_argument("--no-sequential", action="store_true", help="skip the per-customer estimators (faster)")
    ope.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ope.add_argument("--out", type=Path, default=None, help="folder for ope.json and ope.png")
    ope.set_defaults(run=run_ope)


OPE_OUTPUTS = ("ope.json", "ope.png")


def run_ope(args: argparse.Namespace) -> int:
    from offerpilot.deployment.evaluate_logs import check_target
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.ope.off_policy import OPEConfig
    from offerpilot.ope.plot import plot_ope

    # The flags first: a bad one is refused before the logs are read.
    objective = ObjectiveConfig(lam=args.lam, gross_margin_rate=args.margin_rate)
    config = OPEConfig(n_bootstrap=args.bootstrap, alpha=args.alpha, n_folds=args.folds, switch_tau=args.switch_tau, shrinkage_lambda=args.dros_lambda,
                       sequential=not args.no_sequential, interval_method=args.interval_method, seed=args.seed)
    if not 1 <= args.digits <= 17:
        raise InputError(f"--digits must be in [1, 17] (a float has 17 significant digits), got {args.digits}")
    check_target(args.policy)
    if args.out is not None:
        check_own_folder(args.out, OPE_OUTPUTS, "--out")
    if args.outcome is not None:
        data, report = _outcome_log_ope(args, config)
        what = f"outcome {args.outcome!r}"
    else:
        data, report = _events_log_ope(args, objective, config)
        what = f"reward {args.reward}" + (f", lam = {args.lam}" if args.reward == "objective" else "") + f", margin rate {args.margin_rate}"
    print(f"off-policy evaluation of {args.policy} on {report.n_decisions:,} decisions of {report.n_customers:,} customers "
          f"({what}; {1 - config.alpha:.0%} {config.interval_method} bootstrap intervals, {config.n_bootstrap} replicates, seed {args.seed})")
    g = f".{args.digits}g"
    print_table([
        {"estimator": r.estimator, "scope": r.scope, "value": f"{r.value:{g}}", "interval": f"[{r.low:{g}}, {r.high:{g}}]"}
        for r in report.rows
    ])
    print("note: dm, switch-dr and dr-os keep the reward model fitted once across bootstrap replicates, so their "
          "intervals understate the uncertainty; dr and snips are the ones validated to cover (README)")
    d = report.decision_diagnostics
    print(f"logging policy realised {report.logged_per_decision:{g}} per decision, {report.logged_per_customer:{g}} per customer")
    print(f"importance weights: effective sample size {d.ess:,.0f} ({d.ess_share:.1%} of decisions), max {d.max_weight:{g}}")
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


def _events_log_ope(args: argparse.Namespace, objective: ObjectiveConfig, config: OPEConfig) -> tuple[LoggedDecisions, OPEReport]:
    """An events-and-decisions log: the reward is the margin of each decision's window."""
    from offerpilot.deployment.evaluate_logs import evaluate_logs
    from offerpilot.errors import DataError
    from offerpilot.outcome_log import context_columns
    from offerpilot.tables import read_logs
    from offerpilot.validation import validate_context

    if args.slot is not None:
        raise InputError("--slot belongs to outcome logs (--outcome); in an events log, give a slot column with --context")
    events_path, decisions_path = log_paths(args)
    catalog = read_catalog(args.catalog)
    events, decisions = read_logs(events_path, decisions_path, catalog)
    context = context_columns(decisions.columns, tuple(args.context), args.context_prefix)
    problems = validate_context(decisions, str(decisions_path), context)
    if problems:
        raise DataError(problems)
    return evaluate_logs(events, decisions, catalog, args.policy, objective, config, args.period_start, args.interval_days,
                         reward=args.reward, context=tuple(context))


def _outcome_log_ope(args: argparse.Namespace, config: OPEConfig) -> tuple[LoggedDecisions, OPEReport]:
    """A decisions table with an outcome column: no events, no catalog; the actions are those it and the target name."""
    from offerpilot.deployment.evaluate_logs import evaluate_outcome_log
    from offerpilot.ope.outcome_decisions import action_set
    from offerpilot.outcome_log import read_outcome_log
    from offerpilot.schema import PROB_PREFIX
    from offerpilot.tables import read_table

    if args.logs is not None or args.events is not None:
        raise InputError("--outcome reads one decisions table whose column holds each decision's outcome: give --decisions FILE, and no --logs or --events")
    if args.decisions is None:
        raise InputError("--outcome needs --decisions FILE")
    if args.catalog is not None:
        raise InputError("an outcome log needs no --catalog: its actions are the ids in --action-column and the target table's prob_<action> columns")
    log = outcome_log(args)
    table = read_outcome_log(args.decisions, log)
    named = [str(c)[len(PROB_PREFIX):] for c in read_table(args.policy).columns if str(c).startswith(PROB_PREFIX)] if Path(args.policy).is_file() else []
    return evaluate_outcome_log(table, log, action_set(table[log.action], named), args.policy, config)


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

"""The ``offerpilot`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from offerpilot.agents.baselines import COMPARED_BASELINES
from offerpilot.seeds import HELD_OUT_SEED, TUNING_SEEDS
from offerpilot.agents.train_config import LEARNING_RATE_SCHEDULES, OBSERVATIONS, TrainConfig
from offerpilot.atomic import atomic_directory, write_text_atomic
from offerpilot.envs.observers import LATENT_FEATURES, LOG_INFORMED_FEATURES, STABLE_TRAITS
from offerpilot.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

EPILOG = "Run 'offerpilot COMMAND --help' for the options of a command."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, KeyError, PermissionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offerpilot",
        description="Learn which offer to send to which customer, and when: validate and calibrate your logs, "
        "simulate customers like yours, train and evaluate policies, estimate a policy's value from logs (off-policy), "
        "export it, score customers and serve decisions. 'offerpilot demo' runs the whole loop.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole loop on the built-in defaults and write a report (about 10 minutes; --quick: 2)",
                          description="Simulate a shop's logs under random offers, train the customer encoder on them, train "
                          "PPO (and the frontier's other lam, and the oracle), evaluate every policy against tuned baselines on "
                          "held-out customers, estimate the trained policy off-policy on the logs beside its simulated truth, "
                          "export a bundle, score every logged customer with it, and write a report (report.html and report.md "
                          "with PNG plots). Each step's outputs stay in a folder of their own under --out.")
    demo.add_argument("--out", type=Path, default=Path("offerpilot-demo"),
                      help="demo folder; replaced if an earlier demo wrote it, refused if it holds anything else (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="every step at a small size: under 2 minutes, rough numbers")
    demo.add_argument("--seed", type=int, default=0, help="random seed of every step (default: %(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="no step headings or progress bars")
    demo.set_defaults(run=_demo)

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
    sim.add_argument("--start", type=_timestamp, default="2025-01-01", help="date of the first decision (default: %(default)s)")
    sim.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sim.set_defaults(run=_simulate)

    val = sub.add_parser("validate", help="check events/decisions files against the data contract",
                         description="Report every problem with its file, row and column; exit 1 if any is found.")
    val.add_argument("paths", nargs="+", type=Path, help="events and/or decisions files (.parquet or .csv)")
    val.add_argument("--catalog", type=Path, default=None, help="offer catalog YAML the offer ids must come from")
    val.set_defaults(run=_validate)

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
    ope.add_argument("--period-start", type=_timestamp, default=None, help="day 0 of the decision period (default: the first decision's day)")
    ope.add_argument("--lam", type=float, default=0.5, help="short-term / lifetime trade-off of the objective (default: %(default)s)")
    ope.add_argument("--interval-days", type=int, default=7, help="days of margin credited to a decision (default: %(default)s)")
    ope.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates per interval (default: %(default)s)")
    ope.add_argument("--no-sequential", action="store_true", help="skip the per-customer estimators (faster)")
    ope.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ope.add_argument("--out", type=Path, default=None, help="folder for ope.json and ope.png")
    ope.set_defaults(run=_ope)

    enc = sub.add_parser("encoder", help="train the customer encoder, or embed customers with it",
                         description="The transformer that turns a customer's history into an embedding, a churn "
                         "probability and an expected CLV.", epilog="Run 'offerpilot encoder train --help' or "
                         "'offerpilot encoder embed --help'.")
    enc.set_defaults(run=lambda _: (enc.print_help(), 2)[1])
    enc_sub = enc.add_subparsers(title="encoder commands", metavar="ENCODER_COMMAND")
    train = enc_sub.add_parser("train", help="pre-train and fine-tune on an events log",
                               description="Masked-event pre-training, then churn (no purchase in the window after "
                               "--as-of) and CLV (spend in that window, zero-inflated lognormal) fine-tuning, with a "
                               "validation split, early stopping, tensorboard logs and progress bars.")
    train.add_argument("--events", type=Path, required=True, help="events file in the data contract")
    train.add_argument("--as-of", type=_timestamp, default=None, help="cutoff: history before it, labels after it "
                       "(default: --window-days before the last event)")
    train.add_argument("--window-days", type=int, default=90, help="label window after the cutoff (default: %(default)s)")
    train.add_argument("--backbone", choices=("events", "text"), default="events",
                       help="events: a small transformer over event tokens; text: the packaged all-MiniLM-L6-v2 "
                       "over the history written as text (default: %(default)s)")
    train.add_argument("--finetune-epochs", type=int, default=None, help="most fine-tuning epochs (early stopping may end sooner)")
    train.add_argument("--pretrain-epochs", type=int, default=None, help="masked-event pre-training epochs")
    train.add_argument("--embedding-dim", type=int, default=32, help="size of the customer embedding (default: %(default)s)")
    train.add_argument("--hidden-size", type=int, default=None, help="width of the events transformer (default: the library's)")
    train.add_argument("--num-layers", type=int, default=None, help="layers of the events transformer (default: the library's)")
    train.add_argument("--num-heads", type=int, default=None, help="attention heads; must divide --hidden-size (default: the library's)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument("--out", type=Path, required=True, help="run folder: model/, tensorboard/, metrics.json")
    train.set_defaults(run=_encoder_train)
    embed = enc_sub.add_parser("embed", help="embed customers to Parquet",
                               description="Write user_id, churn_probability, expected_clv and emb_* per customer.")
    embed.add_argument("--model", type=Path, required=True, help="the model folder written by 'encoder train' (RUN/model)")
    embed.add_argument("--events", type=Path, required=True, help="events file in the data contract")
    embed.add_argument("--as-of", type=_timestamp, default=None, help="embed the history before this time (default: after the last event)")
    embed.add_argument("--out", type=Path, required=True, help="Parquet (or CSV) file to write")
    embed.set_defaults(run=_encoder_embed)

    ppo = sub.add_parser("train", help="train a PPO policy on the simulator (MaskablePPO: caps and eligibility are masks)",
                         description="Train which offer to send to whom and when with MaskablePPO on the batched "
                         "simulator. Options come from the defaults, then --config (YAML or JSON with the same names, "
                         "underscores for dashes), then the flags. The run folder receives config.json, tensorboard/, "
                         "eval.csv (the learning curve on validation customers), checkpoint/ (resumable), "
                         "best_policy/ and policy/.",
                         epilog="A killed run continues with 'offerpilot train --out RUN --resume' "
                         "(optionally with a larger --total-timesteps).")
    ppo.add_argument("--out", type=Path, required=True, help="run folder")
    ppo.add_argument("--config", type=Path, default=None, help="YAML or JSON file of training options")
    ppo.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    ppo.add_argument("--observation", choices=OBSERVATIONS, default=None,
                     help="what the policy sees: encoder (raw features + customer encoder, the default), raw, or "
                     "latent (the simulator's hidden state: the oracle)")
    ppo.add_argument("--latent-features", nargs="+", default=None, metavar="NAME[@R2]",
                     help="with --observation latent: the latent variables the oracle sees (default: all of "
                     f"{', '.join(LATENT_FEATURES)}); a subset measures what knowing it is worth. NAME@R2 shows one of "
                     f"the stable traits ({', '.join(STABLE_TRAITS)}) through noise fixed per customer, so that it "
                     "explains the share R2 of the trait's variance: an oracle that knows the trait only as well as logs tell it; "
                     f"log-informed: the log-informed oracle, {' '.join(LOG_INFORMED_FEATURES)}")
    ppo.add_argument("--encoder", default=None, help="encoder folder (RUN/model of 'offerpilot encoder train'); "
                     "default: train one on simulated customers into OUT/encoder")
    ppo.add_argument("--lam", type=float, default=None, help="0: 30-day margin only ... 1: 365-day CLV only (default: 0.5)")
    ppo.add_argument("--discount-budget", type=float, default=None, help="most discount money per customer over the year "
                     "(a Lagrangian penalty; default: no budget)")
    for flag, kind, text in (("total-timesteps", int, "customer-decisions to train on"), ("n-envs", int, "customers simulated side by side"),
                             ("n-steps", int, "decisions per customer slot per rollout"),
                             ("customer-copies", int, "copies of each customer trained side by side with the same luck, each judged "
                              "against the others (common random numbers; must divide --n-envs)"), ("batch-size", int, "PPO minibatch size"),
                             ("n-epochs", int, "PPO epochs per rollout"), ("learning-rate", float, "Adam step size"),
                             ("ent-coef", float, "entropy bonus"),
                             ("initial-none-probability", float, "probability of sending nothing in the untrained policy (none: uniform)"), ("gamma", float, "per-decision discount"),
                             ("gae-lambda", float, "GAE lambda: 1 uses whole returns, lower leans on the value network"),
                             ("eval-every", int, "timesteps between validation runs (0: never)"),
                             ("eval-customers", int, "validation customers"), ("checkpoint-every", int, "timesteps between checkpoints")):
        default = getattr(TrainConfig, flag.replace("-", "_"))
        ppo.add_argument(f"--{flag}", type=kind, default=None, help=f"{text} (default: {'a whole decision period' if default is None else default})")
    ppo.add_argument("--init-policy", default=None, metavar="POLICY",
                     help="start from this saved policy's weights (another run's best_policy, e.g. one trained for a "
                     "neighbouring --lam); default: a fresh network")
    ppo.add_argument("--learning-rate-schedule", choices=LEARNING_RATE_SCHEDULES, default=None,
                     help="constant, or linear: from --learning-rate down to 0 at --total-timesteps (default: constant)")
    ppo.add_argument("--net-arch", type=int, nargs="+", default=None, metavar="WIDTH",
                     help=f"hidden layer widths of the policy and value networks (default: {' '.join(map(str, TrainConfig.net_arch))})")
    ppo.add_argument("--population", default=None, help="population preset (default, cdnow) or JSON from 'offerpilot calibrate'")
    ppo.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    ppo.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="auto: CUDA when present, else CPU (default: auto)")
    ppo.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (default: torch's, about one per core); a seed reproduces a run's weights "
                     "bit for bit only at the same thread count, which every saved policy records")
    ppo.add_argument("--seeds", type=int, default=None, metavar="K",
                     help="train K runs (seeds --seed, --seed + 1, ...) into OUT/seed_<S>, one after another, and choose "
                     "the one with the best objective on validation customers they all share (OUT/seeds.json); "
                     "evaluate, export and ope then read the chosen run through OUT (default: one run)")
    ppo.add_argument("--selection-customers", type=int, default=20_000,
                     help="validation customers the --seeds runs are chosen on (default: %(default)s)")
    ppo.add_argument("--no-progress", action="store_true", help="no progress bars")
    ppo.set_defaults(run=_train)

    ev = sub.add_parser("evaluate", help="compare trained policies, baselines and the oracle on held-out simulated customers",
                        description="Evaluate every trained run (its best policy on validation customers), the tuned "
                        "baselines and an oracle run (trained with --observation latent) on the same held-out "
                        "customers. Writes evaluation.md (per-customer means with 95% CIs, and each policy's share "
                        "of the oracle's CLV gain over no offer), evaluation.json and PNG plots (CLV by policy, "
                        "30-day revenue vs CLV frontier, learning curves).")
    ev.add_argument("--runs", type=Path, nargs="*", default=[], help="training run folders ('offerpilot train --out'); "
                    "an oracle is a run trained on --observation latent")
    ev.add_argument("--baselines", nargs="*", default=list(COMPARED_BASELINES), choices=COMPARED_BASELINES,
                    help="baselines to tune and include (default: all)")
    ev.add_argument("--encoder", type=Path, default=None, help="encoder folder for churn_threshold (default: the first "
                    "encoder-observation run's)")
    ev.add_argument("--customers", type=int, default=50_000, help="held-out customers per policy (default: %(default)s)")
    ev.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="seed of the held-out customers (default: %(default)s)")
    ev.add_argument("--tuning-customers", type=int, default=20_000, help="customers per tuning seed (default: %(default)s)")
    ev.add_argument("--best-of-seeds", action="store_true", help="runs that differ only in their training seed count as one "
                    "policy: the seed with the best objective on the tuning customers (where the baselines are tuned) is "
                    "evaluated, the others are not")
    ev.add_argument("--lam", type=float, default=0.5, help="the objective's trade-off for the table and tuning (default: %(default)s)")
    ev.add_argument("--population", default="default", help="population preset or JSON (default: %(default)s)")
    ev.add_argument("--out", type=Path, required=True, help="report folder")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(run=_evaluate)

    cal = sub.add_parser("calibrate", help="fit the population's purchase, dropout and spend model to a purchase log",
                         description="Fit Pareto/NBD (purchase and dropout heterogeneity) and Gamma-Gamma (spend) by "
                         "maximum likelihood, in days, and write a population JSON for --population.")
    src = cal.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", type=Path, help="events file in the data contract (purchases are used)")
    src.add_argument("--cdnow", action="store_true", help="use the real CDNOW log shipped with the Lifetimes package")
    cal.add_argument("--calibration-end", type=_timestamp, default=None, help="last day of the calibration period (default: the last purchase; "
                     "CDNOW: 1997-09-30)")
    cal.add_argument("--holdout-end", type=_timestamp, default=None, help="also simulate the cohort to this day and compare with the real holdout")
    cal.add_argument("--out", type=Path, required=True, help="population JSON to write")
    cal.set_defaults(run=_calibrate)

    exp = sub.add_parser("export", help="write a trained policy as a bundle for the marketing engine (ONNX, manifest, model card)",
                         description="Export a training run's policy as a self-contained bundle: policy.onnx (normaliser, actor, "
                         "masked softmax and critic; plus encoder.onnx and event_tokenizer.json for encoder policies), "
                         "manifest.json (format, catalog, features, objective and lam, training data, metrics, sha256 of every "
                         "file) and MODEL_CARD.md. onnxruntime must match torch on random inputs and simulated customers "
                         "(action probabilities within 1e-5) or nothing is written; the bundle folder is replaced atomically.")
    exp.add_argument("--run", dest="run_dir", metavar="RUN", type=Path, required=True, help="training run folder ('offerpilot train --out')")
    exp.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced as a whole if it exists)")
    exp.add_argument("--policy", choices=("best", "final"), default="best",
                     help="best: the best policy on validation customers; final: the last one trained (default: %(default)s)")
    exp.add_argument("--parity-inputs", type=int, default=10_000, help="random inputs of the parity check (default: %(default)s)")
    exp.add_argument("--parity-customers", type=int, default=500,
                     help="simulated customers whose decision period feeds the parity check (default: %(default)s)")
    exp.add_argument("--seed", type=int, default=0, help="random seed of the parity check (default: %(default)s)")
    exp.set_defaults(run=_export)

    score = sub.add_parser("score", help="decide an offer for every customer of an events file, with logged propensities",
                           description="Score customers with a bundle: each customer with an event before --as-of gets the "
                           "policy's features (rebuilt from their events and the messages in --decisions), the offers the "
                           "contact caps and eligibility allow, and one decision drawn with exploration. Writes a decisions "
                           "table (user_id, ts, offer_id, propensity, policy_id, prob_<offer_id> for every offer) plus "
                           "expected_value, Parquet or CSV by the suffix of --out; 'offerpilot ope' reads it once the "
                           "customers' next events are logged.")
    score.add_argument("--bundle", type=Path, required=True, help="bundle folder from 'offerpilot export'")
    score.add_argument("--customers", type=Path, required=True, help="events file in the data contract: the customers' histories")
    score.add_argument("--decisions", type=Path, default=None, help="past decisions file: the messages the contact caps count "
                       "(default: none were sent)")
    score.add_argument("--out", type=Path, required=True, help="decisions file to write (.parquet or .csv)")
    score.add_argument("--as-of", type=_timestamp, default=None, help="decision time; history strictly before it counts (default: 1 s after the latest event)")
    score.add_argument("--period-start", type=_timestamp, default=None, help="day 0 of the decision period the policy plans over (default: the day of --as-of)")
    score.add_argument("--policy-id", default=None, help="policy_id to log (default: the bundle's id and the exploration setting)")
    score.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: one per core)")
    _add_exploration_args(score)
    score.set_defaults(run=_score)

    serve = sub.add_parser("serve", help="run the HTTP decision service of a bundle (POST /decide, GET /health, GET /metadata)",
                           description="Serve a bundle with FastAPI and uvicorn. POST /decide takes {\"customers\": [{\"user_id\", "
                           "\"features\" (the manifest's order), \"allowed_offers\"}]} and returns each customer's offer, the "
                           "probability of every action, the propensity and the expected value. The bundle's hashes are "
                           "checked at start: a tampered bundle is refused.")
    serve.add_argument("--bundle", type=Path, required=True, help="bundle folder from 'offerpilot export'")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--threads", type=int, default=1, help="onnxruntime threads per request (default: %(default)s)")
    serve.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info",
                       help="uvicorn log level (default: %(default)s)")
    _add_exploration_args(serve)
    serve.set_defaults(run=_serve)
    return parser


def _timestamp(text: str) -> pd.Timestamp:
    """The type of every date flag: ISO 8601 text as a pandas Timestamp, tz-naive UTC like the logs."""
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a date; expected ISO 8601 such as 2025-01-31 or 2025-01-31T09:30:00")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _add_exploration_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epsilon", type=float, default=0.05, help="share of decisions drawn uniformly over the allowed offers, "
                        "so every allowed offer keeps probability >= epsilon / n_allowed for off-policy evaluation (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature on the policy (default: %(default)s)")
    parser.add_argument("--greedy", action="store_true", help="take the policy's most likely offer (then mix in --epsilon)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the decisions (default: %(default)s)")


def _demo(args: argparse.Namespace) -> int:
    from offerpilot.app.demo import DemoConfig, run_demo

    config = DemoConfig.quick(args.seed) if args.quick else DemoConfig(seed=args.seed)
    result = run_demo(config, args.out, progress=not args.no_progress)
    print((result.out / "report" / "report.md").read_text().split("## 2.")[0].split("## 1.")[1].strip())
    print(f"\nreport: {result.report} (and report.md beside it); everything the demo made: {result.out}/ "
          f"({sum(result.timings.values()) / 60:.1f} minutes)")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from offerpilot.agents.baselines import EpsilonGreedyPolicy, NoOfferPolicy, RecencyRulePolicy
    from offerpilot.envs.policy import UniformRandomPolicy
    from offerpilot.catalog import load_catalog
    from offerpilot.envs.log_generation import simulate_logs
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.envs.presets import load_population
    from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig
    from offerpilot.tables import write_table

    if args.customers < 1:
        raise ValueError("--customers must be >= 1")
    catalog = load_catalog(args.catalog)
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


def _validate(args: argparse.Namespace) -> int:
    from offerpilot.catalog import load_catalog
    from offerpilot.tables import validate_paths

    catalog = load_catalog(args.catalog)
    report = validate_paths(args.paths, catalog)
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


def _ope(args: argparse.Namespace) -> int:
    from offerpilot.agents.baselines import BASELINES, make_baseline
    from offerpilot.ope.logged_decisions import logged_decisions
    from offerpilot.ope.off_policy import OPEConfig, evaluate_off_policy
    from offerpilot.ope.plot import plot_ope
    from offerpilot.deployment.target_probs import trained_policy_probs
    from offerpilot.ope.target_policy import policy_probs, table_probs
    from offerpilot.catalog import load_catalog
    from offerpilot.envs.objective import ObjectiveConfig
    from offerpilot.tables import read_logs

    # The flags first: a bad one is refused before the logs are read.
    objective = ObjectiveConfig(lam=args.lam)
    config = OPEConfig(n_bootstrap=args.bootstrap, sequential=not args.no_sequential, seed=args.seed)
    if args.policy not in BASELINES and not Path(args.policy).exists():
        raise ValueError(f"--policy {args.policy!r} is neither a baseline ({', '.join(BASELINES)}), a table file, nor a bundle, policy or run folder")
    if args.out is not None:
        _check_own_folder(args.out, OPE_OUTPUTS, "--out")
    events_path, decisions_path = _log_paths(args)
    catalog = load_catalog(args.catalog)
    events, decisions = read_logs(events_path, decisions_path, catalog)
    start = args.period_start if args.period_start is not None else decisions["ts"].min().normalize()
    data = logged_decisions(events, decisions, catalog, start, objective, interval_days=args.interval_days)
    if args.policy in BASELINES:
        target = policy_probs(make_baseline(args.policy, catalog), data)
    elif Path(args.policy).is_file():
        target = table_probs(args.policy, data, catalog)
    else:
        target = trained_policy_probs(args.policy, data, events, catalog)
    report = evaluate_off_policy(data, target, config)
    print(f"off-policy evaluation of {args.policy} on {report.n_decisions:,} decisions of {report.n_customers:,} customers "
          f"(lam = {args.lam}, {1 - config.alpha:.0%} bootstrap intervals, {config.n_bootstrap} replicates, seed {args.seed})")
    _print_table([
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


OPE_OUTPUTS = ("ope.json", "ope.png")


def _check_own_folder(folder: Path, outputs: tuple[str, ...], flag: str) -> None:
    """Refuse an output folder that holds more than ``outputs``: it is replaced as a whole, which would lose the rest."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{flag} {folder} is a file; give a folder for {' and '.join(outputs)}")
    others = sorted(p.name for p in folder.iterdir() if p.name not in outputs) if folder.is_dir() else []
    if others:
        raise FileExistsError(f"{flag} {folder} holds other files ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); "
                              f"it is replaced as a whole, so give a folder of its own for {' and '.join(outputs)}")


def _log_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The events and decisions files, from --logs DIR or --events/--decisions."""
    if args.logs is None:
        if args.events is None or args.decisions is None:
            raise ValueError("give --logs DIR, or both --events and --decisions")
        return args.events, args.decisions
    found = []
    for name in ("events", "decisions"):
        candidates = [args.logs / f"{name}{suffix}" for suffix in (".parquet", ".csv")]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            raise FileNotFoundError(f"{args.logs}: no {name}.parquet or {name}.csv")
        found.append(existing[0])
    return found[0], found[1]


def _encoder_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from offerpilot.encoders.labels import window_labels
    from offerpilot.encoders.training import EncoderTrainingConfig, train_encoder
    from offerpilot.tables import read_events

    events = read_events(args.events)
    as_of = args.as_of if args.as_of is not None else (events["ts"].max() - pd.Timedelta(days=args.window_days)).normalize()
    users = pd.unique(events.loc[events["ts"] < as_of, "user_id"])
    if len(users) < 50:
        raise ValueError(f"only {len(users)} customers have history before {as_of.date()}: too few to train on")
    labels = window_labels(events, as_of, args.window_days, users)
    architecture = {k: getattr(args, k) for k in ("hidden_size", "num_layers", "num_heads") if getattr(args, k) is not None}
    config = EncoderTrainingConfig(
        backbone=args.backbone, finetune_epochs=args.finetune_epochs, pretrain_epochs=args.pretrain_epochs,
        embedding_dim=args.embedding_dim, seed=args.seed, **architecture,
    )
    print(f"training the {args.backbone} encoder on {len(users):,} customers: history before {as_of.date()}, "
          f"labels from the {args.window_days} days after")
    result = train_encoder(events, as_of, labels, config, args.out)
    m = result.metrics
    print(f"validation: churn AUC {m.val_churn_auc:.3f}, CLV Spearman {m.val_clv_spearman:.3f}; model in {result.model_dir}")
    return 0


def _encoder_embed(args: argparse.Namespace) -> int:
    import pandas as pd

    from offerpilot.encoders.embedding import embed_customers
    from offerpilot.encoders.training import load_encoder
    from offerpilot.tables import read_events, write_table

    if not (args.model / "model.safetensors").is_file():
        raise FileNotFoundError(f"{args.model}: no model.safetensors; pass the model folder that 'encoder train' wrote (RUN/model)")
    model, tokenizer = load_encoder(args.model)
    events = read_events(args.events)
    as_of = args.as_of if args.as_of is not None else events["ts"].max() + pd.Timedelta(seconds=1)
    frame = embed_customers(model, tokenizer, events, as_of)
    write_table(frame, args.out)
    print(f"wrote {len(frame):,} customers' embeddings ({model.config.embedding_dim} dimensions) to {args.out}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
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


def _print_table(rows: list[dict[str, str]]) -> None:
    headers = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(r[h].ljust(w) for h, w in zip(headers, widths)))



_TRAIN_OPTIONS = ("observation", "latent_features", "encoder", "lam", "discount_budget", "total_timesteps", "n_envs", "n_steps", "customer_copies", "batch_size", "n_epochs",
                  "learning_rate", "learning_rate_schedule", "ent_coef", "initial_none_probability", "init_policy", "gamma", "gae_lambda", "net_arch", "eval_every", "eval_customers", "checkpoint_every", "population", "seed", "device", "threads")


def _train(args: argparse.Namespace) -> int:
    from offerpilot.agents.ppo_training import train_ppo
    from offerpilot.agents.seed_selection import train_seeds
    from offerpilot.agents.trained_run import seeds_of

    if args.selection_customers < 1:
        raise ValueError(f"--selection-customers must be >= 1, got {args.selection_customers}")
    trained_seeds = seeds_of(args.out) if args.resume else None
    if args.resume and trained_seeds is not None and args.seeds not in (None, len(trained_seeds)):
        raise ValueError(f"--resume continues the {len(trained_seeds)} seeds of {args.out / 'seeds.json'}; got --seeds {args.seeds}")
    flags = {name: getattr(args, name) for name in _TRAIN_OPTIONS}
    if flags["latent_features"] == ["log-informed"]:
        flags["latent_features"] = LOG_INFORMED_FEATURES
    if args.resume:
        changed = sorted(k for k, v in flags.items() if v is not None and k not in ("total_timesteps", "threads"))
        if changed or args.config is not None:
            raise ValueError(f"--resume continues the run as configured in {args.out / 'config.json'}; only --total-timesteps and --threads may change (got {changed or ['--config']})")
        config = TrainConfig.from_file(args.out / "config.json", total_timesteps=flags["total_timesteps"], threads=flags["threads"])
    elif args.config is not None:
        config = TrainConfig.from_file(args.config, **flags)
    else:
        config = TrainConfig().with_overrides(**flags)
    k = len(trained_seeds) if trained_seeds is not None else args.seeds
    if k is not None:
        chosen = train_seeds(config, args.out, k, args.selection_customers, resume=args.resume, progress=not args.no_progress)
        scores = ", ".join(f"seed {s}: {v:.4f}" for s, v in chosen.objectives.items())
        print(f"trained {k} seeds; objective on {args.selection_customers:,} shared validation customers: {scores}\n"
              f"chosen: seed {chosen.chosen_seed} ({chosen.chosen_dir}); {args.out / 'seeds.json'} records all")
        return 0
    result = train_ppo(config, args.out, resume=args.resume, progress=not args.no_progress)
    line = f"trained {result.num_timesteps:,} timesteps; policy: {result.policy_dir}, best on validation: {result.best_policy_dir}"
    if result.last_evaluation is not None:
        line += f"\nvalidation ({result.last_evaluation.n_customers:,} customers): objective {result.last_evaluation.objective}, CLV {result.last_evaluation.clv}"
    print(line)
    return 0



def _evaluate(args: argparse.Namespace) -> int:
    from offerpilot.evaluation.comparison import arena_for, best_of_seeds, compare, load_run, renamed, tuned_baselines
    from offerpilot.evaluation.plots import plot_clv_by_policy, plot_frontier, plot_learning_curves

    runs = [load_run(r) for r in args.runs]
    encoder = args.encoder or next((c.encoder_dir for c in runs if c.encoder_dir is not None), None)
    baselines = tuple(args.baselines)
    if "churn_threshold" in baselines and encoder is None:
        raise ValueError("the churn_threshold baseline reads the encoder's churn probability: pass --encoder, a run trained on encoder features, or leave it out of --baselines")
    arena = arena_for(args.lam, args.population)
    if args.best_of_seeds:
        runs = best_of_seeds(arena, runs, args.tuning_customers, progress=not args.no_progress)
    names = [c.name for c in runs]
    runs = [renamed(c, f"{c.name} #{names[:i].count(c.name) + 1}") if names.count(c.name) > 1 else c for i, c in enumerate(runs)]
    contenders = tuned_baselines(arena, baselines, encoder, args.tuning_customers, progress=not args.no_progress) + runs
    comparison = compare(arena, contenders, args.customers, args.seed, progress=not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    tuned = {c.name: c.params for c in contenders if c.params}
    header = (f"{args.customers:,} held-out customers (seed {args.seed}), objective lam {args.lam}, population {args.population}; "
              f"baselines tuned on seeds {list(TUNING_SEEDS)}: {json.dumps(tuned)}\n\n")
    write_text_atomic(args.out / "evaluation.md", header + comparison.markdown())
    write_text_atomic(args.out / "evaluation.json", comparison.to_json())
    plot_clv_by_policy(comparison, args.out / "clv_by_policy.png")
    plot_frontier(comparison, args.out / "frontier.png")
    plot_learning_curves(comparison, args.out / "learning_curves.png")
    print(header + comparison.markdown())
    print(f"report: {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from offerpilot.deployment.manifest import MANIFEST
    from offerpilot.deployment.export import ExportConfig, export_bundle

    config = ExportConfig(policy=args.policy, n_random=args.parity_inputs, n_customers=args.parity_customers, seed=args.seed)
    manifest = export_bundle(args.run_dir, args.out, config)
    parity = manifest.metrics.parity
    print(f"exported {manifest.policy_id} ({manifest.observation} observation, lam {manifest.objective['lam']}) to {args.out}: "
          f"{', '.join(manifest.files)}, {MANIFEST}")
    print(f"parity onnxruntime vs torch, max |difference| of action probabilities: {parity['random']['probabilities_max_abs_diff']:.2e} "
          f"on {parity['random']['inputs']:,} random inputs (tolerance {parity['tolerance']:g}), {parity['simulated']['probabilities_max_abs_diff']:.2e} on "
          f"{parity['simulated']['inputs']:,} simulated decisions (tolerance {parity['simulated_tolerance']:g})")
    return 0


def _score(args: argparse.Namespace) -> int:
    from offerpilot.deployment.bundle import Bundle, Exploration
    from offerpilot.deployment.scoring import ScoringConfig, score_file

    exploration = Exploration(epsilon=args.epsilon, temperature=args.temperature, greedy=args.greedy)
    bundle = Bundle(args.bundle, threads=args.threads)
    config = ScoringConfig(as_of=args.as_of, period_start=args.period_start, exploration=exploration, seed=args.seed, policy_id=args.policy_id)
    table = score_file(bundle, args.customers, args.out, args.decisions, config)
    shares = table["offer_id"].value_counts(normalize=True)
    print(f"scored {len(table):,} customers at {table['ts'].iloc[0]} with {bundle.policy_id} ({exploration.tag}, seed {args.seed}); wrote {args.out}")
    print("offers: " + ", ".join(f"{offer} {share:.1%}" for offer, share in shares.items()))
    print(f"mean propensity {table['propensity'].mean():.4f}, mean expected value {table['expected_value'].mean():.4f} per customer")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from offerpilot.deployment.bundle import Exploration
    from offerpilot.deployment.serving import create_app

    exploration = Exploration(epsilon=args.epsilon, temperature=args.temperature, greedy=args.greedy)
    app = create_app(args.bundle, exploration, seed=args.seed, threads=args.threads)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Policies learned and compared in simulation: ``offerpilot train`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from offerpilot.agents.baselines import COMPARED_BASELINES
from offerpilot.agents.train_config import LEARNING_RATE_SCHEDULES, OBSERVATIONS, TrainConfig
from offerpilot.atomic import write_text_atomic
from offerpilot.envs.objective import DEFAULT_LAM
from offerpilot.envs.observers import LATENT_FEATURES, LOG_INFORMED_FEATURES, STABLE_TRAITS
from offerpilot.errors import InputError
from offerpilot.seeds import HELD_OUT_SEED, TUNING_SEEDS


def register(sub: argparse._SubParsersAction) -> None:
    """Add 'train', 'evaluate' to the ``offerpilot`` command."""
    _add_train(sub)
    _add_evaluate(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
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
    ppo.add_argument("--lam", type=float, default=None, help=f"0: 30-day margin only ... 1: 365-day CLV only (default: {DEFAULT_LAM})")
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
    ppo.set_defaults(run=run_train)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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
    ev.add_argument("--lam", type=float, default=DEFAULT_LAM, help="the objective's trade-off for the table and tuning (default: %(default)s)")
    ev.add_argument("--population", default="default", help="population preset or JSON (default: %(default)s)")
    ev.add_argument("--out", type=Path, required=True, help="report folder")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(run=run_evaluate)


_TRAIN_OPTIONS = ("observation", "latent_features", "encoder", "lam", "discount_budget", "total_timesteps", "n_envs", "n_steps", "customer_copies", "batch_size", "n_epochs",
                  "learning_rate", "learning_rate_schedule", "ent_coef", "initial_none_probability", "init_policy", "gamma", "gae_lambda", "net_arch", "eval_every", "eval_customers", "checkpoint_every", "population", "seed", "device", "threads")


def run_train(args: argparse.Namespace) -> int:
    from offerpilot.agents.ppo_training import train_ppo
    from offerpilot.agents.seed_selection import train_seeds
    from offerpilot.agents.trained_run import seeds_of

    if args.selection_customers < 1:
        raise InputError(f"--selection-customers must be >= 1, got {args.selection_customers}")
    trained_seeds = seeds_of(args.out) if args.resume else None
    if args.resume and trained_seeds is not None and args.seeds not in (None, len(trained_seeds)):
        raise InputError(f"--resume continues the {len(trained_seeds)} seeds of {args.out / 'seeds.json'}; got --seeds {args.seeds}")
    flags = {name: getattr(args, name) for name in _TRAIN_OPTIONS}
    if flags["latent_features"] == ["log-informed"]:
        flags["latent_features"] = LOG_INFORMED_FEATURES
    if args.resume:
        changed = sorted(k for k, v in flags.items() if v is not None and k not in ("total_timesteps", "threads"))
        if changed or args.config is not None:
            raise InputError(f"--resume continues the run as configured in {args.out / 'config.json'}; only --total-timesteps and --threads may change (got {changed or ['--config']})")
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


def run_evaluate(args: argparse.Namespace) -> int:
    from offerpilot.evaluation.comparison import arena_for, best_of_seeds, compare, load_run, renamed, tuned_baselines
    from offerpilot.evaluation.plots import plot_clv_by_policy, plot_frontier, plot_learning_curves

    runs = [load_run(r) for r in args.runs]
    encoder = args.encoder or next((c.encoder_dir for c in runs if c.encoder_dir is not None), None)
    baselines = tuple(args.baselines)
    if "churn_threshold" in baselines and encoder is None:
        raise InputError("the churn_threshold baseline reads the encoder's churn probability: pass --encoder, a run trained on encoder features, or leave it out of --baselines")
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

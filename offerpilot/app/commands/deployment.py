"""A trained policy in production: ``offerpilot export``, ``score`` and ``serve``."""

from __future__ import annotations

import argparse
from pathlib import Path

from offerpilot.app.commands.options import timestamp


def register(sub: argparse._SubParsersAction) -> None:
    """Add 'export', 'score', 'serve' to the ``offerpilot`` command."""
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
    exp.set_defaults(run=run_export)

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
    score.add_argument("--as-of", type=timestamp, default=None, help="decision time; history strictly before it counts (default: 1 s after the latest event)")
    score.add_argument("--period-start", type=timestamp, default=None, help="day 0 of the decision period the policy plans over (default: the day of --as-of)")
    score.add_argument("--policy-id", default=None, help="policy_id to log (default: the bundle's id and the exploration setting)")
    score.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: one per core)")
    add_exploration_args(score)
    score.set_defaults(run=run_score)

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
    add_exploration_args(serve)
    serve.set_defaults(run=run_serve)


def run_export(args: argparse.Namespace) -> int:
    from offerpilot.deployment.export import ExportConfig, export_bundle
    from offerpilot.deployment.manifest import MANIFEST

    config = ExportConfig(policy=args.policy, n_random=args.parity_inputs, n_customers=args.parity_customers, seed=args.seed)
    manifest = export_bundle(args.run_dir, args.out, config)
    parity = manifest.metrics.parity
    print(f"exported {manifest.policy_id} ({manifest.observation} observation, lam {manifest.objective['lam']}) to {args.out}: "
          f"{', '.join(manifest.files)}, {MANIFEST}")
    print(f"parity onnxruntime vs torch, max |difference| of action probabilities: {parity['random']['probabilities_max_abs_diff']:.2e} "
          f"on {parity['random']['inputs']:,} random inputs (tolerance {parity['tolerance']:g}), {parity['simulated']['probabilities_max_abs_diff']:.2e} on "
          f"{parity['simulated']['inputs']:,} simulated decisions (tolerance {parity['simulated_tolerance']:g})")
    return 0


def run_score(args: argparse.Namespace) -> int:
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


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from offerpilot.deployment.bundle import Exploration
    from offerpilot.deployment.serving import create_app

    exploration = Exploration(epsilon=args.epsilon, temperature=args.temperature, greedy=args.greedy)
    app = create_app(args.bundle, exploration, seed=args.seed, threads=args.threads)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def add_exploration_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epsilon", type=float, default=0.05, help="share of decisions drawn uniformly over the allowed offers, "
                        "so every allowed offer keeps probability >= epsilon / n_allowed for off-policy evaluation (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature on the policy (default: %(default)s)")
    parser.add_argument("--greedy", action="store_true", help="take the policy's most likely offer (then mix in --epsilon)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the decisions (default: %(default)s)")

"""How well the default events encoder predicts churn and spend of held-out simulated customers.

Run:  .venv/bin/python scripts/encoder_simulated.py [--train 20000] [--test 5000] [--window-days 90]
          [--bootstrap 1000] [--threads 1] [--seed 0] [--hidden-size H --num-layers L --num-heads A --intermediate-size F]

Two independent cohorts live their histories without offers (seeds ``seed`` and ``seed + 1``); the encoder is
trained on the first (history before day 0 of the decision period, labels from the ``window-days`` after) with
the library's defaults and scored on the second against two baselines: the days since the last purchase (the
recency rule most shops use) and the constant predictor. Intervals resample customers (95 %, percentile).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from offerpilot.agents.baselines import NoOfferPolicy
from offerpilot.encoders.labels import Labels, window_labels
from offerpilot.encoders.metrics import bootstrap, churn_auc, churn_pr_auc, normalised_gini, spearman
from offerpilot.encoders.training import train_encoder
from offerpilot.encoders.training_config import EncoderTrainingConfig
from offerpilot.envs.log_generation import simulate_logs
from offerpilot.envs.simulator import PopulationSimulator

AS_OF = "2025-01-01"


def cohort(n: int, seed: int, window_days: int) -> tuple:
    logs = simulate_logs(PopulationSimulator(), NoOfferPolicy(), n, seed=seed, start=AS_OF, progress=False)
    return logs.events, window_labels(logs.events, AS_OF, window_days, logs.customers["user_id"].to_numpy())


def days_since_purchase(events, labels: Labels) -> np.ndarray:
    """Days from each customer's last purchase before the cutoff to the cutoff (every simulated customer has one)."""
    purchases = events[(events["event"] == "purchase") & (events["ts"] < AS_OF)]
    last = purchases.groupby("user_id")["ts"].max().reindex(labels.user_ids)
    return ((np.datetime64(AS_OF) - last.to_numpy()) / np.timedelta64(1, "D")).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=20_000, help="customers to train on (default: %(default)s)")
    parser.add_argument("--test", type=int, default=5_000, help="held-out customers (default: %(default)s)")
    parser.add_argument("--window-days", type=int, default=90, help="label window (default: %(default)s)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    for flag in ("hidden-size", "num-layers", "num-heads", "intermediate-size"):
        parser.add_argument(f"--{flag}", type=int, default=None, help="encoder architecture (default: the library's)")
    args = parser.parse_args()
    architecture = {k: v for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size") if (v := getattr(args, k)) is not None}
    start = time.perf_counter()
    events, labels = cohort(args.train, args.seed, args.window_days)
    test_events, test_labels = cohort(args.test, args.seed + 1, args.window_days)
    with tempfile.TemporaryDirectory() as out_dir:
        result = train_encoder(events, AS_OF, labels, EncoderTrainingConfig(seed=args.seed, num_threads=args.threads, **architecture), out_dir)
        torch.set_num_threads(args.threads)
        encoded = result.model.encode(result.tokenizer.encode(test_events, AS_OF, user_ids=test_labels.user_ids))
    recency = days_since_purchase(test_events, test_labels)
    churn_scores = {"encoder": encoded.churn_probability, "days since last purchase": recency}
    spend_scores = {"encoder": encoded.expected_clv, "days since last purchase": -recency}

    def cell(metric, truth, score) -> str:
        interval = bootstrap(metric, truth, score, n_boot=args.bootstrap, seed=args.seed)
        return f"{interval.estimate:.3f} ({interval.low:.3f}-{interval.high:.3f})"

    print(f"{args.train:,} simulated customers trained on, {args.test:,} held out (seeds {args.seed}, {args.seed + 1}); "
          f"labels: the {args.window_days} days after the cutoff; {test_labels.churn.mean():.0%} of held-out customers churn")
    print("| predictor | churn AUC | churn PR-AUC | spend Spearman | spend normalised Gini |")
    print("|---|---|---|---|---|")
    for name in churn_scores:
        print(f"| {name} | {cell(churn_auc, test_labels.churn, churn_scores[name])} | {cell(churn_pr_auc, test_labels.churn, churn_scores[name])} "
              f"| {cell(spearman, test_labels.spend, spend_scores[name])} | {cell(normalised_gini, test_labels.spend, spend_scores[name])} |")
    print(f"| constant | 0.5 | {test_labels.churn.mean():.3f} | 0 | 0 |")
    m = result.metrics
    print(f"training: best epoch {m.best_epoch}, {m.finetune_seconds_per_epoch:.1f} s per fine-tuning epoch; "
          f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

"""The customer encoder against classic CLV models on the real CDNOW log, as Markdown tables.

Run:  .venv/bin/python scripts/cdnow_encoder_eval.py [--seeds N] [--bootstrap B] [--skip-text] [--text-customers N] [--threads T] [--json out.json] [--out-dir DIR]

Standard protocol: calibration weeks 1-39 (1997-01-01 to 1997-09-30), holdout weeks 40-78 (1997-10-01 to
1998-06-30), all purchases of a customer on one day merged into one transaction (``load_cdnow`` keeps them as
separate rows; they are merged here, for every model). Targets: churn = no purchase in the holdout; spend =
total holdout spend.

* BG/NBD, Pareto/NBD and Gamma-Gamma (time in weeks) are fitted on the whole calibration period (they use no
  labels). Churn score = P(no purchase in the 39 holdout weeks); predicted spend = expected holdout purchases
  x Gamma-Gamma conditional expected spend per purchase.
* The supervised models (events and text encoders, gradient boosting on RFM features) never see a holdout
  label: they learn from the history before ``--train-cutoff`` (default 1997-05-20) with labels from the window
  [cutoff, 1997-10-01) inside calibration, and select epochs / trees on a validation split of those customers.
  At test time they read the history before 1997-10-01. Their spend is predicted for the shorter training
  window, so it is multiplied by 273 / window days for the level metrics (aggregate error, MAE); ranking
  metrics are unchanged by the factor. The cutoff 1997-05-20 is eight weeks after the last acquisition
  (1997-03-25), so every customer has a history, and its 134-day window has a churn rate (76 %) close to the
  holdout's (70 %). The text backbone trains one seed on ``--text-customers`` random customers (slow on CPU)
  and scores everyone.
* Training histories end at the cutoff, so they are younger than test histories (the time since a customer's
  last purchase reaches 139 days in training against 273 at test): the encoders' heads extrapolate in time.
* Every metric carries a 95 % customer-resampling bootstrap interval (the same resamples for every model);
  encoder rows with several seeds report the metric averaged over the seeds, the interval being that of the
  seed average on each resample. The differences table is a paired bootstrap of encoder minus the best
  baseline on each ranking metric.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from offerpilot.encoders.embedding import embed_customers
from offerpilot.encoders.labels import Labels, window_labels
from offerpilot.encoders.training import train_encoder
from offerpilot.encoders.training_config import EncoderTrainingConfig
from offerpilot.envs.bgnbd import BetaGeoNBD
from offerpilot.envs.cdnow import load_cdnow
from offerpilot.envs.gamma_gamma import GammaGamma
from offerpilot.envs.pareto_nbd import ParetoNBD
from offerpilot.envs.rfm import summarise_purchases

from cdnow_report import PUBLISHED_BGNBD, Predictions, paired_differences, print_bgnbd_check, print_encoder_configs, print_per_seed, print_tables, score_models

CAL_END, TEST_AS_OF, HOLD_END = pd.Timestamp("1997-09-30"), pd.Timestamp("1997-10-01"), pd.Timestamp("1998-06-30")
HOLDOUT_WEEKS = 39.0
HOLDOUT_DAYS = (HOLD_END - CAL_END).days
def merge_same_day(events: pd.DataFrame) -> pd.DataFrame:
    """One purchase row per customer-day (amounts summed), sorted by customer then day: the protocol's transactions."""
    days = events.assign(ts=events["ts"].dt.floor("D"))
    merged = days.groupby(["user_id", "ts"], as_index=False, sort=True)["amount"].sum()
    return merged.assign(event="purchase")[["user_id", "ts", "event", "amount"]]


def rfm_features(purchases: pd.DataFrame, as_of: pd.Timestamp, user_ids: np.ndarray) -> pd.DataFrame:
    """RFM features of each customer from the transactions strictly before ``as_of`` (times in weeks).

    ``x`` (repeat transactions), ``t_x`` (first to last), ``T`` (first to the day before ``as_of``: tenure),
    ``recency`` (``T - t_x``: weeks since the last transaction), ``monetary`` (mean repeat value), the total,
    first, last and largest transaction values.
    """
    before = purchases[purchases["ts"] < as_of]
    rfm = summarise_purchases(before, as_of - pd.Timedelta(days=1), unit_days=7.0)
    amount = before.groupby("user_id")["amount"]
    features = rfm.assign(
        recency=rfm["T"] - rfm["t_x"],
        total_spend=amount.sum(),
        first_amount=amount.first(),
        last_amount=amount.last(),
        max_amount=amount.max(),
    )
    return features.reindex(user_ids)


def fit_btyd(rfm: pd.DataFrame) -> tuple[dict[str, object], dict[str, Predictions]]:
    """BG/NBD, Pareto/NBD and Gamma-Gamma fitted on the calibration summary; their fits and holdout predictions.

    Gamma-Gamma needs positive spend: it is fitted on the repeat customers with ``monetary > 0``, and the rare
    repeat customer whose repeat transactions are all worth $0 gets the population mean (as if ``x = 0``).
    """
    x, t_x, T, monetary = (rfm[c].to_numpy() for c in ("x", "t_x", "T", "monetary"))
    positive = monetary > 0
    gg = GammaGamma().fit(x[positive], monetary[positive])
    per_purchase = gg.conditional_expected_spend(np.where(positive, x, 0), monetary)
    fits: dict[str, object] = {"Gamma-Gamma": gg}
    predictions = {}
    for name, model in (("BG/NBD + GG", BetaGeoNBD()), ("Pareto/NBD + GG", ParetoNBD())):
        model.fit(x, t_x, T)
        fits[name.split(" ")[0]] = model
        purchases = model.expected_purchases(HOLDOUT_WEEKS, x, t_x, T)
        churn = model.prob_no_purchase(HOLDOUT_WEEKS, x, t_x, T)
        predictions[name] = Predictions(churn[None], (purchases * per_purchase)[None], purchases[None])
    return fits, predictions


def fit_gbm(train: pd.DataFrame, labels: Labels, test: pd.DataFrame, scale: float) -> Predictions:
    """Gradient boosting on RFM features: a classifier for churn and a Poisson regressor for spend.

    The Poisson loss (log link) estimates the conditional mean of spend, which the level metrics need, and
    accepts the many zeros that a log or gamma target would not; early stopping holds out 20 % of the training
    customers. ``scale`` converts the training window's spend to the holdout's.
    """
    common = {"learning_rate": 0.05, "max_iter": 1000, "early_stopping": True, "validation_fraction": 0.2, "n_iter_no_change": 20, "random_state": 0}
    churn = HistGradientBoostingClassifier(**common).fit(train, labels.churn)
    spend = HistGradientBoostingRegressor(loss="poisson", **common).fit(train, labels.spend)
    return Predictions(churn.predict_proba(test)[:, 1][None], scale * spend.predict(test)[None], None)


def train_encoders(
    calibration: pd.DataFrame,
    labels: Labels,
    user_ids: np.ndarray,
    configs: list[EncoderTrainingConfig],
    train_as_of: pd.Timestamp,
    out_dir: Path,
    scale: float,
    batch_size: int,
) -> tuple[Predictions, list[dict[str, object]]]:
    """Train one encoder per config on ``labels`` at ``train_as_of``, score every customer at the test cutoff.

    :return: the predictions (one row per config) and each run's validation metrics.
    """
    churn, spend, runs = [], [], []
    for config in configs:
        run_dir = out_dir / f"{config.backbone}-seed{config.seed}"
        result = train_encoder(calibration, train_as_of, labels, config, run_dir)
        scored = embed_customers(result.model, result.tokenizer, calibration, TEST_AS_OF, user_ids, batch_size=batch_size)
        churn.append(scored["churn_probability"].to_numpy(np.float64))
        spend.append(scale * scored["expected_clv"].to_numpy(np.float64))
        runs.append({"config": asdict(result.config), **asdict(result.metrics)})
    return Predictions(np.stack(churn), np.stack(spend), None), runs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="training seeds of the events encoder (default 5)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="customer resamples per interval (default 1000)")
    parser.add_argument("--skip-text", action="store_true", help="leave out the text (MiniLM) backbone")
    parser.add_argument("--text-customers", type=int, default=2000, help="training customers of the text backbone, drawn at random (default 2000)")
    parser.add_argument("--text-epochs", type=int, default=None, help="fine-tuning epochs of the text backbone (default: its config default, 2)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="masked-event epochs of the events backbone (default: its config default)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="most fine-tuning epochs of the events backbone (default: its config default)")
    parser.add_argument("--train-cutoff", default="1997-05-20", help="supervised training cutoff inside calibration (default 1997-05-20)")
    parser.add_argument("--customers", type=int, default=None, help="evaluate a random subset of this many customers (smoke runs; default all)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and scikit-learn (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--out-dir", type=Path, default=None, help="keep the trained encoders here (default: a temporary folder)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as tmp:
        report = evaluate(args, args.out_dir or Path(tmp))
    wall = time.perf_counter() - start
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s) used"
    print(f"\nwall time {wall:.0f} s ({wall / 60:.1f} min) on {machine}")
    if args.json:
        report |= {"wall_seconds": wall, "machine": machine}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


@dataclass(frozen=True)
class Protocol:
    """The customers, their calibration transactions, the supervised labels and the holdout truth."""

    user_ids: np.ndarray
    """(n,) object, sorted: every customer of the cohort (or of the ``--customers`` subset)."""
    rfm: pd.DataFrame
    """Calibration summary in weeks (``x``, ``t_x``, ``T``, ``monetary``) with the holdout columns."""
    calibration: pd.DataFrame
    """Merged transactions before 1997-10-01 (the only rows any model reads)."""
    labels: Labels
    """Churn and spend in [train cutoff, 1997-10-01): the supervised models' targets."""
    truth: dict[str, np.ndarray]
    """(n,) holdout ``churn`` (1 = no purchase), ``spend`` and ``purchases`` (transactions)."""
    train_as_of: pd.Timestamp
    window_days: int
    scale: float
    """Holdout days over training-window days: the supervised models' spend multiplier."""


def build_protocol(train_cutoff: str, customers: int | None) -> Protocol:
    """Merge same-day purchases, summarise calibration and holdout, label the training window."""
    train_as_of = pd.Timestamp(train_cutoff)
    window_days = (TEST_AS_OF - train_as_of).days
    purchases = merge_same_day(load_cdnow())
    if customers:
        chosen = np.random.default_rng(0).choice(purchases["user_id"].unique(), customers, replace=False)
        purchases = purchases[purchases["user_id"].isin(chosen)]
    rfm = summarise_purchases(purchases, CAL_END, HOLD_END, unit_days=7.0)
    user_ids = rfm.index.to_numpy(dtype=object)
    calibration = purchases[purchases["ts"] < TEST_AS_OF].reset_index(drop=True)
    truth = {
        "churn": (rfm["x_holdout"] == 0).to_numpy(np.float64),
        "spend": rfm["spend_holdout"].to_numpy(np.float64),
        "purchases": rfm["x_holdout"].to_numpy(np.float64),
    }
    labels = window_labels(calibration, train_as_of, window_days, user_ids)
    return Protocol(user_ids, rfm, calibration, labels, truth, train_as_of, window_days, HOLDOUT_DAYS / window_days)


def fit_encoders(args: argparse.Namespace, protocol: Protocol, out_dir: Path) -> tuple[dict[str, Predictions], list[dict[str, object]]]:
    """The events encoder over ``--seeds`` seeds and, unless ``--skip-text``, the text encoder on a subsample."""
    p = protocol
    configs = [
        EncoderTrainingConfig(backbone="events", seed=s, num_threads=args.threads, pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs)
        for s in range(args.seeds)
    ]
    name = f"events encoder ({args.seeds} seed{'s' * (args.seeds > 1)})"
    models: dict[str, Predictions] = {}
    models[name], runs = train_encoders(p.calibration, p.labels, p.user_ids, configs, p.train_as_of, out_dir, p.scale, 4096)
    if args.skip_text:
        return models, runs
    n_text = min(args.text_customers, len(p.labels))
    rows = np.sort(np.random.default_rng(0).choice(len(p.labels), n_text, replace=False))
    labels = Labels(p.labels.user_ids[rows], p.labels.churn[rows], p.labels.spend[rows])
    config = EncoderTrainingConfig(backbone="text", seed=0, num_threads=args.threads, finetune_epochs=args.text_epochs)
    name = f"text encoder (MiniLM, 1 seed, {n_text:,} train customers)"
    models[name], text_runs = train_encoders(p.calibration, labels, p.user_ids, [config], p.train_as_of, out_dir, p.scale, 256)
    return models, runs + text_runs


def evaluate(args: argparse.Namespace, out_dir: Path) -> dict[str, object]:
    """Fit and score every model, print the tables; returns the figures for ``--json``."""
    p = build_protocol(args.train_cutoff, args.customers)
    sample = summarise_purchases(load_cdnow(sample=True), CAL_END, unit_days=7.0)
    sample_fit = BetaGeoNBD().fit(sample["x"], sample["t_x"], sample["T"])
    fits, models = fit_btyd(p.rfm)
    print_bgnbd_check(sample_fit, fits, len(p.rfm))
    train_features, test_features = (rfm_features(p.calibration, as_of, p.user_ids) for as_of in (p.train_as_of, TEST_AS_OF))
    models["GBM on RFM"] = fit_gbm(train_features, p.labels, test_features, p.scale)
    encoder_models, runs = fit_encoders(args, p, out_dir)
    models |= encoder_models

    table, draws = score_models(models, p.truth, args.bootstrap)
    differences = paired_differences(list(encoder_models), table, draws)
    print(
        f"\nCDNOW holdout weeks 40-78, {len(p.rfm):,} customers ({p.truth['churn'].mean():.1%} buy nothing), "
        f"{args.bootstrap} bootstrap resamples; supervised models trained on history before {p.train_as_of.date()} "
        f"with labels from the {p.window_days}-day window to 1997-10-01, their spend x {p.scale:.3f} "
        f"(= {HOLDOUT_DAYS}/{p.window_days}) for the level metrics; encoder rows average the metric over seeds, "
        "interval of that average.\n"
    )
    print_tables(table, differences)
    print(
        "\nn/a: the model predicts no purchase count. PR-AUC treats churn (no holdout purchase) as the positive class, "
        f"so a random score gets {p.truth['churn'].mean():.3f}. The comparator in the second table is the baseline with "
        "the highest point estimate on that metric; share differences are in percentage points."
    )
    print_encoder_configs(runs)
    seed_rows = print_per_seed(models, list(encoder_models), p.truth)
    published_order = (sample_fit.r_, sample_fit.alpha_, sample_fit.a_, sample_fit.b_, sample_fit.log_likelihood_)
    return {
        "protocol": {
            "train_cutoff": str(p.train_as_of.date()),
            "window_days": p.window_days,
            "spend_scale": p.scale,
            "customers": len(p.rfm),
            "bootstrap": args.bootstrap,
            "seeds": args.seeds,
        },
        "bgnbd_sample": {"published": PUBLISHED_BGNBD, "ours": dict(zip(PUBLISHED_BGNBD, published_order))},
        "metrics": {m: {k: asdict(v) if v else None for k, v in row.items()} for m, row in table.items()},
        "differences": {m: {k: {"baseline": b, **asdict(v)} for k, (b, v) in row.items()} for m, row in differences.items()},
        "per_seed": seed_rows,
        "encoder_runs": runs,
    }


if __name__ == "__main__":
    main()

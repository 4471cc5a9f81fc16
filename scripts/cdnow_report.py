"""How ``cdnow_encoder_eval.py`` scores and prints its models: the predictions, the metrics (with bootstrap
intervals, paired against the best baseline) and the Markdown tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from offerpilot.encoders.metrics import (
    Interval,
    Metric,
    aggregate_relative_error,
    bootstrap_draws,
    churn_auc,
    churn_pr_auc,
    estimate,
    mae,
    normalised_gini,
    percentile_interval,
    spearman,
    top_decile_share,
)
from offerpilot.envs.bgnbd import BetaGeoNBD

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log-likelihood": -9582.4}
"""Fader, Hardie & Lee (2005), 2,357-customer CDNOW sample, weeks 1-39."""
BASELINES = ("BG/NBD + GG", "Pareto/NBD + GG", "GBM on RFM")




@dataclass(frozen=True)
class Predictions:
    """One model's holdout predictions for ``n`` customers; several rows when trained with several seeds."""

    churn: np.ndarray
    """(s, n) float64: score of "no purchase in the holdout" (higher = more likely)."""
    spend: np.ndarray
    """(s, n) float64 >= 0: predicted holdout spend (window-scaled for supervised models)."""
    purchases: np.ndarray | None
    """(s, n) float64: expected holdout transactions, or None for models that do not predict them."""


@dataclass(frozen=True)
class MetricSpec:
    """A table column: the metric, which outcome and prediction it reads, and how to print it."""

    label: str
    metric: Metric
    target: str
    prediction: str
    ranking: bool
    fmt: str


METRICS = (
    MetricSpec("churn AUC", churn_auc, "churn", "churn", True, ".3f"),
    MetricSpec("churn PR-AUC", churn_pr_auc, "churn", "churn", True, ".3f"),
    MetricSpec("spend Spearman", spearman, "spend", "spend", True, ".3f"),
    MetricSpec("norm. Gini", normalised_gini, "spend", "spend", True, ".3f"),
    MetricSpec("top-decile share", top_decile_share, "spend", "spend", True, ".1%"),
    MetricSpec("agg. purchase error", aggregate_relative_error, "purchases", "purchases", False, "+.1%"),
    MetricSpec("agg. spend error", aggregate_relative_error, "spend", "spend", False, "+.1%"),
    MetricSpec("spend MAE ($)", mae, "spend", "spend", False, ".2f"),
)


def score_models(models: dict[str, Predictions], truth: dict[str, np.ndarray], n_boot: int) -> tuple[dict, dict]:
    """Every metric of every model with its bootstrap interval, and the draws (for paired differences)."""
    table: dict[str, dict[str, Interval | None]] = {}
    draws: dict[tuple[str, str], np.ndarray] = {}
    for name, pred in tqdm(models.items(), desc="bootstrap", unit="model"):
        table[name] = {}
        for spec in METRICS:
            score = getattr(pred, spec.prediction)
            if score is None:
                table[name][spec.label] = None
                continue
            draws[name, spec.label] = bootstrap_draws(spec.metric, truth[spec.target], score, n_boot, seed=0)
            point = estimate(spec.metric, truth[spec.target], score)
            table[name][spec.label] = percentile_interval(point, draws[name, spec.label])
    return table, draws


def paired_differences(encoders: list[str], table: dict, draws: dict) -> dict[str, dict[str, tuple[str, Interval]]]:
    """For each encoder and ranking metric: the best baseline's name and the paired (encoder - baseline) interval."""
    out: dict[str, dict[str, tuple[str, Interval]]] = {}
    for name in encoders:
        out[name] = {}
        for spec in (s for s in METRICS if s.ranking):
            best = max(BASELINES, key=lambda b: table[b][spec.label].estimate)
            point = table[name][spec.label].estimate - table[best][spec.label].estimate
            out[name][spec.label] = (best, percentile_interval(point, draws[name, spec.label] - draws[best, spec.label]))
    return out


def cell(interval: Interval | None, fmt: str) -> str:
    """``value (low, high)``, or ``n/a``."""
    if interval is None:
        return "n/a"
    return f"{interval.estimate:{fmt}} ({interval.low:{fmt}}, {interval.high:{fmt}})"


def print_bgnbd_check(sample_fit: BetaGeoNBD, master_fits: dict[str, object], n_master: int) -> None:
    """Our BG/NBD fits beside the published one, then our Pareto/NBD and Gamma-Gamma parameters."""
    ours = (sample_fit.r_, sample_fit.alpha_, sample_fit.a_, sample_fit.b_, sample_fit.log_likelihood_)
    bg = master_fits["BG/NBD"]
    master = (bg.r_, bg.alpha_, bg.a_, bg.b_, bg.log_likelihood_)
    print("BG/NBD on the 2,357-customer sample, weeks 1-39 (Fader, Hardie & Lee 2005):\n")
    print(f"| parameter | published | ours (sample) | ours (all {n_master:,} customers) |")
    print("| --- | --- | --- | --- |")
    for (name, published), mine, full in zip(PUBLISHED_BGNBD.items(), ours, master):
        print(f"| {name} | {published} | {mine:.3f} | {full:.3f} |")
    pn, gg = master_fits["Pareto/NBD"], master_fits["Gamma-Gamma"]
    print(f"\nPareto/NBD (all customers): r = {pn.r_:.3f}, alpha = {pn.alpha_:.3f}, s = {pn.s_:.3f}, beta = {pn.beta_:.3f}")
    print(f"Gamma-Gamma ({gg.n_customers_:,} repeat customers): p = {gg.p_:.3f}, q = {gg.q_:.3f}, gamma = {gg.gamma_:.3f}\n")


def print_tables(table: dict, differences: dict) -> None:
    """The metrics table (rows = models) and the paired-differences table, in Markdown."""
    print("| model | " + " | ".join(s.label for s in METRICS) + " |")
    print("| --- |" + " --- |" * len(METRICS))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(cell(row[s.label], s.fmt) for s in METRICS) + " |")
    ranking = [s for s in METRICS if s.ranking]
    print("\nPaired bootstrap, encoder minus the best baseline on each metric (95 % interval; > 0 everywhere = beats it):\n")
    print("| encoder | " + " | ".join(s.label for s in ranking) + " |")
    print("| --- |" + " --- |" * len(ranking))
    for name, row in differences.items():
        cells = [f"{cell(row[s.label][1], '+' + s.fmt.lstrip('+'))} vs {row[s.label][0]}" for s in ranking]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_encoder_configs(runs: list[dict[str, object]]) -> None:
    """One line per backbone: the resolved architecture and epochs, and the early-stopping epoch of each seed."""
    for backbone in dict.fromkeys(run["config"]["backbone"] for run in runs):
        mine = [run for run in runs if run["config"]["backbone"] == backbone]
        c = mine[0]["config"]
        shape = f"hidden {c['hidden_size']}, {c['num_layers']} layer(s), {c['num_heads']} head(s), " if backbone == "events" else ""
        print(
            f"{backbone} encoder: {shape}max_len {c['max_len']}, {c['pretrain_epochs']} pretraining and at most "
            f"{c['finetune_epochs']} fine-tuning epochs, best epoch per seed {[run['best_epoch'] for run in mine]}, "
            f"{mine[0]['n_train']:,} train / {mine[0]['n_validation']:,} validation customers"
        )


def print_per_seed(models: dict[str, Predictions], encoders: list[str], truth: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Each encoder run's ranking metrics on all customers (no intervals): the spread across seeds."""
    ranking = [s for s in METRICS if s.ranking]
    rows = {
        f"{name}, seed {i}": [estimate(s.metric, truth[s.target], getattr(models[name], s.prediction)[i]) for s in ranking]
        for name in encoders
        for i in range(len(models[name].churn))
    }
    print("\nPer training seed (point estimates):\n")
    print("| run | " + " | ".join(s.label for s in ranking) + " |")
    print("| --- |" + " --- |" * len(ranking))
    for run, values in rows.items():
        print(f"| {run} | " + " | ".join(f"{v:{s.fmt}}" for v, s in zip(values, ranking)) + " |")
    return rows

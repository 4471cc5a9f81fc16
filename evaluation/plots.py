"""Pictures of a policy comparison: CLV by policy, the revenue-vs-CLV frontier, and training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from offerpilot.atomic import atomic_path  # noqa: E402
from offerpilot.evaluation.comparison import Comparison  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_clv_by_policy(comparison: Comparison, path: Path) -> None:
    """Horizontal bars: 365-day discounted margin per customer with its 95 % interval, best on top."""
    pairs = sorted(zip(comparison.contenders, comparison.evaluations), key=lambda ce: ce[1].clv.mean)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(pairs) + 1.2))
    y = range(len(pairs))
    means = [e.clv.mean for _, e in pairs]
    errors = [[e.clv.mean - float(e.clv.low) for _, e in pairs], [float(e.clv.high) - e.clv.mean for _, e in pairs]]
    colors = ["tab:orange" if c.observation == "latent" else "tab:blue" if c.run_dir else "tab:grey" for c, _ in pairs]
    ax.barh(list(y), means, xerr=errors, color=colors, capsize=3)
    ax.set_yticks(list(y), [c.name for c, _ in pairs])
    ax.set_xlabel("CLV: 365-day discounted margin per customer (95 % CI)")
    ax.set_title("CLV by policy (orange: oracle, blue: trained, grey: baselines)")
    _save(fig, path)


def plot_frontier(comparison: Comparison, path: Path) -> None:
    """30-day margin against CLV per policy (95 % intervals), the two things ``lam`` trades; trained policies joined
    in order of ``lam``."""
    fig, ax = plt.subplots(figsize=(7, 5))
    trained = []
    for c, e in zip(comparison.contenders, comparison.evaluations):
        x, y = e.r_short, e.clv
        ax.errorbar(x.mean, y.mean, xerr=[[x.mean - float(x.low)], [float(x.high) - x.mean]], yerr=[[y.mean - float(y.low)], [float(y.high) - y.mean]],
                    fmt="o" if c.run_dir else "s", color="tab:blue" if c.run_dir and c.observation != "latent" else "tab:orange" if c.run_dir else "tab:grey", capsize=2)
        ax.annotate(c.name, (x.mean, y.mean), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if c.run_dir and c.observation != "latent" and c.lam is not None:
            trained.append((c.lam, x.mean, y.mean))
    if len(trained) > 1:
        trained.sort()
        ax.plot([t[1] for t in trained], [t[2] for t in trained], color="tab:blue", alpha=0.6, label="trained policies over lam")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("30-day margin per customer")
    ax.set_ylabel("CLV per customer")
    ax.set_title("Short-term margin vs lifetime value")
    _save(fig, path)


def plot_learning_curves(comparison: Comparison, path: Path) -> bool:
    """Validation objective against training steps for every trained run with an ``eval.csv``; False if none."""
    runs = [c for c in comparison.contenders if c.run_dir is not None and (c.run_dir / "eval.csv").is_file()]
    if not runs:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in runs:
        with open(c.run_dir / "eval.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["timesteps"]) for r in rows]
        ax.plot(steps, [float(r["objective"]) for r in rows], marker="o", label=c.name)
        ax.fill_between(steps, [float(r["objective_low"]) for r in rows], [float(r["objective_high"]) for r in rows], alpha=0.2)
    ax.set_xlabel("training steps (customer-decisions)")
    ax.set_ylabel("validation objective per customer (95 % CI)")
    ax.set_title("Learning curves")
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)
    return True

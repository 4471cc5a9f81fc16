"""The picture of an off-policy evaluation: every estimate with its interval beside what was logged."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from offerpilot.atomic import atomic_path  # noqa: E402
from offerpilot.ope.off_policy import OPEReport  # noqa: E402


def plot_ope(report: OPEReport, path: str | Path, title: str, truth: tuple[float, float] | None = None) -> None:
    """Two panels (per decision, per customer): point estimates with 95 % intervals, and the logging
    policy's realised value as a dashed line. Written atomically as PNG.

    :param truth: the target's true value per decision and its standard error, when a simulator knows it:
        drawn as a band on the per-decision panel."""
    scopes = [("per decision", report.logged_per_decision), ("per customer", report.logged_per_customer)]
    scopes = [(s, logged) for s, logged in scopes if any(r.scope == s for r in report.rows)]
    fig, axes = plt.subplots(1, len(scopes), figsize=(5.5 * len(scopes), 3.8), squeeze=False)
    for ax, (scope, logged) in zip(axes[0], scopes):
        rows = [r for r in report.rows if r.scope == scope]
        y = range(len(rows))
        ax.errorbar(
            [r.value for r in rows], list(y),
            xerr=[[r.value - r.low for r in rows], [r.high - r.value for r in rows]],
            fmt="o", color="tab:blue", capsize=3,
        )
        ax.axvline(logged, color="grey", linestyle="--", label="logging policy (realised)")
        if truth is not None and scope == "per decision":
            value, se = truth
            ax.axvspan(value - 1.96 * se, value + 1.96 * se, color="tab:green", alpha=0.25)
            ax.axvline(value, color="tab:green", label="simulated truth (95 % CI)")
        ax.set_yticks(list(y), [r.estimator for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel(f"objective {scope}")
        ax.set_title(f"value {scope}")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

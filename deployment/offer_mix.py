"""Who gets which offer: a scored batch's offers broken down by segment, churn risk and predicted CLV."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from offerpilot.atomic import atomic_path  # noqa: E402

SEGMENTS = ("active (bought in the last 90 days)", "cooling (91-180 days)", "lapsed (over 180 days)", "never bought")
"""Recency segments a marketer reads at a glance, in order of engagement."""


def recency_segments(events: pd.DataFrame, as_of: pd.Timestamp, user_ids: np.ndarray) -> pd.Series:
    """Each customer's :data:`SEGMENTS` label from their last purchase strictly before ``as_of``."""
    purchases = events[(events["event"] == "purchase") & (events["ts"] < as_of)]
    last = purchases.groupby("user_id")["ts"].max().reindex(user_ids)
    days = (pd.Timestamp(as_of) - last).dt.days.to_numpy()
    labels = np.select([days <= 90, days <= 180, days > 180], SEGMENTS[:3], default=SEGMENTS[3])
    return pd.Series(pd.Categorical(labels, categories=SEGMENTS), index=user_ids, name="segment")


def quintiles(values: np.ndarray) -> pd.Categorical:
    """Quintiles of ``values`` (ties broken by order, so each holds a fifth), labelled with their value ranges."""
    q = pd.qcut(pd.Series(values).rank(method="first").to_numpy(), 5, labels=False)
    labels = [f"Q{i + 1}: {values[q == i].min():.3g} to {values[q == i].max():.3g}" for i in range(5)]
    return pd.Categorical.from_codes(q, labels)


def offer_mix(offers: pd.Series | np.ndarray, groups: pd.Categorical | pd.Series, offer_ids: tuple[str, ...]) -> pd.DataFrame:
    """Share of each non-empty group's customers given each offer (rows sum to 1) and the group's size ``customers``."""
    frame = pd.DataFrame({"group": np.asarray(groups), "offer": np.asarray(offers)})
    frame["group"] = pd.Categorical(frame["group"], categories=getattr(groups, "categories", None))
    shares = pd.crosstab(frame["group"], frame["offer"], normalize="index", dropna=False).reindex(columns=list(offer_ids), fill_value=0.0)
    sizes = frame["group"].value_counts().reindex(shares.index).rename("customers")
    table = pd.concat([sizes, shares.fillna(0.0)], axis=1)
    return table[table["customers"] > 0]


def plot_offer_mix(tables: dict[str, pd.DataFrame], path: str | Path) -> None:
    """One panel per breakdown: stacked horizontal bars of the offer shares in each group."""
    fig, axes = plt.subplots(len(tables), 1, figsize=(8, 2.0 + 0.5 * sum(len(t) for t in tables.values())), squeeze=False)
    offers = [c for c in next(iter(tables.values())).columns if c != "customers"]
    colors = plt.get_cmap("tab10")(np.arange(len(offers)) % 10)
    for ax, (title, table) in zip(axes[:, 0], tables.items()):
        left = np.zeros(len(table))
        labels = [f"{g} (n={n:,})" for g, n in zip(table.index, table["customers"])]
        for offer, color in zip(offers, colors):
            ax.barh(labels, table[offer].to_numpy(), left=left, color=color, label=offer)
            left += table[offer].to_numpy()
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    axes[-1, 0].set_xlabel("share of the group's customers")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(offers), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

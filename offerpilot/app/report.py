"""The demo's report: one page (Markdown and the same as HTML) with its PNG plots, for a marketing analyst."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markdown
import pandas as pd

from offerpilot.atomic import write_text_atomic
from offerpilot.deployment.manifest import BundleManifest
from offerpilot.deployment.offer_mix import offer_mix, plot_offer_mix, quintiles, recency_segments
from offerpilot.evaluation.comparison import Comparison
from offerpilot.evaluation.plots import plot_clv_by_policy, plot_frontier, plot_learning_curves
from offerpilot.ope.off_policy import OPEReport
from offerpilot.ope.plot import plot_ope

REPORT_JSON = "report.json"
"""The numbers behind ``report.md``: the policy table, the off-policy estimates and their truth, the offer mix."""
Z95 = 1.959963984540054


@dataclass(frozen=True)
class DemoReport:
    """Everything the report shows; see :func:`offerpilot.app.demo.run_demo` for where each part comes from."""

    config: Any
    comparison: Comparison
    ope: OPEReport
    ope_truth: tuple[float, float]
    """The trained policy's true value per decision under the logging policy's customers, and its standard error."""
    manifest: BundleManifest
    bundle_dir: Path
    scored: pd.DataFrame
    """The bundle's decisions for every logged customer (``offerpilot score``'s table)."""
    predictions: pd.DataFrame
    """``user_id``, ``churn_probability``, ``expected_clv`` from the encoder at the scoring time."""
    events: pd.DataFrame
    timings: dict[str, float]
    n_events: int
    n_decisions: int


def write_report(report: DemoReport, folder: str | Path) -> Path:
    """Write ``report.md``, ``report.html`` and the plots into ``folder``; return the HTML page's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_clv_by_policy(report.comparison, folder / "clv_by_policy.png")
    plot_frontier(report.comparison, folder / "frontier.png")
    has_curves = plot_learning_curves(report.comparison, folder / "learning_curves.png")
    plot_ope(report.ope, folder / "ope.png", "off-policy estimates of the trained policy", truth=report.ope_truth)
    mix = offer_mix_tables(report)
    plot_offer_mix(mix, folder / "offer_mix.png")
    text = "\n".join([
        _header(report),
        _policies(report),
        _who_gets_what(report, mix),
        _off_policy(report),
        _training(has_curves),
        _bundle(report),
        _assumptions(),
    ])
    write_text_atomic(folder / REPORT_JSON, json.dumps(report_numbers(report, mix), indent=2) + "\n")
    write_text_atomic(folder / "report.md", text)
    body = markdown.markdown(text, extensions=["tables"])
    write_text_atomic(folder / "report.html", f"<!doctype html>\n<html><head><meta charset='utf-8'><title>offerpilot demo report</title>"
                      f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
    return folder / "report.html"


def report_numbers(report: DemoReport, mix: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """What the report's tables show, as numbers (``report.json``): what a script or a test should read, not the prose."""
    truth, se = report.ope_truth
    return {
        "policies": json.loads(report.comparison.to_json()),
        "off_policy": {**report.ope.to_dict(), "truth": {"value": truth, "se": se}},
        "offer_mix": {title: table.reset_index(names="group").astype({"group": str}).to_dict(orient="records") for title, table in mix.items()},
    }


def offer_mix_tables(report: DemoReport) -> dict[str, pd.DataFrame]:
    """The scored batch's offer shares by recency segment, predicted churn risk and predicted CLV."""
    scored = report.scored.merge(report.predictions, on="user_id", how="left", validate="one_to_one")
    users = scored["user_id"].to_numpy()
    offer_ids = tuple(report.manifest.actions.ids)
    as_of = pd.Timestamp(scored["ts"].iloc[0])
    return {
        "by recency segment": offer_mix(scored["offer_id"], recency_segments(report.events, as_of, users).reset_index(drop=True).array, offer_ids),
        "by predicted churn risk (probability of no purchase in 90 days, quintiles)": offer_mix(scored["offer_id"], quintiles(scored["churn_probability"].to_numpy()), offer_ids),
        "by predicted CLV (spend in the next 90 days, quintiles)": offer_mix(scored["offer_id"], quintiles(scored["expected_clv"].to_numpy()), offer_ids),
    }


def _header(report: DemoReport) -> str:
    c = report.config
    steps = "\n".join(f"| {name} | {seconds:,.0f} s |" for name, seconds in report.timings.items())
    return f"""# offerpilot demo report

What this is: a simulated online shop (the default population, calibrated on the CDNOW purchase log), its
logs of one year of weekly offer decisions for {c.customers:,} customers ({report.n_events:,} events, {report.n_decisions:,}
decisions, offers drawn uniformly at random: a randomised test), a customer encoder and a PPO policy trained
on them, and the checks a team would want before sending the policy's offers to real customers. Every money
figure is margin per customer (revenue minus cost of goods, discounts and message costs); CLV is the 365-day
discounted margin; `[low, high]` is a 95 % confidence interval. Seed {c.seed}; the objective is
`(1 - lam) x 30-day margin + lam x CLV` with lam = {c.lam}.

| step | wall time |
|---|---|
{steps}

Machine: {platform.machine()}, Python {platform.python_version()}.
"""


def _policies(report: DemoReport) -> str:
    comp = report.comparison
    n = comp.evaluations[0].n_customers
    by_name = {c.name: e for c, e in zip(comp.contenders, comp.evaluations)}
    share = ""
    if "ppo" in comp.oracle_share and by_name["oracle"].clv.low <= by_name["no_offer"].clv.mean:
        share = ("The oracle (trained the same way, but seeing the simulator's hidden state) did not clearly beat sending nothing "
                 "in this run, so shares of its gain say nothing here; train longer (the defaults of `offerpilot train`).")
    elif "ppo" in comp.oracle_share:
        s, lo, hi = comp.oracle_share["ppo"]
        share = (f"The trained policy (`ppo`) reaches {s:.0%} [{lo:.0%}, {hi:.0%}] of the CLV gain over sending nothing that the "
                 "oracle reaches (the oracle is trained the same way but sees the simulator's hidden state: whether a customer "
                 "is still active, their purchase rate and price sensitivity; no real policy can see that).")
        if "ppo" in comp.informed_share:
            s, lo, hi = comp.informed_share["ppo"]
            share += (f" Against the log-informed oracle, which sees the four stable traits only as well as a year of a shop's logs "
                      f"tells them (a yardstick a policy that reads logs could reach), it reaches {s:.0%} [{lo:.0%}, {hi:.0%}].")
    tuned = "; ".join(f"{c.name}: " + ", ".join(f"{k} {v}" for k, v in c.params.items()) for c in comp.contenders if c.params)
    return f"""## 1. Which policy earns most

Every policy below met the same {n:,} held-out customers (never used for training or tuning). The baselines'
parameters were tuned on other customers first ({tuned}). `ppo_lam...` are the same agent trained for other
trade-offs.

{comp.markdown()}
{share}

![CLV by policy](clv_by_policy.png)

The frontier: what each policy earns in its first 30 days (margin, the short-term half of the objective) against
its customers' CLV. Up and to the right is better; the blue line joins the trained policies over lam.
{_dominance(comp)}
![Margin vs CLV frontier](frontier.png)
"""


def _dominance(comp: Comparison) -> str:
    """Which baselines the trained frontier beats on both axes, and by which policy."""
    verdicts = {c.name: comp.dominating(c.name) for c in comp.contenders if c.run_dir is None}
    beaten = [f"`{name}` by `{v[0]}` (30-day margin {v[1]}, CLV {v[2]})" for name, v in verdicts.items() if v is not None]
    missed = [f"`{name}`" for name, v in verdicts.items() if v is None]
    lines = ["", "Paired on the same customers (95 % CI), a trained policy has more 30-day margin and more CLV than "
             + ("every baseline: " if not missed else "these baselines: ") + ("; ".join(beaten) if beaten else "none") + "."]
    if missed:
        lines.append(f"No trained policy beats {', '.join(missed)} on both with intervals above zero.")
    return "\n".join(lines) + "\n"


def _mix_table(table: pd.DataFrame) -> str:
    offers = [c for c in table.columns if c != "customers"]
    lines = ["| group | customers | " + " | ".join(offers) + " |", "|---|---|" + "---|" * len(offers)]
    for group, row in table.iterrows():
        lines.append(f"| {group} | {int(row['customers']):,} | " + " | ".join(f"{row[o]:.0%}" for o in offers) + " |")
    return "\n".join(lines)


def _who_gets_what(report: DemoReport, mix: dict[str, pd.DataFrame]) -> str:
    scored = report.scored
    overall = scored["offer_id"].value_counts(normalize=True)
    tables = "\n\n".join(f"**{title}**\n\n{_mix_table(table)}" for title, table in mix.items())
    return f"""## 2. Who gets which offer

The exported bundle scored all {len(scored):,} logged customers at {pd.Timestamp(scored['ts'].iloc[0])}, the start of the
next decision period, exactly as `offerpilot score` does for a shop (features rebuilt from the logs, contact
caps counted from the logged messages, {report.manifest.policy_id} with 5 % exploration). Overall:
{', '.join(f'{o} {s:.0%}' for o, s in overall.items())}. Churn risk and CLV are the encoder's predictions.

{tables}

![Offers by segment, churn risk and CLV](offer_mix.png)
"""


def _off_policy(report: DemoReport) -> str:
    ope, (truth, se) = report.ope, report.ope_truth
    rows = [r for r in ope.rows if r.scope == "per decision"]
    lines = ["| estimator | estimate | 95 % interval | covers the truth |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.estimator} | {r.value:.4f} | [{r.low:.4f}, {r.high:.4f}] | {'yes' if r.low <= truth <= r.high else 'no'} |")
    d = ope.decision_diagnostics
    warnings = "".join(f"\n- warning: {w}" for w in ope.warnings) or "\n- no overlap warning was raised."
    return f"""## 3. What the logs say the policy would earn (off-policy evaluation)

Before any live test: the trained policy's value estimated from the logged decisions alone, per decision
window (the objective earned in the 7 days after a decision, on the customers as the logs found them), with
{report.config.bootstrap} bootstrap replicates resampling customers. Beside it, the truth only a simulator can
give: the policy's own decisions replayed on {report.config.truth_customers:,} fresh simulated customers
living under the logging policy: **{truth:.4f}** [{truth - Z95 * se:.4f}, {truth + Z95 * se:.4f}]. The logging
policy itself earned {ope.logged_per_decision:.4f} per decision.

{chr(10).join(lines)}

Diagnostics: effective sample size {d.ess:,.0f} of {d.n:,} decisions ({d.ess_share:.1%}), largest importance
weight {d.max_weight:.1f}, mean weight {d.mean_weight:.3f} (1 when the logs support the policy).{warnings}

DR and SNIPS are the estimators to read (unbiased, intervals that cover in the simulator study of the README);
DM, switch-DR and DRos lean on a reward model and can be biased where the policy differs most from the logs.

![Off-policy estimates beside the truth](ope.png)
"""


def _training(has_curves: bool) -> str:
    if not has_curves:
        return "## 4. How training went\n\nNo run evaluated on validation customers while training.\n"
    return """## 4. How training went

Each run's objective per customer on validation customers (its own seeds) during training, with 95 %
intervals; each run keeps its best validated policy.

![Learning curves](learning_curves.png)
"""


def _bundle(report: DemoReport) -> str:
    m = report.manifest
    files = "\n".join(f"| {name} | {entry.bytes:,} | `{entry.sha256[:16]}` |" for name, entry in m.files.items())
    parity = m.metrics.parity
    n_features = len(m.features.names)
    return f"""## 5. The exported bundle

`{report.bundle_dir.name}/` holds policy `{m.policy_id}` for the marketing engine: an ONNX graph that maps a customer's
{n_features} features and the offers allowed now to a probability per action and an expected value, the manifest
(catalog, feature order, objective with lam = {m.objective['lam']}, training data, metrics, a sha256 for every file:
a changed file is refused) and a model card. onnxruntime matched torch within
{parity['random']['probabilities_max_abs_diff']:.1e} on {parity['random']['inputs']:,} random inputs and
{parity['simulated']['probabilities_max_abs_diff']:.1e} on {parity['simulated']['inputs']:,} simulated decisions.

| file | bytes | sha256 (first 16) |
|---|---|---|
{files}

Serve it with `offerpilot serve --bundle {report.bundle_dir.name}`, or score a batch with
`offerpilot score --bundle {report.bundle_dir.name} --customers events.parquet --out decisions.parquet`.
"""


def _assumptions() -> str:
    return """## What to keep in mind

- Every number comes from a simulator. Its customers buy and drop out as the CDNOW shop's did (Pareto/NBD and
  Gamma-Gamma fitted by maximum likelihood), and respond to offers the way marketers report (discounts given on
  purchases that would have happened anyway, customers who learn to wait for coupons, contact fatigue); the size
  of those responses is an assumption, not a measurement of your shop.
- The policy table and the frontier are simulated truth for this population. On your own customers, the
  off-policy estimate (section 3) from your own randomised logs is the evidence to read before a live test.
- The demo trains briefly; `offerpilot train` with its defaults trains longer and reaches more (see README).
"""


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}code{background:#f5f5f5;padding:0 3px}")

"""``offerpilot demo --quick`` end to end: every step's outputs, the report, and that they agree with the single commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offerpilot.agents.baselines import COMPARED_BASELINES
from offerpilot.app.demo import DEMO_MARKER, SUMMARY
from offerpilot.app.report import REPORT_JSON
from offerpilot.deployment.bundle import Bundle
from offerpilot.tables import read_table

PNG = b"\x89PNG\r\n\x1a\n"


def offerpilot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offerpilot", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, offerpilot("demo", "--quick", "--out", str(out), "--no-progress")


def test_the_quick_demo_writes_every_step_and_says_where_the_report_is(demo):
    out, result = demo
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"report: {out / 'report' / 'report.html'}" in result.stdout
    for path in ("logs/events.parquet", "logs/decisions.parquet", "encoder/model/model.safetensors", "runs/ppo/best_policy/policy.safetensors",
                 "runs/oracle/policy/policy.safetensors", "runs/ppo_lam1/eval.csv", "bundle/manifest.json", "scores/decisions.parquet", DEMO_MARKER, SUMMARY):
        assert (out / path).is_file(), path
    for plot in ("clv_by_policy", "frontier", "learning_curves", "offer_mix", "ope"):
        assert (out / "report" / f"{plot}.png").read_bytes()[:8] == PNG, plot
    html = (out / "report" / "report.html").read_text()
    assert html.count("<table>") >= 6 and 'src="offer_mix.png"' in html


def numbers(out: Path) -> dict:
    """``report.json``: the numbers behind the report's tables."""
    return json.loads((out / "report" / REPORT_JSON).read_text())


def test_the_policy_table_holds_every_baseline_the_trained_policies_and_the_oracle(demo):
    out, _ = demo
    policies = {row["policy"]: row for row in numbers(out)["policies"]}
    assert set(policies) == set(COMPARED_BASELINES) | {"ppo", "ppo_lam1", "oracle", "informed_oracle"}
    assert policies["oracle"]["oracle_gain_share"] == [1.0, 1.0, 1.0]  # each yardstick's share of its own gain
    assert policies["informed_oracle"]["informed_oracle_gain_share"] == [1.0, 1.0, 1.0]
    assert policies["no_offer"]["oracle_gain_share"] == [0.0, 0.0, 0.0]
    for row in policies.values():
        assert row["objective"]["low"] <= row["objective"]["mean"] <= row["objective"]["high"]
    report = (out / "report" / "report.md").read_text()
    for name in ("ppo", "oracle"):  # the page shows the JSON's numbers
        clv = policies[name]["CLV"]
        assert f"{clv['mean']:.3f} [{clv['low']:.3f}, {clv['high']:.3f}]" in report


def test_the_report_shows_the_same_off_policy_estimates_as_offerpilot_ope(demo, tmp_path):
    """The demo's OPE section is what a user gets from `offerpilot ope` on the demo's logs and run."""
    out, _ = demo
    result = offerpilot("ope", "--logs", str(out / "logs"), "--policy", str(out / "runs" / "ppo"), "--no-sequential",
                        "--bootstrap", "100", "--seed", "0", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    estimates = {r["estimator"]: r for r in json.loads((tmp_path / "ope.json").read_text())["estimates"]}
    off_policy = numbers(out)["off_policy"]
    shown = {r["estimator"]: r for r in off_policy["estimates"]}
    assert set(shown) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dr-os"}
    for name, row in shown.items():
        assert (row["value"], row["low"], row["high"]) == pytest.approx((estimates[name]["value"], estimates[name]["low"], estimates[name]["high"]), rel=1e-12)
    assert 0.05 < off_policy["truth"]["value"] < 0.25  # objective per weekly decision window of this population
    assert 0 < off_policy["truth"]["se"] < 0.05


def test_the_scored_batch_is_a_valid_decisions_table_for_every_logged_customer(demo):
    out, _ = demo
    scored = read_table(out / "scores" / "decisions.parquet")
    customers = read_table(out / "logs" / "customers.parquet")
    assert sorted(scored["user_id"]) == sorted(customers["user_id"])
    probs = scored[[c for c in scored if c.startswith("prob_")]].to_numpy()
    assert probs.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
    assert probs[np.arange(len(scored)), [list(Bundle(out / "bundle").action_ids).index(o) for o in scored["offer_id"]]] == pytest.approx(scored["propensity"].to_numpy())
    result = offerpilot("validate", str(out / "scores" / "decisions.parquet"))
    assert result.returncode == 0, result.stdout
    for title, groups in numbers(out)["offer_mix"].items():
        assert sum(g["customers"] for g in groups) == len(scored), title
        for g in groups:
            assert sum(g[o] for o in Bundle(out / "bundle").action_ids) == pytest.approx(1.0), (title, g["group"])


def test_the_demo_refuses_a_folder_it_did_not_write_and_deletes_nothing(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    result = offerpilot("demo", "--quick", "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 2
    assert "not written by 'offerpilot demo'" in result.stderr and "Traceback" not in result.stderr
    assert keep.read_text() == "mine"


def test_the_summary_holds_the_report_s_paired_differences_and_every_baseline_s_verdict(demo):
    """``summary.json`` (what scripts/demo_seeds.py tabulates) says what the report says, number for number."""
    out, _ = demo
    summary = json.loads((out / SUMMARY).read_text())
    report = (out / "report" / "report.md").read_text()
    assert f"minus the best baseline (`{summary['best_baseline']}`)" in report
    for name, metrics in summary["versus_best_baseline"].items():
        objective, clv, margin = (metrics[m] for m in ("objective", "clv", "r_short"))
        cells = [f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for v in (objective, clv, margin)]
        assert f"- `{name}`: objective {cells[0]}, CLV {cells[1]}, 30-day margin {cells[2]}" in report
        assert objective[1] < objective[0] < objective[2]
    assert set(summary["versus_best_baseline"]) == {"ppo", "ppo_lam1"}
    assert set(summary["dominated_by"]) == set(COMPARED_BASELINES)
    for baseline, by in summary["dominated_by"].items():
        assert by is None or f"`{baseline}` by `{by}`" in report

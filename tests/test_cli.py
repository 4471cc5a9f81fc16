"""The offerpilot command end to end: real processes, real files, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from offerpilot.app.cli import main
from offerpilot.tables import read_table


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offerpilot", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    result = run("simulate", "--out", str(out), "--customers", "400", "--seed", "7", "--policy", "epsilon-greedy")
    assert result.returncode == 0, result.stderr
    return out


COMMANDS = ("demo", "simulate", "validate", "calibrate", "ope", "encoder train", "encoder embed", "train", "evaluate", "export", "score", "serve")
"""Every command of offerpilot (``encoder`` has two)."""


def test_help_lists_every_command(capsys):
    """--help names each subcommand, each has its own --help, and no command exists that this list misses."""
    result = run("--help")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.split("commands:")[1].splitlines()[2:] if line.startswith("    ") and not line.startswith("     ")}
    assert listed == {c.split()[0] for c in COMMANDS}
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([*command.split(), "--help"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith("usage: offerpilot " + command)


def test_simulate_writes_the_contract_and_validates(simulated):
    """simulate writes events, decisions, customers and config; validate accepts them (exit 0)."""
    events, decisions = read_table(simulated / "events.parquet"), read_table(simulated / "decisions.parquet")
    assert set(events["event"]) <= {"visit", "view", "cart", "purchase", "review", "unsubscribe"}
    assert (events["event"] == "purchase").sum() >= 400  # every customer was acquired with a purchase
    assert len(decisions) == 400 * 53  # 365 days / 7-day decisions, every customer, dead or alive
    probs = decisions[[c for c in decisions if c.startswith("prob_")]]
    assert probs.sum(axis=1).to_numpy() == pytest.approx(1.0)
    chosen = probs.to_numpy()[range(len(decisions)), [probs.columns.get_loc("prob_" + o) for o in decisions["offer_id"]]]
    assert chosen == pytest.approx(decisions["propensity"].to_numpy())
    config = json.loads((simulated / "config.json").read_text())
    assert config["seed"] == 7 and config["epsilon"] == 0.2
    result = run("validate", str(simulated / "events.parquet"), str(simulated / "decisions.parquet"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("OK") == 2


def test_simulate_is_deterministic(tmp_path, simulated):
    """The same seed writes the same logs."""
    assert main(["simulate", "--out", str(tmp_path), "--customers", "400", "--seed", "7"]) == 0
    for name in ("events", "decisions"):
        pd.testing.assert_frame_equal(read_table(tmp_path / f"{name}.parquet"), read_table(simulated / f"{name}.parquet"))


def test_validate_names_file_row_and_field_and_fails(tmp_path, simulated):
    """A corrupted decisions file is reported with file, row and column, and exit code 1."""
    decisions = read_table(simulated / "decisions.parquet")
    decisions.loc[4, "propensity"] = 1.5
    decisions.loc[9, "offer_id"] = "pct99"
    bad = tmp_path / "decisions.csv"
    decisions.to_csv(bad, index=False)
    result = run("validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}, row 5, field 'propensity'" in result.stdout
    assert f"{bad}, row 10, field 'offer_id'" in result.stdout


def test_bad_arguments_give_clear_errors(tmp_path):
    """Unknown population, bad catalog and a missing file: a message and a non-zero exit, no traceback."""
    result = run("simulate", "--out", str(tmp_path), "--population", "nosuch")
    assert result.returncode == 2 and "not a preset" in result.stderr and "Traceback" not in result.stderr
    catalog = tmp_path / "offers.yaml"
    catalog.write_text("channels: {email: {send_cost: -1}}\noffers: [{id: none, kind: none}]\n")
    result = run("simulate", "--out", str(tmp_path), "--catalog", str(catalog))
    assert result.returncode == 1 and "channels.email.send_cost" in result.stderr
    result = run("validate", str(tmp_path / "missing.parquet"))
    assert result.returncode != 0 and "missing.parquet" in (result.stdout + result.stderr)


def test_user_errors_exit_with_their_code_and_bugs_show_their_traceback(tmp_path, monkeypatch, capsys):
    """What the user can fix (a UserError) is one line and its exit code; any other exception is a bug and propagates."""
    assert main(["train", "--lam", "1.5", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "lam must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

    def broken(spec):
        raise ValueError("a bug, not the user's doing")

    monkeypatch.setattr("offerpilot.envs.presets.load_population", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["simulate", "--out", str(tmp_path / "logs"), "--customers", "5"])


def test_calibrate_on_simulated_log_plugs_into_simulate(tmp_path, simulated):
    """calibrate writes a population JSON that simulate --population accepts."""
    pop = tmp_path / "pop.json"
    result = run("calibrate", "--events", str(simulated / "events.parquet"), "--out", str(pop))
    assert result.returncode == 0, result.stderr
    fitted = json.loads(pop.read_text())["population"]
    assert 0 < fitted["r"] and 0 < fitted["alpha"] and fitted["spend_q"] > 1
    result = run("simulate", "--out", str(tmp_path / "again"), "--customers", "50", "--population", str(pop))
    assert result.returncode == 0, result.stderr


def test_ope_on_policy_target_recovers_what_was_logged(simulated, tmp_path):
    """Evaluating the logging policy itself: IPS/SNIPS equal the realised per-decision value and
    PDIS the realised per-customer value; JSON and PNG are written."""
    out = tmp_path / "ope"
    result = run("ope", "--logs", str(simulated), "--policy", "epsilon_greedy", "--bootstrap", "50", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "ope.json").read_text())
    value = {r["estimator"]: r["value"] for r in report["estimates"]}
    assert value["ips"] == pytest.approx(report["logged_per_decision"], rel=1e-9)
    assert value["snips"] == pytest.approx(report["logged_per_decision"], rel=1e-9)
    assert value["pdis"] == pytest.approx(report["logged_per_customer"], rel=1e-9)
    assert report["decision_diagnostics"]["ess_share"] == pytest.approx(1.0)
    assert (out / "ope.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "dm, switch-dr and dr-os keep the reward model fitted once" in result.stdout  # whose intervals to trust


def test_ope_reward_margin_rate_and_context_of_an_events_log(simulated, tmp_path):
    """--reward margin pays the window's margin itself; --margin-rate enters it linearly (the list value times the rate);
    --context columns of the decisions reach the reward model (DM moves), not the importance weights (IPS stays)."""
    def ope(*flags: str) -> dict[str, float]:
        out = tmp_path / "_".join(["ope", *(f.strip("-") for f in flags)])
        assert main(["ope", "--logs", str(simulated), "--policy", "uniform", "--bootstrap", "10", "--no-sequential", *flags, "--out", str(out)]) == 0
        report = json.loads((out / "ope.json").read_text())
        return {"logged": report["logged_per_decision"], **{e["estimator"]: e["value"] for e in report["estimates"]}}

    rates = [ope("--reward", "margin", "--margin-rate", r)["logged"] for r in ("0", "0.35", "0.7")]
    assert rates[2] - rates[1] == pytest.approx(rates[1] - rates[0], rel=1e-9) and rates[2] > rates[1] > rates[0]
    assert ope("--reward", "objective")["logged"] != pytest.approx(rates[1], rel=1e-3)
    plain, with_context = ope(), ope("--context", "policy_id", "propensity")
    assert with_context["ips"] == plain["ips"] and with_context["dm"] != plain["dm"]


def test_ope_refuses_bad_estimator_flags_before_reading_the_logs(tmp_path, capsys):
    """Each estimator flag out of range is an error naming it (exit 2), even with logs that do not exist."""
    for flags, message in ((["--alpha", "1.5"], "alpha (--alpha) must be in (0, 1), got 1.5"), (["--switch-tau", "0"], "switch_tau (--switch-tau) must be > 0"),
                           (["--folds", "1"], "n_folds (--folds) must be >= 2"), (["--dros-lambda", "-1"], "shrinkage_lambda (--dros-lambda) must be >= 0"),
                           (["--digits", "30"], "--digits must be in [1, 17]"), (["--margin-rate", "2"], "gross_margin_rate (--margin-rate) must be in [0, 1]")):
        assert main(["ope", "--logs", str(tmp_path / "nowhere"), "--policy", "no_offer", *flags]) == 2
        assert message in capsys.readouterr().err, flags


def test_ope_refuses_bad_logs(simulated, tmp_path):
    """Zero propensities, decisions for unknown users and unknown policies: named errors, non-zero exit."""
    decisions = read_table(simulated / "decisions.parquet")
    events = read_table(simulated / "events.parquet")
    bad = tmp_path / "bad"
    bad.mkdir()
    events.to_csv(bad / "events.csv", index=False)
    broken = decisions.copy()
    broken.loc[2, "propensity"] = 0.0
    broken.loc[5, "user_id"] = "stranger"
    broken.to_csv(bad / "decisions.csv", index=False)
    result = run("ope", "--logs", str(bad), "--policy", "no_offer", "--no-sequential")
    assert result.returncode == 1
    assert "row 3, field 'propensity'" in result.stderr and "row 6, field 'user_id'" in result.stderr
    result = run("ope", "--logs", str(simulated), "--policy", "greedy_genius")
    assert result.returncode == 2 and "neither a baseline" in result.stderr
    result = run("ope", "--logs", str(tmp_path / "nowhere"), "--policy", "no_offer")
    assert result.returncode == 2 and "no events.parquet or events.csv" in result.stderr


def test_encoder_train_then_embed(tmp_path):
    """encoder train writes a loadable model and metrics; encoder embed writes one row per customer."""
    logs = tmp_path / "logs"
    assert main(["simulate", "--out", str(logs), "--customers", "300", "--policy", "no-offer", "--seed", "2"]) == 0
    run_dir = tmp_path / "run"
    result = run("encoder", "train", "--events", str(logs / "events.parquet"), "--as-of", "2025-01-01",
                 "--finetune-epochs", "1", "--pretrain-epochs", "1", "--embedding-dim", "8", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["val_churn_auc"] <= 1.0
    out = tmp_path / "emb.parquet"
    result = run("encoder", "embed", "--model", str(run_dir / "model"), "--events", str(logs / "events.parquet"),
                 "--as-of", "2025-01-01", "--out", str(out))
    assert result.returncode == 0, result.stderr
    frame = read_table(out)
    assert len(frame) == 300 and [c for c in frame if c.startswith("emb_")] == [f"emb_{i}" for i in range(8)]
    assert frame["churn_probability"].between(0, 1).all() and (frame["expected_clv"] >= 0).all()
    result = run("encoder", "embed", "--model", str(run_dir), "--events", str(logs / "events.parquet"), "--out", str(out))
    assert result.returncode == 2 and "no model.safetensors" in result.stderr

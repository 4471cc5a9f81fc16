"""A real randomized log that offerpilot did not make, the Open Bandit Dataset's small sample, through ``validate`` and
``ope`` as it is: no catalog, no customers, a click column as the outcome, positions as slots, user features as context."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offerpilot.app.cli import main
from offerpilot.deployment.evaluate_logs import evaluate_outcome_log
from offerpilot.ope.off_policy import OPEConfig
from offerpilot.ope.outcome_decisions import action_set, outcome_decisions
from offerpilot.outcome_log import OutcomeLog, read_outcome_log

_spec = importlib.util.spec_from_file_location("obd_ope", Path(__file__).resolve().parents[1] / "scripts" / "obd_ope.py")
obd_ope = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(obd_ope)

LOG = OutcomeLog(outcome="click", action="item_id", propensity="propensity_score", context_prefix="user_feature_", slot="position")
LOG_FLAGS = ["--outcome", "click", "--action-column", "item_id", "--propensity-column", "propensity_score", "--slot", "position",
             "--context-prefix", "user_feature_"]


@pytest.fixture(scope="module")
def obd(tmp_path_factory):
    """The random log, the BTS log, and the production-prior BTS policy as a target table keyed by position."""
    folder = obd_ope.obd_folder()
    target = tmp_path_factory.mktemp("obd") / "bts_target.csv"
    obd_ope.bts_target(folder / "policy" / "conf" / "prior_bts.yaml", n_sim=20_000, seed=0).to_csv(target, index=False)
    return folder / "dataset" / "obd" / "random" / "all" / "all.csv", folder / "dataset" / "obd" / "bts" / "all" / "all.csv", target


def estimates(out: Path) -> dict[str, dict]:
    return {e["estimator"]: e for e in json.loads((out / "ope.json").read_text())["estimates"]}


def test_ips_and_snips_equal_the_hand_computation_and_the_flags_reach_the_estimators(obd, tmp_path, capsys):
    """IPS = mean(w * click) and SNIPS = sum(w * click) / sum(w), w = target(item | position) / 0.0125, to 1e-12; a
    switch-DR threshold above every weight makes it DR; the table prints the significant digits asked for."""
    random_log, _, target = obd
    out = tmp_path / "ope"
    argv = ["ope", "--decisions", str(random_log), *LOG_FLAGS, "--policy", str(target), "--bootstrap", "20", "--switch-tau", "1000", "--digits", "12"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    log, probs = pd.read_csv(random_log), pd.read_csv(target).set_index("position")
    w = probs.to_numpy()[log["position"].to_numpy() - 1, log["item_id"].to_numpy()] / log["propensity_score"].to_numpy()
    click = log["click"].to_numpy(float)
    value = {k: e["value"] for k, e in estimates(out).items()}
    assert abs(value["ips"] - np.mean(w * click)) < 1e-12
    assert abs(value["snips"] - np.sum(w * click) / np.sum(w)) < 1e-12
    assert w.max() < 1000 and value["switch-dr"] == pytest.approx(value["dr"], abs=1e-15)
    assert f"{value['ips']:.12g}" in printed and "on 10,000 decisions of 10,000 customers (outcome 'click'" in printed
    assert set(value) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dr-os"}  # rows stand alone: no per-customer estimators



def test_the_interval_method_reaches_the_intervals(obd, tmp_path):
    """Percentile instead of studentized bootstrap: the same estimate, other bounds (on the log's first 2,000 rows)."""
    random_log, _, target = obd
    pd.read_csv(random_log, nrows=2_000).to_csv(tmp_path / "head.csv", index=False)
    argv = ["ope", "--decisions", str(tmp_path / "head.csv"), *LOG_FLAGS, "--policy", str(target), "--bootstrap", "20", "--folds", "3"]
    ips = {}
    for method in ("studentized", "percentile"):
        assert main([*argv, "--interval-method", method, "--out", str(tmp_path / method)]) == 0
        ips[method] = estimates(tmp_path / method)["ips"]
    assert ips["studentized"]["value"] == ips["percentile"]["value"]
    assert (ips["studentized"]["low"], ips["studentized"]["high"]) != (ips["percentile"]["low"], ips["percentile"]["high"])


def test_the_reward_model_reads_the_user_features_and_the_position(obd):
    """Context: 3 + 5 + 8 + 8 levels of the four hashed user features and 3 positions, one-hot; every action legal; DM moves."""
    random_log, _, target = obd
    table = read_outcome_log(random_log, LOG)
    actions = action_set(table["item_id"], [c[len("prob_"):] for c in pd.read_csv(target, nrows=0).columns if c.startswith("prob_")])
    assert actions == tuple(str(i) for i in range(80))
    data = outcome_decisions(table, LOG, actions)
    assert data.context.shape == (10_000, 3 + 5 + 8 + 8 + 3) and data.legal.all() and data.features.shape == (10_000, 0)
    np.testing.assert_array_equal(data.context[:, -3:].argmax(axis=1) + 1, table["position"].to_numpy())
    head, config = table.iloc[:2_000], OPEConfig(n_bootstrap=10, sequential=False)
    with_context = {r.estimator: r.value for r in evaluate_outcome_log(head, LOG, actions, target, config)[1].rows}
    bare = OutcomeLog(outcome="click", action="item_id", propensity="propensity_score")
    without = {r.estimator: r.value for r in evaluate_outcome_log(head, bare, actions, target, config)[1].rows}
    assert with_context["dm"] != without["dm"] and with_context["ips"] == without["ips"]


def test_validate_checks_the_log_and_the_target_table_together(obd, tmp_path, capsys):
    """Both files OK as they are; a broken target and a broken log are named by file, row and column."""
    random_log, bts_log, target = obd
    assert main(["validate", str(random_log), str(target), *LOG_FLAGS]) == 0
    assert main(["validate", str(target)]) == 0  # a target table alone
    broken = pd.read_csv(target)
    broken.loc[1, "prob_7"] = 1.5
    broken.to_csv(tmp_path / "target.csv", index=False)
    log = pd.read_csv(random_log, nrows=50)
    log.loc[4, "propensity_score"] = 0.0
    log.loc[9, "user_feature_1"] = None
    log.to_csv(tmp_path / "log.csv", index=False)
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "log.csv"), str(tmp_path / "target.csv"), *LOG_FLAGS]) == 1
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'log.csv'}, row 5, field 'propensity_score': propensity_score must be in (0, 1], got 0.0" in printed
    assert f"{tmp_path / 'log.csv'}, row 10, field 'user_feature_1': user_feature_1 is missing" in printed
    assert f"{tmp_path / 'target.csv'}, row 2, field 'prob_7': a probability must be a number in [0, 1]" in printed
    keyed = pd.read_csv(target).rename(columns={"position": "slot"})
    keyed.to_csv(tmp_path / "slot.csv", index=False)
    assert main(["validate", str(random_log), str(tmp_path / "slot.csv"), *LOG_FLAGS]) == 1
    assert "field 'slot': neither a prob_<action> column nor a column of the decisions" in capsys.readouterr().out


def test_an_outcome_log_refuses_what_does_not_belong_to_it(obd, capsys):
    """Events, a catalog or a baseline with --outcome are refused with what to do instead."""
    random_log, _, target = obd
    base = ["ope", "--decisions", str(random_log), *LOG_FLAGS, "--bootstrap", "10"]
    assert main([*base, "--policy", str(target), "--events", str(random_log)]) == 2
    assert "give --decisions FILE, and no --logs or --events" in capsys.readouterr().err
    assert main([*base, "--policy", str(target), "--catalog", str(target)]) == 2
    assert "an outcome log needs no --catalog" in capsys.readouterr().err
    assert main([*base, "--policy", "uniform"]) == 2
    assert "an outcome log is evaluated against a target table" in capsys.readouterr().err


def test_a_column_has_one_role():
    """Naming one column as two roles, or an empty context prefix, is refused with the column named."""
    from offerpilot.errors import InputError

    with pytest.raises(InputError, match=r"\['click'\] named more than once"):
        OutcomeLog(outcome="click", action="item_id", propensity="propensity_score", context=("click",))
    with pytest.raises(InputError, match="--context-prefix must not be empty"):
        OutcomeLog(outcome="click", context_prefix="")

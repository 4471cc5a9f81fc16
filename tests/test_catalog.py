"""The offer catalog and population files: defaults, round trips and clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from offerpilot.catalog import default_catalog, load_catalog, parse_catalog
from offerpilot.envs.presets import load_population
from offerpilot.errors import DataError


def test_default_catalog_has_the_documented_offers():
    """none, 5/10/20 % off, free shipping, points and content; costs per channel; 2 messages per 14 days."""
    c = default_catalog()
    assert c.ids == ("none", "pct5", "pct10", "pct20", "free_shipping", "points", "content")
    assert c.send_cost[0] == 0 and np.all(c.send_cost[1:] > 0)
    assert c.send_cost[c.index("pct20")] == pytest.approx(0.06)  # sms
    assert (c.caps.max_messages, c.caps.window_days, c.caps.min_gap_days) == (2, 14, 3)
    assert c.min_days_since_purchase[c.index("pct20")] == 30 and c.min_purchases[c.index("points")] == 2
    assert list(c.is_message) == [False] + [True] * 6


def test_catalog_round_trips_through_yaml(tmp_path):
    """to_dict -> YAML file -> load_catalog gives the same catalog."""
    path = tmp_path / "offers.yaml"
    path.write_text(yaml.safe_dump(default_catalog().to_dict()))
    assert load_catalog(path) == default_catalog()


def _problems(data: dict) -> list[str]:
    with pytest.raises(DataError) as err:
        parse_catalog(data, source="offers.yaml")
    return [str(p) for p in err.value.problems]


def test_every_catalog_problem_is_reported_with_its_key():
    """All problems at once, each naming the file and the key path."""
    data = default_catalog().to_dict()
    data["offers"][1]["value"] = 1.5  # a percent must be a fraction
    data["offers"][2]["channel"] = "fax"
    data["offers"][4]["value"] = -6
    data["offers"][5]["eligibility"] = {"min_purchases": -1, "vip": True}
    data["offers"].append({"id": "pct5", "kind": "percent_off", "value": 0.05, "channel": "email"})
    data["contact_caps"]["window_days"] = 0
    problems = _problems(data)
    expected = [
        "offers.yaml, field 'offers[1].value'",
        "offers.yaml, field 'offers[2].channel'",
        "offers.yaml, field 'offers[4].value'",
        "offers.yaml, field 'offers[5].eligibility.min_purchases'",
        "offers.yaml, field 'offers[5].eligibility.vip'",
        "offers.yaml, field 'offers[7].id': duplicate offer id 'pct5'",
        "offers.yaml, field 'contact_caps.window_days'",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)


def test_catalog_needs_none_first_and_known_kinds():
    """The first action must be 'none'; unknown kinds are refused."""
    data = default_catalog().to_dict()
    data["offers"] = data["offers"][1:] + data["offers"][:1]
    assert any("first offer must be the 'none'" in p for p in _problems(data))
    data = default_catalog().to_dict()
    data["offers"][3]["kind"] = "bogof"
    assert any("offers[3].kind" in p and "bogof" in p for p in _problems(data))


def test_catalog_file_errors_name_the_file(tmp_path):
    """A missing file and broken YAML are DataErrors naming the path."""
    with pytest.raises(DataError, match="nope.yaml: file not found"):
        load_catalog(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("offers: [unclosed")
    with pytest.raises(DataError, match="bad.yaml: not valid YAML"):
        load_catalog(bad)


def test_population_files_are_checked(tmp_path):
    """Unknown or non-numeric parameters and missing files are clear errors; partial files keep defaults."""
    path = tmp_path / "pop.json"
    path.write_text(json.dumps({"population": {"r": 0.5, "alpah": 3}}))
    with pytest.raises(ValueError, match=r"unknown population parameter\(s\) \['alpah'\]"):
        load_population(path)
    path.write_text(json.dumps({"population": {"r": "big"}}))
    with pytest.raises(ValueError, match="must be numbers"):
        load_population(path)
    path.write_text(json.dumps({"population": {"r": 0.25}}))
    params = load_population(path)
    assert params.r == 0.25 and params.alpha == load_population("default").alpha
    with pytest.raises(FileNotFoundError, match="not a preset"):
        load_population(tmp_path / "missing.json")

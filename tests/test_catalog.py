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


def test_a_catalog_without_none_first_gets_it_as_action_0_and_says_so():
    """No 'none' action: one is added in front, with a note; one elsewhere is moved to the front. Unknown kinds are refused."""
    data = default_catalog().to_dict()
    without = dict(data, offers=data["offers"][1:])
    added = parse_catalog(without, source="offers.yaml")
    assert added == default_catalog()
    assert added.notes == ("offers.yaml: no offer has kind 'none'; added the send-nothing action 'none' as action 0",)
    moved = parse_catalog(dict(data, offers=data["offers"][1:] + data["offers"][:1]), source="offers.yaml")
    assert moved == default_catalog() and "moved the send-nothing action 'none'" in moved.notes[0]
    assert default_catalog().notes == ()
    taken = dict(data, offers=[dict(data["offers"][2], id="none"), *data["offers"][3:]])
    assert any("the id 'none' that offerpilot would give the send-nothing action is taken" in p for p in _problems(taken))
    data["offers"][3]["kind"] = "bogof"
    assert any("offers[3].kind" in p and "bogof" in p for p in _problems(data))


def test_unquoted_integer_ids_are_read_as_their_digits(tmp_path):
    """YAML reads ``id: 0`` as an integer: it becomes the id '0', as the logs read integer ids; a float id is refused."""
    path = tmp_path / "items.yaml"
    path.write_text("channels: {web: {send_cost: 0}}\noffers:\n"
                    "  - {id: 0, kind: content_only, channel: web}\n  - {id: 17, kind: content_only, channel: web}\n")
    catalog = load_catalog(path)
    assert catalog.ids == ("none", "0", "17")
    assert catalog.notes == (f"{path}: no offer has kind 'none'; added the send-nothing action 'none' as action 0",)
    path.write_text("channels: {web: {send_cost: 0}}\noffers:\n  - {id: 1.5, kind: content_only, channel: web}\n")
    with pytest.raises(DataError, match=r"offers\[0\]\.id': must be a non-empty string or an integer .*got 1\.5"):
        load_catalog(path)


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

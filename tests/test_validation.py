"""Validation: each defect, planted in a small real file, is reported at its exact file, row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offerpilot.catalog import default_catalog, parse_catalog
from offerpilot.errors import Problem
from offerpilot.file_checks import validate_paths
from offerpilot.schema import EVENT_KINDS
from offerpilot.validation import MAX_ROWS_PER_CHECK, validate_decisions, validate_events

IDS = default_catalog().ids  # none, pct5, pct10, pct20, free_shipping, points, content

EVENTS_HEAD = "user_id,ts,event,amount,category,text,offer_id,discount\n"
CLEAN_EVENTS = (
    "u1,2024-01-01T09:00:00,visit,,,,,\n"
    "u1,2024-01-01T09:05:00,view,,shoes,,,\n"
    "u1,2024-01-02,purchase,47.5,shoes,,pct5,2.5\n"
    'u2,2024-01-03,review,,shoes,"loved it, ""truly""\nwould buy again",,\n'  # one data row over two lines
    "u2,2024-01-04,unsubscribe,,,,,\n"
    "00007,2024-01-05,cart,19.99,bags,,,\n"
)
N_CLEAN_EVENTS = 6

DECISIONS_HEAD = "user_id,ts,offer_id,propensity,policy_id\n"
CLEAN_DECISIONS = "u1,2024-01-01,none,0.5,uniform\nu1,2024-01-08,pct5,0.25,uniform\nu2,2024-01-02,content,0.25,uniform\n"
N_CLEAN_DECISIONS = 3


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def where(problems: list[Problem]) -> list[tuple[int | None, str | None]]:
    return [(p.row, p.field) for p in problems]


def test_clean_files_have_no_problems(tmp_path: Path) -> None:
    events = write(tmp_path, "events.csv", EVENTS_HEAD + CLEAN_EVENTS)
    decisions = write(tmp_path, "decisions.csv", DECISIONS_HEAD + CLEAN_DECISIONS)
    assert validate_paths([events, decisions]) == {str(events): [], str(decisions): []}


# Defect rows appended after the clean rows: (rows, [(row within the defect rows, column)], message of the first).
EVENT_DEFECTS = {
    "text in amount": ("x,2024-02-01,purchase,twelve,,,,\n", [(1, "amount")], "amount must be a number, got str 'twelve'"),
    "unparsable ts": ("x,2024-13-45,visit,,,,,\n", [(1, "ts")], "cannot read '2024-13-45' as a timestamp"),
    "missing ts": ("x,,visit,,,,,\n", [(1, "ts")], "ts is missing"),
    "negative amount": ("x,2024-02-01,purchase,-5,,,,\n", [(1, "amount")], "amount must be >= 0, got -5.0"),
    "purchase without amount": ("x,2024-02-01,purchase,,,,,\n", [(1, "amount")], "a purchase needs an amount"),
    "NaN amount": ("x,2024-02-01,purchase,NaN,,,,\n", [(1, "amount")], "a purchase needs an amount"),
    "infinite amount": ("x,2024-02-01,purchase,inf,,,,\n", [(1, "amount")], "amount must be finite, got inf"),
    "negative discount": ("x,2024-02-01,purchase,10,,,pct5,-1\n", [(1, "discount")], "discount must be >= 0, got -1.0"),
    "infinite discount": ("x,2024-02-01,purchase,10,,,pct5,inf\n", [(1, "discount")], "discount must be finite, got inf"),
    "unknown event kind": ("x,2024-02-01,checkout,,,,,\n", [(1, "event")], "unknown event kind 'checkout'"),
    "empty event kind": ("x,2024-02-01,,,,,,\n", [(1, "event")], "event is empty"),
    "unknown offer id": ("x,2024-02-01,purchase,10,,,pct99,1\n", [(1, "offer_id")], "unknown offer id 'pct99'"),
    "exact duplicate": ("x,2024-02-01,visit,,,,,\nx,2024-02-01,visit,,,,,\n", [(2, None)], "exact duplicate of row 7"),
    "time backwards": (
        "x,2024-02-02,visit,,,,,\ny,2024-02-01,visit,,,,,\nx,2024-02-01,view,,,,,\n",
        [(3, "ts")],
        "ts 2024-02-01 00:00:00 is earlier than row 7 (2024-02-02 00:00:00) of the same user",
    ),
    "empty user_id": (",2024-02-01,visit,,,,,\n", [(1, "user_id")], "user_id is empty"),
    "blank user_id": ("   ,2024-02-01,visit,,,,,\n", [(1, "user_id")], "user_id is empty"),
}


@pytest.mark.parametrize("defect", list(EVENT_DEFECTS))
def test_event_defect_is_reported_where_it_is(tmp_path: Path, defect: str) -> None:
    rows, expected, message = EVENT_DEFECTS[defect]
    path = write(tmp_path, "events.csv", EVENTS_HEAD + CLEAN_EVENTS + rows)
    problems = validate_paths([path])[str(path)]
    assert where(problems) == [(N_CLEAN_EVENTS + r, field) for r, field in expected]
    assert {p.file for p in problems} == {str(path)}
    assert problems[0].message.startswith(message)


def test_missing_required_column_names_the_column(tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", "user_id,ts,event\nu1,2024-01-01,visit\n")
    assert validate_paths([path])[str(path)] == [
        Problem(str(path), None, "amount", "missing required column; the file has columns ['user_id', 'ts', 'event']")
    ]


@pytest.mark.parametrize(
    ("column", "values", "bad_rows", "message"),
    [
        ("user_id", [1.0, 2.0], [1, 2], "user_id must be text (integers are read as their digits), got float 1.0"),
        ("user_id", [True, False], [1, 2], "user_id must be text (integers are read as their digits), got bool True"),
        ("amount", [True, False], [1, 2], "amount must be a number, got bool True"),
        ("ts", [1704067200, 1704153600], [1, 2], "cannot read 1704067200 as a timestamp"),
        ("user_id", [7, 8], [], None),  # integers convert to text without loss
    ],
)
def test_wrong_column_types_in_parquet(
    tmp_path: Path, column: str, values: list, bad_rows: list[int], message: str | None
) -> None:
    ts = pd.to_datetime(["2024-01-01", "2024-01-02"])
    df = pd.DataFrame({"user_id": ["a", "b"], "ts": ts, "event": ["visit", "visit"], "amount": [1.0, 2.0]})
    df[column] = values
    path = tmp_path / "events.parquet"
    df.to_parquet(path)
    problems = validate_paths([path])[str(path)]
    assert where(problems) == [(r, column) for r in bad_rows]
    if message is not None:
        assert problems[0].message.startswith(message)


DECISION_DEFECTS = {
    "missing propensity": ("u2,2024-02-01,none,,uniform\n", [(1, "propensity")], "propensity is missing"),
    "zero propensity": ("u2,2024-02-01,none,0,uniform\n", [(1, "propensity")], "propensity must be in (0, 1], got 0.0"),
    "negative propensity": ("u2,2024-02-01,none,-0.2,uniform\n", [(1, "propensity")], "propensity must be in (0, 1]"),
    "propensity above 1": ("u2,2024-02-01,none,1.5,uniform\n", [(1, "propensity")], "propensity must be in (0, 1], got 1.5"),
    "text in propensity": ("u2,2024-02-01,none,high,uniform\n", [(1, "propensity")], "propensity must be a number"),
    "unknown offer id": ("u2,2024-02-01,pct99,0.5,uniform\n", [(1, "offer_id")], "unknown offer id 'pct99'"),
    "empty offer id": ("u2,2024-02-01,,0.5,uniform\n", [(1, "offer_id")], "offer_id is empty"),
    "empty policy id": ("u2,2024-02-01,none,0.5,\n", [(1, "policy_id")], "policy_id is empty"),
    "unparsable ts": ("u2,02/01/2024,none,0.5,uniform\n", [(1, "ts")], "cannot read '02/01/2024' as a timestamp"),
    "empty user_id": (",2024-02-01,none,0.5,uniform\n", [(1, "user_id")], "user_id is empty"),
    "user not in events": ("ghost,2024-02-01,none,0.5,uniform\n", [(1, "user_id")], "user 'ghost' never appears"),
    "exact duplicate": ("u2,2024-02-01,none,0.5,x\nu2,2024-02-01,none,0.5,x\n", [(2, None)], "exact duplicate of row 4"),
    "time backwards": ("u1,2024-01-07,none,0.5,uniform\n", [(1, "ts")], "ts 2024-01-07 00:00:00 is earlier than row 2"),
}


@pytest.mark.parametrize("defect", list(DECISION_DEFECTS))
def test_decision_defect_is_reported_where_it_is(tmp_path: Path, defect: str) -> None:
    rows, expected, message = DECISION_DEFECTS[defect]
    events = write(tmp_path, "events.csv", EVENTS_HEAD + CLEAN_EVENTS)
    path = write(tmp_path, "decisions.csv", DECISIONS_HEAD + CLEAN_DECISIONS + rows)
    result = validate_paths([events, path])
    assert result[str(events)] == []
    assert where(result[str(path)]) == [(N_CLEAN_DECISIONS + r, field) for r, field in expected]
    assert {p.file for p in result[str(path)]} == {str(path)}
    assert result[str(path)][0].message.startswith(message)


def test_users_are_checked_only_when_events_are_known(tmp_path: Path) -> None:
    path = write(tmp_path, "decisions.csv", DECISIONS_HEAD + "ghost,2024-02-01,none,0.5,uniform\n")
    assert validate_paths([path]) == {str(path): []}
    unreadable = write(tmp_path, "events.parquet", "not parquet")
    events = write(tmp_path, "events.csv", EVENTS_HEAD + CLEAN_EVENTS)
    result = validate_paths([events, unreadable, path])
    assert result[str(path)] == []  # some events could not be read, so nobody can be called unknown
    assert where(result[str(unreadable)]) == [(None, None)]


def prob_file(tmp_path: Path, rows: list[tuple[str, str, str, float, list[float]]], columns: tuple[str, ...] = IDS) -> Path:
    """A decisions CSV with the action distribution over ``columns`` (offer ids)."""
    lines = ["user_id,ts,offer_id,propensity,policy_id," + ",".join(f"prob_{c}" for c in columns)]
    lines += [f"{u},{ts},{offer},{p},softmax," + ",".join(str(q) for q in probs) for u, ts, offer, p, probs in rows]
    return write(tmp_path, "decisions.csv", "\n".join(lines) + "\n")


CLEAN_PROBS = [
    ("u1", "2024-01-01", "none", 0.5, [0.5, 0.5, 0, 0, 0, 0, 0]),
    ("u1", "2024-01-02", "pct5", 0.5, [0.5, 0.5, 0, 0, 0, 0, 0]),
    ("u2", "2024-01-02", "content", 0.25, [0.25, 0.25, 0.25, 0, 0, 0, 0.25]),
    ("u3", "2024-01-02", "pct10", 0.1, [0.3, 0.3, 0.1 + 5e-7, 0.3, 0, 0, 0]),  # within the 1e-6 tolerance
]

PROB_DEFECTS = {
    "rows do not sum to 1": (
        ("u4", "2024-01-03", "none", 0.5, [0.5, 0.4, 0, 0, 0, 0, 0]),
        [(5, "prob_*")],
        "the action probabilities sum to 0.9, not 1",
    ),
    "disagrees with propensity": (
        ("u4", "2024-01-03", "pct5", 0.4, [0.5, 0.5, 0, 0, 0, 0, 0]),
        [(5, "propensity")],
        "propensity 0.4 disagrees with prob_pct5 = 0.5",
    ),
    "outside [0, 1]": (
        ("u4", "2024-01-03", "pct5", 0.5, [1.5, -0.5, 0, 0, 0, 0, 0]),
        [(5, "prob_none"), (5, "prob_pct5")],
        "prob_none must be in [0, 1], got 1.5",
    ),
    "missing probability": (
        ("u4", "2024-01-03", "none", 0.5, [0.5, 0.5, 0, "", 0, 0, 0]),
        [(5, "prob_pct20")],
        "prob_pct20 is missing",
    ),
}


def test_clean_action_distribution(tmp_path: Path) -> None:
    path = prob_file(tmp_path, CLEAN_PROBS)
    assert validate_paths([path]) == {str(path): []}


@pytest.mark.parametrize("defect", list(PROB_DEFECTS))
def test_action_distribution_defects(tmp_path: Path, defect: str) -> None:
    row, expected, message = PROB_DEFECTS[defect]
    path = prob_file(tmp_path, [*CLEAN_PROBS, row])
    problems = validate_paths([path])[str(path)]
    assert where(problems) == expected
    assert problems[0].message.startswith(message)


def test_prob_columns_must_match_the_catalog(tmp_path: Path) -> None:
    columns = (*IDS[:5], "content", "vip")  # no prob_points, an extra prob_vip
    path = prob_file(tmp_path, [("u1", "2024-01-01", "none", 0.5, [0.5, 0.5, 0, 0, 0, 0, 0])], columns)
    problems = validate_paths([path])[str(path)]
    assert where(problems) == [(None, "prob_vip"), (None, "prob_points")]
    assert problems[1].message == "the action distribution has no column for catalog offer 'points'"


def test_offer_ids_follow_the_given_catalog(tmp_path: Path) -> None:
    catalog = parse_catalog(
        {
            "channels": {"email": {"send_cost": 0.01}},
            "offers": [
                {"id": "none", "kind": "none"},
                {"id": "vip", "kind": "percent_off", "value": 0.3, "channel": "email"},
            ],
        }
    )
    events = write(tmp_path, "events.csv", EVENTS_HEAD + "u1,2024-01-01,purchase,10,,,vip,3\nu1,2024-01-02,purchase,10,,,pct5,1\n")
    rows = [("u1", "2024-01-01", "vip", 0.75, [0.25, 0.75]), ("u1", "2024-01-02", "pct5", 0.5, [0.5, 0.5])]
    decisions = prob_file(tmp_path, rows, ("none", "vip"))
    result = validate_paths([events, decisions], catalog)
    assert where(result[str(events)]) == [(2, "offer_id")]
    assert where(result[str(decisions)]) == [(2, "offer_id")]
    # Against the default catalog: 'vip' is unknown, and so is its column, and the distribution lacks the others.
    expected = [(1, "offer_id"), (None, "prob_vip"), *[(None, f"prob_{i}") for i in IDS[1:]]]
    assert where(validate_paths([decisions])[str(decisions)]) == expected


@pytest.mark.parametrize("header", ["a,b\n1,2\n", "user_id,ts,event,amount,propensity\n"])
def test_file_that_is_neither_table(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, "mystery.csv", header)
    (problem,) = validate_paths([path])[str(path)]
    assert (problem.file, problem.row, problem.field) == (str(path), None, None)
    columns = header.splitlines()[0].split(",")
    assert problem.message.endswith(f"it has columns {columns}")


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    result = validate_paths([tmp_path / "log.xlsx", tmp_path / "gone.csv"])
    assert [(p.file, p.row, p.field) for ps in result.values() for p in ps] == [
        (str(tmp_path / "log.xlsx"), None, None),
        (str(tmp_path / "gone.csv"), None, None),
    ]
    assert result[str(tmp_path / "gone.csv")][0].message == "file not found"


def test_problems_are_capped_per_check_with_a_count(tmp_path: Path) -> None:
    n = MAX_ROWS_PER_CHECK + 500
    rows = "".join(f"u{i},2024-01-01,jump,,,,,\n" for i in range(n))
    path = write(tmp_path, "events.csv", EVENTS_HEAD + rows)
    problems = validate_paths([path])[str(path)]
    assert where(problems) == [(r, "event") for r in range(1, MAX_ROWS_PER_CHECK + 1)] + [(None, "event")]
    assert problems[-1].message == f"500 more rows with the same problem as row 1 (first {MAX_ROWS_PER_CHECK} listed)"


def test_rows_are_positions_not_index_labels() -> None:
    df = pd.DataFrame(
        {"user_id": ["a", "b"], "ts": ["2024-01-01", "2024-01-01"], "event": ["visit", "fly"], "amount": [np.nan, np.nan]},
        index=[10, 20],
    )
    assert validate_events(df, "memory") == [
        Problem("memory", 2, "event", f"unknown event kind 'fly'; expected one of {list(EVENT_KINDS)}")
    ]


def test_every_problem_in_one_pass() -> None:
    df = pd.DataFrame(
        {
            "user_id": ["a", "", "a"],
            "ts": ["2024-01-02", "2024-01-01", "2024-01-01"],
            "offer_id": ["pct5", "pct5", "bogus"],
            "propensity": [0.5, 2.0, 0.5],
            "policy_id": ["p", "p", "p"],
        }
    )
    expected = [(2, "user_id"), (3, "offer_id"), (2, "propensity"), (3, "ts")]
    assert where(validate_decisions(df, "memory", users={"a"})) == expected


def test_rating_must_be_whole_stars_from_1_to_5(tmp_path):
    """An optional review rating outside 1..5 stars is reported with its row."""
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,ts,event,amount,rating\r\n"
        "u1,2024-01-01,review,,5\r\n"
        "u1,2024-01-02,review,,6\r\n"
        "u1,2024-01-03,review,,2.5\r\n"
    )
    problems = validate_paths([path])[str(path)]
    assert [(p.row, p.field) for p in problems] == [(2, "rating"), (3, "rating")]


def test_a_target_table_is_recognised_and_checked_against_the_decisions(tmp_path: Path) -> None:
    """prob_ columns without propensity or policy_id make a target table: a clean one passes beside its events and
    decisions; one missing a decision, or keyed by a column the decisions lack, is named."""
    events = write(tmp_path, "events.csv", EVENTS_HEAD + CLEAN_EVENTS)
    decisions = write(tmp_path, "decisions.csv", DECISIONS_HEAD + CLEAN_DECISIONS)
    uniform = ",".join(["0.125"] * 4 + ["0.25"] + ["0.125"] * 2)
    head = "user_id,ts," + ",".join(f"prob_{i}" for i in IDS) + "\n"
    rows = [f"{line.split(',')[0]},{line.split(',')[1]},{uniform}\n" for line in CLEAN_DECISIONS.splitlines()]
    target = write(tmp_path, "target.csv", head + "".join(rows))
    assert validate_paths([events, decisions, target]) == {str(events): [], str(decisions): [], str(target): []}
    short = write(tmp_path, "short.csv", head + "".join(rows[:2]))
    (problem,) = validate_paths([events, decisions, short])[str(short)]
    assert problem.message == "1 logged decisions have no target row (e.g. user_id u2, ts 2024-01-02 00:00:00)"
    keyed = write(tmp_path, "keyed.csv", "segment," + ",".join(f"prob_{i}" for i in IDS) + "\nvip," + uniform + "\n")
    (problem,) = validate_paths([decisions, keyed])[str(keyed)]
    assert problem.field == "segment" and problem.message.startswith("neither a prob_<action> column nor a column of the decisions")
    assert validate_paths([keyed]) == {str(keyed): []}  # alone, only its own columns and probabilities are checked

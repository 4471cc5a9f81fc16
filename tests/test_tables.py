"""Reading and writing the log tables: exact round trips on real files, CSV text rules, atomic writes."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offerpilot.catalog import default_catalog
from offerpilot.errors import DataError
from offerpilot.schema import EVENT_KINDS, prob_column
from offerpilot.tables import read_decisions, read_events, read_table, write_decisions, write_events, write_table

SUFFIXES = (".parquet", ".pq", ".csv")
NAN = np.nan

EVENTS_DTYPES = {
    "user_id": "str",
    "ts": "datetime64[us]",
    "event": "str",
    "amount": "float64",
    "category": "str",
    "text": "str",
    "offer_id": "str",
    "discount": "float64",
}


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    """An events table in canonical dtypes from (user_id, ts, event, amount, category, text, offer_id, discount) rows."""
    df = pd.DataFrame(rows, columns=list(EVENTS_DTYPES))
    return df.astype(EVENTS_DTYPES)


def sample_events() -> pd.DataFrame:
    return events_frame(
        [
            ("00002", "2024-01-03 08:00:00", "visit", NAN, None, None, None, NAN),
            ("00001", "2024-01-01 09:30:00.123456", "view", NAN, "shoes", None, None, NAN),
            ("00001", "2024-01-02 10:00:00", "purchase", 47.5, "home\rgarden", None, "pct5", 2.5),
            ("00002", "2024-01-04 00:00:00", "review", NAN, "bags", 'great, "really"\r\nfive\rstars ✓', None, NAN),
            ("NA", "2024-01-05 00:00:00", "purchase", 0.1, None, "NA", "none", 0.0),
        ]
    )


def sample_decisions() -> pd.DataFrame:
    ids = default_catalog().ids
    probs = np.full((3, len(ids)), 0.0)
    probs[:, 0] = 0.25
    probs[:, 1] = 0.75
    df = pd.DataFrame(
        {
            "user_id": pd.array(["00001", "00002", "00001"], dtype="str"),
            "ts": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"]).astype("datetime64[us]"),
            "offer_id": pd.array(["none", "pct5", "pct5"], dtype="str"),
            "propensity": [0.25, 0.75, 0.75],
            "policy_id": pd.array(["uniform-v1"] * 3, dtype="str"),
        }
    )
    for j, offer in enumerate(ids):
        df[prob_column(offer)] = probs[:, j]
    return df


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_table_round_trip_keeps_values_and_dtypes(tmp_path: Path, suffix: str) -> None:
    df = sample_events()
    path = tmp_path / f"events{suffix}"
    write_table(df, path)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert {c: str(t) for c, t in back.dtypes.items()} == EVENTS_DTYPES
    assert back["user_id"].tolist() == ["00002", "00001", "00001", "00002", "NA"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_events_round_trip_sorted_by_user_then_time(tmp_path: Path, suffix: str) -> None:
    df = sample_events()
    path = tmp_path / f"events{suffix}"
    write_events(df, path)
    back = read_events(path)
    expected = df.iloc[[1, 2, 0, 3, 4]].reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_exact=True)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_decisions_round_trip_with_action_distribution(tmp_path: Path, suffix: str) -> None:
    df = sample_decisions()
    path = tmp_path / f"decisions{suffix}"
    write_decisions(df, path)
    back = read_decisions(path, users={"00001", "00002"})
    expected = df.iloc[[0, 2, 1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_exact=True)
    assert back["offer_id"].tolist() == ["none", "pct5", "pct5"]  # the action 'none' is not a missing value


def test_csv_keeps_leading_zeros_and_parses_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,event,amount\n007,2024-03-01T12:00:00,visit,\n0042,2024-03-02,purchase,10\n")
    df = read_events(path)
    assert df["user_id"].tolist() == ["0042", "007"]
    assert str(df["user_id"].dtype) == "str"
    assert df["ts"].tolist() == [pd.Timestamp("2024-03-02"), pd.Timestamp("2024-03-01 12:00")]
    assert str(df["ts"].dtype) == "datetime64[us]"
    assert str(df["amount"].dtype) == "float64"
    assert df["amount"].iloc[0] == 10.0 and np.isnan(df["amount"].iloc[1])


def test_csv_missing_markers_only_in_number_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,event,amount,text\nNA,2024-03-01,visit,NA,None\nnull,2024-03-02,view,nan,\n")
    df = read_events(path)
    assert df["user_id"].tolist() == ["NA", "null"]
    assert df["amount"].isna().tolist() == [True, True]
    assert df["text"].iloc[0] == "None" and pd.isna(df["text"].iloc[1])


def test_timestamps_with_offsets_become_naive_utc(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,event,amount\na,2024-03-01T12:00:00+02:00,visit,\na,2024-03-01T11:30:00Z,visit,\n")
    df = read_events(path)
    assert df["ts"].tolist() == [pd.Timestamp("2024-03-01 10:00"), pd.Timestamp("2024-03-01 11:30")]


def test_integer_user_ids_in_parquet_are_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    ts = pd.to_datetime(["2024-01-01", "2024-01-02"])
    pd.DataFrame({"user_id": [7, 42], "ts": ts, "event": ["visit"] * 2, "amount": [NAN] * 2}).to_parquet(path)
    df = read_events(path)
    assert df["user_id"].tolist() == ["42", "7"]
    assert str(df["user_id"].dtype) == "str"


def test_read_never_drops_and_sorts_stably(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,ts,event,amount,category\n"
        "b,2024-01-01,visit,,1\n"
        "a,2024-01-02,visit,,2\n"
        "b,2024-01-01,view,,3\n"
        "a,2024-01-02,view,,4\n"
        "a,2024-01-03,visit,,5\n"
    )
    df = read_events(path)
    assert df["category"].tolist() == ["2", "4", "5", "1", "3"]
    assert df.index.tolist() == [0, 1, 2, 3, 4]


def test_read_events_raises_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,event,amount\nu1,2024-01-01,visit,\nu1,yesterday,purchase,-1\n,2024-01-03,jump,\n")
    with pytest.raises(DataError) as info:
        read_events(path)
    where = [(p.file, p.row, p.field) for p in info.value.problems]
    assert where == [
        (str(path), 3, "user_id"),
        (str(path), 2, "ts"),
        (str(path), 3, "event"),
        (str(path), 2, "amount"),
    ]


def test_read_decisions_checks_users(tmp_path: Path) -> None:
    path = tmp_path / "decisions.parquet"
    write_decisions(sample_decisions(), path)
    with pytest.raises(DataError) as info:
        read_decisions(path, users={"00001"})
    assert [(p.row, p.field) for p in info.value.problems] == [(2, "user_id")]


@pytest.mark.parametrize("name", ["events.txt", "events.parquet.gz", "events"])
def test_unsupported_suffix_is_a_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(DataError, match="unsupported file type"):
        write_table(sample_events(), path)
    with pytest.raises(DataError, match="use one of .parquet, .pq, .csv"):
        read_table(path)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_table(tmp_path / "nope.csv")
    assert [(p.row, p.field, p.message) for p in info.value.problems] == [(None, None, "file not found")]
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="cannot read as parquet"):
        read_table(bad)


def test_write_events_requires_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    with pytest.raises(DataError) as info:
        write_events(sample_events().drop(columns=["ts", "amount"]), path)
    assert [(p.file, p.row, p.field) for p in info.value.problems] == [(str(path), None, "ts"), (str(path), None, "amount")]
    assert not path.exists()
    with pytest.raises(DataError) as info:
        write_decisions(sample_decisions().drop(columns=["propensity"]), tmp_path / "d.csv")
    assert [p.field for p in info.value.problems] == ["propensity"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"events{suffix}"
    write_table(sample_events(), path)
    write_table(sample_events().iloc[:2], path)
    assert len(read_table(path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    write_table(sample_events(), path)
    before = path.read_bytes()
    unwritable = sample_events().assign(category=pd.Series([object()] * 5, dtype=object))
    with pytest.raises(Exception):
        write_table(unwritable, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


_USER_IDS = st.text(alphabet="0123456789abcXYZ", min_size=1, max_size=6)
_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=20)
_MONEY = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def events_tables(draw: st.DrawFn) -> pd.DataFrame:
    """A valid events table: at least one row, distinct past timestamps in file order, so no duplicates and no user goes back in time."""
    n = draw(st.integers(min_value=1, max_value=25))
    users = draw(st.lists(_USER_IDS, min_size=1, max_size=5, unique=True))
    moments = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2025, 12, 31))
    times = sorted(draw(st.lists(moments, min_size=n, max_size=n, unique=True)))
    offers = st.one_of(st.none(), st.sampled_from(default_catalog().ids))
    rows = []
    for t in times:
        event = draw(st.sampled_from(EVENT_KINDS))
        amount = draw(_MONEY) if event == "purchase" else draw(st.one_of(st.just(NAN), _MONEY))
        rows.append(
            (
                draw(st.sampled_from(users)),
                t,
                event,
                amount,
                draw(st.one_of(st.none(), _TEXT)),
                draw(st.one_of(st.none(), _TEXT)),
                draw(offers),
                draw(st.one_of(st.just(NAN), _MONEY)),
            )
        )
    return events_frame(rows)


@settings(max_examples=60, deadline=None)
@given(df=events_tables(), suffix=st.sampled_from(SUFFIXES))
def test_valid_events_round_trip_exactly(df: pd.DataFrame, suffix: str) -> None:
    order = sorted(range(len(df)), key=lambda i: (df["user_id"].iat[i], df["ts"].iat[i]))
    expected = df.iloc[order].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"events{suffix}"
        write_events(df, path)
        back = read_events(path)
    pd.testing.assert_frame_equal(back, expected, check_exact=True)

"""Reading and writing the log tables: Parquet or CSV by suffix, atomic writes, validated reads.

``read_events`` / ``read_decisions`` are the way in for every consumer: they either return a table that
meets the contract, in canonical dtypes and sorted by user and time, or raise :class:`DataError` with
every problem found. No row is ever dropped.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pandas as pd

from offerpilot.atomic import atomic_path
from offerpilot.catalog import OfferCatalog
from offerpilot.errors import DataError, Problem
from offerpilot.schema import DECISIONS_REQUIRED, EVENTS_REQUIRED, cast_column, column_kind, holds_text, is_blank
from offerpilot.validation import validate_decisions, validate_events

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)

_NUMBER_NA = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None")
"""Markers read as missing in the number and timestamp columns of a CSV; in text columns only an empty
field is missing, so that a user called 'NA' or the offer 'none' survives."""


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV table (by suffix), with the contract's columns in canonical dtypes.

    A column is cast only when every value converts (user ids stay text, ISO 8601 timestamps are parsed);
    otherwise it is left as read, so that validation can name the values that do not. Raises
    :class:`DataError` when the file is missing, unreadable or of another type.
    """
    path = Path(path)
    fmt = _format(path)
    if path.is_dir():
        raise DataError([Problem(str(path), None, None, "is a folder, not a file; give the table file itself (for example FOLDER/events.parquet)")])
    try:
        df = pd.read_parquet(path, engine="pyarrow") if fmt == "parquet" else _read_csv(path)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError([Problem(str(path), None, None, "file not found")]) from None
    except (OSError, ValueError) as e:  # pandas' and pyarrow's parse errors are ValueErrors
        raise DataError([Problem(str(path), None, None, f"cannot read as {fmt}: {e}")]) from None
    if fmt == "parquet":
        _refuse_numbers_as_text(df, str(path))
    for name in df.columns:
        kind = column_kind(name)
        if kind is not None and not isinstance(df[name], pd.DataFrame):
            cast = cast_column(df[name], kind)
            if (cast.notna().to_numpy() | is_blank(df[name])).all():
                df[name] = cast
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` (without its index) as Parquet or CSV by suffix, atomically: readers see the old file or the new.

    CSV stores an empty string and a missing value alike; both read back as missing.
    """
    fmt = _format(Path(path))
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, engine="pyarrow", index=False)
        else:
            df.to_csv(tmp, index=False, lineterminator="\r\n")  # RFC 4180: a lone '\r' in text gets quoted too


def read_events(path: str | Path, catalog: OfferCatalog | None = None) -> pd.DataFrame:
    """Read and validate an events table; canonical dtypes, sorted by ``user_id`` then ``ts`` (stable)."""
    df = read_table(path)
    problems = validate_events(df, str(path), catalog)
    if problems:
        raise DataError(problems)
    return _by_user_and_time(df)


def read_decisions(
    path: str | Path, catalog: OfferCatalog | None = None, users: Collection[str] | None = None
) -> pd.DataFrame:
    """Read and validate a decisions table (against the users seen in events, when given); sorted like events."""
    df = read_table(path)
    problems = validate_decisions(df, str(path), catalog, users)
    if problems:
        raise DataError(problems)
    return _by_user_and_time(df)


def read_logs(
    events: str | Path, decisions: str | Path | None, catalog: OfferCatalog | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read and validate an events table and the decisions logged for its customers (``None``: no decisions file).

    The way every command reads a log: both files' problems are reported together, and a decision for a user with
    no events is one of them.
    """
    problems: list[Problem] = []
    events_table = decisions_table = None
    try:
        events_table = read_events(events, catalog)
    except DataError as e:
        problems += e.problems
    if decisions is not None:
        users = None if events_table is None else set(events_table["user_id"])
        try:
            decisions_table = read_decisions(decisions, catalog, users)
        except DataError as e:
            problems += e.problems
    if problems:
        raise DataError(problems)
    return events_table, decisions_table


def write_events(df: pd.DataFrame, path: str | Path) -> None:
    """Write an events table, refusing one without the required columns."""
    _require(df, EVENTS_REQUIRED, path)
    write_table(df, path)


def write_decisions(df: pd.DataFrame, path: str | Path) -> None:
    """Write a decisions table, refusing one without the required columns."""
    _require(df, DECISIONS_REQUIRED, path)
    write_table(df, path)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    supported = ", ".join(PARQUET_SUFFIXES + CSV_SUFFIXES)
    message = f"unsupported file type {suffix or '(no suffix)'!r}; use one of {supported}"
    raise DataError([Problem(str(path), None, None, message)])


def _read_csv(path: Path) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0).columns
    for sep in (";", "\t", "|"):
        if len(header) == 1 and sep in str(header[0]):
            message = (f"the header is the single column {str(header[0])!r}: the fields look separated by {sep!r}, and "
                       "offerpilot reads comma-separated CSV; write the file with ',' between fields")
            raise DataError([Problem(str(path), None, None, message)])
    text = [c for c in header if column_kind(c) == "string"]
    return pd.read_csv(
        path,
        dtype={c: "str" for c in text},
        keep_default_na=False,
        na_values={c: [""] if c in text else list(_NUMBER_NA) for c in header},
    )


def _refuse_numbers_as_text(df: pd.DataFrame, source: str) -> None:
    """A Parquet number column stored as text is a bug upstream ('1.234' is 1234 in a German export): refuse it
    instead of guessing, naming the column and its first value. CSV has no types, so there text is read as numbers."""
    problems = []
    for name in df.columns:
        values = df[name]
        if column_kind(name) != "float" or isinstance(values, pd.DataFrame) or not holds_text(values.dtype):
            continue
        text = values[values.map(lambda v: isinstance(v, str) and v != "").to_numpy(dtype=bool)]
        if len(text):
            message = (f"stored as text (first value {text.iloc[0]!r}); a Parquet file holds numbers as numbers: cast the "
                       "column to float64 before writing it")
            problems.append(Problem(source, None, str(name), message))
    if problems:
        raise DataError(problems)


def _require(df: pd.DataFrame, required: tuple[str, ...], path: str | Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        message = f"missing required column; the table has columns {[str(c) for c in df.columns]}"
        raise DataError([Problem(str(path), None, c, message) for c in missing])


def _by_user_and_time(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by ``user_id`` then ``ts``, keeping file order among ties (two stable sorts)."""
    return df.sort_values("ts", kind="stable").sort_values("user_id", kind="stable").reset_index(drop=True)

"""The real CDNOW purchase log (Fader & Hardie), read from the files that ship with PyPI ``Lifetimes``.

CDNOW is the cohort of 23,570 customers who made their first purchase at the online music store
CDNOW in the first quarter of 1997, followed until the end of June 1998 (69,659 transaction lines).
The 2,357-customer sample (a 1-in-10 draw, 6,919 lines) is the data set of Fader, Hardie & Lee (2005).

We use the ``Lifetimes`` distribution only as a carrier of these files: its folder is located with
:func:`importlib.util.find_spec`, which does not import (execute) the package.

File formats (whitespace separated, CRLF line ends):

* ``CDNOW_master.txt``: a header line ``customer_id date number_of_cds dollar_value``, then one line
  per transaction, e.g. `` 00001 19970101  1   11.77``;
* ``CDNOW_sample.txt``: no header, five fields ``customer_id sample_id date number_of_cds dollar_value``,
  e.g. `` 00004 0001 19970101  2   29.33``; ``customer_id`` is the master file's id, ``sample_id``
  (1..2357) the id used by Fader & Hardie's sample summaries (``cdnow_customers_summary.csv``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from offerpilot.errors import DataError, Problem

INSTALL_HINT = (
    "the CDNOW data ships with the PyPI package 'Lifetimes' (a dependency of offerpilot); "
    "install it with `pip install Lifetimes`"
)

_FIELDS = {
    False: ["customer_id", "date", "number_of_cds", "dollar_value"],
    True: ["customer_id", "sample_id", "date", "number_of_cds", "dollar_value"],
}


def cdnow_path(sample: bool = False) -> Path:
    """Path of ``CDNOW_master.txt`` (or ``CDNOW_sample.txt`` when ``sample``) inside the installed
    ``Lifetimes`` package.

    :raises FileNotFoundError: when ``Lifetimes`` is not installed or lacks the file; the message
        says how to install it.
    """
    name = "CDNOW_sample.txt" if sample else "CDNOW_master.txt"
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"cannot find {name}: package 'lifetimes' is not installed; {INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / name
    if not path.is_file():
        raise FileNotFoundError(f"cannot find {name}: expected it at {path}; {INSTALL_HINT}")
    return path


def load_cdnow(sample: bool = False) -> pd.DataFrame:
    """Read the CDNOW master log (or the 2,357-customer sample) as an events table.

    One row per transaction line of the file, in file order; several lines of one customer on one
    day are kept as separate rows (``summarise_purchases`` merges them per day). The 80 lines of
    the master file with a dollar value of 0 are kept as purchases of amount 0.

    :param sample: read ``CDNOW_sample.txt`` instead of ``CDNOW_master.txt``.
    :return: columns ``user_id`` (str, the 5-digit CDNOW id, e.g. ``"00001"``, the same id in both
        files), ``ts`` (datetime64[ns], the purchase date), ``event`` (str, always ``"purchase"``),
        ``amount`` (float64, dollars).
    :raises DataError: (a ``ValueError``) naming the file, the row and the field of every line that
        does not parse; no line is dropped.
    """
    path = cdnow_path(sample)
    names = _FIELDS[sample]
    header = None if sample else 0
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=header, names=names, dtype=str, skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        raise DataError([Problem(str(path), None, None, f"does not parse as {len(names)} fields: {exc}")]) from exc

    user_id = raw["customer_id"]
    ts = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    amount = pd.to_numeric(raw["dollar_value"], errors="coerce")
    checks = {
        "customer_id": ~user_id.str.fullmatch(r"\d+", na=False),
        "date": ts.isna(),
        "dollar_value": ~(amount >= 0),
        "number_of_cds": ~raw["number_of_cds"].str.fullmatch(r"\d+", na=False),
    }
    problems = [
        Problem(str(path), int(row) + 1, field, f"invalid value {raw.at[row, field]!r}")
        for field, bad in checks.items()
        for row in np.flatnonzero(bad.to_numpy())
    ]
    if problems:
        raise DataError(sorted(problems, key=lambda p: p.row or 0))

    return pd.DataFrame(
        {
            "user_id": user_id.astype(str),
            "ts": ts.astype("datetime64[ns]"),
            "event": "purchase",
            "amount": amount.astype(np.float64),
        }
    )

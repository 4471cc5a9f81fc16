"""What several commands share: the type of every date flag, and reading the catalog."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from offerpilot.catalog import OfferCatalog


def timestamp(text: str) -> pd.Timestamp:
    """The type of every date flag: ISO 8601 text as a pandas Timestamp, tz-naive UTC like the logs."""
    import pandas as pd  # here, so that --help does not wait for pandas

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a date; expected ISO 8601 such as 2025-01-31 or 2025-01-31T09:30:00")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def read_catalog(path: Path | None) -> OfferCatalog:
    """The ``--catalog`` file (``None``: the built-in catalog), with a note on stderr for what reading it changed."""
    from offerpilot.catalog import load_catalog

    catalog = load_catalog(path)
    for note in catalog.notes:
        print(f"note: {note}", file=sys.stderr)
    return catalog

"""What several commands share: the type of every date flag, reading the catalog, and the flags of an outcome log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from offerpilot.catalog import OfferCatalog
    from offerpilot.outcome_log import OutcomeLog


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


def add_outcome_log_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe an outcome log (``offerpilot ope`` and ``validate``) and the context columns of any log."""
    outcome = parser.add_argument_group("outcome logs", "a decisions table whose outcome is a column of its own (a randomized test or bandit log): "
                                     "give --decisions FILE and --outcome COLUMN, no events and no catalog; the actions are the ids it logs")
    outcome.add_argument("--outcome", default=None, help="column holding each decision's reward (click, conversion, revenue, margin)")
    outcome.add_argument("--action-column", default="offer_id", help="column of the action taken (default: %(default)s)")
    outcome.add_argument("--propensity-column", default="propensity", help="column of the logging policy's probability of it (default: %(default)s)")
    context = parser.add_argument_group("context", "decision columns the reward model of DM and the DR family reads")
    context.add_argument("--context", nargs="+", default=[], metavar="COLUMN", help="context columns (numbers as they are, text one-hot)")
    context.add_argument("--context-prefix", default=None, help="every column starting with this is context (e.g. user_feature_)")
    context.add_argument("--slot", default=None, help="outcome logs: the slot or position column, context one-hot and a key a target table may be given by")


def outcome_log(args: argparse.Namespace) -> OutcomeLog:
    """The :class:`OutcomeLog` the flags describe."""
    from offerpilot.outcome_log import OutcomeLog

    return OutcomeLog(outcome=args.outcome, action=args.action_column, propensity=args.propensity_column, context=tuple(args.context),
                      context_prefix=args.context_prefix, slot=args.slot)

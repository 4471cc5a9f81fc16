"""The ``offerpilot`` command: one entry point, one subcommand per job (each added by a module of ``commands``)."""

from __future__ import annotations

import argparse
import sys

from offerpilot.app.commands import demo, deployment, encoder, logs, off_policy, training
from offerpilot.errors import UserError

EPILOG = "Run 'offerpilot COMMAND --help' for the options of a command."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except UserError as e:  # bad options, files or data: exit 1 for data that fails validation, 2 for the rest
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the system refused (a missing file, no permission, a full disk): the user's to fix too
        print(f"error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offerpilot",
        description="Learn which offer to send to which customer, and when: validate and calibrate your logs, "
        "simulate customers like yours, train and evaluate policies, estimate a policy's value from logs (off-policy), "
        "export it, score customers and serve decisions. 'offerpilot demo' runs the whole loop.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for commands in (demo, logs, off_policy, encoder, training, deployment):
        commands.register(sub)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())

"""The errors a user can fix (bad options, files, data or bundles), and the problems found in their input.

Everything a user can fix derives from :class:`UserError`: the CLI prints its message and exits with its
``exit_code``; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """Base of the errors the user can fix; the message says what is wrong and where."""

    exit_code = 2


class InputError(UserError, ValueError):
    """An option, configuration, file or request out of what offerpilot accepts."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what is wrong.

    ``row`` is the 1-based data row (header excluded) for tables, ``None`` for a whole-file or
    whole-column problem; ``field`` is the column (or YAML key path), ``None`` when not tied to one.
    """

    file: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class DataError(UserError, ValueError):
    """Raised when input fails validation; carries every problem found, not just the first."""

    exit_code = 1

    def __init__(self, problems: list[Problem], max_shown: int = 20) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:  # one line: file, row, field and what is wrong
            super().__init__(str(self.problems[0]))
            return
        shown = "\n".join(f"  - {p}" for p in self.problems[:max_shown])
        more = len(self.problems) - max_shown
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(f"{len(self.problems)} problems in input:\n{shown}")

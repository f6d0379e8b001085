"""The one base of every error Tether reports to an operator as a single line.

The command line catches `TetherError` and prints `tether: <message>` with no
traceback (exit status: see orchestration/cli.py), so a subclass's message must name the file, key or source and say what to do.
"""
from __future__ import annotations


class TetherError(Exception):
    """An error an operator can fix (configuration, environment, store); one line, no traceback."""


class ConfigError(TetherError, ValueError):
    """Configuration that cannot be used; the message names the file and the key.

    `problems` holds every problem found (one line each); the message is the first of them, with
    a count of the others, so a caller that shows one line still says how many there are.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems else [message]

    @classmethod
    def from_problems(cls, problems: list[str]) -> "ConfigError":
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''}: run `tether config check`)" if more else ""
        return cls(problems[0] + suffix, problems)

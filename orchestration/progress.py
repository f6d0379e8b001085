"""What the operator sees while long work runs: a live display on a terminal, plain lines elsewhere.

On a terminal (a TTY) `rich` draws a spinner, the step or phase under way, a bar and the elapsed
time, so no minute passes silently. Anywhere else (cron, CI, tests, a pipe) each finished step or
phase is one plain line, which logs and grep read well. Failures are always printed as lines.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn)


def is_live(stream: TextIO) -> bool:
    """True when `stream` is a terminal that can redraw a live display."""
    return Console(file=stream).is_terminal


def _progress(console: Console, *, bar: bool) -> Progress:
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns += [BarColumn(), MofNCompleteColumn()]
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=True)


class Phases:
    """Named phases of one piece of work (e.g. synthetic generation), shown as they start and end.

    Call it with the name of each phase as it begins; `close()` ends the last one. On a terminal
    the current phase spins with its elapsed time; elsewhere each phase is a line as it begins.
    """

    def __init__(self, title: str, stream: TextIO = sys.stderr, indent: str = "  "):
        self.title, self.stream, self.indent = title, stream, indent
        self.console = Console(file=stream, highlight=False)
        self.live = self.console.is_terminal
        self.current: str | None = None
        self.started = self.phase_started = time.monotonic()
        self._progress = _progress(self.console, bar=False) if self.live else None
        self._task = None
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(escape(title), total=None)

    def __call__(self, phase: str) -> None:
        self._finish_current()
        self.current, self.phase_started = phase, time.monotonic()
        if self._progress is not None:
            self._progress.update(self._task, description=escape(f"{self.title}: {phase}"))
        else:
            print(f"{self.indent}{self.title}: {phase}", file=self.stream, flush=True)

    def _finish_current(self) -> None:
        if self.current is not None and self._progress is not None:
            took = time.monotonic() - self.phase_started
            self._progress.console.print(escape(f"{self.indent}{self.title}: {self.current} ({took:.1f}s)"))

    def close(self) -> None:
        self._finish_current()
        self.current = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "Phases":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StepDisplay:
    """The steps of one Dagster run: a live bar of steps done on a terminal, else a line per step.

    `started`, `finished` and `note` are called from the run's event stream (runner.py).
    """

    def __init__(self, job_name: str, total_steps: int, stream: TextIO = sys.stderr):
        self.job_name, self.total, self.stream = job_name, total_steps, stream
        self.console = Console(file=stream, highlight=False)
        self.live = self.console.is_terminal
        self.started_at = time.monotonic()
        self.running: list[str] = []
        self.done = self.failed = 0
        self._progress = None
        self._task = None

    def __enter__(self) -> "StepDisplay":
        if self.live:
            self._progress = _progress(self.console, bar=True)
            self._progress.start()
            self._task = self._progress.add_task(self._description(), total=self.total or None)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        took = time.monotonic() - self.started_at
        failed = f", {self.failed} failed" if self.failed else ""
        print(f"  {self.job_name}: {self.done} of {self.total} steps ran in {took:.1f}s{failed}",
              file=self.stream, flush=True)

    def _description(self) -> str:
        now = ", ".join(self.running[-2:]) if self.running else ("starting" if not self.done else "")
        return escape(f"{self.job_name}: {now}" if now else self.job_name)

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started_at
        line = f"  [{elapsed:6.1f}s] {text}"
        if self._progress is not None:
            self._progress.console.print(escape(line))
        else:
            print(line, file=self.stream, flush=True)

    def started(self, step: str) -> None:
        self.running.append(step)
        if self._progress is not None:
            self._progress.update(self._task, description=self._description())

    def finished(self, step: str, ok: bool) -> None:
        if step in self.running:
            self.running.remove(step)
        self.done += 1
        self.failed += 0 if ok else 1
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, description=self._description())
            if not ok:
                self._line(f"{step}: FAILED")
        else:
            self._line(f"{step}: {'done' if ok else 'FAILED'}")

    def note(self, text: str) -> None:
        """A line worth keeping (a failed check, a follow-up run), shown above a live display."""
        self._line(text)

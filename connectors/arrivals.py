"""Every file in a source's folder is accounted for: landed, or reported by name with the reason.

A data team must be able to see a file that Tether did not take — one that matches none of the
source's patterns, one whose name is refused (a path trick, a control character), or one still
being uploaded — instead of it sitting in the folder unnoticed. This module sorts the files that
are not (yet) landed into four states, the same for a local folder and an SFTP folder:

- ``refused``: the name is unsafe (`connectors.landing.check_file_name`); rename the file;
- ``unmatched``: the name matches none of the source's patterns (a hidden dot-file included);
- ``in_flight``: a temporary upload name (``.part``, ``.filepart``, ``.tmp``, a ``~`` suffix, a
  leading dot) or a file not yet complete (still changing, or waiting for its ``.done`` marker);
- ``stale_in_flight``: in flight for longer than the source's ``in_flight_stale_seconds``
  (24 hours by default): an upload that was abandoned and needs someone to look.

Names are shown escaped (`shown_name`), so a control character or an escape sequence in a name
cannot rewrite an operator's terminal, and are never used as paths.
"""
from __future__ import annotations

from dataclasses import dataclass

from connectors.landing import check_file_name
from sharing.scrub import scrub_text

IN_FLIGHT_SUFFIXES = (".part", ".filepart", ".tmp", "~")
DONE_SUFFIX = ".done"
DEFAULT_STALE_SECONDS = 24 * 3600.0
NAME_LIMIT = 300
STATES = ("refused", "unmatched", "in_flight", "stale_in_flight")


@dataclass(frozen=True)
class Unlanded:
    """A file seen in a source's folder and not landed: its escaped name, state and reason."""

    name: str               # escaped with `shown_name`
    state: str              # one of STATES
    reason: str
    size: int | None = None

    def line(self) -> str:
        return f"{self.name}: {self.state.replace('_', ' ')} ({self.reason})"


def shown_name(name: str) -> str:
    """A file name as it may be printed and stored: Python repr escaping (control, invisible and
    bidirectional characters become ``\\x..``/``\\u..``), quoted, at most NAME_LIMIT characters,
    with anything shaped like a UPN, NHS number or postcode masked (a sender may misname a file
    after a child)."""
    text = repr(scrub_text(name, dates=False))
    return text if len(text) <= NAME_LIMIT else text[: NAME_LIMIT - 4] + "...'"


def is_temporary_name(name: str) -> bool:
    """A name an uploader uses while the file is still arriving, or a hidden dot-file."""
    return name.startswith(".") or name.lower().endswith(IN_FLIGHT_SUFFIXES)


def refusal(name: str) -> str | None:
    """Why landing would refuse this name, or None when it is safe."""
    try:
        check_file_name(name)
    except ValueError as exc:
        return str(exc)
    return None


def sort_out(name: str, *, matches: bool, complete: bool, age_seconds: float | None,
             stale_seconds: float = DEFAULT_STALE_SECONDS, size: int | None = None,
             waiting_for: str = "not yet complete") -> Unlanded | None:
    """The state of one file, or None when it is a complete, matching file to land.

    `matches`: the name matches one of the source's patterns; `complete`: the source's
    completeness rule says it has finished arriving; `age_seconds`: time since it last changed.
    A hidden dot-file or temporary name is never landed, even when a pattern matches it.
    """
    why = refusal(name)
    shown = shown_name(name)
    if why is not None:
        return Unlanded(shown, "refused", f"{why}; rename the file to land it", size)
    if is_temporary_name(name):
        hidden = name.startswith(".") and not name.lower().endswith(IN_FLIGHT_SUFFIXES)
        what = "a hidden dot-file" if hidden else "a temporary upload name"
        if not matches and hidden:
            return Unlanded(shown, "unmatched", f"{what} matching no file pattern of the source", size)
        return _in_flight(shown, what, age_seconds, stale_seconds, size, hidden)
    if not matches:
        return Unlanded(shown, "unmatched", "matches no file pattern of the source", size)
    if not complete:
        return _in_flight(shown, waiting_for, age_seconds, stale_seconds, size, False)
    return None


def _in_flight(shown: str, what: str, age: float | None, stale_seconds: float, size: int | None,
               hidden: bool) -> Unlanded:
    rename = "; rename it without the leading dot to land it" if hidden else ""
    if age is not None and age >= stale_seconds:
        hours = age / 3600
        return Unlanded(shown, "stale_in_flight",
                        f"{what}, unchanged for {hours:.0f} h: the upload looks abandoned; ask the sender{rename}",
                        size)
    return Unlanded(shown, "in_flight", what + rename, size)


def figures(unlanded: list[Unlanded], limit: int = 50) -> dict:
    """Counts by state and the names (at most `limit`), for a landing asset's figures."""
    counts = {f"files_{state}": sum(u.state == state for u in unlanded) for state in STATES}
    out: dict = {**counts, "files_not_landed": len(unlanded)}
    if unlanded:
        ordered = sorted(unlanded, key=lambda u: (STATES.index(u.state), u.name))
        out["files_not_landed_by_name"] = [u.line() for u in ordered[:limit]]
        if len(unlanded) > limit:
            out["files_not_landed_by_name"].append(f"... and {len(unlanded) - limit} more (tether status)")
    return out

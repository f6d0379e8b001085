"""The base of Tether's own errors: the CLI turns each into one line and an exit status."""
from __future__ import annotations


class TetherError(Exception):
    """An error Tether raises on purpose; its message names what happened and what to do."""

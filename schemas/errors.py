"""The base of every error Tether raises on purpose: one line an operator can act on."""


class TetherError(Exception):
    """An error whose message names what is wrong (file, row, field or key) and what to do."""

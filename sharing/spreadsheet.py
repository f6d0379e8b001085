"""Values that a spreadsheet would run as a formula (CSV injection).

Excel, LibreOffice and Google Sheets treat a cell that starts with `=`, `+`, `-` or `@` (and, in
some versions, a tab or carriage return) as a formula, even in a CSV file: `=HYPERLINK(...)` in a
child's surname would run on the computer of whoever opens an export. Tether stores such a value
as it was sent (it is the source's data, and a data-quality issue records it), but anything Tether
writes for people to open — CSV exports, reports — passes every text cell through
`neutralise_formula`, which makes the spreadsheet show the text instead of running it.
"""
from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@")
_ALSO_NEUTRALISED = ("\t", "\r")


def starts_like_formula(value: Any) -> bool:
    """True when `value` is text a spreadsheet would read as a formula.

    >>> starts_like_formula("=1+1"), starts_like_formula("@SUM(A1)"), starts_like_formula("O'Brien")
    (True, True, False)
    """
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def neutralise_formula(value: Any) -> Any:
    """The value a spreadsheet shows as text: a leading `'` before a formula-like text cell.

    Anything that is not text (numbers, dates, None) is returned unchanged, so a negative number
    stays a number.

    >>> neutralise_formula('=HYPERLINK("http://evil.example","x")')
    '\\'=HYPERLINK("http://evil.example","x")'
    >>> neutralise_formula("+44 1234"), neutralise_formula("-5"), neutralise_formula("@me")
    ("'+44 1234", "'-5", "'@me")
    >>> neutralise_formula("\\tcmd")
    "'\\tcmd"
    >>> neutralise_formula("Smith-Jones"), neutralise_formula(-5), neutralise_formula(None)
    ('Smith-Jones', -5, None)
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS + _ALSO_NEUTRALISED):
        return "'" + value
    return value

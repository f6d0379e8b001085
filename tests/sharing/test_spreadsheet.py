"""Formula values are recognised and neutralised for anything people open in a spreadsheet."""
import doctest

import sharing.spreadsheet as spreadsheet
from sharing.spreadsheet import neutralise_formula, starts_like_formula


def test_doctests_hold():
    failed, attempted = doctest.testmod(spreadsheet)
    assert attempted == 5 and failed == 0


def test_each_formula_start_is_recognised_and_neutralised():
    for text in ("=cmd|' /C calc'!A0", "+1", "-1+1", "@SUM(A1:A2)"):
        assert starts_like_formula(text)
        assert neutralise_formula(text) == "'" + text
    assert neutralise_formula("\rx") == "'\rx"


def test_ordinary_values_are_unchanged():
    for value in ("Anne-Marie", "O'Neil", "5W", "", 3, 2.5, None):
        assert not starts_like_formula(value)
        assert neutralise_formula(value) == value

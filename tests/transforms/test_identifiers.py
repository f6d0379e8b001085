"""UPN and NHS number format checks (docs/dfe-rules.md#identifiers), with hand-computed check characters."""
from stdnum.gb import upn as stdnum_upn

from transforms.identifiers import (
    builtin_la_numbers, is_valid_nhs_number, is_valid_upn, la_numbers_from_mapping,
    nhs_number_problem, upn_problem,
)

# B801200005001: 2*8 + 4*1 + 5*2 + 10*5 + 13*1 = 93; 93 mod 23 = 1 -> "B".
# A838200024001: 2*8 + 3*3 + 4*8 + 5*2 + 9*2 + 10*4 + 13*1 = 138; mod 23 = 0 -> "A".
# J943200024001: 2*9 + 3*4 + 4*3 + 5*2 + 9*2 + 10*4 + 13*1 = 123; mod 23 = 8 -> "J".
# N88640012400A (temporary, last char A = 0): 16+24+24+20+8+18+40 = 150; mod 23 = 12 -> "N".
# E000200005001: 5*2 + 10*5 + 13*1 = 73; mod 23 = 4 -> "E": right letter, LA 000 unknown.


def test_documented_upn_is_valid():
    assert upn_problem("B801200005001") is None
    assert is_valid_upn("B801200005001")


def test_upn_is_normalised_before_checking():
    assert upn_problem(" b801 2000 05001 ") is None


def test_bad_check_letter():
    assert upn_problem("A801200005001") == "UPN check letter invalid"
    assert not is_valid_upn("A801200005001")


def test_unknown_la_number_with_a_correct_check_letter():
    assert upn_problem("E000200005001") == "UPN LA number is not a known local authority"


def test_new_authorities_are_valid_though_stdnum_refuses_them():
    assert upn_problem("A838200024001") is None
    assert upn_problem("J943200024001") is None
    assert not stdnum_upn.is_valid("A838200024001")       # why we keep our own LA table


def test_temporary_upn_is_valid_format():
    assert upn_problem("N88640012400A") is None
    assert upn_problem("K88640012400A") == "UPN check letter invalid"


def test_upn_format_problems():
    assert upn_problem("B80120000500") == "UPN is not 13 characters long"
    assert upn_problem("I801200005001") == "UPN does not start with a check letter"
    assert upn_problem("B8012000A5001") == "UPN characters 2 to 12 are not all digits"
    assert upn_problem("B80120000500S") == "UPN last character is neither a digit nor a permitted letter"
    assert upn_problem(None) == "UPN is empty"
    assert upn_problem("  ") == "UPN is empty"


def test_problems_never_quote_the_value():
    for bad in ("A801200005001", "E000200005001", "B80120000500"):
        assert bad not in upn_problem(bad)


def test_la_table_holds_current_and_reorganised_authorities():
    numbers = builtin_la_numbers()
    for la in ("201", "320", "420", "838", "839", "886", "908", "940", "941", "942", "943", "835", "909", "928"):
        assert la in numbers
    assert "000" not in numbers and "999" not in numbers


def test_la_groups_can_be_refused():
    data = {"a": {"accept": True, "numbers": {"886": "Kent"}}, "b": {"accept": False, "numbers": {"660": "x"}}}
    assert la_numbers_from_mapping(data) == frozenset({"886"})


def test_nhs_documented_number_is_valid():
    # 9*10+4*9+3*8+4*7+7*6+6*5+5*4+8*3+7*2 = 308; 308 mod 11 = 0 -> 11 -> check 0.
    assert nhs_number_problem("9434765870") is None
    assert is_valid_nhs_number("943 476 5870")
    assert is_valid_nhs_number("943-476-5870")


def test_nhs_wrong_check_digit():
    assert nhs_number_problem("9434765871") == "NHS number check digit invalid"


def test_nhs_remainder_ten_is_never_valid():
    # 1*10 + 1*2 = 12; 12 mod 11 = 1 -> 11 - 1 = 10: no check digit exists.
    for last in "0123456789":
        assert nhs_number_problem("100000001" + last) == "NHS number cannot be valid (check digit would be 10)"


def test_nhs_test_range_number():
    # 9*10 + 9*9 + 9*8 + 1*2 = 245; 245 mod 11 = 3 -> check 8.
    assert is_valid_nhs_number("9990000018")


def test_nhs_format_problems():
    assert nhs_number_problem("943476587") == "NHS number is not 10 digits long"
    assert nhs_number_problem("94347658X0") == "NHS number is not all digits"
    assert nhs_number_problem("") == "NHS number is empty"


def test_nhs_check_is_stdnums():
    from stdnum.gb import nhs as stdnum_nhs
    for n in range(9990000000, 9990000400):
        assert (nhs_number_problem(str(n)) is None) == stdnum_nhs.is_valid(str(n)), n
    # 4*10+0*9+1*8+0*7+2*6+3*5+4*4+5*3+6*2 = 118; 118 mod 11 = 8 -> 11 - 8 = 3.
    assert nhs_number_problem("401 023 4563") is None
    assert nhs_number_problem("4010234564") == "NHS number check digit invalid"

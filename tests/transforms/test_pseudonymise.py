"""Tokens and encrypted identity replace plaintext identity."""
import datetime as dt

import pandas as pd

from sharing.crypto import decrypt_json
from sharing.keys import KeyRing
from sharing.tokens import identifier_token, name_dob_token, token
from transforms.pseudonymise import identity_columns, pupil_ref, record_ref, without_identity

KEYS = KeyRing(bytes(range(32)), bytes(range(32, 64)))


def frame(**fields):
    base = {"upn": None, "former_upn": None, "nhs_number": None, "forename": None, "surname": None, "dob": None,
            "sex": "F", "row_number": 7}
    return pd.DataFrame([{**base, **fields}], dtype=object)


def test_valid_identifiers_are_tokenised_in_their_namespaces():
    ids, issues = identity_columns(frame(upn="b801200005001", former_upn="A838200024001",
                                         nhs_number="943 476 5870"), KEYS)
    row = ids.iloc[0]
    assert row["upn_token"] == identifier_token(KEYS.token_key, "upn", "B801200005001")
    assert row["former_upn_token"] == identifier_token(KEYS.token_key, "upn", "A838200024001")
    assert row["nhs_token"] == identifier_token(KEYS.token_key, "nhs", "9434765870")
    assert row["upn_valid"] is True and row["nhs_valid"] is True and issues == []


def test_invalid_identifiers_are_not_tokenised_and_reported():
    ids, issues = identity_columns(frame(upn="A801200005001", nhs_number="1000000010"), KEYS)
    row = ids.iloc[0]
    assert row["upn_token"] is None and row["upn_valid"] is False
    assert row["nhs_token"] is None and row["nhs_valid"] is False
    assert [(i.row_number, i.field, i.issue) for i in issues] == [
        (7, "upn", "UPN check letter invalid; kept out of linkage"),
        (7, "nhs_number", "NHS number cannot be valid (check digit would be 10); kept out of linkage")]


def test_absent_identifiers_leave_validity_unknown():
    ids, issues = identity_columns(frame(), KEYS)
    row = ids.iloc[0]
    assert row["upn_valid"] is None and row["nhs_valid"] is None and issues == []
    assert row["identity_enc"] is None and row["key_id"] is None and row["name_dob_token"] is None


def test_name_dob_token_and_encrypted_identity():
    ids, _ = identity_columns(frame(forename="Zoë", surname="Brontë", dob=dt.date(2015, 4, 3)), KEYS)
    row = ids.iloc[0]
    assert row["name_dob_token"] == name_dob_token(KEYS.token_key, "Zoe", "BRONTE", dt.date(2015, 4, 3))
    assert decrypt_json(KEYS.identity_key, row["identity_enc"]) == {
        "forename": "Zoë", "surname": "Brontë", "dob": "2015-04-03"}
    assert row["key_id"] == KEYS.identity_key_id


def test_record_refs_are_scoped():
    assert pupil_ref(KEYS.token_key, "8864001", "77") == token(KEYS.token_key, "pupil", "8864001:77")
    assert pupil_ref(KEYS.token_key, "8864001", "77") != pupil_ref(KEYS.token_key, "8864002", "77")
    assert record_ref(KEYS.token_key, "sc_person", "77") != record_ref(KEYS.token_key, "camhs_patient", "77")
    assert pupil_ref(KEYS.token_key, "8864001", None) is None


def test_without_identity_drops_every_identity_column():
    assert list(without_identity(frame(postcode="CT1 1AA", school_pupil_id="77")).columns) == ["sex", "row_number"]


def test_per_value_computes_once_per_distinct_value_and_type():
    from transforms.pseudonymise import per_value
    calls = []
    out = per_value(lambda v: calls.append(v) or repr(v), ["a", "b", "a", 1, True, 1.0, None, None, ["x"]])
    assert out == ["'a'", "'b'", "'a'", "1", "True", "1.0", "None", "None", "['x']"]
    assert calls == ["a", "b", 1, True, 1.0, None, ["x"]]

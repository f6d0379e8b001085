"""Linkage on tokens: exact keys, restricted records, and the precision rules that keep children apart."""
import hashlib

import pandas as pd

from transforms.linkage import LINK_COLUMNS, link_records


def pupil(ref, laestab="8864001", upn=None, former=None, nhs=None, name_dob=None, upn_valid=True):
    return {"laestab": laestab, "pupil_ref": ref, "upn_token": upn, "upn_valid": upn_valid if upn else None,
            "former_upn_token": former, "nhs_token": nhs, "nhs_valid": True if nhs else None,
            "name_dob_token": name_dob}


def person(ref, upn=None, nhs=None, name_dob=None, restricted=False):
    return {"person_ref": ref, "upn_token": upn, "upn_valid": True if upn else None, "nhs_token": nhs,
            "nhs_valid": True if nhs else None, "name_dob_token": name_dob, "restricted": restricted}


def patient(ref, nhs=None, name_dob=None, referral="r1"):
    return {"referral_id": referral, "patient_ref": ref, "nhs_token": nhs, "nhs_valid": True if nhs else None,
            "name_dob_token": name_dob}


PUPIL_COLS = list(pupil("x"))
PERSON_COLS = list(person("x"))
PATIENT_COLS = list(patient("x"))


def link(pupils=(), persons=(), patients=()):
    return link_records(pd.DataFrame(list(pupils), columns=PUPIL_COLS),
                        pd.DataFrame(list(persons), columns=PERSON_COLS),
                        pd.DataFrame(list(patients), columns=PATIENT_COLS))


def by_ref(links):
    return {(r.source_kind, r.record_ref): (r.child_key, r.linked_on) for r in links.itertuples()}


def key(kind, ref):
    return hashlib.sha256(f"{kind}|{ref}".encode()).hexdigest()


def test_exact_upn_links_pupil_and_person():
    links = link([pupil("p1", upn="U1")], [person("s1", upn="U1")])
    assert list(links.columns) == LINK_COLUMNS
    got = by_ref(links)
    # members sorted: ("school","p1") < ("social_care","s1") -> key from the school record
    assert got == {("school", "p1"): (key("school", "p1"), "upn"),
                   ("social_care", "s1"): (key("school", "p1"), "upn")}
    assert links.set_index("record_ref").loc["p1", "laestab"] == "8864001"
    assert links.set_index("record_ref").loc["s1", "laestab"] is None


def test_nhs_links_person_and_patient_across_several_referrals():
    links = link(persons=[person("s1", nhs="N1")],
                 patients=[patient("h1", nhs="N1", referral="r1"), patient("h1", nhs="N1", referral="r2")])
    assert len(links) == 2
    assert by_ref(links) == {("health", "h1"): (key("health", "h1"), "nhs"),
                             ("social_care", "s1"): (key("health", "h1"), "nhs")}


def test_exact_name_dob_links_when_nothing_conflicts():
    links = link([pupil("p1", upn="U1", name_dob="T")], [person("s1", name_dob="T")])
    assert {v for v in by_ref(links).values()} == {(key("school", "p1"), "name_dob")}


def test_strongest_rule_is_reported_per_record():
    links = link([pupil("p1", upn="U1", name_dob="T")], [person("s1", upn="U1", nhs="N1", name_dob="T")],
                 [patient("h1", nhs="N1")])
    got = by_ref(links)
    assert {k for k, _ in got.values()} == {key("health", "h1")}
    assert got[("school", "p1")][1] == "upn"
    assert got[("social_care", "s1")][1] == "upn"
    assert got[("health", "h1")][1] == "nhs"


def test_restricted_person_is_never_linked():
    links = link([pupil("p1", upn="U1", name_dob="T")],
                 [person("s1", upn="U1", nhs="N1", name_dob="T", restricted=True)],
                 [patient("h1", nhs="N1")])
    got = by_ref(links)
    assert got[("social_care", "s1")] == (key("social_care", "s1"), "self")
    assert got[("school", "p1")] == (key("school", "p1"), "self")
    assert got[("health", "h1")] == (key("health", "h1"), "self")


def test_twins_with_different_forenames_are_not_merged():
    # same school, surname, DOB; different forenames -> different name_dob tokens and UPNs
    links = link([pupil("p1", upn="U1", name_dob="T-AMY"), pupil("p2", upn="U2", name_dob="T-BEN")],
                 [person("s1", name_dob="T-AMY")])
    got = by_ref(links)
    assert got[("school", "p1")][0] == got[("social_care", "s1")][0]
    assert got[("school", "p2")] == (key("school", "p2"), "self")


def test_pupil_who_moved_school_is_one_child():
    links = link([pupil("p1", laestab="8864001", upn="U1"), pupil("p2", laestab="8864002", upn="U1")])
    assert links["child_key"].nunique() == 1
    assert set(links["linked_on"]) == {"upn"}
    assert set(links["laestab"]) == {"8864001", "8864002"}


def test_former_upn_matches_current_upn():
    links = link([pupil("p1", laestab="8864001", upn="TEMP"),
                  pupil("p2", laestab="8864002", upn="PERM", former="TEMP")])
    assert links["child_key"].nunique() == 1
    assert set(links["linked_on"]) == {"upn"}


def test_two_persons_with_different_upns_are_not_linked_on_name_dob():
    links = link(persons=[person("s1", upn="U1", name_dob="T"), person("s2", upn="U2", name_dob="T")])
    assert links["child_key"].nunique() == 2
    assert set(links["linked_on"]) == {"self"}


def test_ambiguous_name_dob_links_to_neither_candidate():
    # a pupil with no UPN matching two social-care persons who have different UPNs
    links = link([pupil("p1", name_dob="T")],
                 [person("s1", upn="U1", name_dob="T"), person("s2", upn="U2", name_dob="T")])
    assert links["child_key"].nunique() == 3


def test_same_register_holding_two_ids_is_two_children_on_name_dob():
    links = link(persons=[person("s1", name_dob="T"), person("s2", name_dob="T")],
                 patients=[patient("h1", name_dob="T2"), patient("h2", name_dob="T2")])
    assert links["child_key"].nunique() == 4
    same_school = link([pupil("p1", name_dob="T"), pupil("p2", name_dob="T")])
    assert same_school["child_key"].nunique() == 2
    other_school = link([pupil("p1", laestab="8864001", name_dob="T"),
                         pupil("p2", laestab="8864002", name_dob="T")])
    assert other_school["child_key"].nunique() == 1


def test_nhs_does_not_link_records_with_conflicting_upns():
    links = link([pupil("p1", upn="U1", nhs="N1")], [person("s1", upn="U2", nhs="N1")])
    assert links["child_key"].nunique() == 2


def test_upn_does_not_link_records_with_conflicting_nhs_numbers():
    links = link([pupil("p1", upn="U1", nhs="N1")], [person("s1", upn="U1", nhs="N2")])
    assert links["child_key"].nunique() == 2


def test_invalid_upn_is_not_used_to_link():
    links = link([pupil("p1", upn="U1", upn_valid=False)], [person("s1", upn="U1")])
    assert links["child_key"].nunique() == 2


def test_child_key_is_stable_across_runs_and_row_order():
    pupils = [pupil("p2", upn="U1"), pupil("p1", laestab="8864002", upn="U1")]
    persons = [person("s9", upn="U1"), person("s3", nhs="N3")]
    first = link(pupils, persons)
    again = link(list(reversed(pupils)), list(reversed(persons)))
    pd.testing.assert_frame_equal(first, again)
    assert set(first.loc[first["record_ref"] != "s3", "child_key"]) == {key("school", "p1")}
    assert first.set_index("record_ref").loc["s3", "child_key"] == key("social_care", "s3")


def test_empty_inputs_give_empty_links():
    links = link()
    assert links.empty and list(links.columns) == LINK_COLUMNS

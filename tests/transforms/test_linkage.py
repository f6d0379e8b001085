"""Linkage on tokens: exact keys, restricted records, and the precision rules that keep children apart."""
import hashlib

import pandas as pd
import pytest

from transforms.linkage import CONFLICT_COLUMNS, LINK_COLUMNS, identifier_conflicts, link_records, link_with_conflicts


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


# --- one identifier, two children --------------------------------------------------------------

def conflicts_of(pupils=(), persons=(), patients=()):
    return identifier_conflicts(pd.DataFrame(list(pupils), columns=PUPIL_COLS),
                                pd.DataFrame(list(persons), columns=PERSON_COLS),
                                pd.DataFrame(list(patients), columns=PATIENT_COLS))


def test_two_pupils_at_two_schools_sharing_a_upn_with_different_name_and_dob_are_not_linked():
    pupils = [pupil("p1", laestab="8864001", upn="U1", name_dob="T-AMY"),
              pupil("p2", laestab="8864002", upn="U1", name_dob="T-BEN")]
    links = link(pupils)
    assert by_ref(links) == {("school", "p1"): (key("school", "p1"), "self"),
                             ("school", "p2"): (key("school", "p2"), "self")}
    found = conflicts_of(pupils)
    assert list(found.columns) == CONFLICT_COLUMNS
    assert list(zip(found["record_ref"], found["identifier"], found["linked"])) == [
        ("p1", "upn", False), ("p2", "upn", False)]
    assert list(found["laestab"]) == ["8864001", "8864002"]
    assert all(r.startswith("UPN shared with another record but name or date of birth differs: not linked")
               for r in found["reason"])


def test_a_mover_is_still_one_child_when_a_school_has_no_name_dob_key():
    links = link([pupil("p1", laestab="8864001", upn="U1", name_dob="T-AMY"),
                  pupil("p2", laestab="8864002", upn="U1")])
    assert links["child_key"].nunique() == 1 and set(links["linked_on"]) == {"upn"}
    assert conflicts_of([pupil("p1", laestab="8864001", upn="U1", name_dob="T-AMY"),
                         pupil("p2", laestab="8864002", upn="U1", name_dob="T-AMY")]).empty


def test_shared_upn_refused_then_the_right_pupil_links_on_name_and_dob():
    # p1 and p2 disagree on who U1 is; the social-care person with U1 and p1's name + DOB is p1
    links = link([pupil("p1", laestab="8864001", upn="U1", name_dob="T-AMY"),
                  pupil("p2", laestab="8864002", upn="U1", name_dob="T-BEN")],
                 [person("s1", upn="U1", name_dob="T-AMY")])
    got = by_ref(links)
    assert got[("school", "p1")][0] == got[("social_care", "s1")][0]
    assert got[("school", "p1")][1] == "upn"          # the strongest key the two share
    assert got[("school", "p2")] == (key("school", "p2"), "self")


def test_two_persons_or_two_patients_sharing_an_identifier_with_different_names_stay_apart():
    assert link(persons=[person("s1", upn="U1", name_dob="T1"),
                         person("s2", upn="U1", name_dob="T2")])["child_key"].nunique() == 2
    assert link(patients=[patient("h1", nhs="N1", name_dob="T1"),
                          patient("h2", nhs="N1", name_dob="T2")])["child_key"].nunique() == 2
    found = conflicts_of(patients=[patient("h1", nhs="N1", name_dob="T1"), patient("h2", nhs="N1", name_dob="T2")])
    assert set(found["identifier"]) == {"nhs"} and not found["linked"].any()
    assert all(r.startswith("NHS number shared with another record") for r in found["reason"])


def test_across_agencies_a_upn_links_despite_a_name_typo_and_is_reported_for_review():
    # schools and social care key names independently: a nickname must not break a UPN link
    links = link([pupil("p1", upn="U1", name_dob="T-ALEXANDER")], [person("s1", upn="U1", name_dob="T-ALEX")])
    assert links["child_key"].nunique() == 1 and set(links["linked_on"]) == {"upn"}
    found = conflicts_of([pupil("p1", upn="U1", name_dob="T-ALEXANDER")], [person("s1", upn="U1", name_dob="T-ALEX")])
    assert list(zip(found["source_kind"], found["linked"])) == [("school", True), ("social_care", True)]
    assert all("linked on this UPN; review" in r for r in found["reason"])


def test_conflicting_strong_identifiers_are_reported_with_provenance():
    p = {**pupil("p1", upn="U1", nhs="N1"), "source_id": "school_mis_a", "file_id": "f1", "row_number": 7}
    s = person("s1", upn="U2", nhs="N1")
    found = identifier_conflicts(pd.DataFrame([p]), pd.DataFrame([s], columns=PERSON_COLS),
                                 pd.DataFrame(columns=PATIENT_COLS))
    assert found.to_dict("records") == [
        {"source_kind": "school", "record_ref": "p1", "laestab": "8864001", "identifier": "nhs", "linked": False,
         "reason": "NHS number shared with another record but UPNs differ: not linked on this NHS number "
                   "(two children sharing one identifier, or an identity change to review)",
         "source_id": "school_mis_a", "file_id": "f1", "row_number": 7},
        {"source_kind": "social_care", "record_ref": "s1", "laestab": None, "identifier": "nhs", "linked": False,
         "reason": "NHS number shared with another record but UPNs differ: not linked on this NHS number "
                   "(two children sharing one identifier, or an identity change to review)",
         "source_id": None, "file_id": None, "row_number": None}]


def test_restricted_records_are_never_reported_and_links_match_link_records():
    pupils = [pupil("p1", upn="U1", name_dob="T1"), pupil("p2", laestab="8864002", upn="U1", name_dob="T2")]
    persons = [person("s1", upn="U1", name_dob="T3", restricted=True)]
    links, found = link_with_conflicts(pd.DataFrame(pupils, columns=PUPIL_COLS),
                                       pd.DataFrame(persons, columns=PERSON_COLS),
                                       pd.DataFrame(columns=PATIENT_COLS))
    pd.testing.assert_frame_equal(links, link(pupils, persons))
    assert "s1" not in set(found["record_ref"]) and set(found["record_ref"]) == {"p1", "p2"}
    assert conflicts_of().empty and list(conflicts_of().columns) == CONFLICT_COLUMNS


# --- a token held by too many records is a placeholder ------------------------------------------

def test_thousands_of_pupils_sharing_a_name_and_dob_are_not_linked_on_it():
    # a common name with a default date of birth, on 3,000 rolls across 12 schools
    pupils = [pupil(f"p{i:05d}", laestab=f"88640{i % 12:02d}", upn=f"U{i}", name_dob="T-DEFAULT")
              for i in range(3000)]
    persons = [person("s1", upn="U7", name_dob="T-DEFAULT"), person("s2", name_dob="T-DEFAULT")]
    links, found = link_with_conflicts(pd.DataFrame(pupils, columns=PUPIL_COLS),
                                       pd.DataFrame(persons, columns=PERSON_COLS), pd.DataFrame(columns=PATIENT_COLS))
    got = by_ref(links)
    assert len(got) == 3002 and links["child_key"].nunique() == 3001
    # the real UPN still links its pupil and person; nothing links on the shared name + DOB key
    assert got[("school", "p00007")] == got[("social_care", "s1")] == (key("school", "p00007"), "upn")
    assert got[("social_care", "s2")] == (key("social_care", "s2"), "self")
    assert all(v == (key(*k), "self") for k, v in got.items() if k not in {("school", "p00007"), ("social_care", "s1")})
    assert found.empty      # no identifier to report a name + DOB key against, and no name dispute


def test_a_placeholder_upn_links_no_one_and_is_reported_once_per_agency():
    shared = "U-PLACEHOLDER"
    pupils = [{**pupil(f"p{i:05d}", laestab=f"88640{i % 12:02d}", upn=shared), "source_id": "school_mis_a",
               "file_id": f"f{i % 12}", "row_number": i + 1} for i in range(3000)]
    # one of them also holds its own name + DOB key, as does a social-care person with a real UPN
    pupils[42]["name_dob_token"] = "T-42"
    persons = [person("s1", upn=shared), person("s2", upn="U-REAL", name_dob="T-42")]
    links, found = link_with_conflicts(pd.DataFrame(pupils), pd.DataFrame(persons, columns=PERSON_COLS),
                                       pd.DataFrame(columns=PATIENT_COLS))
    got = by_ref(links)
    assert links["child_key"].nunique() == 3001
    # the placeholder does not block the name + DOB link either: it is as if absent
    assert got[("school", "p00042")] == got[("social_care", "s2")] == (key("school", "p00042"), "name_dob")
    assert all(v == (key(*k), "self") for k, v in got.items() if k not in {("school", "p00042"), ("social_care", "s2")})
    # once per agency holding it, on that agency's first record, with its provenance
    assert found[["source_kind", "record_ref", "identifier", "linked", "source_id", "file_id", "row_number"]
                 ].values.tolist() == [["school", "p00000", "upn", False, "school_mis_a", "f0", 1],
                                       ["social_care", "s1", "upn", False, None, None, None]]
    school, social = found["reason"]
    assert school.startswith("UPN held by 3,000 school enrolments and 1 record of other agencies: "
                             "too many for one child")
    assert social.startswith("UPN held by 1 social-care person and 3,000 records of other agencies: too many")
    assert "not used to link or compare any of them" in school and shared not in school + social


def test_the_limit_counts_records_of_one_agency():
    def moved(n, limit):
        pupils = [pupil(f"p{i}", laestab=f"886400{i}", upn="U1") for i in range(n)]
        persons = [person(f"s{i}", upn="U1") for i in range(3)]
        return link_with_conflicts(pd.DataFrame(pupils, columns=PUPIL_COLS), pd.DataFrame(persons, columns=PERSON_COLS),
                                   pd.DataFrame(columns=PATIENT_COLS), max_holders=limit)
    links, found = moved(3, limit=3)            # 3 enrolments and 3 persons: 6 records, at most 3 per agency
    assert links["child_key"].nunique() == 1 and set(links["linked_on"]) == {"upn"} and found.empty
    links, found = moved(4, limit=3)
    assert links["child_key"].nunique() == 7 and set(links["linked_on"]) == {"self"}
    assert list(zip(found["source_kind"], found["record_ref"])) == [("school", "p0"), ("social_care", "s0")]
    assert found["reason"].iloc[0].startswith("UPN held by 4 school enrolments and 3 records of other agencies")


def test_a_placeholder_nhs_number_is_no_ones_strongest_key():
    # a trust's dummy NHS number on 31 patients, one of them also on roll: they link on name + DOB
    patients = [patient(f"h{i}", nhs="N-DUMMY", referral=f"r{i}") for i in range(30)]
    patients.append(patient("h-real", nhs="N-DUMMY", name_dob="T1", referral="r-real"))
    links = link([pupil("p1", upn="U1", nhs="N-DUMMY", name_dob="T1")], patients=patients)
    got = by_ref(links)
    assert got[("school", "p1")] == got[("health", "h-real")] == (key("health", "h-real"), "name_dob")
    found = conflicts_of([pupil("p1", upn="U1", nhs="N-DUMMY", name_dob="T1")], patients=patients)
    assert list(zip(found["source_kind"], found["identifier"])) == [("health", "nhs"), ("school", "nhs")]
    assert found["reason"].iloc[0].startswith("NHS number held by 31 CAMHS patients and 1 record of other agencies")


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="give at least 1"):
        link_records(pd.DataFrame(columns=PUPIL_COLS), pd.DataFrame(columns=PERSON_COLS),
                     pd.DataFrame(columns=PATIENT_COLS), max_holders=0)

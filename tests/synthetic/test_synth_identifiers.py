"""Identifiers are valid (UPN check letter, NHS modulus 11, 999 test range) except the deliberate noise."""
from __future__ import annotations

import datetime as dt
import random

from stdnum.gb import nhs

from synthetic import people


def test_upn_check_letter_matches_the_domain_example():
    assert people.upn_with_check("801200005001") == "B801200005001"
    assert people.is_valid_upn("B801200005001")
    assert not people.is_valid_upn("A801200005001")


def test_identifier_factory_issues_valid_unique_numbers():
    ids = people.IdentifierFactory(random.Random(1))
    upns = [ids.upn("2001", 2019) for _ in range(300)] + [ids.temporary_upn("2001", 2026) for _ in range(50)]
    assert len(set(upns)) == len(upns)
    assert all(people.is_valid_upn(u) and u[1:4] == "886" for u in upns)
    assert all(u[-1].isalpha() for u in upns[300:])
    numbers = [ids.nhs_number() for _ in range(300)]
    assert len(set(numbers)) == 300 and all(n.startswith("999") and nhs.is_valid(n) for n in numbers)


def test_mistyped_upn_fails_and_swapped_dob():
    rng = random.Random(2)
    assert not people.is_valid_upn(people.mistype_upn(rng, "B801200005001"))
    assert people.swap_day_month(dt.date(2015, 3, 7)) == dt.date(2015, 7, 3)
    assert people.swap_day_month(dt.date(2015, 3, 17)) is None
    assert people.swap_day_month(dt.date(2015, 4, 4)) is None


def test_dob_matches_year_group():
    rng = random.Random(3)
    for _ in range(200):
        assert dt.date(2021, 9, 1) <= people.dob_for_year_group(rng, "R", 2026) <= dt.date(2022, 8, 31)
        assert dt.date(2010, 9, 1) <= people.dob_for_year_group(rng, "11", 2026) <= dt.date(2011, 8, 31)
    assert people.reception_entry_year(dt.date(2021, 9, 1)) == 2026
    assert people.reception_entry_year(dt.date(2022, 8, 31)) == 2026


def _noise(la_files, report):
    return {(r["source_kind"], r["laestab"], r["record_id"]): r["noise"].split(";")
            for r in la_files.read_truth(report, "records.csv")}


def test_school_upns_valid_except_deliberately_mistyped(medium_la, la_files):
    noise = _noise(la_files, medium_la)
    bad, checked = [], 0
    for source_id in ("school_mis_a", "school_mis_b"):
        for path in sorted((medium_la.inbox_dir / source_id).glob("*.csv")):
            layout = la_files.layout_of(medium_la, source_id, path.name)
            laestab = layout.parse_filename(path.name)["laestab"]
            for row in la_files.read_rows(path, layout):
                for field in ("upn", "former_upn"):
                    value = row.get(field)
                    if not value:
                        continue
                    checked += 1
                    if not people.is_valid_upn(value):
                        bad.append((laestab, row["school_pupil_id"]))
            if layout.name == "mis-a-pupils":
                for row in la_files.read_rows(path, layout):
                    if row["nhs_number"]:
                        assert nhs.is_valid(row["nhs_number"]) and row["nhs_number"].startswith("999")
    assert checked > 1000
    assert {k for k in bad} == {k for k in bad if "upn_mistyped" in noise[("school", *k)]}


def test_social_care_and_camhs_identifiers(medium_la, la_files):
    noise = _noise(la_files, medium_la)
    sc = next((medium_la.inbox_dir / "social_care").glob("sc_persons_*.csv"))
    rows = la_files.read_rows(sc, la_files.layout_of(medium_la, "social_care", sc.name))
    invalid = [r["person_id"] for r in rows if r["upn"] and not people.is_valid_upn(r["upn"])]
    mistyped = [r["person_id"] for r in rows if "upn_mistyped" in noise[("social_care", "", r["person_id"])]]
    assert invalid and sorted(invalid) == sorted(mistyped)
    assert any(not r["upn"] for r in rows) and any(not r["nhs_number"] for r in rows)
    assert all(nhs.is_valid(r["nhs_number"]) for r in rows if r["nhs_number"])
    assert {r["restricted"] for r in rows} == {"Y", "N"}
    camhs = next((medium_la.inbox_dir / "camhs").glob("camhs_referrals_*.csv"))
    rows = la_files.read_rows(camhs, la_files.layout_of(medium_la, "camhs", camhs.name))
    assert all(nhs.is_valid(r["nhs_number"]) for r in rows if r["nhs_number"])

"""The ground truth agrees with the files, read back independently through the layouts."""
from __future__ import annotations

import collections
import csv
import datetime as dt

from schemas.config import load_config
from synthetic import truth


def _bool(value: str) -> bool:
    return value == "True"


def test_measures_in_ground_truth_match_marks_read_back_from_files(small_la, la_files, as_of):
    marks = la_files.final_marks_from_files(small_la)
    rows = la_files.read_truth(small_la, "pupils.csv")
    assert len(rows) == small_la.n_enrolments
    for row in rows:
        days = {d: [s.get("AM"), s.get("PM")] for d, s in marks[(row["laestab"], row["school_pupil_id"])].items()}
        m = truth.measures(days, dt.date(2026, 8, 1), as_of.date())
        got = [int(row[k]) for k in ("possible_sessions", "present_sessions", "aea_sessions", "authorised_sessions",
                                     "unauthorised_sessions", "consecutive_unauthorised_days")]
        assert got == [m.possible, m.present, m.aea, m.authorised, m.unauthorised, m.consecutive_unauthorised_days]
        rate = (m.authorised + m.unauthorised) / m.possible
        assert _bool(row["persistent_absence"]) == (rate >= 0.10)
        assert _bool(row["severe_absence"]) == (rate >= 0.50)


def test_one_nightly_file_per_school_day_and_intraday_except_the_late_school(small_la, la_files, as_of):
    cal = load_config(small_la.config_dir).calendar
    schools = load_config(small_la.config_dir).schools
    refused = {name for name, rows in la_files.quarantined(small_la).items() if rows is None}
    assert small_la.late_school in schools and small_la.late_school not in small_la.intraday_schools
    for laestab, school in schools.items():
        folder = small_la.inbox_dir / school.source_id
        nightly = sorted(p.name for p in folder.glob(f"{laestab}_attendance_*.csv")
                         if "T" not in p.name[-9:] and p.name not in refused)
        expected = [f"{laestab}_attendance_{d:%Y%m%d}.csv"
                    for d in cal.school_days(laestab, dt.date(2026, 9, 3), as_of.date() - dt.timedelta(days=1))]
        assert nightly == expected
        intraday = folder / f"{laestab}_attendance_{as_of:%Y%m%d}T0930.csv"
        assert intraday.exists() == (laestab in small_la.intraday_schools)


def test_inset_day_has_no_file_and_closure_day_is_all_hash(small_la, la_files):
    cal = load_config(small_la.config_dir).calendar
    inset = [c for c in cal.times(small_la.inset_school).closures if c.reason == "INSET"]
    assert len(inset) == 1
    assert not list(small_la.inbox_dir.rglob(f"{small_la.inset_school}_attendance_{inset[0].start:%Y%m%d}*.csv"))
    assert cal.times(small_la.am_start_school).session_start["AM"] == dt.time(8, 55)
    path = next(small_la.inbox_dir.rglob(f"{small_la.closure_school}_attendance_{small_la.closure_day:%Y%m%d}.csv"))
    source = path.parent.name
    rows = la_files.clean_rows(small_la, path, la_files.layout_of(small_la, source, path.name))
    day_rows = [r for r in rows if r["session_date"] in (small_la.closure_day.isoformat(), f"{small_la.closure_day:%d/%m/%Y}")]
    assert day_rows and {r["mark"] for r in day_rows} == {"#"}


def test_later_files_correct_earlier_placeholders(medium_la, la_files):
    corrected_from_n, later_stamp = 0, 0
    for source in ("school_mis_a", "school_mis_b"):
        first_seen: dict[tuple, tuple[str, str]] = {}
        for path, layout in la_files.delivery_order(medium_la, source):
            extract = layout.parse_filename(path.name)["extract_date"]
            for row in la_files.clean_rows(medium_la, path, layout):
                key = (path.name[:7], row["school_pupil_id"], row["session_date"], row["session"])
                if key in first_seen:
                    mark, stamp = first_seen[key]
                    assert dt.datetime.strptime(row["session_date"], layout.date_format).strftime("%Y%m%d") < extract
                    corrected_from_n += mark == "N" and row["mark"] in ("I", "O")
                    if source == "school_mis_b":
                        assert row["updated_at"] > stamp
                        later_stamp += 1
                else:
                    first_seen[key] = (row["mark"], row.get("updated_at", ""))
    assert corrected_from_n > 10 and later_stamp > 0


def test_records_cover_every_source_record(small_la, la_files):
    records = la_files.read_truth(small_la, "records.csv")
    school = {(r["laestab"], r["record_id"]) for r in records if r["source_kind"] == "school"}
    in_files = set()
    for source in ("school_mis_a", "school_mis_b"):
        for path in (small_la.inbox_dir / source).glob("*.csv"):
            layout = la_files.layout_of(small_la, source, path.name)
            laestab = layout.parse_filename(path.name)["laestab"]
            in_files |= {(laestab, r["school_pupil_id"]) for r in la_files.read_rows(path, layout)}
    assert school == in_files
    persons = next((small_la.inbox_dir / "social_care").glob("sc_persons_*.csv"))
    with persons.open(encoding="utf-8") as fh:
        person_ids = {r["PersonID"] for r in csv.DictReader(fh)}
    assert person_ids == {r["record_id"] for r in records if r["source_kind"] == "social_care"}
    camhs = next((small_la.inbox_dir / "camhs").glob("camhs_*.csv"))
    with camhs.open(encoding="utf-8") as fh:
        patients = {r["LocalPatientID"] for r in csv.DictReader(fh)}
    assert patients == {r["record_id"] for r in records if r["source_kind"] == "health"}
    cohorts = {r["child_id"] for r in la_files.read_truth(small_la, "cohorts.csv")}
    assert {r["child_id"] for r in records} <= cohorts and len(cohorts) == small_la.n_children


def test_cohorts_are_coherent_with_social_care_extract(medium_la, la_files, as_of):
    records = la_files.read_truth(medium_la, "records.csv")
    child_of = {r["record_id"]: r["child_id"] for r in records if r["source_kind"] == "social_care"}
    kind_of = {r["record_id"]: r["noise"].split(";")[0] for r in records if r["source_kind"] == "social_care"}
    folder = medium_la.inbox_dir / "social_care"
    path = next(folder.glob("sc_episodes_*.csv"))
    skip = la_files.quarantined(medium_la).get(path.name, frozenset())
    with path.open(encoding="utf-8") as fh:
        episodes = [e for n, e in enumerate(csv.DictReader(fh), start=1) if n not in skip]
    cohorts = {r["child_id"]: r for r in la_files.read_truth(medium_la, "cohorts.csv")}
    day = as_of.date().isoformat()
    for e in episodes:
        assert e["EndDate"] == "" or e["StartDate"] <= e["EndDate"] < day
        if e["EndDate"] == "":
            assert _bool(cohorts[child_of[e["PersonID"]]]["current_cwsw"])
    for pid, kind in kind_of.items():
        c = cohorts[child_of[pid]]
        assert _bool(c["in_social_care"])
        assert _bool(c["current_cwsw"]) == (kind == "current"), kind
        if kind in ("old", "short_breaks"):
            assert not _bool(c["ever6_cwsw"])
        if kind in ("current", "historical"):
            assert _bool(c["ever6_cwsw"])
    current = [c for c in cohorts.values() if _bool(c["current_cwsw"])]
    assert current and all(_bool(c["ever6_cwsw"]) for c in current)
    assert any(c["allocated_worker_id"] == "" for c in current)       # some open cases sit with duty
    assert any(_bool(c["in_social_care"]) and not _bool(c["in_school"]) for c in cohorts.values())
    restricted = [c for c in cohorts.values() if _bool(c["restricted"])]
    assert restricted and all(not _bool(c["in_school"]) and not _bool(c["current_cwsw"]) for c in restricted)


def test_adopted_child_and_sealed_identity_are_different_children(medium_la, la_files):
    records = la_files.read_truth(medium_la, "records.csv")
    sealed = [r for r in records if "pre_adoption" in r["noise"].split(";")]
    assert sealed
    for r in sealed:
        adopted_child = next(n.split(":", 1)[1] for n in r["noise"].split(";") if n.startswith("pre_adoption_identity_of:"))
        assert adopted_child != r["child_id"]
        assert any(x["child_id"] == adopted_child and x["source_kind"] == "school" for x in records)


def test_movers_and_twins(medium_la, la_files):
    records = la_files.read_truth(medium_la, "records.csv")
    school = [r for r in records if r["source_kind"] == "school"]
    by_child = collections.defaultdict(set)
    for r in school:
        by_child[r["child_id"]].add(r["laestab"])
    movers = {r["child_id"] for r in school if "moved_out" in r["noise"]}
    assert movers and all(len(by_child[c]) == 2 for c in movers)
    twins = [r for r in school if "twin" in r["noise"].split(";")]
    assert len(twins) >= 2 and len({r["child_id"] for r in twins}) == len(twins)


def test_expected_flags_are_current_cwsw_at_reporting_schools(small_la, medium_la, la_files, as_of):
    for report in (small_la, medium_la):
        marks = la_files.final_marks_from_files(report)
        cohorts = {r["child_id"]: r for r in la_files.read_truth(report, "cohorts.csv")}
        flags = la_files.read_truth(report, "expected_flags.csv")
        assert flags
        for f in flags:
            assert _bool(cohorts[f["child_id"]]["current_cwsw"]) and f["laestab"] in report.intraday_schools
            mark = marks[(f["laestab"], f["school_pupil_id"])].get(as_of.date(), {}).get(f["session"])
            expected = {"no_mark_after_register_close": None, "mark_N": "N", "mark_O": "O", "mark_E": "E"}[f["reason"]]
            assert mark == expected
        # complete: every current-CWSW pupil on roll at a reporting school with N, O, E or no AM mark
        due = set()
        for p in la_files.read_truth(report, "pupils.csv"):
            on_roll = p["leaving_date"] == "" or p["leaving_date"] >= as_of.date().isoformat()
            if p["laestab"] in report.intraday_schools and on_roll and _bool(cohorts[p["child_id"]]["current_cwsw"]):
                mark = marks[(p["laestab"], p["school_pupil_id"])].get(as_of.date(), {}).get("AM")
                if mark in (None, "N", "O", "E"):
                    due.add((p["child_id"], p["laestab"]))
        assert due == {(f["child_id"], f["laestab"]) for f in flags}
    reasons = {f["reason"] for f in la_files.read_truth(medium_la, "expected_flags.csv")}
    assert reasons == {"no_mark_after_register_close", "mark_N", "mark_O", "mark_E"}

"""Planted bad input: every kind is there, it is purely additive (the truth does not move), and the
reader quarantines exactly the rows ground_truth/quarantine.csv lists."""
from __future__ import annotations

import csv
import datetime as dt
import fnmatch
from pathlib import Path

import pytest

from schemas.config import load_config
from sharing.keys import KeyRing
from synthetic.generate import generate_la
from transforms.ingest import ingest_file

KINDS = {
    "school_mis_a": {"bad_date", "unknown_code", "lower_case_code", "withdrawn_code", "duplicate_row",
                     "truncated_row", "nul_byte", "missing_column"},
    "school_mis_b": {"bad_date", "bad_session"},
    "social_care": {"bad_date", "bad_episode_type"},
    "camhs": {"bad_referral_status"},
}
# What the reader's reason says for each kind (transforms/read.py wording).
REASON_HINTS = {
    "bad_date": "not a valid date", "unknown_code": "is not a DfE attendance code",
    "lower_case_code": "is lower case", "withdrawn_code": "was withdrawn", "duplicate_row": "duplicate of row",
    "truncated_row": "(truncated row)", "nul_byte": "NUL byte", "bad_session": "session labels",
    "bad_episode_type": "not one of CIN, CPP, CLA", "bad_referral_status": "not one of waiting, open, closed",
    "missing_column": "missing required column 'Mark'",
}
TRUTH_FILES = ("pupils.csv", "records.csv", "cohorts.csv", "expected_flags.csv", "scenario.csv")


def _lines(path: Path) -> list[bytes]:
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in path.read_bytes().split(b"\n")]
    return lines[:-1] if lines and lines[-1] == b"" else lines


def test_bad_input_only_adds_rows_and_leaves_the_truth_unchanged(tmp_path, as_of, la_files):
    on = generate_la(tmp_path / "on", seed=5, n_schools=3, n_pupils=150, as_of=as_of)
    off = generate_la(tmp_path / "off", seed=5, n_schools=3, n_pupils=150, as_of=as_of, bad_input=False)
    for name in TRUTH_FILES:
        assert (on.ground_truth_dir / name).read_bytes() == (off.ground_truth_dir / name).read_bytes(), name
    assert (off.ground_truth_dir / "quarantine.csv").read_text() == "source_id,file_name,row_number,field,reason_kind\n"
    assert (off.ground_truth_dir / "data_quality.csv").read_text() == \
        "source_id,file_name,row_number,field,reason_kind\n"
    assert (off.bad_rows, off.refused_files) == (0, 0)
    assert not any("bad input" in line for line in off.summary())

    skip = la_files.quarantined(on)
    for r in la_files.read_truth(on, "data_quality.csv"):          # planted rows that are staged, with an issue
        skip[r["file_name"]] = skip.get(r["file_name"], frozenset()) | {int(r["row_number"])}
    off_files = {p.relative_to(off.inbox_dir) for p in off.inbox_dir.rglob("*.csv")}
    on_files = {p.relative_to(on.inbox_dir) for p in on.inbox_dir.rglob("*.csv")}
    refused = {p for p in on_files if skip.get(p.name, ()) is None}
    assert len(refused) == 1 and on_files - refused == off_files
    changed = 0
    for rel in sorted(off_files):
        on_lines, off_lines = _lines(on.inbox_dir / rel), _lines(off.inbox_dir / rel)
        bad = skip.get(rel.name, frozenset())
        kept = [ln for n, ln in enumerate(on_lines) if n not in bad]      # line n is data row n (header: 0)
        assert kept == off_lines, rel
        assert len(on_lines) == len(off_lines) + len(bad)
        changed += bool(bad)
    assert changed == len(skip) - 1


def test_every_kind_of_bad_input_is_planted_and_counted(small_la, la_files):
    truth = la_files.read_truth(small_la, "quarantine.csv")
    kinds: dict[str, set[str]] = {}
    for r in truth:
        kinds.setdefault(r["source_id"], set()).add(r["reason_kind"])
    assert kinds == KINDS
    assert small_la.bad_rows == sum(r["row_number"] != "" for r in truth)
    assert small_la.refused_files == sum(r["row_number"] == "" for r in truth) == 1
    assert 10 <= small_la.bad_rows <= 60
    assert any("bad input planted" in line for line in small_la.summary())
    keys = {(r["file_name"], r["row_number"]) for r in truth}
    assert len(keys) == len(truth)


# What the data-quality issue says for each planted kind (transforms/quality.py wording).
ISSUE_HINTS = {"placeholder_name": "is a placeholder, not a name", "implausible_dob": "dob "}


def test_planted_data_quality_rows_are_staged_with_their_issue_and_kept_out_of_name_linkage(small_la, la_files,
                                                                                             keys):
    truth = la_files.read_truth(small_la, "data_quality.csv")
    assert {(r["reason_kind"], r["field"]) for r in truth} == {
        ("placeholder_name", "forename"), ("placeholder_name", "surname"), ("implausible_dob", "dob")}
    assert {r["file_name"] for r in truth} == {r["file_name"] for r in truth if r["source_id"] == "camhs"}
    quarantine = {(r["file_name"], r["row_number"]) for r in la_files.read_truth(small_la, "quarantine.csv")}
    assert not quarantine & {(r["file_name"], r["row_number"]) for r in truth}
    for (source_id, name) in {(r["source_id"], r["file_name"]) for r in truth}:
        result = _ingest(small_la, source_id, small_la.inbox_dir / source_id / name, keys)
        issues = {(i.row_number, i.field): i.issue for i in result.issues}
        staged = result.staged.set_index("row_number")
        for r in (r for r in truth if r["file_name"] == name):
            n = int(r["row_number"])
            assert ISSUE_HINTS[r["reason_kind"]] in issues[(n, r["field"])], (n, r["field"])
            assert staged.loc[n, "name_dob_token"] is None and staged.loc[n, "referral_status"] == "closed"
            assert staged.loc[n, "nhs_token"] is None


def _row(path: Path, encoding: str, n: int) -> list[str]:
    line = _lines(path)[n].decode(encoding)
    return next(csv.reader([line]))


def test_planted_rows_cannot_collide_with_real_keys(small_la, la_files):
    """Marks sit on weekends (or impossible dates), episodes and referrals have new ids, the refused
    file is dated on a Saturday."""
    for r in la_files.read_truth(small_la, "quarantine.csv"):
        path = small_la.inbox_dir / r["source_id"] / r["file_name"]
        kind, n = r["reason_kind"], int(r["row_number"] or 0)
        if kind == "missing_column":
            day = dt.datetime.strptime(r["file_name"].split("_")[-1][:8], "%Y%m%d").date()
            assert day.weekday() == 5
        elif r["source_id"] == "school_mis_a" and kind in ("unknown_code", "lower_case_code", "withdrawn_code",
                                                            "nul_byte"):
            day = dt.datetime.strptime(_row(path, "cp1252", n)[7], "%d/%m/%Y").date()
            assert day.weekday() >= 5 and day.year == 2026
        elif r["source_id"] == "school_mis_b" and kind == "bad_session":
            assert dt.date.fromisoformat(_row(path, "utf-8", n)[8]).weekday() >= 5
        elif r["source_id"] == "social_care":
            ids = [_row(path, "utf-8", k)[1] for k in range(1, len(_lines(path)))]
            assert ids.count(_row(path, "utf-8", n)[1]) == 1
        elif r["source_id"] == "camhs":
            ids = [_row(path, "utf-8", k)[7] for k in range(1, len(_lines(path)))]
            assert ids.count(_row(path, "utf-8", n)[7]) == 1
        elif kind == "duplicate_row":
            lines = _lines(path)
            assert lines.index(lines[n]) < n


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing(b"t" * 32, b"i" * 32)


def _ingest(report, source_id: str, path: Path, keys: KeyRing):
    config = load_config(report.config_dir)
    layout = next(config.layout(f.layout) for f in config.sources[source_id].files
                  if fnmatch.fnmatch(path.name, f.pattern))
    return ingest_file(path.read_bytes(), file_name=path.name, source_id=source_id, file_id="test", layout=layout,
                       codes=config.codes, keys=keys, received_at=dt.datetime(2026, 11, 30, 7, tzinfo=dt.timezone.utc))


def test_the_reader_quarantines_exactly_the_planted_rows(small_la, la_files, keys):
    truth = la_files.read_truth(small_la, "quarantine.csv")
    by_file: dict[tuple[str, str], list[dict]] = {}
    for r in truth:
        by_file.setdefault((r["source_id"], r["file_name"]), []).append(r)
    clean = [(s, p.name) for s in ("school_mis_a", "school_mis_b", "social_care", "camhs")
             for p in sorted((small_la.inbox_dir / s).glob("*.csv"))[:2] if (s, p.name) not in by_file]
    assert clean
    for source_id, name in list(by_file) + clean:
        result = _ingest(small_la, source_id, small_la.inbox_dir / source_id / name, keys)
        got = sorted(((q.row_number or 0), q.field or "", q.reason) for q in result.quarantined)
        want = sorted(((int(r["row_number"] or 0)), r["field"], r["reason_kind"]) for r in by_file.get((source_id, name), []))
        assert [g[:2] for g in got] == [w[:2] for w in want], name
        for (_, _, reason), (_, _, kind) in zip(got, want):
            assert REASON_HINTS[kind] in reason, (name, kind)
        bad = {q.row_number for q in result.quarantined if q.row_number is not None}
        assert result.rows_read == len(result.staged) + len(bad)

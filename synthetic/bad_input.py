"""Realistic bad input planted in a generated LA, and the ground truth of what must be quarantined.

Real feeds are not clean: a school's export is cut short by a full disk, a hand-edited row carries
an impossible date or a code the DfE withdrew, a file is exported twice-over with a duplicated row,
a case-management system leaks a test episode type, a trust sends a status the contract does not
know, a school runs an export with the wrong template. `plant_bad_input` adds a few tens of such
rows (and one whole file to refuse) to the feeds already written, and returns one `Expected` entry
per quarantine row the pipeline must write.

Every planted row is chosen so that the ground truth of measures, cohorts and flags does not move:
- it is an extra row: no real row is changed or removed;
- it never shares a pupil, date and session with a real row of the same file (rows of one file
  that share a key but differ are all quarantined): marks sit on a weekend before the file's day,
  episodes and referrals get new ids; the only exception is the exact duplicate of a real row,
  whose original is kept;
- it copies its identity from a real row of the same file for the file's own day, so a school's
  roll taken from the attendance file is the same.

Some planted rows are not quarantined but staged with a data-quality issue (`BadInput.issues`,
written to ground_truth/data_quality.csv): closed CAMHS referrals of a real patient, under a new
referral id and without the NHS number, whose forename or surname is a placeholder (`Baby`, `Xxx`,
`Anon`, `TBC`) or whose date of birth is a parent's or a date still to come (a due date). They leave the truth
alone: a closed referral opens no CAMHS involvement, and the row carries no token that could link
(no NHS number; the name + date-of-birth key is withheld for exactly these rows).

Row numbers are those of the reader: 1-based among the non-blank data rows, the header is row 0;
the generated files hold one physical line per row and no blank lines, so a row's number is its
line's position after the header. A refused file is one entry with no row number (the file) and
one per data row.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

from synthetic import writers
from synthetic.schools import MIS_A, MIS_B, School

QUARANTINE_HEADER = ["source_id", "file_name", "row_number", "field", "reason_kind"]
DATA_QUALITY_HEADER = QUARANTINE_HEADER
_BOM = b"\xef\xbb\xbf"

# Attendance marks a reader must refuse, each on a weekend date: (reason kind, mark).
_BAD_MARKS = (("unknown_code", "Q9"), ("lower_case_code", "n"), ("withdrawn_code", "H"))


@dataclass(frozen=True)
class Expected:
    """One row (row_number None: a whole file) the pipeline must quarantine."""

    source_id: str
    file_name: str
    row_number: int | None
    field: str                 # canonical field at fault; "" when the row fails as a whole
    reason_kind: str           # bad_date, unknown_code, duplicate_row, missing_column, ...

    def as_row(self) -> list:
        return [self.source_id, self.file_name, "" if self.row_number is None else self.row_number,
                self.field, self.reason_kind]


@dataclass
class BadInput:
    """What was planted: the expected quarantine, rows added to existing files by (source, feed),
    and new files (source, feed, file name, data rows)."""

    expected: list[Expected] = field(default_factory=list)
    added_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    new_files: list[tuple[str, str, str, int]] = field(default_factory=list)
    issues: list[Expected] = field(default_factory=list)      # staged rows with a data-quality issue

    @property
    def bad_rows(self) -> int:
        return sum(e.row_number is not None for e in self.expected)

    @property
    def refused_files(self) -> int:
        return sum(e.row_number is None for e in self.expected)

    def truth_rows(self) -> list[list]:
        return _sorted_rows(self.expected)

    def issue_rows(self) -> list[list]:
        return _sorted_rows(self.issues)


def _sorted_rows(entries: list[Expected]) -> list[list]:
    return [e.as_row() for e in sorted(entries, key=lambda e: (
        e.source_id, e.file_name, -1 if e.row_number is None else e.row_number, e.field))]


@dataclass
class _Planted:
    line: bytes
    kind: str | None = None
    field: str = ""
    staged: bool = False        # kept, with a data-quality issue, rather than quarantined


class _Extract:
    """A written CSV extract held as raw lines, so rows can be planted without touching the others."""

    def __init__(self, path: Path, source_id: str, feed: str, encoding: str):
        self.path, self.source_id, self.feed, self.encoding = path, source_id, feed, encoding
        data = path.read_bytes()
        self.crlf = data.split(b"\n", 1)[0].endswith(b"\r")
        lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in data.split(b"\n")]
        if lines and lines[-1] == b"":
            lines.pop()
        self.header = lines[0]
        self.rows = [_Planted(ln) for ln in lines[1:]]
        self.truncated: _Planted | None = None

    def fields(self, row: _Planted) -> list[str]:
        return next(csv.reader([row.line.decode(self.encoding)]))

    def encode(self, fields: list[str]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(fields)
        return buf.getvalue().encode(self.encoding)

    def original(self) -> list[_Planted]:
        return [r for r in self.rows if r.kind is None]

    def insert(self, rng: random.Random, line: bytes, kind: str, fld: str = "", after: _Planted | None = None,
               staged: bool = False) -> None:
        lo = 0 if after is None else self.rows.index(after) + 1
        self.rows.insert(rng.randint(lo, len(self.rows)), _Planted(line, kind, fld, staged))

    def save(self) -> tuple[list[Expected], list[Expected]]:
        """Write the file; (rows to quarantine, staged rows with a data-quality issue)."""
        term = b"\r\n" if self.crlf else b"\n"
        rows = self.rows + ([self.truncated] if self.truncated else [])
        body = term.join([self.header] + [r.line for r in rows])
        self.path.write_bytes(body if self.truncated else body + term)
        planted = [(Expected(self.source_id, self.path.name, n, r.field, r.kind), r.staged)
                   for n, r in enumerate(rows, start=1) if r.kind is not None]
        return [e for e, staged in planted if not staged], [e for e, staged in planted if staged]

    def planted(self) -> int:
        return sum(r.kind is not None for r in self.rows) + (self.truncated is not None)


def _weekend_before(day: dt.date, rng: random.Random) -> dt.date:
    sunday = day - dt.timedelta(days=day.weekday() + 1)
    return sunday - dt.timedelta(days=rng.randrange(2))


def _nightly(inbox: Path, school: School) -> list[tuple[dt.date, Path]]:
    out = []
    for path in sorted((inbox / school.source_id).glob(f"{school.laestab}_attendance_*.csv")):
        stamp = path.stem.rsplit("_", 1)[1]
        if "T" not in stamp:
            out.append((dt.datetime.strptime(stamp, "%Y%m%d").date(), path))
    return out


class _Planter:
    def __init__(self, rng: random.Random, inbox: Path):
        self.rng, self.inbox = rng, inbox
        self.extracts: dict[Path, _Extract] = {}
        self.result = BadInput()

    def extract(self, path: Path, source_id: str, feed: str, encoding: str) -> _Extract:
        if path not in self.extracts:
            self.extracts[path] = _Extract(path, source_id, feed, encoding)
        return self.extracts[path]

    def model(self, ex: _Extract, day_text: str | None, day_col: int | None) -> tuple[_Planted, list[str]] | None:
        """A real row of the file (for the file's own day when `day_text` is given) and its fields."""
        rows = [r for r in ex.original() if day_col is None or ex.fields(r)[day_col] == day_text]
        if not rows:
            return None
        row = rows[self.rng.randrange(len(rows))]
        return row, ex.fields(row)

    def attendance_file(self, schools: list[School]) -> tuple[School, dt.date, _Extract] | None:
        files = [(s, day, path) for s in schools for day, path in _nightly(self.inbox, s)]
        if not files:
            return None
        school, day, path = files[self.rng.randrange(len(files))]
        encoding = "cp1252" if school.source_id == MIS_A else "utf-8"
        return school, day, self.extract(path, school.source_id, "attendance", encoding)

    # -- layout A attendance --------------------------------------------------------------------
    def mis_a(self, schools: list[School], as_of_day: dt.date) -> None:
        h = {name: i for i, name in enumerate(writers.MIS_A_ATTENDANCE)}
        date_col, mark_col, late_col = h["Date"], h["Mark"], h["Minutes Late"]

        def pick():
            chosen = self.attendance_file(schools)
            if chosen is None:
                return None
            _, day, ex = chosen
            found = self.model(ex, f"{day:%d/%m/%Y}", date_col)
            return None if found is None else (day, ex, *found)

        def weekend_row(day: dt.date, fields: list[str]) -> list[str]:
            out = list(fields)
            out[date_col] = f"{_weekend_before(day, self.rng):%d/%m/%Y}"
            out[late_col] = ""
            return out

        if (got := pick()) is not None:               # 31 February
            day, ex, _, fields = got
            fields = list(fields)
            fields[date_col] = "31/02/2026"
            ex.insert(self.rng, ex.encode(fields), "bad_date", "session_date")
        for kind, mark in _BAD_MARKS:
            if (got := pick()) is not None:
                day, ex, _, fields = got
                fields = weekend_row(day, fields)
                fields[mark_col] = mark
                ex.insert(self.rng, ex.encode(fields), kind, "mark")
        if (got := pick()) is not None:               # the same row exported twice
            _, ex, row, _ = got
            ex.insert(self.rng, row.line, "duplicate_row", after=row)
        if (got := pick()) is not None:               # a NUL byte inside a name
            day, ex, _, fields = got
            fields = weekend_row(day, fields)
            name = fields[h["Legal Surname"]]
            fields[h["Legal Surname"]] = name[:1] + "\x00" + name[1:]
            ex.insert(self.rng, ex.encode(fields), "nul_byte")
        if (got := pick()) is not None:               # the writer stopped mid-row: no line end
            day, ex, _, fields = got
            fields = weekend_row(day, fields)
            ex.truncated = _Planted(ex.encode(fields[:date_col] + [fields[date_col][:4]]), "truncated_row")
        self.refused_file(schools, as_of_day)

    def refused_file(self, schools: list[School], as_of_day: dt.date) -> None:
        """An extra layout-A file, exported on a Saturday with a template that lacks the Mark column."""
        options = []
        for s in schools:
            for day, path in _nightly(self.inbox, s):
                saturday = day + dt.timedelta(days=5 - day.weekday())
                name = writers.attendance_file_name(s, saturday)
                if saturday < as_of_day and not (self.inbox / MIS_A / name).exists():
                    options.append((s, day, path, saturday, name))
        if not options:
            return
        school, day, path, saturday, name = options[self.rng.randrange(len(options))]
        ex = self.extract(path, MIS_A, "attendance", "cp1252")
        h = writers.MIS_A_ATTENDANCE
        models = [ex.fields(r) for r in ex.original() if ex.fields(r)[h.index("Date")] == f"{day:%d/%m/%Y}"]
        models = self.rng.sample(models, min(3, len(models)))
        keep = [i for i, col in enumerate(h) if col != "Mark"]
        rows = []
        for fields in models:
            for session in ("AM", "PM"):
                out = list(fields)
                out[h.index("Date")], out[h.index("Session")], out[h.index("Minutes Late")] = \
                    f"{saturday:%d/%m/%Y}", session, ""
                rows.append([out[i] for i in keep])
        n = writers.write_csv(self.inbox / MIS_A / name, [h[i] for i in keep], rows, encoding="cp1252", crlf=True)
        self.result.new_files.append((MIS_A, "attendance", name, n))
        self.result.expected.append(Expected(MIS_A, name, None, "mark", "missing_column"))
        self.result.expected += [Expected(MIS_A, name, k, "", "missing_column") for k in range(1, n + 1)]

    # -- layout B attendance --------------------------------------------------------------------
    def mis_b(self, schools: list[School]) -> None:
        h = {name: i for i, name in enumerate(writers.MIS_B_ATTENDANCE)}
        date_col = h["Session Date"]
        for kind, fld in (("bad_date", "session_date"), ("bad_session", "session")):
            chosen = self.attendance_file(schools)
            if chosen is None:
                return
            _, day, ex = chosen
            found = self.model(ex, day.isoformat(), date_col)
            if found is None:
                continue
            fields = list(found[1])
            weekend = _weekend_before(day, self.rng)
            fields[h["Minutes Late"]] = ""
            if kind == "bad_date":            # a UK date typed into an ISO column
                fields[date_col] = f"{weekend:%d/%m/%Y}"
            else:
                fields[date_col], fields[h["Session"]] = weekend.isoformat(), "Evening"
            ex.insert(self.rng, ex.encode(fields), kind, fld)

    # -- social care and CAMHS ------------------------------------------------------------------
    def episodes(self, as_of_day: dt.date) -> None:
        path = self.inbox / "social_care" / f"sc_episodes_{as_of_day:%Y%m%d}.csv"
        if not path.exists():
            return
        ex = self.extract(path, "social_care", "sc_episodes", "utf-8")
        rows = ex.original()
        if not rows:
            return
        serial = max(int(ex.fields(r)[1][2:]) for r in rows)
        start = as_of_day - dt.timedelta(days=self.rng.randrange(20, 200))
        for n, (kind, fld, episode_type, start_text) in enumerate((
                ("bad_episode_type", "episode_type", "XYZ", start.isoformat()),
                ("bad_date", "start_date", "CIN", "2025-02-29"))):
            person = ex.fields(rows[self.rng.randrange(len(rows))])[0]
            line = ex.encode([person, f"EP{serial + n + 1:07d}", episode_type, start_text, "", ""])
            ex.insert(self.rng, line, kind, fld)

    def camhs(self, as_of_day: dt.date) -> None:
        path = self.inbox / "camhs" / f"camhs_referrals_{as_of_day:%Y%m%d}.csv"
        if not path.exists():
            return
        ex = self.extract(path, "camhs", "camhs_referrals", "utf-8")
        h = {name: i for i, name in enumerate(writers.CAMHS_REFERRALS)}
        rows = ex.original()
        if not rows:
            return
        serial = max(int(ex.fields(r)[h["ReferralID"]][2:]) for r in rows)
        fields = list(ex.fields(rows[self.rng.randrange(len(rows))]))
        fields[h["ReferralID"]] = f"CR{serial + 1:07d}"
        fields[h["ReferralReceivedDate"]] = (as_of_day - dt.timedelta(days=self.rng.randrange(3, 30))).isoformat()
        fields[h["ReferralStatus"]], fields[h["DischargeDate"]] = "pending", ""
        ex.insert(self.rng, ex.encode(fields), "bad_referral_status", "referral_status")

    def camhs_data_quality(self, as_of_day: dt.date) -> None:
        """Closed referrals of real patients (new ids, no NHS number) with a placeholder name or a
        date of birth that cannot be the child's (a parent's, a due date): staged, each with a
        data-quality issue."""
        path = self.inbox / "camhs" / f"camhs_referrals_{as_of_day:%Y%m%d}.csv"
        if not path.exists():
            return
        ex = self.extract(path, "camhs", "camhs_referrals", "utf-8")
        h = {name: i for i, name in enumerate(writers.CAMHS_REFERRALS)}
        rows = ex.original()
        if not rows:
            return
        serial = max(int(ex.fields(r)[h["ReferralID"]][2:]) for r in ex.rows)     # ids after every other
        parent = dt.date(as_of_day.year - self.rng.randrange(30, 45), self.rng.randrange(1, 13), self.rng.randrange(1, 29))
        due = as_of_day + dt.timedelta(days=self.rng.randrange(20, 300))     # a due date typed as the birth date
        plants = (("placeholder_name", "forename", {"GivenName": "Baby"}),
                  ("placeholder_name", "surname", {"FamilyName": self.rng.choice(("Xxx", "Anon", "TBC"))}),
                  ("implausible_dob", "dob", {"BirthDate": parent.isoformat()}),
                  ("implausible_dob", "dob", {"BirthDate": due.isoformat()}))
        for n, (kind, fld, changes) in enumerate(plants, start=1):
            fields = list(ex.fields(rows[self.rng.randrange(len(rows))]))
            received = as_of_day - dt.timedelta(days=self.rng.randrange(400, 800))
            fields[h["NHSNumber"]] = ""
            fields[h["ReferralID"]] = f"CR{serial + n:07d}"
            fields[h["ReferralReceivedDate"]] = received.isoformat()
            fields[h["ReferralStatus"]] = "closed"
            fields[h["DischargeDate"]] = (received + dt.timedelta(days=self.rng.randrange(30, 90))).isoformat()
            for column, value in changes.items():
                fields[h[column]] = value
            ex.insert(self.rng, ex.encode(fields), kind, fld, staged=True)

    def finish(self) -> BadInput:
        for ex in self.extracts.values():
            planted = ex.planted()
            if planted:
                key = (ex.source_id, ex.feed)
                self.result.added_rows[key] = self.result.added_rows.get(key, 0) + planted
                expected, issues = ex.save()
                self.result.expected += expected
                self.result.issues += issues
        return self.result


def plant_bad_input(rng: random.Random, inbox: Path, schools: list[School], as_of_day: dt.date) -> BadInput:
    """Add realistic bad rows and one file to refuse to the feeds under `inbox` (see the module
    docstring); returns what the pipeline must quarantine. Kinds with no suitable file (e.g. no
    layout-B school) are skipped."""
    planter = _Planter(rng, inbox)
    planter.mis_a([s for s in schools if s.source_id == MIS_A], as_of_day)
    planter.mis_b([s for s in schools if s.source_id == MIS_B])
    planter.episodes(as_of_day)
    planter.camhs(as_of_day)
    planter.camhs_data_quality(as_of_day)
    return planter.finish()

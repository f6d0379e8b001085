"""Seed `tether_mis`: a hosted school MIS database in an MIS-like schema, for the ODBC connector.

Tables `mis_pupils` and `mis_marks` hold several schools (school column `laestab`), each row with a
`last_modified timestamptz` watermark, as a hosted MIS would. The rows come from the synthetic
LA (`synthetic.generate.generate_la`, the schools exporting in layout mis-a) when it is importable,
otherwise from a small built-in generator. Registers are saved a class at a time, so many marks
share one `last_modified` — the ties the connector must not split.

Idempotent: a second run with the same seed and the same generator code changes nothing; a change
to the generator (`synthetic/`, the built-in layouts, this script) or the seed reseeds (`mis_seed`).
Usage: python infra/seed_mis.py [--dsn "host=127.0.0.1 port=5432 user=postgres dbname=tether_mis"]
       [--seed 20260901] [--force]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import random
import re
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2

from schemas.config import load_config

LONDON = ZoneInfo("Europe/London")
AS_OF = dt.datetime(2026, 11, 27, 16, 0, tzinfo=LONDON)
TERM_START = dt.date(2026, 9, 3)

SCHEMA = """
DROP TABLE IF EXISTS mis_marks, mis_pupils, mis_seed;
CREATE TABLE mis_pupils (
    laestab char(7) NOT NULL,
    pupil_id text NOT NULL,
    upn text,
    legal_surname text,
    legal_forename text,
    preferred_forename text,
    dob date,
    sex varchar(1),
    postcode text,
    year_group text,
    admission_date date,
    leaving_date date,
    sen_provision varchar(1),
    fsm_eligible boolean,
    last_modified timestamptz NOT NULL,
    PRIMARY KEY (laestab, pupil_id)
);
CREATE TABLE mis_marks (
    laestab char(7) NOT NULL,
    pupil_id text NOT NULL,
    session_date date NOT NULL,
    session varchar(2) NOT NULL,
    mark varchar(2) NOT NULL,
    minutes_late integer,
    last_modified timestamptz NOT NULL,
    PRIMARY KEY (laestab, pupil_id, session_date, session)
);
CREATE INDEX mis_marks_last_modified ON mis_marks (last_modified);
CREATE INDEX mis_pupils_last_modified ON mis_pupils (last_modified);
CREATE TABLE mis_seed (generator text NOT NULL, seed integer NOT NULL, fingerprint text NOT NULL,
                       pupils integer NOT NULL, marks integer NOT NULL, seeded_at timestamptz NOT NULL);
"""

PUPIL_COLUMNS = ("laestab", "pupil_id", "upn", "legal_surname", "legal_forename", "preferred_forename", "dob",
                 "sex", "postcode", "year_group", "admission_date", "leaving_date", "sen_provision",
                 "fsm_eligible", "last_modified")
MARK_COLUMNS = ("laestab", "pupil_id", "session_date", "session", "mark", "minutes_late", "last_modified")


# -- from the synthetic LA (layout mis-a files) ------------------------------------------------

def from_synthetic(seed: int) -> tuple[list[dict], list[dict]] | None:
    """Pupils and marks of the synthetic LA's mis-a schools, or None when it is not available."""
    try:
        from synthetic.generate import generate_la
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            try:
                generate_la(tmp, seed=seed, n_schools=4, n_pupils=600, as_of=AS_OF)
            except TypeError:
                generate_la(tmp, seed=seed, n_schools=4, n_pupils=600, as_of=AS_OF.date())
        except Exception as exc:  # the generator is optional here: fall back, but say why
            print(f"seed_mis: synthetic.generate.generate_la failed ({type(exc).__name__}); "
                  "using the built-in generator", file=sys.stderr)
            return None
        folder = Path(tmp) / "inbox" / "school_mis_a"
        if not folder.is_dir():
            print("seed_mis: the synthetic LA has no inbox/school_mis_a; using the built-in generator",
                  file=sys.stderr)
            return None
        config = load_config()
        pupils = _read_pupils(folder, config.layout("mis-a-pupils"))
        marks = _read_marks(folder, config.layout("mis-a"))
    if not marks:
        return None
    return pupils, marks


def _file_time(layout, name: str) -> dt.datetime | None:
    groups = layout.parse_filename(name)
    if not groups:
        return None
    day = dt.datetime.strptime(groups["extract_date"], "%Y%m%d")
    hhmm = groups.get("extract_time") or "1800"
    return day.replace(hour=int(hhmm[:2]), minute=int(hhmm[2:]), tzinfo=LONDON)


def _rows(layout, path: Path):
    with path.open(encoding=layout.encoding, newline="") as handle:
        yield from csv.DictReader(handle, delimiter=layout.delimiter)


def _date(layout, text: str | None) -> dt.date | None:
    try:
        return dt.datetime.strptime(text.strip(), layout.date_format).date() if text and text.strip() else None
    except ValueError:
        return None


def _read_pupils(folder: Path, layout) -> list[dict]:
    col = layout.columns
    files = sorted((t, p) for p in folder.glob("*_pupils_*.csv") if (t := _file_time(layout, p.name)))
    pupils: dict[tuple, dict] = {}
    for stamp, path in files:
        laestab = layout.parse_filename(path.name)["laestab"]
        for row in _rows(layout, path):
            get = lambda f: (row.get(col[f]) or "").strip() or None  # noqa: E731
            if not get("school_pupil_id"):
                continue
            fsm = (get("fsm_eligible") or "").upper()
            record = {
                "laestab": laestab, "pupil_id": get("school_pupil_id"), "upn": get("upn"),
                "legal_surname": get("surname"), "legal_forename": get("forename"),
                "preferred_forename": get("preferred_forename"), "dob": _date(layout, get("dob")),
                "sex": (get("sex") or "")[:1] or None, "postcode": get("postcode"),
                "year_group": get("year_group"), "admission_date": _date(layout, get("admission_date")),
                "leaving_date": _date(layout, get("leaving_date")),
                "sen_provision": (get("sen_provision") or "")[:1] or None,
                "fsm_eligible": {"Y": True, "1": True, "TRUE": True, "N": False, "0": False,
                                 "FALSE": False}.get(fsm),
            }
            key = (laestab, record["pupil_id"])
            old = pupils.get(key)
            if old is None or {k: v for k, v in old.items() if k != "last_modified"} != record:
                record["last_modified"] = stamp + dt.timedelta(seconds=len(pupils) % 600)
                pupils[key] = record
    return list(pupils.values())


def _read_marks(folder: Path, layout) -> list[dict]:
    col = layout.columns
    sessions = {label: code for code, label in layout.sessions.items()}
    files = sorted((t, p) for p in folder.glob("*_attendance_*.csv") if (t := _file_time(layout, p.name)))
    marks: dict[tuple, dict] = {}
    for stamp, path in files:
        laestab = layout.parse_filename(path.name)["laestab"]
        for row in _rows(layout, path):
            day = _date(layout, row.get(col["session_date"]))
            session = sessions.get((row.get(col["session"]) or "").strip())
            pupil = (row.get(col["school_pupil_id"]) or "").strip()
            mark = (row.get(col["mark"]) or "")[:2]
            if not (day and session and pupil and mark):
                continue
            late = (row.get(col.get("minutes_late", ""), "") or "").strip()
            key = (laestab, pupil, day, session)
            record = {"laestab": laestab, "pupil_id": pupil, "session_date": day, "session": session,
                      "mark": mark, "minutes_late": int(late) if late.isdigit() else None}
            old = marks.get(key)
            if old is None:
                reg = (row.get(col.get("reg_group", ""), "") or "")
                record["last_modified"] = _register_saved(day, session, reg)
            elif (old["mark"], old["minutes_late"]) != (record["mark"], record["minutes_late"]):
                record["last_modified"] = max(stamp, old["last_modified"] + dt.timedelta(minutes=1))
            else:
                continue
            marks[key] = record
    return list(marks.values())


def _register_saved(day: dt.date, session: str, group: str) -> dt.datetime:
    """When a class's register was saved: a few minutes after the session starts, same for the class."""
    start = dt.time(8, 40) if session == "AM" else dt.time(13, 15)
    offset = sum(map(ord, group)) % 17
    return dt.datetime.combine(day, start, LONDON) + dt.timedelta(minutes=offset, seconds=offset * 3)


# -- the built-in generator ----------------------------------------------------------------------

_FORENAMES = ("Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Leo", "Freya", "Arthur", "Zara",
              "Muhammad", "Ivy", "Theo", "Grace", "Jack", "Aisha", "Oscar", "Lily", "Harry")
_SURNAMES = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Khan",
             "Robinson", "Wright", "Thompson", "Evans", "Walker", "O'Brien", "Hughes", "Green", "Ahmed", "Clarke")
_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def _upn(rng: random.Random, la: str) -> str:
    body = la + f"{rng.randrange(10**9):09d}"
    check = sum(int(d) * w for d, w in zip(body, range(2, 14))) % 23
    return _UPN_LETTERS[check] + body


def builtin(seed: int, n_schools: int = 3, pupils_per_school: int = 60) -> tuple[list[dict], list[dict]]:
    """A small hosted MIS: a few schools, a term of registers to AS_OF, with some later corrections."""
    rng = random.Random(seed)
    calendar = load_config().calendar
    pupils, marks = [], []
    for s in range(n_schools):
        laestab = f"999{2001 + s:04d}"
        classes = [f"{y}{c}" for y in range(3, 7) for c in "AB"]
        for p in range(pupils_per_school):
            group = classes[p % len(classes)]
            year = int(group[0])
            pupil_id = f"{1000 + p}"
            forename = rng.choice(_FORENAMES)
            pupils.append({
                "laestab": laestab, "pupil_id": pupil_id, "upn": _upn(rng, "999"),
                "legal_surname": rng.choice(_SURNAMES), "legal_forename": forename,
                "preferred_forename": forename[:3] if rng.random() < 0.1 else None,
                "dob": dt.date(2026 - year - 5, 9, 1) + dt.timedelta(days=rng.randrange(365)),
                "sex": rng.choice("MF"), "postcode": f"ZZ{rng.randrange(1, 99)} {rng.randrange(1, 9)}XX",
                "year_group": str(year), "admission_date": dt.date(2026 - year + 1, 9, 3),
                "leaving_date": None, "sen_provision": rng.choices("NKE", (85, 12, 3))[0],
                "fsm_eligible": rng.random() < 0.2,
                "last_modified": dt.datetime(2026, 9, 2, 7, 0, tzinfo=LONDON) + dt.timedelta(seconds=p),
            })
            absentee = rng.random() < 0.15
            for day in calendar.school_days(laestab, TERM_START, AS_OF.date()):
                for session in ("AM", "PM"):
                    roll = rng.random()
                    mark, late = "/" if session == "AM" else "\\", None
                    if roll < (0.18 if absentee else 0.04):
                        mark = rng.choice("NIOMCGU")
                    elif roll < 0.07:
                        mark, late = "L", rng.randrange(1, 25)
                    saved = _register_saved(day, session, group)
                    if mark == "N" and rng.random() < 0.5:     # reason arrives later: corrected
                        mark = rng.choice("IM")
                        saved = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(10, 5), LONDON)
                    marks.append({"laestab": laestab, "pupil_id": pupil_id, "session_date": day,
                                  "session": session, "mark": mark, "minutes_late": late,
                                  "last_modified": saved})
    return pupils, marks


# -- loading ---------------------------------------------------------------------------------------

def _copy(cur, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["\\N" if row[c] is None else row[c] for c in columns])
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)


def generator_fingerprint(generator: str) -> str:
    """sha256 over the code that makes the seed: this script and, for the synthetic LA, every module
    of `synthetic/` and the built-in layouts it writes through. Any change to them reseeds."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    if generator != "builtin":
        import schemas
        import synthetic
        roots = [Path(synthetic.__file__).parent, Path(schemas.__file__).parent / "defaults"]
        for path in sorted(p for root in roots for p in root.rglob("*") if p.suffix in (".py", ".toml")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def seeded(cur, generator: str, seed: int, fingerprint: str) -> bool:
    """True when the database holds a seed from this generator, seed and generator code."""
    cur.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'mis_seed' "
                "AND column_name = 'fingerprint'")
    if not cur.fetchone()[0]:       # no seed yet, or one from a version that kept no fingerprint
        return False
    cur.execute("SELECT count(*) FROM mis_seed WHERE generator = %s AND seed = %s AND fingerprint = %s",
                (generator, seed, fingerprint))
    return cur.fetchone()[0] == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=tether_mis")
    parser.add_argument("--seed", type=int, default=20260901)
    parser.add_argument("--force", action="store_true", help="reseed even when already seeded")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[\w =.:/-]+", args.dsn):
        parser.error("--dsn: unexpected characters")

    try:
        from synthetic.generate import generate_la  # noqa: F401
        generator = "synthetic.generate_la"
    except ImportError:
        generator = "builtin"
    conn = psycopg2.connect(args.dsn)
    try:
        with conn, conn.cursor() as cur:
            if seeded(cur, generator, args.seed, generator_fingerprint(generator)) and not args.force:
                cur.execute("SELECT pupils, marks FROM mis_seed")
                pupils_n, marks_n = cur.fetchone()
                print(f"seed_mis: already seeded ({generator}, seed {args.seed}: {pupils_n} pupils, "
                      f"{marks_n} marks)")
                return 0
        data = from_synthetic(args.seed) if generator != "builtin" else None
        if data is None:
            generator, data = "builtin", builtin(args.seed)
            with conn, conn.cursor() as cur:
                if seeded(cur, generator, args.seed, generator_fingerprint(generator)) and not args.force:
                    print(f"seed_mis: already seeded (builtin, seed {args.seed})")
                    return 0
        pupils, marks = data
        with conn, conn.cursor() as cur:       # one transaction: a failed seed leaves the old one
            cur.execute(SCHEMA)
            _copy(cur, "mis_pupils", PUPIL_COLUMNS, pupils)
            _copy(cur, "mis_marks", MARK_COLUMNS, marks)
            cur.execute("INSERT INTO mis_seed VALUES (%s, %s, %s, %s, %s, now())",
                        (generator, args.seed, generator_fingerprint(generator), len(pupils), len(marks)))
        print(f"seed_mis: seeded tether_mis from {generator} (seed {args.seed}): {len(pupils)} pupils, "
              f"{len(marks)} marks")
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

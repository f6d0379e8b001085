"""A local authority's year of attendance at real size, generated fast (numpy, one pass over the days).

`synthetic.generate` builds each pupil and mark in Python with the scenarios the tests need
(movers, adoptions, planted bad input, ground truth); at an LA's size (300 schools, 150,000
pupils, 190 days: 57 million marks) that takes hours. This generator draws every pupil's marks
for a day at once and writes each file's rows as one block of bytes, so a year takes minutes. It
writes what a benchmark needs and no more:

- out_dir/inbox/school_mis_a/: one nightly file per school per school day in MIS layout A
  (`<laestab>_attendance_<yyyymmdd>.csv`, Windows-1252, CRLF, dd/mm/yyyy), as `synthetic.generate`
  writes them: the day's marks as first recorded, then the corrections made that day to earlier
  days (an `N` replaced by the real reason one to four school days later; a few never are);
- out_dir/inbox/social_care/: a case-management extract naming the children with a social worker
  (about 4 % of pupils, open CIN episodes, some CPP or CLA inside, an allocated worker each), so
  cohorts and flags have work to do; the other sources of sources.toml get empty folders;
- out_dir/config/: sources.toml, schools.toml and calendar.toml (`synthetic.writers.write_config`);
- out_dir/held/day/ and out_dir/held/tick/: the files of the next school day (all schools) and one
  school's intraday morning file of the day after (`..._<yyyymmdd>T0930.csv`), held back for a
  caller to drop into the inbox later.

Every pupil is on roll all year in one school (no movers, no bad rows: every row stages).
The code mix: a pupil is persistently absent with probability about 0.2 and severely absent
with about 0.02 (DfE 2024); absences come as spells of whole days (illness I, unauthorised O,
term-time holiday G, exceptional leave C, religious observance R) and single sessions (medical M,
late after the register closed U, with minutes); L (late before the register closed) is present;
suspensions E then alternative provision B/K; part-time timetables (C2 in the afternoons); LA
arranged provision K or B one day a week; dual registration D one day a week; class trips V;
sport P; a work-experience week W for year 10; the phased start of Reception (X in the first
afternoons); school closures (#) and a snow day's travel disruption (Y2) at a few schools.
The same arguments write byte-identical files.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from schemas.calendar import SchoolCalendar, academic_year_start
from schemas.config import load_config
from synthetic import people, writers
from synthetic.generate import SOURCES
from synthetic.schools import MIS_A, School, make_schools
from synthetic.social_care import TEAMS

# Codes this generator writes; a mark is an index into this tuple.
CODES = ("/", "\\", "L", "I", "M", "O", "G", "N", "U", "C", "R", "E", "C2", "B", "K", "V", "P", "W",
         "D", "X", "Y2", "#")
_C = {code: i for i, code in enumerate(CODES)}
AM_PRESENT, PM_PRESENT = _C["/"], _C["\\"]
SESSION_LABELS = ("AM", "PM")
INTRADAY_TIME = "0930"
NO_MINUTES = -1
_MAX_MINUTES = 80
_HEADER = (",".join(writers.MIS_A_ATTENDANCE) + "\r\n").encode("cp1252")

NORMAL, PERSISTENT, SEVERE = 0, 1, 2
# (probability of the profile, absence-rate range); the rest of the pupils are NORMAL.
_PROFILES = {SEVERE: (0.02, (0.52, 0.85)), PERSISTENT: (0.15, (0.11, 0.28))}
# Whole-day spells by profile: (code, shortest, longest, weight).
_SPELLS = {
    NORMAL: (("I", 1, 3, 0.70), ("O", 1, 1, 0.08), ("G", 3, 5, 0.08), ("C", 1, 1, 0.07), ("R", 1, 1, 0.07)),
    PERSISTENT: (("I", 1, 3, 0.50), ("O", 1, 2, 0.30), ("G", 3, 5, 0.12), ("C", 1, 1, 0.08)),
    SEVERE: (("O", 1, 4, 0.60), ("I", 1, 3, 0.35), ("G", 3, 5, 0.05)),
}
# Single-session events on a day the pupil is in school: probability per session by profile.
_MEDICAL = (0.004, 0.008, 0.008)
_LATE_AFTER_CLOSE = (0.002, 0.012, 0.02)     # U, AM only
_LATE = (0.015, 0.05, 0.05)                  # L, AM only
_PLACEHOLDER = {"I": 0.2, "O": 0.35}         # absences first sent as N
_NEVER_CORRECTED = 0.05                      # of O placeholders


@dataclass
class ScaleLA:
    """What was written: folders, schools, days and row counts (no identities)."""

    out_dir: Path
    inbox_dir: Path
    config_dir: Path
    held_dir: Path
    schools: list[School]
    days: list[dt.date]                  # the school days in the inbox
    extra_day: dt.date | None            # held/day: every school's nightly file of this day
    tick_day: dt.date | None             # held/tick: one school's intraday file of this day
    tick_school: str | None
    n_pupils: int
    marks: int = 0                       # sessions in the inbox: pupils x days x 2
    correction_rows: int = 0             # rows re-sending an earlier session with its real reason
    files: int = 0                       # attendance files in the inbox
    held_rows: dict[str, int] = field(default_factory=dict)   # "day", "tick" -> rows
    held_files: dict[str, list[Path]] = field(default_factory=dict)
    cwsw: int = 0                        # pupils with an open social-care episode
    code_counts: dict[str, int] = field(default_factory=dict)  # first-recorded marks in the inbox

    @property
    def rows(self) -> int:
        """Data rows of the inbox's attendance files."""
        return self.marks + self.correction_rows

    @property
    def attendance_dir(self) -> Path:
        return self.inbox_dir / MIS_A


@dataclass
class _Roll:
    """Every pupil, sorted by school; identity only as the bytes that open each file row."""

    school: np.ndarray          # index into schools
    bounds: np.ndarray          # pupils of school k: bounds[k]:bounds[k+1]
    prefix: np.ndarray          # S: "Adno,UPN,Surname,Forename,DOB,Gender,Reg Group," in cp1252
    year: np.ndarray            # year group offset (R = 0)
    reg: np.ndarray             # registration group id, unique across the LA
    secondary: np.ndarray       # bool
    upn: list[str]
    names: list[tuple[str, str, dt.date, str]]   # forename, surname, dob, sex (social care needs them)


def upn_check_letters(bodies: np.ndarray) -> np.ndarray:
    """Check letters of 12-digit UPN bodies (an (n, 12) array of digits): the sum of each digit
    times its position in the UPN (2..13), mod 23, in the DfE alphabet (docs/dfe-rules.md#identifiers)."""
    weights = np.arange(2, 14)
    alphabet = np.frombuffer(people.UPN_ALPHABET.encode(), dtype="S1")
    return alphabet[(bodies * weights).sum(axis=1) % 23]


def _scale_schools(rng: random.Random, n_schools: int) -> list[School]:
    """`synthetic.schools.make_schools`, every school exporting MIS layout A."""
    if n_schools > 1500:
        raise ValueError("at most 1500 schools (establishment numbers 2000-2999 and 4000-5999)")
    return [dataclasses.replace(s, source_id=MIS_A, pupil_id_style="adno") for s in make_schools(rng, n_schools)]


def _school_sizes(schools: list[School], n_pupils: int) -> np.ndarray:
    """Pupils per school: a secondary is two and a half times a primary."""
    weights = np.array([2.5 if s.phase == "secondary" else 1.0 for s in schools])
    sizes = np.floor(n_pupils * weights / weights.sum()).astype(np.int64)
    sizes[np.arange(n_pupils - sizes.sum()) % len(schools)] += 1
    return sizes


def _build_roll(rng: np.random.Generator, schools: list[School], n_pupils: int, academic_year: int) -> _Roll:
    sizes = _school_sizes(schools, n_pupils)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    school = np.repeat(np.arange(len(schools)), sizes)
    secondary = np.array([s.phase == "secondary" for s in schools])[school]
    year = np.where(secondary, rng.integers(7, 12, n_pupils), rng.integers(0, 7, n_pupils))
    sex = np.where(rng.random(n_pupils) < 0.5, "M", "F")
    boys, girls, surnames = np.array(people.BOYS), np.array(people.GIRLS), np.array(people.SURNAMES)
    forename = np.where(sex == "M", boys[rng.integers(len(boys), size=n_pupils)],
                        girls[rng.integers(len(girls), size=n_pupils)])
    surname = surnames[rng.integers(len(surnames), size=n_pupils)]
    # Year group N: aged N + 4 on 31 August at the start of the academic year.
    first_dob = np.array([dt.date(academic_year - y - 5, 9, 1).toordinal() for y in range(12)])
    dob_ord = first_dob[year] + rng.integers(0, 365, n_pupils)
    dobs = [dt.date.fromordinal(int(d)) for d in dob_ord]
    # Registration groups of about 30 (letters A..K), numbered across the LA.
    group = school * 16 + year
    _, group_index, group_size = np.unique(group, return_inverse=True, return_counts=True)
    forms = np.clip(np.ceil(group_size / 30).astype(int), 1, 10)[group_index]
    form = rng.integers(0, 1 << 30, n_pupils) % forms
    reg = group * 10 + form
    # Admission numbers: increasing within a school from a random start.
    adno = np.empty(n_pupils, dtype=np.int64)
    for k in range(len(schools)):
        a, b = bounds[k], bounds[k + 1]
        adno[a:b] = rng.integers(1000, 3000) + np.cumsum(rng.integers(1, 3, b - a))
    # UPN: LA, the school's establishment number, the year the pupil started Reception, a serial.
    entry = np.array([d.year + 5 if d.month >= 9 else d.year + 4 for d in dobs]) % 100
    key = school * 100 + entry
    order = np.argsort(key, kind="stable")
    ranks = np.empty(n_pupils, dtype=np.int64)
    sorted_key = key[order]
    starts = np.searchsorted(sorted_key, sorted_key, side="left")
    ranks[order] = np.arange(n_pupils) - starts
    serial = ranks + 1
    if serial.max() > 999:
        raise ValueError("too many pupils per school and year for 3-digit UPN serials; use more schools")
    estab = np.array([int(s.estab) for s in schools])[school]
    digits = np.stack([np.full(n_pupils, int(c)) for c in people.LA_NUMBER]
                      + [estab // 10 ** p % 10 for p in (3, 2, 1, 0)]
                      + [entry // 10, entry % 10]
                      + [serial // 10 ** p % 10 for p in (2, 1, 0)], axis=1)
    checks = upn_check_letters(digits)
    upn = [f"{c.decode()}{people.LA_NUMBER}{e:04d}{y:02d}{k:03d}"
           for c, e, y, k in zip(checks.tolist(), estab.tolist(), entry.tolist(), serial.tolist())]
    letters = "ABCDEFGHJK"
    year_label = ["R"] + [str(y) for y in range(1, 12)]
    prefix = np.array([
        f"{a:06d},{u},{sn},{fn},{d:%d/%m/%Y},{s},{year_label[y]}{letters[f]},".encode("cp1252")
        for a, u, sn, fn, d, s, y, f in zip(adno.tolist(), upn, surname.tolist(), forename.tolist(), dobs,
                                             sex.tolist(), year.tolist(), form.tolist())])
    names = list(zip(forename.tolist(), surname.tolist(), dobs, sex.tolist()))
    return _Roll(school, bounds, prefix, year, reg, secondary, upn, names)


def _spell_tables():
    """Per profile: cumulative weights, codes, shortest and longest spell; and the mean length."""
    tables = {}
    for profile, spells in _SPELLS.items():
        w = np.array([s[3] for s in spells])
        tables[profile] = (np.cumsum(w / w.sum()), np.array([_C[s[0]] for s in spells]),
                           np.array([s[1] for s in spells]), np.array([s[2] for s in spells]),
                           float(((np.array([s[1] for s in spells]) + [s[2] for s in spells]) / 2 * w).sum() / w.sum()))
    return tables


class _Year:
    """The pupils' fixed traits and running state; `day(d)` draws day d's marks for everyone."""

    def __init__(self, rng: np.random.Generator, roll: _Roll, days: list[dt.date], n_schools: int):
        self.rng, self.roll, self.days = rng, roll, days
        n = len(roll.school)
        self.n = n
        u = rng.random(n)
        profile = np.full(n, NORMAL)
        p_sa, sa_rates = _PROFILES[SEVERE]
        p_pa, pa_rates = _PROFILES[PERSISTENT]
        profile[u < p_sa] = SEVERE
        profile[(u >= p_sa) & (u < p_sa + p_pa)] = PERSISTENT
        rate = np.where(rng.random(n) < 0.35, rng.uniform(0.0, 0.02, n), rng.uniform(0.02, 0.075, n))
        rate = np.where(profile == PERSISTENT, rng.uniform(*pa_rates, n), rate)
        rate = np.where(profile == SEVERE, rng.uniform(*sa_rates, n), rate)
        self.profile = profile
        self.tables = _spell_tables()
        mean_len = np.array([self.tables[p][4] for p in (NORMAL, PERSISTENT, SEVERE)])[profile]
        single = np.array(_MEDICAL)[profile] + np.array(_LATE_AFTER_CLOSE)[profile] / 2
        spell_share = np.clip(rate - single, 0.0, 0.95)
        # A spell starts on a free day with probability q: the share of days in spells is q L / (1 + q L).
        self.start_p = np.clip(spell_share / (mean_len * (1 - spell_share)), 0.0, 0.98)
        self.left = np.zeros(n, dtype=np.int64)
        self.spell = np.zeros(n, dtype=np.int64)
        n_days = len(days)
        never = n_days + 10
        secondary = roll.secondary
        # Suspension: E for up to five days, then alternative provision (B or K).
        suspended = rng.random(n) < np.where(secondary, 0.03, 0.005) * np.where(profile == NORMAL, 1, 3)
        self.susp_start = np.where(suspended, rng.integers(0, n_days, n), never)
        self.susp_len = np.where(rng.random(n) < 0.1, rng.integers(6, 9, n), rng.integers(1, 4, n))
        self.susp_ap = np.where(rng.random(n) < 0.5, _C["B"], _C["K"])
        # Part-time timetable: afternoons C2 from some day on.
        part_time = rng.random(n) < np.where(profile == NORMAL, 0.001, 0.01)
        self.part_time_from = np.where(part_time, rng.integers(0, max(1, n_days // 2), n), never)
        # LA-arranged (K) or other approved (B) provision one weekday a week: some secondary pupils.
        self.ap_weekday = np.where(secondary & (rng.random(n) < 0.01), rng.integers(0, 5, n), -1)
        self.ap_code = np.where(rng.random(n) < 0.67, _C["K"], _C["B"])
        # Dual registration: at the other school one weekday a week.
        self.dual_weekday = np.where(rng.random(n) < 0.002, rng.integers(0, 5, n), -1)
        # Reception's phased start: afternoons X in the first school week.
        self.reception = roll.year == 0
        # Work experience: one week for year 10 at each secondary school.
        self.work_week = rng.integers(0, max(1, n_days - 5), n_schools)
        # Whole-school closures (#) and a snow day of travel disruption (Y2), at a few schools.
        closures = max(1, n_schools // 10)
        self.closed = set(zip(rng.integers(0, n_schools, closures).tolist(),
                              rng.integers(0, n_days, closures).tolist()))
        snow = max(1, n_schools // 20)
        self.snow = set(zip(rng.integers(0, n_schools, snow).tolist(), rng.integers(0, n_days, snow).tolist()))
        self.n_regs = int(roll.reg.max()) + 1

    def _start_spells(self, free: np.ndarray) -> None:
        rng, n = self.rng, self.n
        starting = free & (rng.random(n) < self.start_p)
        u = rng.random(n)
        for p, (cum, codes, lo, hi, _) in self.tables.items():
            who = starting & (self.profile == p)
            k = np.minimum(np.searchsorted(cum, u[who], side="right"), len(codes) - 1)
            self.spell[who] = codes[k]
            self.left[who] = rng.integers(lo[k], hi[k] + 1)

    def day(self, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(AM codes, PM codes, AM minutes late, PM minutes late) of school day index d."""
        rng, n, roll = self.rng, self.n, self.roll
        weekday = self.days[d].weekday()
        am = np.full(n, AM_PRESENT)
        pm = np.full(n, PM_PRESENT)
        am_min = np.full(n, NO_MINUTES)
        pm_min = np.full(n, NO_MINUTES)          # afternoon lates are not drawn
        self._start_spells(self.left == 0)
        away = self.left > 0
        am[away] = self.spell[away]
        pm[away] = self.spell[away]
        self.left[away] -= 1
        here_am, here_pm = ~away, ~away
        # class trips (V) and sport (P)
        trip = rng.random(self.n_regs) < 0.004
        on_trip = trip[roll.reg] & here_am
        am[on_trip], pm[on_trip] = _C["V"], _C["V"]
        sport = here_pm & ~on_trip & (rng.random(n) < 0.002)
        pm[sport] = _C["P"]
        here = here_am & ~on_trip
        # single sessions: medical (M), late after the register closed (U), late before it closed (L)
        u = rng.random(n)
        medical = here & (u < np.array(_MEDICAL)[self.profile])
        medical_am = medical & (rng.random(n) < 0.5)
        am[medical_am] = _C["M"]
        pm[medical & ~medical_am & (pm == PM_PRESENT)] = _C["M"]
        v = rng.random(n)
        p_u = np.array(_LATE_AFTER_CLOSE)[self.profile]
        after = here & (am == AM_PRESENT) & (v < p_u)
        am[after] = _C["U"]
        am_min[after] = rng.integers(31, 76, int(after.sum()))
        late = here & (am == AM_PRESENT) & (v >= p_u) & (v < p_u + np.array(_LATE)[self.profile])
        am[late] = _C["L"]
        am_min[late] = rng.integers(1, 30, int(late.sum()))
        # timetabled: work experience, provision elsewhere, dual registration, part-time, Reception's start
        week = (d >= self.work_week[roll.school]) & (d < self.work_week[roll.school] + 5)
        work = here & roll.secondary & (roll.year == 10) & week
        am[work], pm[work] = _C["W"], _C["W"]
        ap = (self.ap_weekday == weekday) & (am == AM_PRESENT)
        am[ap], pm[ap] = self.ap_code[ap], self.ap_code[ap]
        dual = self.dual_weekday == weekday
        am[dual], pm[dual] = _C["D"], _C["D"]
        part_time = (d >= self.part_time_from) & (pm == PM_PRESENT)
        pm[part_time] = _C["C2"]
        if d < 5:
            pm[self.reception & (pm == PM_PRESENT)] = _C["X"]
        # suspensions override the day
        into = d - self.susp_start
        suspended = (into >= 0) & (into < self.susp_len)
        code = np.where(into < 5, _C["E"], self.susp_ap)
        am[suspended], pm[suspended] = code[suspended], code[suspended]
        # whole-school days: a closure, or travel disruption for a fifth of the pupils
        for k, day in self.snow:
            if day == d:
                a, b = roll.bounds[k], roll.bounds[k + 1]
                cut = np.arange(a, b)[rng.random(b - a) < 0.2]
                am[cut], pm[cut] = _C["Y2"], _C["Y2"]
        for k, day in self.closed:
            if day == d:
                a, b = roll.bounds[k], roll.bounds[k + 1]
                am[a:b], pm[a:b] = _C["#"], _C["#"]
        am_min[(am != _C["L"]) & (am != _C["U"])] = NO_MINUTES   # minutes only where still late
        return am, pm, am_min, pm_min


def _suffixes(day_text: str) -> np.ndarray:
    """Every "Date,Session,Mark,Minutes Late\\r\\n" of one day, indexed by `_suffix_key`."""
    out = []
    for session in SESSION_LABELS:
        for code in CODES:
            for minutes in range(NO_MINUTES, _MAX_MINUTES):
                late = "" if minutes == NO_MINUTES else str(minutes)
                out.append(f"{day_text},{session},{code},{late}\r\n".encode("ascii"))
    return np.array(out)


def _suffix_key(session: int | np.ndarray, code: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    return (session * len(CODES) + code) * (_MAX_MINUTES + 1) + (minutes + 1)


def _rows_bytes(lines: np.ndarray) -> bytes:
    """The lines of a fixed-width bytes array as one block (the padding is NUL bytes; rows hold none)."""
    return lines.tobytes().replace(b"\x00", b"")


class _Corrections:
    """Placeholder marks (N) and the later nightly file that sends each session's real reason."""

    def __init__(self):
        self.by_fix_day: dict[int, list[tuple[np.ndarray, int, int, np.ndarray]]] = {}

    def plant(self, rng: np.random.Generator, d: int, session: int, codes: np.ndarray, last_day: int) -> np.ndarray:
        """Replace some I and O of day d's session by N; returns the codes as first recorded."""
        first = codes.copy()
        for real, p in _PLACEHOLDER.items():
            who = np.flatnonzero((codes == _C[real]) & (rng.random(len(codes)) < p))
            if not len(who):
                continue
            first[who] = _C["N"]
            fix = d + rng.integers(1, 5, len(who))
            stands = fix > last_day
            if real == "O":
                stands |= rng.random(len(who)) < _NEVER_CORRECTED
            for f in np.unique(fix[~stands]).tolist():
                pupils = who[~stands & (fix == f)]
                self.by_fix_day.setdefault(f, []).append((pupils, d, session, np.full(len(pupils), _C[real])))
        return first

    def due(self, f: int) -> list[tuple[np.ndarray, int, int, np.ndarray]]:
        return self.by_fix_day.pop(f, [])


def _social_care(rng: np.random.Generator, folder: Path, roll: _Roll, profile: np.ndarray, day: dt.date) -> int:
    """Persons, open episodes and allocations for about 4 % of pupils (more of the absent ones)."""
    n = len(roll.school)
    p = np.array([0.025, 0.10, 0.25])[profile]
    who = np.flatnonzero(rng.random(n) < p)
    workers = [(f"W{i:03d}", f"{people.ADULT_FORENAMES[i % len(people.ADULT_FORENAMES)]} "
                f"{people.SURNAMES[(7 * i) % len(people.SURNAMES)]}", TEAMS[i % len(TEAMS)]) for i in range(40)]
    persons, episodes, allocations = [], [], []
    since = rng.integers(30, 720, len(who))
    kind = rng.random(len(who))
    for j, (i, days_ago, k) in enumerate(zip(who.tolist(), since.tolist(), kind.tolist())):
        person_id = f"P{100000 + j:07d}"
        forename, surname, dob, sex = roll.names[i]
        persons.append([person_id, roll.upn[i], "", forename, surname, dob.isoformat(), sex, "", "N"])
        start = day - dt.timedelta(days=days_ago)
        episodes.append([person_id, f"E{j:07d}1", "CIN", start.isoformat(), "", ""])
        if k < 0.25:
            episodes.append([person_id, f"E{j:07d}2", "CPP", (start + dt.timedelta(days=20)).isoformat(), "", ""])
        elif k < 0.35:
            episodes.append([person_id, f"E{j:07d}2", "CLA", (start + dt.timedelta(days=20)).isoformat(), "", "C2"])
        worker_id, name, (team_id, team_name) = workers[j % len(workers)]
        email = f"{name.lower().replace(' ', '.').replace(chr(39), '')}@children.example.gov.uk"
        allocations.append([person_id, worker_id, name, email, team_id, team_name, start.isoformat(), ""])
    stamp = f"{day:%Y%m%d}"
    writers.write_csv(folder / f"sc_persons_{stamp}.csv", writers.SC_PERSONS, persons)
    writers.write_csv(folder / f"sc_episodes_{stamp}.csv", writers.SC_EPISODES, episodes)
    writers.write_csv(folder / f"sc_allocations_{stamp}.csv", writers.SC_ALLOCATIONS, allocations)
    return len(who)


def school_days(calendar: SchoolCalendar, n_days: int, held: int) -> list[dt.date]:
    """The first `n_days + held` school days of the calendar's academic year."""
    first = min(t.start for t in calendar.terms)
    year_start = academic_year_start(first)
    days = calendar.school_days(None, first, dt.date(year_start.year + 1, 7, 31))
    if len(days) < n_days + held:
        raise ValueError(f"the calendar has {len(days)} school days in {year_start.year}/{year_start.year + 1 - 2000}; "
                         f"ask for at most {len(days) - held} days")
    return days[:n_days + held]


def generate_scale_la(out_dir: Path, *, n_schools: int = 300, n_pupils: int = 150_000, n_days: int = 190,
                      seed: int = 1, extra_day: bool = True, tick: bool = True,
                      calendar: SchoolCalendar | None = None,
                      progress: Callable[[str], None] | None = None) -> ScaleLA:
    """Write the LA into `out_dir` (see the module docstring) and say what was written.

    `n_days` school days go to the inbox from the first day of the calendar's first term; with
    `extra_day` the next school day's files go to held/day, with `tick` one school's intraday
    morning file of the school day after that to held/tick.
    """
    if n_schools < 1 or n_pupils < n_schools or n_days < 1:
        raise ValueError("need at least one school, one pupil per school and one day")
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    cal = calendar if calendar is not None else load_config().calendar
    held = int(extra_day) + int(tick)
    days = school_days(cal, n_days, held)
    rng = np.random.default_rng(seed)
    schools = _scale_schools(random.Random(seed), n_schools)
    first = days[0]
    academic_year = academic_year_start(first).year
    inbox, config_dir, held_dir = out_dir / "inbox", out_dir / "config", out_dir / "held"
    for folder in [inbox / s for s in SOURCES] + [held_dir / "day", held_dir / "tick"]:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.csv"):
            old.unlink()
    say(f"roll of {n_pupils:,} pupils in {n_schools} schools")
    roll = _build_roll(rng, schools, n_pupils, academic_year)
    year = _Year(rng, roll, days, n_schools)
    tick_index = n_days + 1 if tick else None
    tick_school = rng.integers(0, n_schools) if tick else None
    report = ScaleLA(out_dir, inbox, config_dir, held_dir, schools, days[:n_days],
                     days[n_days] if extra_day else None, days[tick_index] if tick else None,
                     schools[tick_school].laestab if tick else None, n_pupils)
    corrections = _Corrections()
    last_nightly = n_days if extra_day else n_days - 1
    counts = np.zeros(len(CODES), dtype=np.int64)
    day_texts = [f"{day:%d/%m/%Y}" for day in days]
    for d, day in enumerate(days):
        if d % 10 == 0:
            say(f"marks and files: day {d + 1} of {len(days)} ({day})")
        am, pm, am_min, pm_min = year.day(d)
        am = corrections.plant(rng, d, 0, am, last_nightly)
        pm = corrections.plant(rng, d, 1, pm, last_nightly)
        suffix = _suffixes(day_texts[d])
        if d == tick_index:
            k = tick_school
            a, b = roll.bounds[k], roll.bounds[k + 1]
            lines = np.strings.add(roll.prefix[a:b], suffix[_suffix_key(0, am[a:b], am_min[a:b])])
            path = held_dir / "tick" / writers.attendance_file_name(schools[k], day, INTRADAY_TIME)
            path.write_bytes(_HEADER + _rows_bytes(lines))
            report.held_files["tick"] = [path]
            report.held_rows["tick"] = int(b - a)
            continue
        # pupil-major: each pupil's AM row, then PM row
        keys = np.empty(2 * len(am), dtype=np.int64)
        keys[0::2] = _suffix_key(0, am, am_min)
        keys[1::2] = _suffix_key(1, pm, pm_min)
        lines = np.strings.add(np.repeat(roll.prefix, 2), suffix[keys])
        fixes = _correction_lines(corrections.due(d), roll, day_texts)
        is_held = d >= n_days
        folder = held_dir / "day" if is_held else inbox / MIS_A
        if not is_held:
            counts += np.bincount(am, minlength=len(CODES)) + np.bincount(pm, minlength=len(CODES))
        for k, school in enumerate(schools):
            a, b = roll.bounds[k], roll.bounds[k + 1]
            extra = fixes.get(k, [])
            path = folder / writers.attendance_file_name(school, day)
            path.write_bytes(_HEADER + _rows_bytes(lines[2 * a:2 * b]) + b"".join(extra))
            if is_held:
                report.held_files.setdefault("day", []).append(path)
                report.held_rows["day"] = report.held_rows.get("day", 0) + int(2 * (b - a)) + len(extra)
            else:
                report.files += 1
                report.marks += int(2 * (b - a))
                report.correction_rows += len(extra)
    report.code_counts = {c: int(v) for c, v in zip(CODES, counts) if v}
    say("social care extract and configuration")
    report.cwsw = _social_care(rng, inbox / "social_care", roll, year.profile, days[n_days - 1])
    writers.write_config(config_dir, schools, cal)
    return report


def _correction_lines(due, roll: _Roll, day_texts: list[str]) -> dict[int, list[bytes]]:
    """The rows re-sending corrected sessions, by school, in pupil order."""
    out: dict[int, list[tuple[int, bytes]]] = {}
    for pupils, d, session, codes in due:
        for i, code in zip(pupils.tolist(), codes.tolist()):
            line = roll.prefix[i] + f"{day_texts[d]},{SESSION_LABELS[session]},{CODES[code]},\r\n".encode("ascii")
            out.setdefault(int(roll.school[i]), []).append(((i, d, session), line))
    return {k: [line for _, line in sorted(rows, key=lambda r: r[0])] for k, rows in out.items()}

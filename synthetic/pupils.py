"""True children and their school enrolments, with the identity noise schools really produce.

A `Child` is the true person (ground truth). An `Enrolment` is one school's record of that child:
a mover has two enrolments (leaving date and destination at the first school, admission at the
second); twins are two children sharing surname, date of birth and postcode.
"""
from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from synthetic import people
from synthetic.schools import School

_OTHER_LAS = ("887", "919", "938", "208", "845")  # Medway, Hertfordshire, West Sussex, Lambeth, East Sussex


@dataclass
class Child:
    child_id: str
    forename: str
    surname: str
    sex: str                  # M | F
    dob: dt.date
    postcode: str
    upn: str | None           # permanent UPN; None for a child never registered at an English school
    nhs: str
    twin_of: str | None = None
    adopted: bool = False     # has a sealed pre-adoption identity in social care


@dataclass
class Enrolment:
    child: Child
    school: School
    pupil_id: str
    year_group: str
    reg_group: str
    admission: dt.date
    leaving: dt.date | None = None
    destination: str | None = None
    sen: str = "N"                        # N none, K SEN support, E EHC plan
    fsm: bool = False
    preferred_forename: str | None = None
    preferred_surname: str | None = None
    upn: str | None = None                # the UPN the school holds (after any switch)
    former_upn: str | None = None
    temp_upn_until: dt.date | None = None  # before this date the school held former_upn (temporary)
    nhs: str | None = None
    noise: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.school.laestab, self.pupil_id)

    def upn_on(self, day: dt.date) -> str | None:
        """The UPN in the school's extracts on `day` (temporary before the permanent one arrived)."""
        if self.temp_upn_until is not None and day < self.temp_upn_until:
            return self.former_upn
        return self.upn

    def on_roll(self, day: dt.date) -> bool:
        return self.admission <= day and (self.leaving is None or day <= self.leaving)


def _first_weekday(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def _school_sizes(schools: list[School], n_pupils: int) -> list[int]:
    weights = [1.0 if s.phase == "primary" else 2.5 for s in schools]
    total = sum(weights)
    sizes = [int(n_pupils * w / total) for w in weights]
    for i in range(n_pupils - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


class PupilBuilder:
    """Builds children and enrolments for every school, then movers, leavers and new arrivals."""

    def __init__(self, rng: random.Random, ids: people.IdentifierFactory, schools: list[School],
                 term_start: dt.date, as_of_date: dt.date):
        self.rng, self.ids, self.schools = rng, ids, schools
        self.term_start, self.as_of_date = term_start, as_of_date
        self.academic_year = term_start.year if term_start.month >= 8 else term_start.year - 1
        self.children: list[Child] = []
        self.enrolments: list[Enrolment] = []
        self._pupil_serial: dict[str, int] = {}
        self._primary_estabs = [s.estab for s in schools if s.phase == "primary"] or ["2001"]

    def new_child_id(self) -> str:
        return f"C{len(self.children) + 1:06d}"

    def pupil_id(self, school: School) -> str:
        n = self._pupil_serial.get(school.laestab, self.rng.randrange(1000, 3000)) + self.rng.randrange(1, 3)
        self._pupil_serial[school.laestab] = n
        return f"{n:06d}" if school.pupil_id_style == "adno" else f"S{n + 10000:05d}"

    def _upn_for(self, dob: dt.date, school: School) -> str:
        entry = people.reception_entry_year(dob)
        if self.rng.random() < 0.02:
            return self.ids.upn(f"{self.rng.randrange(2000, 3000):04d}", entry, la=self.rng.choice(_OTHER_LAS))
        if school.phase == "primary" and self.rng.random() < 0.6:
            estab = school.estab
        elif self.rng.random() < 0.7:
            estab = self.rng.choice(self._primary_estabs)
        else:
            estab = f"{self.rng.randrange(2000, 3000):04d}"
        return self.ids.upn(estab, entry)

    def _admission(self, year_group: str, dob: dt.date, school: School) -> dt.date:
        entry = people.reception_entry_year(dob)
        first_year = entry if school.phase == "primary" else entry + 7
        if school.phase == "primary" and year_group != "R" and self.rng.random() < 0.2:
            first_year = self.rng.randrange(first_year + 1, self.academic_year + 1)
        if first_year >= self.academic_year:
            return self.term_start
        return _first_weekday(dt.date(first_year, 9, 3))

    def new_child(self, dob: dt.date, school: School | None, sex: str | None = None,
                  surname: str | None = None, postcode: str | None = None) -> Child:
        sex = sex or self.rng.choice("MF")
        child = Child(self.new_child_id(), people.forename(self.rng, sex), surname or people.surname(self.rng),
                      sex, dob, postcode or people.postcode(self.rng),
                      self._upn_for(dob, school) if school is not None else None, self.ids.nhs_number())
        self.children.append(child)
        return child

    def _enrol(self, child: Child, school: School, year_group: str, reg_group: str,
               admission: dt.date, sen: str, fsm: bool) -> Enrolment:
        rng = self.rng
        e = Enrolment(child, school, self.pupil_id(school), year_group, reg_group, admission,
                      sen=sen, fsm=fsm, upn=child.upn)
        if rng.random() < 0.35:
            e.preferred_forename = people.nickname(rng, child.forename)
            if e.preferred_forename:
                e.noise.append("preferred_forename")
        if rng.random() < 0.02:
            e.preferred_surname = people.surname(rng)
            e.noise.append("preferred_surname")
        if rng.random() < 0.06:
            e.nhs = child.nhs
        r = rng.random()
        if r < 0.003:
            e.upn = None
            e.noise.append("upn_missing")
        elif r < 0.004:
            e.upn = people.mistype_upn(rng, child.upn)
            e.noise.append("upn_mistyped")
        self.enrolments.append(e)
        return e

    def build(self, n_pupils: int) -> None:
        rng = self.rng
        for school, size in zip(self.schools, _school_sizes(self.schools, n_pupils)):
            groups = school.year_groups
            per_group = [size // len(groups) + (1 if i < size % len(groups) else 0) for i in range(len(groups))]
            for year_group, count in zip(groups, per_group):
                forms = max(1, math.ceil(count / 30))
                previous: Enrolment | None = None
                for i in range(count):
                    reg_group = f"{year_group}{'ABCDEFGHJK'[i % forms]}"
                    sen = "E" if (r := rng.random()) < 0.04 else "K" if r < 0.17 else "N"
                    fsm = rng.random() < 0.25
                    if previous is not None and previous.child.twin_of is None and rng.random() < 0.006:
                        twin = previous.child
                        child = self.new_child(twin.dob, school, surname=twin.surname, postcode=twin.postcode)
                        while child.forename == twin.forename:
                            child.forename = people.forename(rng, child.sex)
                        child.twin_of = twin.child_id
                        enrolment = self._enrol(child, school, year_group, reg_group, previous.admission,
                                                sen, previous.fsm)
                        enrolment.noise.append("twin")
                        previous.noise.append("twin")
                        previous = None
                        continue
                    dob = people.dob_for_year_group(rng, year_group, self.academic_year)
                    child = self.new_child(dob, school)
                    previous = self._enrol(child, school, year_group, reg_group,
                                           self._admission(year_group, dob, school), sen, fsm)
        self._arrivals()
        self._movers()
        self._adoptions()

    def _term_day(self, lo_days: int, hi_days: int) -> dt.date | None:
        lo = self.term_start + dt.timedelta(days=lo_days)
        hi = self.as_of_date - dt.timedelta(days=hi_days)
        if hi <= lo:
            return None
        return _first_weekday(lo + dt.timedelta(days=self.rng.randrange((hi - lo).days)))

    def _arrivals(self) -> None:
        """New arrivals this term; some from abroad hold a temporary UPN until a permanent one comes."""
        candidates = [e for e in self.enrolments if "twin" not in e.noise and e.upn == e.child.upn]
        for e in self.rng.sample(candidates, max(1, len(candidates) // 100)):
            day = self._term_day(7, 14)
            if day is None:
                return
            e.admission = day
            if self.rng.random() < 0.5:
                e.former_upn = self.ids.temporary_upn(e.school.estab, day.year)
                switch = day + dt.timedelta(days=self.rng.randrange(14, 40))
                if switch >= self.as_of_date:
                    e.upn, e.former_upn = e.former_upn, None
                    e.child.upn = None
                    e.noise.append("upn_temporary")
                else:
                    e.temp_upn_until = switch
                    e.noise.append("former_upn_temporary")

    def _movers(self) -> None:
        """Pupils who moved between the LA's schools this term, and a few who left the LA."""
        rng = self.rng
        plain = [e for e in self.enrolments if not e.noise and e.admission < self.term_start]
        n_moves = max(1, len(plain) // 200)
        for e in rng.sample(plain, min(len(plain), n_moves + max(1, len(plain) // 300))):
            leaving = self._term_day(14, 21)
            if leaving is None:
                return
            same_phase = [s for s in self.schools if s.phase == e.school.phase and s is not e.school]
            e.leaving = leaving
            if n_moves > 0 and same_phase:
                n_moves -= 1
                target = rng.choice(same_phase)
                admission = _first_weekday(leaving + dt.timedelta(days=rng.randrange(1, 8)))
                moved = self._enrol(e.child, target, e.year_group, f"{e.year_group}A", admission, e.sen, e.fsm)
                moved.noise.append("moved_in")
                e.noise.append("moved_out")
                if rng.random() < 0.8:
                    e.destination = target.laestab
            else:
                e.noise.append("left_la")

    def _adoptions(self) -> None:
        """A couple of primary pupils adopted from care: social care holds a sealed earlier identity."""
        pool = [e for e in self.enrolments if not e.noise and e.school.phase == "primary"
                and e.year_group not in ("R", "1") and e.child.upn]
        for e in self.rng.sample(pool, min(len(pool), max(1, len(self.enrolments) // 3000))):
            e.child.adopted = True
            e.noise.append("adopted")

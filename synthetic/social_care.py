"""Children's social care: persons, CIN/CPP/CLA episodes and worker allocations (docs/layouts.md#childrens-social-care).

About 4 % of pupils have an open episode today (CIN, with a CPP or CLA inside it for some), more
have closed episodes in the last six years (Ever6), some episodes end before the window, a few
disabled children have only short-break CLA episodes (legal status V3/V4, excluded from Ever6),
and some children in social care attend no school in the feeds. Adopted children appear as a
sealed (Restricted=Y) pre-adoption identity that must never be linked to the child at school.
"""
from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field

from synthetic import people
from synthetic.pupils import Child, Enrolment, PupilBuilder

TEAMS = (
    ("T01", "Canterbury Children in Need Team"), ("T02", "Thanet Child Protection Team"),
    ("T03", "Ashford Children's Assessment Team"), ("T04", "Kent Children in Care Team (East)"),
    ("T05", "Kent Children in Care Team (West)"), ("T06", "Disabled Children's Service"),
    ("T07", "Maidstone Family Support Team"), ("T08", "Dartford and Gravesham CIN Team"),
)
_CLA_TEAMS = ("T04", "T05")
_CLA_LEGAL = (("C2", 0.45), ("V2", 0.25), ("C1", 0.15), ("E1", 0.10), ("J2", 0.05))
SHORT_BREAKS = ("V1", "V3", "V4")


@dataclass
class Episode:
    episode_id: str
    episode_type: str              # CIN | CPP | CLA
    start: dt.date
    end: dt.date | None = None
    legal_status: str | None = None


@dataclass
class Allocation:
    worker_id: str
    start: dt.date
    end: dt.date | None = None


@dataclass(frozen=True)
class Worker:
    worker_id: str
    name: str
    email: str
    team_id: str
    team_name: str


@dataclass
class ScPerson:
    """One case-management person record, with the identifiers as social care recorded them."""

    person_id: str
    child: Child
    forename: str
    surname: str
    dob: dt.date
    sex: str
    postcode: str
    upn: str | None
    nhs: str | None
    restricted: bool = False
    kind: str = "current"          # current | historical | old | short_breaks | pre_adoption
    episodes: list[Episode] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)


def _weighted(rng: random.Random, options) -> str:
    r, acc = rng.random(), 0.0
    for value, weight in options:
        acc += weight
        if r < acc:
            return value
    return options[-1][0]


def _between(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    if hi <= lo:
        return lo
    return lo + dt.timedelta(days=rng.randrange((hi - lo).days + 1))


def six_years_before(day: dt.date, years: int = 6) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:          # 29 February
        return day.replace(year=day.year - years, day=28)


class SocialCareBuilder:
    def __init__(self, rng: random.Random, ids: people.IdentifierFactory, pupils: PupilBuilder,
                 as_of_date: dt.date):
        self.rng, self.ids, self.pupils, self.d = rng, ids, pupils, as_of_date
        self.persons: list[ScPerson] = []
        self.workers: list[Worker] = []
        self._person_ids = iter(rng.sample(range(100000, 999999), 200000))
        self._episode_serial = rng.randrange(40000, 60000)

    def _episode(self, kind: str, start: dt.date, end: dt.date | None, legal: str | None = None) -> Episode:
        self._episode_serial += self.rng.randrange(1, 9)
        return Episode(f"EP{self._episode_serial:07d}", kind, start, end, legal)

    # -- episode histories -------------------------------------------------------------------------
    def _current(self, dob: dt.date) -> list[Episode]:
        rng, d = self.rng, self.d
        start = _between(rng, max(dob + dt.timedelta(days=30), d - dt.timedelta(days=3 * 365)), d - dt.timedelta(days=21))
        eps = [self._episode("CIN", start, None)]
        status = _weighted(rng, (("CIN", 0.62), ("CPP", 0.16), ("CLA", 0.22)))
        if status == "CPP":
            eps.append(self._episode("CPP", _between(rng, start, min(start + dt.timedelta(days=60), d - dt.timedelta(days=14))), None))
        elif status == "CLA":
            eps.append(self._episode("CLA", _between(rng, start, min(start + dt.timedelta(days=180), d - dt.timedelta(days=14))),
                                     None, _weighted(rng, _CLA_LEGAL)))
        elif rng.random() < 0.08:      # disabled child in need with short breaks (respite) in the past
            for _ in range(rng.randrange(1, 4)):
                s = _between(rng, start, d - dt.timedelta(days=30))
                eps.append(self._episode("CLA", s, s + dt.timedelta(days=rng.randrange(1, 5)), rng.choice(("V3", "V4"))))
        if rng.random() < 0.3 and start - dob > dt.timedelta(days=400):
            end = start - dt.timedelta(days=rng.randrange(60, 300))
            eps.insert(0, self._episode("CIN", _between(rng, max(dob, end - dt.timedelta(days=500)), end - dt.timedelta(days=30)), end))
        return eps

    def _closed(self, dob: dt.date, lo: dt.date, hi: dt.date) -> list[Episode]:
        """A closed CIN episode ending in [lo, hi], with a CPP or CLA inside it for some."""
        rng = self.rng
        end = _between(rng, min(max(lo, dob + dt.timedelta(days=120)), hi), hi)
        start = _between(rng, max(dob, end - dt.timedelta(days=700)), end - dt.timedelta(days=60))
        start = min(start, end)
        eps = [self._episode("CIN", start, end)]
        r = rng.random()
        if r < 0.32 and (end - start).days > 60:
            s = _between(rng, start, end - dt.timedelta(days=30))
            inner_end = _between(rng, s + dt.timedelta(days=20), end)
            if r < 0.2:
                eps.append(self._episode("CPP", s, inner_end))
            else:
                eps.append(self._episode("CLA", s, inner_end, rng.choice(("V2", "C2", "L1"))))
        return eps

    def _short_breaks(self, dob: dt.date) -> list[Episode]:
        rng, eps = self.rng, []
        for _ in range(rng.randrange(2, 5)):
            s = _between(rng, max(dob, self.d - dt.timedelta(days=700)), self.d - dt.timedelta(days=30))
            eps.append(self._episode("CLA", s, s + dt.timedelta(days=rng.randrange(2, 14)), rng.choice(("V3", "V4"))))
        return sorted(eps, key=lambda e: e.start)

    def _pre_adoption(self, dob: dt.date) -> list[Episode]:
        rng = self.rng
        cin = dob + dt.timedelta(days=rng.randrange(60, 400))
        cla1 = cin + dt.timedelta(days=rng.randrange(30, 200))
        cla2 = cla1 + dt.timedelta(days=rng.randrange(150, 400))
        adopted = min(cla2 + dt.timedelta(days=rng.randrange(200, 450)), self.d - dt.timedelta(days=90))
        return [self._episode("CIN", cin, adopted), self._episode("CLA", cla1, cla2 - dt.timedelta(days=1), "C2"),
                self._episode("CLA", cla2, adopted, "E1")]

    # -- person records ----------------------------------------------------------------------------
    def _person(self, child: Child, kind: str, episodes: list[Episode], restricted: bool = False) -> ScPerson:
        rng = self.rng
        p = ScPerson(str(next(self._person_ids)), child, child.forename, child.surname, child.dob, child.sex,
                     child.postcode, child.upn if child.upn and rng.random() < 0.75 else None,
                     child.nhs if rng.random() < 0.65 else None, restricted, kind, episodes)
        if not p.upn:
            p.noise.append("upn_missing")
        elif rng.random() < 0.05:
            p.upn = people.mistype_upn(rng, p.upn)
            p.noise.append("upn_mistyped")
        if not p.nhs:
            p.noise.append("nhs_missing")
        r = rng.random()
        if r < 0.06 and (nick := people.nickname(rng, p.forename)):
            p.forename = nick
            p.noise.append("forename_nickname")
        elif r < 0.09:
            p.forename = people.typo(rng, p.forename)
            p.noise.append("forename_typo")
        r = rng.random()
        if r < 0.03:
            p.surname = people.typo(rng, p.surname)
            p.noise.append("surname_typo")
        elif r < 0.04:
            p.forename, p.surname = p.surname, p.forename
            p.noise.append("names_swapped")
        if rng.random() < 0.02 and (swapped := people.swap_day_month(p.dob)):
            p.dob = swapped
            p.noise.append("dob_day_month_swapped")
        if any(e.episode_type == "CLA" and e.end is None for e in episodes) or rng.random() < 0.12:
            p.postcode = people.postcode(rng)
            p.noise.append("postcode_differs")
        self.persons.append(p)
        return p

    def build(self, enrolments: list[Enrolment]) -> None:
        rng, d = self.rng, self.d
        pupils: list[Child] = []
        seen: set[str] = set()
        for e in enrolments:
            if e.child.child_id not in seen:
                seen.add(e.child.child_id)
                pupils.append(e.child)
        twins = {c.twin_of: c for c in pupils if c.twin_of}
        eligible = [c for c in pupils if not c.adopted and not c.twin_of]
        n = len(pupils)
        picks = rng.sample(eligible, min(len(eligible), round(n * 0.04) + round(n * 0.06) + round(n * 0.01) + max(1, round(n * 0.003))))
        n_cur, n_hist, n_old = round(n * 0.04), round(n * 0.06), round(n * 0.01)
        window = six_years_before(d)
        for i, child in enumerate(picks):
            if i < n_cur:
                kind, eps = "current", self._current(child.dob)
            elif i < n_cur + n_hist:
                kind, eps = "historical", self._closed(child.dob, window + dt.timedelta(days=30), d - dt.timedelta(days=30))
            elif i < n_cur + n_hist + n_old:
                if child.dob > window - dt.timedelta(days=400):
                    kind, eps = "historical", self._closed(child.dob, window + dt.timedelta(days=30), d - dt.timedelta(days=30))
                else:
                    kind, eps = "old", self._closed(child.dob, child.dob + dt.timedelta(days=200), window - dt.timedelta(days=30))
            else:
                kind, eps = "short_breaks", self._short_breaks(child.dob)
            self._person(child, kind, eps)
            if child.child_id in twins:   # twins come to social care together
                self._person(twins[child.child_id], kind, [self._episode(e.episode_type, e.start, e.end, e.legal_status) for e in eps])
        for child in pupils:
            if child.adopted:
                self._pre_adoption_identity(child)
        n_sc_only = max(2, round(n_cur * 0.35) + round(n_hist * 0.35))
        for i in range(n_sc_only):
            dob = _between(rng, d - dt.timedelta(days=17 * 365), d - dt.timedelta(days=60))
            child = self.pupils.new_child(dob, None)
            if d - dob > dt.timedelta(days=5 * 365) and rng.random() < 0.5:
                child.upn = self.ids.upn(f"{rng.randrange(2000, 3000):04d}", people.reception_entry_year(dob),
                                         la=rng.choice(("887", "886", "938")))
            if i % 2 == 0:
                self._person(child, "current", self._current(dob))
            else:
                self._person(child, "historical", self._closed(dob, window + dt.timedelta(days=30), d - dt.timedelta(days=30)))
        self._allocate()

    def _pre_adoption_identity(self, child: Child) -> None:
        """The sealed birth identity of an adopted child: same forename and date of birth, birth
        surname, old UPN and NHS number, an earlier address. Ground truth: a different identity."""
        rng = self.rng
        birth = self.pupils.new_child(child.dob, None, sex=child.sex)
        birth.forename = child.forename
        while birth.surname == child.surname:
            birth.surname = people.surname(rng)
        birth.upn = self.ids.upn(f"{rng.randrange(2000, 3000):04d}", people.reception_entry_year(child.dob)) \
            if rng.random() < 0.5 else None
        p = self._person(birth, "pre_adoption", self._pre_adoption(child.dob), restricted=True)
        p.noise.append("pre_adoption_identity_of:" + child.child_id)

    # -- allocations -------------------------------------------------------------------------------
    def _make_workers(self, n_open: int) -> None:
        rng = self.rng
        emails: set[str] = set()
        for i in range(max(4, n_open // 12)):
            team_id, team_name = TEAMS[i % len(TEAMS)]
            first, last = rng.choice(people.ADULT_FORENAMES), rng.choice(people.SURNAMES)
            local = re.sub(r"[^a-z.]", "", f"{first}.{last}".lower().replace(" ", ""))
            while local in emails:
                local += str(rng.randrange(10))
            emails.add(local)
            self.workers.append(Worker(f"W{1000 + i * 7:05d}", f"{first} {last}",
                                       f"{local}@children.example.gov.uk", team_id, team_name))

    def _allocate(self) -> None:
        rng, d = self.rng, self.d
        open_persons = [p for p in self.persons if any(e.end is None for e in p.episodes)]
        self._make_workers(len(open_persons))
        cla_workers = [w for w in self.workers if w.team_id in _CLA_TEAMS] or self.workers
        disabled = [w for w in self.workers if w.team_id == "T06"] or self.workers
        other = [w for w in self.workers if w.team_id not in _CLA_TEAMS and w.team_id != "T06"] or self.workers
        unallocated = set(p.person_id for p in rng.sample(open_persons, max(1, len(open_persons) // 30))) \
            if len(open_persons) >= 5 else set()
        for p in self.persons:
            for ep in p.episodes:
                if ep.episode_type != "CIN" and not (p.kind == "short_breaks"):
                    continue
                if p.kind == "short_breaks":
                    p.allocations.append(Allocation(rng.choice(disabled).worker_id, ep.start, ep.end))
                    continue
                pool = cla_workers if any(e.episode_type == "CLA" and e.legal_status not in SHORT_BREAKS
                                          and e.end is None for e in p.episodes) and ep.end is None else other
                if ep.end is None and p.person_id in unallocated:
                    p.noise.append("unallocated")
                    if rng.random() < 0.5:   # the previous worker left; the case sits with duty
                        end = _between(rng, ep.start, d - dt.timedelta(days=7))
                        p.allocations.append(Allocation(rng.choice(other).worker_id, ep.start, end))
                    continue
                if ep.end is None and rng.random() < 0.2 and (d - ep.start).days > 60:
                    switch = _between(rng, ep.start + dt.timedelta(days=20), d - dt.timedelta(days=10))
                    p.allocations.append(Allocation(rng.choice(other).worker_id, ep.start, switch - dt.timedelta(days=1)))
                    p.allocations.append(Allocation(rng.choice(pool).worker_id, switch, None))
                else:
                    p.allocations.append(Allocation(rng.choice(pool).worker_id, ep.start, ep.end))

    def worker(self, worker_id: str) -> Worker:
        return next(w for w in self.workers if w.worker_id == worker_id)

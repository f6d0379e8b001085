"""CAMHS referrals from the NHS trust (docs/layouts.md#camhs-health).

About 3 % of pupils have a referral (waiting, open or closed), children with a social worker far
more often; a few patients attend no school in the feeds. The trust knows children by NHS number
(usually present) and its own local patient id; `PrimaryReasonForReferral` is clinical free text
that Tether must drop at ingest.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from synthetic import people
from synthetic.pupils import Child, PupilBuilder

SERVICE_TEAMS = (
    ("East Kent CAMHS", "east.kent.camhs@nhs.example.net"),
    ("West Kent CAMHS", "west.kent.camhs@nhs.example.net"),
    ("North Kent CAMHS", "north.kent.camhs@nhs.example.net"),
    ("Kent Eating Disorders Service", "ked.service@nhs.example.net"),
    ("Neurodevelopmental Pathway", "nd.pathway@nhs.example.net"),
)
REASONS = (
    "Low mood and anxiety affecting school attendance", "Self-harm (superficial cutting), risk assessed",
    "Suspected ADHD, referred by school SENCo", "Restrictive eating, weight loss over 3 months",
    "Panic attacks and school-based anxiety", "Trauma symptoms following domestic abuse",
    "Obsessive-compulsive symptoms", "Emotional dysregulation and aggression at home",
    "Suspected autism spectrum condition", "Bereavement with persistent low mood",
    "Suicidal ideation disclosed to GP", "Sleep disturbance and withdrawal",
)


@dataclass
class Referral:
    referral_id: str
    received: dt.date
    status: str                 # waiting | open | closed
    discharged: dt.date | None
    team: str
    contact: str
    reason: str


@dataclass
class Patient:
    local_patient_id: str
    child: Child
    nhs: str | None
    forename: str
    surname: str
    dob: dt.date
    gender: str                 # 1 male, 2 female, 9 not stated
    postcode: str
    referrals: list[Referral] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)


def _referral(rng: random.Random, d: dt.date, serial: int, status: str | None = None) -> Referral:
    status = status or rng.choices(("waiting", "open", "closed"), (0.3, 0.4, 0.3))[0]
    team, contact = rng.choice(SERVICE_TEAMS)
    if status == "waiting":
        received, discharged = d - dt.timedelta(days=rng.randrange(7, 300)), None
    elif status == "open":
        received, discharged = d - dt.timedelta(days=rng.randrange(30, 700)), None
    else:
        received = d - dt.timedelta(days=rng.randrange(120, 900))
        discharged = received + dt.timedelta(days=rng.randrange(30, 100))
    return Referral(f"CR{serial:07d}", received, status, discharged, team, contact, rng.choice(REASONS))


def build_camhs(rng: random.Random, pupil_children: list[Child], cwsw_ids: set[str],
                pupils: PupilBuilder, as_of_date: dt.date) -> list[Patient]:
    """Patients with one or two referrals; the children are drawn from the pupils (CWSW more often)
    plus a few health-only children."""
    chosen = [c for c in pupil_children
              if rng.random() < (0.15 if c.child_id in cwsw_ids else 0.025)]
    for _ in range(max(1, len(pupil_children) // 300)):
        dob = as_of_date - dt.timedelta(days=rng.randrange(6 * 365, 17 * 365))
        chosen.append(pupils.new_child(dob, None))
    patient_ids = rng.sample(range(1_000_000, 9_999_999), len(chosen))
    serial = rng.randrange(100000, 200000)
    patients = []
    for child, pid in zip(chosen, patient_ids):
        p = Patient(f"KM{pid}", child, child.nhs, child.forename, child.surname, child.dob,
                    "1" if child.sex == "M" else "2", child.postcode)
        if rng.random() < 0.05:
            p.nhs = None
            p.noise.append("nhs_missing")
        if rng.random() < 0.10 and (nick := people.nickname(rng, p.forename)):
            p.forename = nick
            p.noise.append("forename_nickname")
        if rng.random() < 0.03:
            p.surname = people.typo(rng, p.surname)
            p.noise.append("surname_typo")
        if rng.random() < 0.02 and (swapped := people.swap_day_month(p.dob)):
            p.dob = swapped
            p.noise.append("dob_day_month_swapped")
        if rng.random() < 0.08:
            p.postcode = people.postcode(rng)
            p.noise.append("postcode_differs")
        if rng.random() < 0.01:
            p.gender = "9"
        serial += rng.randrange(1, 40)
        if rng.random() < 0.15:
            p.referrals.append(_referral(rng, as_of_date, serial, "closed"))
            serial += rng.randrange(1, 40)
        p.referrals.append(_referral(rng, as_of_date, serial))
        p.referrals.sort(key=lambda r: r.received)
        patients.append(p)
    return patients

"""Children in Need census XML -> canonical sc_persons and sc_episodes (CIN and CPP).

The DfE file is `Message/Header` + `Message/Children/Child`. Each `Child` has `ChildIdentifiers`
(`LAchildID`, `UPN`, `PersonBirthDate`, `Sex` — `GenderCurrent` in returns before 2024) and one
`CINdetails` per episode of need: `CINreferralDate`, `CINclosureDate`, `ReasonForClosure` and, for
each child protection plan, a `ChildProtectionPlans` element with `CPPstartDate` and `CPPendDate`.
Some local exports wrap each plan in `ChildProtectionPlans/CPPdetails`; both are read.

A CIN episode runs from referral to closure and a CPP sits inside it (docs/dfe-rules.md#cohorts). Episode
ids are deterministic so a re-sent census updates rather than duplicates:
`cin:<LAchildID>:<referral date>` and `cpp:<LAchildID>:<plan start date>`. They embed the LA child
id, an identity value: `pseudonymise_episode_ids` must replace it before anything is stored.

A CIN episode closed with `ReasonForClosure` `RC1` (adopted) makes the child restricted.

The XML is parsed by defusedxml with DTDs, entities and external references forbidden: a billion
laughs bomb or an external entity is refused at its DOCTYPE, before anything is expanded or fetched.
Each `Child` is read or quarantined as a whole.
"""
from __future__ import annotations

import copy
from xml.etree.ElementTree import Element  # the tree type only; parsing is defusedxml's

import defusedxml
import defusedxml.ElementTree as SafeET

from transforms.statutory.episode_ids import episode_id
from transforms.statutory.result import (
    XML_DECLARATIONS_REFUSED, Quarantined, ReturnRead, episodes_frame, file_refused, persons_frame,
)
from transforms.statutory.values import Problems, clean, iso_date, not_before, sex_code, short_code, upn

FEEDS_READ = ("sc_persons", "sc_episodes")
REASON_ADOPTED = "RC1"


def read_cin_census(data: bytes, *, file_name: str) -> ReturnRead:
    """Read a CIN census file; a file that is not safe, well-formed CIN census XML is refused whole."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        return file_refused(FEEDS_READ, XML_DECLARATIONS_REFUSED, data, file_name=file_name)
    except SafeET.ParseError as exc:
        line, column = exc.position
        return file_refused(FEEDS_READ, f"malformed XML at line {line}, column {column}", data,
                            file_name=file_name)
    if _local(root.tag) != "Message":
        return file_refused(FEEDS_READ, "not a CIN census: the root element is not Message", data,
                            file_name=file_name)
    children = _first(root, "Children")
    if children is None:
        return file_refused(FEEDS_READ, "not a CIN census: Message has no Children element", data,
                            file_name=file_name, field_name="Children")

    persons: list[dict] = []
    episodes: list[dict] = []
    quarantined: list[Quarantined] = []
    first_row_of: dict[str, int] = {}
    child_elements = _all(children, "Child")
    for row_number, child in enumerate(child_elements, start=1):
        problems: Problems = []
        person, child_episodes = _read_child(child, row_number, problems)
        person_id = person["person_id"]
        if person_id is not None and person_id in first_row_of:
            problems.append(("LAchildID", f"LAchildID repeats the child of row {first_row_of[person_id]}"))
        if problems:
            raw = _raw(child)
            quarantined.extend((row_number, field, reason, raw) for field, reason in problems)
            continue
        first_row_of[person_id] = row_number
        persons.append(person)
        episodes.extend(child_episodes)

    return ReturnRead(
        feed_frames={"sc_persons": persons_frame(persons), "sc_episodes": episodes_frame(episodes)},
        quarantined=quarantined,
        rows_read=len(child_elements),
    )


def _read_child(child: Element, row_number: int, problems: Problems) -> tuple[dict, list[dict]]:
    identifiers = _first(child, "ChildIdentifiers")
    person_id = clean(_text(identifiers, "LAchildID"))
    if person_id is None:
        problems.append(("LAchildID", "LAchildID is missing"))
    sex_field = "Sex" if _first(identifiers, "Sex") is not None else "GenderCurrent"
    person = {
        "person_id": person_id,
        "upn": upn(_text(identifiers, "UPN")),
        "dob": iso_date(_text(identifiers, "PersonBirthDate"), "PersonBirthDate", problems),
        "sex": sex_code(_text(identifiers, sex_field), sex_field, problems),
        "restricted": False,
        "row_number": row_number,
    }

    episodes: list[dict] = []
    for details in _all(child, "CINdetails"):
        referral = iso_date(_text(details, "CINreferralDate"), "CINreferralDate", problems, required=True)
        closure = iso_date(_text(details, "CINclosureDate"), "CINclosureDate", problems)
        not_before(referral, closure, "CINreferralDate", "CINclosureDate", problems)
        reason = short_code(_text(details, "ReasonForClosure"), "ReasonForClosure", problems)
        if reason == REASON_ADOPTED:
            person["restricted"] = True
        episodes.append(_episode(person_id, "CIN", referral, closure, reason, row_number))
        for plan in _plans(details):
            start = iso_date(_text(plan, "CPPstartDate"), "CPPstartDate", problems, required=True)
            end = iso_date(_text(plan, "CPPendDate"), "CPPendDate", problems)
            not_before(start, end, "CPPstartDate", "CPPendDate", problems)
            episodes.append(_episode(person_id, "CPP", start, end, None, row_number))

    seen: set[str] = set()
    for episode in episodes:
        if episode["episode_id"] in seen:
            field = "CINreferralDate" if episode["episode_type"] == "CIN" else "CPPstartDate"
            problems.append((field, f"two {episode['episode_type']} episodes of this child share {field}"))
        seen.add(episode["episode_id"])
    return person, episodes


def _episode(person_id, episode_type, start, end, reason_ended, row_number) -> dict:
    return {
        "person_id": person_id,
        "episode_id": episode_id(episode_type, person_id, start),
        "episode_type": episode_type,
        "start_date": start,
        "end_date": end,
        "legal_status": None,
        "reason_ended": reason_ended,
        "row_number": row_number,
    }


def _plans(details: Element) -> list[Element]:
    """One element per child protection plan, whichever of the two nestings the file uses."""
    plans: list[Element] = []
    for group in _all(details, "ChildProtectionPlans"):
        wrapped = _all(group, "CPPdetails")
        plans.extend(wrapped or [group])
    return plans


def _local(tag: str) -> str:
    """Tag name without any XML namespace."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _all(parent: Element | None, name: str) -> list[Element]:
    return [] if parent is None else [el for el in parent if _local(el.tag) == name]


def _first(parent: Element | None, name: str) -> Element | None:
    found = _all(parent, name)
    return found[0] if found else None


def _text(parent: Element | None, name: str) -> str | None:
    element = _first(parent, name)
    return None if element is None else element.text


def _raw(child: Element) -> bytes:
    """The Child element as XML bytes, without the whitespace that followed it."""
    element = copy.copy(child)
    element.tail = None
    return SafeET.tostring(element, encoding="unicode").encode("utf-8")

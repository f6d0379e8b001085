"""Small statutory-return files for tests and the demo: a CIN census XML and SSDA903 CSV tables.

Dates may be given as `datetime.date` (written in the return's own format) or as strings, written
verbatim — which is how a test or the demo writes an impossible date on purpose. Missing keys are
written as empty elements' absence (XML) or empty cells (CSV).

Children (CIN census):
    {"person_id": "LA00001", "upn": "B801200005001", "dob": date, "sex": "M" | "F" | "U",
     "cin_details": [{"referral_date": date, "closure_date": date | None,
                      "reason_for_closure": "RC8" | None, "primary_need": "N1",
                      "cpp": [{"start_date": date, "end_date": date | None}]}]}
Children (SSDA903 header): {"person_id", "sex", "dob", "upn", "ethnic"}; sex "M"/"F" is written
1/2, "U" or no sex as an empty cell (SSDA903 has no code for unknown sex), any other string verbatim.
Episodes (SSDA903): {"person_id", "decom", "rne", "ls", "cin", "place", "place_provider", "dec",
"rec", "reason_place_change", "home_post", "pl_post", "urn"}.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET  # building only (never parsing: Tether parses with defusedxml)
from pathlib import Path
from typing import Any

SSDA903_HEADER_COLUMNS = ("CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB")
SSDA903_EPISODE_COLUMNS = (
    "CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC",
    "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN",
)
_EPISODE_KEYS = {
    "CHILD": "person_id", "DECOM": "decom", "RNE": "rne", "LS": "ls", "CIN": "cin", "PLACE": "place",
    "PLACE_PROVIDER": "place_provider", "DEC": "dec", "REC": "rec",
    "REASON_PLACE_CHANGE": "reason_place_change", "HOME_POST": "home_post", "PL_POST": "pl_post",
    "URN": "urn",
}
_CIN_SEX = {"M": "1", "F": "2", "U": "0"}
_903_SEX = {"M": "1", "F": "2"}


def write_cin_census(path: str | Path, children: list[dict[str, Any]], *, la_number: str = "886",
                     reference_date: dt.date = dt.date(2027, 3, 31)) -> Path:
    """Write a CIN census XML file (DfE `Message/Header` + `Message/Children/Child`)."""
    message = ET.Element("Message")
    header = ET.SubElement(message, "Header")
    collection = ET.SubElement(header, "CollectionDetails")
    _leaf(collection, "Collection", "CIN")
    _leaf(collection, "Year", str(reference_date.year))
    _leaf(collection, "ReferenceDate", reference_date.isoformat())
    source = ET.SubElement(header, "Source")
    _leaf(source, "SourceLevel", "L")
    _leaf(source, "LEA", la_number)
    _leaf(source, "SoftwareCode", "Tether synthetic")

    container = ET.SubElement(message, "Children")
    for child in children:
        element = ET.SubElement(container, "Child")
        identifiers = ET.SubElement(element, "ChildIdentifiers")
        _leaf(identifiers, "LAchildID", child.get("person_id"))
        _leaf(identifiers, "UPN", child.get("upn"))
        _leaf(identifiers, "PersonBirthDate", _iso(child.get("dob")))
        sex = child.get("sex")
        _leaf(identifiers, "Sex", _CIN_SEX.get(sex, sex) if sex is not None else None)
        for details in child.get("cin_details", []):
            cin = ET.SubElement(element, "CINdetails")
            _leaf(cin, "CINreferralDate", _iso(details.get("referral_date")))
            _leaf(cin, "ReferralSource", details.get("referral_source", "1A"))
            _leaf(cin, "PrimaryNeedCode", details.get("primary_need", "N1"))
            _leaf(cin, "CINclosureDate", _iso(details.get("closure_date")))
            _leaf(cin, "ReasonForClosure", details.get("reason_for_closure"))
            for plan in details.get("cpp", []):
                cpp = ET.SubElement(cin, "ChildProtectionPlans")
                _leaf(cpp, "CPPstartDate", _iso(plan.get("start_date")))
                _leaf(cpp, "CPPendDate", _iso(plan.get("end_date")))

    ET.indent(message)
    path = Path(path)
    path.write_bytes(ET.tostring(message, encoding="utf-8", xml_declaration=True) + b"\n")
    return path


def write_ssda903(header_path: str | Path, episodes_path: str | Path,
                  children: list[dict[str, Any]], episodes: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write the SSDA903 header and episodes tables as CSV (UTF-8, CRLF, dd/mm/yyyy dates)."""
    header_rows = [
        {
            "CHILD": child.get("person_id"),
            "SEX": _sex_903(child.get("sex")),
            "DOB": _uk(child.get("dob")),
            "ETHNIC": child.get("ethnic", "WBRI"),
            "UPN": child.get("upn") or "UN1",
        }
        for child in children
    ]
    episode_rows = [
        {column: (_uk(episode.get(key)) if column in ("DECOM", "DEC") else episode.get(key))
         for column, key in _EPISODE_KEYS.items()}
        for episode in episodes
    ]
    header_path, episodes_path = Path(header_path), Path(episodes_path)
    header_path.write_bytes(_csv(SSDA903_HEADER_COLUMNS, header_rows))
    episodes_path.write_bytes(_csv(SSDA903_EPISODE_COLUMNS, episode_rows))
    return header_path, episodes_path


def _sex_903(value: str | None) -> str:
    """M/F as 1/2; unknown (U or absent) as an empty cell; any other string verbatim."""
    if value is None or value == "U":
        return ""
    return _903_SEX.get(value, value)


def _leaf(parent: ET.Element, name: str, value: str | None) -> None:
    if value is not None and value != "":
        ET.SubElement(parent, name).text = str(value)


def _iso(value: dt.date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else value


def _uk(value: dt.date | str | None) -> str | None:
    return value.strftime("%d/%m/%Y") if isinstance(value, dt.date) else value


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])
    return buffer.getvalue().encode("utf-8")

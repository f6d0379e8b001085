"""SSDA903 looked-after children return (CSV) -> canonical sc_persons and sc_episodes (CLA).

Header table, one row per child: `CHILD, SEX, DOB, ETHNIC, UPN, MOTHER, MC_DOB`.
Episodes table, one row per period with the same placement and legal status:
`CHILD, DECOM, RNE, LS, CIN, PLACE, PLACE_PROVIDER, DEC, REC, REASON_PLACE_CHANGE, HOME_POST,
PL_POST, URN`. Dates are dd/mm/yyyy; `LS` is the legal status (`V1`, `V3`, `V4` short breaks),
`CIN` there is the category of need, `REC` the reason the episode ended (`E11`, `E12`: adopted).

Each SSDA903 episode becomes one CLA episode with the deterministic id `cla:<CHILD>:<DECOM>`; the id
embeds the LA child id, an identity value, which `pseudonymise_episode_ids` replaces before storage.
Postcodes (`HOME_POST`, `PL_POST`) and the other columns are not read.

The two tables arrive as separate files, so the header reader cannot see adoptions: the caller marks
persons restricted with `adopted_person_ids(episodes)` (or lets `merge_returns_with_extract` do it).
"""
from __future__ import annotations

from collections.abc import Callable

from transforms.statutory.csv_table import Record, TableError, read_table
from transforms.statutory.episode_ids import episode_id
from transforms.statutory.result import Quarantined, ReturnRead, episodes_frame, file_refused, persons_frame
from transforms.statutory.values import Problems, clean, not_before, sex_code, short_code, uk_date, upn

HEADER_COLUMNS = ("CHILD", "SEX", "DOB", "UPN")
EPISODE_COLUMNS = ("CHILD", "DECOM", "LS", "DEC", "REC")


def read_ssda903_header(data: bytes, *, file_name: str) -> ReturnRead:
    """Read the SSDA903 header table: one person per child, never restricted by itself."""
    return _read(data, file_name, "sc_persons", HEADER_COLUMNS, _person, key_field="CHILD")


def read_ssda903_episodes(data: bytes, *, file_name: str) -> ReturnRead:
    """Read the SSDA903 episodes table: one CLA episode per row."""
    return _read(data, file_name, "sc_episodes", EPISODE_COLUMNS, _episode, key_field="DECOM")


def _person(record: Record, problems: Problems) -> dict:
    values = record.values
    return {
        "person_id": _child(values, problems),
        "upn": upn(values.get("UPN")),
        "dob": uk_date(values.get("DOB"), "DOB", problems),
        "sex": sex_code(values.get("SEX"), "SEX", problems),
        "restricted": False,
        "row_number": record.row_number,
    }


def _episode(record: Record, problems: Problems) -> dict:
    values = record.values
    child = _child(values, problems)
    start = uk_date(values.get("DECOM"), "DECOM", problems, required=True)
    end = uk_date(values.get("DEC"), "DEC", problems)
    not_before(start, end, "DECOM", "DEC", problems)
    return {
        "person_id": child,
        "episode_id": episode_id("CLA", child, start),
        "episode_type": "CLA",
        "start_date": start,
        "end_date": end,
        "legal_status": short_code(values.get("LS"), "LS", problems),
        "reason_ended": short_code(values.get("REC"), "REC", problems),
        "row_number": record.row_number,
    }


def _child(values: dict[str, str], problems: Problems) -> str | None:
    child = clean(values.get("CHILD"))
    if child is None:
        problems.append(("CHILD", "CHILD is missing"))
    return child


def _read(data: bytes, file_name: str, feed: str, required: tuple[str, ...],
          parse: Callable[[Record, Problems], dict], *, key_field: str) -> ReturnRead:
    """Shared skeleton: refuse the file, or parse each record, quarantining the ones with problems.

    A record whose key (the child for the header, child + DECOM for episodes) repeats an earlier
    record's is quarantined: the earlier one stands.
    """
    try:
        table = read_table(data)
    except TableError as exc:
        return file_refused((feed,), str(exc), data, file_name=file_name)
    missing = [column for column in required if column not in table.columns]
    if missing:
        reason = (f"required column {missing[0]} is missing" if len(missing) == 1
                  else f"required columns {', '.join(missing)} are missing")
        return file_refused((feed,), reason, data, file_name=file_name, field_name=missing[0])

    rows: list[dict] = []
    quarantined: list[Quarantined] = []
    first_row_of: dict[str, int] = {}
    for record in table.records:
        problems: Problems = []
        if record.cell_count != len(table.columns):
            problems.append((None, f"row has {record.cell_count} fields, the header has {len(table.columns)}"))
        row = parse(record, problems)
        key = row.get("episode_id", row["person_id"])
        if not problems and key in first_row_of:
            problems.append((key_field, f"{key_field} repeats row {first_row_of[key]}"))
        if problems:
            quarantined.extend((record.row_number, field, reason, record.raw) for field, reason in problems)
            continue
        first_row_of[key] = record.row_number
        rows.append(row)

    frame = persons_frame(rows) if feed == "sc_persons" else episodes_frame(rows)
    return ReturnRead({feed: frame}, quarantined, rows_read=len(table.records))

"""A statutory-return CSV table as header + data records, each with its raw bytes for quarantine.

SSDA903 tables come out of many case-management systems and spreadsheets: UTF-8 (with or without
BOM) or Windows-1252, CRLF or LF, quoted fields that may span lines, trailing blank lines. Column
names are matched without surrounding spaces and case-insensitively.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")


@dataclass(frozen=True)
class Record:
    row_number: int             # 1-based data record after the header
    values: dict[str, str]      # upper-cased column name -> cell text
    raw: bytes                  # the record's lines as they were in the file
    cell_count: int


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    records: list[Record]       # blank records (every cell empty) are left out


class TableError(ValueError):
    """The file cannot be read as a table; the message names no cell value."""


def read_table(data: bytes) -> Table:
    """Decode and split a CSV file; raises TableError when there is no usable header."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            raw_encoding = "utf-8" if encoding == "utf-8-sig" else encoding
            break
        except UnicodeDecodeError:
            continue
    else:
        raise TableError("not readable as UTF-8 or Windows-1252 text")

    lines = _LINE.findall(text)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise TableError(f"header row is not valid CSV ({exc.__class__.__name__})") from None
    if not header or not any(cell.strip() for cell in header):
        raise TableError("empty file: no header row")
    columns = tuple(cell.strip().upper() for cell in header)

    records: list[Record] = []
    consumed = reader.line_num
    row_number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TableError(f"data row {row_number + 1} is not valid CSV ({exc.__class__.__name__})") from None
        raw = "".join(lines[consumed:reader.line_num]).encode(raw_encoding)
        consumed = reader.line_num
        row_number += 1
        if not any(cell.strip() for cell in cells):
            continue
        values: dict[str, str] = {}
        for name, cell in zip(columns, cells):
            values.setdefault(name, cell)
        records.append(Record(row_number, values, raw, len(cells)))
    return Table(columns, records)

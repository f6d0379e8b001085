"""Read a delivered file through its layout into canonical, typed fields.

The raw bytes are split into rows before anything is decoded, so one bad row (undecodable bytes, a
NUL byte, too few fields, an impossible date, an unknown mark) quarantines that row only; the rest
of the file is read. A whole file is refused only when its header cannot be decoded or lacks a
column the layout requires; every data row is then still counted and quarantined, so a file always
reconciles: rows read = rows staged + rows quarantined.

A plain file (transforms/read_columns.py) is read column by column, with the same result.

Decisions a data team should know:
- A row number is the 1-based position of a data row among the non-blank rows (the header is 0).
  Blank lines are not rows.
- A file that starts with a UTF-8 byte-order mark is UTF-8, whatever the layout says.
- A row identical to an earlier one is quarantined as "duplicate of row N"; the first is kept.
- Columns the layout lists under `drop` (clinical detail) are never read; a quarantined row's
  payload is the row re-written without them, or withheld when the row cannot be split into the
  header's columns.
- A row with more fields than the header is quarantined (an unquoted delimiter shifts every column
  after it), unless the extra fields are all empty.
- Reasons name the row, the field and what was expected, never the value of an identity field.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from schemas.codes import CodeTable
from schemas.config import Layout
from schemas.feeds import FEEDS, IDENTITY
from schemas.staged import EPISODE_TYPES, REFERRAL_STATUSES
from transforms import normalise as nz
from transforms import read_columns as rc
from transforms.identifiers import compact_identifier

_BOM = codecs.BOM_UTF8


@dataclass
class QuarantinedRow:
    """A row (or, with row_number None, a whole file) that could not be staged."""

    row_number: int | None      # 1-based data row (header is row 0); None = whole file
    field: str | None           # canonical field name (or source column) at fault
    reason: str                 # clear, names no identity value
    raw: bytes                  # the raw row/bytes, to be encrypted by the caller (never logged)


@dataclass
class DataQualityIssue:
    """Something wrong in a row that was still staged (e.g. an invalid UPN kept out of linkage)."""

    row_number: int
    field: str
    issue: str


@dataclass
class ReadResult:
    """Canonical rows of a file: `frame` holds the rows read cleanly, typed, with `row_number`
    (attendance adds `category`); `partial` holds rows that split into fields but failed on some
    field, with the fields that did parse and `_failed` (the set of failed fields)."""

    feed: str
    frame: pd.DataFrame
    partial: pd.DataFrame
    quarantined: list[QuarantinedRow]
    issues: list[DataQualityIssue]
    rows_read: int
    file_error: str | None
    payloads: dict[int, bytes] = field(default_factory=dict)


# How a problem with a field is handled: "strict" quarantines the row, "lenient" stages it with the
# field empty and records a data-quality issue.
_LENIENT = frozenset({"updated_at", "minutes_late", "sex", "sen_provision", "fsm_eligible", "year_group",
                      "destination_laestab", "legal_status", "reason_ended"})
_IDENTIFIERS = frozenset({"upn", "former_upn", "nhs_number"})
# Encodings (codecs' canonical names) in which an ASCII byte is that ASCII character, always.
_ASCII_SUPERSETS = frozenset({"ascii", "utf-8", "utf-8-sig", *(f"cp125{n}" for n in range(9)),
                              *(f"iso8859-{n}" for n in range(1, 17))})


class _RowFailure(Exception):
    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason, self.field = reason, field


def _canonical_encoding(encoding: str) -> str:
    return codecs.lookup(encoding).name


def _physical_lines(text: str) -> list[str]:
    """Split on LF only (cp1252 bytes such as 0x85 must not split a line), keeping the ends."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class _LineFeed:
    """An iterator over physical lines that remembers how many the csv reader has taken."""

    def __init__(self, lines: list[str], start: int):
        self.lines, self.pos = lines, start

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _records(lines: list[str], start: int, delimiter: str, width: int | None
             ) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(first line, end line, fields or None, problem) for each CSV record from `start`.

    A quoted field may span lines; when such a record does not have the header's width, the quote
    was a stray one: its first line alone is reported unreadable and reading resumes after it.
    """
    pos = start
    while pos < len(lines):
        feed = _LineFeed(lines, pos)
        reader = csv.reader(feed, delimiter=delimiter, strict=False)
        while True:
            first = feed.pos
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                end = max(feed.pos, first + 1)
                if "field larger than field limit" in str(exc):
                    yield first, end, None, f"row has a field longer than {csv.field_size_limit()} characters"
                else:
                    yield first, end, None, "row could not be split into fields (malformed quoting or line ending)"
                pos = end
                break
            if feed.pos - first > 1 and width is not None and len(fields) != width and len(fields) > 0:
                yield first, first + 1, None, "row has an unbalanced quote and could not be split into fields"
                pos = first + 1
                break
            yield first, feed.pos, fields, None


def _strip_terminator(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


def _is_blank(fields: list[str]) -> bool:
    return len(fields) == 0 or (len(fields) == 1 and not fields[0].strip())


def _match_header(header: list[str], wanted: str) -> int | None:
    names = [h.strip() for h in header]
    exact = [i for i, h in enumerate(names) if h == wanted.strip()]
    if exact:
        return exact[0]
    loose = [i for i, h in enumerate(names) if " ".join(h.split()).casefold() == " ".join(wanted.split()).casefold()]
    return loose[0] if len(loose) == 1 else None


class _Payloads:
    """Raw rows for quarantine; rows of a layout with dropped columns are re-written without them."""

    def __init__(self, delimiter: str, drop_idx: set[int], width: int | None):
        self.delimiter, self.drop_idx, self.width = delimiter, drop_idx, width

    def __call__(self, raw: bytes, latin_fields: list[str] | None) -> tuple[bytes, str]:
        if not self.drop_idx:
            return raw, ""
        if latin_fields is None or self.width is None or len(latin_fields) != self.width:
            return b"", " (payload withheld: the row could not be separated from its clinical columns)"
        buf = io.StringIO()
        csv.writer(buf, delimiter=self.delimiter, lineterminator="").writerow(
            [v for i, v in enumerate(latin_fields) if i not in self.drop_idx])
        return buf.getvalue().encode("latin-1"), ""


def _empty_result(layout: Layout, reason: str, raw: bytes, rows_read: int = 0,
                  rows: list[QuarantinedRow] | None = None, field: str | None = None) -> ReadResult:
    columns = list(FEEDS[layout.feed]) + (["category"] if layout.feed == "attendance" else []) + ["row_number"]
    return ReadResult(layout.feed, pd.DataFrame(columns=columns, dtype=object),
                      pd.DataFrame(columns=columns + ["_failed"], dtype=object),
                      [QuarantinedRow(None, field, reason, raw)] + (rows or []), [], rows_read, reason)


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32, told by a byte-order mark or by NUL bytes in the first line; else None."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    first_line = data.split(b"\n", 1)[0]
    return "UTF-16" if first_line.count(b"\x00") > len(first_line) // 4 else None


def read_layout(data: bytes, layout: Layout, codes: CodeTable | None = None, *, by_columns: bool = True) -> ReadResult:
    """Split, decode and parse a file through its layout; see the module docstring for the rules.

    A plain file is read column by column (`by_columns`, transforms/read_columns.py), with the
    same result as row by row."""
    if not data.strip(b" \t\r\n\x00"):
        return _empty_result(layout, "empty file", b"")
    encoding = layout.encoding
    if data.startswith(_BOM):
        data, encoding = data[len(_BOM):], "utf-8"
    wide = _wide_encoding(data)
    if wide and not _canonical_encoding(encoding).startswith(("utf-16", "utf-32")):
        return _empty_result(layout, f"file is {wide}, not {layout.encoding} as layout {layout.name} says; "
                                     f"ask the sender to export {layout.encoding} or add a layout for {wide}", data)
    if _canonical_encoding(encoding).startswith(("utf-16", "utf-32")):
        try:
            data, encoding = data.decode(encoding).encode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return _empty_result(layout, f"file is not valid {layout.encoding}", b"")
    enc_label = layout.encoding
    plain = _read_plain(data, layout, codes, encoding) if by_columns else None
    if plain is not None:
        return plain

    lines = _physical_lines(data.decode("latin-1"))
    header_rec = next((r for r in _records(lines, 0, layout.delimiter, None) if r[2] is None or not _is_blank(r[2])),
                      None)
    if header_rec is None:
        return _empty_result(layout, "empty file", b"")
    h_first, h_end, latin_header, h_problem = header_rec
    header_raw = _strip_terminator("".join(lines[h_first:h_end]).encode("latin-1"))
    if latin_header is None:
        return _finish_file_error(layout, lines, h_end, None, f"header row unreadable: {h_problem}", header_raw,
                                  _Payloads(layout.delimiter, set(), None))
    width = len(latin_header)
    drop_idx = {i for i, h in enumerate(latin_header) if h.strip() in {d.strip() for d in layout.drop}}
    payloads = _Payloads(layout.delimiter, drop_idx, width)
    try:
        header = [h.encode("latin-1").decode(encoding) for h in latin_header]
    except UnicodeDecodeError:
        return _finish_file_error(layout, lines, h_end, width, f"file is not valid {enc_label}: the header row "
                                  f"cannot be decoded", header_raw, payloads)
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]

    index, reason, missing_field = _column_index(header, layout, drop_idx)
    if reason:
        return _finish_file_error(layout, lines, h_end, width, reason, header_raw, payloads, field=missing_field)

    reader = _RowReader(layout, codes, index, encoding, enc_label)
    quarantined: list[QuarantinedRow] = []
    good: list[dict] = []
    partial: list[dict] = []
    seen: dict[tuple, int] = {}
    stored_payloads: dict[int, bytes] = {}
    row_number = 0
    for first, end, latin_fields, problem in _records(lines, h_end, layout.delimiter, width):
        if latin_fields is not None and _is_blank(latin_fields):
            continue
        row_number += 1
        raw = _strip_terminator("".join(lines[first:end]).encode("latin-1"))
        payload, note = payloads(raw, latin_fields)
        stored_payloads[row_number] = payload

        def quarantine(reason: str, fld: str | None = None) -> None:
            quarantined.append(QuarantinedRow(row_number, fld, reason + note, payload))

        if latin_fields is None:
            quarantine(problem or "row could not be split into fields")
            continue
        if b"\x00" in raw:
            quarantine("row contains a NUL byte")
            continue
        overlong = len(latin_fields)
        if len(latin_fields) > width and not any(v.strip() for v in latin_fields[width:]):
            latin_fields = latin_fields[:width]
            payload, note = payloads(raw, latin_fields)
            stored_payloads[row_number] = payload
        if len(latin_fields) < width:
            quarantine(f"row has {len(latin_fields)} fields, the header has {width} (truncated row)")
            continue
        if len(latin_fields) > width:
            quarantine(f"row has {len(latin_fields)} fields, the header has {width} "
                       f"(an unquoted delimiter inside a value?)")
            continue
        key = tuple(latin_fields)
        if key in seen:
            quarantine(f"duplicate of row {seen[key]}")
            continue
        seen[key] = row_number
        try:
            values, failures, issues = reader.parse(latin_fields, row_number)
        except _RowFailure as exc:
            quarantine(exc.reason, exc.field)
            continue
        if failures and overlong > width:    # trailing empty fields hid a shifted row
            quarantine(f"row has {overlong} fields, the header has {width} (an unquoted delimiter inside a value?)")
            continue
        if failures:
            fld, reason = failures[0]
            extra = f" (and {len(failures) - 1} other field problem{'s' if len(failures) > 2 else ''})" \
                if len(failures) > 1 else ""
            quarantine(reason + extra, fld)
            partial.append({**values, "row_number": row_number, "_failed": {f for f, _ in failures}})
            continue
        reader.issues.extend(DataQualityIssue(row_number, f, msg) for f, msg in issues)
        good.append({**values, "row_number": row_number})

    columns = list(FEEDS[layout.feed]) + (["category"] if layout.feed == "attendance" else []) + ["row_number"]
    frame = pd.DataFrame(good, columns=columns, dtype=object)
    partial_frame = pd.DataFrame(partial, columns=columns + ["_failed"], dtype=object)
    return ReadResult(layout.feed, frame, partial_frame, quarantined, reader.issues, row_number, None,
                      stored_payloads)


def _column_index(header: list[str], layout: Layout, drop_idx: set[int]) -> tuple[dict[str, int], str | None, str | None]:
    """(canonical field -> column position, the reason the header cannot be read, its field)."""
    index: dict[str, int] = {}
    missing: list[tuple[str, str]] = []
    for fname, column in layout.columns.items():
        i = _match_header(header, column)
        if i is None:
            if fname not in layout.optional:
                missing.append((fname, column))
            continue
        if i in drop_idx:
            continue
        index[fname] = i
    if missing:
        names = ", ".join(f"{col!r} (field {f})" for f, col in missing)
        reason = f"missing required column{'s' if len(missing) > 1 else ''} {names}"
        if len(header) == 1 and layout.delimiter not in header[0] and len(layout.columns) > 1:
            reason += f"; the header has one column: is the delimiter {layout.delimiter!r} right?"
        return index, reason, missing[0][0]
    dup_cols = [f for f, i in index.items() if list(index.values()).count(i) > 1]
    if dup_cols:
        return index, f"fields {', '.join(sorted(dup_cols))} are mapped to the same column", None
    return index, None, None


def _read_plain(data: bytes, layout: Layout, codes: CodeTable | None, encoding: str) -> ReadResult | None:
    """The file read column by column (transforms/read_columns.py), or None when it is not plain:
    its first line is not a readable header of two or more columns, or a row needs the care of
    the row-by-row reader."""
    if _canonical_encoding(encoding) not in _ASCII_SUPERSETS or not rc.plain_body(data):
        return None
    if data.isascii():
        utf8 = data
    else:
        try:
            utf8 = data.decode(encoding).encode("utf-8")
        except UnicodeDecodeError:
            return None
    head, _, body = data.partition(b"\n")
    latin_header = _strip_terminator(head).decode("latin-1").split(layout.delimiter)
    width = len(latin_header)
    if width < 2:
        return None
    header = [h.encode("latin-1").decode(encoding) for h in latin_header]
    if header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    drop_idx = {i for i, h in enumerate(latin_header) if h.strip() in {d.strip() for d in layout.drop}}
    index, problem, _ = _column_index(header, layout, drop_idx)
    if problem:
        return None
    table = rc.split_columns(utf8.partition(b"\n")[2], width, layout.delimiter)
    if table is None:
        return None
    return _typed_columns(table, layout, _RowReader(layout, codes, index, encoding, layout.encoding),
                          rc.LinePayloads(body, layout.delimiter, drop_idx, table.num_rows))


def _typed_columns(table, layout: Layout, reader: "_RowReader", payloads: Mapping[int, bytes]) -> ReadResult:
    """A plain file's ReadResult, each column typed once per distinct text, row for row as
    `read_layout`'s loop would give it."""
    n = table.num_rows
    rows = np.arange(1, n + 1)
    values: dict[str, np.ndarray] = {}
    typed_ok: dict[str, tuple] = {}    # field -> (per-row code, distinct text typed?, distinct values)
    failed: list[tuple[str, np.ndarray, np.ndarray]] = []     # field, rows failing, reason per row
    lenient: list[tuple[str, np.ndarray, np.ndarray]] = []
    for entry in reader._plan:
        fname, _, required, i = entry[:4]
        if i is None:
            status, value, problem = np.ones(n, dtype=np.int8), np.full(n, None, dtype=object), None
        else:
            codes, texts = rc.distinct(table.column(i))
            s, v, p = rc.typed_distinct(reader, texts, entry)
            distinct_status = np.asarray(s, dtype=np.int8)
            typed_ok[fname] = (codes, distinct_status == 0, rc.objects(v))
            status, value = distinct_status[codes], rc.objects(v)[codes]
            problem = rc.objects([None if w is None else f"{fname} is {w}" for w in p])[codes] \
                if (distinct_status == 2).any() else None
        empty = status == 1
        if fname == "restricted" and i is not None:
            value[empty] = False
        elif required and empty.any():
            failed.append((fname, empty, np.full(n, f"required field {fname} is empty", dtype=object)))
        if problem is not None:
            (lenient if fname in _LENIENT else failed).append((fname, status == 2, problem))
        values[fname] = value
    if layout.feed == "attendance":
        failed.append(_resolve_marks(reader, values, typed_ok, n))
    duplicate_of = rc.first_duplicates(table)
    failures = np.zeros(n, dtype=np.int64)
    for _, mask, _ in failed:
        failures += mask
    good = (failures == 0) & (duplicate_of == 0)
    quarantined = [QuarantinedRow(int(r), None, f"duplicate of row {d}", payloads[int(r)])
                   for r, d in zip(rows[duplicate_of > 0], duplicate_of[duplicate_of > 0])]
    partial: list[dict] = []
    for k in np.flatnonzero((failures > 0) & (duplicate_of == 0)):
        problems = [(fname, reasons[k]) for fname, mask, reasons in failed if mask[k]]
        fld, reason = problems[0]
        extra = f" (and {len(problems) - 1} other field problem{'s' if len(problems) > 2 else ''})" \
            if len(problems) > 1 else ""
        quarantined.append(QuarantinedRow(int(k) + 1, fld, reason + extra, payloads[int(k) + 1]))
        partial.append({**{f: v[k] for f, v in values.items()}, "row_number": int(k) + 1,
                        "_failed": {f for f, _ in problems}})
    quarantined.sort(key=lambda q: q.row_number)
    issues = sorted((DataQualityIssue(int(k) + 1, fname, f"{words[k]}; left empty")
                     for fname, mask, words in lenient for k in np.flatnonzero(mask & good)),
                    key=lambda issue: issue.row_number)
    columns = list(FEEDS[layout.feed]) + (["category"] if layout.feed == "attendance" else []) + ["row_number"]
    frame = pd.DataFrame({c: (rows if c == "row_number" else values[c])[good] for c in columns},
                         columns=columns, dtype=object)
    partial_frame = pd.DataFrame(partial, columns=columns + ["_failed"], dtype=object)
    return ReadResult(layout.feed, frame, partial_frame, quarantined, issues, n, None, payloads)


def _resolve_marks(reader: "_RowReader", values: dict[str, np.ndarray], typed_ok: dict, n: int
                   ) -> tuple[str, np.ndarray, np.ndarray]:
    """Each mark's code in force on its session date, resolved once per distinct (mark, date)
    (sets `mark` and `category` in `values`); returns the rows whose mark is not a code in force
    then, and why."""
    category = np.full(n, None, dtype=object)
    bad = np.zeros(n, dtype=bool)
    reasons = np.full(n, None, dtype=object)
    values["category"] = category
    if "mark" not in typed_ok or "session_date" not in typed_ok:
        return "mark", bad, reasons
    (mark_codes, mark_ok, marks), (date_codes, date_ok, dates) = typed_ok["mark"], typed_ok["session_date"]
    has_mark, dated = mark_ok[mark_codes], date_ok[date_codes]
    values["mark"][has_mark & ~dated] = None
    both = np.flatnonzero(has_mark & dated)
    if not len(both):
        return "mark", bad, reasons
    pair_codes, pairs = np.unique(mark_codes[both] * len(dates) + date_codes[both], return_inverse=True)
    resolved = [reader.mark_once(marks[pair // len(dates)], dates[pair % len(dates)]) for pair in pair_codes.tolist()]
    ok = np.array([r[0] for r in resolved], dtype=bool)[pairs]
    values["mark"][both[ok]] = rc.objects([r[1].code if r[0] else None for r in resolved])[pairs][ok]
    category[both[ok]] = rc.objects([r[1].category if r[0] else None for r in resolved])[pairs][ok]
    bad[both[~ok]] = True
    reasons[both[~ok]] = rc.objects([None if r[0] else r[1] for r in resolved])[pairs][~ok]
    return "mark", bad, reasons


def _finish_file_error(layout: Layout, lines: list[str], start: int, width: int | None, reason: str,
                       header_raw: bytes, payloads: "_Payloads", field: str | None = None) -> ReadResult:
    """Whole file refused: the header goes to quarantine as the file entry, every data row after it."""
    rows: list[QuarantinedRow] = []
    n = 0
    for first, end, latin_fields, _ in _records(lines, start, layout.delimiter, width):
        if latin_fields is not None and _is_blank(latin_fields):
            continue
        n += 1
        raw = _strip_terminator("".join(lines[first:end]).encode("latin-1"))
        payload, note = payloads(raw, latin_fields)
        rows.append(QuarantinedRow(n, None, f"file not read: {reason}{note}", payload))
    return _empty_result(layout, reason, header_raw, n, rows, field)


class _RowReader:
    """Parses one row's cells into canonical values, collecting problems per field."""

    def __init__(self, layout: Layout, codes: CodeTable | None, index: dict[str, int], encoding: str,
                 enc_label: str):
        self.layout, self.codes, self.index = layout, codes, index
        self.encoding, self.enc_label = encoding, enc_label
        self.spec = FEEDS[layout.feed]
        self.sessions = {}
        for canonical, label in layout.sessions.items():
            self.sessions[str(label).strip().casefold()] = canonical
            self.sessions.setdefault(canonical.casefold(), canonical)
        self.values = {f: {str(k): str(v) for k, v in m.items()} for f, m in layout.values.items()}
        self.values_folded = {f: {k.casefold(): v for k, v in m.items()} for f, m in self.values.items()}
        self.issues: list[DataQualityIssue] = []
        # A file repeats the same dates, sessions and marks on many rows: each distinct cell text is
        # typed once per field (the result, or the problem's reason), each (mark, date) resolved once.
        self._ascii_is_ascii = _canonical_encoding(encoding) in _ASCII_SUPERSETS
        self._plan = [(fname, fspec.type, fspec.required, index.get(fname), self.values.get(fname),
                       self.values_folded.get(fname), {}) for fname, fspec in self.spec.items()]
        self._marks_seen: dict[tuple[str, dt.date], tuple[bool, object]] = {}

    def _texts(self, latin_fields: list[str]) -> list[str | None]:
        """The stripped, decoded, value-mapped text of each field (None: unmapped or empty)."""
        texts: list[str | None] = []
        for fname, _, _, i, mapping, folded, _ in self._plan:
            if i is None:
                texts.append(None)
                continue
            text = latin_fields[i]
            if not (self._ascii_is_ascii and text.isascii()):   # ASCII reads the same in these encodings
                try:
                    text = text.encode("latin-1").decode(self.encoding)
                except UnicodeDecodeError:
                    raise _RowFailure(f"row is not valid {self.enc_label} text (in {fname})", fname) from None
            text = text.strip()
            if not text:
                texts.append(None)
                continue
            if mapping is not None:
                text = mapping.get(text, folded.get(text.casefold(), text))
            texts.append(text)
        return texts

    def parse(self, latin_fields: list[str], row_number: int):
        values: dict[str, object] = dict.fromkeys(self.spec)
        failures: list[tuple[str, str]] = []
        issues: list[tuple[str, str]] = []
        # Decode every mapped cell first: an undecodable row is one problem, not one per field.
        texts = self._texts(latin_fields)
        for (fname, ftype, required, i, _, _, typed_seen), text in zip(self._plan, texts):
            if text is None:
                if fname == "restricted" and i is not None:
                    values[fname] = False      # the extract marks restricted records Y, others blank
                elif required:
                    failures.append((fname, f"required field {fname} is empty"))
                continue
            ok, typed = self.typed_once(fname, ftype, text, typed_seen)
            if ok:
                values[fname] = typed
            elif fname in _LENIENT:
                issues.append((fname, f"{fname} is {typed}; left empty"))
            else:
                failures.append((fname, f"{fname} is {typed}"))
        if self.layout.feed == "attendance":
            values["category"] = None
            if values.get("mark") is not None and isinstance(values.get("session_date"), dt.date):
                ok, code = self.mark_once(values["mark"], values["session_date"])
                if ok:
                    values["mark"], values["category"] = code.code, code.category
                else:
                    failures.append(("mark", code))
            elif values.get("mark") is not None:
                values["mark"] = None
        return values, failures, issues

    def typed_once(self, fname: str, ftype: str, text: str, typed_seen: dict) -> tuple[bool, object]:
        """(True, the canonical value) or (False, the problem's wording) of one non-empty cell,
        worked out once per distinct text of the field (`typed_seen`, the field's cache)."""
        seen = typed_seen.get(text)
        if seen is None:
            try:
                seen = (True, self._typed(fname, ftype, text))
            except nz.FieldProblem as exc:
                seen = (False, str(exc))
            typed_seen[text] = seen
        return seen

    def mark_once(self, mark: str, session_date: dt.date) -> tuple[bool, object]:
        """(True, the code in force) or (False, why not), once per distinct mark and date."""
        key = (mark, session_date)
        seen = self._marks_seen.get(key)
        if seen is None:
            try:
                seen = (True, self._resolve_mark(mark, session_date))
            except nz.FieldProblem as exc:
                seen = (False, str(exc))
            self._marks_seen[key] = seen
        return seen

    def _typed(self, fname: str, ftype: str, text: str) -> object:
        """The canonical value of one non-empty cell; depends on nothing but the field and text."""
        if fname in _IDENTIFIERS:
            return compact_identifier(text)
        if fname == "postcode":
            return nz.normalise_postcode(text)
        if ftype == "date":
            return nz.parse_date(text, self.layout.date_format)
        if ftype == "datetime":
            return nz.parse_datetime(text, self.layout.datetime_format)
        if ftype == "int":
            number = nz.parse_int(text)
            if number < 0:
                raise nz.FieldProblem("negative")
            return number
        if ftype == "bool":
            return nz.parse_bool(text)
        if ftype == "session":
            canonical = self.sessions.get(text.casefold())
            if canonical is None:
                labels = ", ".join(str(v) for v in self.layout.sessions.values())
                raise nz.FieldProblem(f"not one of the layout's session labels ({labels})")
            return canonical
        if ftype == "mark":
            return text
        if fname == "sex":
            return nz.normalise_sex(text)
        if fname == "sen_provision":
            return nz.normalise_sen(text)
        if fname == "year_group":
            return nz.normalise_year_group(text)
        if fname == "destination_laestab":
            return nz.normalise_laestab(text)
        if fname == "episode_type":
            return nz.normalise_code(text, EPISODE_TYPES)
        if fname == "referral_status":
            return nz.normalise_code(text, REFERRAL_STATUSES, lower=True)
        if fname in {"legal_status", "reason_ended"}:
            code = text.upper()
            if len(code) > 4:
                raise nz.FieldProblem("longer than 4 characters")
            return code
        return text

    def _resolve_mark(self, mark: str, session_date: dt.date):
        """The code in force for a mark, or FieldProblem with a reason safe to store."""
        if self.codes is None:
            raise nz.FieldProblem("mark cannot be checked: no attendance code table")
        known = self.codes.codes
        code = known.get(mark)
        if code is None:
            if mark.upper() in known:
                raise nz.FieldProblem(f"mark {mark!r} is lower case; codes are upper case ({mark.upper()!r})")
            shown = f" {mark!r}" if len(mark) <= 2 and mark not in IDENTITY else ""
            raise nz.FieldProblem(f"mark{shown} is not a DfE attendance code")
        if not code.in_force_on(session_date):
            if code.valid_to and session_date > code.valid_to:
                raise nz.FieldProblem(f"mark {mark!r} was withdrawn on {code.valid_to + dt.timedelta(days=1)} "
                                      f"and cannot be used on a later session")
            raise nz.FieldProblem(f"mark {mark!r} is not in force before {code.valid_from}")
        return self.codes.resolve(mark, session_date)


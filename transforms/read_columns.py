"""Read a plain delimited file column by column: the fast path of `transforms.read.read_layout`.

Most files an MIS sends are plain: one header line, one row per line, no quotes, no NUL bytes, no
stray carriage returns, every row as wide as the header, valid in the layout's encoding. Such a
file is split by pyarrow's CSV reader and each column is typed once per *distinct* cell text with
the row reader's own rules (`_RowReader`), so every value, reason and data-quality issue is the one
the row-by-row reader gives; a test holds the two readers equal on every synthetic and hostile file.
Anything else (`None` from `read._read_plain`) is read row by row, where each oddity is told by row.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv


_BLOCK_BYTES = 1 << 24     # pyarrow reads the body in blocks of this size


def plain_body(data: bytes) -> bool:
    """True when nothing in the bytes needs the row-by-row reader's care."""
    return b"\x00" not in data and b'"' not in data and data.count(b"\r") == data.count(b"\r\n")


def split_columns(body: bytes, width: int, delimiter: str) -> pa.Table | None:
    """The body's rows as `width` string columns c0.. (empty lines skipped), or None when a row is
    not `width` fields wide."""
    try:
        return pa_csv.read_csv(
            io.BytesIO(body),
            read_options=pa_csv.ReadOptions(column_names=[f"c{i}" for i in range(width)], block_size=_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False, newlines_in_values=False,
                                              ignore_empty_lines=True, invalid_row_handler=lambda _row: "error"),
            convert_options=pa_csv.ConvertOptions(column_types={f"c{i}": pa.string() for i in range(width)},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None


def first_duplicates(table: pa.Table) -> np.ndarray:
    """Per row, the 1-based number of the first earlier row identical to it in every column, or 0."""
    codes = pd.DataFrame({name: distinct(table.column(name))[0] for name in table.column_names})
    repeated = codes.duplicated(keep=False).to_numpy()
    out = np.zeros(len(codes), dtype=np.int64)
    first: dict[tuple, int] = {}
    for position, row in zip(np.flatnonzero(repeated).tolist(), codes[repeated].itertuples(index=False, name=None)):
        seen = first.setdefault(row, position + 1)
        if seen != position + 1:
            out[position] = seen
    return out


def objects(values: list) -> np.ndarray:
    """A one-dimensional object array of the values (numpy would nest sequences)."""
    return np.fromiter(values, dtype=object, count=len(values))


def distinct(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """(per-row code, distinct texts) of a string column."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


class LinePayloads(Mapping):
    """The raw bytes of data row n (1-based, empty lines not counted), found only when asked for:
    a quarantined row's payload. Rows of a layout with dropped (clinical) columns are re-written
    without them, as the row reader does."""

    def __init__(self, body: bytes, delimiter: str, drop_idx: set[int], rows: int):
        self._body, self._delimiter, self._drop_idx, self._rows = body, delimiter, drop_idx, rows
        self._starts: np.ndarray | None = None
        self._ends: np.ndarray | None = None

    def _index(self) -> None:
        view = np.frombuffer(self._body, dtype=np.uint8)
        breaks = np.flatnonzero(view == 10)
        starts = np.concatenate(([0], breaks + 1))
        ends = np.concatenate((breaks, [len(view)]))
        crlf = (ends > starts) & (view[np.maximum(ends - 1, 0)] == 13)
        ends = ends - crlf
        keep = ends > starts
        self._starts, self._ends = starts[keep], ends[keep]

    def __getitem__(self, n: int) -> bytes:
        if not 1 <= n <= self._rows:
            raise KeyError(n)
        if self._starts is None:
            self._index()
        raw = self._body[self._starts[n - 1]:self._ends[n - 1]]
        if not self._drop_idx:
            return raw
        fields = raw.decode("latin-1").split(self._delimiter)
        buf = io.StringIO()
        csv.writer(buf, delimiter=self._delimiter, lineterminator="").writerow(
            [v for i, v in enumerate(fields) if i not in self._drop_idx])
        return buf.getvalue().encode("latin-1")

    def __iter__(self):
        return iter(range(1, self._rows + 1))

    def __len__(self) -> int:
        return self._rows


def typed_distinct(reader, texts: list[str], plan_entry) -> tuple[list[int], list[object], list[str | None]]:
    """For each distinct raw cell text of one field: its status (0 value, 1 empty, 2 problem), its
    value and the problem's wording — by the row reader's own rules (`_RowReader.typed_once`)."""
    fname, ftype, _required, _i, mapping, folded, typed_seen = plan_entry
    status, values, problems = [], [], []
    for raw in texts:
        text = raw.strip()
        if not text:
            status.append(1), values.append(None), problems.append(None)
            continue
        if mapping is not None:
            text = mapping.get(text, folded.get(text.casefold(), text))
        ok, typed = reader.typed_once(fname, ftype, text, typed_seen)
        status.append(0 if ok else 2)
        values.append(typed if ok else None)
        problems.append(None if ok else typed)
    return status, values, problems

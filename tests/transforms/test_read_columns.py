"""The column-by-column reader gives exactly what the row-by-row reader gives, on every file of a
synthetic LA (hostile rows planted) and on plain files built to exercise each rule."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from schemas.config import load_config
from synthetic.generate import generate_la
from transforms import read_columns as rc
from transforms.read import read_layout

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=dt.timezone.utc)


def _same(data: bytes, layout, codes) -> bool:
    """Assert both readers agree on `data`; True when the column reader took the file."""
    rows = read_layout(data, layout, codes, by_columns=False)
    cols = read_layout(data, layout, codes)
    for name in ("feed", "rows_read", "file_error", "quarantined", "issues"):
        assert getattr(cols, name) == getattr(rows, name), name
    for name in ("frame", "partial"):
        a, b = getattr(cols, name), getattr(rows, name)
        assert list(a.columns) == list(b.columns)
        assert [[(type(v), v) for v in r] for r in a.itertuples(index=False)] == \
               [[(type(v), v) for v in r] for r in b.itertuples(index=False)], name
    assert {n: cols.payloads.get(n) for n in range(1, rows.rows_read + 1)} == \
           {n: rows.payloads.get(n) for n in range(1, rows.rows_read + 1)}
    return isinstance(cols.payloads, rc.LinePayloads)


@pytest.fixture(scope="module")
def la(tmp_path_factory):
    root = tmp_path_factory.mktemp("la")
    generate_la(root, seed=5, n_schools=3, n_pupils=240, as_of=AS_OF)
    return root


def test_every_file_of_a_synthetic_la_reads_the_same(la):
    config = load_config(la / "config")
    by_columns = 0
    files = 0
    for source in config.sources.values():
        for path in sorted((la / source.options["path"]).glob("*")):
            name = source.layout_for(path.name)
            if not name or name not in config.layouts:
                continue
            files += 1
            by_columns += _same(path.read_bytes(), config.layout(name), config.codes)
    assert files > 20
    assert by_columns > files // 2       # plain files are the common case


ATTENDANCE = ("Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late\n")


@pytest.mark.parametrize("body", [
    "1,A123456789012,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n",
    "1,,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n1,,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n",
    "1,,Smith,Ann,01/02/2015,X,5A,02/11/2026,AM,/,abc\n2,,Jones,Bo,01/02/2015,M,5A,31/02/2026,PM,Q9,\n",
    "1,,Smith,Ann,01/02/2015,F,5A,02/11/2026,am,n,\n2,,,,,,,,,,\n\n3,,Lee,Cy,1/2/2015,F,5A,02/11/2026,XX,H,5\n",
    "1,,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,L,-3\r\n\r\n2,,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,L,3\r\n",
])
def test_plain_attendance_rows_read_the_same(body):
    config = load_config(None)
    assert _same((ATTENDANCE + body).encode("cp1252"), config.layout("mis-a"), config.codes)


@pytest.mark.parametrize("data", [
    ATTENDANCE.encode() + b"1,,Dvo\x81k,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n",
    ATTENDANCE.encode() + b'1,,"Smith, Jr",Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n',
    ATTENDANCE.encode() + b"1,,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,/,,,\n",
    ATTENDANCE.encode() + b"1,,Sm\rith,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n",
    ATTENDANCE.encode() + b"1,,Smith\x00,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n",
    b"\n" + ATTENDANCE.encode() + b"1,,Smith,Ann,01/02/2015,F,5A,02/11/2026,AM,/,\n",
])
def test_files_that_are_not_plain_are_read_row_by_row_the_same(data):
    config = load_config(None)
    assert not _same(data, config.layout("mis-a"), config.codes)


def test_a_file_of_cp1252_names_is_plain():
    config = load_config(None)
    data = ATTENDANCE.encode() + "1,,O\u2019Neill,Zo\u00eb,01/02/2015,F,5A,02/11/2026,AM,/,\n".encode("cp1252")
    assert _same(data, config.layout("mis-a"), config.codes)

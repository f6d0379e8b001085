"""Generated local authorities shared by the synthetic tests (small: fast checks; medium: rates),
and an independent reader of their files (through the LA configuration and the built-in layouts).

Both LAs carry the planted bad input; the readers that check the files against the ground truth
leave out what ground_truth/quarantine.csv says the pipeline must quarantine (`clean_rows`)."""
from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import functools
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from schemas.config import Layout, load_config
from synthetic.generate import GenerationReport, generate_la

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(scope="session")
def as_of() -> dt.datetime:
    return AS_OF


@pytest.fixture(scope="session")
def small_la(tmp_path_factory) -> GenerationReport:
    return generate_la(tmp_path_factory.mktemp("small") / "la", seed=3, n_schools=3, n_pupils=300, as_of=AS_OF)


@pytest.fixture(scope="session")
def medium_la(tmp_path_factory) -> GenerationReport:
    return generate_la(tmp_path_factory.mktemp("medium") / "la", seed=11, n_schools=6, n_pupils=2000, as_of=AS_OF)


@pytest.fixture(scope="session")
def la_files() -> SimpleNamespace:
    """Readers of a generated LA: layout_of, read_rows, clean_rows, quarantined, delivery_order,
    final_marks_from_files, read_truth."""
    return SimpleNamespace(layout_of=layout_of, read_rows=read_rows, clean_rows=clean_rows, quarantined=quarantined,
                           delivery_order=delivery_order, final_marks_from_files=final_marks_from_files,
                           read_truth=read_truth)


@functools.lru_cache(maxsize=8)
def _config(config_dir: Path):
    return load_config(config_dir)


def layout_of(report: GenerationReport, source_id: str, file_name: str) -> Layout:
    """The layout the LA configuration assigns to a file (first matching pattern)."""
    config = _config(report.config_dir)
    for pattern in config.sources[source_id].files:
        if fnmatch.fnmatch(file_name, pattern.pattern):
            return config.layout(pattern.layout)
    raise AssertionError(f"no layout for {source_id}/{file_name}")


def read_rows(path: Path, layout: Layout, skip: frozenset[int] = frozenset()) -> list[dict[str, str]]:
    """Rows keyed by canonical field, read with the layout's encoding and column mapping, leaving
    out the 1-based data row numbers in `skip`."""
    with path.open(encoding=layout.encoding, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=layout.delimiter)
        by_header = {header: field for field, header in layout.columns.items()}
        return [{by_header[k]: v for k, v in row.items() if k in by_header}
                for n, row in enumerate(reader, start=1) if n not in skip]


def quarantined(report: GenerationReport) -> dict[str, frozenset[int] | None]:
    """File name -> the row numbers the pipeline must quarantine (None: the whole file is refused)."""
    out: dict[str, set[int] | None] = {}
    for r in read_truth(report, "quarantine.csv"):
        rows = out.setdefault(r["file_name"], set())
        if rows is None:
            continue
        if r["row_number"] == "":
            out[r["file_name"]] = None
        else:
            rows.add(int(r["row_number"]))
    return {k: None if v is None else frozenset(v) for k, v in out.items()}


def clean_rows(report: GenerationReport, path: Path, layout: Layout) -> list[dict[str, str]]:
    """The rows of a file the pipeline should stage: without the planted bad rows, none of a refused file."""
    skip = quarantined(report).get(path.name, frozenset())
    return [] if skip is None else read_rows(path, layout, skip)


def delivery_order(report: GenerationReport, source_id: str) -> list[tuple[Path, Layout]]:
    """Attendance files of a source in delivery order (extract date, then intraday after nightly),
    without the files the pipeline must refuse."""
    refused = {name for name, rows in quarantined(report).items() if rows is None}
    files = []
    for path in (report.inbox_dir / source_id).glob("*_attendance_*.csv"):
        if path.name in refused:
            continue
        layout = layout_of(report, source_id, path.name)
        parts = layout.parse_filename(path.name)
        assert parts is not None, path.name
        files.append(((parts["laestab"], parts["extract_date"], parts.get("extract_time") or ""), path, layout))
    return [(p, layout) for _, p, layout in sorted(files, key=lambda f: f[0])]


def final_marks_from_files(report: GenerationReport) -> dict[tuple[str, str], dict[dt.date, dict[str, str]]]:
    """(laestab, school pupil id) -> date -> session -> the last delivered mark, read from the files."""
    out: dict[tuple[str, str], dict[dt.date, dict[str, str]]] = {}
    for source_id in ("school_mis_a", "school_mis_b"):
        for path, layout in delivery_order(report, source_id):
            laestab = layout.parse_filename(path.name)["laestab"]
            sessions = {label: canonical for canonical, label in layout.sessions.items()}
            for row in clean_rows(report, path, layout):
                day = dt.datetime.strptime(row["session_date"], layout.date_format).date()
                out.setdefault((laestab, row["school_pupil_id"]), {}).setdefault(day, {})[
                    sessions[row["session"]]] = row["mark"]
    return out


def read_truth(report: GenerationReport, name: str) -> list[dict[str, str]]:
    with (report.ground_truth_dir / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))

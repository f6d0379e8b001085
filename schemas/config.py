"""Tether configuration: built-in defaults shipped with the package, overridden by an LA's folder.

The LA's folder is named by `TETHER_CONFIG_DIR` (read by the caller, never at import). Each file
there deep-merges over the built-in file of the same name; layouts are merged by layout name
(`layouts/<name>.toml`), so onboarding a new export layout needs no code.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from schemas.calendar import SchoolCalendar
from schemas.codes import CodeTable
from schemas.feeds import FEEDS, STATUTORY_READERS


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the file and the key."""


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Layout:
    """How one export format maps onto a canonical feed (FEEDS.md)."""

    name: str
    feed: str
    columns: dict[str, str]
    encoding: str = "utf-8"
    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    datetime_format: str = "iso8601"
    filename: str | None = None
    sessions: dict[str, str] = field(default_factory=lambda: {"AM": "AM", "PM": "PM"})
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def from_mapping(cls, name: str, data: dict, origin: str) -> "Layout":
        feed = data.get("feed")
        if feed not in FEEDS:
            raise ConfigError(f"{origin}: layout {name!r} has unknown feed {feed!r}; expected one of {sorted(FEEDS)}")
        columns = dict(data.get("columns", {}))
        unknown = set(columns) - set(FEEDS[feed])
        if unknown:
            raise ConfigError(f"{origin}: layout {name!r} maps unknown fields {sorted(unknown)} for feed {feed!r}")
        missing = [f for f, spec in FEEDS[feed].items() if spec.required and f not in columns]
        if missing:
            raise ConfigError(f"{origin}: layout {name!r} does not map required fields {missing}")
        if data.get("filename"):
            try:
                re.compile(data["filename"])
            except re.error as exc:
                raise ConfigError(f"{origin}: layout {name!r} filename pattern is not a regex: {exc}") from exc
        return cls(
            name=name, feed=feed, columns=columns,
            encoding=data.get("encoding", "utf-8"), delimiter=data.get("delimiter", ","),
            date_format=data.get("date_format", "%Y-%m-%d"),
            datetime_format=data.get("datetime_format", "iso8601"),
            filename=data.get("filename"),
            sessions=dict(data.get("sessions", {"AM": "AM", "PM": "PM"})),
            values={k: dict(v) for k, v in data.get("values", {}).items()},
            optional=tuple(data.get("optional", ())), drop=tuple(data.get("drop", ())),
            description=data.get("description", ""),
        )

    def parse_filename(self, file_name: str) -> dict[str, str] | None:
        """Named groups of the layout's filename pattern (laestab, extract_date, ...), or None."""
        if not self.filename:
            return {}
        match = re.match(self.filename, file_name)
        return match.groupdict() if match else None


@dataclass(frozen=True)
class FilePattern:
    pattern: str        # a glob on the file name
    layout: str


@dataclass(frozen=True)
class Source:
    """One source endpoint: a landing folder, an SFTP folder or an ODBC database."""

    source_id: str
    transport: str                      # folder | sftp | odbc
    files: tuple[FilePattern, ...]
    expected_by: dt.time | None = None  # daily delivery deadline, Europe/London
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def layout_for(self, file_name: str) -> str | None:
        """The layout of the first file pattern that matches the file name (glob, any letter case)."""
        name = file_name.lower()
        return next((f.layout for f in self.files if fnmatch.fnmatchcase(name, f.pattern.lower())), None)


@dataclass(frozen=True)
class School:
    laestab: str
    name: str
    urn: str | None = None
    source_id: str | None = None
    expected_by: dt.time | None = None


@dataclass
class TetherConfig:
    layouts: dict[str, Layout]
    codes: CodeTable
    calendar: SchoolCalendar
    flag_rules: dict[str, dict]
    recipients: dict[str, Any]
    signals: dict[str, Any]
    sources: dict[str, Source]
    schools: dict[str, School]
    policy: dict[str, Any]
    config_dir: Path | None = None
    data_quality: dict[str, Any] = field(default_factory=dict)   # data_quality.toml (transforms/quality.py)

    def layout(self, name: str) -> Layout:
        try:
            return self.layouts[name]
        except KeyError:
            raise ConfigError(f"no layout named {name!r}; known layouts: {sorted(self.layouts)}") from None


_FILES = ("attendance_codes", "calendar", "flag_rules", "recipients", "signals", "sources", "schools", "policy",
          "data_quality")


def _builtin(name: str) -> dict:
    res = resources.files("schemas").joinpath(f"defaults/{name}.toml")
    return tomllib.loads(res.read_text("utf-8")) if res.is_file() else {}


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _time_or_none(value: Any) -> dt.time | None:
    if value is None or isinstance(value, dt.time):
        return value
    return dt.time.fromisoformat(str(value))


def load_config(config_dir: str | Path | None = None) -> TetherConfig:
    """Built-in defaults merged with the LA's configuration folder, if one is given."""
    config_dir = Path(config_dir) if config_dir else None
    if config_dir is not None and not config_dir.is_dir():
        raise ConfigError(f"TETHER_CONFIG_DIR {config_dir} is not a folder")
    data: dict[str, dict] = {}
    for name in _FILES:
        merged = _builtin(name)
        if config_dir and (config_dir / f"{name}.toml").is_file():
            merged = deep_merge(merged, _read_toml(config_dir / f"{name}.toml"))
        data[name] = merged

    raw_layouts: dict[str, tuple[dict, str]] = {}
    for res in resources.files("schemas").joinpath("defaults/layouts").iterdir():
        if res.name.endswith(".toml"):
            raw_layouts[res.name[:-5]] = (tomllib.loads(res.read_text("utf-8")), f"built-in layouts/{res.name}")
    if config_dir and (config_dir / "layouts").is_dir():
        for path in sorted((config_dir / "layouts").glob("*.toml")):
            base = raw_layouts.get(path.stem, ({}, ""))[0]
            raw_layouts[path.stem] = (deep_merge(base, _read_toml(path)), str(path))
    layouts = {name: Layout.from_mapping(name, spec, origin) for name, (spec, origin) in raw_layouts.items()}

    sources = {}
    for sid, spec in data["sources"].get("sources", {}).items():
        files = tuple(FilePattern(f["pattern"], f["layout"]) for f in spec.get("files", []))
        for f in files:
            if f.layout not in layouts and f.layout not in STATUTORY_READERS:
                raise ConfigError(f"sources.toml: source {sid!r} names unknown layout {f.layout!r}; "
                                  f"known: {sorted(layouts) + sorted(STATUTORY_READERS)}")
        options = {k: v for k, v in spec.items() if k not in {"transport", "files", "expected_by", "description"}}
        sources[sid] = Source(sid, spec.get("transport", "folder"), files,
                              _time_or_none(spec.get("expected_by")), options, spec.get("description", ""))
    schools = {
        str(laestab): School(str(laestab), spec.get("name", str(laestab)), spec.get("urn"),
                             spec.get("source"), _time_or_none(spec.get("expected_by")))
        for laestab, spec in data["schools"].get("schools", {}).items()
    }
    return TetherConfig(
        layouts=layouts,
        codes=CodeTable.from_mapping(data["attendance_codes"]),
        calendar=SchoolCalendar.from_mapping(data["calendar"]),
        flag_rules=data["flag_rules"].get("rules", {}),
        recipients=data["recipients"],
        signals=data["signals"],
        sources=sources,
        schools=schools,
        policy=data["policy"],
        config_dir=config_dir,
        data_quality=data["data_quality"],
    )

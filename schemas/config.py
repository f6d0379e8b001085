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

from pydantic import BaseModel, ValidationError

from schemas import config_models as m
from schemas.calendar import SchoolCalendar
from schemas.codes import CodeTable
from schemas.config_errors import problems as _problems
from schemas.errors import ConfigError, TetherError
from schemas.feeds import STATUTORY_READERS

__all__ = ["ConfigError", "TetherError", "Layout", "FilePattern", "Source", "School", "TetherConfig",
           "load_config", "deep_merge"]


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
    """How one export format maps onto a canonical feed (docs/layouts.md)."""

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
        """A layout from its TOML table; ConfigError (one line per problem) names `origin` and the key."""
        spec = _validate(m.LayoutFile, data, origin)
        return cls(
            name=name, feed=spec.feed, columns=dict(spec.columns), encoding=spec.encoding,
            delimiter=spec.delimiter, date_format=spec.date_format, datetime_format=spec.datetime_format,
            filename=spec.filename, sessions={"AM": spec.sessions.AM, "PM": spec.sessions.PM},
            values={k: dict(v) for k, v in spec.values.items()}, optional=tuple(spec.optional),
            drop=tuple(spec.drop), description=spec.description,
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


_FILES = {"attendance_codes": m.AttendanceCodesFile, "calendar": m.CalendarFile, "flag_rules": m.FlagRulesFile,
          "recipients": m.RecipientsFile, "signals": m.SignalsFile, "sources": m.SourcesFile,
          "schools": m.SchoolsFile, "policy": m.PolicyFile, "data_quality": m.DataQualityFile}
_SOURCE_KEYS = {"transport", "files", "expected_by", "description"}


def _validate(model: type[BaseModel], data: dict, origin: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.from_problems(_problems(exc, origin)) from None


def _builtin(name: str) -> dict:
    res = resources.files("schemas").joinpath(f"defaults/{name}.toml")
    return tomllib.loads(res.read_text("utf-8")) if res.is_file() else {}


def _read_toml(path: Path, origin: str) -> dict:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not UTF-8 text; save it as UTF-8") from None


class _Problems:
    """Problems gathered across files, so that one check reports all of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def run(self, fn, *args):
        try:
            return fn(*args)
        except ConfigError as exc:
            self.lines.extend(exc.problems)
            return None


def _source(sid: str, spec: Any) -> Source:
    files = tuple(FilePattern(f.pattern, f.layout) for f in getattr(spec, "files", ()))
    options = spec.model_dump(exclude=_SOURCE_KEYS, exclude_unset=True)
    return Source(sid, spec.transport, files, spec.expected_by, options, spec.description)


def load_config(config_dir: str | Path | None = None) -> TetherConfig:
    """Built-in defaults merged with the LA's configuration folder, if one is given.

    Every file is validated against its model (schemas/config_models.py); ConfigError lists every
    problem found, one line each, and its message is the first of them.
    """
    config_dir = Path(config_dir) if config_dir else None
    if config_dir is not None and not config_dir.is_dir():
        raise ConfigError(f"TETHER_CONFIG_DIR {config_dir} is not a folder; set it to the LA's configuration folder")
    found = _Problems()
    specs: dict[str, Any] = {}
    for name, model in _FILES.items():
        merged, origin = _builtin(name), f"built-in defaults/{name}.toml"
        if config_dir and (config_dir / f"{name}.toml").is_file():
            origin = f"{name}.toml"
            own = found.run(_read_toml, config_dir / f"{name}.toml", origin)
            if own is None:
                continue
            merged = deep_merge(merged, own)
        specs[name] = found.run(_validate, model, merged, origin)

    raw_layouts: dict[str, tuple[dict, str]] = {}
    for res in resources.files("schemas").joinpath("defaults/layouts").iterdir():
        if res.name.endswith(".toml"):
            raw_layouts[res.name[:-5]] = (tomllib.loads(res.read_text("utf-8")), f"built-in layouts/{res.name}")
    if config_dir and (config_dir / "layouts").is_dir():
        for path in sorted((config_dir / "layouts").glob("*.toml")):
            own = found.run(_read_toml, path, f"layouts/{path.name}")
            if own is not None:
                base = raw_layouts.get(path.stem, ({}, ""))[0]
                raw_layouts[path.stem] = (deep_merge(base, own), f"layouts/{path.name}")
    layouts = {}
    for name, (spec, origin) in raw_layouts.items():
        layout = found.run(Layout.from_mapping, name, spec, origin)
        if layout is not None:
            layouts[name] = layout

    sources: dict[str, Source] = {}
    if specs.get("sources") is not None:
        for sid, spec in specs["sources"].sources.items():
            sources[sid] = _source(sid, spec)
            for i, f in enumerate(sources[sid].files):
                if f.layout not in raw_layouts and f.layout not in STATUTORY_READERS:
                    found.lines.append(
                        f"sources.toml: sources.{sid}.files[{i}].layout: {f.layout!r} is not a known layout; "
                        f"expected one of {', '.join(sorted(raw_layouts) + sorted(STATUTORY_READERS))} "
                        f"(or add layouts/{f.layout}.toml)")
    if found.lines:
        raise ConfigError.from_problems(found.lines)

    schools = {laestab: School(laestab, s.name, s.urn, s.source, s.expected_by)
               for laestab, s in specs["schools"].schools.items()}
    return TetherConfig(
        layouts=layouts,
        codes=CodeTable.from_mapping(specs["attendance_codes"].model_dump()),
        calendar=SchoolCalendar.from_mapping(specs["calendar"].model_dump(exclude_none=True)),
        flag_rules=specs["flag_rules"].model_dump()["rules"],
        recipients=specs["recipients"].model_dump(exclude_none=True),
        signals=specs["signals"].model_dump(),
        sources=sources,
        schools=schools,
        policy=specs["policy"].model_dump(),
        config_dir=config_dir,
        data_quality=specs["data_quality"].model_dump(),
    )

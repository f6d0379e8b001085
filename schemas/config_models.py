"""Typed models of every file of an LA configuration folder (and of the built-in defaults).

Each file is validated whole against its model before Tether uses it: a misspelt key, a value of
the wrong kind or a choice that does not exist is refused with one line naming the file, the key
path and what is allowed (`schemas.config_errors`). Every field carries a `description`, so the
configuration reference can be generated from these models (`CONFIG_FILES` lists them by file).

The models check one file at a time; what needs two files (a source naming a layout, a school
naming a source) is checked in `schemas.config.load_config` and `tether config check`.
"""
from __future__ import annotations

import codecs
import datetime as dt
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.codes import CATEGORIES
from schemas.feeds import FEEDS, ODBC_RELATIONS

TRANSPORTS = ("folder", "sftp", "odbc")
COHORTS = ("current_cwsw", "ever6_cwsw", "cla", "ehcp", "sen_support")
RECIPIENT_KINDS = ("allocated_worker", "virtual_school", "virtual_school_if_cla")
SFTP_COMPLETENESS = ("stable", "done_marker", "rename")
SFTP_AFTER_SUCCESS = ("leave", "archive")


class ConfigModel(BaseModel):
    """A table of a configuration file: only the keys below are allowed (a misspelt key is refused)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _only_known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = sorted(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": key, "allowed": allowed})
        return data


# -- value types with an operator's error message ---------------------------------------------

_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")
_YYYY_MM_DD = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _clock_time(value: Any) -> Any:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str) and _HH_MM.match(value.strip()):
        return dt.time.fromisoformat(value.strip())
    raise PydanticCustomError("not_a_time", '{value} is not a time; write HH:MM, e.g. "09:30"',
                              {"value": repr(value)})


def _calendar_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _YYYY_MM_DD.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PydanticCustomError("not_a_date", "{value} is not a date; write YYYY-MM-DD without quotes, "
                              "e.g. 2026-09-03", {"value": repr(value)})


def _laestab(value: Any) -> Any:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and re.fullmatch(r"\d{7}", text):
        return text
    raise PydanticCustomError("not_a_laestab", "{value} is not a LAESTAB; write the 7 digits (LA number and "
                              'establishment number) in quotes, e.g. "8864001"', {"value": repr(value)})


def _text(value: Any) -> Any:
    """A reference number may be written as a TOML integer; it is kept as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("not_a_regex", "{value} is not a regular expression ({problem})",
                                  {"value": repr(value), "problem": str(exc)}) from None
    return value


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise PydanticCustomError("not_an_encoding", "{value} is not a text encoding Python knows; e.g. utf-8, "
                                  "utf-8-sig, cp1252", {"value": repr(value)}) from None
    return value


def _single_character(value: str) -> str:
    if len(value) != 1:
        raise PydanticCustomError("not_one_character", "{value} is not a single character, e.g. \",\" or \"|\"",
                                  {"value": repr(value)})
    return value


def _identifier(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", value):
        raise PydanticCustomError("not_an_identifier", "{value} is not a plain table or column name (letters, "
                                  "digits, _ and . only)", {"value": repr(value)})
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise PydanticCustomError("not_an_env_name", "{value} is not an environment variable name (letters, "
                                  "digits and _ only), e.g. \"TETHER_SFTP_KEY_FILE\"", {"value": repr(value)})
    return value


def _time_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("not_a_time_zone", '{value} is not a known time zone, e.g. "Europe/London"',
                                  {"value": repr(value)}) from None
    return value


ClockTime = Annotated[dt.time, BeforeValidator(_clock_time)]
CalendarDate = Annotated[dt.date, BeforeValidator(_calendar_date)]
Laestab = Annotated[str, BeforeValidator(_laestab)]
Text = Annotated[str, BeforeValidator(_text)]
Regex = Annotated[str, AfterValidator(_regex)]
Encoding = Annotated[str, AfterValidator(_encoding)]
Identifier = Annotated[str, AfterValidator(_identifier)]
EnvName = Annotated[str, AfterValidator(_env_name)]
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
Fraction = Annotated[float, Field(ge=0, le=1)]


# -- sources.toml ---------------------------------------------------------------------------

class FilePatternModel(ConfigModel):
    """Which files of a source are taken, and the layout (or statutory reader) that reads them."""

    pattern: str = Field(description="Glob on the file name, any letter case, e.g. \"*_attendance_*.csv\".")
    layout: str = Field(description="Name of the layout (layouts/<name>.toml, built in or the LA's) or statutory "
                                    "reader (cin-census, ssda903-header, ssda903-episodes) that reads these files.")


class SourceBase(ConfigModel):
    """What every source has, whatever its transport."""

    expected_by: ClockTime | None = Field(None, description="Daily delivery deadline, Europe/London, as \"HH:MM\". "
                                          "A source whose extract has not arrived by then is reported late.")
    description: str = Field("", description="What the source is, for operators (shown in the Dagster UI).")


class FolderSourceModel(SourceBase):
    """A landing folder on this machine (or a mounted share) that a partner's export drops files into."""

    transport: Literal["folder"] = Field("folder", description="How files arrive: `folder` (the default).")
    files: list[FilePatternModel] = Field(min_length=1, description="File patterns taken from the folder, each "
                                          "with its layout; the first matching pattern wins.")
    path: str | None = Field(None, description="The folder; absolute, or relative to the parent of the "
                             "configuration folder. Default: the source's name.")
    stable_seconds: float = Field(0, ge=0, description="A file is taken only once its size and time have not "
                                  "changed for this many seconds (0: at once).")
    in_flight_stale_seconds: float = Field(86400, gt=0, description="A file still arriving (a temporary "
                                           "name such as *.part, or not yet complete) for this long is "
                                           "reported as stale in flight: an abandoned upload (default 24 h).")


def _env_twin(option: str) -> Any:
    return Field(None, description=f"Name of the environment variable holding `{option}`, instead of writing "
                                   f"`{option}` here (for secrets and machine-specific values).")


class SftpSourceModel(SourceBase):
    """A partner's SFTP folder: Tether connects with a key, trusting only a pinned host key.

    Every option may instead be given as `<option>_env`, naming the environment variable that holds it.
    """

    transport: Literal["sftp"] = Field(description="How files arrive: `sftp`.")
    files: list[FilePatternModel] = Field(min_length=1, description="File patterns taken from the remote folder, "
                                          "each with its layout; the first matching pattern wins.")
    poll_seconds: int = Field(60, ge=1, description="How often the Dagster sensor lists the folder.")
    host: str | None = Field(None, description="Server name or address (or host_env).")
    host_env: EnvName | None = _env_twin("host")
    port: int | None = Field(None, ge=1, le=65535, description="Server port (default 22).")
    port_env: EnvName | None = _env_twin("port")
    username: str | None = Field(None, description="Login name (or username_env).")
    username_env: EnvName | None = _env_twin("username")
    key_file: str | None = Field(None, description="Private key file used to log in (or key_file_env).")
    key_file_env: EnvName | None = _env_twin("key_file")
    key_passphrase: str | None = Field(None, description="Passphrase of the key file, if it has one; prefer "
                                       "key_passphrase_env.")
    key_passphrase_env: EnvName | None = _env_twin("key_passphrase")
    known_hosts_file: str | None = Field(None, description="known_hosts file pinning the server's host key; an "
                                         "unknown or changed key is refused (or known_hosts_file_env).")
    known_hosts_file_env: EnvName | None = _env_twin("known_hosts_file")
    remote_dir: str | None = Field(None, description="Folder on the server to take files from (default \".\").")
    remote_dir_env: EnvName | None = _env_twin("remote_dir")
    patterns: str | list[str] | None = Field(None, description="Filename globs to list on the server; default: "
                                             "the `files` patterns.")
    completeness: Literal["stable", "done_marker", "rename"] | None = Field(
        None, description="How a complete file is told apart: `stable` (size and time unchanged for "
                          "stable_seconds; the default), `done_marker` (<name>.done written after it) or "
                          "`rename` (uploaded under *.part, *.tmp, *.filepart or a leading dot, then renamed).")
    completeness_env: EnvName | None = _env_twin("completeness")
    stable_seconds: float | None = Field(None, ge=0, description="With completeness = stable: seconds a file "
                                         "must stay unchanged (default 30).")
    stable_seconds_env: EnvName | None = _env_twin("stable_seconds")
    after_success: Literal["leave", "archive"] | None = Field(
        None, description="What happens to a remote file once landed: `leave` it (the default) or `archive` "
                          "it into archive_dir.")
    after_success_env: EnvName | None = _env_twin("after_success")
    archive_dir: str | None = Field(None, description="Where archived files go; relative paths are inside remote_dir.")
    archive_dir_env: EnvName | None = _env_twin("archive_dir")
    connect_timeout: float | None = Field(None, gt=0, description="Seconds to wait for a connection (default 15).")
    connect_timeout_env: EnvName | None = _env_twin("connect_timeout")
    max_retries: int | None = Field(None, ge=0, description="Reconnections after a network error (default 3).")
    max_retries_env: EnvName | None = _env_twin("max_retries")
    backoff_seconds: float | None = Field(None, ge=0, description="Wait before the first retry, doubling each "
                                          "time (default 2).")
    backoff_seconds_env: EnvName | None = _env_twin("backoff_seconds")
    io_timeout: float | None = Field(None, gt=0, description="Seconds a read may stall before the connection is "
                                     "dropped (default 60).")
    io_timeout_env: EnvName | None = _env_twin("io_timeout")
    in_flight_stale_seconds: float | None = Field(None, gt=0, description="A file still arriving (a temporary "
                                                  "name, or not yet complete) for this long is reported as "
                                                  "stale in flight (default 86400, 24 h).")
    in_flight_stale_seconds_env: EnvName | None = _env_twin("in_flight_stale_seconds")

    @model_validator(mode="after")
    def _needs_connection(self) -> "SftpSourceModel":
        for option in ("host", "username", "key_file", "known_hosts_file"):
            if getattr(self, option) is None and getattr(self, f"{option}_env") is None:
                raise PydanticCustomError("sftp_option_missing", "SFTP sources need {option} (or {option}_env)",
                                          {"option": option, "key": option})
        if self.after_success == "archive" and self.archive_dir is None and self.archive_dir_env is None:
            raise PydanticCustomError("sftp_option_missing", "after_success = \"archive\" needs archive_dir "
                                      "(or archive_dir_env)", {"option": "archive_dir", "key": "archive_dir"})
        return self


class OdbcRelationModel(ConfigModel):
    """Where a docs/layouts.md#school-mis-over-odbc relation (pupils or marks) lives in the MIS database."""

    table: Identifier = Field(description="Table or view, e.g. \"mis.marks\".")
    watermark_column: Identifier = Field("last_modified", description="Column that grows when a row is added or "
                                         "changed (a timestamp, or a SQL Server rowversion): pulls are incremental.")
    columns: dict[str, Identifier] = Field(default_factory=dict, description="docs/layouts.md#school-mis-over-odbc field -> the "
                                           "database's column, where the names differ; \"\" for a field the "
                                           "database does not hold.")


class OdbcRelationsModel(ConfigModel):
    """The two relations pulled from an ODBC source."""

    pupils: OdbcRelationModel = Field(description="Pupils on roll.")
    marks: OdbcRelationModel = Field(description="Attendance marks.")

    @model_validator(mode="after")
    def _fields_of_the_relation(self) -> "OdbcRelationsModel":
        for name, (fields, required) in ODBC_RELATIONS.items():
            for field, column in getattr(self, name).columns.items():
                if field not in fields:
                    raise PydanticCustomError(
                        "unknown_field", "{field} is not a field of the {relation} relation; expected one of {allowed}",
                        {"field": repr(field), "relation": name, "allowed": ", ".join(fields),
                         "key": f"{name}.columns.{field}"})
                if field in required and not column:
                    raise PydanticCustomError(
                        "unmapped_fields", "{field} is required and cannot be left unmapped (\"\")",
                        {"field": repr(field), "key": f"{name}.columns.{field}"})
        return self


class OdbcSourceModel(SourceBase):
    """A school MIS database read over ODBC: one school's own, or a hosted database for several."""

    transport: Literal["odbc"] = Field(description="How data arrives: `odbc`.")
    connection_env: EnvName = Field(description="Environment variable holding the ODBC connection string or DSN "
                                    "name (never written in configuration).")
    school_column: Identifier | None = Field(None, description="A database for several schools: the column "
                                             "holding each row's LAESTAB. Set this or laestab.")
    laestab: Laestab | None = Field(None, description="A school's own database: its LAESTAB. Set this or "
                                    "school_column.")
    schools: list[Laestab] = Field(default_factory=list, description="Hosted database: pull only these schools "
                                   "(default all).")
    relations: OdbcRelationsModel = Field(description="Where the pupils and marks relations live.")
    timezone: TimeZoneName | None = Field(None, description="Zone of the database's naive datetimes, e.g. "
                                          "\"Europe/London\" (default: taken as UTC).")
    chunk_rows: int = Field(5000, ge=1, description="Rows fetched and landed per chunk.")
    max_retries: int = Field(3, ge=0, description="Reconnections after a connection error.")
    backoff_seconds: float = Field(2.0, ge=0, description="Wait before the first retry, doubling each time.")
    login_timeout_seconds: int = Field(15, ge=1, description="Seconds to wait for the database to accept a login.")
    query_timeout_seconds: int = Field(300, ge=0, description="Seconds one statement or fetch may run before "
                                       "it is cancelled and the pull fails with a one-line error (0: no limit).")
    watermark_overlap_seconds: int = Field(600, ge=0, description="Date and datetime watermarks: each pull "
                                           "re-reads this far below the stored watermark, so a row committed "
                                           "late by a long MIS transaction is not lost; rows already pulled "
                                           "are not landed again. Set above the MIS's longest transaction.")
    watermark_overlap_count: int = Field(0, ge=0, description="Integer and rowversion watermarks: each pull "
                                         "re-reads this many values below the stored watermark (0: none).")
    poll_seconds: int = Field(120, ge=1, description="How often the Dagster sensor asks the database for new rows.")

    @model_validator(mode="after")
    def _one_school_setting(self) -> "OdbcSourceModel":
        if bool(self.school_column) == bool(self.laestab):
            raise PydanticCustomError("odbc_school", "set exactly one of school_column (a database for several "
                                      "schools) or laestab (a school's own database)")
        return self


def _transport_of(value: Any) -> Any:
    if isinstance(value, dict):
        transport = value.get("transport", "folder")
        return transport if isinstance(transport, str) else repr(transport)
    return getattr(value, "transport", None)


SourceModel = Annotated[
    Union[Annotated[FolderSourceModel, Tag("folder")], Annotated[SftpSourceModel, Tag("sftp")],
          Annotated[OdbcSourceModel, Tag("odbc")]],
    Discriminator(_transport_of),
]


class SourcesFile(ConfigModel):
    """sources.toml: every endpoint data arrives from, by source name."""

    sources: dict[str, SourceModel] = Field(default_factory=dict, description="[sources.<name>]: one table per "
                                            "source; `transport` (folder, sftp, odbc) decides its other keys.")


# -- schools.toml -----------------------------------------------------------------------------

class SchoolModel(ConfigModel):
    """A school that sends its registers to Tether."""

    name: str = Field(description="The school's name, as operators know it.")
    urn: Text | None = Field(None, description="The school's unique reference number (GIAS URN).")
    source: str | None = Field(None, description="Name of the source (sources.toml) its registers arrive from.")
    expected_by: ClockTime | None = Field(None, description="Daily deadline for the register, Europe/London, as "
                                          "\"HH:MM\"; later is reported late.")


class SchoolsFile(ConfigModel):
    """schools.toml: the schools of the LA, by LAESTAB."""

    schools: dict[Laestab, SchoolModel] = Field(default_factory=dict, description="[schools.\"<LAESTAB>\"]: one "
                                                "table per school, keyed by its 7-digit LAESTAB in quotes.")


# -- calendar.toml -----------------------------------------------------------------------------

class SessionTimesModel(ConfigModel):
    """When each session starts."""

    AM: ClockTime | None = Field(None, description="Morning session start, \"HH:MM\".")
    PM: ClockTime | None = Field(None, description="Afternoon session start, \"HH:MM\".")


class TermModel(ConfigModel):
    """One term of the school year."""

    name: str = Field(description="The term's name, e.g. \"autumn\"; measures are reported per term.")
    start: CalendarDate = Field(description="First day of term, YYYY-MM-DD.")
    end: CalendarDate = Field(description="Last day of term, YYYY-MM-DD.")

    @model_validator(mode="after")
    def _in_order(self) -> "TermModel":
        if self.end < self.start:
            raise PydanticCustomError("dates_out_of_order", "end {end} is before start {start}",
                                      {"end": str(self.end), "start": str(self.start)})
        return self


class ClosureModel(ConfigModel):
    """Days inside term with no school: half terms, bank holidays, INSET days."""

    start: CalendarDate = Field(description="First day closed, YYYY-MM-DD.")
    end: CalendarDate = Field(description="Last day closed, YYYY-MM-DD (the same as start for one day).")
    reason: str = Field("", description="Why, for operators, e.g. \"autumn half term\".")

    @model_validator(mode="after")
    def _in_order(self) -> "ClosureModel":
        if self.end < self.start:
            raise PydanticCustomError("dates_out_of_order", "end {end} is before start {start}",
                                      {"end": str(self.end), "start": str(self.start)})
        return self


class SchoolCalendarModel(ConfigModel):
    """One school's differences from the LA-wide calendar."""

    sessions: SessionTimesModel = Field(default_factory=SessionTimesModel, description="Session start times that "
                                        "differ from the LA's.")
    register_close_minutes: int | None = Field(None, ge=0, le=240, description="Minutes after the session starts "
                                               "at which this school's register closes.")
    closures: list[ClosureModel] = Field(default_factory=list, description="This school's own closures, added to "
                                         "the LA's.")


class CalendarFile(ConfigModel):
    """calendar.toml: terms, closures, session start times and register close, LA-wide and per school."""

    timezone: Literal["Europe/London"] = Field("Europe/London", description="Times are in Europe/London.")
    register_close_minutes: int = Field(30, ge=0, le=240, description="Minutes after a session starts at which "
                                        "registers close; an unmarked child after that may be flagged.")
    sessions: SessionTimesModel = Field(default_factory=lambda: SessionTimesModel(AM="08:40", PM="13:15"),
                                        description="LA-wide session start times.")
    terms: list[TermModel] = Field(default_factory=list, description="[[terms]]: the terms of the school year.")
    closures: list[ClosureModel] = Field(default_factory=list, description="[[closures]]: LA-wide closures in term.")
    schools: dict[Laestab, SchoolCalendarModel] = Field(default_factory=dict, description="[schools.\"<LAESTAB>\"]"
                                                        ": per-school overrides.")


# -- attendance_codes.toml ----------------------------------------------------------------------

class AttendanceCodeModel(ConfigModel):
    """One DfE register code."""

    category: Literal["present", "aea", "authorised", "unauthorised", "not_possible"] = Field(
        description="Statistical category: present, aea (approved educational activity), authorised, "
                    "unauthorised or not_possible (not counted in possible sessions).")
    meaning: str = Field("", description="What the code means.")
    valid_from: CalendarDate | None = Field(None, description="First session date the code may carry.")
    valid_to: CalendarDate | None = Field(None, description="Last session date the code may carry (withdrawn after).")
    maps_to: str | None = Field(None, description="A withdrawn code's successor, used for sessions before valid_to.")


class AttendanceCodesFile(ConfigModel):
    """attendance_codes.toml: the DfE attendance code table, versioned by session date."""

    codes: dict[str, AttendanceCodeModel] = Field(description="[codes.<CODE>]: one table per code.")

    @model_validator(mode="after")
    def _successors_exist(self) -> "AttendanceCodesFile":
        for code, spec in self.codes.items():
            if spec.maps_to is not None and spec.maps_to not in self.codes:
                raise PydanticCustomError("unknown_code", "code {code} maps_to {target}, which is not a code here",
                                          {"code": repr(code), "target": repr(spec.maps_to)})
        return self


assert tuple(AttendanceCodeModel.model_fields["category"].annotation.__args__) == CATEGORIES


# -- signals.toml -----------------------------------------------------------------------------

class SignalsFile(ConfigModel):
    """signals.toml: thresholds of the attendance signals (docs/dfe-rules.md#measures)."""

    persistent_absence_threshold: Fraction = Field(0.10, description="Absence rate at or above which a pupil is "
                                                   "persistently absent (DfE: 0.10).")
    severe_absence_threshold: Fraction = Field(0.50, description="Absence rate at or above which a pupil is "
                                               "severely absent (DfE: 0.50).")
    consecutive_unauthorised_marks: list[str] = Field(["G", "N", "O"], description="Marks that extend a run of "
                                                      "consecutive unauthorised absence.")
    count_u_as_unauthorised_run: bool = Field(False, description="Whether U (arrived after the register closed) "
                                              "extends such a run.")
    ever6_years: int = Field(6, ge=1, description="Years looked back for the Ever6 children-with-a-social-worker "
                             "cohort.")
    ever6_excluded_legal_status: list[str] = Field(["V1", "V3", "V4"], description="CLA legal statuses (short "
                                                   "breaks) that do not count for Ever6.")


# -- flag_rules.toml ----------------------------------------------------------------------------

class FlagRuleModel(ConfigModel):
    """One flag rule: which children, which marks, who is told."""

    description: str = Field("", description="What the rule catches, for operators and recipients.")
    cohort: Literal["current_cwsw", "ever6_cwsw", "cla", "ehcp", "sen_support"] = Field(
        description="The children the rule watches: current_cwsw (open CIN, CPP or CLA episode), ever6_cwsw, cla, "
                    "ehcp or sen_support.")
    marks: list[str] = Field(default_factory=list, description="Register marks that raise the flag.")
    no_mark_after_register_close: bool = Field(False, description="Also flag a child with no mark once the "
                                               "register has closed.")
    recipients: list[Literal["allocated_worker", "virtual_school", "virtual_school_if_cla"]] = Field(
        default_factory=list, description="Who is told: allocated_worker (else the team's duty inbox), "
                                          "virtual_school, virtual_school_if_cla.")
    purpose: str = Field("", description="The purpose of the disclosure, recorded in the audit log.")


class FlagRulesFile(ConfigModel):
    """flag_rules.toml: the flag rules, by name."""

    rules: dict[str, FlagRuleModel] = Field(default_factory=dict, description="[rules.<name>]: one table per rule.")


# -- recipients.toml ----------------------------------------------------------------------------

class VirtualSchoolModel(ConfigModel):
    """The Virtual School for looked-after children."""

    address: str = Field(description="The Virtual School's email address.")


class RecipientsFile(ConfigModel):
    """recipients.toml: where flags go when a rule names a recipient kind."""

    lawful_basis: str = Field("", description="Lawful basis of the disclosures, recorded with each.")
    team_duty_inbox: dict[str, str] = Field(default_factory=dict, description="Team id -> duty inbox address; "
                                            "`default` is used for any other team, {team_id} is filled in.")
    virtual_school: VirtualSchoolModel | None = Field(None, description="The Virtual School.")


# -- policy.toml ------------------------------------------------------------------------------

class PolicyFile(ConfigModel):
    """policy.toml: what each recipient may be told, on which channel (enforced by sharing/policy.py)."""

    lawful_basis: str = Field("", description="Lawful basis of the sharing, recorded in the audit log.")
    channels: dict[str, dict[str, list[str]]] = Field(default_factory=dict, description="[channels.<channel>]: "
                                                      "recipient kind -> the message fields it may receive.")


# -- layouts/<name>.toml ------------------------------------------------------------------------

class SessionLabelsModel(ConfigModel):
    """How the export writes each session."""

    AM: str = Field("AM", description="The export's label for the morning session, e.g. \"Morning\".")
    PM: str = Field("PM", description="The export's label for the afternoon session, e.g. \"Afternoon\".")


class LayoutFile(ConfigModel):
    """layouts/<name>.toml: how one export format maps onto a canonical feed (docs/layouts.md)."""

    description: str = Field("", description="What the export is, for operators.")
    feed: str = Field(description="The canonical feed the file carries: " + ", ".join(FEEDS) + ".")
    columns: dict[str, str] = Field(description="Canonical field -> the file's column header. Every required "
                                    "field of the feed must be mapped.")
    encoding: Encoding = Field("utf-8", description="Text encoding, e.g. utf-8, utf-8-sig, cp1252.")
    delimiter: Annotated[str, AfterValidator(_single_character)] = Field(",", description="Column separator.")
    date_format: str = Field("%Y-%m-%d", description="strftime format of dates, e.g. \"%d/%m/%Y\".")
    datetime_format: str = Field("iso8601", description="\"iso8601\" or a strftime format of date-times.")
    filename: Regex | None = Field(None, description="Regular expression the file name must match; named groups "
                                   "laestab, extract_date (YYYYMMDD) and extract_time (HHMM) are read from it.")
    sessions: SessionLabelsModel = Field(default_factory=SessionLabelsModel, description="The export's session "
                                         "labels.")
    values: dict[str, dict[str, str]] = Field(default_factory=dict, description="[values.<field>]: the file's "
                                              "value -> the canonical value, e.g. values.sex \"1\" = \"M\".")
    optional: list[str] = Field(default_factory=list, description="Mapped fields whose column may be absent from "
                                "a file.")
    drop: list[str] = Field(default_factory=list, description="Columns of the file discarded on read, never stored.")

    @model_validator(mode="after")
    def _fields_of_the_feed(self) -> "LayoutFile":
        if self.feed not in FEEDS:
            raise PydanticCustomError("unknown_feed", "{feed} is not allowed; expected one of {allowed}",
                                      {"feed": repr(self.feed), "allowed": ", ".join(FEEDS), "key": "feed"})
        fields = FEEDS[self.feed]
        for table in ("columns", "values"):
            for name in getattr(self, table):
                if name not in fields:
                    raise PydanticCustomError(
                        "unknown_field", "{field} is not a field of feed {feed}; expected one of {allowed}",
                        {"field": repr(name), "feed": repr(self.feed), "allowed": ", ".join(fields),
                         "key": f"{table}.{name}"})
        for i, name in enumerate(self.optional):
            if name not in fields:
                raise PydanticCustomError(
                    "unknown_field", "{field} is not a field of feed {feed}; expected one of {allowed}",
                    {"field": repr(name), "feed": repr(self.feed), "allowed": ", ".join(fields), "key": f"optional[{i}]"})
        missing = [f for f, spec in fields.items() if spec.required and f not in self.columns]
        if missing:
            raise PydanticCustomError("unmapped_fields", "required fields of feed {feed} are not mapped: {missing}",
                                      {"feed": repr(self.feed), "missing": ", ".join(missing), "key": "columns"})
        return self


# -- data_quality.toml ----------------------------------------------------------------------------

class DateOfBirthRulesModel(ConfigModel):
    """When a date of birth is recorded as a data-quality issue (and kept out of name-based linkage)."""

    year_group_tolerance_years: int = Field(1, ge=0, description="Years either side of the year group's birth "
                                            "dates allowed for a child taught out of year group.")
    min_age_years: int = Field(0, ge=0, description="With no year group: the youngest plausible age on the "
                               "record's date (social care holds newborns; a later date of birth is always an "
                               "issue).")
    max_age_years: int = Field(25, ge=0, description="With no year group: the oldest plausible age on the "
                               "record's date (care leavers are supported to 25).")


class NameRulesModel(ConfigModel):
    """Names that stand in for a name: recorded as issues, never used as a linkage key."""

    placeholders: list[str] = Field(default_factory=list, description="Placeholder names, compared ignoring case, "
                                    "accents, spaces and . - _ ' , ( ) (a list replaces the built-in one).")
    placeholder_patterns: list[str] = Field(default_factory=list, description="Regular expressions matched "
                                            "against the whole compared (lower-case) name.")

    @field_validator("placeholder_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise PydanticCustomError("bad_regex", "{pattern!r} is not a regular expression ({why})",
                                          {"pattern": pattern, "why": str(exc)}) from None
        return patterns


class DataQualityFile(ConfigModel):
    """data_quality.toml: data-quality rules applied when a record is staged (transforms/quality.py)."""

    date_of_birth: DateOfBirthRulesModel = Field(default_factory=DateOfBirthRulesModel,
                                                 description="Plausible dates of birth.")
    names: NameRulesModel = Field(default_factory=NameRulesModel, description="Placeholder names.")


# The model of each configuration file, by its name in the configuration folder.
CONFIG_FILES: dict[str, type[ConfigModel]] = {
    "sources.toml": SourcesFile,
    "schools.toml": SchoolsFile,
    "calendar.toml": CalendarFile,
    "attendance_codes.toml": AttendanceCodesFile,
    "signals.toml": SignalsFile,
    "flag_rules.toml": FlagRulesFile,
    "recipients.toml": RecipientsFile,
    "policy.toml": PolicyFile,
    "data_quality.toml": DataQualityFile,
    "layouts/<name>.toml": LayoutFile,
}

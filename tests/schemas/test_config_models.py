"""Every configuration file is validated by its typed model; each problem is one line naming the
file, the key path and what is allowed. The store URL is refused when it cannot be used."""
from __future__ import annotations

import os
import stat
import tomllib
from importlib import resources
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from connectors.sftp import SftpEndpoint
from connectors.store_setup import check_database_url, init_store, open_store
from orchestration.resources import TetherContext
from schemas import config_models as m
from schemas.config import ConfigError, Layout, load_config
from schemas.config_check import check_config
from schemas.errors import TetherError

FOLDER_SOURCE = """
[sources.kent]
transport = "folder"
path = "inbox"
expected_by = "10:00"
[[sources.kent.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
"""

SFTP_SOURCE = """
[sources.north]
transport = "sftp"
host_env = "NORTH_HOST"
username = "tether"
key_file_env = "NORTH_KEY"
known_hosts_file = "/etc/tether/known_hosts"
remote_dir = "/outbox"
completeness = "rename"
[[sources.north.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
"""

ODBC_SOURCE = """
[sources.hosted]
transport = "odbc"
connection_env = "HOSTED_MIS_ODBC"
school_column = "laestab"
[sources.hosted.relations.marks]
table = "mis_marks"
[sources.hosted.relations.pupils]
table = "mis_pupils"
"""


def _folder(tmp_path: Path, **files: str) -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    for name, text in files.items():
        path = config / (name.replace("__", "/") + ".toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return config


def _problem(tmp_path: Path, **files: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(_folder(tmp_path, **files))
    message = str(caught.value)
    assert "\n" not in message
    assert all("\n" not in p for p in caught.value.problems)
    return message


def test_an_unknown_transport_is_refused_naming_file_key_and_choices(tmp_path):
    message = _problem(tmp_path, sources=FOLDER_SOURCE.replace('"folder"', '"ftp"'))
    assert message == "sources.toml: sources.kent.transport: 'ftp' is not allowed; expected one of folder, sftp, odbc"


def test_expected_by_that_is_not_a_time_says_how_to_write_it(tmp_path):
    message = _problem(tmp_path, sources=FOLDER_SOURCE,
                       schools='[schools."8864001"]\nname = "Hillside High"\nsource = "kent"\nexpected_by = "9.30am"\n')
    assert message == "schools.toml: schools.8864001.expected_by: '9.30am' is not a time; write HH:MM, e.g. \"09:30\""


@pytest.mark.parametrize("file, text, path", [
    ("sources", FOLDER_SOURCE.replace("path =", "pth ="), "sources.toml: sources.kent.pth: unknown key (did you mean 'path'?)"),
    ("sources", SFTP_SOURCE.replace("host_env", "hots_env"), "sources.toml: sources.north.hots_env: unknown key (did you mean 'host_env'?)"),
    ("sources", ODBC_SOURCE.replace("watermark", "x") + 'wtermark_column = "ts"\n',
     "sources.toml: sources.hosted.relations.pupils.wtermark_column: unknown key (did you mean 'watermark_column'?)"),
    ("sources", FOLDER_SOURCE.replace("pattern =", "patern ="), "sources.toml: sources.kent.files[0].patern: unknown key"),
    ("schools", '[schools."8864001"]\nname = "Hillside"\nsorce = "kent"\n', "schools.toml: schools.8864001.sorce: unknown key"),
    ("calendar", "register_close_minute = 30\n", "calendar.toml: register_close_minute: unknown key"),
    ("signals", "persistant_absence_threshold = 0.1\n", "signals.toml: persistant_absence_threshold: unknown key"),
    ("flag_rules", '[rules.x]\ncohort = "cla"\nmark = ["N"]\n', "flag_rules.toml: rules.x.mark: unknown key (did you mean 'marks'?)"),
    ("recipients", '[virtual_school]\nadress = "vs@example.gov.uk"\n', "recipients.toml: virtual_school.adress: unknown key"),
    ("policy", 'lawfull_basis = "x"\n', "policy.toml: lawfull_basis: unknown key"),
    ("attendance_codes", '[codes.N]\ncategory = "unauthorised"\nmeening = "x"\n', "attendance_codes.toml: codes.N.meening: unknown key"),
    ("layouts__mis-a", 'delimeter = ";"\n', "layouts/mis-a.toml: delimeter: unknown key (did you mean 'delimiter'?)"),
])
def test_a_misspelt_key_is_refused_in_every_file(tmp_path, file, text, path):
    message = _problem(tmp_path, **{file: text})
    assert message.startswith(path), message
    assert "allowed keys are" in message


def test_a_layout_mapping_a_field_its_feed_does_not_have_is_refused(tmp_path):
    layout = ('feed = "attendance"\n[columns]\nschool_pupil_id = "Adno"\nsession_date = "Date"\n'
              'session = "Session"\nmark = "Mark"\nsesion_type = "Type"\n')
    message = _problem(tmp_path, **{"layouts__school-x": layout})
    assert message.startswith("layouts/school-x.toml: columns.sesion_type: 'sesion_type' is not a field of feed "
                              "'attendance'; expected one of school_pupil_id, upn")


def test_a_layout_with_an_unknown_feed_or_unmapped_required_field_is_refused(tmp_path):
    assert _problem(tmp_path, **{"layouts__x": 'feed = "attendence"\n[columns]\n'}).startswith(
        "layouts/x.toml: feed: 'attendence' is not allowed; expected one of attendance, pupils")
    assert _problem(tmp_path, **{"layouts__x": 'feed = "attendance"\n[columns]\nschool_pupil_id = "Adno"\n'}) == (
        "layouts/x.toml: columns: required fields of feed 'attendance' are not mapped: session_date, session, mark")


def test_layout_from_mapping_raises_one_line_naming_its_origin():
    with pytest.raises(ConfigError, match=r"^test: filename: '\(' is not a regular expression"):
        Layout.from_mapping("x", {"feed": "sc_persons", "columns": {"person_id": "ID"}, "filename": "("}, "test")


def test_a_calendar_date_that_is_not_a_date_is_refused(tmp_path):
    message = _problem(tmp_path, calendar='[[terms]]\nname = "autumn"\nstart = "3 September 2026"\nend = 2026-12-18\n')
    assert message == ("calendar.toml: terms[0].start: '3 September 2026' is not a date; write YYYY-MM-DD without "
                       "quotes, e.g. 2026-09-03")
    message = _problem(tmp_path, calendar='[[closures]]\nstart = 2026-10-30\nend = 2026-10-26\n')
    assert message == "calendar.toml: closures[0]: end 2026-10-26 is before start 2026-10-30"


def test_toml_that_does_not_parse_is_one_line_naming_the_file(tmp_path):
    message = _problem(tmp_path, calendar="[[terms]]\nstart = 2026-13-01\n")
    assert message.startswith("calendar.toml: not valid TOML:")


def test_sftp_and_odbc_options_are_validated(tmp_path):
    assert _problem(tmp_path, sources=SFTP_SOURCE.replace('completeness = "rename"', 'completeness = "done"')) == (
        "sources.toml: sources.north.completeness: 'done' is not allowed; expected one of stable, done_marker, rename")
    assert _problem(tmp_path, sources=SFTP_SOURCE.replace('username = "tether"\n', "")) == (
        "sources.toml: sources.north.username: SFTP sources need username (or username_env)")
    assert _problem(tmp_path, sources=SFTP_SOURCE.replace('remote_dir = "/outbox"', "port = \"twenty-two\"")) == (
        "sources.toml: sources.north.port: 'twenty-two' is not a whole number")
    assert _problem(tmp_path, sources=ODBC_SOURCE + '[sources.hosted.relations.marks.columns]\nmarc = "m"\n').startswith(
        "sources.toml: sources.hosted.relations.marks.columns.marc: 'marc' is not a field of the marks relation")
    assert _problem(tmp_path, sources=ODBC_SOURCE.replace('"mis_marks"', '"marks; drop table x"')) == (
        "sources.toml: sources.hosted.relations.marks.table: 'marks; drop table x' is not a plain table or column "
        "name (letters, digits, _ and . only)")
    assert _problem(tmp_path, sources=ODBC_SOURCE.replace('school_column = "laestab"', 'laestab = "886"')).startswith(
        "sources.toml: sources.hosted.laestab: '886' is not a LAESTAB")


def test_a_source_naming_an_unknown_layout_is_refused(tmp_path):
    assert _problem(tmp_path, sources=FOLDER_SOURCE.replace('"mis-a"', '"mis-z"')).startswith(
        "sources.toml: sources.kent.files[0].layout: 'mis-z' is not a known layout; expected one of camhs-referrals")


def test_every_problem_is_kept_and_the_message_counts_them(tmp_path):
    config = _folder(tmp_path, sources=FOLDER_SOURCE.replace('"folder"', '"ftp"'), signals="ever6_years = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.problems == [
        "signals.toml: ever6_years: 0 is out of range; it must be at least 1",
        "sources.toml: sources.kent.transport: 'ftp' is not allowed; expected one of folder, sftp, odbc",
    ]
    assert str(caught.value).endswith("(and 1 more problem: run `tether config check`)")
    assert isinstance(caught.value, TetherError) and isinstance(caught.value, ValueError)


def test_a_valid_folder_keeps_the_shape_the_pipeline_reads(tmp_path, monkeypatch):
    config = load_config(_folder(tmp_path, sources=FOLDER_SOURCE + SFTP_SOURCE + ODBC_SOURCE,
                                 schools='[schools."8864001"]\nname = "Hillside"\nurn = 118000\nsource = "kent"\n'
                                         'expected_by = "09:30"\n'))
    kent, north, hosted = config.sources["kent"], config.sources["north"], config.sources["hosted"]
    assert (kent.transport, kent.expected_by.isoformat(), kent.options) == ("folder", "10:00:00", {"path": "inbox"})
    assert kent.layout_for("8864001_ATTENDANCE_20261130.csv") == "mis-a"
    assert hosted.files == () and hosted.options["relations"]["marks"] == {"table": "mis_marks"}
    school = config.schools["8864001"]
    assert (school.urn, school.source_id, school.expected_by.isoformat()) == ("118000", "kent", "09:30:00")
    endpoint = SftpEndpoint.from_source_options(
        "north", {**north.options, "files": [{"pattern": f.pattern} for f in north.files]},
        {"NORTH_HOST": "sftp.example.org", "NORTH_KEY": "/keys/north"})
    assert (endpoint.host, endpoint.port, endpoint.completeness, endpoint.patterns) == (
        "sftp.example.org", 22, "rename", ("*_attendance_*.csv",))


def test_built_in_defaults_validate_against_their_models():
    defaults = resources.files("schemas").joinpath("defaults")
    for name, model in m.CONFIG_FILES.items():
        if name == "layouts/<name>.toml":
            for res in defaults.joinpath("layouts").iterdir():
                model.model_validate(tomllib.loads(res.read_text("utf-8")))
        elif defaults.joinpath(name).is_file():
            model.model_validate(tomllib.loads(defaults.joinpath(name).read_text("utf-8")))
    config = load_config(None)
    assert len(config.layouts) == len(list(defaults.joinpath("layouts").iterdir()))
    assert config.flag_rules["suspension"]["marks"] == ["E"]


def _models(model: type[BaseModel], seen: set) -> set:
    if model in seen:
        return seen
    seen.add(model)
    for f in model.model_fields.values():
        for inner in _nested(f.annotation):
            _models(inner, seen)
    return seen


def _nested(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for arg in get_args(annotation) for t in _nested(arg)]


def test_every_field_of_every_model_has_a_description_for_the_reference():
    seen: set = set()
    for model in m.CONFIG_FILES.values():
        _models(model, seen)
    assert {m.FolderSourceModel, m.SftpSourceModel, m.OdbcSourceModel, m.OdbcRelationModel, m.TermModel} <= seen
    undescribed = [f"{model.__name__}.{name}" for model in seen for name, f in model.model_fields.items()
                   if not f.description]
    assert undescribed == []


# -- the store URL ---------------------------------------------------------------------------

def test_a_postgres_url_is_refused_suggesting_postgresql_psycopg2():
    with pytest.raises(ConfigError) as caught:
        check_database_url("postgres://tether:s3cret@db.example/tether")
    message = str(caught.value)
    assert "postgresql+psycopg2://" in message and "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize("url", ["mysql://tether@db/tether", "oracle+cx_oracle://db/x", "postgresql+asyncpg://db/x"])
def test_an_unknown_scheme_or_driver_is_refused(url):
    with pytest.raises(ConfigError, match=r"^TETHER_DATABASE_URL: the (scheme|driver) .* (not supported|not installed)"):
        check_database_url(url)


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path):
    path = tmp_path / "nowhere" / "tether.sqlite"
    with pytest.raises(ConfigError) as caught:
        open_store(f"sqlite:///{path}")
    assert str(caught.value) == (f"TETHER_DATABASE_URL: the SQLite store {path} does not exist; run `tether init` "
                                 f"to create it (or correct the path)")
    ctx = TetherContext(f"sqlite:///{path}", None, str(tmp_path / "data"))
    with pytest.raises(ConfigError, match="run `tether init`"):
        ctx.store
    assert not path.exists() and not path.parent.exists()


def test_init_creates_an_owner_only_store_once_then_only_migrates(tmp_path):
    url = f"sqlite:///{tmp_path / 'var' / 'tether.sqlite'}"
    store, is_new = init_store(url, tmp_path / "data")
    store.dispose()
    assert is_new
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "var").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "var" / "tether.sqlite").st_mode) == 0o600
    store, is_new = init_store(url, tmp_path / "data")
    store.dispose()
    assert not is_new
    TetherContext(url, None, str(tmp_path / "data")).store.dispose()     # a run opens it


def test_config_check_warns_about_environment_variables_a_source_names(tmp_path):
    config = _folder(tmp_path, sources=SFTP_SOURCE + ODBC_SOURCE)
    report = check_config(config, {"NORTH_HOST": "sftp.example.org"})
    assert report.ok
    assert report.warnings == [
        "sources.toml: sources.hosted.connection_env: environment variable HOSTED_MIS_ODBC is not set; the odbc "
        "source 'hosted' cannot connect until it is",
        "sources.toml: sources.north.key_file_env: environment variable NORTH_KEY is not set; the sftp source "
        "'north' cannot connect until it is",
    ]
    assert report.summary() == "configuration OK: 2 sources, 0 schools, 9 layouts"


def test_the_reference_lists_every_key_with_its_description():
    from schemas.config_reference import markdown, reference
    rows = {(r.file, r.key): r for r in reference()}
    assert rows[("schools.toml", "schools.<name>.expected_by")].type == 'time "HH:MM"'
    assert rows[("sources.toml", "sources.<name>.host_env")].description.startswith("Name of the environment variable")
    assert rows[("layouts/<name>.toml", "columns")].required
    assert all(r.description for r in rows.values())
    assert "## policy.toml" in markdown()

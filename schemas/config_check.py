"""`tether config check`: validate a configuration folder without running anything.

Problems make the configuration unusable (Tether refuses to run with them); warnings name what
will fail later on this machine — an environment variable a source names that is not set, a
landing folder that does not exist yet, a school whose source is not configured.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schemas.config import ConfigError, TetherConfig, load_config


@dataclass
class ConfigReport:
    """What checking one configuration folder found."""

    config_dir: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config: TetherConfig | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.config is None:
            return f"configuration NOT usable: {len(self.problems)} problem(s) in {self.config_dir}"
        c = self.config
        return f"configuration OK: {len(c.sources)} sources, {len(c.schools)} schools, {len(c.layouts)} layouts"


def _named_variables(options: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    """(key path, variable name) of every `*_env` option of a source, nested tables included."""
    found = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found += _named_variables(value, f"{prefix}{key}.")
        elif key.endswith("_env") and isinstance(value, str):
            found.append((f"{prefix}{key}", value))
    return found


def environment_warnings(config: TetherConfig, env: Mapping[str, str]) -> list[str]:
    """A warning for each environment variable a source names that is not set in `env`."""
    warnings = []
    for sid, source in sorted(config.sources.items()):
        for key, name in _named_variables(source.options):
            if not env.get(name, "").strip():
                warnings.append(f"sources.toml: sources.{sid}.{key}: environment variable {name} is not set; "
                                f"the {source.transport} source {sid!r} cannot connect until it is")
    return warnings


def folder_warnings(config: TetherConfig) -> list[str]:
    """A warning for each folder source whose landing folder does not exist."""
    base = config.config_dir.parent if config.config_dir else Path.cwd()
    warnings = []
    for sid, source in sorted(config.sources.items()):
        if source.transport == "folder":
            folder = base / source.options.get("path", sid)
            if not folder.is_dir():
                warnings.append(f"sources.toml: sources.{sid}.path: the landing folder {folder} does not exist; "
                                f"create it or correct `path`")
    return warnings


def school_warnings(config: TetherConfig) -> list[str]:
    """A warning for each school whose source is not configured (its freshness is not checked)."""
    return [f"schools.toml: schools.{laestab}.source: {school.source_id!r} is not a source in sources.toml; "
            f"expected one of {', '.join(sorted(config.sources)) or '(none configured)'}"
            for laestab, school in sorted(config.schools.items())
            if school.source_id is not None and school.source_id not in config.sources]


def check_config(config_dir: str | Path, env: Mapping[str, str]) -> ConfigReport:
    """Every problem and warning of the configuration folder `config_dir`, as one line each."""
    report = ConfigReport(Path(config_dir))
    try:
        report.config = load_config(config_dir)
    except ConfigError as exc:
        report.problems = list(exc.problems)
        return report
    report.warnings = (environment_warnings(report.config, env) + folder_warnings(report.config)
                       + school_warnings(report.config))
    return report

"""The Tether resource: where the store, the landing area and the LA's configuration are.

Everything is read from the environment when a run starts (never at import): the store URL
(`TETHER_DATABASE_URL`), the LA configuration folder (`TETHER_CONFIG_DIR`), the data folder for
landing copies (`TETHER_DATA_DIR`), the keys (`TETHER_TOKEN_KEY[_FILE]`,
`TETHER_IDENTITY_KEY[_FILE]`) and, for reproducible runs, the reference time `TETHER_AS_OF`.
"""
from __future__ import annotations

import datetime as dt
import os
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from connectors.landing import Landing
from connectors.store import Store
from connectors.store_setup import open_store
from connectors.store_keys import check_keys
from schemas.calendar import LONDON
from schemas.config import TetherConfig, load_config
from sharing.keys import KeyRing, keys_from_env


def parse_as_of(value: str | None) -> dt.datetime:
    """An explicit reference time in Europe/London; now when not given."""
    if not value:
        return dt.datetime.now(LONDON)
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=LONDON) if parsed.tzinfo is None else parsed.astimezone(LONDON)


class TetherContext:
    """What one run works with: configuration, store, landing, keys and its `as_of`."""

    def __init__(self, database_url: str, config_dir: str | None, data_dir: str, as_of: str | None = None):
        self.database_url = database_url
        self.config_dir = Path(config_dir) if config_dir else None
        self.data_dir = Path(data_dir)
        self.as_of = parse_as_of(as_of)

    @cached_property
    def config(self) -> TetherConfig:
        return load_config(self.config_dir)

    @cached_property
    def keys(self) -> KeyRing:
        """The keys from the environment, checked once against those the store was built with
        (recorded on the first run): `WrongKeyError` before anything is written under others."""
        keys = keys_from_env()
        check_keys(self.store, keys)
        return keys

    @cached_property
    def store(self) -> Store:
        """The deployment's store, migrated; refused (ConfigError) when `tether init` has not made it."""
        return open_store(self.database_url)

    @cached_property
    def landing(self) -> Landing:
        return Landing(self.data_dir / "landing", self.store, self.keys.identity_key)

    def source_folder(self, path: str) -> Path:
        """A folder source's path: absolute, or relative to the configuration folder's parent."""
        p = Path(path)
        if p.is_absolute():
            return p
        base = self.config_dir.parent if self.config_dir else Path.cwd()
        return base / p


class TetherResource(dg.ConfigurableResource):
    """The LA's Tether deployment: store URL, configuration folder and data folder."""

    database_url: str
    config_dir: str = ""
    data_dir: str = "var/data"
    as_of: str = ""

    _ctx: TetherContext | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._ctx = TetherContext(self.database_url, self.config_dir or None, self.data_dir,
                                  self.as_of or os.environ.get("TETHER_AS_OF"))
        if context.run is not None:     # a run (not a sensor tick): no step writes under wrong keys
            self._ctx.keys

    @property
    def ctx(self) -> TetherContext:
        if self._ctx is None:
            self._ctx = TetherContext(self.database_url, self.config_dir or None, self.data_dir,
                                      self.as_of or os.environ.get("TETHER_AS_OF"))
        return self._ctx

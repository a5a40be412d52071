"""Dagster resources: where the warehouse is, and how sources are reached."""

import os
from contextlib import AbstractContextManager

import duckdb
from dagster import ConfigurableResource

from sources.acquire import Acquirer
from sources.fetch import HttpFetcher
from sources.rawstore import RawStore
from warehouse import db


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class WarehouseResource(ConfigurableResource):
    """The embedded DuckDB warehouse; the path defaults to `CONTEXT_LENS_DB` or warehouse/context.duckdb."""

    db_path: str | None = None

    def writer(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return db.writer(self.db_path)

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return db.reader(self.db_path)


class SourcesResource(ConfigurableResource):
    """How payloads are obtained: the raw store, offline mode, and the HTTP client's limits."""

    raw_dir: str | None = None
    offline: bool = False
    max_attempts: int = 4
    backoff_seconds: float = 2.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0

    def acquirer(self, rate_limits: dict[str, int] | None = None) -> Acquirer:
        store = RawStore(self.raw_dir or db.raw_dir())
        fetcher = HttpFetcher(
            store,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            rate_limits=rate_limits,
        )
        return Acquirer(fetcher, offline=self.offline or _env_flag("CONTEXT_LENS_OFFLINE"))

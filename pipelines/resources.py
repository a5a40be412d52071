"""Dagster resources: where the warehouse is, and how sources are reached."""

import os
from contextlib import AbstractContextManager

import duckdb
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from sources.acquire import Acquirer
from sources.fetch import FetchLimits, HttpFetcher
from sources.rawstore import RawStore
from warehouse import db


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class WarehouseResource(ConfigurableResource):
    """The warehouse: the embedded DuckDB file (`db_path`, default `CONTEXT_LENS_DB` or
    warehouse/context.duckdb), or the DuckLake that `CONTEXT_LENS_WAREHOUSE` names (`warehouse.lake`).

    On the embedded file, a run's steps write the working file; when the run ends (its resources
    torn down) the state they committed is published once, so readers of the published copy see
    whole runs: a lens and the tables it was computed from, never a family's tables ahead of
    their lens.
    """

    db_path: str | None = None
    # Seconds one run may wait for the warehouse lock over all its steps (default CONTEXT_LENS_LOCK_WAIT).
    lock_wait_seconds: float | None = None
    _lock_budget: db.LockBudget | None = PrivateAttr(default=None)
    _wrote: bool = PrivateAttr(default=False)
    _in_run: bool = PrivateAttr(default=False)  # outside a run, every unit of work publishes itself

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Once per run (in-process executor); lock waits are reported in the run's own log.
        self._in_run = True
        self._lock_budget = db.LockBudget(
            self.lock_wait_seconds, notify=context.log.warning if context.log else None
        )

    def lock_budget(self) -> db.LockBudget:
        if self._lock_budget is None:
            self._lock_budget = db.LockBudget(self.lock_wait_seconds)
        return self._lock_budget

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._wrote and db.publishes(self.db_path):
            self.publish()

    def publish(self) -> None:
        """Publish what this run committed (the writer lock serializes it with other writers)."""
        with db.writer(self.db_path, self.lock_budget()):  # publishes on leaving
            self._wrote = False

    def writer(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        self._wrote = self._in_run
        return db.writer(self.db_path, self.lock_budget(), publish_after=not self._in_run)

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return db.reader(self.db_path, self.lock_budget())


class SourcesResource(ConfigurableResource):
    """How payloads are obtained: the raw store, offline mode, and the HTTP client's limits.

    The limits are the defaults of every source (seconds; see `sources.fetch.FetchLimits`);
    ops.yaml's `fetch:` sections override them per source.
    """

    raw_dir: str | None = None
    offline: bool = False
    max_attempts: int = 4
    backoff_seconds: float = 2.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    request_deadline: float = 1800.0
    source_budget: float = 3600.0
    max_retry_after: float = 60.0

    def acquirer(self, rate_limits: dict[str, int] | None = None) -> Acquirer:
        from pipelines.rules import load_config  # pipelines.rules imports nothing of the resources

        store = RawStore(self.raw_dir or db.raw_dir())
        config = load_config()
        limits = FetchLimits(
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            request_deadline=self.request_deadline,
            source_budget=self.source_budget,
            max_retry_after=self.max_retry_after,
        ).merged(config.defaults.get("fetch"))
        fetcher = HttpFetcher(
            store,
            limits=limits,
            source_limits={sid: block.get("fetch", {}) for sid, block in config.sources.items()},
            rate_limits=rate_limits,
        )
        return Acquirer(fetcher, offline=self.offline or _env_flag("CONTEXT_LENS_OFFLINE"))

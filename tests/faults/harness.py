"""The machinery every fault case shares: a good baseline, private copies of it, and the checks.

A case copies the baseline (a warehouse and raw store after one good live OECD run), breaks
one thing, runs the OECD assets in-process against the scripted server, and then checks
three things against the baseline: the error names the source and the cause; the previous
good tables and raw-store files are byte-for-byte intact; the failed payload was kept in
quarantine. The pytest suite and `python -m tests.faults.report` both call these helpers.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import DagsterInstance, build_asset_context

from pipelines import oecd as oecd_assets
from pipelines import territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources import oecd
from sources.acquire import SAMPLES_DIR, Acquirer
from sources.base import SourceError
from tests.faults.gate import Gate
from tests.faults.payloads import scale_values
from tests.support.http import Reply, ScriptedServer
from warehouse.db import load_spatial, quote_ident

OECD = oecd.SOURCE.id
INDICATORS = [query.indicator for query in oecd.QUERIES]
ETAG = '"v1"'
# Tables that record each attempt rather than hold data: a stale or refused run rewrites them by design.
BOOKKEEPING = frozenset({"core.source_status", "core.raw_schemas", "ops.publications"})
SLEEPS: list[float] = []  # waits the fetcher asked for during the current case


class CaseFailed(AssertionError):
    """An expectation of a case did not hold; the message says what was observed instead."""


def require(condition: object, message: str) -> None:
    """`assert` that survives `python -O`, with the observation in the message."""
    if not condition:
        raise CaseFailed(message)


# --- the scripted server behind a fixed-port gate --------------------------------------------

_shared: dict[str, object] = {}


def server() -> ScriptedServer:
    """The scripted HTTP server of this process (started once, so URLs stay the same)."""
    if "server" not in _shared:
        scripted = ScriptedServer().__enter__()
        atexit.register(scripted.__exit__, None, None, None)
        _shared["server"] = scripted
    return _shared["server"]  # type: ignore[return-value]


def gate() -> Gate:
    if "gate" not in _shared:
        _shared["gate"] = Gate(int(server().base_url.rsplit(":", 1)[1]))
    return _shared["gate"]  # type: ignore[return-value]


def oecd_path(indicator: str) -> str:
    return f"/oecd/{indicator}.csv"


def oecd_url(indicator: str) -> str:
    return f"http://127.0.0.1:{gate().port}{oecd_path(indicator)}"


def sample_bytes(indicator: str) -> bytes:
    return (SAMPLES_DIR / "oecd" / f"{indicator}_SAMPLE.csv").read_bytes()


@functools.cache
def live_bytes(indicator: str, factor: float = 1.02) -> bytes:
    """The 'live' payload of the baseline: the SAMPLE with every value scaled, so the two differ."""
    return scale_values(sample_bytes(indicator), factor)


def unchanged_reply(body: bytes, etag: str = ETAG) -> Callable:
    """Answer 304 to a conditional request carrying `etag`, else the body with that ETag."""

    def reply(handler) -> Reply:
        if handler.headers.get("If-None-Match") == etag:
            return Reply(304)
        return Reply(200, body, {"Content-Type": "text/csv", "ETag": etag})

    return reply


def serve_oecd(
    faults: dict[str, Reply | Callable] | None = None, bodies: dict[str, bytes] | None = None
) -> None:
    """Script every OECD path: the baseline payload (304 when unchanged), except the given faults."""
    faults, bodies = faults or {}, bodies or {}
    for indicator in INDICATORS:
        body = bodies.get(indicator, live_bytes(indicator))
        if indicator in faults:
            server().script(oecd_path(indicator), faults[indicator])
        else:
            server().script(oecd_path(indicator), unchanged_reply(body))


# --- environment and workspaces --------------------------------------------------------------


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables, restoring them afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def endpoint_variable(indicator: str) -> str:
    return f"CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__{indicator.upper()}"


def workspace_variables(root: Path) -> dict[str, str | None]:
    return {
        "CONTEXT_LENS_DB": str(root / "context.duckdb"),
        "CONTEXT_LENS_RAW_DIR": str(root / "raw"),
        "CONTEXT_LENS_OUTPUT": str(root / "output"),
        "CONTEXT_LENS_OFFLINE": None,
        "CONTEXT_LENS_CRASH_AT": None,
        **{endpoint_variable(i): oecd_url(i) for i in INDICATORS},
    }


class FaultSources(SourcesResource):
    """The real sources resource with short timeouts and recorded (not slept) waits."""

    connect_timeout: float = 2.0
    read_timeout: float = 5.0

    def acquirer(self, rate_limits: dict[str, int] | None = None) -> Acquirer:
        acquirer = super().acquirer(rate_limits)
        acquirer.fetcher.sleep = SLEEPS.append
        return acquirer


def resources(sources: SourcesResource | None = None) -> dict:
    return {
        "warehouse": WarehouseResource(),
        "sources": sources or FaultSources(max_attempts=2, backoff_seconds=0.01),
    }


def instance() -> DagsterInstance:
    """One ephemeral Dagster instance for every in-process run (creating one costs ~0.3 s)."""
    if "instance" not in _shared:
        _shared["instance"] = DagsterInstance.ephemeral()
    return _shared["instance"]  # type: ignore[return-value]


def run_asset(asset, sources: SourcesResource | None = None) -> None:
    """Invoke one asset's function in-process with the real resources (what a Dagster step runs).

    The context is entered, so the warehouse resource is set up and torn down around the asset
    as in a run (its teardown publishes the read-only copy readers use).
    """
    with build_asset_context(resources=resources(sources), instance=instance()) as context:
        asset(context)


def run_oecd(sources: SourcesResource | None = None, observations: bool = True) -> SourceError | None:
    """Run the OECD assets in-process; return the source error, if any.

    `observations=False` stops after oecd_regional: enough for transport faults, where the
    stale fallback republishes the very same staging rows the observations are built from.
    """
    try:
        run_asset(oecd_assets.oecd_regional, sources)
        if observations:
            run_asset(oecd_assets.oecd_observations, sources)
    except SourceError as exc:
        return exc
    return None


@dataclass(frozen=True)
class State:
    """Everything a fault must not change: table contents and raw-store files (by hash)."""

    tables: dict[str, list[tuple]]
    files: dict[str, str]

    def data_tables(self) -> dict[str, list[tuple]]:
        return {name: rows for name, rows in self.tables.items() if name not in BOOKKEEPING}


@dataclass(frozen=True)
class Baseline:
    root: Path
    state: State


def _build_baseline() -> Baseline:
    root = Path(tempfile.mkdtemp(prefix="faults-baseline-"))
    atexit.register(shutil.rmtree, root, True)
    with environment(**workspace_variables(root)):
        serve_oecd()
        run_asset(territories.territories)
        error = run_oecd()
    if error is not None:
        raise RuntimeError(f"the baseline OECD run failed: {error}")
    return Baseline(root, capture(root))


def baseline() -> Baseline:
    """A warehouse and raw store after one good live OECD run (built once per process)."""
    if "baseline" not in _shared:
        _shared["baseline"] = _build_baseline()
    return _shared["baseline"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "context.duckdb"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def output(self) -> Path:
        return self.root / "output"


def copy_baseline(prefix: str = "faults-case-") -> Path:
    """A private copy of the baseline directory (warehouse, raw store); the caller removes it."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copytree(baseline().root, root, dirs_exist_ok=True)
    return root


@contextmanager
def workspace() -> Iterator[Workspace]:
    """A private copy of the baseline, with the environment pointing at it and a healthy server."""
    root = copy_baseline()
    try:
        gate().open()
        gate().reset_paths.clear()
        SLEEPS.clear()
        serve_oecd()
        with environment(**workspace_variables(root)):
            yield Workspace(root)
    finally:
        gate().open()
        gate().reset_paths.clear()
        shutil.rmtree(root, ignore_errors=True)


# --- capturing and comparing state -----------------------------------------------------------


def table_dump(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, by `schema.table` (a plain read-only connection).

    Spatial is loaded so geometry columns (polygons of territories) can be compared as WKB.
    """
    conn = duckdb.connect(str(db), read_only=True)
    try:
        load_spatial(conn)
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        dump = {}
        for schema, table in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [schema, table],
            ).fetchall()
            select = ", ".join(
                f"{quote_ident(name)}::BLOB" if kind.startswith("GEOMETRY") else quote_ident(name)
                for name, kind in columns
            )
            name = f"{quote_ident(schema)}.{quote_ident(table)}"
            dump[f"{schema}.{table}"] = conn.execute(f"SELECT {select} FROM {name} ORDER BY ALL").fetchall()  # noqa: S608 (quoted identifiers)
        return dump
    finally:
        conn.close()


def store_files(raw: Path) -> dict[str, str]:
    """sha256 of every raw-store file except quarantine, by path relative to the store."""
    files = {}
    for path in sorted(raw.rglob("*")):
        relative = path.relative_to(raw).as_posix()
        if path.is_file() and not relative.startswith("quarantine/"):
            files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def capture(root: Path) -> State:
    return State(table_dump(root / "context.duckdb"), store_files(root / "raw"))


def quarantine(raw: Path, source: str = OECD) -> list[tuple[dict, bytes]]:
    """(metadata, payload) of every quarantined payload of a source."""
    folder = raw / "quarantine" / source
    return [
        (json.loads(meta.read_text()), meta.with_suffix(".bin").read_bytes())
        for meta in sorted(folder.glob("*.json"))
    ]


def status(db: Path, source: str = OECD) -> tuple | None:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(
            "SELECT status, mode, last_snapshot_id, error FROM core.source_status WHERE source_id = ?",
            [source],
        ).fetchone()
    finally:
        conn.close()


def _table_differences(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> list[str]:
    changed = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            if old is None or new is None:
                changed.append(f"{name} {'appeared' if old is None else 'vanished'}")
            else:
                added = sorted(set(map(repr, new)) - set(map(repr, old)))
                changed.append(
                    f"{name} ({len(old)} -> {len(new)} rows; new e.g. {short(added[0] if added else '', 160)})"
                )
    return changed


def value_changes(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> str:
    """What a bad payload did to the served data: changed values, and series points that vanished."""
    old = {row[:3]: row[3] for row in before.get("core.observations", [])}
    new = {row[:3]: row[3] for row in after.get("core.observations", [])}
    changed = [
        f"{' '.join(key)}: {old[key]:g} -> {new[key]:g}"
        for key in sorted(old)
        if key in new and new[key] != old[key]
    ]
    vanished = sorted(set(old) - set(new))
    parts = []
    if changed:
        parts.append(f"core.observations changed {len(changed)} value(s), e.g. {'; '.join(changed[:2])}")
    if vanished:
        parts.append(f"{len(vanished)} observation(s) vanished, e.g. {' '.join(vanished[0])}")
    return "; ".join(parts)


def tables_intact(
    before: State, after: State, keep_status: bool = False, new_source: str | None = None
) -> None:
    """Every table (but the bookkeeping of attempts, unless `keep_status`) holds exactly its old rows.

    `new_source`: a refused source seen for the first time may add its own citation row to core.sources.
    """
    old = before.tables if keep_status else before.data_tables()
    new = dict(after.tables if keep_status else after.data_tables())
    if new_source and not any(row[0] == new_source for row in old.get("core.sources", [])):
        new["core.sources"] = [row for row in new.get("core.sources", []) if row[0] != new_source]
    changed = _table_differences(old, new)
    require(not changed, f"tables changed: {', '.join(changed)}")


def files_intact(
    before: State, after: State, raw: Path, allowed_new: frozenset[str] = frozenset()
) -> list[str]:
    """Old raw-store files unchanged, `latest/` untouched; new files only for payloads in `allowed_new`.

    A payload that reached the raw store before it was refused leaves its object and its
    sidecar (the record of what was fetched); both are allowed when the payload is
    quarantined, never promoted to `latest/`. Returns the new files.
    """
    altered = [path for path, digest in before.files.items() if after.files.get(path) != digest]
    require(not altered, f"raw-store files altered or removed: {altered[:5]}")
    new = sorted(set(after.files) - set(before.files))
    promoted = [path for path in new if path.startswith("latest/")]
    require(not promoted, f"a refused payload was promoted to latest: {promoted}")
    for path in new:
        require(payload_sha(raw, path) in allowed_new, f"unexpected new raw-store file {path}")
    return new


def payload_sha(raw: Path, relative: str) -> str | None:
    """The payload hash a raw-store file stands for: an object's name, or a sidecar's sha256."""
    if relative.startswith("objects/"):
        return relative.rsplit("/", 1)[-1]
    if relative.startswith(("snapshots/", "latest/")):
        try:
            return json.loads((raw / relative).read_text()).get("sha256")
        except (OSError, ValueError):
            return None
    return None


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def names_source_and_cause(message: str, cause: str, source: str = OECD) -> None:
    require(source in message, f"the error does not name the source {source!r}: {message}")
    require(re.search(cause, message, re.I | re.S), f"the error does not name the cause /{cause}/: {message}")


def short(text: str | None, limit: int = 150) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(error: object, limit: int = 160) -> str:
    """An error as the matrix shows it: without the local server's address and repeated prefixes."""
    text = re.sub(r"https?://127\.0\.0\.1:\d+", "", str(error))
    text = re.sub(r"(fetch|parse|validation) failed for source '[^']+'(, snapshot \S+)?: ", "", text)
    return short(text, limit)


# --- the expectations of the three kinds of fault --------------------------------------------


def expect_stale(
    ws: Workspace, error: SourceError | None, cause: str, payload: bytes | None, partial: bool = False
) -> str:
    """A fetch fault with an earlier live snapshot: served from it, data intact, bad payload kept.

    With `partial`, the payload is what the server sent before the connection broke; what
    reached the fetcher (a prefix of it: the HTTP client may drop a last partial read) is kept.
    """
    require(error is None, f"the run failed instead of serving the earlier snapshot: {error}")
    row = status(ws.db)
    require(row is not None and row[0] == "stale", f"source status is {row}, not stale")
    names_source_and_cause(row[3] or "", cause)
    before, after = baseline().state, capture(ws.root)
    tables_intact(before, after)
    files_intact(before, after, ws.raw)
    kept = quarantine(ws.raw)
    if payload is not None:
        match = [meta for meta, body in kept if body == payload or (partial and payload.startswith(body))]
        require(match, f"the failed payload ({len(payload)} bytes) is not in quarantine ({len(kept)} kept)")
        names_source_and_cause(f"{match[0]['source']} {match[0]['reason']}", cause)
    if payload is None:
        where = "; no payload to keep"
    else:
        sizes = "/".join(str(n) for n in sorted({len(body) for _, body in kept}))
        if partial:
            where = f"; what arrived kept in quarantine ({sizes} of {len(payload)} B sent before the break)"
        else:
            where = f"; payload quarantined ({sizes} B)"
    return f"stale: earlier live snapshot served, tables intact{where}; {OECD} error: {shown(row[3])}"


def expect_refused(
    ws: Workspace, error: SourceError | None, cause: str, payload: bytes, source: str = OECD
) -> str:
    """A payload that fails to parse or validate: loud error, tables intact, payload in quarantine."""
    if error is None:
        before, after = baseline().state.data_tables(), capture(ws.root).data_tables()
        changed = [name.split(" ")[0] for name in _table_differences(before, after)]
        damage = value_changes(before, after)
        raise CaseFailed(
            f"accepted and published: {damage or 'values unchanged'}; tables changed: {', '.join(changed)}"
        )
    names_source_and_cause(str(error), cause, source)
    row = status(ws.db, source)
    if row is None or row[0] != "failed":
        changed = [
            name.split(" ")[0]
            for name in _table_differences(baseline().state.data_tables(), capture(ws.root).data_tables())
        ]
        kept = len(quarantine(ws.raw, source))
        raise CaseFailed(
            f"{shown(error, 90)} - but only after publishing: status {row and row[0]!r}, tables changed: "
            f"{', '.join(changed) or 'none'}; {kept} payload(s) quarantined"
        )
    names_source_and_cause(f"{source} {row[3]}", cause, source)
    before, after = baseline().state, capture(ws.root)
    tables_intact(before, after, new_source=source)
    kept = quarantine(ws.raw, source)
    match = [meta for meta, body in kept if body == payload]
    require(match, f"the refused payload is not in quarantine ({len(kept)} payloads kept)")
    files_intact(before, after, ws.raw, frozenset({sha(payload)}))
    return f"{error.stage} error ({error.source}): {shown(error.problem)}; tables intact; payload quarantined"

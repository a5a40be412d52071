"""What the CLI shows while a build or refresh runs, and the table it ends with.

Dagster's own console log (one 600-character line per event) is silenced for CLI runs; a
watcher reads the run's event log instead and prints, per step, `[done/total] asset`, and
each warning or error an asset logged, once, with the asset's name. On a terminal a Rich
progress bar shows the step running; elsewhere (CI logs) only plain lines are written.
Downloads report their bytes through the `sources` loggers, which the CLI prints as they come.
At the end `summary` lists each source with its status, the mode of the data it serves, the
reason, and the rows this run wrote, read from `core.source_status`.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance

POLL_SECONDS = 0.5


class DropReportedFallbacks(logging.Filter):
    """The acquisition layer's fallback line: the asset logs the same fallback, which is shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "fallback", False)


def quiet_dagster() -> None:
    """Filter Dagster's API-stability warnings (BetaWarning etc.): nothing a user can act on."""
    import dagster

    for name in ("BetaWarning", "PreviewWarning", "SupersessionWarning"):
        category = getattr(dagster, name, None)
        if category is not None:
            warnings.filterwarnings("ignore", category=category)


@dataclass
class RunLog:
    """What the watcher saw of one run: steps done and failed, failed checks."""

    total: int
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    unchanged: list[str] = field(default_factory=list)  # source assets whose payloads had not changed
    skipped: list[str] = field(default_factory=list)  # assets not run: nothing upstream changed


class Watcher:
    """Reads a run's new event records and turns them into progress lines."""

    def __init__(self, instance: DagsterInstance, tags: dict[str, str], total: int, out: IO[str]):
        self.instance, self.tags, self.out = instance, tags, out
        self.log = RunLog(total)
        self.run_id: str | None = None
        self.cursor: str | None = None
        self.started: dict[str, float] = {}
        self.bar = _Bar(out, total) if _is_terminal(out) else None

    def poll(self) -> None:
        from dagster import RunsFilter

        if self.run_id is None:
            runs = self.instance.get_runs(RunsFilter(tags=self.tags), limit=1)
            if not runs:
                return
            self.run_id = runs[0].run_id
        while True:
            page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=500)
            for record in page.records:
                self._handle(record.event_log_entry)
            self.cursor = page.cursor
            if not page.has_more:
                return

    def _handle(self, entry) -> None:
        from dagster import DagsterEventType

        step = entry.step_key or "run"
        event = entry.dagster_event
        if event is None:  # a message an asset logged
            if entry.level >= logging.WARNING:
                self._line(f"  {logging.getLevelName(entry.level)} {step}: {entry.user_message}")
            return
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            self.started[step] = time.monotonic()
            self.log.running.add(step)
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            self.log.running.discard(step)
            ok = kind == DagsterEventType.STEP_SUCCESS
            (self.log.done if ok else self.log.failed).append(step)
            seconds = time.monotonic() - self.started.get(step, time.monotonic())
            count = len(self.log.done) + len(self.log.failed)
            width = len(str(self.log.total))
            word = "done  " if ok else "FAILED"
            self._line(f"[{count:>{width}}/{self.log.total}] {word} {step} ({seconds:.1f}s)")
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.event_specific_data
            if not data.passed:
                self.log.failed_checks.append(f"{data.asset_key.to_user_string()}:{data.check_name}")
        if self.bar is not None:
            self.bar.update(len(self.log.done) + len(self.log.failed), sorted(self.log.running))

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.print(text)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class _Bar:
    """A Rich progress bar on a terminal; lines are printed above it."""

    def __init__(self, out: IO[str], total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=out),
            transient=True,
        )
        self.task = self.progress.add_task("starting", total=total)
        self.progress.start()

    def update(self, completed: int, running: list[str]) -> None:
        self.progress.update(self.task, completed=completed, description=", ".join(running)[:60] or "...")

    def print(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self.progress.stop()


def step_count(defs, selection) -> int:
    """How many steps the run will have: one per selected asset, one per check definition that
    has a selected check (a definition evaluating several checks is one step)."""
    graph = defs.resolve_asset_graph()
    checks = selection.resolve_checks(graph)
    return len(selection.resolve(graph)) + sum(1 for c in defs.asset_checks if set(c.check_keys) & checks)


def _is_terminal(out: IO[str]) -> bool:
    return bool(getattr(out, "isatty", lambda: False)())


@contextmanager
def watching(
    instance: DagsterInstance, tags: dict[str, str], total: int, out: IO[str] | None = None
) -> Iterator[RunLog]:
    """While the block runs, print the run's progress; the RunLog is complete when it ends."""
    watcher = Watcher(instance, tags, total, out or sys.stderr)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(POLL_SECONDS):
            _poll_safely(watcher)

    thread = threading.Thread(target=loop, name="context-lens-progress", daemon=True)
    thread.start()
    try:
        yield watcher.log
    finally:
        stop.set()
        thread.join(timeout=5)
        _poll_safely(watcher)  # the last events of the run
        watcher.close()


def _poll_safely(watcher: Watcher) -> None:
    try:
        watcher.poll()
    except Exception as exc:  # noqa: BLE001 (progress must never break the run it reports)
        logging.getLogger(__name__).debug("could not read the run's events: %s", exc)


URL = re.compile(r"\s*(?:for )?https?://\S+")
REASON_CHARS = 240


def short_reason(error: str | None) -> str:
    """One line per source: each distinct cause once, without the URLs (`status --json` keeps them).

    A source that fell back on every endpoint carries one reason per endpoint, joined by '; ';
    the summary says the cause once and how many endpoints it hit.
    """
    parts = [" ".join(part.split()) for part in (error or "").split("; ") if part.strip()]
    causes = list(dict.fromkeys(URL.sub("", part).rstrip(":;, ") for part in parts))
    text = "; ".join(causes)
    if len(parts) > 1:
        text += f" ({len(parts)} endpoints)"
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def summary_rows(conn, source_ids: Iterable[str], written: dict[str, int]) -> list[dict]:
    """One row per source of the run: status, mode served, rows written by this run, reason."""
    rows = conn.execute(
        "SELECT s.source_id, s.family, st.status, st.mode, st.error FROM core.sources s "
        "LEFT JOIN core.source_status st USING (source_id) WHERE s.source_id IN (SELECT unnest(?)) "
        "ORDER BY s.family, s.source_id",
        [sorted(source_ids)],
    ).fetchall()
    seen = {r[0] for r in rows}
    out = [
        {
            "source": source_id,
            "family": family,
            "status": status or "never run",
            "mode": mode or "-",
            "rows": "-" if status == "failed" else str(written.get(source_id, 0)),
            "reason": short_reason(error),
        }
        for source_id, family, status, mode, error in rows
    ]
    for source_id in sorted(set(source_ids) - seen):
        out.append(
            {
                "source": source_id,
                "family": "-",
                "status": "never run",
                "mode": "-",
                "rows": "-",
                "reason": "",
            }
        )
    return out


def render_summary(rows: list[dict], run: RunLog | None, places: dict[str, str], out: IO[str]) -> None:
    """The table a build or refresh ends with; plain ASCII off a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    terminal = _is_terminal(out)
    table = Table(box=box.SIMPLE if terminal else box.ASCII, title="sources", title_justify="left")
    for name, justify in [("source", "left"), ("family", "left"), ("status", "left"), ("mode", "left")]:
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_column("rows written", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for row in rows:
        table.add_row(row["source"], row["family"], row["status"], row["mode"], row["rows"], row["reason"])
    console = Console(
        file=out, width=None if terminal else 160, force_terminal=terminal, no_color=not terminal
    )
    console.print(table)
    if run is not None:
        checks = ", ".join(run.failed_checks) if run.failed_checks else "none"
        steps = f"{len(run.done)} of {run.total} steps done" + (
            f", failed: {', '.join(run.failed)}" if run.failed else ""
        )
        console.print(
            f"{steps}; checks failed: {len(run.failed_checks)} ({checks})", markup=False, highlight=False
        )
        if run.unchanged or run.skipped:
            console.print(
                f"unchanged, nothing re-parsed or written: {', '.join(run.unchanged) or 'none'}; "
                f"not stale, skipped: {len(run.skipped)} asset(s)"
                + (f" ({', '.join(run.skipped)})" if run.skipped else ""),
                markup=False,
                highlight=False,
            )
    for label, place in places.items():
        console.print(f"{label}: {place}", markup=False, highlight=False)


def last_run_path(warehouse_file: Path) -> Path:
    """Where a build notes what it skipped, beside the warehouse file: `status` reads it without Dagster."""
    return warehouse_file.with_name(warehouse_file.name + ".last-run.json")


def note_last_run(
    warehouse_file: Path, unchanged_sources: list[str], skipped: list[str], ran: list[str]
) -> None:
    """Record which sources the last build found unchanged and which assets it skipped (a report only:
    what to run is decided by Dagster's data versions, never by this file)."""
    import json
    from datetime import UTC, datetime

    note = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "unchanged_sources": sorted(unchanged_sources),
        "skipped_assets": sorted(skipped),
        "ran_assets": sorted(ran),
    }
    path = last_run_path(warehouse_file)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(note, indent=2), encoding="utf-8")
    partial.replace(path)


def last_run(warehouse_file: Path) -> dict | None:
    import json

    path = last_run_path(warehouse_file)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

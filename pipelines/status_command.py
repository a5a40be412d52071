"""`context-lens status`: per source its family, mode, status, last snapshot, freshness and last
error, from the published warehouse and the failures journaled beside it.

Starts without Dagster (tests/ops/test_cheap_entry_points.py): the families are read from
families.yaml, not imported.
"""

from __future__ import annotations

import argparse
import json

from pipelines import progress
from pipelines.paths import export_dir
from warehouse import db


def status_rows() -> list[dict]:
    """Every known source: those in the warehouse, and those the families use but never built."""
    from pipelines.families import catalog
    from pipelines.rules import freshness_report

    rows: dict[str, dict] = {}
    for family, source_ids in catalog().items():
        for source_id in source_ids:
            rows[source_id] = {
                "source": source_id,
                "family": family,
                "mode": "-",
                "status": "never run",
                "snapshot": "-",
                "freshness": "never refreshed",
                "reason": "not built yet: run `context-lens build`",
            }
    family_of = {source_id: family for family, ids in catalog().items() for source_id in ids}
    if db.exists():
        with db.published_reader() as conn:
            for fresh in freshness_report(conn):
                rows[fresh.source_id] = {
                    "source": fresh.source_id,
                    "family": family_of.get(fresh.source_id, fresh.family),
                    "mode": fresh.mode or "-",
                    "status": fresh.status or "never run",
                    "snapshot": fresh.last_snapshot_id or "-",
                    "freshness": fresh.describe(),
                    "reason": fresh.error or "",
                }
    from warehouse import journal

    for source_id, note in journal.pending().items():  # failures the warehouse could not record
        blank = {"source": source_id, "family": family_of.get(source_id, "-"), "mode": "-"}
        row = rows.setdefault(source_id, {**blank, "snapshot": "-", "freshness": "-"})
        row["status"] = "failed"
        row["reason"] = (
            f"{note['error']} (at {note['at'][:19]}Z; recorded beside the warehouse, which could not be written)"
        )
    note = progress.last_run(db.db_path()) or {}
    for source_id in note.get("unchanged_sources", []):
        if source_id in rows:
            rows[source_id]["last_build"] = f"unchanged at {note['at']} (nothing re-parsed or written)"
    return [rows[k] for k in sorted(rows)]


def cmd_status(args: argparse.Namespace) -> int:
    rows = status_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        reason = f"  reason: {row['reason']}" if row["reason"] else ""
        reason += f"  last build: {row['last_build']}" if row.get("last_build") else ""
        print(
            f"{row['source']:26} family={row['family']:12} mode={row['mode']:8} status={row['status']:10} "
            f"freshness={row['freshness']}  snapshot={row['snapshot']}{reason}"
        )
    note = progress.last_run(db.db_path())
    if note:
        print(
            f"last build at {note['at']}: unchanged, nothing re-parsed or written: "
            f"{', '.join(note['unchanged_sources']) or 'none'}; not stale, skipped: "
            f"{len(note['skipped_assets'])} asset(s); ran: {len(note['ran_assets'])} asset(s)"
        )
    manifest = export_dir() / "manifest.json"
    if manifest.exists():
        published = json.loads(manifest.read_text(encoding="utf-8"))
        print(
            f"export: {export_dir()} content {published['content_hash'][:12]} at {published['generated_at']}"
        )
    else:
        print(f"export: none yet at {export_dir()}")
    return 0


def add_status_parser(commands) -> None:
    status = commands.add_parser("status", help="per source: mode, last snapshot, freshness, last error")
    status.add_argument("--json", action="store_true", help="print the rows as JSON")
    status.set_defaults(run=cmd_status)

"""Failures the warehouse could not record: a lock held elsewhere, a full disk, a failed commit.

When a source fails and its `failed` status cannot be written into core.source_status
(because writing is what failed), the failure is noted in a small file beside the warehouse
(`<db>.failures/<source>.json`). `context-lens status` shows these notes over the stored
rows, and the next status the warehouse does record for the source removes its note. A
note is one JSON document written to a temporary file and renamed, so it is whole or absent.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from warehouse import db


def folder(db_file: Path | str | None = None) -> Path:
    target = Path(db_file) if db_file is not None else db.db_path()
    return target.with_name(target.name + ".failures")


def _path(source_id: str, db_file: Path | str | None) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,120}", source_id):
        raise ValueError(f"not a source id: {source_id!r}")
    return folder(db_file) / f"{source_id}.json"


def note_failure(source_id: str, error: str, db_file: Path | str | None = None) -> Path | None:
    """Keep a failure the warehouse could not take; None when even this small write fails."""
    path = _path(source_id, db_file)
    body = {"source_id": source_id, "status": "failed", "error": error, "at": datetime.now(UTC).isoformat()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(body, out)
        os.replace(temp, path)
    except OSError:
        return None
    return path


def clear(source_id: str, db_file: Path | str | None = None) -> None:
    _path(source_id, db_file).unlink(missing_ok=True)


def pending(db_file: Path | str | None = None) -> dict[str, dict]:
    """Every noted failure, by source id."""
    found = {}
    for path in sorted(folder(db_file).glob("*.json")):
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found[note["source_id"]] = note
    return found

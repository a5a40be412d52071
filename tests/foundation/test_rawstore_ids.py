"""Every stored payload gets its own snapshot: two runs storing the same bytes in the same second
(the fault case Q01, two materializations at once) never share, and so never overwrite, a sidecar."""

from __future__ import annotations

import json
import multiprocessing

from sources.rawstore import RawStore

WHEN = "2026-12-03T05:36:12.678252Z"


def _put(root: str, note: str) -> str:
    sidecar = RawStore(root).put(source="oecd_regional", name="oecd_population", content=b"same bytes",
                                 request_url=f"http://mirror/{note}", key="k", mode="live", retrieved_at=WHEN,
                                 note=note)  # fmt: skip
    return sidecar.snapshot_id


def test_the_same_payload_in_the_same_second_gets_two_snapshots(tmp_path):
    first, second = _put(str(tmp_path), "a"), _put(str(tmp_path), "b")
    assert first == "oecd_regional-20261203053612-" + first.split("-")[2] and second == f"{first}-2"
    for snapshot_id, note in ((first, "a"), (second, "b")):
        stored = json.loads((tmp_path / "snapshots" / "oecd_regional" / f"{snapshot_id}.json").read_text())
        assert stored["snapshot_id"] == snapshot_id and stored["note"] == note  # each kept its own fields
    assert not list((tmp_path / "snapshots" / "oecd_regional").glob(".tmp-*"))


def test_processes_storing_at_once_each_claim_their_own_snapshot(tmp_path):
    # Spawned, not forked: a fork of the test process (threads of DuckDB, gRPC and logging from
    # earlier tests) can copy a held lock into the child, which then waits forever (seen: CI hung).
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        ids = pool.starmap(_put, [(str(tmp_path), f"p{i}") for i in range(8)])
    assert len(set(ids)) == 8
    for snapshot_id, note in zip(ids, (f"p{i}" for i in range(8)), strict=True):
        stored = json.loads((tmp_path / "snapshots" / "oecd_regional" / f"{snapshot_id}.json").read_text())
        assert stored["note"] == note and stored["snapshot_id"] == snapshot_id

"""The build's progress lines and final summary: plain text off a terminal, one line per fallback."""

from __future__ import annotations

import io
import logging

from pipelines import progress
from pipelines.families import catalog
from warehouse import db


def test_summary_lists_every_source_with_its_status_and_rows(sample_build_env):
    sources = [s for ids in catalog().values() for s in ids]
    with db.reader() as conn:
        rows = progress.summary_rows(conn, sources, {"sinim": 745})
        served = dict(conn.execute("SELECT source_id, status FROM core.source_status").fetchall())
    by_source = {row["source"]: row for row in rows}
    assert set(by_source) == set(sources)
    assert by_source["sinim"]["rows"] == "745"
    assert by_source["ine_ene"]["rows"] == "0"  # nothing written by this (pretend) run
    assert by_source["royalties_curated"]["status"] == "curated"
    assert {row["source"]: row["status"] for row in rows} == {s: served.get(s, "never run") for s in sources}
    assert by_source["sinim"]["reason"] == "offline run: live fetch skipped"

    out = io.StringIO()  # not a terminal: an ASCII table, no control codes
    run = progress.RunLog(total=3, done=["a", "b"], failed=["c"], failed_checks=["export:freshness_sinim"])
    progress.render_summary(rows, run, {"export": "output/export"}, out)
    text = out.getvalue()
    assert "\x1b" not in text
    assert "| sinim " in text and " 745 |" in text
    assert "2 of 3 steps done, failed: c; checks failed: 1 (export:freshness_sinim)" in text
    assert text.rstrip().endswith("export: output/export")


def test_a_fallback_reported_by_its_asset_is_not_logged_twice():
    keep, drop = (
        logging.LogRecord("sources.acquire", logging.WARNING, __file__, 1, "x", None, None) for _ in range(2)
    )
    drop.fallback = True
    assert progress.DropReportedFallbacks().filter(keep)
    assert not progress.DropReportedFallbacks().filter(drop)


def test_step_count_counts_assets_and_check_definitions():
    from pipelines.cli import _selection
    from pipelines.definitions import defs
    from pipelines.studies import DEFAULT_STUDY

    graph = defs.resolve_asset_graph()
    selection = _selection(DEFAULT_STUDY)
    assets = len(selection.resolve(graph))
    assert progress.step_count(defs, selection) > assets  # the checks run in steps of their own
    assert progress.step_count(defs, selection) < assets + len(selection.resolve_checks(graph))


def test_summary_reason_says_each_cause_once_without_urls():
    error = "; ".join(
        f"fetch failed for source 'mindicador': host not reachable (name resolution failed) for "
        f"https://mindicador.cl/api/{series}/{year}"
        for series in ("dolar", "uf")
        for year in (2019, 2020, 2021)
    )
    assert progress.short_reason(error) == (
        "fetch failed for source 'mindicador': host not reachable (name resolution failed) (6 endpoints)"
    )
    mixed = "HTTP 503 for https://a.example/x; checksum mismatch: 12 != 13"
    assert progress.short_reason(mixed) == "HTTP 503; checksum mismatch: 12 != 13 (2 endpoints)"
    assert progress.short_reason(None) == ""
    assert len(progress.short_reason("x" * 1000)) == progress.REASON_CHARS

"""OECD regional statistics end to end: parser on the real SDMX-CSV, pipeline against a local server."""

import csv

import pytest
from dagster import materialize

from pipelines import lens, territories
from pipelines import oecd as oecd_assets
from pipelines.resources import SourcesResource, WarehouseResource
from sources import oecd
from sources.acquire import SAMPLES_DIR
from sources.base import ParseError
from tests.support.http import Reply
from warehouse import db

ASSETS = [territories.territories, *oecd_assets.ASSETS, *lens.ASSETS]


def test_parser_reads_the_real_csvfilewithlabels_excerpt(shared_data):
    path = shared_data / "oecd" / "oecd_sdmx_csvfilewithlabels_DF_POP_5Y_excerpt.csv"
    frame = oecd.parse_sdmx_csv(path.read_bytes())
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(frame) == len(rows)
    assert frame["ref_area"].tolist() == [r["REF_AREA"] for r in rows]
    expected = [float(r["OBS_VALUE"]) * 10 ** int(r["UNIT_MULT"]) for r in rows]
    assert frame["obs_value"].tolist() == pytest.approx(expected)
    assert set(frame["obs_status"]) <= {"A", "P", "E", "B"}
    assert "Türkiye" in set(frame["ref_area_label"]) or all(r["Reference area"] != "Türkiye" for r in rows)
    assert frame["dataflow"].str.startswith("OECD.CFE.EDS:DSD_REG_DEMO@DF_POP_5Y").all()


def test_renamed_column_is_a_clear_parse_error(shared_data):
    text = (shared_data / "oecd" / "oecd_sdmx_csvfilewithlabels_DF_POP_5Y_excerpt.csv").read_text(
        encoding="utf-8"
    )
    renamed = text.replace("OBS_VALUE", "VALUE", 1).encode()
    with pytest.raises(ParseError, match=r"oecd_regional.*missing required column\(s\) OBS_VALUE"):
        oecd.parse_sdmx_csv(renamed)


def _serve_samples(server, etag: str | None = None):
    """Serve our sample payloads (real SDMX-CSV layout) and point every OECD endpoint at them."""
    overrides = {}
    for query in oecd.QUERIES:
        body = (SAMPLES_DIR / "oecd" / f"{query.indicator}_SAMPLE.csv").read_bytes()
        path = f"/{query.indicator}.csv"
        headers = {"Content-Type": "text/csv", **({"ETag": etag} if etag else {})}

        def reply(handler, body=body, headers=headers):
            if etag and handler.headers.get("If-None-Match") == etag:
                return Reply(304)
            return Reply(200, body, headers)

        server.script(path, reply)
        overrides[query.indicator] = server.url(path)
    return overrides


def _point_endpoints(monkeypatch, overrides):
    for name, url in overrides.items():
        monkeypatch.setenv(f"CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__{name.upper()}", url)


def _run(assets=ASSETS):
    return materialize(
        assets,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


def _tables():
    with db.reader() as conn:
        return {
            "observations": conn.execute("SELECT * FROM core.observations ORDER BY ALL").fetchall(),
            "snapshots": conn.execute("SELECT snapshot_id, mode FROM core.snapshots ORDER BY ALL").fetchall(),
            "staging": conn.execute("SELECT * FROM staging.oecd_regional ORDER BY ALL").fetchall(),
        }


def test_pipeline_live_then_unchanged_then_broken(warehouse_env, http_server, monkeypatch):
    _point_endpoints(monkeypatch, _serve_samples(http_server, etag='"2025-06"'))
    assert _run().success

    with db.reader() as conn:
        cl02 = conn.execute(
            "SELECT indicator_id, count(*) FROM core.observations WHERE territory_id = 'region:02' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        modes = conn.execute("SELECT DISTINCT mode FROM core.snapshots").fetchall()
        status = conn.execute(
            "SELECT status, mode FROM core.source_status WHERE source_id='oecd_regional'"
        ).fetchone()
    assert [row[0] for row in cl02] == sorted(q.indicator for q in oecd.QUERIES)
    assert modes == [("live",)] and status == ("live", "live")
    lens_md = (warehouse_env / "output" / "lens" / "antofagasta-2025" / "lens.md").read_text()
    assert "oecd_regional" in lens_md and "Antofagasta" in lens_md

    # Nothing changed upstream: every request is answered 304, nothing is refetched, tables identical.
    before = _tables()
    hits_before = len(http_server.requests)
    assert _run().success
    new_requests = http_server.requests[hits_before:]
    assert len(new_requests) == len(oecd.QUERIES)
    assert all("If-None-Match" in r["headers"] for r in new_requests)
    assert _tables() == before

    # A renamed column upstream: a clear error, and the earlier data stays as it was.
    broken = (
        (SAMPLES_DIR / "oecd" / "oecd_population_SAMPLE.csv").read_bytes().replace(b"OBS_VALUE", b"VALUE", 1)
    )
    http_server.script("/oecd_population.csv", Reply(200, broken, {"ETag": '"2025-07"'}))
    result = _run([territories.territories, *oecd_assets.ASSETS])
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    failure = error.message + (error.cause.message if error.cause else "")
    assert "oecd_regional" in failure and "OBS_VALUE" in failure
    assert _tables() == before
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, error FROM core.source_status WHERE source_id='oecd_regional'"
        ).fetchone()
    assert status[0] == "failed" and "OBS_VALUE" in status[1]
    assert list((warehouse_env / "raw" / "quarantine" / "oecd_regional").glob("*.bin"))


def test_offline_run_uses_sample_and_says_so(warehouse_env, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert _run().success
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, mode FROM core.source_status WHERE source_id='oecd_regional'"
        ).fetchone()
        urls = conn.execute("SELECT DISTINCT request_url FROM core.snapshots").fetchall()
    assert status == ("sample", "sample")
    assert all("SAMPLE" in url for (url,) in urls)
    lens_md = (warehouse_env / "output" / "lens" / "antofagasta-2025" / "lens.md").read_text()
    assert "SAMPLE DATA" in lens_md


def test_sample_never_replaces_an_earlier_live_snapshot(warehouse_env, http_server, monkeypatch):
    _point_endpoints(monkeypatch, _serve_samples(http_server))
    assert _run([territories.territories, *oecd_assets.ASSETS]).success
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert _run([territories.territories, *oecd_assets.ASSETS]).success
    with db.reader() as conn:
        status = conn.execute(
            "SELECT status, mode FROM core.source_status WHERE source_id='oecd_regional'"
        ).fetchone()
        modes = conn.execute(
            "SELECT DISTINCT s.mode FROM core.observations o JOIN core.snapshots s USING (snapshot_id)"
        ).fetchall()
    assert status == ("stale", "live") and modes == [("live",)]


def test_sdmx_parser_counts_fields(shared_data):
    header = (
        (shared_data / "oecd" / "oecd_sdmx_csvfilewithlabels_DF_POP_5Y_excerpt.csv")
        .read_text()
        .splitlines()[0]
    )
    bad = (header + "\n" + "DATAFLOW,x,y\n").encode()
    with pytest.raises(ParseError, match="line 2 has 3 fields"):
        oecd.parse_sdmx_csv(bad)

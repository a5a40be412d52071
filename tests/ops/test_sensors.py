"""Upstream-change sensors against a local server: unchanged -> no run; changed -> a run of that family only."""

from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, build_sensor_context, materialize

from pipelines import oecd as oecd_family
from pipelines import territories
from pipelines.definitions import defs, operations
from pipelines.resources import SourcesResource, WarehouseResource
from sources import deis_deaths, oecd, upstream
from sources.acquire import SAMPLES_DIR
from sources.rawstore import RawStore
from tests.support.http import Reply

OECD_KEYS = {key for asset in oecd_family.ASSETS for key in asset.keys}


def _sensor(name: str):
    return next(s for s in operations.sensors if s.name == name)


def _tick(sensor_def, cursor):
    context = build_sensor_context(cursor=cursor, resources={"sources": SourcesResource()}, definitions=defs)
    return sensor_def.evaluate_tick(context)


def _build_oecd_live(server, monkeypatch, path_of, etag: str | None = None):
    """Serve our OECD sample payloads (real SDMX-CSV layout) and run the family live against them."""
    for query in oecd.QUERIES:
        body = (SAMPLES_DIR / "oecd" / f"{query.indicator}_SAMPLE.csv").read_bytes()
        headers = {"Content-Type": "text/csv", **({"ETag": etag} if etag else {})}

        def reply(handler, body=body, headers=headers):
            if etag and handler.headers.get("If-None-Match") == etag:
                return Reply(304)
            return Reply(200, body, headers)

        server.script(path_of(query), reply)
        monkeypatch.setenv(
            f"CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__{query.indicator.upper()}", server.url(path_of(query))
        )
    result = materialize(
        [territories.territories, *oecd_family.ASSETS],
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
    )
    assert result.success


def test_changed_etag_requests_a_run_of_just_that_family(warehouse_env, http_server, monkeypatch):
    _build_oecd_live(http_server, monkeypatch, lambda q: f"/{q.indicator}.csv", etag='"2025-06"')
    sensor_def = _sensor("oecd_upstream_changes")

    # Unchanged: one conditional GET per accepted request, each answered 304, and no run.
    before = len(http_server.requests)
    tick = _tick(sensor_def, None)
    probes = http_server.requests[before:]
    assert tick.run_requests == [] and "nothing changed" in tick.skip_message
    assert len(probes) == len(oecd.QUERIES)
    assert all(r["method"] == "GET" and r["headers"].get("If-None-Match") == '"2025-06"' for r in probes)

    # One dataset gets a new ETag: a run of exactly the OECD family's assets.
    body = (SAMPLES_DIR / "oecd" / "oecd_population_SAMPLE.csv").read_bytes()
    http_server.script("/oecd_population.csv", Reply(200, body, {"ETag": '"2025-07"'}))
    tick = _tick(sensor_def, tick.cursor)
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert set(request.asset_selection) == OECD_KEYS
    assert request.tags["context_lens/refresh_family"] == "oecd"
    assert "oecd_population" in request.tags["context_lens/reason"]
    # No other family's sensor saw a change in a source it does not own.
    assert all(not set(request.asset_selection) - OECD_KEYS for request in tick.run_requests)


def _constraint(flow: str, obs_count: int, prepared: str) -> bytes:
    """An SDMX-ML 2.1 actual content constraint in the shape .Stat Suite serves (written for this test)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<message:Structure xmlns:message="http://www.sdmx.org/resources/sdmxml/schemas/v2_1/message"
  xmlns:structure="http://www.sdmx.org/resources/sdmxml/schemas/v2_1/structure"
  xmlns:common="http://www.sdmx.org/resources/sdmxml/schemas/v2_1/common">
 <message:Header><message:ID>IREF{prepared[-6:]}</message:ID><message:Test>false</message:Test>
  <message:Prepared>{prepared}</message:Prepared><message:Sender id="SAMPLE"/></message:Header>
 <message:Structures><structure:Constraints>
  <structure:ContentConstraint id="CR_A_{flow}" agencyID="OECD.CFE.EDS" version="1.0" type="Actual">
   <common:Annotations><common:Annotation id="obs_count"><common:AnnotationTitle>{obs_count}</common:AnnotationTitle>
    <common:AnnotationType>sdmx_metrics</common:AnnotationType></common:Annotation></common:Annotations>
   <common:Name xml:lang="en">SAMPLE availability of {flow}</common:Name>
   <structure:ConstraintAttachment><structure:Dataflow><Ref id="{flow}" agencyID="OECD.CFE.EDS"/></structure:Dataflow>
   </structure:ConstraintAttachment>
   <structure:CubeRegion include="true"><common:KeyValue id="REF_AREA"><common:Value>CL02</common:Value>
    </common:KeyValue></structure:CubeRegion>
  </structure:ContentConstraint>
 </structure:Constraints></message:Structures>
</message:Structure>""".encode()


def test_oecd_is_probed_through_its_content_constraints(warehouse_env, http_server, monkeypatch):
    def data_path(query):
        return f"/public/rest/data/OECD.CFE.EDS,{query.dataflow},{query.version}/all"

    _build_oecd_live(http_server, monkeypatch, data_path)
    counts = {q.dataflow: 100 + i for i, q in enumerate(oecd.QUERIES)}
    for query in oecd.QUERIES:
        # A fresh message header (id, timestamp) on every answer, as a live SDMX service gives.
        http_server.script(
            f"/public/rest/contentconstraint/OECD.CFE.EDS/CR_A_{query.dataflow}",
            lambda handler, flow=query.dataflow: Reply(
                200,
                _constraint(flow, counts[flow], datetime.now(UTC).isoformat()),
                {"Content-Type": "application/xml"},
            ),
        )
    sensor_def = _sensor("oecd_upstream_changes")
    data_hits = sum(http_server.hits(data_path(q)) for q in oecd.QUERIES)

    first = _tick(sensor_def, None)  # nothing remembered yet: the first sight counts as a change
    assert len(first.run_requests) == 1
    second = _tick(sensor_def, first.cursor)
    assert second.run_requests == [] and "4 unchanged" in second.skip_message

    counts[oecd.QUERIES[1].dataflow] += 16  # the unemployment dataflow gains observations
    third = _tick(sensor_def, second.cursor)
    assert len(third.run_requests) == 1 and set(third.run_requests[0].asset_selection) == OECD_KEYS
    assert "obs_count=117" in third.run_requests[0].tags["context_lens/reason"]
    # The probes never touched the data queries themselves.
    assert sum(http_server.hits(data_path(q)) for q in oecd.QUERIES) == data_hits


def test_deis_probe_reads_the_newest_weekly_file_name(tmp_path, http_server):
    """The page lists two weekly files (names in DEIS's real pattern); the newer date wins."""
    page = (
        b'<html><body><a href="/wp-content/uploads/2025/10/DEFUNCIONES_FUENTE_DEIS_2023_2025_14102025.zip">'
        b'semana</a> <a href="https://repositoriodeis.minsal.cl/DatosAbiertos/VITALES/'
        b'DEFUNCIONES_FUENTE_DEIS_2023_2025_07102025.zip">anterior</a></body></html>'
    )
    http_server.script("/datosabiertos", Reply(200, page, {"Content-Type": "text/html"}))
    store = RawStore(tmp_path / "raw")
    accepted = store.put(
        source=deis_deaths.SOURCE.id,
        name="deaths-weekly",
        content=b"SAMPLE zip stand-in",
        request_url=http_server.url("/DEFUNCIONES_FUENTE_DEIS_2023_2025_07102025.zip"),
        key="weekly",
        mode="live",
    )
    store.promote(accepted)
    targets = upstream.plan_targets(
        deis_deaths.SOURCE.id,
        store,
        {"open_data_page": http_server.url("/datosabiertos")},
        upstream.latest_sidecars(store, deis_deaths.SOURCE.id),
    )
    assert [t.kind for t in targets] == ["deis_weekly"]
    assert targets[0].baseline == "deis:DEFUNCIONES_FUENTE_DEIS_2023_2025_07102025.zip"
    probe = upstream.Prober().probe(targets[0])
    assert probe.validator == "deis:DEFUNCIONES_FUENTE_DEIS_2023_2025_14102025.zip"
    assert upstream.judge(probe, None) == "changed"
    assert http_server.hits("/datosabiertos") == 1


@pytest.mark.parametrize("status", [500, 404])
def test_a_failing_probe_never_requests_a_run(tmp_path, http_server, status):
    http_server.script("/data.csv", Reply(status, b"down"))
    target = upstream.Target(
        "some_source", "data", "conditional_get", http_server.url("/data.csv"), etag='"1"'
    )
    probe = upstream.Prober().probe(target)
    assert upstream.judge(probe, '"1"') == "error" and f"HTTP {status}" in probe.error


def test_a_successful_family_refresh_triggers_publication(warehouse_env, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [territories.territories, *oecd_family.ASSETS],
        instance=instance,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource()},
    )
    assert result.success
    sensor_def = _sensor("publish_after_refresh")
    context = build_run_status_sensor_context(
        sensor_name=sensor_def.name,
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    )
    request = sensor_def(context)
    assert request.run_key == f"publish-after-{result.run_id}"
    assert sensor_def.job_name == "publish"

"""`--as-of` rebuilds a lens from the snapshots retrieved by that date, with its own content hash.

OECD sample payloads (real SDMX-CSV layout, SAMPLE values) are served by a local HTTP server as
if live: first as published, then with GDP per capita revised upward. The raw store's clock is set
back 40 days for the first fetch, so the two snapshots lie on different days.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from dagster import materialize

from pipelines import cli, lens, territories
from pipelines import oecd as oecd_assets
from pipelines.lens import build_lens
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.studies import load_study
from sources import oecd, rawstore
from sources.acquire import SAMPLES_DIR
from tests.support.http import Reply
from warehouse import db

GDP = "oecd_gdp_per_capita_usd_ppp"
REVISION = 1.25  # the "revised" GDP values are the sample ones times this factor


def _lens_asset(study_id: str):
    return next(a for a in lens.ASSETS if a.key.path[-1] == f"lens_{study_id.replace('-', '_')}")


def _revised(body: bytes) -> bytes:
    """The same SDMX-CSV with every OBS_VALUE multiplied by REVISION (written with the csv module)."""
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    column = rows[0].index("OBS_VALUE")
    for row in rows[1:]:
        if row[column]:
            row[column] = f"{float(row[column]) * REVISION:.1f}"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _serve(server, monkeypatch, revised: bool) -> dict[str, bytes]:
    bodies = {}
    for query in oecd.QUERIES:
        body = (SAMPLES_DIR / "oecd" / f"{query.indicator}_SAMPLE.csv").read_bytes()
        if revised and query.indicator == GDP:
            body = _revised(body)
        bodies[query.indicator] = body
        path = f"/{query.indicator}.csv"
        server.script(path, Reply(200, body, {"Content-Type": "text/csv"}))
        monkeypatch.setenv(
            f"CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__{query.indicator.upper()}", server.url(path)
        )
    return bodies


def _served_value(body: bytes, area: str, year: str) -> float:
    """The value the server sent for an area and year, read straight from the CSV."""
    for row in csv.DictReader(io.StringIO(body.decode("utf-8"))):
        if row["REF_AREA"] == area and row["TIME_PERIOD"] == year:
            return float(row["OBS_VALUE"]) * 10 ** int(row["UNIT_MULT"] or 0)
    raise AssertionError(f"no {area} {year} in the served CSV")


def _run(assets) -> None:
    result = materialize(
        assets,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )
    assert result.success


def _lens_value(area: str = "region:02", year: str = "2022") -> list[float]:
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT value FROM lens.antofagasta_2025_indicators WHERE indicator_id = ? AND territory_id = ? "
            "AND period = ?",
            [GDP, area, year],
        ).fetchall()
    return [r[0] for r in rows]


def _manifest() -> dict[str, str]:
    with db.reader() as conn:
        return dict(conn.execute("SELECT key, value FROM lens.antofagasta_2025_manifest").fetchall())


def test_as_of_rebuilds_from_older_snapshots(warehouse_env, http_server, monkeypatch):
    lens_asset = _lens_asset("antofagasta-2025")
    study = load_study("antofagasta-2025")
    first_day = datetime.now(UTC) - timedelta(days=40)
    with monkeypatch.context() as clock:
        clock.setattr(rawstore, "utc_now", lambda: first_day.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        original = _serve(http_server, monkeypatch, revised=False)
        _run([territories.territories, *oecd_assets.ASSETS])
    first_hash = build_lens(WarehouseResource(), study).lens.content_hash
    assert _lens_value() == [_served_value(original[GDP], "CL02", "2022")]

    revised = _serve(http_server, monkeypatch, revised=True)
    _run([*oecd_assets.ASSETS, lens_asset])
    today_hash = _manifest()["content_hash"]
    assert _lens_value() == [_served_value(revised[GDP], "CL02", "2022")]
    assert today_hash != first_hash

    # As of a day between the two snapshots: the older values, a different hash, stated in the report.
    as_of = (date.today() - timedelta(days=20)).isoformat()
    monkeypatch.setenv("CONTEXT_LENS_AS_OF", as_of)
    _run([lens_asset])
    manifest = _manifest()
    assert manifest["as_of"] == as_of and manifest["reference_date"] == as_of
    assert _lens_value() == [_served_value(original[GDP], "CL02", "2022")]
    assert manifest["content_hash"] != today_hash
    report = (warehouse_env / "output" / "lens" / "antofagasta-2025" / "lens.md").read_text(encoding="utf-8")
    assert f"lens as of {as_of}" in report and manifest["content_hash"][:16] in report
    assert f"--as-of {as_of}" in report
    with db.reader() as conn:
        old_snapshots = {
            r[0]
            for r in conn.execute(
                "SELECT snapshot_id FROM core.snapshots WHERE source_id = 'oecd_regional' AND retrieved_at < ?",
                [as_of],
            ).fetchall()
        }
        used = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT snapshot_id FROM lens.antofagasta_2025_indicators"
            ).fetchall()
        }
    assert used and used <= old_snapshots

    # The same as-of date again (the asset's own function, without Dagster): the same hash.
    assert build_lens(WarehouseResource(), study).lens.content_hash == manifest["content_hash"]

    # Before any snapshot: no values, and the report says what is missing rather than failing.
    monkeypatch.setenv("CONTEXT_LENS_AS_OF", (date.today() - timedelta(days=60)).isoformat())
    build_lens(WarehouseResource(), study)
    assert _lens_value() == []
    report = (warehouse_env / "output" / "lens" / "antofagasta-2025" / "lens.md").read_text(encoding="utf-8")
    assert report.count("No indicator for this section is in the warehouse yet") == 3
    assert "no snapshot retrieved by the lens date" in report


def test_cli_passes_as_of_to_the_lens(monkeypatch):
    """`context-lens build --as-of` hands the date to the lens asset (through CONTEXT_LENS_AS_OF)."""
    import os

    seen = {}

    def fake_materialize(*args, **kwargs):
        seen["as_of"] = os.environ.get("CONTEXT_LENS_AS_OF")
        return True

    # The CLI writes both into os.environ; setting them here makes monkeypatch remove them afterwards.
    monkeypatch.setenv("CONTEXT_LENS_AS_OF", "")
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "")
    monkeypatch.setattr(cli, "_materialize", fake_materialize)
    assert cli.main(["build", "--study", "calama-loa-2025", "--as-of", "2025-06-30", "--offline"]) == 0
    assert seen == {"as_of": "2025-06-30"}

"""`--as-of` rebuilds a lens from the snapshots retrieved by that date, with its own content hash.

OECD sample payloads (real SDMX-CSV layout, SAMPLE values) are served by a local HTTP server as
if live: first as published, then with GDP per capita revised upward. The raw store's clock is set
back 40 days for the first fetch, so the two snapshots lie on different days.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
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

    # As of a day between the two snapshots: the older values, a different hash, stated in the
    # report, all in output/lens/<study>/as-of-<date>/; the current lens (tables, files) stays.
    root = warehouse_env / "output" / "lens" / "antofagasta-2025"
    present = _digests(root)
    as_of = (date.today() - timedelta(days=20)).isoformat()
    monkeypatch.setenv("CONTEXT_LENS_AS_OF", "")  # the CLI sets it; monkeypatch removes it afterwards
    monkeypatch.setattr(cli, "_materialize", _no_materialize)
    assert cli.main(["build", "--study", "antofagasta-2025", "--as-of", as_of]) == 0
    folder = root / f"as-of-{as_of}"
    package = json.loads((folder / "data" / "datapackage.json").read_text(encoding="utf-8"))["context_lens"]
    assert package["as_of"] == as_of and package["reference_date"] == as_of
    assert package["content_hash"] != today_hash
    values = _folder_values(folder)
    assert [v for k, v in values.items() if k[:3] == (GDP, "region:02", "2022")] == [
        _served_value(original[GDP], "CL02", "2022")
    ]
    report = (folder / "lens.md").read_text(encoding="utf-8")
    assert f"lens as of {as_of}" in report and package["content_hash"][:16] in report
    assert f"--as-of {as_of}" in report
    assert _digests(root) == present and _manifest()["content_hash"] == today_hash
    assert _lens_value() == [_served_value(revised[GDP], "CL02", "2022")]
    with db.reader() as conn:
        old_snapshots = {
            r[0]
            for r in conn.execute(
                "SELECT snapshot_id FROM core.snapshots WHERE source_id = 'oecd_regional' AND retrieved_at < ?",
                [as_of],
            ).fetchall()
        }
    used = {k[3] for k in values}
    assert used and used <= old_snapshots

    # The same as-of date again (the asset's own function, without Dagster): the same hash.
    monkeypatch.setenv("CONTEXT_LENS_AS_OF", as_of)
    assert build_lens(WarehouseResource(), study).lens.content_hash == package["content_hash"]
    assert _digests(root) == present

    # Before any snapshot: refused with exit 2, nothing written anywhere.
    before = _digests(warehouse_env / "output")
    early = (date.today() - timedelta(days=60)).isoformat()
    assert cli.main(["build", "--study", "antofagasta-2025", "--as-of", early]) == 2
    assert _digests(warehouse_env / "output") == before
    assert not (root / f"as-of-{early}").exists()


def _no_materialize(*args, **kwargs):
    raise AssertionError("build --as-of must not run any asset")


def _digests(folder) -> dict[str, str]:
    """sha256 of every file under `folder` except as-of lenses: what "the present" is made of."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith("as-of-") for part in path.parts)
    }


def _folder_values(folder) -> dict[tuple[str, str, str, str], float]:
    with open(folder / "data" / "indicators.csv", encoding="utf-8") as handle:
        return {
            (r["indicator_id"], r["territory_id"], r["period"], r["snapshot_id"]): float(r["value"])
            for r in csv.DictReader(handle)
        }


def test_as_of_dates_get_messages_for_people(capsys):
    """`--as-of 2024-13-45` is refused by argparse (exit 2) with what is wrong and the format."""
    try:
        cli.main(["build", "--as-of", "2024-13-45"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("an impossible date was accepted")
    message = capsys.readouterr().err
    assert "'2024-13-45' is not a valid date (month must be in 1..12)" in message
    assert "YYYY-MM-DD" in message and "Invalid isoformat" not in message


def test_as_of_on_an_empty_warehouse_refuses(warehouse_env, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_materialize", _no_materialize)
    assert cli.main(["build", "--as-of", "2020-01-01"]) == 2
    err = capsys.readouterr().err
    assert "no snapshot was retrieved by 2020-01-01 (the warehouse is empty" in err
    assert not (warehouse_env / "output").exists()

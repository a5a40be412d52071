"""Streamflow acquisition and loading: the CAMELS-CL release and the CR2 walk, the gauge attributes
their payloads carry, and the daily matrices streamed by DuckDB into scratch tables of long rows.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipelines.ingest import acquire_all
from pipelines.resources import SourcesResource
from pipelines.water_tables import STAGING_DAILY
from sources import camels_cl, cr2_streamflow
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.base import Fetcher, FetchError, FetchRequest, Payload, SourceInfo
from sources.endpoints import endpoints
from sources.fetch import payload_from_sidecar
from warehouse import long_rows

SAMPLE_DIR = SAMPLES_DIR / "streamflow"
CAMELS_SAMPLE = SAMPLE_DIR / "camelscl_q_m3s_day_SAMPLE.csv"
CR2_SAMPLE = SAMPLE_DIR / "cr2_qflxDaily_2018_SAMPLE.csv"


def acquire_walk(
    acquirer: Acquirer,
    source: SourceInfo,
    anchor: FetchRequest,
    walk: Callable[[Fetcher], Payload],
    sample: Path | None,
) -> Acquired:
    """A multi-request protocol as one unit: the live walk, else the newest live payload of
    the same name (stale), else the sample, the same policy as `Acquirer.acquire`.

    The final URL of a walk (a tokenised download link) changes, so the stale lookup goes by
    the payload name rather than the request key.
    """
    error = "offline run: live fetch skipped"
    if not acquirer.offline:
        try:
            payload = walk(acquirer.fetcher)
            return Acquired(payload, "unchanged" if payload.not_modified else "live")
        except FetchError as exc:
            error = str(exc)
    store = acquirer.fetcher.store
    earlier = [s for s in store.sidecars(source.id) if s.name == anchor.name and s.mode == "live"]
    if earlier:
        sidecar = earlier[-1]
        return Acquired(payload_from_sidecar(sidecar, store.read(sidecar.sha256)), "stale", error)
    fallback = Acquirer(acquirer.fetcher, offline=True).acquire(source, anchor, sample)
    return Acquired(
        fallback.payload, fallback.status, f"{error}; {fallback.error}" if fallback.error else error
    )


def acquire_streamflow(sources: SourcesResource) -> tuple[Acquirer, dict[str, list[Acquired]]]:
    camels_urls = endpoints(camels_cl.SOURCE.id, camels_cl.ENDPOINTS)
    camels_request = next(
        r for r in camels_cl.build_requests(camels_urls) if r.name == "camels_cl_v202201_zip"
    )
    acquirer, camels = acquire_all(sources, camels_cl.SOURCE, [(camels_request, CAMELS_SAMPLE)])
    cr2_urls = endpoints(cr2_streamflow.SOURCE.id, cr2_streamflow.ENDPOINTS)
    anchor = FetchRequest(name="cr2_qflxdaily_2018_zip", url=cr2_urls["qflx_daily_2018_page"], expect="zip")
    cr2 = acquire_walk(
        acquirer,
        cr2_streamflow.SOURCE,
        anchor,
        lambda fetcher: cr2_streamflow.fetch_daily_zip(fetcher, cr2_urls),
        CR2_SAMPLE,
    )
    return acquirer, {camels_cl.SOURCE.id: camels, cr2_streamflow.SOURCE.id: [cr2]}


def gauge_catalogue(camels: Payload, cr2: Payload, cr2_daily: Path, workdir: Path) -> pd.DataFrame:
    """One row per gauge from the attribute tables the payloads carry.

    Live release zips carry CAMELS-CL `catchment_attributes.csv` and the CR2 stations file;
    a SAMPLE (bare CSV) payload carries neither, so the CR2 daily file's metadata rows are
    used instead and CAMELS-only gauges have no coordinates.
    """
    frames = []
    if cr2_streamflow.is_zip(cr2.content):
        path = cr2_streamflow.member_to_file(
            cr2.content, cr2_streamflow.STATIONS_MEMBER, workdir, "stations.txt", cr2_streamflow.SOURCE.id
        )
        stations, origin = cr2_streamflow.parse_cr2_stations(path, cr2.snapshot_id), "cr2 stations file"
    else:
        stations = cr2_streamflow.parse_cr2_daily_metadata(cr2_daily, cr2.snapshot_id)
        origin = "cr2 daily file metadata rows"
    stations = stations.rename(columns={"name": "cr2_name", "lat": "cr2_lat", "lon": "cr2_lon"})
    stations["cr2_origin"] = f"{origin} ({cr2.mode})"
    frames.append(stations[["gauge_code", "cr2_name", "cr2_lat", "cr2_lon", "altitude_m", "cr2_origin"]])
    if cr2_streamflow.is_zip(camels.content):
        path = cr2_streamflow.member_to_file(
            camels.content,
            camels_cl.V202201_ATTRIBUTES_MEMBER,
            workdir,
            "attributes.csv",
            camels_cl.SOURCE.id,
        )
        attributes = camels_cl.parse_camels_attributes(path, camels.snapshot_id)
        attributes["camels_origin"] = f"camels_cl catchment_attributes.csv ({camels.mode})"
    else:
        attributes = pd.DataFrame(columns=camels_cl.ATTRIBUTE_COLUMNS + ["camels_origin"])
    merged = attributes.merge(frames[0], on="gauge_code", how="outer")
    merged["name"] = merged["name"].where(merged["name"].notna(), merged["cr2_name"])
    merged["lat"] = pd.to_numeric(merged["lat"]).where(merged["lat"].notna(), merged["cr2_lat"])
    merged["lon"] = pd.to_numeric(merged["lon"]).where(merged["lon"].notna(), merged["cr2_lon"])
    merged["altitude_m"] = pd.to_numeric(merged["altitude_m"]).where(
        merged["altitude_m"].notna(), pd.to_numeric(merged["elev_gauge_m"])
    )
    merged["catalogue_source"] = merged[["camels_origin", "cr2_origin"]].apply(
        lambda row: "; ".join(v for v in row if isinstance(v, str)), axis=1
    )
    columns = [
        "gauge_code",
        "name",
        "lat",
        "lon",
        "altitude_m",
        "area_km2",
        "interv_degree",
        "big_dam",
        "sur_rights_n",
        "sur_rights_flow_m3s",
        "gw_rights_n",
        "gw_rights_flow_m3s",
        "catalogue_source",
    ]
    out = merged[columns].copy()
    numeric = [c for c in columns if c not in ("gauge_code", "name", "catalogue_source")]
    out[numeric] = out[numeric].apply(pd.to_numeric).astype(float)
    return out.astype({"gauge_code": str, "name": "string", "catalogue_source": str}).reset_index(drop=True)


INCOMING = "ops"  # scratch tables of a publication live here, inside its transaction


def load_daily(conn, files: dict[str, tuple[Path, Payload]]) -> dict[tuple[str, str], str]:
    """Stream each wide file into a scratch table and union them: {table: SQL of its new rows}.

    Nothing is published here: the caller passes the SQL to `write_tables`, which judges and
    writes the staging tables and core.daily_flows, then drops the scratch (`drop_scratch`).
    """
    selects = {
        camels_cl.SOURCE.id: camels_cl.load_camels_daily_sql,
        cr2_streamflow.SOURCE.id: cr2_streamflow.load_cr2_daily_sql,
    }
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {INCOMING}")
    conn.execute(
        f"CREATE OR REPLACE TABLE {INCOMING}.incoming_daily_flows (gauge_code VARCHAR NOT NULL, "
        "date DATE NOT NULL, flow_m3s DOUBLE NOT NULL, source_id VARCHAR NOT NULL, snapshot_id VARCHAR NOT NULL)"
    )
    loaded = {}
    for source_id, (path, payload) in files.items():
        scratch = f"incoming_{STAGING_DAILY[source_id]}"
        sql = selects[source_id](path, payload.snapshot_id)
        long_rows.load(conn, sql, (INCOMING, scratch), source_id, snapshot=payload.snapshot_id)
        conn.execute(
            f"INSERT INTO {INCOMING}.incoming_daily_flows SELECT gauge_code, date, flow_m3s, ?, ? "  # noqa: S608
            f"FROM {INCOMING}.{scratch}",
            [source_id, payload.snapshot_id],
        )
        loaded[("staging", STAGING_DAILY[source_id])] = f"SELECT * FROM {INCOMING}.{scratch}"  # noqa: S608
    loaded[("core", "daily_flows")] = f"SELECT * FROM {INCOMING}.incoming_daily_flows"  # noqa: S608
    return loaded


def drop_scratch(conn) -> None:
    for table in ("incoming_daily_flows", *(f"incoming_{t}" for t in STAGING_DAILY.values())):
        conn.execute(f"DROP TABLE IF EXISTS {INCOMING}.{table}")


def inputs_of(items: list[Acquired]) -> dict:
    """write_tables' `mode` and `snapshot_ids` of tables built from these payloads."""
    modes = {item.payload.mode for item in items}
    mode = "sample" if "sample" in modes else ("curated" if "curated" in modes else "live")
    return {"mode": mode, "snapshot_ids": [item.payload.snapshot_id for item in items]}

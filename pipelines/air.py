"""Air family: SINCA's air-quality stations and daily PM2.5, PM10 and airborne arsenic.

sinca_air_quality: the station list and every declared daily series (sources.sinca.SERIES),
    parsed and validated; stations located in their comuna and basin by their coordinates
    (core.territories polygons; a station outside Chile or outside every comuna is flagged,
    never moved), with their operator (`operator_kind` says when a mining company runs it);
    every daily value with its validation level (staging.sinca_daily) and the annual figures
    per station (staging.sinca_annual);
sinca_observations: comuna annual figures as core.observations.

Annual figures use validated values only. A station-year counts when validated values cover at
least 75% of the year's days (`sources.sinca.COMPLETENESS`); otherwise its mean is NULL and it
is left out of the comuna. A comuna's annual mean is the mean of its complete stations' annual
means; its days above the daily standard are those of its worst complete station (the standard
applies at every station). Ratios divide the comuna's annual mean by the Chilean annual standard
and by the WHO 2021 guideline (values and legal sources in STANDARDS and the registry). Each
observation's flag names the stations and says which are run by a mining company.

Airborne arsenic (SINCA parameter ARSE, measured on particulate filters) is what people breathe:
it is NOT arsenic in the Loa's water, which no open source measures.
"""

import geopandas as gpd
import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
    asset,
    asset_check,
)

from pipelines import gates
from pipelines.ingest import (
    acquire_all,
    derived_writer,
    load_indicators,
    log_acquisitions,
    publish,
    refusing,
    source_version,
    table_declaration,
    unchanged,
    validate_frame,
    write_tables,
)
from pipelines.refresh import refresh_job, refresh_schedule
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.settlements import coarsest_level, territory_polygons
from pipelines.territories import territories
from sources import sinca
from sources.acquire import SAMPLES_DIR
from sources.base import ParseError, ValidationError, fold_name
from sources.endpoints import endpoints
from sources.geometry import locate_points
from warehouse import store

FAMILY = "air"
SOURCE = sinca.SOURCE
SAMPLE_DIR = SAMPLES_DIR / "air"
STATIONS_SAMPLE = SAMPLE_DIR / "sinca_listadomapa2k19_SAMPLE.json"

# Standards (µg/m3; PM10 and arsenic in µg/m3N as SINCA reports them). Chile: D.S. 12/2011 MMA
# (PM2.5: 20 annual, 50 daily) and D.S. 59/1998 MINSEGPRES (PM10: 150 daily; the annual 50 added
# by D.S. 45/2001). WHO global air quality guidelines 2021: PM2.5 5 annual, 15 daily; PM10 15
# annual, 45 daily. Chile has no air standard for arsenic and WHO no guideline value (unit risk).
STANDARDS = {
    "PM25": {"chile_annual": 20.0, "chile_daily": 50.0, "who_annual": 5.0, "who_daily": 15.0},
    "PM10": {"chile_annual": 50.0, "chile_daily": 150.0, "who_annual": 15.0, "who_daily": 45.0},
    "ARSE": {},
}
# Value gates: a daily mean beyond these is more likely a unit or column change than a fact.
PLAUSIBLE = {"PM25": (0.0, 1000.0), "PM10": (0.0, 3000.0), "ARSE": (0.0, 50.0)}
MINING = "mining company"

STATION_COLUMNS = {
    "station_code": "VARCHAR: SINCA station key, R<region>/<key> (RII/217)",
    "station_name": "VARCHAR: station name as SINCA lists it",
    "city": "VARCHAR: comuna or city as SINCA writes it (text, not a code)",
    "region": "VARCHAR: region as SINCA writes it (Roman numeral or RM)",
    "network": "VARCHAR: monitoring network (empty where SINCA gives none)",
    "access_type": "VARCHAR: Pública, Privada or no definida (SINCA calificacion)",
    "operator": "VARCHAR: the company or body that runs the station (SINCA empresa)",
    "operator_kind": "VARCHAR: mining company, state, other company or not stated (from the operator's name)",
    "latitude": "DOUBLE: degrees (WGS84), as listed",
    "longitude": "DOUBLE: degrees (WGS84), as listed",
    "outside_chile": "BOOLEAN: the coordinates fall outside Chile (flagged, never moved)",
    "located_comuna_code": "VARCHAR: comuna polygon holding the station (NULL outside every comuna)",
    "located_basin_code": "VARCHAR: basin polygon (coarsest level) holding it",
    "comuna_mismatch": "BOOLEAN: the located comuna's name differs from the listed city (NULL if not checkable)",
    "snapshot_id": "VARCHAR: core.snapshots id of the station list",
}
DAILY_COLUMNS = {
    "station_code": "VARCHAR: SINCA station key",
    "parameter": "VARCHAR: PM25, PM10 or ARSE (arsenic in particulate matter, not in water)",
    "date": "DATE: day of the daily mean",
    "value": "DOUBLE: daily mean (µg/m3 for PM2.5, µg/m3N for PM10 and arsenic)",
    "level": "VARCHAR: validated, preliminary or unvalidated (the export column it came from)",
    "snapshot_id": "VARCHAR: core.snapshots id of the export",
}
ANNUAL_COLUMNS = {
    "station_code": "VARCHAR: SINCA station key",
    "parameter": "VARCHAR: PM25, PM10 or ARSE",
    "year": "INTEGER: calendar year",
    "days": "INTEGER: days in the year",
    "validated_days": "INTEGER: days with a validated value",
    "preliminary_days": "INTEGER: days with only a preliminary value (not used)",
    "unvalidated_days": "INTEGER: days with only an unvalidated value (not used)",
    "completeness": "DOUBLE: validated_days / days",
    "mean": "DOUBLE: mean of the validated daily values; NULL when completeness < 0.75",
    "days_above": "INTEGER: validated days above the Chilean daily standard (NULL without one or if incomplete)",
    "series": "VARCHAR: station and parameter (RII/217 PM25): the value gates judge each series apart",
    "snapshot_id": "VARCHAR: core.snapshots id of the export",
}

STATION_SCHEMA = pa.DataFrameSchema(
    {
        "station_code": pa.Column(str, pa.Check.str_matches(r"^R(?:[IVX]+|M)/[A-Z]{0,2}\d+$"), unique=True),
        "latitude": pa.Column(float),
        "longitude": pa.Column(float),
        "operator_kind": pa.Column(str, pa.Check.isin([MINING, "state", "other company", "not stated"])),
    },
    strict=False,
)
DAILY_SCHEMA = pa.DataFrameSchema(
    {
        "parameter": pa.Column(str, pa.Check.isin(list(sinca.PARAMETERS))),
        "value": pa.Column(float, pa.Check.ge(0)),
        "level": pa.Column(str, pa.Check.isin(list(sinca.LEVELS))),
    },
    unique=["station_code", "parameter", "date"],
    strict=False,
)

gates.declare(
    "staging.sinca_daily",
    gates.TableGates(keys=("station_code", "parameter", "date"), values=("value",), group="parameter"),
)
gates.declare(
    "staging.sinca_annual",
    gates.TableGates(keys=("station_code", "parameter", "year"), values=("mean",), group="series"),
)


def located_stations(
    stations: pd.DataFrame, comunas: gpd.GeoDataFrame, basins: gpd.GeoDataFrame, names: dict
) -> pd.DataFrame:
    """Stations with their comuna and basin by coordinates, and the flags that say what to doubt.

    `names` maps comuna codes to their names, to compare with the city SINCA writes.
    """
    frame = stations.copy()
    frame["outside_chile"] = sinca.outside_chile(frame)
    points = frame.rename(columns={"longitude": "lon", "latitude": "lat"})
    inside = points[~frame["outside_chile"]]
    frame["located_comuna_code"] = None
    frame["located_basin_code"] = None
    if not comunas.empty and not inside.empty:
        frame.loc[inside.index, "located_comuna_code"] = locate_points(inside, comunas, "code")
    if not basins.empty and not inside.empty:
        frame.loc[inside.index, "located_basin_code"] = locate_points(inside, basins, "code")

    def mismatch(row) -> object:
        code = row["located_comuna_code"]
        if code is None or not row["city"] or code not in names:
            return None
        return fold_name(names[code]) != fold_name(row["city"])

    frame["comuna_mismatch"] = frame.apply(mismatch, axis=1).astype(object)
    return frame


def check_daily(daily: pd.DataFrame) -> None:
    bounds = daily["parameter"].map(PLAUSIBLE)
    outside = daily[(daily["value"] < bounds.str[0]) | (daily["value"] > bounds.str[1])]
    if not outside.empty:
        examples = (
            outside[["station_code", "parameter", "date", "value"]].head(5).astype(str).to_dict("records")
        )
        raise ValidationError(
            SOURCE.id,
            f"{len(outside)} daily value(s) outside plausible ranges (unit change?): {examples}",
            ", ".join(sorted(outside["snapshot_id"].unique())),
        )


def parse_all(acquired) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(stations, daily, annual) from the acquired payloads; a series of an unknown station is an error."""
    by_name = {item.payload.name: item.payload for item in acquired}
    listing = by_name["stations"]
    stations = sinca.parse_stations(listing.content, listing.snapshot_id).assign(
        snapshot_id=listing.snapshot_id
    )
    daily_parts, annual_parts = [], []
    for station, parameter in sinca.SERIES:
        payload = by_name[sinca.series_name(station, parameter)]
        if station not in set(stations["station_code"]):
            raise ParseError(
                SOURCE.id,
                f"series {station} {parameter}: station not in the station list",
                payload.snapshot_id,
            )
        daily = sinca.parse_export(payload.content, payload.snapshot_id)
        daily = daily.assign(station_code=station, parameter=parameter, snapshot_id=payload.snapshot_id)
        daily_parts.append(daily)
        limit = STANDARDS[parameter].get("chile_daily")
        annual = sinca.annual_summary(daily, limit)
        annual_parts.append(
            annual.assign(
                station_code=station,
                parameter=parameter,
                series=f"{station} {parameter}",
                snapshot_id=payload.snapshot_id,
            )
        )
    daily = pd.concat(daily_parts, ignore_index=True)[list(DAILY_COLUMNS)]
    annual = pd.concat(annual_parts, ignore_index=True)[list(ANNUAL_COLUMNS)]
    annual["days_above"] = annual["days_above"].astype("Int64")
    annual["mean"] = annual["mean"].astype(float)
    return stations, daily, annual


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="SINCA air quality: stations located in comunas and basins with their operator "
    "(staging.sinca_stations), daily PM2.5, PM10 and airborne arsenic with their validation level "
    "(staging.sinca_daily) and validated annual figures per station (staging.sinca_annual).",
    metadata={
        **table_declaration(
            DAILY_COLUMNS,
            "staging.sinca_daily",
            extra={"staging.sinca_stations": STATION_COLUMNS, "staging.sinca_annual": ANNUAL_COLUMNS},
        ),
        "source": SOURCE.landing_url,
    },
)
def sinca_air_quality(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    requests = sinca.build_requests(endpoints(SOURCE.id, sinca.ENDPOINTS))
    pairs = [(requests["stations"], STATIONS_SAMPLE)] + [
        (requests[name], SAMPLE_DIR / f"{name}_SAMPLE.csv") for name in requests if name != "stations"
    ]
    acquirer, acquired = acquire_all(sources, SOURCE, pairs, warehouse=warehouse)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {SOURCE: acquired}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {SOURCE: acquired}):
        stations, daily, annual = parse_all(acquired)
        with warehouse.reader() as conn:
            comunas = territory_polygons(conn, "comuna")
            basins = coarsest_level(territory_polygons(conn, "basin"))
            names = dict(
                conn.execute("SELECT code, name FROM core.territories WHERE kind = 'comuna'").fetchall()
            )
        stations = validate_frame(
            STATION_SCHEMA, located_stations(stations, comunas, basins, names), SOURCE.id
        )
        stations = stations[list(STATION_COLUMNS)]
        daily = validate_frame(DAILY_SCHEMA, daily, SOURCE.id)
        check_daily(daily)
    counts = publish(
        warehouse,
        acquirer,
        SOURCE,
        acquired,
        {
            ("staging", "sinca_stations"): stations,
            ("staging", "sinca_daily"): daily,
            ("staging", "sinca_annual"): annual,
        },
    )
    flagged = stations[stations["outside_chile"]]["station_code"].tolist()
    if flagged:
        context.log.warning(f"SINCA stations with coordinates outside Chile (kept, not located): {flagged}")
    no_validated = annual.groupby(["station_code", "parameter"])["validated_days"].sum()
    empty = [f"{s} {p}" for (s, p), n in no_validated.items() if n == 0]
    if empty:
        context.log.warning(f"SINCA series with no validated value (no annual figure published): {empty}")
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "outside_chile": flagged, "series_without_validated_values": empty},
    )


# --- observations ---------------------------------------------------------------------------------

INDICATOR = {
    ("PM25", "mean"): "sinca_pm25_annual_mean",
    ("PM10", "mean"): "sinca_pm10_annual_mean",
    ("ARSE", "mean"): "sinca_arsenic_pm_annual_mean",
    ("PM25", "days_above"): "sinca_pm25_days_above_daily_standard",
    ("PM10", "days_above"): "sinca_pm10_days_above_daily_standard",
    ("PM25", "chile_annual"): "sinca_pm25_ratio_chile_annual_standard",
    ("PM10", "chile_annual"): "sinca_pm10_ratio_chile_annual_standard",
    ("PM25", "who_annual"): "sinca_pm25_ratio_who_2021_guideline",
    ("PM10", "who_annual"): "sinca_pm10_ratio_who_2021_guideline",
}


def _flag(group: pd.DataFrame) -> str:
    codes = sorted(group["station_code"])
    mining = sorted(group.loc[group["operator_kind"] == MINING, "station_code"])
    operators = sorted(set(group.loc[group["operator_kind"] == MINING, "operator"]))
    text = f"validated data, stations {', '.join(codes)}"
    if mining:
        text += f"; run by a mining company ({', '.join(operators)}): {', '.join(mining)}"
    return text


def air_observations(annual: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """Comuna annual figures from the complete station-years (validated data, >= 75% of days)."""
    located = stations[stations["located_comuna_code"].notna() & ~stations["outside_chile"].astype(bool)]
    complete = annual[annual["mean"].notna()].merge(
        located[["station_code", "located_comuna_code", "operator", "operator_kind"]], on="station_code"
    )
    rows = []
    for (parameter, comuna, year), group in complete.groupby(["parameter", "located_comuna_code", "year"]):
        base = {
            "territory_id": f"comuna:{comuna}",
            "period": str(int(year)),
            "flag": _flag(group),
            "snapshot_id": max(group["snapshot_id"]),
        }
        mean = float(group["mean"].mean())
        rows.append({**base, "indicator_id": INDICATOR[(parameter, "mean")], "value": mean})
        standards = STANDARDS[parameter]
        if "chile_daily" in standards:
            worst = group.loc[group["days_above"].astype(float).idxmax()]
            rows.append(
                {
                    **base,
                    "indicator_id": INDICATOR[(parameter, "days_above")],
                    "value": float(worst["days_above"]),
                    "flag": f"{base['flag']}; the station with most days: {worst['station_code']}",
                }
            )
        for key in ("chile_annual", "who_annual"):
            if key in standards:
                rows.append(
                    {**base, "indicator_id": INDICATOR[(parameter, key)], "value": mean / standards[key]}
                )
    frame = pd.DataFrame(
        rows, columns=["indicator_id", "territory_id", "period", "value", "flag", "snapshot_id"]
    )
    frame["lower"] = frame["upper"] = float("nan")
    frame["source_id"] = SOURCE.id
    return frame[store.OBSERVATION_COLUMNS].sort_values(
        ["indicator_id", "territory_id", "period"], ignore_index=True
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[sinca_air_quality, territories],
    description="SINCA comuna annual figures (validated data, >= 75% of days) as core.observations: "
    "PM2.5, PM10 and airborne arsenic means, days above the daily standard, ratios to the Chilean "
    "annual standards and the WHO 2021 guidelines.",
)
def sinca_observations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        annual = conn.execute("SELECT * FROM staging.sinca_annual").df()
        stations = conn.execute("SELECT * FROM staging.sinca_stations").df()
        frame = air_observations(annual, stations)
        store.record_indicators(conn, load_indicators(FAMILY))
        rows = write_tables(conn, SOURCE.id, {("core", "observations"): frame})["core.observations"]
    return MaterializeResult(
        metadata={"observations": rows, "indicators": int(frame["indicator_id"].nunique())}
    )


@asset_check(asset=sinca_air_quality, description="Every station is inside Chile and located in a comuna.")
def sinca_stations_located(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        rows = conn.execute(
            "SELECT station_code FROM staging.sinca_stations "
            "WHERE outside_chile OR located_comuna_code IS NULL ORDER BY 1"
        ).fetchall()
    return AssetCheckResult(passed=not rows, metadata={"not_located": [r[0] for r in rows]})


air_job = refresh_job(
    "air_refresh", [sinca_air_quality, sinca_observations], "SINCA's stations and daily series"
)
air_schedule = refresh_schedule(
    air_job, "0 6 10 * *", "air_monthly", "SINCA validates its daily series with a delay of weeks"
)

ASSETS = [sinca_air_quality, sinca_observations]
CHECKS = [sinca_stations_located]
JOBS = [air_job]
SCHEDULES = [air_schedule]
OBSERVATION_ASSETS = [sinca_observations]

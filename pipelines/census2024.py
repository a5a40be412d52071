"""Census 2024 family: INE's published tables and the dwelling and person microdata, by comuna.

census2024_tables: the V1, V4, H1, D1 and P2 workbooks, every table sheet as long cells
    (raw.census2024_table_cells) and the declared tables with their territories
    (staging.census2024_tables), found by title and checked by header;
census2024_microdata: the dictionary, then the dwelling and person files streamed through DuckDB
    into comuna x area x sex x code cubes (raw.census2024_microdata_*, staging.census2024_dwellings,
    staging.census2024_persons), every code judged by the dictionary and every comuna by the division;
census2024_table_observations, census2024_microdata_observations: the indicators of
    pipelines/census2024_measures.py as core.observations (period 2024).
"""

import tempfile
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    asset,
    asset_check,
)

from pipelines import census2024_measures as measures
from pipelines.ingest import (
    acquire_all,
    derived_writer,
    load_indicators,
    log_acquisitions,
    payload_file,
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
from pipelines.territories import load_resolver, territories
from sources import census2024_microdata as microdata
from sources import census2024_tables as tables
from sources.acquire import SAMPLES_DIR
from sources.base import ValidationError
from sources.endpoints import endpoints
from sources.territory_resolver import COUNTRY_ID, TerritoryResolver
from warehouse import db, store

FAMILY = "census2024"
SAMPLE_DIR = SAMPLES_DIR / "census2024"
SAMPLES = {
    **{name: SAMPLE_DIR / f"{name}_SAMPLE.xlsx" for name in tables.WORKBOOKS},
    "dictionary": SAMPLE_DIR / "diccionario_variables_censo2024_SAMPLE.csv",
    "viviendas": SAMPLE_DIR / "viviendas_censo2024_SAMPLE.zip",
    "personas": SAMPLE_DIR / "personas_censo2024_SAMPLE.zip",
}

TABLE_COLUMNS = {
    "table": "VARCHAR: declared table (water_source_comuna, indigenous_region, ...; sources/census2024_tables.py)",
    "workbook": "VARCHAR: INE workbook (V1, V4, H1, D1, P2)",
    "sheet": "VARCHAR: sheet name, as found by the table's title",
    "level": "VARCHAR: country (the País row), region or comuna",
    "territory_id": "VARCHAR: territory of the row",
    "region_code": "BIGINT: Código región as published (0 for the País row)",
    "province_code": "BIGINT: Código provincia as published (comuna tables only)",
    "comuna_code": "BIGINT: Código comuna as published, without the leading zero (comuna tables only)",
    "category": "VARCHAR: row category where the table has one (age group, Sí/No), else empty",
    "measure": "VARCHAR: column header as published (newlines collapsed)",
    "value": "DOUBLE: the cell (persons, dwellings or households; a mean for household size)",
    "cell_state": "VARCHAR: value, suppressed ('*', 50 persons or fewer) or undefined ('-')",
    "snapshot_id": "VARCHAR: core.snapshots id of the workbook",
}
TABLE_SCHEMA = pa.DataFrameSchema(
    {
        "table": pa.Column(str, pa.Check.isin([spec.key for spec in tables.TABLES])),
        "level": pa.Column(str, pa.Check.isin(["country", "region", "comuna"])),
        "territory_id": pa.Column(str),
        "value": pa.Column(float, pa.Check.ge(0), nullable=True),
        "cell_state": pa.Column(str, pa.Check.isin(["value", "suppressed", "undefined"])),
    },
    unique=["table", "territory_id", "category", "measure"],
    strict=False,
)


def resolve_cells(cells: pd.DataFrame, resolver: TerritoryResolver) -> pd.DataFrame:
    """territory_id of every row: the País row is Chile; regions and comunas through the resolver."""
    cells = cells.copy()
    cells["territory_id"] = COUNTRY_ID
    for level, column in (("region", "region_code"), ("comuna", "comuna_code")):
        rows = cells["level"] == level
        if rows.any():
            snapshots = ", ".join(sorted(cells.loc[rows, "snapshot_id"].unique()))
            cells.loc[rows, "territory_id"] = resolver.resolve_series(
                cells.loc[rows, column].astype(int), level, source=tables.SOURCE.id, snapshot=snapshots
            ).to_numpy()
    return cells


def check_totals(staging: pd.DataFrame) -> None:
    """Aggregate gate: in every table, the regions (or the comunas) add up to the País row.

    Cells INE suppressed cannot be summed: a measure with a suppressed cell is not judged.
    Means and ratios are not additive and are skipped.
    """
    additive = staging[~staging["measure"].str.startswith(measures.NOT_ADDITIVE)]
    problems = []
    for (table, category, measure), rows in additive.groupby(["table", "category", "measure"]):
        if (rows["cell_state"] == "suppressed").any():
            continue
        country = rows.loc[rows["level"] == "country", "value"].sum()
        parts = rows.loc[rows["level"] != "country", "value"].sum()
        if abs(parts - country) > 0.5:
            problems.append(
                f"{table} {measure!r}{f' ({category})' if category else ''}: {parts:,.0f} vs País {country:,.0f}"
            )
    country = staging[staging["level"] == "country"].assign(topic=staging["table"].map(measures.topic))
    spread = country.groupby(["topic", "category", "measure"])["value"].agg(lambda v: v.max() - v.min())
    problems += [
        f"{t} {m!r}: the País rows of its region and comuna sheets differ"
        for t, _, m in spread[spread > 0.5].index
    ]
    if problems:
        snapshots = ", ".join(sorted(staging["snapshot_id"].unique()))
        raise ValidationError(
            tables.SOURCE.id,
            f"{len(problems)} total(s) where the rows do not add up to the País row: {'; '.join(problems[:4])}",
            snapshots,
        )


def parse_tables(acquired, resolver: TerritoryResolver) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every cell of every workbook, the declared tables with territories), per workbook snapshot."""
    raw, staged = [], []
    for item in acquired:
        payload = item.payload
        cells = tables.parse_workbook(payload.content, payload.name, payload.snapshot_id)
        cells["published"] = tables.publication_date(payload.content, payload.name, payload.snapshot_id)
        cells["snapshot_id"] = payload.snapshot_id
        raw.append(cells)
        for spec in (s for s in tables.TABLES if s.workbook == payload.name):
            staged.append(tables.table(cells, spec, payload.snapshot_id))
    staging = resolve_cells(pd.concat(staged, ignore_index=True), resolver)
    return pd.concat(raw, ignore_index=True), staging[list(TABLE_COLUMNS)]


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="INE Censo 2024 published workbooks (V1, V4, H1, D1, P2): every table cell "
    "(raw.census2024_table_cells) and the declared tables by territory (staging.census2024_tables).",
    metadata={
        **table_declaration(TABLE_COLUMNS, "staging.census2024_tables"),
        "source": tables.SOURCE.landing_url,
    },
)
def census2024_tables(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(tables.SOURCE.id, tables.ENDPOINTS)
    acquirer, acquired = acquire_all(
        sources, tables.SOURCE, [(r, SAMPLES[r.name]) for r in tables.build_requests(urls)]
    )
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {tables.SOURCE: acquired}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {tables.SOURCE: acquired}):
        with warehouse.reader() as conn:
            resolver = load_resolver(conn, tables.SOURCE.id)
        raw, staging = parse_tables(acquired, resolver)
        staging = validate_frame(
            TABLE_SCHEMA, staging, tables.SOURCE.id, ", ".join(sorted(staging["snapshot_id"].unique()))
        )
        check_totals(staging)
    counts = publish(
        warehouse,
        acquirer,
        tables.SOURCE,
        acquired,
        {("raw", "census2024_table_cells"): raw, ("staging", "census2024_tables"): staging},
    )
    suppressed = int((staging["cell_state"] == "suppressed").sum())
    context.log.info(f"census tables: {suppressed} cells suppressed by INE (50 persons or fewer)")
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "suppressed_cells": suppressed},
    )


# --- microdata ---------------------------------------------------------------------------------

DWELLING_COLUMNS = {
    "territory_id": "VARCHAR: comuna of the dwelling",
    "area": "INTEGER: 1 urban, 2 rural (dictionary variable area)",
    "water_source": "INTEGER: p6_fuente_agua (1 red pública, 2 pozo o noria, 3 camión aljibe, 4 río/vertiente..., -99 no respuesta); NULL = not an occupied dwelling with residents present",
    "water_source_label": "VARCHAR: the dictionary's label of the code",
    "records": "BIGINT: dwellings",
    "snapshot_id": "VARCHAR: core.snapshots id of the dwelling file",
}
PERSON_COLUMNS = {
    "territory_id": "VARCHAR: comuna of residence",
    "area": "INTEGER: 1 urban, 2 rural",
    "sex": "VARCHAR: M or F (dictionary variable sexo 1, 2)",
    "labour_status": "INTEGER: sit_fuerza_trabajo (1 ocupado, 2 desocupado, 3 fuera de la fuerza de trabajo, -99); NULL under 15",
    "branch": "VARCHAR: cod_caenes, CAENES section A-U of the employed (B = mining and quarrying), 999 not codable, -99",
    "records": "BIGINT: persons",
    "snapshot_id": "VARCHAR: core.snapshots id of the person file",
}
SEX = {1: "M", 2: "F"}


def cubes(acquirer, acquired: dict, dictionary: pd.DataFrame, work_dir: Path) -> dict[str, pd.DataFrame]:
    """Both files aggregated in one DuckDB scan each; codes, territories and dictionary counts checked."""
    found = {}
    with db.scan(temp_directory=work_dir) as con:
        for entity in microdata.ENTITIES:
            item = acquired[entity.name]
            snapshot = item.payload.snapshot_id
            cube = microdata.aggregate_archive(
                con, payload_file(acquirer, item), entity, work_dir=work_dir, snapshot=snapshot
            )
            microdata.check_codes(cube, dictionary, entity, snapshot)
            microdata.check_territory_codes(cube, entity, snapshot)
            mismatches = microdata.count_mismatches(cube, dictionary, entity)
            if mismatches:
                raise ValidationError(
                    microdata.SOURCE.id,
                    f"{entity.name}: record counts differ from the dictionary's Conteo (a partial, sample or "
                    f"duplicated file?): {'; '.join(mismatches[:5])}",
                    snapshot,
                )
            found[entity.name] = cube.assign(snapshot_id=snapshot)
    return found


def _labels(dictionary: pd.DataFrame, entity: str, variable: str) -> dict[str, str]:
    rows = dictionary[(dictionary["entity"] == entity) & (dictionary["variable"] == variable)]
    return dict(zip(rows["code"], rows["label"], strict=True))


def staged_cubes(
    found: dict[str, pd.DataFrame], dictionary: pd.DataFrame, resolver
) -> dict[str, pd.DataFrame]:
    dwellings, persons = found["viviendas"], found["personas"]
    out = {}
    for name, cube in (("dwellings", dwellings), ("persons", persons)):
        cube = cube.copy()
        cube["territory_id"] = resolver.resolve_series(
            cube["comuna"].astype(int),
            "comuna",
            source=microdata.SOURCE.id,
            snapshot=cube["snapshot_id"].iloc[0],
        ).to_numpy()
        out[name] = cube
    water = _labels(dictionary, "Vivienda", "p6_fuente_agua")
    dw = out["dwellings"].rename(columns={"p6_fuente_agua": "water_source"})
    dw["water_source_label"] = dw["water_source"].map(
        lambda c: water.get(microdata._code_text(c), "No aplica")
    )
    pe = out["persons"].rename(columns={"sit_fuerza_trabajo": "labour_status", "cod_caenes": "branch"})
    pe["sex"] = pe["sexo"].map(SEX)
    keys_d, keys_p = (
        list(DWELLING_COLUMNS)[:-2],
        [c for c in PERSON_COLUMNS if c not in ("records", "snapshot_id")],
    )
    dw = dw.groupby(keys_d + ["snapshot_id"], dropna=False, as_index=False)["records"].sum()
    pe = pe.groupby(keys_p + ["snapshot_id"], dropna=False, as_index=False)["records"].sum()
    return {"dwellings": dw[list(DWELLING_COLUMNS)], "persons": pe[list(PERSON_COLUMNS)]}


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="INE Censo 2024 microdata of dwellings and persons, streamed through DuckDB into comuna x "
    "area x sex cubes (staging.census2024_dwellings, staging.census2024_persons), codes judged by the dictionary.",
    metadata={
        **table_declaration(
            PERSON_COLUMNS,
            "staging.census2024_persons",
            extra={"staging.census2024_dwellings": DWELLING_COLUMNS},
        ),
        "source": microdata.SOURCE.landing_url,
    },
)
def census2024_microdata(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(microdata.SOURCE.id, microdata.ENDPOINTS)
    requests = [(r, SAMPLES[r.name]) for r in microdata.build_requests(urls)]
    acquirer, acquired = acquire_all(sources, microdata.SOURCE, requests)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {microdata.SOURCE: acquired}, metadata)) is not None:
        return same
    by_name = {item.payload.name: item for item in acquired}
    with refusing(warehouse, acquirer, {microdata.SOURCE: acquired}):
        dictionary_payload = by_name["dictionary"].payload
        dictionary = microdata.parse_dictionary(dictionary_payload.content, dictionary_payload.snapshot_id)
        with tempfile.TemporaryDirectory(prefix="censo2024-") as tmp:
            found = cubes(acquirer, by_name, dictionary, Path(tmp))
        with warehouse.reader() as conn:
            resolver = load_resolver(conn, microdata.SOURCE.id)
        staged = staged_cubes(found, dictionary, resolver)
        written = {
            ("raw", "census2024_microdata_dictionary"): dictionary.assign(
                snapshot_id=dictionary_payload.snapshot_id
            ),
            ("raw", "census2024_microdata_dwellings"): found["viviendas"],
            ("raw", "census2024_microdata_persons"): found["personas"],
            ("staging", "census2024_dwellings"): staged["dwellings"],
            ("staging", "census2024_persons"): staged["persons"],
        }
    counts = publish(warehouse, acquirer, microdata.SOURCE, acquired, written)
    records = {name: int(cube["records"].sum()) for name, cube in found.items()}
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, **{f"{k}_records": v for k, v in records.items()}},
    )


# --- observations ---------------------------------------------------------------------------------


def _write_observations(conn, source_id: str, frame: pd.DataFrame) -> int:
    frame = frame.assign(lower=float("nan"), upper=float("nan"), source_id=source_id)
    indicators = [i for i in load_indicators(FAMILY) if i["source_id"] == source_id]
    store.record_indicators(conn, indicators)
    unknown = sorted(set(frame["indicator_id"]) - {i["indicator_id"] for i in indicators})
    if unknown:
        raise ValueError(f"indicators {unknown} of {source_id} are not in warehouse/indicators/{FAMILY}.yaml")
    lineage = ["inputs"] if "inputs" in frame else []  # every snapshot a value was computed from, by role
    tables = {("core", "observations"): frame[[*store.OBSERVATION_COLUMNS, *lineage]]}
    return write_tables(conn, source_id, tables)["core.observations"]


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[census2024_tables, territories],
    description="Census 2024 table indicators (water, sanitation, electricity, waste, Indigenous peoples, "
    "population, households, internet) as core.observations for Chile, regions, provinces and comunas.",
)
def census2024_table_observations(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with derived_writer(warehouse, tables.SOURCE) as conn:
        cells = conn.execute("SELECT * FROM staging.census2024_tables").df()
        frame = measures.table_observations(cells)
        rows = _write_observations(conn, tables.SOURCE.id, frame)
    return MaterializeResult(metadata={"observations": rows, "suppressed": int(frame["flag"].notna().sum())})


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[census2024_microdata, territories],
    description="Census 2024 microdata indicators (water by urban/rural area, unemployment, women in mining) "
    "as core.observations for comunas, provinces, regions and Chile.",
)
def census2024_microdata_observations(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with derived_writer(warehouse, microdata.SOURCE) as conn:
        found = {
            "dwellings": conn.execute("SELECT * FROM staging.census2024_dwellings").df(),
            "persons": conn.execute("SELECT * FROM staging.census2024_persons").df(),
        }
        frame, partial = measures.microdata_observations(found)
        rows = _write_observations(conn, microdata.SOURCE.id, frame)
    if partial:
        context.log.warning(
            f"census microdata: not published for levels the files cover only in part: {partial}"
        )
    return MaterializeResult(metadata={"observations": rows, "partial_levels_not_published": partial})


@asset_check(
    asset=census2024_microdata,
    description="Microdata dwellings with a declared water source per comuna equal the published V4 table.",
)
def census2024_microdata_matches_tables(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            """
            WITH micro AS (SELECT territory_id, sum(records) AS dwellings FROM staging.census2024_dwellings
                           WHERE water_source IS NOT NULL GROUP BY ALL),
                 published AS (SELECT territory_id, value FROM staging.census2024_tables
                               WHERE "table" = 'water_source_comuna' AND measure = ?)
            SELECT p.territory_id, p.value, m.dwellings FROM published p JOIN micro m USING (territory_id)
            WHERE p.value <> m.dwellings ORDER BY 1
            """,
            [tables.DWELLINGS],
        ).df()
    return AssetCheckResult(
        passed=frame.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={"comunas_differing": len(frame), "examples": frame.head(5).astype(str).to_dict("records")},
    )


census_job = refresh_job(
    "census2024_refresh",
    [
        census2024_tables,
        census2024_microdata,
        census2024_table_observations,
        census2024_microdata_observations,
    ],
    "INE's Census 2024 tables and microdata",
)
census_schedule = refresh_schedule(
    census_job, "0 5 1 */3 *", "census2024_quarterly", "INE releases Census 2024 products in waves"
)

ASSETS = [
    census2024_tables,
    census2024_microdata,
    census2024_table_observations,
    census2024_microdata_observations,
]
CHECKS = [census2024_microdata_matches_tables]
JOBS = [census_job]
SCHEDULES = [census_schedule]
OBSERVATION_ASSETS = [census2024_table_observations, census2024_microdata_observations]

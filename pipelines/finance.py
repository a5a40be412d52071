"""Finance family: Ley 21.591 royalty allocations, municipal finance (SINIM), UF and dollar, regional budgets.

Per source, raw.* (payloads as parsed) → staging.* (typed and validated; amounts as published,
with their unit: SINIM writes M$, thousands of nominal CLP). `finance_observations` then builds:
- core.finance_amounts: every amount in nominal CLP, with the published value, unit and the
  conversion that turned one into the other;
- core.finance_annual_rates: the UF and the dólar observado that stand for each year;
- core.observations: the governance indicators of warehouse/indicators/finance.yaml;
- the marts views of warehouse/sql/views/30_finance.sql: each amount in nominal CLP, real CLP of
  the base year (UF-based) and USD, with `conversion`, `rate` and `rate_date`.
A cell SINIM never received ("No Recepcionado") or left blank is missing, never zero: it gives
no amount and no observation, and sums over comunas need every comuna of the region.
"""

import hashlib
import io
from datetime import date
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)

from pipelines import gates
from pipelines import health as health_assets
from pipelines import oecd as oecd_assets
from pipelines.ingest import (
    derived_writer,
    load_indicators,
    log_acquisitions,
    publish,
    refusing,
    table_declaration,
    validate_frame,
    write_tables,
)
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.studies import all_studies
from pipelines.territories import territories
from sources import currency, division, mindicador, presupuesto_abierto, royalties, sinim
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.base import FetchError, FetchRequest, ParseError, SourceInfo, ValidationError
from sources.endpoints import EndpointError, endpoints, file_url_path
from warehouse import store
from warehouse.db import SQL_DIR, table_name

FAMILY = "finance"
SAMPLE_DIR = SAMPLES_DIR / "finance"
SINIM_SAMPLE = SAMPLE_DIR / "sinim_finanzas_region02_2019-2023_SAMPLE.csv"
VIEWS_SQL = SQL_DIR / "views" / "30_finance.sql"

FIRST_YEAR = 2019
# Real CLP are stated in pesos of this year, through the mean UF of each year (sources/currency.py).
REAL_BASE_YEAR = 2024
# What one published unit is in CLP. SINIM's "M$" is thousands of nominal pesos.
UNIT_FACTORS = {"M$": 1000.0, "CLP": 1.0}
# Population, in order of preference: INE comuna/region population (health family), then OECD TL2.
POPULATION_INDICATORS = ("population", "oecd_population")
# Partida 31 of the budget law is "Gobiernos Regionales": the regional governments' own budget.
REGIONAL_GOVERNMENT_PARTIDA = "31"

SINIM_MONEY = {
    "fcm_income": "municipal_fcm_income_clp",
    "own_permanent_income_ipp": "municipal_own_permanent_income_clp",
    "total_income": "municipal_total_income_clp",
    "mining_concession_fees": "mining_concession_fees_clp",
}
SINIM_PERCENT = {"fcm_dependence_pct": "fcm_dependence_pct"}
VARIABLE_KEYS = {v.code: v.key for v in sinim.FINANCE_VARIABLES}
EXPECTED_UNITS = {code: ("%" if key in SINIM_PERCENT else "M$") for code, key in VARIABLE_KEYS.items()}
# Plausible daily values (CLP per unit): a value outside is more likely a unit change than a fact.
RATE_RANGES = {"uf": (10_000.0, 100_000.0), "dolar": (300.0, 3_000.0)}

SOURCES_WITH_OBSERVATIONS = (sinim.SOURCE.id, royalties.SOURCE.id, presupuesto_abierto.SOURCE.id)


# --- scope ---------------------------------------------------------------------------------------


def study_scope() -> tuple[list[str], list[str]]:
    """(comuna codes, region codes) the studies focus on: what the live walks ask for."""
    studies = all_studies()
    comunas = sorted({c for s in studies for c in s.comunas})
    regions = sorted({r for s in studies for r in s.regions} | {c[:2] for c in comunas})
    return comunas, regions


def sinim_years() -> list[int]:
    """SINIM publishes a year's municipal accounts during the next year."""
    return list(range(FIRST_YEAR, date.today().year))


def calendar_years() -> list[int]:
    return list(range(FIRST_YEAR, date.today().year + 1))


# --- staging schemas -----------------------------------------------------------------------------

SINIM_COLUMNS = {
    "comuna_code": "VARCHAR: 5-digit CUT",
    "municipality": "VARCHAR: name as SINIM writes it",
    "year": "BIGINT: calendar year",
    "variable_code": "VARCHAR: SINIM catalogue id_dato (879, 880, 1110, 3754, 1272)",
    "measure": "VARCHAR: our name of the variable (fcm_income, total_income, ...)",
    "variable_label": "VARCHAR: SINIM's label",
    "unit": "VARCHAR: SINIM's unit as published: M$ (thousands of nominal CLP) or %",
    "value": "DOUBLE: value as published, in `unit`; NULL unless value_status is 'ok'",
    "value_status": "VARCHAR: ok | not_received ('No Recepcionado') | missing (blank)",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}
SINIM_SCHEMA = pa.DataFrameSchema(
    {
        "comuna_code": pa.Column(str, pa.Check.str_matches(r"^\d{5}$")),
        "municipality": pa.Column(str),
        "year": pa.Column("int64", pa.Check.in_range(2001, date.today().year)),
        "variable_code": pa.Column(str, pa.Check.isin(list(VARIABLE_KEYS))),
        "measure": pa.Column(str, pa.Check.isin(list(VARIABLE_KEYS.values()))),
        "variable_label": pa.Column(str),
        "unit": pa.Column(str, pa.Check.isin(sorted(set(EXPECTED_UNITS.values())))),
        "value": pa.Column(float, nullable=True),
        "value_status": pa.Column(str, pa.Check.isin(["ok", "not_received", "missing"])),
        "snapshot_id": pa.Column(str),
    },
    checks=[
        pa.Check(
            lambda f: f["unit"] == f["variable_code"].map(EXPECTED_UNITS),
            error="unit is not the variable's unit (M$ for amounts, % for FCM dependence)",
        ),
        pa.Check(
            lambda f: f["value"].notna() == (f["value_status"] == "ok"),
            error="a value is present exactly when value_status is 'ok'",
        ),
    ],
    unique=["comuna_code", "year", "variable_code"],
    strict=True,
    coerce=False,
)

ROYALTY_COLUMNS = {
    "fund": "VARCHAR: Ley 21.591 fund (fondo_puente, ...)",
    "year": "BIGINT: year of the allocation",
    "territory_code": "VARCHAR: 5-digit comuna or 2-digit region",
    "territory_level": "VARCHAR: comuna | region",
    "amount": "DOUBLE: amount as transcribed, in `currency`",
    "currency": "VARCHAR: CLP (whole nominal pesos) or USD",
    "document_title": "VARCHAR: the public document the figure comes from",
    "document_url": "VARCHAR: its address",
    "document_page": "VARCHAR: page in the document, when known",
    "transcribed_by": "VARCHAR: who transcribed it, from what",
    "transcribed_on": "VARCHAR: when (ISO date)",
    "verification": "VARCHAR: checked (against the primary document) | unverified (secondary source)",
    "note": "VARCHAR: caveats",
    "mode": "VARCHAR: curated",
    "snapshot_id": "VARCHAR: core.snapshots id of the curated file",
}
ROYALTY_SCHEMA = pa.DataFrameSchema(
    {
        "fund": pa.Column(str, pa.Check.str_length(min_value=1)),
        "year": pa.Column("int64", pa.Check.in_range(2023, date.today().year + 1)),
        "territory_code": pa.Column(str, pa.Check.str_matches(r"^(\d{2}|\d{5})$")),
        "territory_level": pa.Column(str, pa.Check.isin(["comuna", "region"])),
        "amount": pa.Column(float, pa.Check.gt(0)),
        "currency": pa.Column(str, pa.Check.isin(list(royalties.CURRENCIES))),
        "document_title": pa.Column(str, pa.Check.str_length(min_value=1)),
        "document_url": pa.Column(str, pa.Check.str_matches(r"^https?://\S+$")),
        "document_page": pa.Column(str),
        "transcribed_by": pa.Column(str, pa.Check.str_length(min_value=1)),
        "transcribed_on": pa.Column(str, pa.Check.str_matches(r"^\d{4}-\d{2}-\d{2}$")),
        "verification": pa.Column(str, pa.Check.isin(list(royalties.VERIFICATION))),
        "note": pa.Column(str),
        "mode": pa.Column(str, pa.Check.isin(["curated"])),
        "snapshot_id": pa.Column(str),
    },
    unique=["fund", "year", "territory_code"],
    strict=True,
    coerce=False,
)
STATED_COLUMNS = {
    "fund": "VARCHAR: Ley 21.591 fund the total is stated for",
    "year": "BIGINT: year of the stated total",
    "territory_code": "VARCHAR: region (2 digits) or comuna (5-digit CUT) the total covers",
    "territory_scope": "VARCHAR: what the stated total covers",
    "stated_total": "DOUBLE: the total as the document states it",
    "currency": "VARCHAR: its currency",
    "rounded_to": "BIGINT: the unit the stated figure is rounded to",
    "document_title": "VARCHAR: the document that states it",
    "document_url": "VARCHAR: its address",
    "document_date": "VARCHAR: its date",
    "transcribed_by": "VARCHAR: who transcribed the figure (curated data)",
    "note": "VARCHAR: note on the transcription",
    "verification": "VARCHAR: checked (against the primary document) | unverified (secondary source)",
    "snapshot_id": "VARCHAR: core.snapshots id of the curated file",
}
STATED_SCHEMA = pa.DataFrameSchema(
    {
        "fund": pa.Column(str, pa.Check.str_length(min_value=1)),
        "year": pa.Column("int64"),
        "territory_code": pa.Column(str, pa.Check.str_matches(r"^(\d{2}|\d{5})$")),
        "stated_total": pa.Column(float, pa.Check.gt(0)),
        "currency": pa.Column(str, pa.Check.isin(list(royalties.CURRENCIES))),
        "rounded_to": pa.Column("int64", pa.Check.ge(1)),
        "document_url": pa.Column(str, pa.Check.str_matches(r"^https?://\S+$")),
        "snapshot_id": pa.Column(str),
    },
    unique=["fund", "year", "currency"],
    strict=False,
    coerce=False,
)

RATE_COLUMNS = {
    "indicator": "VARCHAR: uf | dolar",
    "date": "TIMESTAMP: Chilean calendar date of the value",
    "value": "DOUBLE: CLP per UF, or CLP per USD (dólar observado)",
    "unit": "VARCHAR: mindicador's unidad_medida",
    "fecha_utc": "VARCHAR: the stamp as mindicador sent it",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}
RATE_SCHEMA = pa.DataFrameSchema(
    {
        "indicator": pa.Column(str, pa.Check.isin(list(RATE_RANGES))),
        "date": pa.Column("datetime64[ns]"),
        "value": pa.Column(float),
        "unit": pa.Column(str),
        "fecha_utc": pa.Column(str),
        "snapshot_id": pa.Column(str),
    },
    checks=[
        pa.Check(
            lambda f: f["value"].between(
                f["indicator"].map(lambda i: RATE_RANGES[i][0]),
                f["indicator"].map(lambda i: RATE_RANGES[i][1]),
            ),
            error=f"value outside the plausible range of its indicator {RATE_RANGES}",
        )
    ],
    unique=["indicator", "date"],
    strict=True,
    coerce=False,
)

PAGOS_COLUMNS = {
    **{c: f"VARCHAR: {c}" for c in ("region_code", "partida", "capitulo", "area")},
    "year": "BIGINT: periodo of the request",
    "partida_name": "VARCHAR: nombre_partida, when the answer carries it",
    "capitulo_name": "VARCHAR: nombre_capitulo, when the answer carries it",
    "area_name": "VARCHAR: nombre_area, when the answer carries it",
    "payments_count": "BIGINT: number of payment records (`count`)",
    "amount_clp": "DOUBLE: amount paid (`sum`), assumed nominal CLP (ASSUMED response shape)",
    "snapshot_id": "VARCHAR: core.snapshots id of the payload",
}
PAGOS_SCHEMA = pa.DataFrameSchema(
    {
        "region_code": pa.Column(str, pa.Check.str_matches(r"^\d{2}$")),
        "year": pa.Column("int64"),
        "partida": pa.Column(str, pa.Check.str_length(min_value=1)),
        "capitulo": pa.Column(str),
        "area": pa.Column(str),
        "payments_count": pa.Column("int64", pa.Check.ge(0)),
        "amount_clp": pa.Column(float),
        "snapshot_id": pa.Column(str),
    },
    unique=["region_code", "year", "partida", "capitulo", "area"],
    strict=False,
    coerce=False,
)

# What the value gates judge (pipelines.gates): every table's amounts and rates against the last
# accepted ones, per measure, fund, partida or indicator.
gates.declare(
    "staging.sinim_finance",
    gates.TableGates(keys=("comuna_code", "year", "variable_code"), values=("value",), group="variable_code"),
)
gates.declare(
    "staging.royalty_allocations",
    gates.TableGates(keys=("fund", "year", "territory_code"), values=("amount",), group="fund"),
)
gates.declare(
    "staging.royalty_stated_totals",
    gates.TableGates(keys=("fund", "year", "currency"), values=("stated_total",), group="fund"),
)
gates.declare(
    "staging.mindicador_series",
    gates.TableGates(keys=("indicator", "date"), values=("value",), group="indicator"),
)
gates.declare(
    "staging.presupuesto_abierto_pagos",
    gates.TableGates(
        keys=("region_code", "year", "partida", "capitulo", "area"),
        aggregates=(
            gates.Aggregate(
                "payments per region, year and partida",
                by={"region": "region_code", "year": "year", "partida": "partida"},
                value="amount_clp",
            ),
        ),
    ),
)
gates.declare(
    "core.finance_amounts",
    gates.TableGates(
        keys=("source_id", "measure", "detail", "territory_id", "year"),
        values=("amount_clp",),
        group="measure",
    ),
)
gates.declare(
    "core.finance_annual_rates",
    gates.TableGates(keys=("indicator", "year"), values=("rate",), group="indicator"),
)

AMOUNT_COLUMNS = {
    "source_id": "VARCHAR: sinim | royalties_curated | presupuesto_abierto",
    "measure": "VARCHAR: what the amount is (total_income, royalty_allocation, ...)",
    "detail": "VARCHAR: the fund of a royalty allocation, the partida of a budget amount",
    "territory_id": "VARCHAR: comuna:<CUT> or region:<CUT>",
    "year": "BIGINT: year",
    "amount_clp": "DOUBLE: nominal CLP",
    "published_value": "DOUBLE: the amount as published",
    "published_unit": "VARCHAR: its unit (M$ = thousands of CLP)",
    "unit_factor": "DOUBLE: CLP per published unit",
    "conversion": "VARCHAR: how published_value became amount_clp",
    "parts": "BIGINT: rows summed (comunas of a region total; 1 otherwise)",
    "document_title": "VARCHAR: cited document (curated rows)",
    "document_url": "VARCHAR: its address (curated rows)",
    "snapshot_id": "VARCHAR: newest snapshot among the rows summed",
    "verification": "VARCHAR: curated rows: checked (primary document) | unverified (secondary source)",
}
AMOUNT_DTYPES = {
    "year": "int64",
    "amount_clp": "float64",
    "published_value": "float64",
    "unit_factor": "float64",
    "parts": "int64",
}
ANNUAL_RATE_COLUMNS = {
    "indicator": "VARCHAR: uf | dolar",
    "year": "BIGINT: calendar year",
    "rate": "DOUBLE: the year's rate (CLP per UF, CLP per USD), as `method` says",
    "rate_date": "VARCHAR: the day or span the rate stands for",
    "method": "VARCHAR: how the rate was computed from the daily values",
    "observations": "BIGINT: daily values the rate was computed from",
    "first_date": "VARCHAR: first day among them",
    "last_date": "VARCHAR: last day among them",
    "base_year": "BIGINT: the base year of real-CLP amounts",
    "source_id": "VARCHAR: mindicador",
    "snapshot_id": "VARCHAR: newest snapshot among the daily values",
}


def validated(schema: pa.DataFrameSchema, source: SourceInfo, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame if it passes `schema`; else a ValidationError naming the failing checks."""
    return validate_frame(schema, frame, source.id)


# --- acquisition ---------------------------------------------------------------------------------


def acquire_available(
    acquirer: Acquirer, source: SourceInfo, requests: list[tuple[FetchRequest, Path | None]]
) -> tuple[list[tuple[FetchRequest, Acquired]], list[str]]:
    """Acquire each request by the usual policy; one with neither data nor a sample is listed, not fatal.

    Yearly series have no sample for every year (the current year, say): such a year is
    reported as unavailable. With no payload at all, the fetch error stands.
    """
    acquired, unavailable = [], []
    for request, sample in requests:
        try:
            acquired.append((request, acquirer.acquire(source, request, sample)))
        except FetchError as exc:
            unavailable.append(f"{request.name}: {exc.problem}")
    if not acquired:
        raise FetchError(source.id, "nothing could be acquired: " + "; ".join(unavailable))
    return acquired, unavailable


def existing_sample(path: Path) -> Path | None:
    return path if path.exists() else None


def acquire_sinim(acquirer: Acquirer) -> tuple[list[Acquired], pd.DataFrame | None]:
    """The live walk as one unit, else the earlier live walk, else the SAMPLE long extract.

    Returns the payloads and the walk's long frame, or None for the frame when the sample
    stands in (the caller parses it).
    """
    urls = endpoints(sinim.SOURCE.id, sinim.ENDPOINTS)
    comunas, _ = study_scope()
    codes, years = [v.code for v in sinim.FINANCE_VARIABLES], sinim_years()
    walked: dict[str, pd.DataFrame] = {}

    def walk(fetcher):
        frame, payloads = sinim.fetch_values(fetcher, urls, codes, years, comunas)
        walked["frame"] = frame
        return payloads

    stand_in = FetchRequest(
        name="sinim-finance-walk",
        url=urls["values"],
        expect="csv",
        method="POST",
        data={"variables": codes, "years": years, "comunas": comunas},
    )
    acquired = acquirer.acquire_walk(sinim.SOURCE, walk, SINIM_SAMPLE, stand_in)
    return acquired, None if acquired[0].status == "sample" else walked["frame"]


# --- parsing into staging ------------------------------------------------------------------------


def sinim_staging(long: pd.DataFrame) -> pd.DataFrame:
    """The finance variables of a SINIM long frame (with snapshot_id), validated; values as published."""
    frame = long[long["variable_code"].isin(list(VARIABLE_KEYS))].copy()
    frame.insert(4, "measure", frame["variable_code"].map(VARIABLE_KEYS))
    return validated(SINIM_SCHEMA, sinim.SOURCE, frame[list(SINIM_COLUMNS)].reset_index(drop=True))


def parse_sinim(acquired: list[Acquired], walked: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw long rows, staging rows): the walk's frame, or the SAMPLE long extract."""
    if walked is None:
        payload = acquired[0].payload
        raw = sinim.parse_long_extract(payload.content)
        raw["snapshot_id"] = payload.snapshot_id
    else:
        raw = walked
    return raw, sinim_staging(raw)


def parse_rates(
    acquired: list[tuple[FetchRequest, Acquired]], asked: dict[str, tuple[str, int]]
) -> pd.DataFrame:
    """mindicador series; each answer must hold the indicator and year it was asked for (`asked[name]`)."""
    frames = []
    for request, item in acquired:
        payload = item.payload
        indicator, year = asked[request.name]
        frame = mindicador.parse_series(payload.content, payload.snapshot_id)
        if (frame["indicator"] != indicator).any() or (frame["date"].dt.year != year).any():
            found = sorted(set(frame["indicator"])), sorted(set(frame["date"].dt.year))
            raise ParseError(
                mindicador.SOURCE.id,
                f"{request.name}: answer holds indicator/years {found}, not {indicator} {year}",
                payload.snapshot_id,
            )
        frame["snapshot_id"] = payload.snapshot_id
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame


def parse_pagos(
    acquired: list[tuple[FetchRequest, Acquired]], asked: dict[str, tuple[int, int]]
) -> pd.DataFrame:
    """Presupuesto Abierto answers, each read for the region and year it was asked for (`asked[name]`)."""
    frames = []
    for request, item in acquired:
        region, year = asked[request.name]
        frame = presupuesto_abierto.parse_pagos(item.payload.content, region, year, item.payload.snapshot_id)
        frame["snapshot_id"] = item.payload.snapshot_id
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def raw_csv_rows(content: bytes, snapshot_id: str) -> pd.DataFrame:
    """A curated CSV's rows as text, as the file has them."""
    frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame["snapshot_id"] = snapshot_id
    return frame


# --- territories ---------------------------------------------------------------------------------


def comuna_territories(conn) -> frozenset[str] | None:
    """Comuna codes in core.territories, or None while no comuna has been loaded (boundaries family)."""
    codes = [r[0] for r in conn.execute("SELECT code FROM core.territories WHERE kind = 'comuna'").fetchall()]
    return frozenset(codes) or None


def unresolved_territories(conn, territory_ids) -> tuple[list[str], str]:
    """Territory ids with no territory, and what they were resolved against."""
    known = {r[0] for r in conn.execute("SELECT territory_id FROM core.territories").fetchall()}
    comunas_loaded = comuna_territories(conn) is not None
    unresolved = []
    for tid in sorted(set(territory_ids)):
        if tid in known:
            continue
        kind, code = tid.split(":", 1)
        if kind == "comuna" and not comunas_loaded and f"region:{code[:2]}" in known:
            continue
        unresolved.append(tid)
    basis = (
        "core.territories"
        if comunas_loaded
        else "core.territories regions only: no comuna territories loaded yet (boundaries family), "
        "so comuna codes were checked for a known region prefix"
    )
    return unresolved, basis


# --- core: amounts, rates, observations ----------------------------------------------------------


def _table(conn, schema: str, table: str) -> pd.DataFrame | None:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()[0]
    if not exists:
        return None
    return conn.execute(f"SELECT * FROM {table_name(schema, table)}").df()  # noqa: S608 (quoted identifier)


def annual_rates(series: pd.DataFrame | None) -> pd.DataFrame:
    """The UF and dollar that stand for each year (sources.currency: the mean of the year's values)."""
    rows = []
    if series is not None:
        for (indicator, year), days in series.groupby(["indicator", series["date"].dt.year]):
            rate = currency.year_rate(days, int(year), "annual_mean", name=indicator)
            rows.append(
                {
                    "indicator": indicator,
                    "year": int(year),
                    "rate": rate.value,
                    "rate_date": rate.rate_date,
                    "method": "annual_mean",
                    "observations": rate.observations,
                    "first_date": days["date"].min().date().isoformat(),
                    "last_date": days["date"].max().date().isoformat(),
                    "base_year": REAL_BASE_YEAR,
                    "source_id": mindicador.SOURCE.id,
                    "snapshot_id": days["snapshot_id"].max(),
                }
            )
    return pd.DataFrame(rows, columns=list(ANNUAL_RATE_COLUMNS)).astype(
        {"year": "int64", "rate": "float64", "observations": "int64", "base_year": "int64"}
    )


def regional_sums(frame: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Sum `value` over the comunas of each region, only where every comuna of the region is there.

    The rule is `sources.division.sum_over_comunas` (the official division decides what "every
    comuna" is). `frame` has comuna_code, value, snapshot_id and `keys`. Returns (region rows
    with region_code, keys, value, parts, snapshot_id (the newest of the parts'); the regions
    left out, with their coverage: 'region:05 2021 total_income M$: 3 of 38 comunas').
    """
    totals, partial = division.sum_over_comunas(frame, keys, levels=("region",))
    totals = totals.assign(
        region_code=totals["territory_id"].str.split(":").str[1],
        snapshot_id=totals["snapshots"].map(max),
    )
    incomplete = [
        f"{row['territory_id']} {' '.join(str(row[key]) for key in keys)}: {row['coverage']}"
        for _, row in partial.iterrows()
    ]
    return totals[["region_code", *keys, "value", "parts", "snapshot_id"]], incomplete


def sinim_amounts(staging: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The SINIM amounts in nominal CLP, by comuna and (complete) region; M$ × 1000, recorded."""
    money = staging[staging["measure"].isin(list(SINIM_MONEY)) & (staging["value_status"] == "ok")]
    unknown_units = sorted(set(money["unit"]) - set(UNIT_FACTORS))
    if unknown_units:
        raise ValidationError(sinim.SOURCE.id, f"no CLP conversion for unit(s) {unknown_units}")
    comunas = pd.DataFrame(
        {
            "source_id": sinim.SOURCE.id,
            "measure": money["measure"],
            "detail": None,
            "territory_id": "comuna:" + money["comuna_code"],
            "year": money["year"],
            "published_value": money["value"],
            "published_unit": money["unit"],
            "parts": 1,
            "snapshot_id": money["snapshot_id"],
        }
    )
    regions, incomplete = regional_sums(
        money.rename(columns={"unit": "published_unit"}), ["year", "measure", "published_unit"]
    )
    regions = pd.DataFrame(
        {
            "source_id": sinim.SOURCE.id,
            "measure": regions["measure"],
            "detail": None,
            "territory_id": "region:" + regions["region_code"],
            "year": regions["year"],
            "published_value": regions["value"],
            "published_unit": regions["published_unit"],
            "parts": regions["parts"],
            "snapshot_id": regions["snapshot_id"],
        }
    )
    frame = pd.concat([f for f in (comunas, regions) if not f.empty] or [comunas], ignore_index=True)
    frame["unit_factor"] = frame["published_unit"].map(UNIT_FACTORS)
    frame["amount_clp"] = frame["published_value"] * frame["unit_factor"]
    frame["conversion"] = [
        f"published in {unit} (thousands of nominal CLP) x 1000"
        + (f"; sum of the {parts} comunas of the region" if parts > 1 else "")
        for unit, parts in zip(frame["published_unit"], frame["parts"], strict=True)
    ]
    frame["document_title"] = None
    frame["document_url"] = None
    return _amount_frame(frame), incomplete


def royalty_amounts(staging: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Curated allocations already in whole CLP, one row per fund × territory × year; (frame, USD rows left out)."""
    clp = staging[staging["currency"] == "CLP"]
    frame = pd.DataFrame(
        {
            "source_id": royalties.SOURCE.id,
            "measure": "royalty_allocation",
            "detail": clp["fund"],
            "territory_id": clp["territory_level"] + ":" + clp["territory_code"],
            "year": clp["year"],
            "amount_clp": clp["amount"],
            "published_value": clp["amount"],
            "published_unit": "CLP",
            "unit_factor": 1.0,
            "conversion": "transcribed in whole nominal CLP: no conversion",
            "parts": 1,
            "document_title": clp["document_title"],
            "document_url": clp["document_url"],
            "snapshot_id": clp["snapshot_id"],
            "verification": clp["verification"],
        }
    )
    return _amount_frame(frame), int((staging["currency"] != "CLP").sum())


def budget_amounts(staging: pd.DataFrame) -> pd.DataFrame:
    """Regional-government payments: the partida 31 rows of each region and year, summed."""
    gore = staging[staging["partida"] == REGIONAL_GOVERNMENT_PARTIDA]
    grouped = gore.groupby(["region_code", "year"]).agg(
        value=("amount_clp", "sum"), parts=("amount_clp", "size"), snapshot_id=("snapshot_id", "max")
    )
    grouped = grouped.reset_index()
    frame = pd.DataFrame(
        {
            "source_id": presupuesto_abierto.SOURCE.id,
            "measure": "regional_government_payments",
            "detail": f"partida {REGIONAL_GOVERNMENT_PARTIDA} (Gobiernos Regionales)",
            "territory_id": "region:" + grouped["region_code"],
            "year": grouped["year"],
            "amount_clp": grouped["value"],
            "published_value": grouped["value"],
            "published_unit": "CLP",
            "unit_factor": 1.0,
            "conversion": "sum of the partida's grouped payment rows, assumed nominal CLP (ASSUMED shape)",
            "parts": grouped["parts"],
            "document_title": None,
            "document_url": None,
            "snapshot_id": grouped["snapshot_id"],
        }
    )
    return _amount_frame(frame)


def _amount_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reindex(columns=list(AMOUNT_COLUMNS))
    return frame.astype(AMOUNT_DTYPES).astype({c: "object" for c in AMOUNT_COLUMNS if c not in AMOUNT_DTYPES})


SERIES = ["territory_id", "year", "value", "snapshot_id", "flag"]


def _series(territory_ids, years, values, snapshots, flags=None) -> pd.DataFrame:
    """One value per territory and year, the unit every indicator below is built from."""
    frame = pd.DataFrame(
        {
            "territory_id": list(territory_ids),
            "year": [int(y) for y in years],
            "value": [float(v) for v in values],
            "snapshot_id": list(snapshots),
        }
    )
    frame["flag"] = list(flags) if flags is not None else None
    return frame[SERIES].astype({"year": "int64", "value": "float64", "flag": "object"})


def amount_series(amounts: pd.DataFrame, measure: str) -> pd.DataFrame:
    rows = amounts[amounts["measure"] == measure]
    flags = [f"sum of {p} comunas" if p > 1 else None for p in rows["parts"]]
    return _series(rows["territory_id"], rows["year"], rows["amount_clp"], rows["snapshot_id"], flags)


def _inputs_as(frame: pd.DataFrame, role: str, suffix: str = "") -> list[list[tuple[str, str]]]:
    """Each row's inputs under `role`: its declared ones if it lists them, else its own snapshot."""
    declared = frame[f"inputs{suffix}"] if f"inputs{suffix}" in frame.columns else [None] * len(frame)
    return [
        [(role, *rest) for _, *rest in listed] if isinstance(listed, list) else [(role, own)]
        for listed, own in zip(declared, frame[f"snapshot_id{suffix}"], strict=True)
    ]


def ratio_series(
    numerator: pd.DataFrame,
    denominator: pd.DataFrame,
    scale: float,
    modes: dict[str, str],
    denominator_name: str,
) -> tuple[pd.DataFrame, list[str]]:
    """scale × numerator ÷ denominator for the same territory and year; never across years.

    Returns (series, the numerator's territory-years that had no denominator). A value stays
    under the numerator's snapshot (its source's) and lists both as inputs, so its mode is the
    weaker of the two (a SAMPLE denominator makes it sample; the numerator's source stays what
    it is); a flag says when the denominator is SAMPLE data.
    """
    merged = numerator.merge(
        denominator[denominator["value"] > 0], on=["territory_id", "year"], suffixes=("", "_d"), how="left"
    )
    matched = merged[merged["value_d"].notna()]
    unmatched = [f"{t} {y}" for t, y in merged.loc[merged["value_d"].isna(), ["territory_id", "year"]].values]
    flags = []
    for row in matched.itertuples(index=False):
        sampled = modes.get(row.snapshot_id_d) == "sample" and modes.get(row.snapshot_id) != "sample"
        notes = [n for n in (row.flag, f"{denominator_name} is SAMPLE data" if sampled else None) if n]
        flags.append("; ".join(notes) or None)
    series = _series(
        matched["territory_id"],
        matched["year"],
        scale * matched["value"] / matched["value_d"],
        matched["snapshot_id"],
        flags,
    )
    series["inputs"] = [
        sorted(set(n + d))
        for n, d in zip(
            _inputs_as(matched, "numerator"), _inputs_as(matched, "denominator", "_d"), strict=True
        )
    ]
    return series, unmatched


def population_series(conn) -> pd.DataFrame:
    """Population by territory and year from core.observations, preferring INE's over the OECD's."""
    frame = conn.execute(
        """
        SELECT territory_id, TRY_CAST(period AS INTEGER) AS year, value, snapshot_id, indicator_id
        FROM core.observations
        WHERE indicator_id IN (SELECT unnest(?::VARCHAR[])) AND value > 0 AND TRY_CAST(period AS INTEGER) IS NOT NULL
        """,
        [list(POPULATION_INDICATORS)],
    ).df()
    frame["rank"] = frame["indicator_id"].map(POPULATION_INDICATORS.index)
    frame = frame.sort_values("rank").drop_duplicates(["territory_id", "year"])
    flags = [None if i == POPULATION_INDICATORS[0] else f"population: {i}" for i in frame["indicator_id"]]
    return _series(frame["territory_id"], frame["year"], frame["value"], frame["snapshot_id"], flags)


def whole_region_years(rows: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
    """Which royalty rows belong to a region-year whose every fund lists all the comunas of the
    region (`sources.division.coverage`), or that lists only region-level allocations; and the
    region-years left out, with the coverage of each partial fund ('fondo_x: 3 of 9 comunas')."""
    comunas = rows[rows["territory_id"].str.startswith("comuna:")]
    partial: dict[str, list[str]] = {}
    for (region, year, fund), group in comunas.groupby(["region", "year", "detail"], sort=True):
        cover = division.coverage(region, group["code"])
        if not cover.complete:
            partial.setdefault(f"{region} {year}", []).append(f"{fund}: {cover.describe()}")
    keys = rows["region"] + " " + rows["year"].astype(str)
    return ~keys.isin(list(partial)), {key: "; ".join(funds) for key, funds in partial.items()}


def royalty_totals(
    amounts: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(comuna totals, region totals of every listed allocation, region totals of the comuna
    allocations, the region-years left out with their coverage).

    A region's total is written only where its comuna allocations cover the whole region
    (`whole_region_years`): a sum over some of its comunas is no value of the region.
    """
    rows = amounts[amounts["measure"] == "royalty_allocation"].copy()
    rows["code"] = rows["territory_id"].str.split(":").str[1]
    rows["region"] = "region:" + rows["code"].str[:2]
    comunas = rows[rows["territory_id"].str.startswith("comuna:")]
    whole, left_out = whole_region_years(rows)

    def totals(frame: pd.DataFrame, by: str) -> pd.DataFrame:
        grouped = frame.groupby([by, "year"]).agg(
            value=("amount_clp", "sum"),
            snapshot_id=("snapshot_id", "max"),
            parts=("amount_clp", "size"),
            funds=("detail", lambda f: ", ".join(sorted(set(f)))),
            unverified=("verification", lambda v: int((v == "unverified").sum())),
        )
        grouped = grouped.reset_index()
        flags = [
            "; ".join(
                ([f"sum of {p} listed allocations ({funds})"] if p > 1 else [])
                + ([f"{u} of {p} curated rows not checked against the primary document"] if u else [])
            )
            or None
            for p, funds, u in zip(grouped["parts"], grouped["funds"], grouped["unverified"], strict=True)
        ]
        series = _series(grouped[by], grouped["year"], grouped["value"], grouped["snapshot_id"], flags)
        series["inputs"] = [  # an unverified row makes the value curated-unverified
            [("parts" if p > 1 else "value", snapshot, *(["unverified"] if u else []))]
            for p, snapshot, u in zip(
                grouped["parts"], grouped["snapshot_id"], grouped["unverified"], strict=True
            )
        ]
        return series

    return (
        totals(comunas, "territory_id"),
        totals(rows[whole], "region"),
        totals(comunas[whole[comunas.index]], "region"),
        left_out,
    )


def fcm_dependence(staging: pd.DataFrame, amounts: pd.DataFrame) -> pd.DataFrame:
    """FCM dependence (%): as SINIM publishes it by comuna; by region 100 × ΣFCM ÷ Σ(IPP + FCM).

    SINIM's variable 1272 is 100 × FCM ÷ (IPP + FCM) (checked on the real 2019-2023 extract;
    the check `sinim_fcm_dependence_consistent` keeps checking it), so the region's figure is
    the same ratio over the summed amounts of all its comunas.
    """
    published = staging[(staging["measure"] == "fcm_dependence_pct") & (staging["value_status"] == "ok")]
    comunas = _series(
        "comuna:" + published["comuna_code"], published["year"], published["value"], published["snapshot_id"]
    )
    regions = amounts[amounts["territory_id"].str.startswith("region:")]
    wide = regions.pivot_table(
        index=["territory_id", "year"], columns="measure", values="amount_clp", aggfunc="first"
    )
    snapshots = regions.groupby(["territory_id", "year"])["snapshot_id"].max()
    parts = regions.groupby(["territory_id", "year"])["parts"].max()
    if not {"fcm_income", "own_permanent_income_ipp"} <= set(wide.columns):
        return comunas
    wide = wide.dropna(subset=["fcm_income", "own_permanent_income_ipp"])
    keys = list(wide.index)
    computed = _series(
        [k[0] for k in keys],
        [k[1] for k in keys],
        100 * wide["fcm_income"] / (wide["own_permanent_income_ipp"] + wide["fcm_income"]),
        [snapshots[k] for k in keys],
        [f"computed: 100 x FCM / (IPP + FCM) over {parts[k]} comunas" for k in keys],
    )
    return pd.concat([comunas, computed], ignore_index=True)


def finance_observations_frames(
    amounts: pd.DataFrame, sinim_rows: pd.DataFrame | None, population: pd.DataFrame, modes: dict[str, str]
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Every indicator of warehouse/indicators/finance.yaml, by source; plus a note per derived indicator."""
    series: dict[str, tuple[str, pd.DataFrame]] = {}
    notes: dict[str, str] = {}

    def derived(indicator, source_id, numerator, denominator, scale, name):
        if numerator.empty:
            notes[indicator] = "no numerator values"
            return
        if denominator.empty:
            notes[indicator] = f"skipped: no {name} in the warehouse"
            return
        values, unmatched = ratio_series(numerator, denominator, scale, modes, name)
        series[indicator] = (source_id, values)
        notes[indicator] = f"{len(values)} values" + (
            f"; no {name} of the same year for {len(unmatched)} territory-years ({', '.join(unmatched[:12])})"
            if unmatched
            else ""
        )

    for measure, indicator in SINIM_MONEY.items():
        series[indicator] = (sinim.SOURCE.id, amount_series(amounts, measure))
    if sinim_rows is not None:
        series["fcm_dependence_pct"] = (sinim.SOURCE.id, fcm_dependence(sinim_rows, amounts))
    population_label = "population"  # indicator population, else oecd_population, same year
    derived(
        "mining_concession_fees_per_inhabitant_clp",
        sinim.SOURCE.id,
        amount_series(amounts, "mining_concession_fees"),
        population,
        1.0,
        population_label,
    )

    comuna_totals, region_totals, region_comuna_totals, regions_left_out = royalty_totals(amounts)
    if regions_left_out:
        notes["royalty_regions_not_summed"] = "; ".join(f"{k} ({v})" for k, v in regions_left_out.items())
    all_totals = pd.concat([comuna_totals, region_totals], ignore_index=True)
    series["royalty_allocations_clp"] = (royalties.SOURCE.id, all_totals)
    derived(
        "royalty_allocations_per_inhabitant_clp",
        royalties.SOURCE.id,
        all_totals,
        population,
        1.0,
        population_label,
    )
    total_income = amount_series(amounts, "total_income")
    derived(
        "royalty_share_of_municipal_income_pct",
        royalties.SOURCE.id,
        pd.concat([comuna_totals, region_comuna_totals], ignore_index=True),
        total_income,
        100.0,
        "SINIM municipal total income",
    )
    derived(
        "royalty_share_of_regional_budget_pct",
        royalties.SOURCE.id,
        region_totals,
        amount_series(amounts, "regional_government_payments"),
        100.0,
        "regional-government payments (Presupuesto Abierto)",
    )
    series["regional_government_payments_clp"] = (
        presupuesto_abierto.SOURCE.id,
        amount_series(amounts, "regional_government_payments"),
    )

    by_source = {source_id: [] for source_id in SOURCES_WITH_OBSERVATIONS}
    for indicator, (source_id, values) in series.items():
        by_source[source_id].append(
            pd.DataFrame(
                {
                    "indicator_id": indicator,
                    "territory_id": values["territory_id"],
                    "period": values["year"].astype(str),
                    "value": values["value"],
                    "lower": float("nan"),
                    "upper": float("nan"),
                    "flag": values["flag"],
                    "source_id": source_id,
                    "snapshot_id": values["snapshot_id"],
                    "inputs": values["inputs"] if "inputs" in values else None,
                },
                columns=[*store.OBSERVATION_COLUMNS, "inputs"],
            )
        )
    frames = {
        source_id: pd.concat(parts, ignore_index=True).astype(
            {"value": "float64", "lower": "float64", "upper": "float64", "flag": "object", "period": "object"}
        )
        for source_id, parts in by_source.items()
    }
    return frames, notes


def build_core(conn) -> dict:
    """From the staging tables present, write the core tables, the observations and the marts views.

    Runs inside the caller's transaction. A source whose staging table does not exist yet
    contributes nothing (and keeps no observations).
    """
    sinim_rows = _table(conn, "staging", "sinim_finance")
    royalty_rows = _table(conn, "staging", "royalty_allocations")
    pagos_rows = _table(conn, "staging", "presupuesto_abierto_pagos")
    rates = annual_rates(_table(conn, "staging", "mindicador_series"))

    parts, metadata = [], {}
    if sinim_rows is not None:
        amounts, incomplete = sinim_amounts(sinim_rows)
        parts.append(amounts)
        metadata["sinim_regions_not_summed"] = MetadataValue.json(incomplete[:50])
    if royalty_rows is not None:
        amounts, usd_rows = royalty_amounts(royalty_rows)
        parts.append(amounts)
        if usd_rows:
            metadata["royalty_usd_rows_not_in_clp_amounts"] = usd_rows
    if pagos_rows is not None:
        parts.append(budget_amounts(pagos_rows))
    amounts = _amount_frame(pd.concat(parts, ignore_index=True)) if parts else _amount_frame(pd.DataFrame())

    unresolved, basis = unresolved_territories(conn, amounts["territory_id"])
    if unresolved:
        raise ValidationError(
            "finance", f"territory codes that resolve to no territory ({basis}): {', '.join(unresolved)}"
        )
    modes = dict(conn.execute("SELECT snapshot_id, mode FROM core.snapshots").fetchall())
    frames, notes = finance_observations_frames(amounts, sinim_rows, population_series(conn), modes)

    write_tables(
        conn, FAMILY, {("core", "finance_amounts"): amounts, ("core", "finance_annual_rates"): rates}
    )
    store.record_indicators(conn, load_indicators(FAMILY))
    counts = {
        source_id: write_tables(conn, source_id, {("core", "observations"): frame})["core.observations"]
        for source_id, frame in frames.items()
    }
    conn.execute(VIEWS_SQL.read_text())
    return {
        **metadata,
        "amounts": len(amounts),
        "annual_rates": len(rates),
        "observations": MetadataValue.json(counts),
        "derived_indicators": MetadataValue.json(notes),
        "territories_resolved_against": basis,
        "real_clp_base_year": REAL_BASE_YEAR,
    }


# --- assets --------------------------------------------------------------------------------------


def curated_paths() -> dict[str, Path]:
    """The curated royalty files, from the endpoints (overridable; file:// under an allowed root)."""
    urls = endpoints(royalties.SOURCE.id, royalties.ENDPOINTS)
    return {name: file_url_path(url) for name, url in urls.items()}


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="Ley 21.591 royalty allocations by comuna, transcribed from public documents (mode curated): "
    "raw.royalty_allocations, staging.royalty_allocations, staging.royalty_stated_totals. Every row cites its "
    "document; the rows of a fund and year must add up to the stated total.",
    metadata={
        **table_declaration(
            ROYALTY_COLUMNS,
            "staging.royalty_allocations",
            extra={"staging.royalty_stated_totals": STATED_COLUMNS},
        ),
        "source": royalties.SOURCE.landing_url,
    },
)
def royalty_allocations(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer = sources.acquirer()
    try:
        paths = curated_paths()
        acquired = [
            acquirer.curated(royalties.SOURCE, f"royalty-{name}", path) for name, path in paths.items()
        ]
    except (EndpointError, OSError) as exc:
        raise FetchError(royalties.SOURCE.id, f"cannot read the curated files: {exc}") from exc
    metadata = log_acquisitions(context, acquired)
    allocations, stated = (item.payload for item in acquired)
    with warehouse.writer() as conn:
        known = comuna_territories(conn)

    def parse() -> dict:
        frame, gaps = royalties.load_allocations(allocations.content, stated.content, known)
        totals = royalties.load_stated_totals(stated.content)
        return {
            "gaps": gaps,
            ("staging", "royalty_allocations"): validated(
                ROYALTY_SCHEMA, royalties.SOURCE, frame.assign(snapshot_id=allocations.snapshot_id)
            ),
            ("staging", "royalty_stated_totals"): validated(
                STATED_SCHEMA, royalties.SOURCE, totals.assign(snapshot_id=stated.snapshot_id)
            ),
        }

    with refusing(warehouse, acquirer, {royalties.SOURCE: acquired}):
        tables = parse()
        gaps = tables.pop("gaps")
        tables[("raw", "royalty_allocations")] = raw_csv_rows(allocations.content, allocations.snapshot_id)
        tables[("raw", "royalty_stated_totals")] = raw_csv_rows(stated.content, stated.snapshot_id)
    counts = publish(warehouse, acquirer, royalties.SOURCE, acquired, tables)
    for gap in gaps:
        context.log.warning(f"royalties: known gap: {gap}")
    return MaterializeResult(
        metadata={
            **metadata,
            **counts,
            "known_gaps": MetadataValue.json(gaps),
            "comunas_checked_against": "core.territories"
            if known
            else "region 02's nine comunas (no comuna territories loaded)",
        }
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="SINIM municipal finance of the studies' comunas (FCM income, own permanent income, total "
    "income, Patentes Mineras, FCM dependence), walked live through SINIM's POST forms; offline the SAMPLE long "
    "extract. raw.sinim_finance, staging.sinim_finance (values as published, M$ or %, with status).",
    metadata={
        **table_declaration(SINIM_COLUMNS, "staging.sinim_finance"),
        "source": sinim.SOURCE.landing_url,
    },
)
def sinim_municipal_finance(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer = sources.acquirer()
    # An answer inside the live walk that is unusable: the walk has quarantined what it fetched.
    with refusing(warehouse, acquirer, {sinim.SOURCE: []}):
        acquired, walked = acquire_sinim(acquirer)
    metadata = log_acquisitions(context, acquired)

    def parse() -> dict:
        raw, staging = parse_sinim(acquired, walked)
        return {("raw", "sinim_finance"): raw, ("staging", "sinim_finance"): staging}

    with refusing(warehouse, acquirer, {sinim.SOURCE: acquired}):
        tables = parse()
    staging = tables[("staging", "sinim_finance")]
    counts = publish(warehouse, acquirer, sinim.SOURCE, acquired, tables)
    status = staging.groupby("value_status").size().to_dict()
    return MaterializeResult(
        metadata={
            **metadata,
            **counts,
            "value_status": MetadataValue.json({k: int(v) for k, v in status.items()}),
        }
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="Daily UF and dólar observado per year from mindicador.cl (Banco Central series), for the "
    "real-CLP and USD conversions: raw.mindicador_series, staging.mindicador_series.",
    metadata={
        **table_declaration(RATE_COLUMNS, "raw.mindicador_series", "staging.mindicador_series"),
        "source": mindicador.SOURCE.landing_url,
    },
)
def fx_rates(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(mindicador.SOURCE.id, mindicador.ENDPOINTS)
    requests, asked = [], {}
    for indicator in mindicador.SERIES_INDICATORS:
        for year in calendar_years():
            request = mindicador.series_request(urls["api"], indicator, year)
            asked[request.name] = (indicator, year)
            sample = SAMPLE_DIR / f"mindicador_{indicator}_{year}_SAMPLE.json"
            requests.append((request, existing_sample(sample)))
    acquirer = sources.acquirer()
    pairs, unavailable = acquire_available(acquirer, mindicador.SOURCE, requests)
    acquired = [item for _, item in pairs]
    metadata = log_acquisitions(context, acquired)
    for line in unavailable:
        context.log.warning(f"mindicador: no data: {line}")

    def parse() -> dict:
        raw = parse_rates(pairs, asked)
        return {
            ("raw", "mindicador_series"): raw,
            ("staging", "mindicador_series"): validated(
                RATE_SCHEMA, mindicador.SOURCE, raw[list(RATE_COLUMNS)]
            ),
        }

    with refusing(warehouse, acquirer, {mindicador.SOURCE: acquired}):
        tables = parse()
    counts = publish(warehouse, acquirer, mindicador.SOURCE, acquired, tables)
    return MaterializeResult(metadata={**metadata, **counts, "unavailable": MetadataValue.json(unavailable)})


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="Central-government payments in the studies' regions by partida, capítulo and área from "
    "Presupuesto Abierto (response shape ASSUMED): raw/staging.presupuesto_abierto_pagos.",
    metadata={
        **table_declaration(
            PAGOS_COLUMNS, "raw.presupuesto_abierto_pagos", "staging.presupuesto_abierto_pagos"
        ),
        "source": presupuesto_abierto.SOURCE.landing_url,
    },
)
def regional_budget(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(presupuesto_abierto.SOURCE.id, presupuesto_abierto.ENDPOINTS)
    _, regions = study_scope()
    requests, keys = [], {}
    for region in regions:
        for year in calendar_years():
            request = presupuesto_abierto.pagos_request(urls["pagos"], int(region), year)
            keys[request.name] = (int(region), year)
            sample = SAMPLE_DIR / f"presupuesto_abierto_pagos_region{region}_{year}_SAMPLE.json"
            requests.append((request, existing_sample(sample)))
    acquirer = sources.acquirer()
    pairs, unavailable = acquire_available(acquirer, presupuesto_abierto.SOURCE, requests)
    acquired = [item for _, item in pairs]
    metadata = log_acquisitions(context, acquired)

    def parse() -> dict:
        raw = parse_pagos(pairs, keys)
        return {
            ("raw", "presupuesto_abierto_pagos"): raw,
            ("staging", "presupuesto_abierto_pagos"): validated(
                PAGOS_SCHEMA, presupuesto_abierto.SOURCE, raw[list(PAGOS_COLUMNS)]
            ),
        }

    with refusing(warehouse, acquirer, {presupuesto_abierto.SOURCE: acquired}):
        tables = parse()
    counts = publish(warehouse, acquirer, presupuesto_abierto.SOURCE, acquired, tables)
    return MaterializeResult(metadata={**metadata, **counts, "unavailable": MetadataValue.json(unavailable)})


# Assets that write population observations; per-inhabitant indicators are computed after them.
POPULATION_ASSETS = [health_assets.health_population, oecd_assets.oecd_observations]


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[
        royalty_allocations,
        sinim_municipal_finance,
        fx_rates,
        regional_budget,
        territories,
        *POPULATION_ASSETS,
    ],
    description="Finance amounts in nominal CLP (core.finance_amounts, conversion recorded), the UF and dollar "
    "of each year (core.finance_annual_rates), the governance indicators in core.observations, and the views "
    "marts.finance_amounts, marts.municipal_finance, marts.royalty_allocations (nominal CLP, real CLP, USD).",
    metadata={
        **table_declaration(
            AMOUNT_COLUMNS, "core.finance_amounts", extra={"core.finance_annual_rates": ANNUAL_RATE_COLUMNS}
        )
    },
)
def finance_observations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, FAMILY) as conn:
        metadata = build_core(conn)
    for indicator, note in metadata["derived_indicators"].value.items():
        context.log.info(f"{indicator}: {note}")
    return MaterializeResult(metadata=metadata)


# --- checks --------------------------------------------------------------------------------------


@asset_check(asset=royalty_allocations, description="Every curated royalty row cites a public document.")
def royalty_rows_cite_a_document(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        total, uncited = conn.execute(
            r"""
            SELECT count(*), count(*) FILTER (
                coalesce(trim(document_title), '') = '' OR NOT regexp_matches(document_url, '^https?://\S+$'))
            FROM staging.royalty_allocations
            """
        ).fetchone()
    return AssetCheckResult(passed=uncited == 0, metadata={"rows": total, "rows_without_citation": uncited})


@asset_check(
    asset=royalty_allocations,
    description="Allocation rows of each fund and year add up to the total the documents state (exactly for "
    "whole pesos, within half the rounding of a rounded total); stated totals without rows are listed as gaps.",
)
def royalty_totals_reconcile(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            """
            WITH sums AS (SELECT fund, year, currency, sum(amount) AS allocated, count(*) AS rows
                          FROM staging.royalty_allocations GROUP BY ALL)
            SELECT coalesce(t.fund, s.fund) AS fund, coalesce(t.year, s.year) AS year,
                   coalesce(t.currency, s.currency) AS currency, s.allocated, s.rows, t.stated_total,
                   CASE WHEN t.rounded_to <= 1 THEN 0 ELSE t.rounded_to / 2 END AS tolerance
            FROM staging.royalty_stated_totals t FULL JOIN sums s USING (fund, year, currency)
            ORDER BY 1, 2
            """
        ).df()
    with_rows = frame[frame["allocated"].notna()]
    unstated = with_rows[with_rows["stated_total"].isna()]
    stated = with_rows[with_rows["stated_total"].notna()]
    off = stated[(stated["allocated"] - stated["stated_total"]).abs() > stated["tolerance"]]
    gaps = frame[frame["allocated"].isna()]
    return AssetCheckResult(
        passed=off.empty and unstated.empty,
        metadata={
            "reconciled": MetadataValue.json(stated.astype(str).to_dict("records")),
            "not_reconciling": MetadataValue.json(off.astype(str).to_dict("records")),
            "rows_without_stated_total": MetadataValue.json(unstated.astype(str).to_dict("records")),
            "known_gaps": MetadataValue.json([f"{r.fund} {r.year}" for r in gaps.itertuples()]),
        },
    )


@asset_check(
    asset=finance_observations,
    description="Every comuna and region code of SINIM, the royalty file and the budget resolves to a territory.",
)
def finance_codes_resolve(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        ids = [
            r[0] for r in conn.execute("SELECT DISTINCT territory_id FROM core.finance_amounts").fetchall()
        ]
        for table, column in (("sinim_finance", "comuna_code"), ("royalty_allocations", "territory_code")):
            frame = _table(conn, "staging", table)
            if frame is not None:
                levels = frame["territory_level"] if "territory_level" in frame else "comuna"
                ids += list(levels + ":" + frame[column])
        unresolved, basis = unresolved_territories(conn, ids)
    return AssetCheckResult(
        passed=not unresolved,
        metadata={
            "codes": len(set(ids)),
            "unresolved": MetadataValue.json(unresolved),
            "resolved_against": basis,
        },
    )


@asset_check(
    asset=finance_observations,
    description="SINIM cells 'No Recepcionado' or blank are counted as missing: no value, no amount, no "
    "observation (never zero). Reports the counts.",
)
def sinim_not_received_is_missing(warehouse: WarehouseResource) -> AssetCheckResult:
    indicators = {**SINIM_MONEY, **SINIM_PERCENT}
    with warehouse.reader() as conn:
        counts = conn.execute(
            "SELECT variable_code, measure, value_status, count(*) AS cells FROM staging.sinim_finance "
            "GROUP BY ALL ORDER BY ALL"
        ).df()
        leaked = conn.execute(
            """
            WITH indicator_of AS (SELECT unnest(?::VARCHAR[]) AS measure, unnest(?::VARCHAR[]) AS indicator_id)
            SELECT s.comuna_code, s.year, s.measure, s.value_status, s.value, o.value AS observed
            FROM staging.sinim_finance s
            JOIN indicator_of m USING (measure)
            LEFT JOIN core.observations o
                   ON o.indicator_id = m.indicator_id AND o.territory_id = 'comuna:' || s.comuna_code
                  AND o.period = CAST(s.year AS VARCHAR)
            WHERE s.value_status <> 'ok' AND (s.value IS NOT NULL OR o.indicator_id IS NOT NULL)
            """,
            [list(indicators), list(indicators.values())],
        ).df()
    by_status = counts.groupby("value_status")["cells"].sum().to_dict()
    return AssetCheckResult(
        passed=leaked.empty,
        metadata={
            "not_received": int(by_status.get("not_received", 0)),
            "missing_blank": int(by_status.get("missing", 0)),
            "ok": int(by_status.get("ok", 0)),
            "by_variable": MetadataValue.json(counts.astype(str).to_dict("records")),
            "missing_cells_with_a_value": MetadataValue.json(leaked.head(20).astype(str).to_dict("records")),
        },
    )


@asset_check(
    asset=sinim_municipal_finance,
    description="SINIM's FCM dependence (%) equals 100 x FCM / (IPP + FCM) to its 2 published decimals, the "
    "identity the regional figure relies on.",
)
def sinim_fcm_dependence_consistent(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            """
            SELECT comuna_code, year,
                   max(value) FILTER (measure = 'fcm_dependence_pct') AS published,
                   100 * max(value) FILTER (measure = 'fcm_income')
                       / (max(value) FILTER (measure = 'fcm_income')
                          + max(value) FILTER (measure = 'own_permanent_income_ipp')) AS computed
            FROM staging.sinim_finance GROUP BY ALL
            """
        ).df()
    both = frame.dropna(subset=["published", "computed"])
    off = both[(both["published"] - both["computed"]).abs() > 0.006]
    return AssetCheckResult(
        passed=off.empty,
        metadata={
            "compared": len(both),
            "differing": MetadataValue.json(off.head(20).astype(str).to_dict("records")),
        },
    )


@asset_check(
    asset=finance_observations,
    description="Every year with an amount has a UF and a dollar rate, and the base year's UF exists.",
)
def finance_rates_cover_amounts(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        missing = conn.execute(
            """
            SELECT DISTINCT a.year, i.indicator FROM core.finance_amounts a
            CROSS JOIN (VALUES ('uf'), ('dolar')) i(indicator)
            LEFT JOIN core.finance_annual_rates r ON r.year = a.year AND r.indicator = i.indicator
            WHERE r.rate IS NULL ORDER BY 1, 2
            """
        ).fetchall()
        base = conn.execute(
            "SELECT count(*) FROM core.finance_annual_rates WHERE indicator = 'uf' AND year = ?",
            [REAL_BASE_YEAR],
        ).fetchone()[0]
    return AssetCheckResult(
        passed=not missing and base == 1,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "years_without_rate": MetadataValue.json([f"{year} {indicator}" for year, indicator in missing]),
            "base_year": REAL_BASE_YEAR,
            "base_year_uf_present": bool(base),
        },
    )


# --- jobs, schedules, sensor ---------------------------------------------------------------------

sinim_job = define_asset_job(
    "finance_sinim_refresh", selection=[sinim_municipal_finance, finance_observations]
)
fx_job = define_asset_job("finance_fx_refresh", selection=[fx_rates, finance_observations])
budget_job = define_asset_job("finance_budget_refresh", selection=[regional_budget, finance_observations])
royalties_job = define_asset_job(
    "finance_royalties_refresh", selection=[royalty_allocations, finance_observations]
)

# SINIM publishes yearly but revises and completes late municipalities: check monthly.
sinim_schedule = ScheduleDefinition(job=sinim_job, cron_schedule="0 5 2 * *", name="finance_sinim_monthly")
fx_schedule = ScheduleDefinition(job=fx_job, cron_schedule="30 6 * * *", name="finance_fx_daily")
budget_schedule = ScheduleDefinition(job=budget_job, cron_schedule="0 5 3 * *", name="finance_budget_monthly")


def curated_digest() -> str:
    digest = hashlib.sha256()
    for name, path in sorted(curated_paths().items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@sensor(
    job=royalties_job,
    minimum_interval_seconds=300,
    description="Reload the curated royalty files when their content changes.",
)
def royalty_curated_changed(context: SensorEvaluationContext):
    try:
        digest = curated_digest()
    except (EndpointError, OSError) as exc:
        return SkipReason(f"curated royalty files unreadable: {exc}")
    if context.cursor == digest:
        return SkipReason("curated royalty files unchanged")
    context.update_cursor(digest)
    return RunRequest(run_key=digest)


ASSETS = [royalty_allocations, sinim_municipal_finance, fx_rates, regional_budget, finance_observations]
CHECKS = [
    royalty_rows_cite_a_document,
    royalty_totals_reconcile,
    finance_codes_resolve,
    sinim_not_received_is_missing,
    sinim_fcm_dependence_consistent,
    finance_rates_cover_amounts,
]
JOBS = [sinim_job, fx_job, budget_job, royalties_job]
SCHEDULES = [sinim_schedule, fx_schedule, budget_schedule]
SENSORS = [royalty_curated_changed]
OBSERVATION_ASSETS = [finance_observations]

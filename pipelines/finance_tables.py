"""Finance tables, one declaration each: column descriptions, pandera schema and value gates.

The staging tables hold amounts as published (SINIM's M$, curated CLP/USD, mindicador's daily
UF and dollar, Presupuesto Abierto's payments); the core tables are written by
`pipelines.finance_core.build_core` from `pipelines.finance_amounts`.
"""

from datetime import date

import pandas as pd
import pandera.pandas as pa

from pipelines import gates
from pipelines.ingest import validate_frame
from sources import royalties, sinim
from sources.base import SourceInfo

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

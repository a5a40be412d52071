"""Finance amounts in nominal CLP and the UF and dollar that stand for each year.

core.finance_amounts: every published amount turned into nominal CLP, with the unit factor and
the conversion recorded, by comuna and by region where every comuna of the region is there.
core.finance_annual_rates: the annual mean UF and dólar observado (methods.currency) that the
marts views use for real CLP of REAL_BASE_YEAR and for USD.
"""

import pandas as pd

from methods import currency
from pipelines.finance_tables import AMOUNT_COLUMNS, AMOUNT_DTYPES, ANNUAL_RATE_COLUMNS, SINIM_MONEY
from sources import division, mindicador, presupuesto_abierto, royalties, sinim
from sources.base import ValidationError

# Real CLP are stated in pesos of this year, through the mean UF of each year (methods/currency.py).
REAL_BASE_YEAR = 2024
# What one published unit is in CLP. SINIM's "M$" is thousands of nominal pesos.
UNIT_FACTORS = {"M$": 1000.0, "CLP": 1.0}
# Partida 31 of the budget law is "Gobiernos Regionales": the regional governments' own budget.
REGIONAL_GOVERNMENT_PARTIDA = "31"


def annual_rates(series: pd.DataFrame | None) -> pd.DataFrame:
    """The UF and dollar that stand for each year (methods.currency: the mean of the year's values)."""
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
    return amount_frame(frame), incomplete


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
    return amount_frame(frame), int((staging["currency"] != "CLP").sum())


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
    return amount_frame(frame)


def amount_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reindex(columns=list(AMOUNT_COLUMNS))
    return frame.astype(AMOUNT_DTYPES).astype({c: "object" for c in AMOUNT_COLUMNS if c not in AMOUNT_DTYPES})

"""OECD regional statistics over the SDMX REST API, in the `csvfilewithlabels` format.

Each indicator is one pinned dataflow query (agency `OECD.CFE.EDS`). The OECD allows 60
data downloads an hour, so the fetch layer rate-limits the host and every query is
conditional: an unchanged dataset costs one 304.

Dimension codes for the keys follow the OECD documentation and public code that calls
these dataflows (see ../shared/SOURCES.md, section 5). Codes marked [I] there are inferred;
the selection rules below fail loudly when a query returns rows they cannot pick between,
so a wrong guess surfaces as an error, not as a wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sources import sdmx, specs
from sources.base import FetchRequest, ParseError

SOURCE = specs.source("oecd_regional")

AGENCY = "OECD.CFE.EDS"
# Host -> requests per hour (the OECD allows 60 data downloads an hour), from the spec.
REQUESTS_PER_HOUR = specs.spec(SOURCE.id).requests_per_hour


@dataclass(frozen=True)
class IndicatorQuery:
    """One indicator: its dataflow and the dimension values that select its rows.

    Its query URL (dataflow, key, start period) is the endpoint of the same name in the spec.
    """

    indicator: str
    dataflow: str
    version: str
    select: dict[str, str]


QUERIES = [
    IndicatorQuery(
        "oecd_gdp_per_capita_usd_ppp",
        "DSD_REG_ECO@DF_GDP",
        "2.0",
        {"MEASURE": "GDP", "UNIT_MEASURE": "USD_PPP_PS"},
    ),
    IndicatorQuery(
        "oecd_unemployment_rate",
        "DSD_REG_LABOUR@DF_LAB",
        "2.0",
        {"MEASURE": "UNE_RATE", "AGE": "Y15T64", "SEX": "_T"},
    ),
    IndicatorQuery(
        "oecd_gini_disposable_income",
        "DSD_REG_SOC@DF_INCOME_INEQ",
        "1.0",
        {"MEASURE": "INC_DISP_GINI"},
    ),
    IndicatorQuery(
        "oecd_population",
        "DSD_REG_DEMO@DF_POP_5Y",
        "2.0",
        {"MEASURE": "POP", "AGE": "_T", "SEX": "_T", "UNIT_MEASURE": "PS"},
    ),
]
ENDPOINTS = specs.endpoints(SOURCE.id, names=[query.indicator for query in QUERIES])

REQUIRED_COLUMNS = ("STRUCTURE_ID", "REF_AREA", "TIME_PERIOD", "OBS_VALUE", "MEASURE")
# Code columns that are not dimensions of the series (structure, values, attributes read apart).
NOT_DIMENSIONS = frozenset(
    {"STRUCTURE", "STRUCTURE_ID", "STRUCTURE_NAME", "ACTION", "REF_AREA", "TIME_PERIOD", "OBS_VALUE"}
    | {"OBS_STATUS", "UNIT_MULT", "DECIMALS"}
)
OUTPUT_COLUMNS = [
    "dataflow",
    "ref_area",
    "ref_area_label",
    "territorial_level",
    "measure",
    "unit_measure",
    "unit_label",
    "dimensions",
    "time_period",
    "obs_value",
    "obs_status",
]


def build_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    """One request per indicator, from the (possibly overridden) endpoints."""
    return [FetchRequest(name=q.indicator, url=endpoints[q.indicator], expect="csv") for q in QUERIES]


def parse_sdmx_csv(content: bytes, source: str = SOURCE.id, snapshot: str | None = None) -> pd.DataFrame:
    """SDMX-CSV with labels (read by `sources.sdmx`) -> one row per observation, value scaled by UNIT_MULT.

    Dimensions other than the ones we name are kept in `dimensions` (sorted `CODE=value`
    pairs) so selection can see them.
    """
    frame = sdmx.read_csv(content, source, snapshot, required=REQUIRED_COLUMNS)
    values = sdmx.observation_values(frame, source, snapshot, multiplier="UNIT_MULT")

    def column(name: str) -> pd.Series:
        return frame[name].fillna("") if name in frame else pd.Series("", index=frame.index, dtype=object)

    dimensions = [c for c in sorted(sdmx.code_columns(frame)) if c not in NOT_DIMENSIONS]
    pairs = [name + "=" + column(name) for name in dimensions]
    parsed = pd.DataFrame(
        {
            "dataflow": column("STRUCTURE_ID"),
            "ref_area": column("REF_AREA"),
            "ref_area_label": column("REF_AREA" + sdmx.LABEL_SUFFIX),
            "territorial_level": column("TERRITORIAL_LEVEL"),
            "measure": column("MEASURE"),
            "unit_measure": column("UNIT_MEASURE"),
            "unit_label": column("UNIT_MEASURE" + sdmx.LABEL_SUFFIX),
            "dimensions": pd.concat(pairs, axis=1).agg(";".join, axis=1) if pairs else "",
            "time_period": column("TIME_PERIOD"),
            "obs_value": values,
            "obs_status": column("OBS_STATUS").replace("", None),
        },
        index=frame.index,
    )
    return parsed[OUTPUT_COLUMNS].reset_index(drop=True)


def select_indicator(
    frame: pd.DataFrame, query: IndicatorQuery, source: str = SOURCE.id, snapshot: str | None = None
) -> pd.DataFrame:
    """The rows of one indicator; refuses a result that still has two values per area and period."""
    dims = frame["dimensions"].str.split(";").apply(lambda pairs: dict(p.split("=", 1) for p in pairs if p))
    mask = pd.Series(True, index=frame.index)
    for code, wanted in query.select.items():
        if code == "UNIT_MEASURE":
            continue
        column = {"MEASURE": "measure"}.get(code)
        values = frame[column] if column else dims.apply(lambda d, code=code: d.get(code))
        mask &= values == wanted
    wanted_unit = query.select.get("UNIT_MEASURE")
    if wanted_unit is not None:
        # Rows of the selected series in another unit mean the publisher changed the unit:
        # refuse them rather than drop them, or those areas would silently lose their values.
        other = frame[mask & (frame["unit_measure"] != wanted_unit)]
        if not other.empty:
            examples = other[["ref_area", "time_period", "unit_measure"]].drop_duplicates().head(5)
            raise ParseError(
                source,
                f"{query.indicator}: {len(other)} row(s) in unit(s) {sorted(other['unit_measure'].unique())} "
                f"where {wanted_unit} was expected (e.g. {examples.to_dict('records')})",
                snapshot,
            )
        mask &= frame["unit_measure"] == wanted_unit
    chosen = frame[mask].copy()
    if chosen.empty:
        raise ParseError(
            source,
            f"{query.indicator}: no rows match {query.select} in dataflow {query.dataflow} "
            f"(measures present: {sorted(frame['measure'].unique())[:10]})",
            snapshot,
        )
    duplicated = chosen.duplicated(["ref_area", "time_period"], keep=False)
    if duplicated.any():
        example = chosen[duplicated].iloc[0]
        raise ParseError(
            source,
            f"{query.indicator}: several rows for {example.ref_area} {example.time_period}; "
            f"the selection {query.select} is ambiguous (e.g. {example.dimensions})",
            snapshot,
        )
    chosen["indicator"] = query.indicator
    return chosen.reset_index(drop=True)

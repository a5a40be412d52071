"""INE's labour force survey (Encuesta Nacional de Empleo, ENE) over INE's SDMX 2.1 service.

`https://sdmx.ine.gob.cl/rest/data/CL01,{DATAFLOW},1.0/all?format=csv&startPeriod=YYYY-MM`
answers SDMX-CSV (read by `sources.sdmx`). Public clients send `Accept-Language: es`: the
service is reported to answer HTTP 500 to `Accept-Language: *` (PROVENANCE_new_families.md 1a).

Quirks handled (observed in DF_TDES_SEXO payloads; the other dataflows follow the same DSD
conventions, marked [I] where inferred):
- `AREA_REF` is a bare number (`2`, `16`; provinces `22` [I]) or `_T` for the country;
- `SEXO` is `F`, `M` or `AS` (both sexes) -> `F`, `M`, `T`;
- `TIME_PERIOD` is a rolling quarter written as its start date plus `/P3M`
  (`2025-04-01/P3M` = Apr-Jun 2025) -> period `2025-04/P3M`;
- `OBS_STATUS` is empty for estimates INE classifies as reliable ("fiables"); any code there
  is kept and the estimate flagged unreliable; `NOTAS` repeats an HTML note on every row
  and is ignored; `OBS_VALUE` has full float precision although `DECIMALS` says 1;
- `MULT` is a power of ten (employed persons may be published in thousands).
The old INE.Stat export (`DTI_CL_INDICADOR,Indicador,DTI_CL_TRIMESTRE_MOVIL,...`: UTF-8 with
BOM, CRLF, region codes `CHL02`, sex `_T`, period `2010-V02` = the quarter centred on
February, two series "base 2002" and "base 2017") is a mirror format of the same survey:
`parse_payload` reads either into the same frame.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import pandas as pd

from sources import sdmx, specs
from sources.base import FetchRequest, ParseError, decode_text

SOURCE = specs.source("ine_ene")

AGENCY = "CL01"
VERSION = "1.0"
HEADERS = specs.spec(SOURCE.id).request_headers

SEX = {"AS": "T", "F": "F", "M": "M"}
MEASURES = ("unemployment_rate", "participation_rate", "employed")
AREA_KINDS = ("region", "province", "conurbation")


@dataclass(frozen=True)
class Dataflow:
    """One ENE dataflow: what it measures, over which areas, and the structure it must have.

    `indicator` is the INDICADOR code its rows must carry (None: any one code, recorded);
    `unit` the UNIDAD code (None: not checked, the value gates judge the numbers); `select`
    fixes further dimensions (RAMA B = mining and quarrying). `ine_stat` names the series of
    the old INE.Stat export that mirror this dataflow, with the projection base of each.
    """

    id: str
    measure: str
    area: str
    dimensions: tuple[str, ...]
    indicator: str | None = None
    unit: str | None = None
    select: dict[str, str] = field(default_factory=dict)
    ine_stat: dict[str, str] = field(default_factory=dict)

    @property
    def structure(self) -> str:
        return f"{AGENCY}:{self.id}({VERSION})"


BASE_2017, BASE_2002 = "base 2017", "base 2002"
DATAFLOWS = (
    Dataflow(
        "DF_TDES_SEXO",
        "unemployment_rate",
        "region",
        ("FREQ", "INDICADOR", "AREA_REF", "SEXO"),
        indicator="TDES",
        unit="RT",
        ine_stat={"ENE_TD_P2017": BASE_2017, "ENE_TD": BASE_2002},
    ),
    Dataflow("DF_TDES_PROVINCIAS", "unemployment_rate", "province", ("FREQ", "INDICADOR", "AREA_REF"), unit="RT"),
    Dataflow("DF_TDES_CONUR", "unemployment_rate", "conurbation", ("FREQ", "INDICADOR", "AREA_REF"), unit="RT"),
    Dataflow(
        "DF_TP_SEXO",
        "participation_rate",
        "region",
        ("FREQ", "INDICADOR", "AREA_REF", "SEXO"),
        unit="RT",
        ine_stat={"ENE_TP_P2017": BASE_2017, "ENE_TP": BASE_2002},
    ),
    Dataflow(
        "DF_OCURAMA_RAMA_SEXO",
        "employed",
        "region",
        ("FREQ", "INDICADOR", "AREA_REF", "RAMA", "SEXO"),
        select={"RAMA": "B"},
    ),
)  # fmt: skip
# One query URL per dataflow, in the spec (all keys, from 2018-01).
ENDPOINTS = specs.endpoints(SOURCE.id, names=[flow.id for flow in DATAFLOWS])

ENE_COLUMNS = [
    "dataflow",
    "measure",
    "indicator_code",
    "series",
    "area_kind",
    "area_ref",
    "sex",
    "branch",
    "period",
    "period_start",
    "value",
    "unit",
    "obs_status",
]
_ROLLING = re.compile(r"^(\d{4})-(\d{2})-01/P3M$")
_INE_STAT_PERIOD = re.compile(r"^(\d{4})-V(\d{2})$")
_SPANISH_MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")


def build_requests(endpoints: dict[str, str]) -> list[FetchRequest]:
    """One request per dataflow, with the headers INE's service needs."""
    return [
        FetchRequest(name=flow.id, url=endpoints[flow.id], expect="csv", headers=dict(HEADERS))
        for flow in DATAFLOWS
    ]


def dataflow(name: str) -> Dataflow:
    return next(flow for flow in DATAFLOWS if flow.id == name)


def parse_payload(content: bytes, flow: Dataflow, snapshot: str | None = None) -> pd.DataFrame:
    """SDMX-CSV or the INE.Stat export of one dataflow -> `ENE_COLUMNS`, one row per estimate."""
    first = decode_text(content[:4096], SOURCE.id).lstrip().split("\n", 1)[0]
    if first.startswith(('"DTI_CL_INDICADOR"', "DTI_CL_INDICADOR")):
        return parse_ine_stat(content, flow, snapshot)
    return parse_sdmx(content, flow, snapshot)


def parse_sdmx(content: bytes, flow: Dataflow, snapshot: str | None = None) -> pd.DataFrame:
    """One dataflow's SDMX-CSV, checked against its declared structure."""
    frame = sdmx.read_csv(content, SOURCE.id, snapshot, required=("DATAFLOW", "TIME_PERIOD", "OBS_VALUE"))
    sdmx.expect_structure(
        frame,
        SOURCE.id,
        snapshot,
        structure_column="DATAFLOW",
        structure=flow.structure,
        dimensions=flow.dimensions,
    )
    frame = _selected(frame, flow, snapshot)
    indicator = _single_code(frame, "INDICADOR", flow, snapshot)
    unit = _single_code(frame, "UNIDAD", flow, snapshot, expected=flow.unit, required=False)
    periods = frame["TIME_PERIOD"].astype(str).str.strip()
    parsed = periods.str.extract(_ROLLING)
    bad = parsed[0].isna()
    if bad.any():
        raise ParseError(
            SOURCE.id,
            f"{flow.id}: TIME_PERIOD values {sorted(periods[bad].unique())[:5]} are not rolling quarters "
            "written as YYYY-MM-01/P3M",
            snapshot,
        )
    sexes = frame["SEXO"].astype(str).str.strip() if "SEXO" in frame else pd.Series("AS", index=frame.index)
    unknown = sorted(set(sexes) - set(SEX))
    if unknown:
        raise ParseError(SOURCE.id, f"{flow.id}: SEXO codes {unknown} are not F, M or AS", snapshot)
    start = parsed[0] + "-" + parsed[1]
    result = pd.DataFrame(
        {
            "dataflow": flow.id,
            "measure": flow.measure,
            "indicator_code": indicator,
            "series": BASE_2017,
            "area_kind": flow.area,
            "area_ref": frame["AREA_REF"].astype(str).str.strip(),
            "sex": sexes.map(SEX),
            "branch": frame["RAMA"].astype(str).str.strip() if "RAMA" in frame else "",
            "period": start + "/P3M",
            "period_start": start,
            "value": sdmx.observation_values(frame, SOURCE.id, snapshot, multiplier="MULT"),
            "unit": unit,
            "obs_status": frame["OBS_STATUS"].astype(str).str.strip() if "OBS_STATUS" in frame else "",
        }
    )
    return result[ENE_COLUMNS].reset_index(drop=True)


def _selected(frame: pd.DataFrame, flow: Dataflow, snapshot: str | None) -> pd.DataFrame:
    """The rows of the declared dimension values; a code that is absent altogether is an error."""
    for dimension, code in flow.select.items():
        codes = frame[dimension].astype(str).str.strip()
        if not (codes == code).any():
            raise ParseError(
                SOURCE.id,
                f"{flow.id}: no {dimension} {code!r} in the payload (codes: {sorted(codes.unique())[:12]})",
                snapshot,
            )
        frame = frame[codes == code]
    return frame


def _single_code(
    frame: pd.DataFrame,
    column: str,
    flow: Dataflow,
    snapshot: str | None,
    *,
    expected: str | None = None,
    required: bool = True,
) -> str:
    """The one code a column holds for the whole dataflow (an indicator, a unit); else an error."""
    if column not in frame:
        if required:
            raise ParseError(SOURCE.id, f"{flow.id}: no {column} column", snapshot)
        return ""
    codes = sorted(set(frame[column].astype(str).str.strip()))
    wanted = expected if expected is not None else (flow.indicator if column == "INDICADOR" else None)
    if len(codes) != 1 or (wanted is not None and codes != [wanted]):
        raise ParseError(
            SOURCE.id,
            f"{flow.id}: {column} holds {codes[:6]}"
            + (f" where {wanted!r} was expected (unit or indicator change?)" if wanted else ""),
            snapshot,
        )
    return codes[0]


# --- the INE.Stat export (mirror format) ---------------------------------------------------

INE_STAT_COLUMNS = (
    "DTI_CL_INDICADOR",
    "DTI_CL_TRIMESTRE_MOVIL",
    "Trimestre Móvil",
    "DTI_CL_REGION",
    "DTI_CL_SEXO",
    "Value",
)


def _ine_stat_start(code: str, label: str, snapshot: str | None) -> str:
    """`2010-V02` with label `2010 ene-mar` -> '2010-01': the code's month is the quarter's centre.

    The label's first month must agree with the code, so a relabelled export is refused.
    """
    match = _INE_STAT_PERIOD.match(code.strip())
    words = label.strip().split()
    first = words[-1].split("-")[0].lower() if words else ""
    if not match or first not in _SPANISH_MONTHS:
        raise ParseError(
            SOURCE.id, f"INE.Stat period {code!r} / {label!r} is not a rolling quarter", snapshot
        )
    year, centre = int(match[1]), int(match[2])
    month = centre - 1 if centre > 1 else 12
    year = year if centre > 1 else year - 1
    if _SPANISH_MONTHS.index(first) + 1 != month:
        raise ParseError(
            SOURCE.id, f"INE.Stat period code {code!r} does not match its label {label!r}", snapshot
        )
    return f"{year}-{month:02d}"


def _ine_stat_area(code: str, snapshot: str | None) -> str:
    code = code.strip()
    if code == "_T":
        return "_T"
    if re.fullmatch(r"CHL\d{2}", code):
        return str(int(code[3:]))
    raise ParseError(SOURCE.id, f"INE.Stat region code {code!r} is neither _T nor CHLnn", snapshot)


def parse_ine_stat(content: bytes, flow: Dataflow, snapshot: str | None = None) -> pd.DataFrame:
    """The INE.Stat CSV export of a dataflow's series -> `ENE_COLUMNS` (series base 2017 or 2002)."""
    if not flow.ine_stat:
        raise ParseError(SOURCE.id, f"{flow.id} has no INE.Stat mirror series", snapshot)
    rows = list(csv.reader(io.StringIO(decode_text(content, SOURCE.id), newline="")))
    header = [cell.strip() for cell in rows[0]] if rows else []
    missing = [name for name in INE_STAT_COLUMNS if name not in header]
    if missing:
        raise ParseError(SOURCE.id, f"INE.Stat export lacks column(s) {missing}; got {header}", snapshot)
    at = {name: header.index(name) for name in INE_STAT_COLUMNS}
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ParseError(
                SOURCE.id, f"INE.Stat line {line} has {len(row)} fields, not {len(header)}", snapshot
            )
        series = row[at["DTI_CL_INDICADOR"]].strip()
        if series not in flow.ine_stat:
            raise ParseError(
                SOURCE.id,
                f"INE.Stat series {series!r} is not one of {sorted(flow.ine_stat)} ({flow.id})",
                snapshot,
            )
        sex = {"_T": "T", "M": "M", "F": "F"}.get(row[at["DTI_CL_SEXO"]].strip())
        if sex is None:
            raise ParseError(SOURCE.id, f"INE.Stat line {line}: sex {row[at['DTI_CL_SEXO']]!r}", snapshot)
        start = _ine_stat_start(row[at["DTI_CL_TRIMESTRE_MOVIL"]], row[at["Trimestre Móvil"]], snapshot)
        records.append(
            {
                "series": flow.ine_stat[series],
                "indicator_code": series,
                "area_ref": _ine_stat_area(row[at["DTI_CL_REGION"]], snapshot),
                "sex": sex,
                "period": f"{start}/P3M",
                "period_start": start,
                "value": row[at["Value"]].strip(),
            }
        )
    frame = pd.DataFrame(records)
    if frame.empty:
        raise ParseError(SOURCE.id, f"INE.Stat export of {flow.id} has no rows", snapshot)
    frame["value"] = sdmx.observation_values(frame, SOURCE.id, snapshot, value="value")
    frame = frame.assign(
        dataflow=flow.id,
        measure=flow.measure,
        area_kind=flow.area,
        branch="",
        unit=flow.unit or "",
        obs_status="",
    )
    return frame[ENE_COLUMNS]

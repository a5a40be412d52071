"""Labour family: INE's labour force survey (ENE) over SDMX, into unemployment, participation and
women's share of mining employment by region, province and the country.

ine_ene: every dataflow's payload parsed (raw.ine_ene: all rows, both projection bases,
    conurbations), validated and gated (staging.ine_ene: base-2017 rows with their territory);
ine_ene_observations: rolling quarters, calendar semesters and years as core.observations.

Periods: a rolling quarter is `YYYY-MM/P3M` (its start month); a calendar semester
`YYYY-01/P6M` or `YYYY-07/P6M` and a year `YYYY` are built from the non-overlapping calendar
quarters (starting January, April, July, October) and only when all of them are there. Rates
average the quarters; women's share of mining employment divides the summed women by the summed
employed, so it is the share of the period's average employment.
"""

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
    asset,
    asset_check,
)

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
from pipelines.territories import load_resolver, territories
from sources import ine_ene
from sources.acquire import SAMPLES_DIR
from sources.base import ValidationError
from sources.endpoints import endpoints
from sources.territory_resolver import COUNTRY_ID
from warehouse import store

FAMILY = "labour"
SAMPLE_DIR = SAMPLES_DIR / "labour"
SOURCE = ine_ene.SOURCE

# Value gates: a rate outside its range, or a count beyond these, is more likely a unit change than a fact.
PLAUSIBLE = {"unemployment_rate": (0.0, 40.0), "participation_rate": (20.0, 90.0), "employed": (0.0, 2.0e6)}
NATIONAL_MINING_EMPLOYED = (20_000, 1_500_000)  # persons employed in mining, Chile
SEX_TOLERANCE = 0.01  # women + men vs both sexes, relative
REGIONS_TOLERANCE = 0.02  # sum of the 16 regions vs the country, relative
UNRELIABLE = "unreliable estimate (INE OBS_STATUS {codes})"

STAGING_COLUMNS = {
    "dataflow": "VARCHAR: INE dataflow id (DF_TDES_SEXO, DF_TDES_PROVINCIAS, DF_TP_SEXO, DF_OCURAMA_RAMA_SEXO, ...)",
    "measure": "VARCHAR: unemployment_rate, participation_rate or employed",
    "area_kind": "VARCHAR: region, province or conurbation (the dataflow's AREA_REF domain)",
    "area_ref": "VARCHAR: INE AREA_REF as published (bare number, _T = the country)",
    "territory_id": "VARCHAR: territory of the area (NULL for conurbations, which are not territories)",
    "sex": "VARCHAR: T (both sexes, INE AS), F or M",
    "branch": "VARCHAR: economic branch (RAMA; B = mining and quarrying), empty where the dataflow has none",
    "period": "VARCHAR: rolling quarter YYYY-MM/P3M (start month)",
    "period_start": "VARCHAR: first month of the quarter, YYYY-MM",
    "value": "DOUBLE: percent for rates; persons for employed (MULT applied)",
    "unit": "VARCHAR: INE UNIDAD code",
    "obs_status": "VARCHAR: INE OBS_STATUS (empty = reliable; a code = not classified reliable)",
    "snapshot_id": "VARCHAR: core.snapshots id of the dataflow's payload",
}

STAGING_SCHEMA = pa.DataFrameSchema(
    {
        "dataflow": pa.Column(str, pa.Check.isin([flow.id for flow in ine_ene.DATAFLOWS])),
        "measure": pa.Column(str, pa.Check.isin(list(ine_ene.MEASURES))),
        "area_kind": pa.Column(str, pa.Check.isin(list(ine_ene.AREA_KINDS))),
        "area_ref": pa.Column(str, pa.Check.str_matches(r"^(_T|[0-9A-Za-z_]{1,12})$")),
        "territory_id": pa.Column(str, nullable=True),
        "sex": pa.Column(str, pa.Check.isin(["T", "F", "M"])),
        "branch": pa.Column(str),
        "period": pa.Column(str, pa.Check.str_matches(r"^\d{4}-(0[1-9]|1[0-2])/P3M$")),
        "value": pa.Column(float, pa.Check.ge(0), nullable=True),
        "snapshot_id": pa.Column(str),
    },
    unique=["dataflow", "area_kind", "area_ref", "sex", "branch", "period"],
    strict=False,
    coerce=False,
)


def parse_payloads(acquired) -> pd.DataFrame:
    """Every dataflow's rows (`ine_ene.ENE_COLUMNS` plus snapshot_id), both series."""
    frames = []
    for item in acquired:
        payload = item.payload
        frame = ine_ene.parse_payload(payload.content, ine_ene.dataflow(payload.name), payload.snapshot_id)
        frames.append(frame.assign(snapshot_id=payload.snapshot_id))
    return pd.concat(frames, ignore_index=True)


def with_territories(frame: pd.DataFrame, resolver) -> pd.DataFrame:
    """territory_id per row: `_T` is the country, regions and provinces through the shared resolver.

    A code that names no territory of the division is refused by the resolver, by name.
    """
    frame = frame.copy()
    frame["territory_id"] = None
    for kind in ("region", "province"):
        rows = (frame["area_kind"] == kind) & (frame["area_ref"] != "_T")
        if rows.any():
            frame.loc[rows, "territory_id"] = resolver.resolve_series(
                frame.loc[rows, "area_ref"], kind, source=SOURCE.id, snapshot=_snapshot(frame, rows)
            ).to_numpy()
    frame.loc[(frame["area_kind"] != "conurbation") & (frame["area_ref"] == "_T"), "territory_id"] = (
        COUNTRY_ID
    )
    return frame


def _snapshot(frame: pd.DataFrame, rows) -> str:
    return ", ".join(sorted(frame.loc[rows, "snapshot_id"].unique()))


def _fail(problem: str, rows: pd.DataFrame) -> None:
    raise ValidationError(SOURCE.id, problem, ", ".join(sorted(rows["snapshot_id"].unique())))


def check_values(staging: pd.DataFrame) -> None:
    """Range gates per measure, and the national mining employment level."""
    bounds = staging["measure"].map(PLAUSIBLE)
    low, high = bounds.str[0], bounds.str[1]
    outside = staging[staging["value"].notna() & ((staging["value"] < low) | (staging["value"] > high))]
    if not outside.empty:
        examples = outside[["dataflow", "area_ref", "sex", "period", "value"]].head(5).to_dict("records")
        _fail(f"{len(outside)} value(s) outside plausible ranges (unit change?): {examples}", outside)
    mining = staging[
        (staging["measure"] == "employed") & (staging["area_ref"] == "_T") & (staging["sex"] == "T")
    ]
    low, high = NATIONAL_MINING_EMPLOYED
    wrong = mining[(mining["value"] < low) | (mining["value"] > high)]
    if not wrong.empty:
        examples = wrong[["period", "value"]].head(3).to_dict("records")
        _fail(
            f"national mining employment outside {low:,}-{high:,} persons (MULT or unit change?): {examples}",
            wrong,
        )


def check_sexes(staging: pd.DataFrame) -> None:
    """Women and men against both sexes: counts must add up, a rate must lie between the two.

    A payload with swapped or shifted columns passes range gates but fails here.
    """
    keys = ["dataflow", "area_kind", "area_ref", "branch", "period"]
    wide = staging.pivot_table(index=keys, columns="sex", values="value", aggfunc="first").dropna()
    if not {"T", "F", "M"} <= set(wide.columns) or wide.empty:
        return
    counts = wide.index.get_level_values("dataflow").map(lambda d: ine_ene.dataflow(d).measure) == "employed"
    added = (wide["F"] + wide["M"] - wide["T"]).abs() > SEX_TOLERANCE * wide["T"] + 1
    between = (wide["T"] < wide[["F", "M"]].min(axis=1) - 0.05) | (
        wide["T"] > wide[["F", "M"]].max(axis=1) + 0.05
    )
    bad = wide[(counts & added) | (~counts & between)]
    if not bad.empty:
        examples = bad.reset_index().head(3).round(3).to_dict("records")
        _fail(f"{len(bad)} estimate(s) where women, men and both sexes do not agree: {examples}", staging)


def check_regions_add_up(staging: pd.DataFrame) -> None:
    """Employed persons of the 16 regions against the country's, per branch, sex and quarter."""
    counts = staging[(staging["measure"] == "employed") & (staging["area_kind"] == "region")]
    if counts.empty:
        return
    keys = ["branch", "sex", "period"]
    regions = (
        counts[counts["area_ref"] != "_T"].groupby(keys).agg(total=("value", "sum"), n=("value", "size"))
    )
    country = counts[counts["area_ref"] == "_T"].set_index(keys)["value"]
    joined = regions.join(country, how="inner")
    joined = joined[joined["n"] == 16]
    bad = joined[(joined["total"] - joined["value"]).abs() > REGIONS_TOLERANCE * joined["value"]]
    if not bad.empty:
        examples = bad.reset_index().head(3).round(0).to_dict("records")
        _fail(f"the regions do not add up to the country ({len(bad)} case(s)): {examples}", staging)


def validate_staging(frame: pd.DataFrame) -> pd.DataFrame:
    staging = validate_frame(
        STAGING_SCHEMA, frame, SOURCE.id, ", ".join(sorted(frame["snapshot_id"].unique()))
    )
    check_values(staging)
    check_sexes(staging)
    check_regions_add_up(staging)
    return staging


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="INE ENE labour survey over SDMX: every dataflow's rows (raw.ine_ene) and the validated "
    "base-2017 estimates with their territories (staging.ine_ene).",
    metadata={**table_declaration(STAGING_COLUMNS, "staging.ine_ene"), "source": SOURCE.landing_url},
)
def ine_ene_survey(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(SOURCE.id, ine_ene.ENDPOINTS)
    requests = [(r, SAMPLE_DIR / f"{r.name}_SAMPLE.csv") for r in ine_ene.build_requests(urls)]
    acquirer, acquired = acquire_all(sources, SOURCE, requests)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {SOURCE: acquired}, metadata)) is not None:
        return same
    with refusing(warehouse, acquirer, {SOURCE: acquired}):
        raw = parse_payloads(acquired)
        with warehouse.reader() as conn:
            resolver = load_resolver(conn, SOURCE.id)
        current = raw[raw["series"] == ine_ene.BASE_2017]
        staging = validate_staging(with_territories(current, resolver)[list(STAGING_COLUMNS)])
    counts = publish(
        warehouse, acquirer, SOURCE, acquired, {("raw", "ine_ene"): raw, ("staging", "ine_ene"): staging}
    )
    unmapped = sorted(staging.loc[staging["territory_id"].isna(), "area_ref"].unique())
    if unmapped:
        context.log.info(f"ENE conurbations kept in staging only (not territories): {unmapped}")
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "conurbations_not_territories": unmapped},
    )


# --- observations ---------------------------------------------------------------------------------

CALENDAR_QUARTERS = ("01", "04", "07", "10")
# Period suffix after the year -> the calendar quarters (by start month) it is built from.
SPANS = {"": CALENDAR_QUARTERS, "-01/P6M": ("01", "04"), "-07/P6M": ("07", "10")}
OUT = ["indicator_id", "territory_id", "period", "value", "flag", "snapshot_id"]


def _flag(statuses) -> str | None:
    codes = sorted({code for s in statuses if isinstance(s, str) for code in s.split("/") if code})
    return UNRELIABLE.format(codes="/".join(codes)) if codes else None


def rolling_quarters(frame: pd.DataFrame) -> pd.DataFrame:
    """Each estimate as it is published: indicator x territory x YYYY-MM/P3M."""
    return frame.assign(flag=frame["obs_status"].map(lambda s: _flag([s])))[OUT]


def calendar_spans(frame: pd.DataFrame, **sums) -> pd.DataFrame:
    """Calendar quarters grouped into years and semesters (complete ones only), aggregated by `sums`."""
    month = frame["period_start"].str[5:7]
    out = []
    for suffix, months in SPANS.items():
        part = frame[month.isin(months)]
        part = part.assign(span=part["period_start"].str[:4] + suffix)
        grouped = part.groupby(["indicator_id", "territory_id", "span"], as_index=False).agg(
            n=("period", "nunique"), flag=("obs_status", _flag), snapshot_id=("snapshot_id", "max"), **sums
        )
        out.append(grouped[grouped["n"] == len(months)].rename(columns={"span": "period"}))
    return pd.concat(out, ignore_index=True)


def mining_women_share(mapped: pd.DataFrame) -> pd.DataFrame:
    """Women's share of mining employment (percent): per rolling quarter, then per year and semester
    as summed women over summed employed."""
    mining = mapped[(mapped["measure"] == "employed") & (mapped["branch"] == "B")]
    keys = ["territory_id", "period", "period_start"]
    wide = mining.pivot_table(index=keys, columns="sex", values="value", aggfunc="first")
    wide = wide.join(
        mining.groupby(keys).agg(obs_status=("obs_status", "/".join), snapshot_id=("snapshot_id", "max"))
    )
    wide = wide.dropna(subset=["F", "T"]).reset_index().assign(indicator_id="ene_mining_women_share")
    wide["value"] = 100 * wide["F"] / wide["T"]
    spans = calendar_spans(wide, F=("F", "sum"), T=("T", "sum"))
    spans["value"] = 100 * spans["F"] / spans["T"]
    return pd.concat([rolling_quarters(wide), spans[OUT]], ignore_index=True)


INDICATOR_OF = {
    ("unemployment_rate", "T"): "ene_unemployment_rate",
    ("unemployment_rate", "F"): "ene_unemployment_rate_women",
    ("unemployment_rate", "M"): "ene_unemployment_rate_men",
    ("participation_rate", "T"): "ene_participation_rate",
    ("participation_rate", "F"): "ene_participation_rate_women",
    ("participation_rate", "M"): "ene_participation_rate_men",
}


def ene_observations(staging: pd.DataFrame) -> pd.DataFrame:
    """core.observations rows of every ENE indicator (territories only; conurbations stay in staging)."""
    mapped = staging[staging["territory_id"].notna() & staging["value"].notna()]
    rates = mapped[mapped["measure"] != "employed"].copy()
    rates["indicator_id"] = [INDICATOR_OF[key] for key in zip(rates["measure"], rates["sex"], strict=True)]
    mining = mapped[(mapped["measure"] == "employed") & (mapped["branch"] == "B") & (mapped["sex"] == "T")]
    employed = mining.assign(indicator_id="ene_mining_employed")
    parts = [rolling_quarters(rates), rolling_quarters(employed), mining_women_share(mapped)]
    parts += [calendar_spans(frame, value=("value", "mean"))[OUT] for frame in (rates, employed)]
    frame = pd.concat(parts, ignore_index=True)
    frame["lower"] = frame["upper"] = float("nan")
    frame["source_id"] = SOURCE.id
    return frame[store.OBSERVATION_COLUMNS].sort_values(
        ["indicator_id", "territory_id", "period"], ignore_index=True
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[ine_ene_survey, territories],
    description="ENE indicators as core.observations: rolling quarters, calendar semesters and years.",
)
def ine_ene_observations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, SOURCE) as conn:
        staging = conn.execute("SELECT * FROM staging.ine_ene").df()
        frame = ene_observations(staging)
        store.record_indicators(conn, load_indicators(FAMILY))
        rows = write_tables(conn, SOURCE.id, {("core", "observations"): frame})["core.observations"]
    return MaterializeResult(
        metadata={"observations": rows, "indicators": int(frame["indicator_id"].nunique())}
    )


@asset_check(
    asset=ine_ene_survey, description="Every region and province code of the ENE maps to a territory."
)
def ine_ene_areas_known(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        unmapped = conn.execute(
            "SELECT DISTINCT area_kind, area_ref FROM staging.ine_ene "
            "WHERE territory_id IS NULL AND area_kind <> 'conurbation' ORDER BY ALL"
        ).fetchall()
    return AssetCheckResult(passed=not unmapped, metadata={"unmapped": [f"{k}:{r}" for k, r in unmapped]})


@asset_check(
    asset=ine_ene_survey, description="Share of estimates INE does not classify as reliable (OBS_STATUS set)."
)
def ine_ene_reliability(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        total, flagged = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE obs_status <> '') FROM staging.ine_ene"
        ).fetchone()
    return AssetCheckResult(passed=True, metadata={"estimates": total, "not_reliable": flagged})


labour_job = refresh_job("labour_refresh", [ine_ene_survey, ine_ene_observations], "INE's ENE labour survey")
labour_schedule = refresh_schedule(
    labour_job, "0 7 5 * *", "labour_monthly", "the ENE publishes a moving quarter every month"
)

ASSETS = [ine_ene_survey, ine_ene_observations]
CHECKS = [ine_ene_areas_known, ine_ene_reliability]
JOBS = [labour_job]
SCHEDULES = [labour_schedule]
OBSERVATION_ASSETS = [ine_ene_observations]

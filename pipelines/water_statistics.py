"""Flow statistics of a gauge (change between periods, trend, coverage) and the basin observations
of the representative gauges.

When CAMELS-CL and CR2 both have a value for the same gauge-day, the statistics use the
CAMELS-CL one (SOURCE_PRIORITY, see docs/water.md); both rows stay in core.daily_flows.
"""

import numpy as np
import pandas as pd
from dagster import Config

from methods import hydrology
from sources import camels_cl, cr2_streamflow
from warehouse import store

# Lower number wins a gauge-day both sources cover: CAMELS-CL v202201 is the later,
# quality-controlled cut of the same DGA records and runs to 2020; CR2 2018 fills the rest.
SOURCE_PRIORITY = {camels_cl.SOURCE.id: 1, cr2_streamflow.SOURCE.id: 2}

# Documented choice of the gauge that stands for a basin (docs/water.md). Basins not listed
# get the gauge inside them with the most complete years in the two periods.
REPRESENTATIVE_GAUGES = {"021": "02104002"}  # Loa: Río Loa en Salida Embalse Conchi

PREFERRED_SERIES_SQL = """
SELECT "date", flow_m3s, source_id FROM core.daily_flows WHERE gauge_code = ?
QUALIFY row_number() OVER (PARTITION BY "date" ORDER BY CASE source_id {cases} END) = 1
ORDER BY "date"
"""


def _priority_cases() -> str:
    # Constant source ids from this module, not user input.
    return " ".join(f"WHEN '{source}' THEN {rank}" for source, rank in SOURCE_PRIORITY.items())


class WaterConfig(Config):
    """Periods and completeness rule of the flow statistics (defaults from methods.hydrology)."""

    reference_start: int = hydrology.DEFAULT_REFERENCE[0]
    reference_end: int = hydrology.DEFAULT_REFERENCE[1]
    recent_start: int = hydrology.DEFAULT_RECENT[0]
    recent_end: int = hydrology.DEFAULT_RECENT[1]
    min_coverage: float = hydrology.DEFAULT_MIN_COVERAGE
    representative_gauges: dict[str, str] = REPRESENTATIVE_GAUGES


def gauge_statistics(conn, gauge_code: str, config: WaterConfig) -> tuple[dict, list[dict]]:
    """The gauge's preferred daily series → (indicator row, annual-mean rows)."""
    series = conn.execute(PREFERRED_SERIES_SQL.format(cases=_priority_cases()), [gauge_code]).df()
    dates, flows = series["date"].to_numpy(), series["flow_m3s"].to_numpy(dtype=float)
    reference, recent = (
        (config.reference_start, config.reference_end),
        (config.recent_start, config.recent_end),
    )
    years = hydrology.annual_means(dates, flows, config.min_coverage)
    change = hydrology.mean_annual_flow_change(dates, flows, reference, recent, config.min_coverage)
    trend = hydrology.annual_trend(years, config.reference_start, config.recent_end)
    cov_ref = hydrology.coverage(dates, flows, f"{reference[0]}-01-01", f"{reference[1]}-12-31")
    cov_rec = hydrology.coverage(dates, flows, f"{recent[0]}-01-01", f"{recent[1]}-12-31")
    counts = series["source_id"].value_counts()
    main_source = counts.index[0] if len(counts) else None
    row = {
        "gauge_code": gauge_code,
        "reference_start": reference[0],
        "reference_end": reference[1],
        "recent_start": recent[0],
        "recent_end": recent[1],
        "reference_mean_m3s": change.reference_mean,
        "recent_mean_m3s": change.recent_mean,
        "reference_complete_years": change.reference_complete_years,
        "recent_complete_years": change.recent_complete_years,
        "change_m3s": change.absolute_change,
        "change_pct": None if change.relative_change is None else 100 * change.relative_change,
        "trend_years": trend.n,
        "sen_slope_m3s_per_year": trend.slope,
        "mk_s": trend.s,
        "mk_z": trend.z if trend.n >= 3 else None,
        "mk_p_value": trend.p_value if trend.n >= 3 else None,
        "coverage_reference": cov_ref.share,
        "coverage_recent": cov_rec.share,
        "min_coverage": config.min_coverage,
        "source_id": main_source,
    }
    annual = [
        {
            "gauge_code": gauge_code,
            "year": y.year,
            "mean_m3s": y.mean,
            "days_with_data": y.days_with_data,
            "coverage": y.coverage,
            "complete": y.complete,
        }
        for y in years
    ]
    return row, annual


def choose_representatives(gauges: pd.DataFrame, configured: dict[str, str]) -> dict[str, str]:
    """basin_id → gauge: the configured gauge when it lies in the basin, else the best covered."""
    chosen = {}
    located = gauges[gauges["basin_id"].notna()]
    for basin_id, members in located.groupby("basin_id"):
        wanted = configured.get(basin_id.split(":", 1)[1])
        if wanted in set(members["gauge_code"]):
            chosen[basin_id] = wanted
            continue
        ranked = members.assign(
            years=members["reference_complete_years"] + members["recent_complete_years"],
            area=members["area_km2"].fillna(-1),
        ).sort_values(["years", "area", "gauge_code"], ascending=[False, False, True])
        if ranked.iloc[0]["years"] > 0:
            chosen[basin_id] = ranked.iloc[0]["gauge_code"]
    return chosen


def basin_observations(indicators: pd.DataFrame, annual: pd.DataFrame, config: WaterConfig) -> pd.DataFrame:
    """core.observations rows of the representative gauges, one basin each."""
    ref = f"{config.reference_start}-{config.reference_end}"
    rec = f"{config.recent_start}-{config.recent_end}"
    window = f"{config.reference_start}-{config.recent_end}"
    rows = []
    for r in indicators[indicators["is_representative"]].itertuples():
        flag = f"gauge {r.gauge_code}"
        few = r.reference_complete_years < 10 or r.recent_complete_years < 10
        base = {"territory_id": r.basin_id, "source_id": r.source_id, "snapshot_id": r.snapshot_id}
        values = [
            (
                "water_mean_annual_flow_change_pct",
                f"{ref} to {rec}",
                r.change_pct,
                flag + ("; few complete years" if few else ""),
            ),
            (
                "water_mean_annual_flow_reference",
                ref,
                r.reference_mean_m3s,
                f"{flag}; {r.reference_complete_years} complete years",
            ),
            (
                "water_mean_annual_flow_recent",
                rec,
                r.recent_mean_m3s,
                f"{flag}; {r.recent_complete_years} complete years",
            ),
            (
                "water_annual_flow_trend_sen",
                window,
                r.sen_slope_m3s_per_year,
                f"{flag}; {r.trend_years} complete years",
            ),
            ("water_annual_flow_trend_mk_p", window, r.mk_p_value, flag),
            ("water_flow_coverage", ref, r.coverage_reference, flag),
            ("water_flow_coverage", rec, r.coverage_recent, flag),
        ]
        rows += [{**base, "indicator_id": i, "period": p, "value": v, "flag": f} for i, p, v, f in values]
        series = annual[(annual["gauge_code"] == r.gauge_code) & annual["complete"]]
        rows += [
            {
                **base,
                "indicator_id": "water_annual_mean_flow",
                "period": str(y.year),
                "value": y.mean_m3s,
                "flag": flag,
            }
            for y in series.itertuples()
        ]
    frame = pd.DataFrame(rows, columns=[*store.OBSERVATION_COLUMNS])
    frame["lower"] = np.nan
    frame["upper"] = np.nan
    frame["value"] = pd.to_numeric(frame["value"]).astype(float)
    return frame[frame["value"].notna()].reset_index(drop=True)

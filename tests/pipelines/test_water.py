"""Water family end to end on the SAMPLE streamflow payloads (offline), with every checked
figure recomputed here from the sample CSVs with the csv module and plain Python."""

import calendar
import csv
import itertools
import statistics

import pytest
from dagster import materialize

from pipelines import territories, water
from pipelines.resources import SourcesResource, WarehouseResource
from sources import dga_basins
from warehouse import db

SAMPLE_GAUGE = "02104002"


def _run(assets):
    return materialize(
        assets,
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


def _ensure_sample_basins():
    """Basin polygons come from the territories family; seed the SAMPLE basin zip if it wrote none."""
    with db.writer() as conn:
        if conn.execute("SELECT count(*) FROM core.territories WHERE kind = 'basin'").fetchone()[0]:
            return
        basins = dga_basins.parse_basins(dga_basins.SAMPLE_DIR / dga_basins.SAMPLE_ARCHIVE_NAME)
        for row in basins.itertuples():
            conn.execute(
                "INSERT INTO core.territories VALUES (?, 'basin', ?, ?, NULL, ?, ST_GeomFromWKB(?), 'SAMPLE')",
                [f"basin:{row.basin_code}", row.basin_code, row.basin_name, row.area_km2, row.geometry.wkb],
            )


def _preferred_series(code: str) -> dict[str, float]:
    """CAMELS-CL value of each day, else the CR2 one (the documented precedence), from the CSVs."""
    series = {}
    with open(water.CR2_SAMPLE, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        column = next(reader).index(code.lstrip("0"))
        for row in reader:
            if row[0][:1].isdigit() and row[0][4:5] == "-" and row[column] != "-9999":
                series[row[0]] = float(row[column])
    with open(water.CAMELS_SAMPLE, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row[code.lstrip("0")] not in ("NA", ""):
                series[row["date"]] = float(row[code.lstrip("0")])
    return series


def _complete_year_means(series: dict[str, float]) -> dict[int, float]:
    by_year = {}
    for day, flow in series.items():
        by_year.setdefault(int(day[:4]), []).append(flow)
    return {
        year: sum(values) / len(values)
        for year, values in by_year.items()
        if len(values) / (366 if calendar.isleap(year) else 365) >= 0.8
    }


@pytest.fixture()
def offline_warehouse(warehouse_env, monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    assert _run(territories.ASSETS).success
    _ensure_sample_basins()
    result = _run(water.ASSETS)
    assert result.success
    return result


def test_offline_sample_gives_loa_change_and_trend(offline_warehouse):
    with db.reader() as conn:
        modes = dict(
            conn.execute(
                "SELECT s.source_id, s.mode FROM core.source_status st "
                "JOIN core.snapshots s ON s.snapshot_id = st.last_snapshot_id"
            ).fetchall()
        )
        observations = dict(
            conn.execute(
                "SELECT o.indicator_id, o.value FROM core.observations o JOIN core.snapshots s USING (snapshot_id) "
                "WHERE o.territory_id = 'basin:021' AND s.mode = 'sample' AND o.indicator_id IN "
                "('water_mean_annual_flow_change_pct', 'water_annual_flow_trend_sen', 'water_annual_flow_trend_mk_p')"
            ).fetchall()
        )
        years = conn.execute(
            "SELECT count(*) FROM core.observations WHERE territory_id = 'basin:021' "
            "AND indicator_id = 'water_annual_mean_flow'"
        ).fetchone()[0]
        loa = conn.execute(
            "SELECT gauge_code, basin_id FROM core.gauges WHERE gauge_code IN ('02104002', '02120001', '02105001')"
        ).fetchall()
        negative = conn.execute("SELECT count(*) FROM core.daily_flows WHERE flow_m3s < 0").fetchone()[0]
        both = conn.execute(
            "SELECT count(*) FROM (SELECT gauge_code, date FROM core.daily_flows GROUP BY ALL HAVING count(*) = 2)"
        ).fetchone()[0]
    assert modes == {"camels_cl": "sample", "cr2_streamflow": "sample"}
    assert set(observations) == {
        "water_mean_annual_flow_change_pct",
        "water_annual_flow_trend_sen",
        "water_annual_flow_trend_mk_p",
    }
    assert 0 <= observations["water_annual_flow_trend_mk_p"] <= 1
    assert years == len(
        [y for y in _complete_year_means(_preferred_series(SAMPLE_GAUGE)) if 1976 <= y <= 2020]
    )
    assert sorted(loa) == [("02104002", "basin:021"), ("02105001", "basin:021"), ("02120001", "basin:021")]
    assert negative == 0
    assert both > 0  # CR2 and CAMELS-CL rows of the same gauge-day both kept


def test_trend_and_change_match_an_independent_computation(offline_warehouse):
    means = _complete_year_means(_preferred_series(SAMPLE_GAUGE))
    window = sorted(y for y in means if 1976 <= y <= 2020)
    slopes = [(means[b] - means[a]) / (b - a) for a, b in itertools.combinations(window, 2)]
    expected_slope = statistics.median(slopes)
    reference = statistics.fmean(means[y] for y in window if y <= 1995)
    recent = statistics.fmean(means[y] for y in window if y >= 2001)
    with db.reader() as conn:
        slope, change, n = conn.execute(
            "SELECT sen_slope_m3s_per_year, change_pct, trend_years FROM core.gauge_indicators "
            "WHERE gauge_code = ?",
            [SAMPLE_GAUGE],
        ).fetchone()
        observed = conn.execute(
            "SELECT value FROM core.observations WHERE territory_id = 'basin:021' "
            "AND indicator_id = 'water_annual_flow_trend_sen'"
        ).fetchone()[0]
    assert n == len(window)
    assert slope == pytest.approx(expected_slope, rel=1e-9)
    assert observed == pytest.approx(expected_slope, rel=1e-9)
    assert change == pytest.approx(100 * (recent - reference) / reference, rel=1e-9)


def test_basin_comparison_puts_the_loa_beside_peers(offline_warehouse):
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT basin_code, gauge_code, change_pct, sen_slope_m3s_per_year, mk_p_value, coverage_recent, mode "
            "FROM marts.basin_comparison WHERE basin_code IN ('021', '025', '034', '038', '043', '045', '057') "
            "ORDER BY basin_code"
        ).fetchall()
    by_basin = {r[0]: r for r in rows}
    assert by_basin["021"][1] == SAMPLE_GAUGE
    assert by_basin["021"][2] is not None and by_basin["021"][6] == "sample"
    assert len(by_basin) > 1  # at least one peer basin listed beside the Loa

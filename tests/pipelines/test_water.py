"""Water family end to end on the SAMPLE streamflow payloads (offline), with every checked
figure recomputed here from the sample CSVs with the csv module and plain Python."""

import calendar
import csv
import io
import itertools
import statistics
import zipfile

import pytest
from dagster import materialize

from pipelines import territories, water, water_macrobasins, water_streamflow
from pipelines.resources import SourcesResource, WarehouseResource
from sources import dga_basins
from tests.support.http import Reply
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
    with open(water_streamflow.CR2_SAMPLE, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        column = next(reader).index(code.lstrip("0"))
        for row in reader:
            if row[0][:1].isdigit() and row[0][4:5] == "-" and row[column] != "-9999":
                series[row[0]] = float(row[column])
    with open(water_streamflow.CAMELS_SAMPLE, encoding="utf-8", newline="") as handle:
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
                "JOIN core.snapshots s ON s.snapshot_id = st.last_snapshot_id "
                "WHERE st.source_id IN ('camels_cl', 'cr2_streamflow')"
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


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


# Invented attribute rows in the CAMELS-CL v202201 row-wise layout (SAMPLE values, real codes).
SAMPLE_ATTRIBUTES = (
    "gauge_id,gauge_name,gauge_lat,gauge_lon,area,elev_gauge,interv_degree,big_dam\n"
    "2104002,Rio Loa En Salida Embalse Conchi SAMPLE,-22.03,-68.62,2158.0,2950,0.5,1\n"
    "3421001,Rio Manflas En Vertedero SAMPLE,-28.15,-69.98,1100.0,1550,0.1,0\n"
)
# Invented stations rows in the layout of cr2_qflxDaily_2018_stations.txt (SAMPLE values).
SAMPLE_STATIONS = (
    "codigo_estacion,institucion,fuente,nombre,altura,latitud,longitud,codigo_cuenca,nombre_cuenca,"
    "codigo_sub_cuenca,nombre_sub_cuenca,inicio_observaciones,fin_observaciones,cantidad_observaciones,"
    "inicio_automatica\n"
    "2104002,DGA,SAMPLE,Rio Loa SAMPLE,2950,-22.03,-68.62,21,Rio Loa,210,A,1976-01-01,2017-07-31,14418,-\n"
    "2120001,DGA,SAMPLE,Rio Loa Desembocadura SAMPLE,0,-21.42,-70.05,21,Rio Loa,212,B,1989-10-05,2017-07-31,9703,-\n"
    "2105001,DGA,SAMPLE,Rio Salado SAMPLE,3080,-22.28,-68.24,21,Rio Loa,210,A,1976-01-01,2017-07-31,14377,-\n"
)


def test_live_release_zips_through_the_wpdm_page(warehouse_env, http_server, monkeypatch):
    camels_zip = _zip(
        {
            "q_m3s_day.csv": water_streamflow.CAMELS_SAMPLE.read_bytes(),
            "catchment_attributes.csv": SAMPLE_ATTRIBUTES.encode(),
        }
    )
    cr2_zip = _zip(
        {
            "cr2_qflxdaily_2018.csv": water_streamflow.CR2_SAMPLE.read_bytes(),
            "cr2_qflxdaily_2018_stations.txt": SAMPLE_STATIONS.encode(),
        }
    )
    http_server.script("/camels.zip", Reply(200, camels_zip, {"Content-Type": "application/zip"}))
    http_server.script("/cr2/zip", Reply(200, cr2_zip, {"Content-Type": "application/zip"}))
    page = f'<html><a href="{http_server.url("/cr2/zip")}?wpdmdl=77">cr2_qflxdaily_2018.zip</a></html>'
    http_server.script("/cr2/page", Reply(200, page.encode(), {"Content-Type": "text/html"}))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__CAMELS_CL__V202201_ZIP", http_server.url("/camels.zip"))
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__CR2_STREAMFLOW__QFLX_DAILY_2018_PAGE", http_server.url("/cr2/page")
    )
    assert _run(territories.ASSETS).success
    _ensure_sample_basins()
    assert _run(water.ASSETS).success
    with db.reader() as conn:
        modes = dict(
            conn.execute(
                "SELECT st.source_id, st.status FROM core.source_status st WHERE st.source_id IN "
                "('camels_cl', 'cr2_streamflow')"
            ).fetchall()
        )
        gauges = {
            r[0]: r[1:]
            for r in conn.execute("SELECT gauge_code, area_km2, lat, basin_id FROM core.gauges").fetchall()
        }
    assert modes == {"camels_cl": "live", "cr2_streamflow": "live"}
    assert gauges["02104002"] == (2158.0, -22.03, "basin:021")
    assert gauges["03421001"][1] == -28.15  # CAMELS-only gauge located from the attributes table
    assert gauges["02120001"][2] == "basin:021"


# --- macro-basin annual outlet flows ---------------------------------------------------------


def _macrobasin_sample_rows() -> list[dict[str, str]]:
    with open(water_macrobasins.MACROBASIN_SAMPLE, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float | None:
    return None if text == "NA" else float(text)


def test_macrobasin_sample_lands_in_staging_row_for_row(offline_warehouse):
    expected = sorted(
        (
            r["gauge_id"].zfill(8),
            r["gauge_name"],
            int(r["date"][:4]),
            _number(r["qobs_m3s_yr"]),
            _number(r["qsim_m3s_yr"]),
            r["sim_short_name"],
        )
        for r in _macrobasin_sample_rows()
    )
    with db.reader() as conn:
        staged = conn.execute(
            "SELECT gauge_code, gauge_name, year, qobs_m3s, qsim_m3s, experiment "
            "FROM staging.camelscl_macrobasins_yr ORDER BY ALL"
        ).fetchall()
        modes = {
            r[0]
            for r in conn.execute(
                "SELECT s.mode FROM core.snapshots s JOIN staging.camelscl_macrobasins_yr t USING (snapshot_id)"
            ).fetchall()
        }
        status = conn.execute(
            "SELECT mode FROM core.source_status WHERE source_id = 'camels_cl_macrobasins'"
        ).fetchone()
        # Offline the SAMPLE gauge catalogue locates none of the macro-basin outlets: no observation.
        observations = conn.execute(
            "SELECT count(*) FROM core.observations WHERE indicator_id = 'water_outlet_annual_flow_observed'"
        ).fetchone()[0]
    assert staged == expected
    assert any(row[3] is None for row in staged)  # the SAMPLE's NA years stay NULL
    assert modes == {"sample"} and status == ("sample",)
    assert observations == 0


def test_macrobasin_gauge_is_placed_by_geometry_not_code_prefix(offline_warehouse):
    # A test-only location for 03453001 (code prefix 034) inside another basin's polygon:
    # the observations must follow the polygon.
    with db.writer() as conn:
        basin, lon, lat = conn.execute(
            "SELECT territory_id, ST_X(p), ST_Y(p) FROM (SELECT territory_id, ST_PointOnSurface(geometry) AS p "
            "FROM core.territories WHERE kind = 'basin' AND geometry IS NOT NULL AND code <> '034' "
            "ORDER BY ST_Area(geometry) LIMIT 1)"
        ).fetchone()
        conn.execute("INSERT INTO core.gauges (gauge_code, lat, lon) VALUES ('03453001', ?, ?)", [lat, lon])
    assert _run([water.macrobasin_annual_flows]).success
    expected = {
        r["date"][:4]: float(r["qobs_m3s_yr"])
        for r in _macrobasin_sample_rows()
        if r["gauge_id"] == "3453001" and r["qobs_m3s_yr"] != "NA"
    }
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT territory_id, period, value, source_id FROM core.observations "
            "WHERE indicator_id = 'water_outlet_annual_flow_observed'"
        ).fetchall()
    assert {r[0] for r in rows} == {basin}
    assert {r[1]: r[2] for r in rows} == expected
    assert {r[3] for r in rows} == {"camels_cl_macrobasins"}

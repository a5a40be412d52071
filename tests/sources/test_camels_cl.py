"""CAMELS-CL: the transposed attributes (real 2018 CSV, read in place), the v202201 and 2018
daily layouts (SAMPLE files and fixtures written here in the real wire formats)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from datetime import date
from pathlib import Path

import duckdb
import pytest

from sources import camels_cl
from sources.base import ParseError
from warehouse import long_rows

ATTRIBUTES = "streamflow/camelscl_attributes_2018-04-24_baseflowchile.csv"
SAMPLE_DAILY = (
    Path(camels_cl.__file__).resolve().parent / "samples" / "streamflow" / "camelscl_q_m3s_day_SAMPLE.csv"
)

# PROVENANCE 1a: Loa-basin gauges in the 2018 attributes, and those with a non-NA q_mean.
LOA_GAUGES = [
    "2101001", "2103001", "2103002", "2103003", "2103014", "2104002", "2104003", "2104013", "2105001",
    "2105002", "2105005", "2105007", "2110001", "2110002", "2110004", "2110031", "2112005", "2112006",
    "2112007", "2113001", "2120001",
]  # fmt: skip
WITH_Q_MEAN = {
    "2101001",
    "2103001",
    "2103002",
    "2104002",
    "2105001",
    "2105002",
    "2110004",
    "2120001",
    "2510001",
}


def _raw_attributes(path: Path) -> dict[str, dict[str, str]]:
    """Independent reading with the csv module: attribute -> {stripped gauge id -> raw cell}."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    ids = [cell.strip() for cell in rows[0][1:]]
    return {row[0]: dict(zip(ids, row[1:], strict=True)) for row in rows[1:]}


def _number(cell: str) -> float | None:
    return None if cell.strip() == "NA" else float(cell)


# --- attributes ------------------------------------------------------------------------------


def test_real_2018_attributes_one_row_per_gauge(shared_data):
    path = shared_data / ATTRIBUTES
    frame = camels_cl.parse_camels_attributes(path)
    raw = _raw_attributes(path)

    assert len(frame) == len(raw["gauge_name"]) == 516
    assert frame["gauge_code"].str.fullmatch(r"\d{8}").all() and frame["gauge_code"].is_unique
    by_code = frame.set_index("gauge_code")
    assert {g.zfill(8) for g in LOA_GAUGES} <= set(by_code.index)
    loa_with_q = {g for g in [*LOA_GAUGES, "2510001"] if not pd_isna(by_code.loc[g.zfill(8), "q_mean_mm_d"])}
    assert loa_with_q == WITH_Q_MEAN

    for column, attribute in [
        ("area_km2", "area"),
        ("lat", "gauge_lat"),
        ("lon", "gauge_lon"),
        ("interv_degree", "interv_degree"),
        ("sur_rights_n", "sur_rights_n"),
        ("sur_rights_flow_m3s", "sur_rights_flow"),
        ("gw_rights_n", "gw_rights_n"),
        ("gw_rights_flow_m3s", "gw_rights_flow"),
        ("q_mean_mm_d", "q_mean"),
    ]:
        expected = {gauge.zfill(8): _number(cell) for gauge, cell in raw[attribute].items()}
        got = frame.set_index("gauge_code")[column]
        assert got.isna().sum() == sum(v is None for v in expected.values()), column
        for code, value in expected.items():
            if value is not None:
                assert got[code] == value, (column, code)

    conchi = by_code.loc["02104002"]
    assert conchi["name"] == "Rio Loa En Salida Embalse Conchi"
    assert conchi["area_km2"] == 5561.22179  # the cell is "' 5561.22179'", left-padded
    # This early release carries neither big_dam nor a record period.
    assert frame["big_dam"].isna().all() and frame["record_period_start"].isna().all()


def pd_isna(value) -> bool:
    return value != value


def _edit_rows(path: Path, edit) -> bytes:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    edit(rows)
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def test_duplicated_attribute_rows_must_agree(shared_data):
    def disagree(rows):
        row = next(r for r in rows if r[0] == "gw_rights_flow.1")
        row[34] = "99.0"

    with pytest.raises(ParseError, match=r"gw_rights_flow\.1"):
        camels_cl.parse_camels_attributes(_edit_rows(shared_data / ATTRIBUTES, disagree))


def test_missing_required_attribute_is_named(shared_data):
    def rename(rows):
        next(r for r in rows if r[0] == "gauge_lat")[0] = "latitude"

    with pytest.raises(ParseError, match="gauge_lat"):
        camels_cl.parse_camels_attributes(_edit_rows(shared_data / ATTRIBUTES, rename))


def test_row_wise_v202201_attributes_layout():
    text = (
        "gauge_id,gauge_name,gauge_lat,gauge_lon,area_km2,big_dam,interv_degree,record_period_start,record_period_end\n"
        "2104002,Rio Loa En Salida Embalse Conchi,-22.0278,-68.6208,5561.2,1,0.10,1976-02-12,2021-06-22\n"
        "3421001,Rio Manflas En Vertedero,-28.1489,-69.9909,983.9,0,NA,1976-01-01,2021-06-22\n"
    )
    frame = camels_cl.parse_camels_attributes(text.encode()).set_index("gauge_code")
    assert frame.loc["02104002", "big_dam"] == 1.0
    assert frame.loc["02104002", "record_period_start"] == date(1976, 2, 12)
    assert pd_isna(frame.loc["03421001", "interv_degree"])
    assert frame.loc["03421001", "area_km2"] == 983.9


# --- daily flows ---------------------------------------------------------------------------------


def _csv_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        codes = [c.strip().zfill(8) for c in next(rows)[4:]]
        for row in rows:
            for code, cell in zip(codes, row[4:], strict=True):
                counts[code] += cell not in ("NA", "")
    return dict(counts)


def test_sample_daily_parses_in_the_real_layout(tmp_path):
    frame = camels_cl.parse_camels_daily(SAMPLE_DAILY, tmp_path)
    assert list(frame.columns) == ["gauge_code", "date", "flow_m3s"]
    assert frame.groupby("gauge_code").size().to_dict() == _csv_counts(SAMPLE_DAILY)
    with SAMPLE_DAILY.open(newline="") as handle:
        first = next(r for r in csv.DictReader(handle) if r["2104002"] != "NA")
    row = frame[(frame["gauge_code"] == "02104002") & (frame["date"] == first["date"])]
    assert row["flow_m3s"].tolist() == [float(first["2104002"])]


def test_load_streams_into_a_quoted_caller_table():
    conn = duckdb.connect()
    sql = camels_cl.load_camels_daily_sql(SAMPLE_DAILY)
    written = long_rows.load(conn, sql, "q long; DROP", camels_cl.SOURCE.id)
    assert written == sum(_csv_counts(SAMPLE_DAILY).values())
    assert conn.execute('SELECT count(DISTINCT gauge_code) FROM "q long; DROP"').fetchone()[0] == 6
    assert "read_csv(" in sql and "UNPIVOT" in sql


def test_every_missing_marker_and_code_form(tmp_path):
    path = tmp_path / "q_m3s_day.csv"
    path.write_text(
        "date,year,month,day, 2104002,02120001,2105001\n"
        "2000-01-01,2000,1,1,NA,-9999,0.25\n"
        '2000-01-02,2000,1,2,1.5," ",\n'
        "2000-01-03,2000,1,3,0,NA,NA\n",
        encoding="utf-8",
    )
    frame = camels_cl.parse_camels_daily(path, tmp_path / "work")
    rows = sorted(zip(frame["gauge_code"], frame["date"].dt.date, frame["flow_m3s"], strict=True))
    assert rows == [
        ("02104002", date(2000, 1, 2), 1.5),
        ("02104002", date(2000, 1, 3), 0.0),
        ("02105001", date(2000, 1, 1), 0.25),
    ]


def test_renamed_date_column_fails_naming_it(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("fecha,year,month,day,2104002\n2000-01-01,2000,1,1,1.0\n", encoding="utf-8")
    with pytest.raises(ParseError, match="'date'"):
        camels_cl.parse_camels_daily(path, tmp_path)


def test_unknown_column_fails_naming_it(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("date,year,month,day,2104002,quality_flag\n2000-01-01,2000,1,1,1.0,A\n", encoding="utf-8")
    with pytest.raises(ParseError, match="quality_flag"):
        camels_cl.parse_camels_daily(path, tmp_path)


def test_pangaea_2018_tab_separated_quoted_layout(tmp_path):
    # The 2018 PANGAEA matrix: tab-separated, every value quoted, " " for missing, ids with a
    # leading space; label rows between the header and the first day, as the 2018 readme lists.
    lines = [
        ["gauge_id", " 2104002", " 2120001"],
        ["gauge_name", "Rio Loa En Salida Embalse Conchi", "Rio Loa En Desembocadura"],
        ["gauge_lat", "-22.0278", "-21.4247"],
        ["start_obs", "1976-02-12", "1989-10-05"],
        ["1989-10-04", "   0.712", " "],
        ["1989-10-05", " ", "  0.431"],
        ["1989-10-06", "0.7", "0.44"],
    ]
    path = tmp_path / "2_CAMELScl_streamflow_m3s.txt"
    path.write_text("\n".join("\t".join(f'"{c}"' for c in line) for line in lines) + "\n", encoding="utf-8")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(path, "2_CAMELScl_streamflow_m3s/2_CAMELScl_streamflow_m3s.txt")
    extracted = camels_cl.daily_2018_txt_file(archive.getvalue(), tmp_path / "work")
    frame = camels_cl.parse_camels2018_daily(extracted)
    rows = sorted(zip(frame["gauge_code"], frame["date"].dt.date, frame["flow_m3s"], strict=True))
    assert rows == [
        ("02104002", date(1989, 10, 4), 0.712),
        ("02104002", date(1989, 10, 6), 0.7),
        ("02120001", date(1989, 10, 5), 0.431),
        ("02120001", date(1989, 10, 6), 0.44),
    ]


def test_v202201_zip_member_is_streamed_out(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.write(SAMPLE_DAILY, "CAMELS_CL_v202201/q_m3s_day.csv")
        bundle.writestr("CAMELS_CL_v202201/q_mm_day.csv", "date,year,month,day,2104002\n")
    path = camels_cl.daily_csv_file(archive.getvalue(), tmp_path)
    assert path.read_bytes() == SAMPLE_DAILY.read_bytes()


def test_requests_are_built_from_the_endpoints_passed_in():
    mirror = {name: f"file:///mirror/{name}.zip" for name in camels_cl.ENDPOINTS}
    requests = camels_cl.build_requests(mirror)
    assert [r.url for r in requests] == [mirror[n] for n in camels_cl.ENDPOINTS]
    assert all(r.expect == "zip" for r in requests)
    assert camels_cl.ENDPOINTS["v202201_zip"] == "https://www.cr2.cl/download/camels-cl-v202201/?wpdmdl=35317"
    assert camels_cl.ENDPOINTS["pangaea_streamflow_m3s_zip"].startswith(
        "https://store.pangaea.de/Publications/Alvarez-Garreton-etal_2018/"
    )


# --- the CAMELS-CL macro-basin annual series (real file, read in place) ------------------------

MACROBASINS = "streamflow/camelscl_macrobasins_mhm_yr_copiapo_huasco_elqui_limari_maipo.csv"


def _observed_by_gauge(path: Path) -> dict[str, dict[int, float | None]]:
    """Observed annual flow per gauge and year, straight from the file with the csv module."""
    series: dict[str, dict[int, float | None]] = defaultdict(dict)
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            value = row["qobs_m3s_yr"]
            series[row["gauge_id"].zfill(8)][int(row["date"][:4])] = None if value == "NA" else float(value)
    return series


def test_macrobasin_annual_series_come_through_exactly(shared_data):
    path = shared_data / MACROBASINS
    frame = camels_cl.parse_macrobasin_annual(path)
    expected = _observed_by_gauge(path)
    assert len(frame) == sum(len(years) for years in expected.values()) == 310  # 5 basins x 62 years
    for row in frame.itertuples():
        assert row.qobs_m3s == expected[row.gauge_code][row.year] or (
            row.qobs_m3s != row.qobs_m3s and expected[row.gauge_code][row.year] is None
        )
    missing = frame[frame["qobs_m3s"].isna()].groupby("gauge_code")["year"].apply(sorted).to_dict()
    assert missing == {
        code: sorted(y for y, v in years.items() if v is None)
        for code, years in expected.items()
        if any(v is None for v in years.values())
    }
    # PROVENANCE: Copiapó has no observed flow in 2015 and 2018-2021
    assert {2015, 2018, 2019, 2020, 2021} <= set(missing["03453001"])


def test_macrobasin_trend_equals_an_independent_computation(shared_data):
    from itertools import combinations
    from statistics import median

    from scipy.stats import kendalltau

    from methods import hydrology

    path = shared_data / MACROBASINS
    frame = camels_cl.parse_macrobasin_annual(path)
    for code, years in _observed_by_gauge(path).items():
        pairs = sorted((y, v) for y, v in years.items() if v is not None and 1960 <= y <= 2020)
        ours = frame[
            (frame["gauge_code"] == code) & frame["qobs_m3s"].notna() & frame["year"].between(1960, 2020)
        ]
        trend = hydrology.mann_kendall(
            ours["year"].tolist(), ours["qobs_m3s"].tolist(), continuity_correction=False
        )
        slopes = [(v2 - v1) / (y2 - y1) for (y1, v1), (y2, v2) in combinations(pairs, 2)]
        assert trend.n == len(pairs)
        assert trend.slope == pytest.approx(median(slopes), rel=1e-12)
        tau = kendalltau([y for y, _ in pairs], [v for _, v in pairs], method="asymptotic")
        assert trend.p_value == pytest.approx(tau.pvalue, rel=1e-6)


def test_macrobasin_file_without_observed_column_is_refused(shared_data):
    text = (shared_data / MACROBASINS).read_text(encoding="utf-8").replace("qobs_m3s_yr", "q_m3s_yr", 1)
    with pytest.raises(ParseError, match="lacks column\\(s\\) qobs_m3s_yr"):
        camels_cl.parse_macrobasin_annual(text.encode())

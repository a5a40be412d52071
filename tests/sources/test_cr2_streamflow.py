"""CR2 daily streamflow: gauge codes, the stations catalogue, the wide daily file, zips, WPDM pages."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections import defaultdict
from datetime import date
from pathlib import Path

import duckdb
import pytest

from sources import cr2_streamflow as cr2
from sources.base import FetchRequest, ParseError, Payload
from warehouse import long_rows

SAMPLES = Path(cr2.__file__).resolve().parent / "samples" / "streamflow"
SAMPLE_DAILY = SAMPLES / "cr2_qflxDaily_2018_SAMPLE.csv"
STATIONS = "streamflow/cr2_qflxDaily_2018_stations.txt"


def _csv_daily_counts(path: Path) -> tuple[dict[str, int], dict[str, float], int]:
    """Independent reading with the csv module: per-gauge count and sum of non-missing days."""
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, float] = defaultdict(float)
    labels = 0
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        codes = [cell.strip().zfill(8) for cell in header[1:]]
        for row in rows:
            if not (len(row[0]) == 10 and row[0][4] == "-" and row[0][:4].isdigit()):
                labels += 1
                continue
            for code, cell in zip(codes, row[1:], strict=True):
                if cell not in ("-9999", "NA", ""):
                    counts[code] += 1
                    sums[code] += float(cell)
    return dict(counts), dict(sums), labels


# --- gauge codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2104002", "02104002"),
        (" 2104002", "02104002"),
        ('" 2104002"', "02104002"),
        (2104002, "02104002"),
        (2104002.0, "02104002"),
        ("02104002", "02104002"),
        ("02120001-8", "02120001"),
        ("12825002", "12825002"),
    ],
)
def test_gauge_codes_normalise_to_eight_digits(raw, expected):
    assert cr2.normalize_gauge_code(raw) == expected


def test_check_digit_matches_the_published_desembocadura_code():
    # SOURCES.md lists the DGA form "02120001-8" for Río Loa en Desembocadura.
    assert cr2.dga_check_digit("02120001") == "8"
    with pytest.raises(ValueError, match="check digit"):
        cr2.normalize_gauge_code("02120001-7")


@pytest.mark.parametrize("raw", ["", "NA", "codigo", "123", "2104002x", "123456789"])
def test_non_codes_are_refused(raw):
    with pytest.raises(ValueError):
        cr2.normalize_gauge_code(raw)


# --- stations catalogue (real file, read in place) -------------------------------------------


def test_real_stations_catalogue(shared_data):
    path = shared_data / STATIONS
    frame = cr2.parse_cr2_stations(path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))

    assert len(frame) == len(rows) == 809  # PROVENANCE 1c: 809 stations
    assert frame["gauge_code"].str.fullmatch(r"\d{8}").all()
    assert frame["gauge_code"].is_unique
    assert frame["altitude_m"].isna().sum() == sum(1 for r in rows if r["altura"].strip() == "0")
    dashes = sum(1 for r in rows if r["inicio_automatica"].strip() == "-")
    assert dashes == 561  # PROVENANCE 1c
    assert frame["automatic_start"].isna().sum() == dashes

    by_code = frame.set_index("gauge_code")
    raw_names = {r["codigo_estacion"].zfill(8): r["nombre"] for r in rows}
    assert by_code.loc["02103002", "name"] == raw_names["02103002"]
    assert '"' in by_code.loc["02103002", "name"]  # the escaped quote decoded, not dropped
    conchi = by_code.loc["02104002"]
    assert conchi["name"] == "Rio Loa En Salida Embalse Conchi"
    assert (conchi["obs_start"], conchi["obs_end"], conchi["obs_count"]) == (
        date(1976, 2, 12),
        date(2017, 7, 31),
        13159,
    )
    assert by_code.loc["02101001", "obs_count"] == 15480
    # The Loa carries two CR2 basin codes; both are kept as published.
    loa = frame[frame["cr2_basin_name"] == "Rio Loa"]
    assert set(loa["cr2_basin_code"]) == {"21", "32"}
    assert by_code.loc["02120001", "cr2_basin_code"] == "21"
    assert by_code.loc["02110004", "cr2_basin_code"] == "32"


def test_stations_with_a_renamed_column_fail_naming_it(shared_data):
    content = (shared_data / STATIONS).read_bytes().replace(b",latitud,", b",lat,", 1)
    with pytest.raises(ParseError, match="latitud"):
        cr2.parse_cr2_stations(content)


# --- wide daily file ---------------------------------------------------------------------------


def test_sample_daily_metadata_rows_are_detected():
    header = cr2.read_wide_daily_header(SAMPLE_DAILY, cr2.DAILY_LAYOUT, "test")
    _, _, labels = _csv_daily_counts(SAMPLE_DAILY)
    assert len(header.label_rows) == labels == 14
    assert header.skip_lines == 15
    first_line = SAMPLE_DAILY.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    assert header.gauge_codes == tuple(code.zfill(8) for code in first_line[1:])
    assert header.gauge_codes[:3] == ("02104002", "02120001", "02105001")


def test_sample_daily_long_rows_match_the_csv_module():
    frame = cr2.parse_cr2_daily(SAMPLE_DAILY)
    counts, sums, _ = _csv_daily_counts(SAMPLE_DAILY)
    assert list(frame.columns) == ["gauge_code", "date", "flow_m3s"]
    assert frame.groupby("gauge_code").size().to_dict() == counts
    for code, total in frame.groupby("gauge_code")["flow_m3s"].sum().items():
        assert total == pytest.approx(sums[code], rel=1e-12)
    assert not frame["flow_m3s"].isna().any()
    assert (frame["flow_m3s"] != -9999).all()


def test_sample_daily_metadata_reads_like_the_catalogue():
    meta = cr2.parse_cr2_daily_metadata(SAMPLE_DAILY).set_index("gauge_code")
    counts, _, _ = _csv_daily_counts(SAMPLE_DAILY)
    assert meta["obs_count"].to_dict() == counts
    assert "SAMPLE" in meta.loc["02104002", "name"] and '"invented"' in meta.loc["02104002", "name"]
    assert pd_isna(meta.loc["02120001", "altitude_m"])  # altura 0 = unknown
    assert meta.loc["02104002", "automatic_start"] is None  # "-"
    assert meta.loc["02105001", "automatic_start"] == date(2015, 1, 2)


def pd_isna(value) -> bool:
    return value != value


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_different_number_of_metadata_rows_is_detected_not_assumed(tmp_path):
    labels = [f"label_{i},x,y" for i in range(16)]
    path = _write(
        tmp_path,
        "daily.csv",
        "\n".join(
            ["codigo_estacion,2104002,02105001", *labels, "2000-01-01,1.5,-9999", "2000-01-02,-9999,0.25"]
        )
        + "\n",
    )
    frame = cr2.parse_cr2_daily(path)
    assert len(cr2.read_wide_daily_header(path, cr2.DAILY_LAYOUT, "t").label_rows) == 16
    assert sorted(zip(frame["gauge_code"], frame["date"].dt.date, frame["flow_m3s"], strict=True)) == [
        ("02104002", date(2000, 1, 1), 1.5),
        ("02105001", date(2000, 1, 2), 0.25),
    ]


def test_latin1_station_names_in_the_metadata_rows(tmp_path):
    values = {label: "x" for label in cr2.STATION_COLUMNS[1:]}
    values.update(
        nombre="Río Loa En Salida Embalse Conchi",
        altura="2950",
        latitud="-22.03",
        longitud="-68.62",
        inicio_observaciones="2000-01-01",
        fin_observaciones="2000-01-01",
        cantidad_observaciones="1",
        inicio_automatica="-",
    )
    rows = [
        "codigo_estacion,2104002",
        *(f"{label},{value}" for label, value in values.items()),
        "2000-01-01,1.5",
    ]
    path = tmp_path / "daily.csv"
    path.write_bytes(("\n".join(rows) + "\n").encode("cp1252"))
    assert cr2.parse_cr2_daily_metadata(path)["name"].tolist() == ["Río Loa En Salida Embalse Conchi"]
    assert cr2.parse_cr2_daily(path)["flow_m3s"].tolist() == [1.5]


def test_negative_flow_other_than_minus_9999_is_a_parse_error(tmp_path):
    path = _write(
        tmp_path, "daily.csv", "codigo_estacion,2104002\nnombre,Loa\n2000-01-01,-9999\n2000-01-02,-1.5\n"
    )
    with pytest.raises(ParseError, match="negative flow -1.5 m3/s at gauge 02104002 on 2000-01-02"):
        cr2.parse_cr2_daily(path)


def test_non_numeric_cell_is_a_parse_error(tmp_path):
    path = _write(tmp_path, "daily.csv", "codigo_estacion,2104002\n2000-01-01,1.0\n2000-01-02,n/d\n")
    with pytest.raises(ParseError, match="n/d"):
        cr2.parse_cr2_daily(path)


def test_renamed_first_column_fails_naming_it(tmp_path):
    path = _write(tmp_path, "daily.csv", "fecha,2104002\n2000-01-01,1.0\n")
    with pytest.raises(ParseError, match="codigo_estacion"):
        cr2.parse_cr2_daily(path)


def test_file_without_day_rows_fails(tmp_path):
    path = _write(tmp_path, "daily.csv", "codigo_estacion,2104002\nnombre,Loa\n")
    with pytest.raises(ParseError, match="no day rows"):
        cr2.parse_cr2_daily(path)


def test_load_into_callers_table_and_append(tmp_path):
    counts, _, _ = _csv_daily_counts(SAMPLE_DAILY)
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA staging")
    sql = cr2.load_cr2_daily_sql(SAMPLE_DAILY)
    written = long_rows.load(conn, sql, ("staging", 'cr2 "daily"'), cr2.SOURCE.id)
    assert written == sum(counts.values())
    assert long_rows.load(conn, sql, ("staging", 'cr2 "daily"'), cr2.SOURCE.id, replace=False) == written
    (total,) = conn.execute('SELECT count(*) FROM staging."cr2 ""daily"""').fetchone()
    assert total == 2 * written
    types = conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'staging' ORDER BY column_index"
    ).fetchall()
    assert types == [("gauge_code", "VARCHAR"), ("date", "DATE"), ("flow_m3s", "DOUBLE")]


# --- zips ----------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_daily_csv_is_streamed_out_of_the_release_zip(tmp_path):
    archive = _zip(
        {
            "cr2_qflxDaily_2018/cr2_qflxDaily_2018_stations.txt": b"codigo_estacion\n",
            "cr2_qflxDaily_2018/cr2_qflxDaily_2018.csv": SAMPLE_DAILY.read_bytes(),
        }
    )
    extracted = cr2.daily_csv_file(archive, tmp_path / "work")
    assert extracted.read_bytes() == SAMPLE_DAILY.read_bytes()
    assert not (tmp_path / "work" / "cr2_qflxDaily_2018_stations.txt").exists()


def test_a_zip_holding_the_2020_release_is_refused(tmp_path):
    archive = _zip({"cr2_qflxDaily_2020/cr2_qflxDaily_2020.csv": b"codigo_estacion,2104002\n"})
    with pytest.raises(ParseError, match="cr2_qflxDaily_2020.csv"):
        cr2.daily_csv_file(archive, tmp_path)


def test_a_plain_csv_payload_is_used_as_is(tmp_path):
    path = cr2.daily_csv_file(SAMPLE_DAILY.read_bytes(), tmp_path)
    assert path.read_bytes() == SAMPLE_DAILY.read_bytes()


# --- WPDM download pages -------------------------------------------------------------------------

PAGE_URL = "https://www.cr2.cl/download/cr2_qflxdaily_2018-zip/"
WPDM_PAGE = """<!DOCTYPE html>
<html lang="es-CL"><head><title>cr2_qflxDaily_2018.zip &#8211; CR2</title></head>
<body>
<div class="w3eden">
  <h1>cr2_qflxDaily_2018.zip</h1>
  <a class="wpdm-download-link btn btn-primary" rel="nofollow" href="#"
     data-downloadurl="/download/cr2_qflxdaily_2018-zip/?wpdmdl=12937&amp;refresh=65a1b2c3d4e5f1700000000">Descargar</a>
  <a href="https://www.cr2.cl/download/cr2_qflxdaily_2018-zip/?wpdmdl=12937&amp;refresh=65a1b2c3d4e5f1700000001">
     cr2_qflxDaily_2018.zip</a>
  <h3>Otras descargas</h3>
  <a href="https://www.cr2.cl/download/cr2_qflxdaily_2020-zip/?wpdmdl=24815&amp;refresh=65a1b2c3d4e5f1700000002">
     cr2_qflxDaily_2020.zip</a>
  <a href="https://www.cr2.cl/datos-de-caudales/">Datos de caudales</a>
</div></body></html>
"""


def test_wpdm_link_is_extracted_unescaped_and_absolute():
    url = cr2.find_wpdm_download_url(WPDM_PAGE.encode(), PAGE_URL, "t", expect="cr2_qflxdaily_2018")
    assert (
        url
        == "https://www.cr2.cl/download/cr2_qflxdaily_2018-zip/?wpdmdl=12937&refresh=65a1b2c3d4e5f1700000000"
    )


def test_wpdm_page_with_several_releases_is_ambiguous_without_expect():
    with pytest.raises(ParseError, match="several wpdmdl"):
        cr2.find_wpdm_download_url(WPDM_PAGE, PAGE_URL, "t")


def test_wpdm_page_without_a_token_fails():
    page = '<html><body><a href="https://www.cr2.cl/datos-de-caudales/">x</a></body></html>'
    with pytest.raises(ParseError, match="no wpdmdl download link"):
        cr2.find_wpdm_download_url(page, PAGE_URL, "t", expect="cr2_qflxdaily_2018")


class FakeFetcher:
    """Answers requests from bytes written in the real wire formats; records what was asked."""

    def __init__(self, answers: dict[str, bytes]):
        self.answers = answers
        self.requests: list[FetchRequest] = []

    def fetch(self, source, request: FetchRequest) -> Payload:
        self.requests.append(request)
        content = self.answers[request.url]
        return Payload(
            source=source.id,
            name=request.name,
            url=request.url,
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            retrieved_at="2026-11-27T00:00:00Z",
            mode="live",
            snapshot_id=hashlib.sha256(content).hexdigest()[:12],
        )


def test_fetch_daily_zip_follows_the_tokenised_link():
    archive = _zip({"cr2_qflxDaily_2018.csv": SAMPLE_DAILY.read_bytes()})
    link = "https://www.cr2.cl/download/cr2_qflxdaily_2018-zip/?wpdmdl=12937&refresh=65a1b2c3d4e5f1700000000"
    fetcher = FakeFetcher({PAGE_URL: WPDM_PAGE.encode(), link: archive})
    payload = cr2.fetch_daily_zip(fetcher, {"qflx_daily_2018_page": PAGE_URL})
    assert payload.content == archive
    assert [(r.url, r.expect) for r in fetcher.requests] == [(PAGE_URL, "any"), (link, "zip")]


def test_fetch_daily_zip_uses_a_mirror_serving_the_zip_directly():
    archive = _zip({"cr2_qflxDaily_2018.csv": SAMPLE_DAILY.read_bytes()})
    mirror = "file:///mirror/cr2_qflxDaily_2018.zip"
    fetcher = FakeFetcher({mirror: archive})
    assert cr2.fetch_daily_zip(fetcher, {"qflx_daily_2018_page": mirror}).content == archive
    assert len(fetcher.requests) == 1


def test_declared_endpoint_is_the_cr2_wpdm_page():
    assert cr2.ENDPOINTS["qflx_daily_2018_page"] == PAGE_URL
    assert cr2.SOURCE.landing_url == "https://www.cr2.cl/datos-de-caudales/"

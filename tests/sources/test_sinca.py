"""SINCA: the station list and the CGI daily export, on the real files in air_quality/ and our samples."""

import csv
import io
import json
from datetime import date

import pandas as pd
import pytest

from sources import sinca
from sources.acquire import SAMPLES_DIR
from sources.base import ParseError

AIR = "air_quality"


def _recount(content: bytes) -> dict:
    """Count the export independently: per level, the non-empty cells of its three value columns."""
    rows = list(csv.reader(io.StringIO(content.decode("latin-1"), newline=""), delimiter=";"))
    counts = {"validated": 0, "preliminary": 0, "unvalidated": 0, "lines": len(rows) - 1}
    for row in rows[1:]:
        for level, cell in zip(sinca.LEVELS, row[2:5], strict=True):
            counts[level] += bool(cell.strip())
    return counts


def test_station_list_csv_reads_every_station_with_its_operator(shared_data):
    content = (shared_data / AIR / "sinca_stations.csv").read_bytes()
    stations = sinca.parse_stations(content)
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))
    assert len(rows) == 123 and len(stations) == len({r["station_code"] for r in rows})
    region = stations[stations["region"] == "II"].set_index("station_code")
    assert len(region) == len({r["station_code"] for r in rows if r["region"] == "II"}) == 11
    # Calama's stations are run by the mining company: said, per station.
    calama = region[region["city"] == "Calama"]
    assert sorted(calama.index) == ["RII/217", "RII/233", "RII/235", "RII/253"]
    assert set(calama["operator"]) == {"Codelco Distrito Norte"}
    assert set(calama["operator_kind"]) == {"mining company"}
    assert region.loc["RII/237", "operator_kind"] == "state"
    assert region.loc["RII/251", "operator_kind"] == "other company"  # ENGIE, a power company
    row = next(r for r in rows if r["station_code"] == "RII/217")
    assert region.loc["RII/217", "latitude"] == float(row["latitude"]) == -22.454016027306
    assert region.loc["RII/217", "network"] == ""  # empty in the list, kept empty
    assert not sinca.outside_chile(stations).any()


def test_station_list_json_shape_reads_like_the_csv():
    stations = sinca.parse_stations((SAMPLES_DIR / "air" / "sinca_listadomapa2k19_SAMPLE.json").read_bytes())
    assert {code for code, _ in sinca.SERIES} == set(stations["station_code"])
    assert stations.set_index("station_code").loc["RII/217", "operator_kind"] == "mining company"
    bare = json.dumps([{"key": "217", "region": "II", "latitud": -22.45, "longitud": -68.91, "nombre": "x"}])
    assert sinca.parse_stations(bare.encode())["station_code"].tolist() == ["RII/217"]


def test_coordinates_outside_chile_are_flagged_not_moved():
    listed = [
        {"key": "RII/217", "region": "II", "latitud": -22.45, "longitud": -68.91},
        {"key": "RII/299", "region": "II", "latitud": -68.91, "longitud": -22.45},  # swapped
    ]
    stations = sinca.parse_stations(json.dumps(listed).encode())
    assert sinca.outside_chile(stations).tolist() == [False, True]
    assert stations.loc[1, "latitude"] == -68.91
    with pytest.raises(ParseError, match="no coordinates"):
        sinca.parse_stations(json.dumps([{"key": "RII/1", "latitud": None, "longitud": -70}]).encode())


@pytest.mark.parametrize(
    "name, first, last",
    [
        ("PM25_Santiago_datos_970402_251112.csv", date(1997, 4, 2), date(2025, 11, 11)),
        ("PM25_Santiago_datos_220401_251112.csv", date(2022, 4, 1), date(2025, 11, 11)),
        ("rakiduam_datos_090125_200130.csv", date(2009, 1, 25), date(2020, 1, 29)),
    ],
)
def test_real_exports_keep_every_value_with_its_validation_level(shared_data, name, first, last):
    content = (shared_data / AIR / name).read_bytes()
    daily = sinca.parse_export(content)
    counts = _recount(content)
    by_level = daily["level"].value_counts().to_dict()
    for level in sinca.LEVELS:
        assert by_level.get(level, 0) == counts[level]
    assert sinca.export_span(content) == (first, last)
    assert daily["date"].is_monotonic_increasing and daily["date"].min() >= first
    if name.endswith("970402_251112.csv"):
        # The notes: 10,302 non-empty rows, 105 preliminary and 37 not validated; 1997 stays 1997.
        assert (len(daily), by_level["preliminary"], by_level["unvalidated"]) == (10302, 105, 37)
        assert daily["date"].iloc[0].year == 1997


def test_annual_mean_uses_validated_days_and_the_75_percent_rule(shared_data):
    content = (shared_data / AIR / "PM25_Santiago_datos_220401_251112.csv").read_bytes()
    summary = sinca.annual_summary(sinca.parse_export(content), daily_limit=50.0).set_index("year")
    # Independently: the validated cells of 2023 and 2024, read as decimal-comma numbers.
    rows = list(csv.reader(io.StringIO(content.decode("latin-1")), delimiter=";"))[1:]
    for year, days in ((2023, 365), (2024, 366)):
        values = [
            float(r[2].replace(",", ".")) for r in rows if r[0].startswith(f"{year % 100:02d}") and r[2]
        ]
        assert summary.loc[year, "validated_days"] == len(values)
        assert summary.loc[year, "mean"] == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert summary.loc[year, "days_above"] == sum(v > 50.0 for v in values)
        assert summary.loc[year, "completeness"] == pytest.approx(len(values) / days)
    # 2022 starts in April (262 validated days, 72%) and 2025 has preliminary months: no mean.
    assert summary.loc[2022, "validated_days"] == 262 and pd.isna(summary.loc[2022, "mean"])
    assert summary.loc[2025, "preliminary_days"] == 103 and pd.isna(summary.loc[2025, "mean"])


def test_an_export_without_validated_values_yields_no_annual_figure(shared_data):
    # rakiduam 2019-2020: every value is "no validado"; nothing is published from them.
    daily = sinca.parse_export((shared_data / AIR / "rakiduam_datos_090125_200130.csv").read_bytes())
    summary = sinca.annual_summary(daily, daily_limit=50.0).set_index("year")
    assert summary.loc[2019, "validated_days"] == 0 and summary.loc[2019, "unvalidated_days"] == 365
    assert pd.isna(summary.loc[2019, "mean"]) and pd.isna(summary.loc[2019, "days_above"])


def test_the_meteorological_variant_and_html_pages_are_refused(shared_data):
    with pytest.raises(ParseError, match="meteorological variant"):
        sinca.parse_export((shared_data / AIR / "rakiduam_datos_150509_200131.csv").read_bytes())
    with pytest.raises(ParseError, match="not a SINCA export"):
        sinca.parse_export(b"<html><body>Error 500: Airviro no responde</body></html>")
    header = ";".join(sinca.EXPORT_HEADER) + ";\n"
    with pytest.raises(ParseError, match="more than one validation column"):
        sinca.parse_export((header + "230101;0000;12,5;13;;\n").encode())
    with pytest.raises(ParseError, match="HORA"):
        sinca.parse_export((header + "230101;0100;12,5;;;\n").encode())


def test_samples_follow_the_wire_format_and_say_sample():
    for station, parameter in sinca.SERIES:
        content = (SAMPLES_DIR / "air" / f"{sinca.series_name(station, parameter)}_SAMPLE.csv").read_bytes()
        daily = sinca.parse_export(content)
        assert sinca.export_span(content) == (date(2023, 1, 1), date(2024, 12, 31))
        assert set(daily["level"]) <= set(sinca.LEVELS) and len(daily) > 650
    names = json.loads((SAMPLES_DIR / "air" / "sinca_listadomapa2k19_SAMPLE.json").read_bytes())
    assert all(item["nombre"].endswith("(SAMPLE)") for item in names)


def test_export_urls_have_the_cgi_shape():
    url = sinca.ENDPOINTS["RII_217_ARSE"]
    assert url.startswith("https://sinca.mma.gob.cl/cgi-bin/APUB-MMA/apub.tsindico2.cgi?outtype=xcl&")
    assert "macro=./RII/217/Cal/ARSE//ARSE.diario.diario.ic&from=150101&to=241231" in url
    assert sinca.series_of("RII_217_ARSE") == ("RII/217", "ARSE")

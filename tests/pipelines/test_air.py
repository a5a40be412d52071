"""Air family (SINCA) end to end offline on the SAMPLE payloads.

Figures are recomputed here from the sample files with csv and plain arithmetic, never with the
code under test.
"""

import csv
import io
import json

import pytest
from dagster import materialize

from pipelines import air, map_layers, territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources import sinca
from warehouse import db

ASSETS = [*territories.ASSETS, *air.ASSETS]
_shared: dict = {}


def _run():
    return materialize(
        [*ASSETS, *air.CHECKS],
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("air")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXT_LENS_DB", str(tmp / "context.duckdb"))
        mp.setenv("CONTEXT_LENS_RAW_DIR", str(tmp / "raw"))
        mp.setenv("CONTEXT_LENS_OFFLINE", "1")
        result = _run()
        with db.reader() as conn:
            observations = conn.execute("SELECT * FROM core.observations WHERE source_id = 'sinca'").df()
            stations = conn.execute("SELECT * FROM staging.sinca_stations").df()
            daily = conn.execute("SELECT * FROM staging.sinca_daily").df()
            status = dict(conn.execute("SELECT source_id, mode FROM core.source_status").fetchall())
            indicators = conn.execute("SELECT * FROM core.indicators WHERE source_id = 'sinca'").df()
            _shared["layer"] = map_layers._air_station_layer(conn, (-71.0, -26.0, -67.0, -20.0))  # region 02
    return (
        result,
        observations.set_index(["indicator_id", "territory_id", "period"]),
        stations,
        daily,
        status,
        indicators,
    )


def _validated(station: str, parameter: str, year: int) -> list[float]:
    path = air.SAMPLE_DIR / f"{sinca.series_name(station, parameter)}_SAMPLE.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="latin-1")), delimiter=";"))[1:]
    return [float(r[2].replace(",", ".")) for r in rows if r[0][:2] == f"{year % 100:02d}" and r[2]]


def test_offline_run_is_sample_and_stations_are_located(offline):
    result, _, stations, daily, status, _ = offline
    assert result.success and status["sinca"] == "sample"
    listed = json.loads((air.STATIONS_SAMPLE).read_bytes())
    assert len(stations) == len(listed)
    by_code = stations.set_index("station_code")
    assert by_code.loc["RII/217", "operator_kind"] == "mining company"
    assert by_code.loc["RII/237", "operator_kind"] == "state"
    assert not by_code["outside_chile"].any()
    # Every value keeps its level: the sample's preliminary months are in staging, not in the annual figures.
    assert set(daily["level"]) == {"validated", "preliminary", "unvalidated"}


def test_comuna_annual_means_from_validated_days(offline):
    _, observations, stations, *_ = offline
    by_code = stations.set_index("station_code")
    calama = by_code.loc["RII/217", "located_comuna_code"]
    if calama is None:
        pytest.skip("the sample comuna polygons do not cover Calama")
    tid = f"comuna:{calama}"
    # PM2.5 2023 in Calama: RII/217, 233, 235 measure it (all complete in the sample).
    means = [
        sum(v) / len(v) for v in (_validated(s, "PM25", 2023) for s in ("RII/217", "RII/233", "RII/235"))
    ]
    assert observations.loc[("sinca_pm25_annual_mean", tid, "2023"), "value"] == pytest.approx(sum(means) / 3)
    assert observations.loc[("sinca_pm25_ratio_who_2021_guideline", tid, "2023"), "value"] == pytest.approx(
        sum(means) / 3 / 5.0
    )
    assert "Codelco Distrito Norte" in observations.loc[("sinca_pm25_annual_mean", tid, "2023"), "flag"]
    # PM10 2023: RII/253 is unvalidated after day 200, below 75%: out of the comuna mean.
    complete = [
        s for s in ("RII/217", "RII/233", "RII/235") if len(_validated(s, "PM10", 2023)) >= 0.75 * 365
    ]
    assert len(_validated("RII/253", "PM10", 2023)) < 0.75 * 365
    means = [sum(_validated(s, "PM10", 2023)) / len(_validated(s, "PM10", 2023)) for s in complete]
    row = observations.loc[("sinca_pm10_annual_mean", tid, "2023")]
    assert row["value"] == pytest.approx(sum(means) / len(means)) and "RII/253" not in row["flag"]
    days = max(sum(v > 150 for v in _validated(s, "PM10", 2023)) for s in complete)
    assert observations.loc[("sinca_pm10_days_above_daily_standard", tid, "2023"), "value"] == days
    # 2024: validated only up to 30 September (274 of 366 days = 74.9%): no annual figure at all.
    assert not any(period == "2024" for (_, _, period) in observations.index)
    # Arsenic: airborne, labelled as not water.
    arsenic = _validated("RII/217", "ARSE", 2023)
    assert observations.loc[("sinca_arsenic_pm_annual_mean", tid, "2023"), "value"] == pytest.approx(
        sum(arsenic) / len(arsenic)
    )


def test_every_air_indicator_is_registered_in_a_lens_section(offline):
    _, observations, _, _, _, indicators = offline
    registered = indicators.set_index("indicator_id")
    assert set(observations.index.get_level_values(0)) <= set(registered.index)
    assert set(registered["lens_section"]) == {"structural_constraints"}
    assert "not arsenic in water" in registered.loc["sinca_arsenic_pm_annual_mean", "label"]


def test_the_lens_map_shows_the_stations_with_their_operator(offline):
    layer = _shared["layer"]
    assert layer["name"] == "Air-quality stations (SINCA)" and layer["style"] == "air_station"
    from pipelines.lens_map import feature_name
    from pipelines.reading import texts

    english, spanish = (texts(lang)["body"]["map"] for lang in ("en", "es"))
    names = {f["id"]: feature_name(f, english) for f in layer["features"]}
    assert set(names) == {station for station, _ in sinca.SERIES}
    assert names["RII/217"].endswith("run by Codelco Distrito Norte (a mining company)")
    assert names["RII/237"].endswith("run by Ministerio del Medio Ambiente")
    calama = next(f for f in layer["features"] if f["id"] == "RII/217")
    assert feature_name(calama, spanish).endswith("operada por Codelco Distrito Norte (una empresa minera)")

"""Facilities family offline on the SAMPLE workbook; expected figures recomputed from the sample's own rows."""

import math

import pandas as pd
import pytest
from dagster import materialize

from pipelines import facilities, health, territories
from pipelines.resources import SourcesResource, WarehouseResource
from sources.samples.facilities import make_samples
from warehouse import db


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("facilities")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXT_LENS_DB", str(tmp / "context.duckdb"))
        mp.setenv("CONTEXT_LENS_RAW_DIR", str(tmp / "raw"))
        mp.setenv("CONTEXT_LENS_OFFLINE", "1")
        result = materialize(
            [*territories.ASSETS, health.health_population, *facilities.ASSETS, *facilities.CHECKS],
            resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
            raise_on_error=False,
        )
        with db.reader() as conn:
            observations = conn.execute(
                "SELECT indicator_id, territory_id, period, value, flag FROM core.observations "
                "WHERE source_id = 'deis_establishments'"
            ).df()
            population = dict(
                conn.execute(
                    "SELECT territory_id, value FROM core.observations WHERE indicator_id = 'population' "
                    "AND period = '2025'"
                ).fetchall()
            )
            mart = conn.execute("SELECT * FROM marts.health_facilities ORDER BY establishment_code").df()
            mode = conn.execute(
                "SELECT mode FROM core.source_status WHERE source_id = 'deis_establishments'"
            ).fetchone()[0]
    return result, observations.set_index(["indicator_id", "territory_id"]), population, mart, mode


def _value(observations, indicator, territory):
    return observations.loc[(indicator, territory), "value"]


def _in(comuna):
    return [e for e in make_samples.ESTABLISHMENTS if str(e[1]).zfill(5) == comuna]


def test_counts_rates_and_beds_from_the_sample(offline):
    result, observations, population, _, mode = offline
    assert result.success and mode == "sample"
    calama = _in("02201")
    assert _value(observations, "deis_facilities_count", "comuna:02201") == len(calama) == 5
    assert _value(observations, "deis_facilities_primary_count", "comuna:02201") == sum(
        e[5] == "Primario" for e in calama
    )
    tertiary = sum(e[5].lower() == "terciario" for e in calama)  # 'terciario' in lower case
    assert tertiary == 1
    assert _value(observations, "deis_facilities_tertiary_per_10000", "comuna:02201") == pytest.approx(
        10_000 * tertiary / population["comuna:02201"]
    )
    region = [e for e in make_samples.ESTABLISHMENTS if str(e[1]).startswith("02")]
    assert _value(observations, "deis_facilities_count", "region:02") == len(region)
    codes = {e[0] for e in region}
    beds = sum(sum(areas.values()) for code, _, areas in make_samples.BEDS if code in codes)
    assert _value(observations, "deis_public_beds", "region:02") == beds
    assert _value(observations, "deis_public_beds_per_1000", "region:02") == pytest.approx(
        1_000 * beds / population["region:02"]
    )
    assert _value(observations, "deis_public_beds", "comuna:02202") == 0  # Ollagüe: no public hospital
    # The sample lists six regions only: Chile is not a sum of them, so it is not published.
    assert not any(t == "country:CL" for _, t in observations.index)


def _haversine_km(a, b):
    (lon1, lat1), (lon2, lat2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_distance_to_the_nearest_high_complexity_hospital(offline):
    _, observations, _, _, _ = offline
    (ollague,) = _in("02202")
    calama_hospital = next(e for e in make_samples.ESTABLISHMENTS if e[0] == 103101)
    expected = _haversine_km(ollague[6:8], calama_hospital[6:8])
    distance = observations.loc[("deis_high_complexity_hospital_distance_km", "comuna:02202")]
    assert distance["value"] == pytest.approx(expected, rel=0.005)  # ellipsoid vs sphere
    assert "Hospital SAMPLE 103101 (Calama)" in distance["flag"]


def test_a_point_in_another_comuna_is_reported_not_moved(offline):
    result, observations, _, mart, _ = offline
    moved = mart[mart["comuna_mismatch"].fillna(False)]
    assert moved["establishment_code"].tolist() == ["103602"]
    assert moved[["comuna_code", "located_comuna_code"]].values.tolist() == [["02203", "02201"]]
    assert moved[["longitude", "latitude"]].values.tolist() == [[-68.70, -22.50]]
    # It still counts where DEIS states it.
    pending = mart[mart["establishment_code"] == "103204"].iloc[0]
    assert pending["coordinate_flag"].startswith("coordinates pending") and pd.isna(pending["geometry"])
    assert _value(observations, "deis_facilities_count", "comuna:02203") == len(_in("02203"))
    (check,) = [e for e in result.get_asset_check_evaluations()]
    assert not check.passed and check.metadata["mismatches"].value == 1

"""Observation lineage: every value lists the snapshots it was computed from, its mode is the
weakest of them, and the store refuses a value filed under another source's snapshot that is
not one of its inputs. The snapshots below are SAMPLE/curated rows written in this file."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines import finance_series
from sources.base import ValidationError
from sources.rawstore import Sidecar
from warehouse import store
from warehouse.db import SQL_DIR, connect

POPULATION = "ine_population-20240101000000-aaaaaaaaaaaa"
ROYALTIES = "royalties_curated-20240102000000-bbbbbbbbbbbb"
ROYALTIES_NEW = "royalties_curated-20240301000000-cccccccccccc"
# The 9 comunas of region 02 (PROVENANCE.md: 02101 Antofagasta ... 02302 María Elena).
REGION_02 = ["02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"]


def _sidecar(snapshot_id: str, source: str, mode: str, retrieved_at: str) -> Sidecar:
    return Sidecar(snapshot_id, source, "payload", "key", "file://x", "GET", retrieved_at, "0" * 64, 1, mode)


@pytest.fixture
def conn(tmp_path):
    connection = connect(tmp_path / "w.duckdb")
    store.record_snapshots(
        connection,
        [
            _sidecar(POPULATION, "ine_population", "sample", "2024-01-01 00:00:00"),
            _sidecar(ROYALTIES, "royalties_curated", "curated", "2024-01-02 00:00:00"),
            _sidecar(ROYALTIES_NEW, "royalties_curated", "curated", "2024-03-01 00:00:00"),
        ],
    )
    yield connection
    connection.close()


def _observation(snapshot: str, value: float, inputs=None, source: str = "royalties_curated") -> pd.DataFrame:
    row = {
        "indicator_id": "royalty_allocations_per_inhabitant_clp",
        "territory_id": "comuna:02201",
        "period": "2024",
        "value": value,
        "lower": None,
        "upper": None,
        "flag": None,
        "source_id": source,
        "snapshot_id": snapshot,
    }
    if inputs is not None:
        row["inputs"] = inputs
    return pd.DataFrame([row])


def _lineage(conn, view: str = "marts.observation_lineage") -> pd.DataFrame:
    conn.execute((SQL_DIR / "views" / "90_lens.sql").read_text())
    return conn.execute(f"SELECT * FROM {view} ORDER BY ALL").df()  # noqa: S608 (constant)


def test_a_derived_value_on_a_sample_input_is_sample_and_lists_both_inputs(conn):
    inputs = [("numerator", ROYALTIES), ("denominator", POPULATION)]
    store.replace_observations(conn, "royalties_curated", _observation(ROYALTIES, 2209.9, inputs))
    rows = conn.execute(
        "SELECT role, input_snapshot_id, input_source_id FROM core.observation_inputs ORDER BY role"
    ).fetchall()
    assert rows == [
        ("denominator", POPULATION, "ine_population"),
        ("numerator", ROYALTIES, "royalties_curated"),
    ]
    lineage = _lineage(conn).iloc[0]
    assert lineage["mode"] == "sample"  # the weakest input decides
    assert lineage["own_mode"] == "curated"  # what the royalty source itself is
    assert lineage["inputs"] == (
        f"denominator: ine_population {POPULATION} (sample); numerator: royalties_curated {ROYALTIES} (curated)"
    )


def test_a_value_without_declared_inputs_is_its_own_snapshot(conn):
    store.replace_observations(conn, "royalties_curated", _observation(ROYALTIES, 10.0))
    lineage = _lineage(conn).iloc[0]
    assert (lineage["mode"], lineage["own_mode"]) == ("curated", "curated")
    assert lineage["inputs"] == f"value: royalties_curated {ROYALTIES} (curated)"


def test_a_value_under_another_sources_snapshot_is_refused_unless_it_is_an_input(conn):
    store.replace_observations(conn, "royalties_curated", _observation(ROYALTIES, 10.0))
    with pytest.raises(ValidationError, match="another source's snapshot") as refused:
        store.replace_observations(conn, "royalties_curated", _observation(POPULATION, 2209.9))
    assert "royalties_curated" in str(refused.value) and POPULATION in str(refused.value)
    assert conn.execute("SELECT value, snapshot_id FROM core.observations").fetchall() == [(10.0, ROYALTIES)]
    declared = [("numerator", ROYALTIES), ("denominator", POPULATION)]
    store.replace_observations(conn, "royalties_curated", _observation(POPULATION, 2209.9, declared))
    assert conn.execute("SELECT value FROM core.observations").fetchall() == [(2209.9,)]


def test_history_keeps_the_lineage_of_every_value(conn):
    store.replace_observations(
        conn,
        "royalties_curated",
        _observation(ROYALTIES, 1.0, [("numerator", ROYALTIES), ("denominator", POPULATION)]),
    )
    store.replace_observations(conn, "royalties_curated", _observation(ROYALTIES_NEW, 2.0))
    current = _lineage(conn)
    assert current["inputs"].tolist() == [f"value: royalties_curated {ROYALTIES_NEW} (curated)"]
    history = _lineage(conn, "marts.observation_lineage_history").set_index("snapshot_id")
    assert history.loc[ROYALTIES, "mode"] == "sample"
    assert history.loc[ROYALTIES_NEW, "mode"] == "curated"
    assert conn.execute("SELECT count(*) FROM core.observation_inputs").fetchone()[0] == 1


def test_finance_ratio_keeps_the_numerators_snapshot_and_lists_the_denominator():
    numerator = finance_series._series(["comuna:02201"], [2024], [1.0e9], [ROYALTIES])
    denominator = finance_series._series(["comuna:02201"], [2024], [200_000.0], [POPULATION])
    modes = {ROYALTIES: "curated", POPULATION: "sample"}
    series, unmatched = finance_series.ratio_series(numerator, denominator, 1.0, modes, "population")
    assert unmatched == []
    row = series.iloc[0]
    assert row["value"] == pytest.approx(5000.0)
    assert row["snapshot_id"] == ROYALTIES  # never borrowed from the population
    assert row["inputs"] == [("denominator", POPULATION), ("numerator", ROYALTIES)]
    assert row["flag"] == "population is SAMPLE data"


def test_an_unverified_curated_input_makes_the_value_curated_unverified(conn):
    inputs = [("numerator", ROYALTIES, "unverified"), ("denominator", ROYALTIES_NEW)]
    store.replace_observations(conn, "royalties_curated", _observation(ROYALTIES, 1.0, inputs))
    lineage = _lineage(conn).iloc[0]
    assert lineage["mode"] == "curated-unverified"
    assert lineage["own_mode"] == "curated"  # the source is curated; this value rests on an unchecked row
    assert f"numerator: royalties_curated {ROYALTIES} (curated-unverified)" in lineage["inputs"]


def test_royalty_totals_carry_the_verification_of_their_rows():
    amounts = pd.DataFrame(
        {
            "measure": "royalty_allocation",
            "detail": "fondo_puente",
            "territory_id": [f"comuna:{code}" for code in REGION_02],  # the whole region
            "year": 2024,
            "amount_clp": [float(i) for i in range(1, len(REGION_02) + 1)],
            "snapshot_id": ROYALTIES,
            "verification": ["unverified" if code == "02201" else "checked" for code in REGION_02],
        }
    )
    comunas, regions, _, left_out = finance_series.royalty_totals(amounts)
    by_comuna = comunas.set_index("territory_id")
    assert by_comuna.loc["comuna:02201", "inputs"] == [("value", ROYALTIES, "unverified")]
    assert by_comuna.loc["comuna:02101", "inputs"] == [("value", ROYALTIES)]
    region = regions.iloc[0]
    assert region["value"] == sum(range(1, 10)) and region["inputs"] == [("parts", ROYALTIES, "unverified")]
    assert "1 of 9 curated rows not checked against the primary document" in region["flag"]
    assert left_out == {}

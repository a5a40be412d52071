"""Finance family end to end: offline (curated + SAMPLE), live against a local server, and the real SINIM extract.

Expected figures are computed here straight from the files (csv/json modules), never copied
from the pipeline's output.
"""

import csv
import json
import shutil
import statistics
from urllib.parse import parse_qsl, urlparse

import pandas as pd
import pytest
from dagster import RunRequest, SkipReason, build_sensor_context, materialize

from pipelines import (
    finance,
    finance_amounts,
    finance_core,
    finance_series,
    finance_sources,
    finance_tables,
    territories,
)
from pipelines.resources import SourcesResource, WarehouseResource
from sources import royalties, sinim
from sources.rawstore import request_key
from tests.support.http import Reply
from warehouse import db, store
from warehouse.db import transaction

SAMPLES = finance_sources.SAMPLE_DIR
CURATED = royalties.CURATED_DIR
REAL_EXTRACT = "finance/sinim_2019-2023_finanzas_region02_plus4.csv"
REGION_02 = sorted(royalties.REGION_02_COMUNAS)
MONEY_CODES = {
    v.code: finance_tables.SINIM_MONEY[v.key]
    for v in sinim.FINANCE_VARIABLES
    if v.key in finance_tables.SINIM_MONEY
}
ASSETS = [territories.territories, *finance.ASSETS]


def _run(assets=ASSETS, checks=True):
    return materialize(
        [*assets, *(finance.CHECKS if checks else [])],
        resources={"warehouse": WarehouseResource(), "sources": SourcesResource(backoff_seconds=0.01)},
        raise_on_error=False,
    )


def _query(conn, sql: str, params=None) -> list[tuple]:
    return conn.execute(sql, params or []).fetchall()


def _observations(conn, indicator: str) -> dict[tuple[str, str], float]:
    rows = _query(
        conn,
        "SELECT territory_id, period, value FROM core.observations WHERE indicator_id = ?",
        [indicator],
    )
    return {(t, p): v for t, p, v in rows}


def _sample_extract() -> list[dict[str, str]]:
    with open(SAMPLES / "sinim_finanzas_region02_2019-2023_SAMPLE.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _curated_allocations() -> list[dict[str, str]]:
    with open(CURATED / "royalty_allocations.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _mean_rate(indicator: str, year: int) -> float:
    """The year's mean of a mindicador SAMPLE series, read with the json module."""
    document = json.loads(
        (SAMPLES / f"mindicador_{indicator}_{year}_SAMPLE.json").read_text(encoding="utf-8")
    )
    return statistics.fmean(point["valor"] for point in document["serie"])


def _check_results(result) -> dict[str, tuple[bool, dict]]:
    return {
        e.check_name: (e.passed, {k: v.value for k, v in e.metadata.items()})
        for e in result.get_asset_check_evaluations()
    }


def _materialization(result, asset_name: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.path[-1] == asset_name:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"{asset_name} was not materialized")


def _failure_text(result) -> str:
    error = result.get_step_failure_events()[0].event_specific_data.error
    return error.message + (error.cause.message if error.cause else "")


# --- offline: curated royalties + SAMPLE finance ------------------------------------------------


def test_offline_run_gives_royalty_and_finance_observations_for_the_antofagasta_comunas(
    warehouse_env, monkeypatch
):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    result = _run()
    assert result.success
    checks = _check_results(result)
    assert {name for name, (passed, _) in checks.items() if not passed} == set()

    with db.reader() as conn:
        # Royalty allocations: every Antofagasta comuna, equal to the curated file's amount.
        royalty = _observations(conn, "royalty_allocations_clp")
        allocations = {r["territory_code"]: float(r["amount"]) for r in _curated_allocations()}
        assert {t for t, _ in royalty if t.startswith("comuna:")} == {f"comuna:{c}" for c in REGION_02}
        for code, amount in allocations.items():
            assert royalty[(f"comuna:{code}", "2024")] == amount
        assert royalty[("region:02", "2024")] == sum(allocations.values())

        # SINIM: every sample cell of the money variables, M$ x 1000; blank cells give no observation.
        rows = _sample_extract()
        for indicator_code, indicator in MONEY_CODES.items():
            observed = _observations(conn, indicator)
            expected = {
                (f"comuna:{r['cut_comuna']}", r["año"]): float(r["valor"]) * 1000
                for r in rows
                if r["variable_id"] == indicator_code and r["valor"] != ""
            }
            assert {k: v for k, v in observed.items() if k[0].startswith("comuna:")} == pytest.approx(
                expected
            )
        blanks = [(r["cut_comuna"], r["variable_id"], r["año"]) for r in rows if r["valor"] == ""]
        assert blanks  # the SAMPLE has blank cells: they must stay missing
        for code, variable, year in blanks:
            indicator = MONEY_CODES.get(variable, "fcm_dependence_pct")
            assert (f"comuna:{code}", year) not in _observations(conn, indicator)
        assert checks["sinim_not_received_is_missing"][1]["missing_blank"] == len(blanks)

        # A region sum exists only where all 9 comunas have the value.
        mining = _observations(conn, "mining_concession_fees_clp")
        for year in ("2019", "2020", "2021", "2022", "2023"):
            values = [
                float(r["valor"])
                for r in rows
                if r["variable_id"] == "3754" and r["año"] == year and r["valor"]
            ]
            if len(values) == 9:
                assert mining[("region:02", year)] == pytest.approx(sum(values) * 1000)
            else:
                assert ("region:02", year) not in mining

        # Provenance: curated and sample modes are visible in core.snapshots.
        modes = dict(
            _query(
                conn,
                "SELECT DISTINCT source_id, mode FROM core.snapshots WHERE source_id IN ('sinim', 'royalties_curated')",
            )
        )
        assert modes == {"sinim": "sample", "royalties_curated": "curated"}
        observed_modes = _query(
            conn,
            """
            SELECT DISTINCT o.source_id, s.mode FROM core.observations o JOIN core.snapshots s USING (snapshot_id)
            WHERE o.indicator_id IN ('royalty_allocations_clp', 'municipal_total_income_clp') ORDER BY 1
            """,
        )
        assert observed_modes == [("royalties_curated", "curated"), ("sinim", "sample")]
        assert _query(
            conn, "SELECT status, mode FROM core.source_status WHERE source_id = 'royalties_curated'"
        ) == [("curated", "curated")]
        assert all(
            "SAMPLE" in u
            for (u,) in _query(conn, "SELECT request_url FROM core.snapshots WHERE source_id = 'sinim'")
        )

        # Three bases in the marts, with the rates that made them (expected from the SAMPLE JSON).
        calama = dict(
            (basis, (amount, rate, base_rate))
            for basis, amount, rate, base_rate in _query(
                conn,
                "SELECT basis, amount, rate, base_rate FROM marts.royalty_allocations WHERE territory_id = 'comuna:02201'",
            )
        )
        nominal = allocations["02201"]
        assert calama["nominal_clp"][0] == nominal
        dollar = _mean_rate("dolar", 2024)
        assert calama["usd"][:2] == pytest.approx((nominal / dollar, dollar)) and calama["usd"][2] is None
        income_2019 = dict(
            (basis, (amount, rate, base_rate, conversion))
            for basis, amount, rate, base_rate, conversion in _query(
                conn,
                "SELECT basis, amount, rate, base_rate, conversion FROM marts.municipal_finance "
                "WHERE territory_id = 'comuna:02201' AND year = 2019 AND measure = 'total_income'",
            )
        )
        published = next(
            float(r["valor"])
            for r in rows
            if (r["cut_comuna"], r["variable_id"], r["año"]) == ("02201", "1110", "2019")
        )
        uf_2019, uf_base = _mean_rate("uf", 2019), _mean_rate("uf", finance_amounts.REAL_BASE_YEAR)
        assert income_2019["nominal_clp"][0] == published * 1000
        assert income_2019["real_clp"][:3] == pytest.approx(
            (published * 1000 / uf_2019 * uf_base, uf_2019, uf_base)
        )
        assert (
            "M$" in income_2019["real_clp"][3]
            and f"UF annual mean {finance_amounts.REAL_BASE_YEAR}" in income_2019["real_clp"][3]
        )

        # Without population in the warehouse, per-inhabitant values are skipped and the metadata says so.
        notes = _materialization(result, "finance_observations")["derived_indicators"]
        assert "no population" in notes["royalty_allocations_per_inhabitant_clp"]
        assert _observations(conn, "royalty_allocations_per_inhabitant_clp") == {}

        # The curated figures feed the lens section 'governance'.
        sections = _query(
            conn, "SELECT DISTINCT lens_section FROM core.indicators WHERE source_id = 'royalties_curated'"
        )
        assert sections == [("governance",)]

    # Once population is loaded (as the health family would: a test value, not a real count), the
    # per-inhabitant value uses the population of the same year only.
    with db.writer() as conn, transaction(conn):
        conn.execute(
            "INSERT INTO core.observations VALUES ('population', 'comuna:02201', '2024', 200000, NULL, NULL, "
            "NULL, 'test_population', 'test-population-snapshot')"
        )
    assert _run([finance.finance_observations], checks=False).success
    with db.reader() as conn:
        per_inhabitant = _observations(conn, "royalty_allocations_per_inhabitant_clp")
    assert per_inhabitant == {("comuna:02201", "2024"): pytest.approx(allocations["02201"] / 200000)}


def test_a_curated_total_that_does_not_reconcile_is_refused_and_earlier_tables_stay(
    warehouse_env, monkeypatch
):
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")
    royalty_assets = [territories.territories, finance.royalty_allocations]
    assert _run(royalty_assets, checks=False).success
    with db.reader() as conn:
        before = _query(conn, "SELECT * FROM staging.royalty_allocations ORDER BY ALL")

    edited = warehouse_env / "royalty_allocations.csv"
    text = (CURATED / "royalty_allocations.csv").read_text(encoding="utf-8")
    edited.write_text(text.replace(",2163944957,", ",2163944958,", 1), encoding="utf-8")
    monkeypatch.setenv("CONTEXT_LENS_FILE_ROOTS", str(warehouse_env))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__ROYALTIES_CURATED__ALLOCATIONS", edited.as_uri())
    monkeypatch.setenv(
        "CONTEXT_LENS_ENDPOINT__ROYALTIES_CURATED__STATED_TOTALS", (warehouse_env / "totals.csv").as_uri()
    )
    shutil.copyfile(CURATED / "royalty_stated_totals.csv", warehouse_env / "totals.csv")
    result = _run(royalty_assets, checks=False)
    assert not result.success
    failure = _failure_text(result)
    assert "fondo_puente 2024" in failure and "difference +1" in failure
    with db.reader() as conn:
        assert _query(conn, "SELECT * FROM staging.royalty_allocations ORDER BY ALL") == before
        assert _query(
            conn, "SELECT status FROM core.source_status WHERE source_id = 'royalties_curated'"
        ) == [("failed",)]


def test_curated_sensor_asks_for_a_run_only_when_the_files_change():
    first = finance.royalty_curated_changed(build_sensor_context(cursor=None))
    assert isinstance(first, RunRequest)
    again = finance.royalty_curated_changed(build_sensor_context(cursor=first.run_key))
    assert isinstance(again, SkipReason)


# --- live: SINIM's POST forms and mindicador against a local server ------------------------------

LIVE_SINIM_YEARS = [2020]  # the SAMPLE leaves Ollagüe's Patentes Mineras 2020 blank: served "No Recepcionado"
LIVE_CALENDAR_YEARS = [2020, 2024]
LIVE_COMUNAS = ["02101", "02201", "02202"]  # a few, to keep the walk short


def _chilean(text: str, variable: str) -> str:
    """How SINIM's data service writes a number: '1.532.715', '42,31'; blank = 'No Recepcionado'."""
    if text == "":
        return "No Recepcionado"
    if variable == "1272":
        return f"{float(text):.2f}".replace(".", ",")
    return f"{round(float(text)):,}".replace(",", ".")


def _serve_live(server, monkeypatch, values_reply=None):
    cells = {(r["variable_id"], int(r["año"]), r["cut_comuna"]): r["valor"] for r in _sample_extract()}
    names = {c: r["municipio"] for r in _sample_extract() for c in [r["cut_comuna"]]}

    def values(handler):
        form = dict(parse_qsl(server.requests[-1]["body"].decode()))  # the request being answered
        key = next(k for k in form if k.endswith("[id_periodo]"))
        variable, year = key.split("][")[1], int(form[key]) + 1999
        comuna = form["municipios[0][idLegal]"]
        answer = {
            "valor": _chilean(cells[(variable, year, comuna)], variable),
            "col": "1",
            "classtype": "par",
        }
        body = json.dumps({"textos": [{**answer, "municipio": names[comuna]}]}).encode()
        return Reply(200, body, {"Content-Type": "application/json"})

    def mindicador_series(handler):
        _, _, indicator, year = urlparse(handler.path).path.split("/")
        path = SAMPLES / f"mindicador_{indicator}_{year}_SAMPLE.json"
        if not path.exists():
            return Reply(404, b'{"error": "not found"}', {"Content-Type": "application/json"})
        return Reply(200, path.read_bytes(), {"Content-Type": "application/json"})

    def pagos(handler):
        query = dict(parse_qsl(urlparse(handler.path).query))
        where = json.loads(query["where"])
        path = (
            SAMPLES / f"presupuesto_abierto_pagos_region{where['region']:02d}_{where['periodo']}_SAMPLE.json"
        )
        if not path.exists():
            return Reply(404, b"[]", {"Content-Type": "application/json"})
        return Reply(200, path.read_bytes(), {"Content-Type": "application/json"})

    json_file = lambda name: Reply(200, (SAMPLES / name).read_bytes(), {"Content-Type": "application/json"})  # noqa: E731
    server.script("/sinim/filtros", json_file("sinim_obtener_datos_filtros_SAMPLE.json"))
    server.script("/sinim/municipios", json_file("sinim_obtener_municipios_SAMPLE.json"))
    server.script("/sinim/valores", values_reply or values)
    for indicator in ("dolar", "uf"):
        for year in LIVE_CALENDAR_YEARS:
            server.script(f"/api/{indicator}/{year}", mindicador_series)
    server.script("/pagos", pagos)
    for name, path in (
        ("catalogue", "/sinim/filtros"),
        ("municipalities", "/sinim/municipios"),
        ("values", "/sinim/valores"),
    ):
        monkeypatch.setenv(f"CONTEXT_LENS_ENDPOINT__SINIM__{name.upper()}", server.url(path))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__MINDICADOR__API", server.url("/api"))
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__PRESUPUESTO_ABIERTO__PAGOS", server.url("/pagos"))
    monkeypatch.setattr(finance_sources, "study_scope", lambda: (LIVE_COMUNAS, ["02"]))
    monkeypatch.setattr(finance_sources, "sinim_years", lambda: LIVE_SINIM_YEARS)
    monkeypatch.setattr(finance_sources, "calendar_years", lambda: LIVE_CALENDAR_YEARS)
    return cells


def _tables():
    with db.reader() as conn:
        return _table_rows(conn)


def _table_rows(conn):
    return {
        "staging": _query(conn, "SELECT * FROM staging.sinim_finance ORDER BY ALL"),
        "observations": _query(conn, "SELECT * FROM core.observations ORDER BY ALL"),
        "amounts": _query(conn, "SELECT * FROM core.finance_amounts ORDER BY ALL"),
    }


def test_live_walk_then_an_error_answer_then_an_outage(warehouse_env, http_server, monkeypatch):
    server = http_server
    monkeypatch.setenv("CONTEXT_LENS_OFFLINE", "1")  # places from their SAMPLE; finance is what goes live
    assert _run([territories.territories], checks=False).success
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE")
    cells = _serve_live(server, monkeypatch)
    result = _run(finance.ASSETS)
    assert result.success, _failure_text(result)

    with db.reader() as conn:
        # Every SINIM form was a POST with the AJAX header; one per variable x year x comuna, plus 2.
        posts = [r for r in server.requests if r["path"].startswith("/sinim/")]
        assert len(posts) == 2 + 5 * len(LIVE_SINIM_YEARS) * len(LIVE_COMUNAS)
        assert all(
            r["method"] == "POST" and r["headers"].get("X-Requested-With") == "XMLHttpRequest" for r in posts
        )
        assert _query(conn, "SELECT status, mode FROM core.source_status WHERE source_id = 'sinim'") == [
            ("live", "live")
        ]
        assert _query(
            conn, "SELECT DISTINCT mode FROM core.snapshots WHERE source_id IN ('sinim', 'mindicador')"
        ) == [("live",)]

        # Values as served (Chilean format) come back as M$ x 1000; 'No Recepcionado' is missing, not zero.
        for (variable, year, comuna), text in cells.items():
            if year not in LIVE_SINIM_YEARS or comuna not in LIVE_COMUNAS:
                continue
            indicator = MONEY_CODES.get(variable, "fcm_dependence_pct")
            observed = _observations(conn, indicator).get((f"comuna:{comuna}", str(year)))
            if text == "":
                assert observed is None
            else:
                expected = float(text) if variable == "1272" else round(float(text)) * 1000
                assert observed == pytest.approx(expected)
        not_received = sum(
            1 for (_, y, c), t in cells.items() if y in LIVE_SINIM_YEARS and c in LIVE_COMUNAS and t == ""
        )
        check = _check_results(result)["sinim_not_received_is_missing"]
        assert check[0] and check[1]["not_received"] == not_received > 0
        statuses = _query(
            conn,
            "SELECT value_status, count(*), count(value) FROM staging.sinim_finance GROUP BY 1 ORDER BY 1",
        )
        assert ("not_received", not_received, 0) in statuses

        # mindicador years it has no answer for are reported, not invented.
        rates = _query(conn, "SELECT DISTINCT year FROM core.finance_annual_rates ORDER BY 1")
        assert rates == [(y,) for y in LIVE_CALENDAR_YEARS]

    # SINIM answers an error object with HTTP 200: a clear error, the earlier tables intact.
    before = _tables()
    error = Reply(200, b'{"error": "Sesion expirada"}', {"Content-Type": "application/json"})
    server.script("/sinim/valores", error)
    result = _run([finance.sinim_municipal_finance, finance.finance_observations], checks=False)
    assert not result.success
    failure = _failure_text(result)
    assert "sinim" in failure and "Sesion expirada" in failure
    with db.reader() as conn:
        assert _table_rows(conn) == before
        status = _query(conn, "SELECT status, error FROM core.source_status WHERE source_id = 'sinim'")[0]
        assert status[0] == "failed" and "Sesion expirada" in status[1]
    assert list((warehouse_env / "raw" / "quarantine" / "sinim").glob("*.bin"))

    # Presupuesto Abierto answers an error page with HTTP 200 where JSON was expected: the fetch
    # layer refuses it and keeps it aside; the earlier live answer is served (stale), unchanged.
    with db.reader() as conn:
        budget_before = _query(conn, "SELECT * FROM staging.presupuesto_abierto_pagos ORDER BY ALL")
    assert budget_before
    server.script("/pagos", Reply(200, b"<html><body>Error 500: servicio no disponible</body></html>"))
    result = _run([finance.regional_budget], checks=False)
    assert result.success, _failure_text(result)
    with db.reader() as conn:
        assert _query(conn, "SELECT * FROM staging.presupuesto_abierto_pagos ORDER BY ALL") == budget_before
        status, mode, error = _query(
            conn, "SELECT status, mode, error FROM core.source_status WHERE source_id = 'presupuesto_abierto'"
        )[0]
    assert (status, mode) == ("stale", "live")
    assert "presupuesto_abierto" in error and "HTML page was served where json was expected" in error
    assert list((warehouse_env / "raw" / "quarantine" / "presupuesto_abierto").glob("*.bin"))

    # SINIM down: the earlier live walk is replayed (stale), never the SAMPLE.
    server.script("/sinim/filtros", Reply(503, b"down"))
    result = _run([finance.sinim_municipal_finance, finance.finance_observations], checks=False)
    assert result.success, _failure_text(result)
    with db.reader() as conn:
        assert _query(conn, "SELECT status, mode FROM core.source_status WHERE source_id = 'sinim'") == [
            ("stale", "live")
        ]
        assert _table_rows(conn) == before


# --- the real SINIM extract through the staging path ---------------------------------------------


def test_real_extract_values_equal_the_warehouse_after_conversion_back_to_thousands(
    warehouse_env, shared_data
):
    path = shared_data / REAL_EXTRACT
    long = sinim.parse_long_extract(path)  # read in place, streamed in chunks
    long["snapshot_id"] = "sinim-real-extract"
    staging = finance_sources.sinim_staging(long)
    with db.writer() as conn, transaction(conn):
        # Country and regions only: the comuna codes then resolve by their region prefix.
        territories.write_territories(conn, territories.build_territories(None, None))
        store.replace_table(conn, "staging", "sinim_finance", staging)
        finance_core.build_core(conn, finance.FAMILY)

    with db.reader() as conn:
        with open(path, encoding="utf-8", newline="") as handle:
            raw = [r for r in csv.DictReader(handle) if r["variable_id"] in MONEY_CODES]
        by_indicator = {indicator: _observations(conn, indicator) for indicator in MONEY_CODES.values()}
        compared = 0
        for row in raw:
            key = (f"comuna:{row['cut_comuna']}", row["año"])
            observed = by_indicator[MONEY_CODES[row["variable_id"]]].get(key)
            if row["valor"] == "":
                assert observed is None
                continue
            assert observed / 1000 == float(row["valor"])  # back to M$, exactly
            compared += 1
        assert compared == sum(1 for r in raw if r["valor"] != "") > 0
        # PROVENANCE.md section 6a: Calama's Patentes Mineras was 1,532,715 M$ in 2019 and 1,917,621 M$ in 2023.
        mining = by_indicator["mining_concession_fees_clp"]
        assert mining[("comuna:02201", "2019")] / 1000 == 1_532_715
        assert mining[("comuna:02201", "2023")] / 1000 == 1_917_621
        nominal = _query(
            conn,
            "SELECT published_value, amount FROM marts.municipal_finance WHERE territory_id = 'comuna:02201' "
            "AND year = 2019 AND measure = 'mining_concession_fees' AND basis = 'nominal_clp'",
        )
        assert nominal == [(1_532_715.0, 1_532_715_000.0)]

        # Region 02 sums all 9 comunas; the 4 other capitals' regions are incomplete and get no sum.
        total_income = by_indicator["municipal_total_income_clp"]
        for year in ("2019", "2023"):
            values = [
                float(r["valor"])
                for r in raw
                if r["variable_id"] == "1110" and r["año"] == year and r["cut_comuna"][:2] == "02"
            ]
            assert len(values) == 9 and total_income[("region:02", year)] == pytest.approx(sum(values) * 1000)
        assert not [t for t, _ in total_income if t in ("region:01", "region:03", "region:04", "region:13")]

        # The region's FCM dependence: 100 x sum FCM / sum (IPP + FCM), computed here from the file.
        with open(path, encoding="utf-8", newline="") as handle:
            cells = {
                (r["cut_comuna"], r["año"], r["variable_id"]): float(r["valor"])
                for r in csv.DictReader(handle)
                if r["valor"]
            }
        fcm = sum(cells[(c, "2022", "880")] for c in REGION_02)
        ipp = sum(cells[(c, "2022", "879")] for c in REGION_02)
        assert _observations(conn, "fcm_dependence_pct")[("region:02", "2022")] == pytest.approx(
            100 * fcm / (ipp + fcm)
        )


def test_regional_sums_only_for_whole_regions_and_the_rest_reported_with_their_coverage():
    """A region's SINIM sum needs every comuna of the official division; a blank cell is no part."""
    valparaiso = ["05101", "05102", "05103"]  # 3 of Valparaíso's 38 comunas (official division)
    rows = [(c, 2021, float(i), f"s-2021-{i}") for i, c in enumerate(REGION_02, start=1)]
    rows += [(c, 2022, float(i), "s-2022") for i, c in enumerate(REGION_02[:-1], start=1)]
    rows += [(REGION_02[-1], 2022, float("nan"), "s-2022")]  # "No Recepcionado": missing, not zero
    rows += [(c, 2021, 1.0, "s-2021-5") for c in valparaiso]
    frame = pd.DataFrame(rows, columns=["comuna_code", "year", "value", "snapshot_id"])
    frame["measure"] = "total_income"

    totals, incomplete = finance_amounts.regional_sums(frame, ["year", "measure"])

    assert totals.to_dict("records") == [
        {
            "region_code": "02",
            "year": 2021,
            "measure": "total_income",
            "value": float(sum(range(1, 10))),
            "parts": 9,
            "snapshot_id": "s-2021-9",  # the newest of the parts'
        }
    ]
    assert sorted(incomplete) == [
        "region:02 2022 total_income: 8 of 9 comunas",
        "region:05 2021 total_income: 3 of 38 comunas",
    ]


def test_royalty_region_totals_only_where_every_fund_lists_the_whole_region():
    """Region 02 lists fondo_puente for all 9 comunas (summed); region 03 lists 2 comunas (no total,
    reported '2 of 9 comunas'); region 05 lists fondo_x for 3 comunas besides a region-level row
    (no total either: the region row plus a few comunas is no value of the region)."""
    rows = [("fondo_puente", f"comuna:{c}", float(i)) for i, c in enumerate(REGION_02, start=1)]
    rows += [("fondo_puente", "comuna:03101", 10.0), ("fondo_puente", "comuna:03102", 20.0)]
    rows += [("fondo_x", f"comuna:0510{i}", 1.0) for i in (1, 2, 3)] + [("fondo_x", "region:05", 100.0)]
    rows += [("fondo_y", "region:06", 7.0)]  # a region-level allocation alone is the region's own
    amounts = pd.DataFrame(rows, columns=["detail", "territory_id", "amount_clp"]).assign(
        measure="royalty_allocation", year=2024, snapshot_id="royalties_curated-s", verification="checked"
    )

    comunas, regions, region_comunas, left_out = finance_series.royalty_totals(amounts)

    assert len(comunas) == len(REGION_02) + 2 + 3
    assert dict(zip(regions["territory_id"], regions["value"], strict=True)) == {
        "region:02": float(sum(range(1, 10))),
        "region:06": 7.0,
    }
    assert dict(zip(region_comunas["territory_id"], region_comunas["value"], strict=True)) == {
        "region:02": float(sum(range(1, 10)))
    }
    assert left_out == {  # official division: Atacama has 9 comunas, Valparaíso 38
        "region:03 2024": "fondo_puente: 2 of 9 comunas",
        "region:05 2024": "fondo_x: 3 of 38 comunas",
    }


def test_credentials_stay_out_of_request_keys():
    base = {"function": "GetSeries", "timeseries": "F073.UFF.PRE.Z.D"}
    one = request_key("GET", "https://si3.bcentral.cl/x", {**base, "user": "a", "pass": "secret-1"})
    two = request_key("GET", "https://si3.bcentral.cl/x", {**base, "user": "a", "pass": "secret-2"})
    other = request_key("GET", "https://si3.bcentral.cl/x", {**base, "timeseries": "F073.TCO.PRE.Z.D"})
    assert one == two != other

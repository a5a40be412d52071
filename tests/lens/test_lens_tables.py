"""Lens tables, report and export on the SAMPLE warehouse: every figure recomputed here by hand."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from pipelines.lens import build_lens
from pipelines.resources import WarehouseResource
from pipelines.studies import StudyConfigError, parse_study
from tests.lens import sample_warehouse as sw
from warehouse import db


def _rows(sql: str, params=None) -> list[dict]:
    with db.reader() as conn:
        cursor = conn.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _slope(points: dict[int, float]) -> float:
    xs, ys = list(points), list(points.values())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def test_site_places_the_study_in_comuna_region_and_basin(sample_env):
    sites = _rows("SELECT * FROM lens.sample_lens_test_sites")
    assert len(sites) == 1
    site = sites[0]
    assert (site["comuna_id"], site["region_id"], site["basin_id"]) == (
        "comuna:02201",
        "region:02",
        "basin:021",
    )
    assert site["status"] == "resolved"
    roles = {
        r["territory_id"]: (r["role"], r["origin"])
        for r in _rows("SELECT * FROM lens.sample_lens_test_territories")
    }
    assert roles["region:02"][0] == "focus" and "site: Sample site near Calama" in roles["region:02"][1]
    assert roles["country:CL"][0] == "comparison" and roles["basin:034"][0] == "peer"


def test_every_study_observation_is_in_the_lens_once(sample_env):
    wanted = {"comuna:02201", "comuna:02101", "region:02", "basin:021", "basin:025", "basin:034"}
    wanted |= {"country:CL", "oecd:OECD"}
    expected = {
        (i, t, p)
        for i, territories in sw.SAMPLE_VALUES.items()
        for t, periods in territories.items()
        for p in periods
        if t in wanted
    }
    rows = _rows("SELECT indicator_id, territory_id, period FROM lens.sample_lens_test_indicators")
    assert len(rows) == len(expected)
    assert {(r["indicator_id"], r["territory_id"], r["period"]) for r in rows} == expected


def test_comparisons_ratio_difference_and_peer_median(sample_env):
    rows = {
        (r["indicator_id"], r["territory_id"], r["period"]): r
        for r in _rows("SELECT * FROM lens.sample_lens_test_indicators WHERE role = 'focus'")
    }
    calama = rows[("sample_asr", "comuna:02201", "2016-2020")]
    chile = sw.expected("sample_asr", "country:CL", "2016-2020")
    assert calama["compared_with"] == "country:CL"
    assert calama["ratio"] == pytest.approx(585.0 / chile)
    assert calama["difference"] == pytest.approx(585.0 - chile)
    loa = rows[("sample_flow_change", "basin:021", "1976-1995 to 2001-2020")]
    peers = [
        sw.expected("sample_flow_change", b, "1976-1995 to 2001-2020") for b in ("basin:025", "basin:034")
    ]
    assert loa["compared_with"] == "peers:basin" and loa["comparison_count"] == 2
    assert loa["comparison_value"] == pytest.approx(statistics.median(peers))
    assert loa["difference"] == pytest.approx(-24.8 - statistics.median(peers))
    # The region is compared with Chile in _indicators and with the OECD as well in _comparisons.
    region = _rows(
        "SELECT compared_with, ratio FROM lens.sample_lens_test_comparisons "
        "WHERE indicator_id = 'sample_gdp' AND territory_id = 'region:02' AND period = '2020' ORDER BY 1"
    )
    value = sw.expected("sample_gdp", "region:02", "2020")
    assert [r["compared_with"] for r in region] == ["country:CL", "oecd:OECD"]
    assert region[0]["ratio"] == pytest.approx(value / sw.expected("sample_gdp", "country:CL", "2020"))
    assert region[1]["ratio"] == pytest.approx(value / sw.expected("sample_gdp", "oecd:OECD", "2020"))


def test_trend_is_the_least_squares_slope_over_the_period_of_interest(sample_env):
    row = _rows(
        "SELECT DISTINCT trend_per_year, trend_points, trend_first_year, trend_last_year "
        "FROM lens.sample_lens_test_indicators WHERE indicator_id = 'sample_gdp' AND territory_id = 'region:02'"
    )
    assert len(row) == 1
    points = {int(p): v[0] for p, v in sw.SAMPLE_VALUES["sample_gdp"]["region:02"].items()}
    assert row[0]["trend_per_year"] == pytest.approx(_slope(points))
    assert (row[0]["trend_points"], row[0]["trend_first_year"], row[0]["trend_last_year"]) == (8, 2015, 2022)


def test_provenance_and_freshness_against_cadence(sample_env):
    rows = _rows(
        "SELECT DISTINCT source_id, snapshot_id, mode, licence, freshness, age_days "
        "FROM lens.sample_lens_test_indicators ORDER BY source_id"
    )
    by_source = {r["source_id"]: r for r in rows}
    assert len(rows) == len(by_source) == 3
    assert by_source["sample_stale_src"]["freshness"] == "stale"  # retrieved 100 days ago, cadence 30
    assert by_source["sample_fresh_src"]["freshness"] == "fresh"
    assert by_source["sample_only_src"]["freshness"] == "sample"
    assert all(
        r["snapshot_id"] == sw.snapshot_id(r["source_id"]) and r["licence"] == "SAMPLE licence" for r in rows
    )
    sources = {r["source_id"]: r for r in _rows("SELECT * FROM lens.sample_lens_test_sources")}
    assert sources["sample_stale_src"]["vintage"] == "2019–2023"
    gaps = {(r["kind"], r["subject"]) for r in _rows("SELECT kind, subject FROM lens.sample_lens_test_gaps")}
    assert ("stale", "sample_stale_src") in gaps and ("sample", "sample_only_src") in gaps


def test_rebuild_is_deterministic(sample_env):
    from pipelines import charts

    before = {n: (sample_env.folder / n).read_bytes() for n in ("lens.html", "lens.md")}
    charts._svg.cache_clear()  # the charts are rendered again, not served from memory
    again = build_lens(WarehouseResource(), sample_env.study)
    for name, content in before.items():  # byte-identical documents, charts included
        assert (sample_env.folder / name).read_bytes() == content, name
    assert again.lens.content_hash == sample_env.built.lens.content_hash
    manifest = dict(
        (r["key"], r["value"]) for r in _rows("SELECT key, value FROM lens.sample_lens_test_manifest")
    )
    assert manifest["content_hash"] == again.lens.content_hash


def test_territory_profile_holds_the_latest_value_per_territory_and_indicator(sample_env):
    rows = _rows(
        "SELECT * FROM marts.territory_profile WHERE indicator_id = 'sample_gdp' ORDER BY territory_id"
    )
    assert [r["territory_id"] for r in rows] == ["country:CL", "oecd:OECD", "region:02"]
    for r in rows:
        periods = sw.SAMPLE_VALUES["sample_gdp"][r["territory_id"]]
        latest = max(periods)
        assert (r["period"], r["value"], r["periods_available"]) == (latest, periods[latest][0], len(periods))
        assert r["unit"] == "USD" and r["mode"] == "live" and r["source_id"] == "sample_fresh_src"


def test_report_states_sections_sources_and_sample(sample_env):
    md = (sample_env.folder / "lens.md").read_text(encoding="utf-8")
    page = (sample_env.folder / "lens.html").read_text(encoding="utf-8")
    digest = sample_env.built.lens.content_hash
    for text in (md, page):
        assert digest[:16] in text and "contribution" in text
        for heading in (
            "Governance conditions",
            "State presence and social provision",
            "Structural constraints",
        ):
            assert heading in text
        assert "Sources and limitations" in text and "SAMPLE licence" in text
        assert "Study question" in text
    # The state-presence section is fed only by the sample source: its banner says so at the top.
    state = md.split("## State presence and social provision", 1)[1].split("\n## ", 1)[0]
    assert state.lstrip().splitlines()[2].startswith("> **SAMPLE DATA**")
    structural = md.split("## Structural constraints", 1)[1].split("\n## ", 1)[0]
    assert "SAMPLE DATA" not in structural  # live values only
    assert "claim level: **contribution**" in md
    assert "https://example.invalid/sample_fresh_src" in md  # values link to their source
    # Housing has no indicator here: the report says what is missing instead of failing.
    assert "Informal settlements and housing" in md and "Missing: no indicator on this" in md
    # HTML: a map with the focus polygons, settlements in view, the gauge and the site; charts.
    assert 'data-map="study"' in page and "Sample site near Calama" in page
    assert "SAMPLE settlement A" in page and "SAMPLE settlement far away" not in page
    assert "SAMPLE gauge Loa" in page
    assert page.count('data-chart="series"') >= 2 and 'data-chart="interval"' in page
    assert "http://" not in page.split("<body>", 1)[0].replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<link" not in page and "src=" not in page  # nothing fetched: inline only


def test_export_matches_the_lens_tables_and_describes_them(sample_env):
    folder = sample_env.folder / "data"
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert package["profile"] == "tabular-data-package"
    assert package["context_lens"]["content_hash"] == sample_env.built.lens.content_hash
    assert {s["path"] for s in package["sources"]} >= {
        f"https://example.invalid/{s[0]}" for s in sw.SAMPLE_SOURCES
    }
    csv_resources = [r for r in package["resources"] if r["format"] == "csv"]
    assert {r["name"] for r in csv_resources} >= {
        "indicators",
        "comparisons",
        "sources",
        "gaps",
        "territory-profile",
    }
    counts = {}
    with db.reader() as conn:
        for resource in csv_resources:
            with open(folder / resource["path"], encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                count = counts[resource["name"]] = sum(1 for _ in reader)
            assert header == [f["name"] for f in resource["schema"]["fields"]], resource["name"]
            parquet = folder / resource["path"].replace(".csv", ".parquet")
            assert conn.execute("SELECT count(*) FROM read_parquet(?)", [str(parquet)]).fetchone()[0] == count
        lens_rows = conn.execute("SELECT count(*) FROM lens.sample_lens_test_indicators").fetchone()[0]
    indicators = next(r for r in csv_resources if r["name"] == "indicators")
    units = {i["indicator_id"]: i["unit"] for i in indicators["indicators"]}
    assert units["sample_asr"] == "deaths per 100,000"
    fields = {f["name"]: f for f in indicators["schema"]["fields"]}
    assert fields["value"]["type"] == "number" and "unit" in fields["value"]["description"]
    assert counts["indicators"] == lens_rows


def test_a_site_outside_every_polygon_names_the_field(sample_env, tmp_path):
    sites = sw.CALAMA_SITE + "\n" + '    - {name: "Swapped coordinates", lat: -68.90, lon: -22.40}'
    study = parse_study(sw.write_study(tmp_path, "sample-bad-site", sites))
    with pytest.raises(StudyConfigError, match=r"field 'focus.sites\[1\]'.*lies in no comuna"):
        build_lens(WarehouseResource(), study)

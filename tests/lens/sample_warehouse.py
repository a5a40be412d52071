"""A small warehouse of SAMPLE data for the lens tests: every value here is invented.

The territories carry rough boxes (not official boundaries) around the real places, so a
site near Calama falls in comuna 02201, region 02 and basin 021. The indicators cover the
three lens sections, one with intervals, one ratio, one per basin, one yearly series per
section, from three sources: one fresh and live, one live but older than its cadence, one
sample. Nothing here may be cited; it only exercises the lens mechanics.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from warehouse import db, store

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

# (source_id, mode, days since retrieval, cadence in days)
SAMPLE_SOURCES = [
    ("sample_fresh_src", "live", 1, 120),
    ("sample_stale_src", "live", 100, 30),
    ("sample_only_src", "sample", 2, 365),
]

SAMPLE_BOXES = {  # territory_id: (kind, code, name, parent, (west, south, east, north)) — rough, invented
    "country:CL": ("country", "CL", "Chile", None, None),
    "oecd:OECD": ("oecd_area", "OECD", "OECD member countries", None, None),
    "region:02": ("region", "02", "Antofagasta", "country:CL", (-70.8, -26.1, -67.0, -20.9)),
    "comuna:02201": ("comuna", "02201", "Calama", "region:02", (-69.6, -22.9, -67.9, -21.4)),
    "comuna:02101": ("comuna", "02101", "Antofagasta", "region:02", (-70.7, -24.5, -69.0, -23.0)),
    "basin:021": ("basin", "021", "Rio Loa", None, (-70.2, -22.6, -68.0, -21.0)),
    "basin:025": ("basin", "025", "Salar de Atacama", None, (-68.8, -24.3, -67.3, -22.65)),
    "basin:034": ("basin", "034", "Rio Copiapo", None, (-70.4, -28.35, -69.0, -26.9)),
}

SAMPLE_INDICATORS = [
    # indicator_id, label, unit, theme, lens_section, source_id, higher_is
    ("sample_municipal_income", "Municipal income", "CLP", "finance", "governance", "sample_stale_src", None),
    (
        "sample_asr",
        "Death rate",
        "deaths per 100,000",
        "health",
        "state_presence",
        "sample_only_src",
        "worse",
    ),
    (
        "sample_rate_ratio",
        "Rate ratio vs Chile",
        "ratio",
        "health",
        "state_presence",
        "sample_only_src",
        "worse",
    ),
    (
        "sample_flow_change",
        "Flow change",
        "percent",
        "water",
        "structural_constraints",
        "sample_fresh_src",
        None,
    ),
    ("sample_gdp", "GDP per capita", "USD", "economy", "structural_constraints", "sample_fresh_src", None),
]

# Invented values: {indicator: {territory: {period: (value, lower, upper)}}}
SAMPLE_VALUES = {
    "sample_municipal_income": {
        "comuna:02201": {str(y): (100.0 + 7.0 * (y - 2019) + (y % 2), None, None) for y in range(2019, 2024)},
        "comuna:02101": {str(y): (300.0 - 4.0 * (y - 2019), None, None) for y in range(2019, 2024)},
    },
    "sample_asr": {
        "comuna:02201": {"2016-2020": (585.0, 568.0, 603.0)},
        "comuna:02101": {"2016-2020": (555.0, 544.0, 566.0)},
        "region:02": {"2016-2020": (565.0, 557.0, 574.0)},
        "country:CL": {"2016-2020": (554.0, 547.0, 560.0)},
    },
    "sample_rate_ratio": {
        "comuna:02201": {"2016-2020": (1.06, 1.02, 1.09)},
        "comuna:02101": {"2016-2020": (1.0, 0.98, 1.03)},
    },
    "sample_flow_change": {
        "basin:021": {"1976-1995 to 2001-2020": (-24.8, None, None)},
        "basin:025": {"1976-1995 to 2001-2020": (-10.0, None, None)},
        "basin:034": {"1976-1995 to 2001-2020": (-40.0, None, None)},
    },
    "sample_gdp": {
        "region:02": {
            str(y): (50000.0 + 1500.0 * (y - 2015) + 300 * (y % 3), None, None) for y in range(2015, 2023)
        },
        "country:CL": {str(y): (25000.0 + 800.0 * (y - 2015), None, None) for y in range(2015, 2023)},
        "oecd:OECD": {str(y): (45000.0 + 1400.0 * (y - 2015), None, None) for y in range(2015, 2023)},
    },
}

STUDY_YAML = """\
# SAMPLE study for the lens tests (invented places in an invented warehouse).
id: {study_id}
title: "SAMPLE lens test: Calama and the Loa"
dates: {{start: 2025-01-01, end: 2025-12-31}}
focus:
  comunas: ["02201", "02101"]
  basins: ["021"]
  sites:
{sites}
comparison:
  territories: ["country:CL", "oecd:OECD"]
  peer_basins: ["025", "034"]
periods:
  economy: [2015, 2022]
claims:
  - id: gdp-above-chile
    text: "SAMPLE claim: the region's GDP per capita is above Chile's."
    indicator: sample_gdp
    territory: "region:02"
    relation: above
    than: "country:CL"
  - id: loa-flow-loss
    text: "SAMPLE claim: the Loa has lost about 75% of its flow."
    indicator: sample_flow_change
    territory: "basin:021"
    relation: approx
    value: -75
    tolerance: 10
  - id: calama-deaths
    text: "SAMPLE claim: deaths in Calama significantly above Chile."
    indicator: sample_rate_ratio
    territory: "comuna:02201"
    relation: above
    value: 1
    significant: true
  - id: income-range
    text: "SAMPLE claim: Calama's municipal income between 120 and 140 in 2022."
    indicator: sample_municipal_income
    territory: "comuna:02201"
    period: "2022"
    relation: range
    low: 120
    high: 140
  - id: not-yet
    text: "SAMPLE claim: several parts, none measurable here."
    checks:
      - indicator: sample_gdp
        territory: "comuna:02201"
        relation: approx
        value: 1
        tolerance_pct: 5
      - indicator: settlements_count
        territory: "region:02"
        relation: above
        value: 100
      - measured_by: "SAMPLE survey that nobody has loaded"
      - open_data: false
        measured_by: "SAMPLE records behind a login"
"""
CALAMA_SITE = '    - {name: "Sample site near Calama", lat: -22.40, lon: -68.90}'


def write_study(folder: Path, study_id: str = "sample-lens-test", sites: str = CALAMA_SITE) -> Path:
    path = folder / f"{study_id}.yaml"
    path.write_text(STUDY_YAML.format(study_id=study_id, sites=sites or "    []"), encoding="utf-8")
    return path


def snapshot_id(source_id: str) -> str:
    return f"{source_id}-SAMPLE-snapshot"


def seed(conn) -> None:
    """Write the SAMPLE sources, territories, indicators and observations (history included)."""
    for source_id, mode, age, cadence in SAMPLE_SOURCES:
        conn.execute(
            "INSERT INTO core.sources VALUES (?, 'sample', 'SAMPLE publisher', ?, ?, 'SAMPLE licence', 'n/a', ?)",
            [source_id, f"SAMPLE source {source_id}", f"https://example.invalid/{source_id}", cadence],
        )
        conn.execute(
            """INSERT INTO core.snapshots (snapshot_id, source_id, name, request_url, method, retrieved_at,
                   sha256, bytes, mode, licence)
               VALUES (?, ?, 'all', 'sample://', 'GET', ?, 'x', 0, ?, 'SAMPLE licence')""",
            [snapshot_id(source_id), source_id, NOW - timedelta(days=age), mode],
        )
        conn.execute(
            "INSERT INTO core.source_status VALUES (?, ?, ?, ?, ?, NULL)",
            [source_id, "sample" if mode == "sample" else "live", mode, snapshot_id(source_id), NOW],
        )
    for territory_id, (kind, code, name, parent, box) in SAMPLE_BOXES.items():
        wkt = None
        if box:
            w, s, e, n = box
            wkt = f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"
        conn.execute(
            "INSERT INTO core.territories (territory_id, kind, code, name, parent_id, geometry) "
            "VALUES (?, ?, ?, ?, ?, ST_GeomFromText(?))",
            [territory_id, kind, code, name, parent, wkt],
        )
    # marts.locate, declared by the territories family with its polygons
    db.run_script(conn, db.SQL_DIR / "views" / "10_territories.sql")
    store.record_indicators(
        conn,
        [
            {
                "indicator_id": i,
                "label": label,
                "unit": unit,
                "theme": theme,
                "lens_section": section,
                "definition": "SAMPLE indicator for tests.",
                "method": "invented",
                "source_id": source,
                "claim_level": "contribution",
                "higher_is": higher,
            }
            for i, label, unit, theme, section, source, higher in SAMPLE_INDICATORS
        ],
    )
    by_source: dict[str, list] = {}
    source_of = {i[0]: i[5] for i in SAMPLE_INDICATORS}
    for indicator, territories in SAMPLE_VALUES.items():
        source = source_of[indicator]
        for territory, periods in territories.items():
            for period, (value, lower, upper) in periods.items():
                by_source.setdefault(source, []).append(
                    (indicator, territory, period, value, lower, upper, None, source, snapshot_id(source))
                )
    for source, rows in by_source.items():
        frame = pd.DataFrame(rows, columns=store.OBSERVATION_COLUMNS)
        store.replace_observations(conn, source, frame)
    # Marts other families publish, in the shapes the lens reads generically.
    conn.execute(
        """CREATE OR REPLACE TABLE marts.settlement_map AS SELECT * FROM (VALUES
           ('SAMPLE settlement A', '{"type":"Point","coordinates":[-68.93,-22.46]}'),
           ('SAMPLE settlement B', '{"type":"Point","coordinates":[-70.40,-23.65]}'),
           ('SAMPLE settlement far away', '{"type":"Point","coordinates":[-70.65,-33.45]}')) t(name, geojson)"""
    )
    conn.execute(
        """CREATE OR REPLACE TABLE marts.sample_gauges AS SELECT * FROM (VALUES
           ('SAMPLE gauge Loa', -68.66, -21.66)) t(gauge_name, lon, lat)"""
    )
    conn.execute(
        """CREATE OR REPLACE TABLE marts.basin_comparison AS SELECT * FROM (VALUES
           ('basin:021', -24.8), ('basin:025', -10.0)) t(basin_id, change_pct)"""
    )


def expected(indicator: str, territory: str, period: str) -> float:
    return SAMPLE_VALUES[indicator][territory][period][0]

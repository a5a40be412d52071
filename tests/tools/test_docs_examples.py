"""Docs that run: every SQL example in README.md and docs/*.md returns rows on the sample build.

Statements are split by DuckDB's own parser and run as `context-lens sql` runs them
(read-only, spatial loaded on demand), from the folder that holds output/, so examples
that read `output/export/...` files work as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from warehouse.query import QuerySession, split_statements

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.S | re.M)


def _examples() -> list:
    examples = []
    for path in DOCS:
        for number, block in enumerate(SQL_BLOCK.findall(path.read_text(encoding="utf-8")), 1):
            for index, statement in enumerate(split_statements(block), 1):
                examples.append(pytest.param(statement, id=f"{path.name}:block{number}:{index}"))
    return examples


EXAMPLES = _examples()


def test_the_docs_have_sql_examples():
    assert len(EXAMPLES) >= 15  # README, finance, health, lens, operations, settlements, territories, water


@pytest.mark.parametrize("statement", EXAMPLES)
def test_every_sql_example_returns_rows(sample_build_env, monkeypatch, statement):
    monkeypatch.chdir(sample_build_env.root)  # examples read output/export/... relative to here
    with QuerySession.warehouse() as session:
        result = session.run(statement)
        assert result is not None, "the example returns no result set"
        rows = list(result.rows())
    assert rows, f"no rows:\n{statement}"


def test_latest_means_the_latest_observed_period_not_a_projection(sample_build_env):
    """INE projects population to 2035; the profile's latest is the newest period already observed."""
    with QuerySession.warehouse() as session:
        latest = list(
            session.run(
                "SELECT p.period, year(p.retrieved_at) FROM marts.territory_profile p "
                "WHERE p.indicator_id = 'population' AND p.territory_id = 'comuna:02201'"
            ).rows()
        )
        projected = list(
            session.run(
                "SELECT max(period) FROM core.observations "
                "WHERE indicator_id = 'population' AND territory_id = 'comuna:02201'"
            ).rows()
        )
        calama_example = next(p.values[0] for p in EXAMPLES if "Calama against Chile" in p.values[0])
        labels = {row[0]: row[2] for row in session.run(calama_example).rows()}
        chile_population_inputs = list(
            session.run(
                "SELECT i.role, s.name, count(*) FROM core.observation_inputs i "
                "JOIN core.snapshots s ON s.snapshot_id = i.input_snapshot_id "
                "WHERE i.indicator_id = 'population' AND i.territory_id = 'country:CL' GROUP BY ALL"
            ).rows()
        )
    assert int(latest[0][0]) <= latest[0][1] < int(projected[0][0])
    assert "2016-2020" in labels.values()  # mortality lines up with Chile's pooled window
    # Chile's population is the one INE states in its national projection (one input each, the
    # national request's snapshot), not the sum of the 11 SAMPLE comunas (issue 13: totals know
    # their coverage), so Calama's population lines up with Chile's for the same year.
    assert [(role, name) for role, name, _ in chile_population_inputs] == [("value", "country-1992-2050")]
    assert "Population" in labels

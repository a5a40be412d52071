"""A lens's gaps are written from their facts in the reader's language (warehouse/texts/gaps.yaml)."""

from __future__ import annotations

import json
import string
from types import SimpleNamespace

import pytest

from pipelines.appendix import gap_sentence_for
from pipelines.writer import Writer
from tests.lens.test_lens_tables import _rows
from warehouse import gaps


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_hold_every_kind_with_the_same_fields():
    texts = gaps.gap_texts()
    assert (
        set(texts["en"]["gaps"])
        == set(texts["es"]["gaps"])
        == set(texts["en"]["labels"])
        == set(texts["es"]["labels"])
    )
    for kind, template in texts["en"]["gaps"].items():
        assert _fields(template) == _fields(texts["es"]["gaps"][kind]), kind
    assert set(texts["en"]["families"]) == set(texts["es"]["families"]) == set(gaps.LENS_SECTIONS)


def test_a_sentence_needs_every_fact_its_words_name():
    with pytest.raises(gaps.GapTextError, match=r"es\.gaps\.stale needs 'retrieved'"):
        gaps.sentence("stale", {"source": "X", "cadence_days": "30"}, "es")
    english = gaps.sentence(
        "partial_data", {"territory": "Calama", "sections": ["governance", "state_presence"]}
    )
    spanish = gaps.sentence(
        "partial_data", {"territory": "Calama", "sections": ["governance", "state_presence"]}, "es"
    )
    assert english == "Calama: no value for governance conditions, state presence."
    assert spanish == "Calama: sin valor para condiciones de gobernanza, presencia del Estado."


def test_the_sample_lens_gaps_carry_facts_and_read_in_spanish(sample_env):
    rows = _rows("SELECT kind, subject, detail, facts FROM lens.sample_lens_test_gaps")
    assert {r["kind"] for r in rows} >= {"stale", "sample"}
    writer = Writer("es", {}, {})
    for row in rows:
        facts = json.loads(row["facts"])
        assert row["detail"] == gaps.sentence(
            row["kind"], facts, "en"
        )  # the table's words come from the facts
        spanish = gap_sentence_for(writer, SimpleNamespace(**row))
        assert spanish != row["detail"] and "{" not in spanish, row
    stale = next(r for r in rows if r["kind"] == "stale")
    assert json.loads(stale["facts"])["source_id"] == "sample_stale_src" and "días" in gap_sentence_for(
        writer, SimpleNamespace(**stale)
    )

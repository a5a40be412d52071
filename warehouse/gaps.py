"""What a lens cannot show, and why: lens.<study>_gaps, one row per gap.

A gap is its kind, its subject (an indicator, territory or source id) and its facts (the
names, counts and dates its sentence needs, as JSON). The sentence itself is written from
`texts/gaps.yaml` in the reader's language: the table's `detail` column in English, the lens
in English or Spanish from the same facts. No words live here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import yaml

from warehouse.registry import LANGUAGES, LENS_SECTIONS

if TYPE_CHECKING:
    from warehouse.lens import LensScope

GAP_TEXTS = Path(__file__).resolve().parent / "texts" / "gaps.yaml"
MAX_TEXT_BYTES = 200_000
GAP_COLUMNS = {
    "kind": "kind of gap (missing indicator, no comparison, flagged value, sample source, ...)",
    "subject": "what the gap is about: an indicator, territory or source id",
    "detail": "the gap in words (English; the lens writes it in the reader's language from facts)",
    "facts": "the names, counts and dates the sentence is written from, as JSON",
}
# Flags that say a value is less reliable (the others are annotations such as the gauge used).
RELIABILITY_FLAGS = (
    "few",
    "provisional",
    "preliminar",
    "estimat",
    "break",
    "suppress",
    "unreliable",
    "sample",
)


class GapTextError(ValueError):
    """texts/gaps.yaml lacks a language, a kind, or a field a sentence needs."""


@lru_cache(maxsize=1)
def gap_texts() -> dict[str, dict]:
    """Every language's gap words, checked: the same kinds in each language."""
    if GAP_TEXTS.stat().st_size > MAX_TEXT_BYTES:
        raise GapTextError(f"{GAP_TEXTS.name}: larger than {MAX_TEXT_BYTES} bytes")
    texts = yaml.safe_load(GAP_TEXTS.read_text(encoding="utf-8"))
    kinds = {lang: set(texts.get(lang, {}).get("gaps", {})) for lang in LANGUAGES}
    if any(k != kinds["en"] for k in kinds.values()) or not kinds["en"]:
        raise GapTextError(f"{GAP_TEXTS.name}: every language must hold the same gap kinds: {kinds}")
    return texts


def sentence(kind: str, facts: dict, lang: str = "en") -> str:
    """The gap in words, in `lang`: section keys and roles become their names there."""
    words = gap_texts()[lang]
    filled = dict(facts)
    if "section" in filled:
        filled["section"] = words["sections"].get(filled["section"], filled["section"])
        filled["families"] = words["families"].get(facts["section"], "")
    if "sections" in filled:
        filled["sections"] = ", ".join(words["sections"].get(s, s) for s in filled["sections"])
    if "role" in filled:
        filled["role"] = words["roles"].get(filled["role"], filled["role"])
    if "territory_kind" in filled:
        filled["territory_kind"] = words["kinds"].get(filled["territory_kind"], filled["territory_kind"])
    if "territories" in filled:
        filled["territories"] = ", ".join(filled["territories"])
    try:
        return words["gaps"][kind].format(**filled)
    except KeyError as missing:
        raise GapTextError(
            f"{GAP_TEXTS.name}: {lang}.gaps.{kind} needs {missing}, not in the facts"
        ) from None


def gap(kind: str, subject: str, /, **facts) -> tuple[str, str, dict]:
    return (kind, subject, facts)


def _coverage_gaps(indicators: pd.DataFrame, territories: pd.DataFrame) -> list[tuple]:
    present = set(indicators["section"].unique())
    gaps = [gap("section_empty", s, section=s) for s in LENS_SECTIONS if s not in present]
    gaps += [gap("unregistered", s, section=s) for s in sorted(present - set(LENS_SECTIONS))]
    for t in territories[territories["role"] == "focus"].itertuples():
        covered = set(indicators.loc[indicators["territory_id"] == t.territory_id, "section"].unique())
        missing = [s for s in LENS_SECTIONS if s in present and s not in covered]
        if not covered:
            gaps.append(gap("no_data", t.territory_id, territory=t.name, territory_id=t.territory_id))
        elif missing:
            gaps.append(
                gap(
                    "partial_data",
                    t.territory_id,
                    territory=t.name,
                    territory_id=t.territory_id,
                    sections=missing,
                )
            )
    for t in territories[territories["role"] != "focus"].itertuples():
        if not (indicators["territory_id"] == t.territory_id).any():
            gaps.append(
                gap(
                    "no_comparison",
                    t.territory_id,
                    territory=t.name,
                    territory_id=t.territory_id,
                    role=t.role,
                )
            )
    return gaps


def _source_gaps(sources: pd.DataFrame) -> list[tuple]:
    gaps = []
    for s in sources.itertuples():
        named = {"source": s.title or s.source_id, "source_id": s.source_id}
        if s.freshness == "sample":
            gaps.append(gap("sample", s.source_id, **named))
        elif s.freshness == "stale":
            retrieved, days = str(s.retrieved_first)[:10], f"{s.cadence_days:g}"
            gaps.append(gap("stale", s.source_id, **named, retrieved=retrieved, cadence_days=days))
        elif s.freshness == "not loaded":
            gaps.append(gap("not_loaded", s.source_id, **named))
        if s.status == "failed":
            gaps.append(gap("failed", s.source_id, **named, error=str(s.error)))
    return gaps


def _value_gaps(indicators: pd.DataFrame) -> list[tuple]:
    labels = indicators.drop_duplicates("indicator_id").set_index("indicator_id")["label"].to_dict()
    reliability = (
        indicators["flag"].fillna("").astype(str).str.lower().str.contains("|".join(RELIABILITY_FLAGS))
    )
    flagged = indicators[reliability & (indicators["role"] == "focus")]
    gaps = [
        gap("flagged", i, count=len(g), indicator=labels.get(i, i), indicator_id=i, flag=flag)
        for (i, flag), g in flagged.groupby(["indicator_id", "flag"], sort=True)
    ]
    unverified = indicators[
        indicators["inputs"].fillna("").astype(str).str.contains("(curated-unverified)", regex=False)
    ]
    gaps += [
        gap("unverified", i, count=len(g), indicator=labels.get(i, i), indicator_id=i, source=source)
        for (i, source), g in unverified.groupby(["indicator_id", "source_id"], sort=True)
    ]
    return gaps


def gap_rows(
    indicators: pd.DataFrame, sources: pd.DataFrame, territories: pd.DataFrame, scope: LensScope
) -> pd.DataFrame:
    """What the reader must know is missing, stale or sample: the scope's notes, then coverage,
    sources and flagged values, each with its facts and its English sentence."""
    gaps = list(scope.notes) + _coverage_gaps(indicators, territories)
    gaps += _source_gaps(sources) + _value_gaps(indicators)
    rows = [
        (
            kind,
            subject,
            sentence(kind, facts),
            json.dumps(facts, sort_keys=True, ensure_ascii=False, default=str),
        )
        for kind, subject, facts in gaps
    ]
    return pd.DataFrame(rows, columns=list(GAP_COLUMNS)).drop_duplicates().reset_index(drop=True)

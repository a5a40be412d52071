"""The lens appendix: the sources with their snapshots and modes, the gaps, and how to rebuild it."""

from __future__ import annotations

import json

from pipelines.reading import flag_text
from pipelines.studies import Study
from pipelines.writer import Writer, _text, link, records
from warehouse.badges import badge
from warehouse.gaps import gap_texts
from warehouse.gaps import sentence as gap_sentence
from warehouse.lens import Lens
from warehouse.registry import presentation


def gap_sentence_for(w: Writer, g) -> str:
    """A gap in the reader's language, from its facts: indicators by their title there, territories
    by their accented names."""
    facts = json.loads(g.facts)
    if "indicator_id" in facts:
        facts["indicator"] = presentation(facts["indicator_id"]).text(w.lang, "label", facts["indicator"])
    if "territory_id" in facts:
        facts["territory"] = w.names.get(facts["territory_id"], facts["territory"])
    if "flag" in facts:
        facts["flag"] = flag_text(facts["flag"], w.lang)
    return gap_sentence(g.kind, facts, w.lang)


def sources_view(w: Writer, lens: Lens) -> dict:
    b = w.b
    rows = []
    for s in records(lens.tables["sources"]):
        snapshots = [x for x in (_text(s.snapshots)).split(", ") if x]
        shown = snapshots[-1] if snapshots else ""
        if len(snapshots) > 1:
            shown += " " + b["more_snapshots"].format(count=len(snapshots) - 1)
        mode = badge(s.mode, s.freshness) if s.mode else ""
        rows.append(
            [
                link(s.title or s.source_id, s.landing_url),
                s.source_id,
                _text(s.publisher),
                _text(s.licence),
                _text(s.vintage),
                shown,
                _text(s.retrieved_last)[:10],
                {"badge": mode, "text": w.badge_text(mode)} if mode else "",
                b["cadence"].format(freshness=s.freshness, days=w.num(s.cadence_days, "count")),
                _text(s.status),
            ]
        )
    gaps = [
        {
            "label": gap_texts()[w.lang]["labels"].get(kind, kind),
            "details": [gap_sentence_for(w, g) for g in records(group)],
        }
        for kind, group in lens.tables["gaps"].groupby("kind", sort=False)
    ]
    return {
        "header": [
            b["source"],
            b["source_id"],
            b["publisher_title"],
            b["licence"],
            b["vintage"],
            b["snapshot"],
            b["retrieved"],
            b["mode"],
            b["freshness"],
            b["status"],
        ],
        "rows": rows,
        "gaps": gaps,
    }


def reproducibility_view(w: Writer, study: Study, lens: Lens) -> list[str]:
    b = w.b
    as_of = lens.as_of.isoformat() if lens.as_of else w.t["latest"]
    command = f"context-lens build --study {study.id}" + (f" --as-of {as_of}" if lens.as_of else "")
    return [
        b["as_of_line"].format(as_of=as_of, reference=lens.reference_date.isoformat()),
        b["hash_line"].format(digest=lens.content_hash),
        b["tables_line"].format(prefix=lens.prefix),
        b["data_line"],
        b["rebuild_line"].format(command=command),
    ]

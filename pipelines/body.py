"""The body of the lens (focus, sections, sources, reproducibility) as values ready to print.

Like `pipelines.reading` for the front matter, this module only prepares plain dicts and
strings in the reader's language; `templates/lens.html.j2` and `templates/lens.md.j2` hold every
tag, and `templates/texts.yaml` (key `body`) every word. Numbers are written by
`reading.Numbers` (Babel), names keep their accents, and no internal identifier reaches the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd
from markupsafe import Markup

from pipelines import charts
from pipelines.lens_map import map_svg
from pipelines.reading import Numbers, _missing, accented, number_format, territory_names, texts
from pipelines.studies import Study
from warehouse.badges import badge
from warehouse.lens import KIND_ORDER, ROLE_ORDER, SECTION_ORDER, Lens, LensScope, period_years
from warehouse.registry import presentation


@dataclass(frozen=True)
class Topic:
    key: str
    keywords: tuple[str, ...]  # matched in theme and indicator id when the registry declares no topic


# Which topics each section holds, in order; their titles and what would fill them are in texts.yaml.
TOPICS = {
    "governance": (
        Topic(
            "finance", ("financ", "revenue", "transfer", "royalt", "budget", "fiscal", "municipal", "spend")
        ),
        Topic("conflicts", ("conflict",)),
    ),
    "state_presence": (
        Topic("health", ("health", "mortal", "death", "asr", "rate_ratio", "facilit", "bed")),
        Topic("housing", ("settlement", "campamento", "housing", "household", "dwelling")),
    ),
    "structural_constraints": (
        Topic("water", ("water", "hydro", "flow", "stream", "discharge", "runoff")),
        Topic("air", ("air", "pm10", "pm25", "sinca", "arsenic")),
        Topic(
            "economy",
            ("econom", "inequal", "gdp", "unemploy", "gini", "labour", "income", "demograph", "population"),
        ),
    ),
}
# Mart tables shown as they are, under a section's topic.
MART_SECTIONS = {"basin_comparison": ("structural_constraints", "water")}
# Lists of the focus territories' cases, under a section's topic.
LIST_SECTIONS = {"focus_conflicts": ("governance", "conflicts")}
MART_ROWS = 40


def records(frame: pd.DataFrame) -> list[SimpleNamespace]:
    return [SimpleNamespace(**row) for row in frame.to_dict("records")]


def _text(value) -> str:
    return "" if _missing(value) else str(value)


UNIT_SIGNS = (("m3/s", "m³/s"), ("km2", "km²"), ("ug/m3", "µg/m³"))


def unit_text(unit: str) -> str:
    """Units as printed: m³/s, km², µg/m³."""
    for plain, printed in UNIT_SIGNS:
        unit = unit.replace(plain, printed)
    return unit


def link(text: str, href: str | None) -> dict:
    return {"text": text, "href": href or ""}


# --- indicator blocks ---------------------------------------------------------------------------


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    keys = rows.assign(
        _role=rows["role"].map(ROLE_ORDER), _kind=rows["territory_kind"].map(KIND_ORDER).fillna(9)
    )
    return keys.sort_values(["_role", "_kind", "territory_id", "period"]).drop(columns=["_role", "_kind"])


def headline(rows: pd.DataFrame, last_year: int) -> pd.DataFrame:
    """One row per territory at the indicator's headline period, so the table compares like with like.

    The headline period is, among the periods in the study's period of interest that start by the
    study's last year (no projections), the one most focus territories have, the latest on ties.
    A territory without it shows its own latest such period.
    """
    spans = [period_years(p) or (0, 0) for p in rows["period"]]
    ranked = rows.assign(_start=[a for a, _ in spans], _end=[b for _, b in spans])
    candidates = ranked[ranked["in_study_period"] & (ranked["_start"] <= last_year)]
    candidates = candidates if len(candidates) else ranked
    focus = candidates[candidates["role"] == "focus"]
    counts = (focus if len(focus) else candidates).groupby("period")["territory_id"].nunique()
    ends = candidates.drop_duplicates("period").set_index("period")["_end"]
    best = max(counts.index, key=lambda p: (counts[p], ends[p], p))
    chosen = candidates[candidates["period"] == best]
    rest = candidates[~candidates["territory_id"].isin(chosen["territory_id"])]
    rest = rest.sort_values(["_end", "period"]).groupby("territory_id", sort=False).tail(1)
    return _ordered(pd.concat([chosen, rest]).drop(columns=["_start", "_end"]))


def _signed(num: Numbers, value, kind: str) -> str:
    if _missing(value):
        return num(value)
    return ("+" if value > 0 else "") + num(value, kind)


@dataclass
class Writer:
    """What every block needs: the language's texts and numbers, territory and source names."""

    lang: str
    names: dict[str, str]
    source_titles: dict[str, str]

    @property
    def t(self) -> dict:
        return texts(self.lang)

    @property
    def b(self) -> dict:
        return texts(self.lang)["body"]

    @property
    def num(self) -> Numbers:
        return Numbers(self.lang)

    @classmethod
    def for_lens(cls, lens: Lens, scope: LensScope, lang: str) -> Writer:
        sources = lens.tables["sources"]
        titles = dict(zip(sources["source_id"], sources["title"], strict=True))
        return cls(lang, territory_names(scope, lang), titles)

    def badge_text(self, mode: str) -> str:
        return self.t["badges"].get(mode, mode)


def _value_cell(w: Writer, r, kind: str) -> str:
    text = w.num(r.value, kind)
    if not _missing(r.lower) or not _missing(r.upper):
        text += f" [{w.num(r.lower, kind)}–{w.num(r.upper, kind)}]"
    return text


def _trend_cell(w: Writer, r, kind: str) -> str:
    if _missing(r.trend_per_year):
        return ""
    return w.b["trend_cell"].format(
        slope=_signed(w.num, r.trend_per_year, kind),
        first=int(r.trend_first_year),
        last=int(r.trend_last_year),
        points=w.num(r.trend_points, "count"),
    )


def _block_charts(
    w: Writer, named: pd.DataFrame, latest: pd.DataFrame, title: str, unit: str, kind: str
) -> list:
    """The indicator's series chart, and its latest values with their intervals (a bar chart when
    there are no intervals and a single period)."""
    indicator_id = named.iloc[0].indicator_id
    drawn = [charts.series_chart(named, unit, title, w.lang, kind)]
    interval = charts.interval_chart(latest, unit, title, indicator_id, w.lang, kind)
    if not interval and named["period"].nunique() == 1:
        interval = charts.bar_chart(latest, unit, title, w.lang, kind)
    drawn.append(interval)
    return drawn


def _table_row(w: Writer, r, kind: str, targets: list[str], lookup: dict) -> list:
    """One territory's cells: value, its ratio to each compared territory, flag, source, mode."""
    cells = [r.territory_name, w.b["roles"].get(r.role, r.role), _text(r.period), _value_cell(w, r, kind)]
    for target in targets:
        c = lookup.get((r.territory_id, r.period, target))
        cells.append(
            ""
            if c is None or _missing(c.ratio)
            else f"×{w.num(c.ratio, 'ratio')} ({_signed(w.num, c.difference, kind)})"
        )
    mode = badge(r.mode, r.freshness)
    cells += [
        _text(r.flag),
        link(w.source_titles.get(r.source_id, r.source_id), r.source_url),
        {"badge": mode, "text": w.badge_text(mode)},
    ]
    return cells


def indicator_block(w: Writer, rows: pd.DataFrame, comparisons: pd.DataFrame, last_year: int) -> dict:
    first = rows.iloc[0]
    indicator_id = first.indicator_id
    shown = presentation(indicator_id)
    unit = unit_text(shown.text(w.lang, "unit", _text(first.unit)))
    label = shown.text(w.lang, "label", _text(first.label))
    kind = number_format(indicator_id, _text(first.unit))
    named = rows.assign(
        territory_name=rows["territory_id"].map(w.names).fillna(rows["territory_name"]),
        source_title=rows["source_id"].map(w.source_titles),
    )
    latest = headline(named, last_year)
    drawn = _block_charts(w, named, latest, f"{label}, {unit}" if unit else label, unit, kind)
    mine = comparisons[comparisons["indicator_id"] == indicator_id]
    if kind == "probability":  # a ratio of two p-values means nothing
        mine = mine.iloc[0:0]
    targets = list(
        mine.sort_values(["is_reference", "compared_with"], ascending=[False, True])
        .drop_duplicates("compared_with")[["compared_with", "compared_with_name"]]
        .itertuples(index=False)
    )
    lookup = {(c.territory_id, c.period, c.compared_with): c for c in records(mine)}
    header = [
        w.b["territory"],
        w.b["role"],
        w.b["period"],
        w.b["value_in"].format(unit=unit) if unit else w.t["value"],
    ]
    header += [w.b["versus"].format(name=w.names.get(target, name)) for target, name in targets]
    header += [w.b["trend"], w.b["flag"], w.b["source"], w.b["mode"]]
    table = [_table_row(w, r, kind, [target for target, _ in targets], lookup) for r in records(latest)]
    higher = first.higher_is if isinstance(first.higher_is, str) else ""
    level = _text(first.claim_level)
    return {
        "anchor": f"ind-{indicator_id}",
        "title": f"{label} ({unit})" if unit else label,
        "claim_level": w.b["claim_levels"].get(level, level),
        "higher_is": w.b["higher_is"].get(higher, ""),
        "definition": shown.text(w.lang, "definition", _text(first.definition)),
        "charts": [Markup(svg) for svg in drawn if svg],
        "header": header,
        "rows": table,
        "compared": bool(targets),
        "source": w.source_titles.get(first.source_id, "") if isinstance(first.source_id, str) else "",
    }


# --- sections -------------------------------------------------------------------------------------


def _topic_of(section_key: str, theme: str, indicator_id: str) -> str:
    declared = presentation(indicator_id).topic
    topics = TOPICS.get(section_key, ())
    if declared and any(t.key == declared for t in topics):
        return declared
    text = f"{theme} {indicator_id}".lower()
    for topic in topics:
        if any(k in text for k in topic.keywords):
            return topic.key
    return "other"


def _sample_note(w: Writer, rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    if (rows["mode"] == "sample").all():
        return w.b["sample_all"]
    sampled = rows.loc[rows["mode"] == "sample", ["indicator_id", "label"]].drop_duplicates("indicator_id")
    labels = sorted(presentation(i).text(w.lang, "label", lab) for i, lab in sampled.itertuples(index=False))
    return w.b["sample_some"].format(labels=", ".join(labels)) if labels else ""


def _human_header(column: str) -> str:
    """A column name as a reader's header: 'reference_mean_m3s' -> 'Reference mean (m³/s)'."""
    units = {"m3s": "(m³/s)", "pct": "(%)", "clp": "(CLP)", "ha": "(ha)", "km2": "(km²)"}
    words = [units.get(part, part) for part in column.split("_")]
    return " ".join(words).capitalize()


def mart_table(w: Writer, name: str, frame: pd.DataFrame, sources: pd.DataFrame) -> dict:
    used = set(frame["source_id"].dropna()) if "source_id" in frame.columns else set()
    links = [link(s.title or s.source_id, s.landing_url) for s in records(sources) if s.source_id in used]
    ids = [c for c in frame.columns if c.endswith("_id")]  # ids are for machines; names stay
    shown = frame.drop(columns=ids).head(MART_ROWS)
    if "basin_name" in shown.columns:
        shown = shown.assign(basin_name=shown["basin_name"].map(accented))
    rows = []
    for row in shown.itertuples(index=False):
        rows.append([w.num(v) if isinstance(v, float) else _text(v) for v in row])
    return {
        "title": w.b["marts"].get(name, name.replace("_", " ").capitalize()),
        "links": links,
        "header": [_human_header(str(c)) for c in shown.columns],
        "rows": rows,
        "more": w.b["mart_more"].format(shown=len(shown), total=len(frame), name=name)
        if len(frame) > len(shown)
        else "",
    }


def conflicts_view(w: Writer, frame: pd.DataFrame) -> dict:
    """The focus territories' conflicts: title linked to the INDH page, start year, status, where."""
    b = w.b
    rows = []
    for c in records(frame):
        where = _text(c.comuna_name) or w.names.get(f"region:{_text(c.placed_region_code)}", "")
        mode = _text(c.mode) or "unknown"
        rows.append(
            [
                link(_text(c.title), _text(c.url)),
                str(int(c.start_year)) if not _missing(c.start_year) else "",
                b["conflict_status"].get(_text(c.status), _text(c.status)),
                _text(c.sector),
                where,
                b["yes_word"] if c.indigenous_territory is True else "",
                {"badge": mode, "text": w.badge_text(mode)},
            ]
        )
    used = set(frame["source_id"].dropna()) if "source_id" in frame.columns else set()
    return {
        "header": [
            b["conflict"],
            b["year"],
            b["status"],
            b["sector"],
            b["where"],
            b["indigenous"],
            b["mode"],
        ],
        "rows": rows,
        "source": ", ".join(sorted(w.source_titles.get(s, s) for s in used)),
        "sample": (
            ("all" if (frame["mode"] == "sample").all() else "some")
            if len(frame) and (frame["mode"] == "sample").any()
            else ""
        ),
    }


def _distinct_titles(blocks: list[dict]) -> None:
    """Two indicators that read alike (Population, persons) get their source in the title."""
    counts: dict[str, int] = {}
    for block in blocks:
        counts[block["title"]] = counts.get(block["title"], 0) + 1
    for block in blocks:
        if counts[block["title"]] > 1 and block["source"]:
            block["title"] = f"{block['title']} · {block['source']}"


def section_view(
    w: Writer, key: str, rows: pd.DataFrame, comparisons: pd.DataFrame, extras: dict, sources, last_year: int
) -> dict:
    known = w.t["sections"].get(key)
    title = known["title"] if known else w.t["other_section"].format(key=key.replace("_", " "))
    question = known["question"] if known else ""
    has_marts = any(MART_SECTIONS.get(n, ("",))[0] == key for n in extras)
    by_topic = (
        dict(
            iter(
                rows.groupby(
                    [_topic_of(key, t, i) for t, i in zip(rows["theme"], rows["indicator_id"], strict=True)],
                    sort=False,
                )
            )
        )
        if len(rows)
        else {}
    )
    topics = []
    for topic in [*TOPICS.get(key, ()), Topic("other", ())]:
        group = by_topic.get(topic.key)
        marts = [n for n, (s, t) in MART_SECTIONS.items() if s == key and t == topic.key and n in extras]
        lists = [n for n, (s, t) in LIST_SECTIONS.items() if s == key and t == topic.key and n in extras]
        if topic.key == "other" and group is None:
            continue
        texts_of = w.b["topics"].get(topic.key, {})
        entry = {"title": texts_of.get("title", w.b["other_topic"]), "missing": "", "blocks": [], "marts": []}
        if group is None and not marts and not lists:
            entry["missing"] = w.b["topic_missing"].format(expected=texts_of.get("expected", ""))
        if group is not None:
            blocks = dict(iter(group.groupby("indicator_id", sort=True)))
            for indicator_id in sorted(blocks, key=lambda i: (presentation(i).order, i)):  # registry order
                entry["blocks"].append(indicator_block(w, blocks[indicator_id], comparisons, last_year))
        entry["marts"] = [mart_table(w, name, extras[name], sources) for name in marts]
        entry["conflicts"] = (
            conflicts_view(w, extras["focus_conflicts"])
            if LIST_SECTIONS["focus_conflicts"] == (key, topic.key) and "focus_conflicts" in extras
            else None
        )
        if entry["conflicts"] is not None:
            entry["missing"] = ""
        topics.append(entry)
    _distinct_titles([block for topic in topics for block in topic["blocks"]])
    return {
        "key": key,
        "title": title,
        "question": w.b["study_question"].format(question=question) if question else "",
        "sample": _sample_note(w, rows),
        "empty": w.b["section_empty"] if rows.empty and not has_marts else "",
        "topics": topics,
    }


# --- focus, sources, reproducibility ---------------------------------------------------------------


def _placed_by(w: Writer, method: str) -> str:
    return w.b["placed"][method]  # the locator recorded per site (pipelines.lens.LOCATOR)


def _origin(w: Writer, origin: str) -> str:
    """Why a territory is in the study, in the reader's language ('configured; site: X')."""
    words = w.b["origins"]
    parts = []
    for part in origin.split("; "):
        kind, _, name = part.partition(": ")
        parts.append(f"{words.get(kind, kind)}: {name}" if name else words.get(part, part))
    return "; ".join(parts)


def focus_view(w: Writer, study: Study, lens: Lens, scope: LensScope, geo) -> dict:
    b, kinds = w.b, w.t["kinds"]
    territories = scope.territories
    yes_no = lambda flag: b["yes_word"] if flag else b["no_word"]  # noqa: E731
    rows = [
        [
            w.names.get(t.territory_id, t.name),
            kinds.get(t.kind, t.kind),
            b["roles"].get(t.role, t.role),
            _origin(w, _text(t.origin)),
            yes_no(t.in_warehouse),
            yes_no(t.has_geometry),
        ]
        for t in territories.itertuples()
    ]
    sites = [
        [
            s.site,
            w.num.decimal(s.lat, "0.0000"),
            w.num.decimal(s.lon, "0.0000"),
            w.names.get(_text(s.comuna_id), _text(s.comuna_id)),
            w.names.get(_text(s.region_id), _text(s.region_id)),
            w.names.get(_text(s.basin_id), _text(s.basin_id)),
            _placed_by(w, _text(s.method)),
            f"{b['site_status'].get(s.status, s.status)}: {s.message}",
        ]
        for s in scope.sites.itertuples()
    ]
    periods = ", ".join(f"{name} {a}–{b_}" for name, (a, b_) in study.periods.items()) or b["none_set"]
    indicators = lens.indicators
    coverage = []
    for t in territories[territories["role"] == "focus"].itertuples():
        mine = indicators[indicators["territory_id"] == t.territory_id]
        counts = [str(mine.loc[mine["section"] == s, "indicator_id"].nunique()) for s in SECTION_ORDER]
        coverage.append([w.names.get(t.territory_id, t.name), *counts])
    missing_layers = []
    if geo is not None:
        styles = {layer["style"] for layer in geo.layers}
        missing_layers = [
            b["layer_names"][n]
            for n, s in (("settlements", "settlement"), ("gauges", "gauge"))
            if s not in styles
        ]
    return {
        "title": b["focus_title"],
        "description": study.description or "",
        "territories": rows,
        "sites": sites,
        "dates": b["dates"].format(start=study.start.isoformat(), end=study.end.isoformat(), periods=periods),
        "coverage_header": [b["focus_territory"], *[w.t["sections"][s]["title"] for s in SECTION_ORDER]],
        "coverage": coverage,
        "map": Markup(map_svg(geo, w.lang)) if geo is not None else "",
        "not_on_map": b["not_on_map"].format(layers=", ".join(missing_layers)) if missing_layers else "",
    }


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
    labels = {}
    for i, lab in (
        lens.indicators[["indicator_id", "label"]].drop_duplicates("indicator_id").itertuples(index=False)
    ):
        labels[i] = presentation(i).text(w.lang, "label", lab)
    gaps = []
    for kind, group in lens.tables["gaps"].groupby("kind", sort=False):
        details = []
        for g in records(group):
            detail = _text(g.detail)
            if g.subject in labels:  # flagged values by their indicator's title, not its id
                detail = detail.replace(g.subject, labels[g.subject])
            title = w.source_titles.get(g.subject)
            if title:  # a source by its title (its id is in the sources table above)
                detail = detail.replace(f"{g.subject} ({title})", title)
            details.append(detail)
        gaps.append({"label": b["gap_labels"].get(kind, kind), "details": details})
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


def body_view(study: Study, lens: Lens, scope: LensScope, geo, extras: dict, lang: str) -> dict:
    sources = lens.tables["sources"]
    w = Writer.for_lens(lens, scope, lang)
    indicators = lens.indicators
    keys = [k for k in SECTION_ORDER]
    keys += sorted(set(indicators["section"]) - set(keys))
    comparisons = lens.tables["comparisons"]
    sections = [
        section_view(
            w,
            key,
            indicators[indicators["section"] == key],
            comparisons,
            extras if key in SECTION_ORDER else {},
            sources,
            study.end.year,
        )
        for key in keys
    ]
    attribution = indicators.loc[indicators["claim_level"].fillna("contribution") != "contribution"]
    as_of = lens.as_of.isoformat() if lens.as_of else w.t["latest"]
    return {
        "b": w.b,
        "meta": w.b["meta"].format(
            study=study.id,
            as_of=as_of,
            reference=lens.reference_date.isoformat(),
            digest=lens.content_hash[:16],
        ),
        "attribution": w.b["attribution_warning"].format(
            labels=", ".join(sorted(set(attribution["label"].astype(str))))
        )
        if len(attribution)
        else "",
        "focus": focus_view(w, study, lens, scope, geo),
        "body_sections": sections,
        "sources_table": sources_view(w, lens),
        "reproducibility": reproducibility_view(w, study, lens),
    }

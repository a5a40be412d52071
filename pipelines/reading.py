"""The reader's lens: the claims checked, a summary first, numbers for people, in English or Spanish.

This module only prepares values (plain dicts and strings); every word and tag a reader sees
is in `pipelines/templates/` (Jinja2 templates, the stylesheets and `texts.yaml`), and which
indicators lead each section, their order and how their numbers are written come from the
indicator registry (`display:` in warehouse/indicators/*.yaml). Any section or indicator the
registry holds is rendered without code changes.

Outputs: a front matter (claims table, summary, contents) that opens `lens.html` and
`lens.md`, and `lens.pdf` (WeasyPrint): the front matter, one table of latest values per
section and the sources appendix, with page numbers and a clickable table of contents.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml
from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from pipelines.studies import Study
from warehouse.badges import badge
from warehouse.lens import PEERS, SECTION_ORDER, Lens, LensScope
from warehouse.registry import presentation

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANGS = ("en", "es")
HEADLINES_PER_SECTION = 5
COUNT_UNITS = ("persons", "households", "dwellings", "settlements", "deaths", "count", "number")
# The focus territory a headline speaks for: the broadest one with data.
HEADLINE_KINDS = ("region", "basin", "province", "comuna")


def language(lang: str | None = None) -> str:
    """`lang`, else CONTEXT_LENS_LANG, else English; anything else is refused by name."""
    chosen = (lang or os.environ.get("CONTEXT_LENS_LANG") or "en").strip().lower()
    if chosen not in LANGS:
        raise ValueError(f"unknown language {chosen!r}: expected one of {', '.join(LANGS)}")
    return chosen


@lru_cache(maxsize=1)
def _all_texts() -> dict:
    path = TEMPLATES / "texts.yaml"
    if path.stat().st_size > 500_000:
        raise ValueError(f"{path.name}: larger than 500,000 bytes")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def texts(lang: str) -> dict:
    return _all_texts()[language(lang)]


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def number_format(indicator_id: str, unit: str) -> str:
    """The registry's display.format, else one read from the unit."""
    declared = presentation(indicator_id).format if indicator_id else ""
    if declared:
        return declared
    unit = (unit or "").lower()
    if "clp" in unit or "peso" in unit:
        return "money"
    if unit.startswith("percent") or unit.startswith("%") or "percentage point" in unit:
        return "percent"
    if "ratio" in unit or "_ratio_" in (indicator_id or ""):
        return "ratio"
    if (
        unit.startswith("probability")
        or "p_value" in (indicator_id or "")
        or "pvalue" in (indicator_id or "")
    ):
        return "probability"
    if unit.startswith("index"):
        return "index"
    if " per " in unit:
        return "rate"
    if unit.split(" ")[0] in COUNT_UNITS:
        return "count"
    return "decimal"


def _three(value: float) -> str:
    """A Babel pattern giving at least three significant digits (6.57, 65.7, 657.3)."""
    return "#,##0.00" if abs(value) < 10 else "#,##0.0"


@dataclass(frozen=True)
class Numbers:
    """Numbers written for people in one language (Babel's locale data)."""

    lang: str

    @property
    def locale(self) -> str:
        return texts(self.lang)["locale"]

    def decimal(self, value, pattern: str) -> str:
        return format_decimal(value, format=pattern, locale=self.locale)

    def __call__(self, value, kind: str = "decimal", unit: str = "") -> str:
        if _missing(value):
            return texts(self.lang)["no_value"]
        value = float(value)
        t = texts(self.lang)
        if kind == "money":  # three significant digits in millions or thousands of millions
            if abs(value) >= 1e9:
                return t["money_billion"].format(value=self.decimal(value / 1e9, _three(value / 1e9)))
            if abs(value) >= 1e6:
                return t["money_million"].format(value=self.decimal(value / 1e6, _three(value / 1e6)))
            return self.decimal(round(value), "#,##0") + " CLP"
        if kind == "count":
            return self.decimal(round(value), "#,##0")
        if kind in ("percent", "share"):
            return self.decimal(value, "#,##0.0") + " %"
        if kind == "ratio":
            return self.decimal(value, "#,##0.00")
        if kind == "index":
            return self.decimal(value, "#,##0.00#")
        if kind == "rate" and abs(value) >= 10:
            return self.decimal(value, "#,##0" if abs(value) >= 1000 else "#,##0.0")
        if kind == "probability":  # a p-value below 0.001 is written as such, not as 1.05E-13
            return "< " + self.decimal(0.001, "0.000") if 0 <= value < 0.001 else self.decimal(value, "0.000")
        magnitude = abs(value)
        if magnitude >= 1000:
            return self.decimal(value, "#,##0")
        if magnitude >= 10:
            return self.decimal(value, "#,##0.0")
        if magnitude >= 0.01 or magnitude == 0:
            return self.decimal(value, "#,##0.00#")
        return self.decimal(value, "@@@" if magnitude >= 1e-6 else "0.##E0")  # 0.00816; 5.8E-11

    def of(self, value, indicator_id: str, unit: str) -> str:
        return self(value, number_format(indicator_id, unit), unit)


# --- claims ------------------------------------------------------------------------------------


def _check_texts(study: Study) -> dict[tuple[str, int], dict]:
    """Spanish (and English) texts of each claim and check, from the study file."""
    found = {}
    for claim in study.claims:
        for index, check in enumerate(claim.checks):
            found[(claim.id, index)] = {
                "text": {"en": claim.text, "es": claim.text_es or claim.text},
                "note": {"en": check.note, "es": check.note_es or check.note},
                "measured_by": {"en": check.measured_by, "es": check.measured_by_es or check.measured_by},
            }
    return found


def _rule(row, t: dict, num: Numbers) -> str:
    relation = row.get("relation")
    if _missing(relation) or not relation:
        return ""
    kind = number_format(row.get("indicator_id") or "", row.get("unit") or "")
    fmt = lambda v: num(v, kind)  # noqa: E731
    rules = t["rules"]
    if relation == "approx":
        tolerance = row.get("tolerance")
        if kind in ("percent", "share") and tolerance is not None:  # a tolerance in percentage points
            written = f"{num.decimal(tolerance, '#,##0.0')} {t['points']}"
        else:
            written = fmt(tolerance)
        return rules["approx"].format(tolerance=written, stated=fmt(row.get("stated_value")))
    if relation == "range":
        return rules["range"].format(low=fmt(row.get("stated_low")), high=fmt(row.get("stated_high")))
    than = row.get("than_territory_name")
    if not _missing(than) and than:
        return rules[f"{relation}_than"].format(than=than)
    key = f"{relation}_significant" if bool(row.get("significant")) else relation
    return rules[key].format(stated=fmt(row.get("stated_value")))


ACCENTED_WORDS = Path(__file__).resolve().parents[1] / "sources" / "reference" / "accented_words.csv"
BASIN_KINDS = frozenset({"basin", "subbasin", "subsubbasin"})


@lru_cache(maxsize=1)
def _accent_rules() -> list[tuple[re.Pattern, str]]:
    frame = pd.read_csv(ACCENTED_WORDS, dtype=str, keep_default_na=False)
    return [
        (re.compile(rf"\b{re.escape(plain)}\b"), accented)
        for plain, accented in frame.itertuples(index=False)
    ]


def accented(name: str) -> str:
    """A place name with its accents (sources/reference/accented_words.csv): 'Rio Loa' -> 'Río Loa'.

    A name that already has a non-ASCII letter is left as published.
    """
    if not isinstance(name, str) or not name.isascii():
        return name
    for pattern, replacement in _accent_rules():
        name = pattern.sub(replacement, name)
    return name


def period_text(period: str, lang: str) -> str:
    """A period as the reader's language writes it: '1976-1995 to 2001-2020' -> '1976-1995 a 2001-2020'."""
    return period.replace(" to ", f" {texts(lang)['period_to']} ") if isinstance(period, str) else ""


@lru_cache(maxsize=4)
def _flag_rules(lang: str) -> tuple[tuple[re.Pattern, str], ...]:
    return tuple((re.compile(pattern), words) for pattern, words in texts(lang)["flags"])


def flag_text(flag: str, lang: str) -> str:
    """A value's flag in the reader's language: each '; ' part matched against texts.yaml `flags`
    (pattern, words with \\1 for what the pattern caught); a part no rule knows stays as written."""
    if not isinstance(flag, str) or not flag:
        return ""
    parts = []
    for part in flag.split("; "):
        for pattern, words in _flag_rules(lang):
            match = pattern.fullmatch(part)
            if match:
                part = match.expand(words)
                break
        parts.append(part)
    return "; ".join(parts)


def territory_names(scope: LensScope, lang: str) -> dict[str, str]:
    """Territory names as readers know them (basins with their accents); a name two territories
    share gets its kind (region, comuna)."""
    territories = scope.territories
    if "name" not in territories.columns:
        return {}
    kinds = texts(lang)["kinds"]
    shown = [accented(r.name) if r.kind in BASIN_KINDS else r.name for r in territories.itertuples()]
    counts = pd.Series(shown).value_counts()
    names = {
        r.territory_id: (
            f"{name} ({kinds.get(r.kind, r.kind)})" if counts.get(name, 0) > 1 and name else name
        )
        for r, name in zip(territories.itertuples(), shown, strict=True)
    }
    return {PEERS: texts(lang)["peers_name"], **names}  # the peer-basin median is compared with too


def _claim_value(row: dict, lang: str, num: Numbers, names: dict[str, str]) -> dict | None:
    """What the data says for one check, ready to print; None when nothing was measured."""
    if row.get("value") is None:
        return None
    kind = number_format(row.get("indicator_id") or "", row.get("unit") or "")
    has_interval = row.get("lower") is not None and row.get("upper") is not None
    than = None
    if row.get("than_value") is not None:
        than = {
            "name": names.get(row.get("than_territory_id"), row.get("than_territory_name")),
            "value": num(row["than_value"], kind),
        }
    return {
        "value": num(row["value"], kind),
        "interval": f"{num(row['lower'], kind)}–{num(row['upper'], kind)}" if has_interval else "",
        "than": than,
        "period": period_text(row.get("period") or "", lang),
        "territory": names.get(row.get("territory_id"), row.get("territory_name") or ""),
        "label": presentation(row.get("indicator_id") or "").text(lang, "label", row.get("label") or ""),
        "source": row.get("source_title") or "",
        "badge": row.get("badge") or "",
    }


def _claim_check(row: dict, said: dict, lang: str, t: dict, num: Numbers, names: dict[str, str]) -> dict:
    """One check of a claim: the value, the verdict in words, its reason and rule."""
    verdict, rule_result = row["verdict"], row.get("rule_result")
    verdict_key = "no_open_data" if row.get("reason") == "no_open_data" else verdict
    verdict_note = ""
    if verdict == "sample_only" and rule_result:
        result = t["verdicts"].get(rule_result, rule_result).lower()
        verdict_note = t["verdict_notes"]["sample_only"].format(result=result)
    measured_by = ""
    if verdict == "not_measurable":
        measured_by = (said.get("measured_by") or {}).get(lang, row.get("measured_by") or "")
    return {
        "value": _claim_value(row, lang, num, names),
        "note": (said.get("note") or {}).get(lang, row.get("note") or ""),
        "verdict": verdict,
        "verdict_text": t["verdicts"][verdict_key],
        "verdict_note": verdict_note,
        "reason": t["reasons"].get(row.get("reason") or "", ""),
        "measured_by": measured_by,
        "rule": _rule(row, t, num),
    }


def claims_view(lens: Lens, study: Study, lang: str, names: dict[str, str] | None = None) -> dict:
    """The claims table: one entry per claim, each with its checks, every field ready to print."""
    t, num, names = texts(lang), Numbers(lang), names or {}
    frame = lens.tables.get("claims")
    words = _check_texts(study)
    claims: list[dict] = []
    if frame is None or frame.empty:
        return {"claims": [], "total": 0, "measurable": 0, "sample": 0}
    frame = frame.sort_values(["claim_order", "check_order"])
    for claim_id, rows in frame.groupby("claim_id", sort=False):
        checks = []
        for record in rows.to_dict("records"):
            row = {k: (None if _missing(v) else v) for k, v in record.items()}
            said = words.get((claim_id, int(row["check_order"])), {})
            checks.append(_claim_check(row, said, lang, t, num, names))
        first = rows.iloc[0]
        claims.append(
            {
                "id": claim_id,
                "text": (words.get((claim_id, 0)) or {}).get("text", {}).get(lang, first["claim_text"]),
                "cited": first["cited"] if not _missing(first["cited"]) else "",
                "checks": checks,
            }
        )
    measurable = sum(any(c["verdict"] != "not_measurable" for c in claim["checks"]) for claim in claims)
    sample = int((frame["verdict"] == "sample_only").sum())
    return {"claims": claims, "total": len(claims), "measurable": measurable, "sample": sample}


# --- sections, summary and the indicator tables -------------------------------------------------


def _latest(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest period per indicator and territory (periods compare by their first year, then text)."""
    start = rows["period"].astype(str).str.extract(r"(\d{4})")[0].astype(float)
    ordered = rows.assign(_start=start).sort_values(["_start", "period"])
    return ordered.groupby(["indicator_id", "territory_id"], sort=False).tail(1).drop(columns="_start")


def _focus_row(latest: pd.DataFrame, focus_ids: list[str]):
    """The broadest focus territory with a value (region, then basin, province, comuna)."""
    candidates = latest[latest["territory_id"].isin(focus_ids) & latest["value"].notna()]
    if candidates.empty:
        return None
    rank = candidates["territory_kind"].map(
        lambda k: HEADLINE_KINDS.index(k) if k in HEADLINE_KINDS else len(HEADLINE_KINDS)
    )
    order = candidates.assign(_rank=rank, _pos=candidates["territory_id"].map(focus_ids.index))
    return order.sort_values(["_rank", "_pos"]).iloc[0]


def _indicator_entry(
    indicator_id: str, rows: pd.DataFrame, focus_ids: list[str], lang: str, num: Numbers, names: dict
) -> dict | None:
    latest = _latest(rows)
    focus = _focus_row(latest, focus_ids)
    if focus is None:
        return None
    shown = presentation(indicator_id)
    unit = focus["unit"] or ""
    kind = number_format(indicator_id, unit)
    chile = rows[(rows["territory_id"] == "country:CL") & (rows["period"] == focus["period"])]
    chile_value = chile["value"].iloc[0] if not chile.empty and not _missing(chile["value"].iloc[0]) else None
    mode = badge(focus.get("mode"), focus.get("freshness"))
    higher = focus.get("higher_is")
    return {
        "label": shown.text(lang, "label", focus["label"]),
        "unit": shown.text(lang, "unit", unit),
        "territory": names.get(focus["territory_id"], focus["territory_name"] or ""),
        "period": period_text(str(focus["period"]), lang),
        "value": num(focus["value"], kind),
        "chile": num(chile_value, kind) if chile_value is not None else "",
        "source": focus.get("source_title") or "",
        "badge": mode,
        "higher_is": higher if isinstance(higher, str) and higher in ("better", "worse") else "",
        "headline": shown.headline,
        "indicator_id": indicator_id,
        "value_unit": ""
        if kind in ("money", "percent", "share", "count", "ratio")
        else shown.text(lang, "unit", unit),
        "order": shown.order,
    }


def _section_title(key: str, t: dict) -> tuple[str, str]:
    known = t["sections"].get(key)
    if known:
        return known["title"], known["question"]
    return t["other_section"].format(key=key.replace("_", " ")), ""


def sections_view(lens: Lens, scope: LensScope, lang: str) -> list[dict]:
    """Every section the lens holds, in the declared order, with its headline numbers and its rows."""
    t, num, names = texts(lang), Numbers(lang), territory_names(scope, lang)
    indicators = lens.indicators
    if "source_title" not in indicators.columns:
        titles = lens.tables["sources"].set_index("source_id")["title"]
        indicators = indicators.assign(source_title=indicators["source_id"].map(titles))
    roles = scope.territories
    focus_ids = list(roles.loc[roles["role"] == "focus", "territory_id"])
    keys = [k for k in SECTION_ORDER if k in set(indicators["section"])]
    keys += sorted(set(indicators["section"]) - set(keys))
    sections = []
    for key in keys:
        rows = indicators[indicators["section"] == key]
        entries = []
        for indicator_id, group in rows.groupby("indicator_id", sort=False):
            entry = _indicator_entry(indicator_id, group, focus_ids, lang, num, names)
            if entry is not None:
                entries.append(entry)
        entries.sort(key=lambda e: (e["order"], e["label"]))
        headlines = sorted(
            (e for e in entries if e["headline"] is not None), key=lambda e: (e["headline"], e["label"])
        )[:HEADLINES_PER_SECTION]
        title, question = _section_title(key, t)
        sections.append(
            {
                "key": key,
                "anchor": key,  # the id of the section in lens.html and lens.pdf
                "title": title,
                "question": question,
                "headlines": headlines,
                "indicators": entries,
                "sample": any(e["badge"] == "sample" for e in entries),
            }
        )
    return sections


def key_figures(lens: Lens, scope: LensScope, sections: list[dict], lang: str) -> dict:
    """The summary's table: each headline indicator for every focus territory, the region and Chile.

    Rows follow the sections and their headline ranks; a column is a focus territory (region,
    then comunas, then basins) or Chile, kept only when it has a value. A cell from another period
    than the row's names its period; every cell carries its mode badge.
    """
    num, names = Numbers(lang), territory_names(scope, lang)
    roles = scope.territories
    focus = roles[roles["role"] == "focus"]
    rank = focus["kind"].map(lambda k: HEADLINE_KINDS.index(k) if k in HEADLINE_KINDS else 9)
    order = focus.assign(_rank=rank.map({0: 0, 1: 3, 2: 1, 3: 2}).fillna(9)).sort_values(
        "_rank", kind="stable"
    )
    columns = [*order["territory_id"], "country:CL"]
    indicators = lens.indicators
    rows, used = [], set()
    for section in sections:
        for entry in section["headlines"]:
            mine = _latest(indicators[indicators["indicator_id"] == entry["indicator_id"]])
            mine = mine[mine["territory_id"].isin(columns) & mine["value"].notna()]
            by_territory = {r["territory_id"]: r for r in mine.to_dict("records")}
            cells = {}
            for territory_id, r in by_territory.items():
                kind = number_format(entry["indicator_id"], r.get("unit") or "")
                cells[territory_id] = {
                    "value": num(r["value"], kind),
                    "period": "" if str(r["period"]) == entry["period"] else str(r["period"]),
                    "badge": badge(r.get("mode"), r.get("freshness")),
                }
                used.add(territory_id)
            rows.append(
                {"label": entry["label"], "unit": entry["unit"], "period": entry["period"], "cells": cells}
            )
    shown = [c for c in columns if c in used]
    return {"columns": [{"id": c, "name": names.get(c, c)} for c in shown], "rows": rows}


def sources_view(lens: Lens) -> list[dict]:
    sources = lens.tables["sources"]
    out = []
    for row in sources.to_dict("records"):
        row = {k: (None if _missing(v) else v) for k, v in row.items()}
        out.append(
            {
                "title": row.get("title") or "",
                "publisher": row.get("publisher") or "",
                "url": row.get("landing_url") or "",
                "newest": str(row.get("retrieved_last") or "")[:10],
                "mode": badge(row.get("mode"), row.get("freshness")) if row.get("mode") else "",
            }
        )
    return out


# --- rendering ---------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _environment(markdown: bool) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html", "j2")) if not markdown else False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    environment.filters["marked"] = marked
    return environment


def marked(text: str) -> Markup:
    """Escaped text with its **bold** spans as <strong> (the texts' only markup)."""
    escaped = str(escape(text))
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))


def context(study: Study, lens: Lens, scope: LensScope, lang: str) -> dict:
    t = texts(lang)
    as_of = lens.as_of.isoformat() if lens.as_of else t["latest"]
    sections = sections_view(lens, scope, lang)
    return {
        "t": t,
        "lang": lang,
        "study": {"id": study.id, "title": study.title},
        "meta": t["meta"].format(study=study.id, as_of=as_of, reference=lens.reference_date.isoformat()),
        "claims": claims_view(lens, study, lang, territory_names(scope, lang)),
        "sections": sections,
        "key_figures": key_figures(lens, scope, sections, lang),
        "sources": sources_view(lens),
        "stylesheet": stylesheet("print.css") + stylesheet("reader.css"),
    }


def stylesheet(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def front_html(values: dict) -> str:
    return _environment(False).get_template("front.html.j2").render(**values)


def front_markdown(values: dict) -> str:
    return _environment(True).get_template("front.md.j2").render(**values)


def print_html(values: dict) -> str:
    return _environment(False).get_template("print.html.j2").render(**values)


def write_pdf(values: dict, target: Path) -> int:
    """Write lens.pdf from the print template; returns its page count."""
    from weasyprint import HTML  # heavy: imported only when a PDF is written

    document = HTML(string=print_html(values), base_url=str(TEMPLATES)).render()
    temp = target.with_name(f".{target.name}.tmp")
    document.write_pdf(temp)
    temp.replace(target)
    return len(document.pages)


def render_template(name: str, values: dict, markdown: bool) -> str:
    return _environment(markdown).get_template(name).render(**values)

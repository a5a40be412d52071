"""Render a study's lens as `lens.md` and a self-contained `lens.html` (inline CSS, SVG and JS; no network).

Both documents are written from one sequence of blocks (`Doc`), so they say the same
things: every value with its period, unit and a link to its source; a sample banner at the
top of any section fed by sample snapshots; what is missing said in words. The HTML adds a
map projected from the polygons in core.territories and charts (series with trend line,
intervals, bars) that the inline script marks `data-rendered` once drawn.
"""

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pipelines import reading
from pipelines.paths import output_dir
from pipelines.studies import Study
from warehouse.lens import KIND_ORDER, ROLE_ORDER, SECTION_ORDER, Lens, LensScope, period_years
from warehouse.registry import presentation

INTRO = (
    "This context lens documents the territorial conditions around the field study: governance "
    "conditions, state presence and structural constraints. Everything in it is at the **contribution** "
    "level: external conditions outside any site's control, which an assurance scheme can at most "
    "contribute to, never claim as its own site-level outputs (attribution). Every number states its "
    "period, unit and source; values marked SAMPLE are stand-ins written by the context-lens "
    "maintainers for offline runs and must not be cited."
)


@dataclass(frozen=True)
class Topic:
    key: str
    title: str
    keywords: tuple[str, ...]
    expected: str  # what would fill it, said plainly when it is empty


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    question: str
    topics: tuple[Topic, ...] = ()


SECTIONS = [
    Section(
        "governance",
        "Governance conditions",
        "Where do mining revenues go, and how much do regional and municipal governments depend on transfers?",
        (
            Topic(
                "finance",
                "Public finance and dependence on transfers",
                ("financ", "revenue", "transfer", "royalt", "budget", "fiscal", "municipal", "spend"),
                "municipal and regional finance (SINIM, mining royalties under Ley 21.591, Presupuesto Abierto)",
            ),
        ),
    ),
    Section(
        "state_presence",
        "State presence and social provision",
        "How large are the health burden and the housing deficit against the country?",
        (
            Topic(
                "health",
                "Health",
                ("health", "mortal", "death", "asr", "rate_ratio"),
                "age-standardized mortality rates and rate ratios from DEIS deaths and INE population",
            ),
            Topic(
                "housing",
                "Informal settlements and housing",
                ("settlement", "campamento", "housing", "household"),
                "the MINVU catastro of informal settlements (campamentos)",
            ),
        ),
    ),
    Section(
        "structural_constraints",
        "Structural constraints",
        "What water, economic and inequality conditions frame what any site can achieve?",
        (
            Topic(
                "water",
                "Water",
                ("water", "hydro", "flow", "stream", "discharge", "runoff"),
                "streamflow at DGA gauges (CR2 / CAMELS-CL): flow change and trend of the focus basin "
                "against peer basins",
            ),
            Topic(
                "economy",
                "Economy and inequality",
                (
                    "econom",
                    "inequal",
                    "gdp",
                    "unemploy",
                    "gini",
                    "labour",
                    "income",
                    "demograph",
                    "population",
                ),
                "OECD regional statistics: GDP per capita, unemployment and Gini for the region against "
                "Chile and the OECD",
            ),
        ),
    ),
]
MART_SECTIONS = {"basin_comparison": ("structural_constraints", "water")}
GAP_LABELS = {
    "section_empty": "Missing section",
    "sample": "Sample data (do not cite)",
    "stale": "Stale source",
    "failed": "Refresh failed",
    "not_loaded": "Source not loaded by the lens date",
    "no_data": "No data",
    "partial_data": "Partial coverage",
    "unknown_territory": "Territory not in the warehouse",
    "site_unresolved": "Site not placed",
    "site_partial": "Site partly placed",
    "flagged": "Flagged values",
    "unregistered": "Unregistered section",
}
PALETTE = ["#b2182b", "#2166ac", "#1b7837", "#762a83", "#e08214", "#01665e", "#c51b7d", "#8c510a", "#4d4d4d"]


# --- formatting ------------------------------------------------------------------------------


def records(frame: pd.DataFrame) -> list[SimpleNamespace]:
    """Rows as attribute objects; much faster than itertuples on the wide lens frames."""
    return [SimpleNamespace(**row) for row in frame.to_dict("records")]


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt(value) -> str:
    """A number for a reader: thousands separated, three significant decimals below one."""
    if _missing(value):
        return "–"
    value = float(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:,.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def _signed(value) -> str:
    return "–" if _missing(value) else ("+" if value > 0 else "") + fmt(value)


def _date(value) -> str:
    return "–" if _missing(value) or value is pd.NaT else str(value)[:10]


# --- one document, two renderings ------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    text: str
    href: str


def _md_inline(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _html_inline(text: str) -> str:
    """Escape, then honour **bold** and `code` as written in the shared text."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"(?<![*\w])\*(?!\s)([^*]+?)\*(?![*\w])", r"<em>\1</em>", escaped)
    escaped = re.sub(r"\[([^\]]+)\]\(((?:https?://|#)[^)\s]+)\)", r'<a href="\2">\1</a>', escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


@dataclass
class Doc:
    md: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str = "") -> None:
        self.md += ["#" * level + " " + text, ""]
        anchor_attr = f' id="{html.escape(anchor)}"' if anchor else ""
        self.body.append(f"<h{level}{anchor_attr}>{html.escape(text)}</h{level}>")

    def para(self, text: str, css: str = "") -> None:
        self.md += [text, ""]
        css_attr = f' class="{css}"' if css else ""
        self.body.append(f"<p{css_attr}>{_html_inline(text)}</p>")

    def note(self, text: str, css: str) -> None:
        self.md += [f"> {text}", ""]
        self.body.append(f'<p class="{css}">{_html_inline(text)}</p>')

    def bullets(self, items: list, css: str = "") -> None:
        """Items are text or (text, [sub-items])."""
        css_attr = f' class="{css}"' if css else ""
        self.body.append(f"<ul{css_attr}>")
        for item in items:
            text, subs = item if isinstance(item, tuple) else (item, [])
            self.md.append(f"- {text}")
            self.md += [f"  - {sub}" for sub in subs]
            inner = "".join(f"<li>{_html_inline(s)}</li>" for s in subs)
            self.body.append(f"<li>{_html_inline(text)}" + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
        self.md.append("")
        self.body.append("</ul>")

    def table(self, header: list[str], rows: list[list], css: str = "") -> None:
        def md_cell(cell) -> str:
            return (
                f"[{_md_inline(cell.text)}]({cell.href})" if isinstance(cell, Link) else _md_inline(str(cell))
            )

        def html_cell(cell) -> str:
            if isinstance(cell, Link):
                return f'<a href="{html.escape(cell.href)}">{html.escape(cell.text)}</a>'
            return _html_inline(str(cell))

        self.md += ["| " + " | ".join(_md_inline(h) for h in header) + " |", "|" + "---|" * len(header)]
        self.md += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
        self.md.append("")
        css_attr = f' class="{css}"' if css else ""
        self.body.append(
            f'<div class="table-wrap"><table{css_attr}><thead><tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{html_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</tbody></table></div>"
        )

    def html_only(self, fragment: str) -> None:
        if fragment:
            self.body.append(fragment)

    def open(self, tag: str) -> None:
        self.body.append(tag)


# --- charts ----------------------------------------------------------------------------------


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def _svg_open(kind: str, title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" role="img" aria-label="{html.escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{html.escape(title)}</title>"
    )


SERIES_COLUMNS = [
    "territory_id",
    "territory_name",
    "role",
    "value",
    "trend_per_year",
    "trend_intercept",
    "trend_first_year",
    "trend_last_year",
]


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round axis ticks (1, 2, 2.5 or 5 times a power of ten) that cover lo..hi."""
    span = hi - lo
    raw = span / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value < hi + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def series_chart(group: pd.DataFrame, unit: str, title: str) -> str:
    """Yearly series per territory (focus solid, comparisons dashed) with each focus trend line dotted."""
    yearly = group[group["period"].astype(str).str.fullmatch(r"\d{4}") & group["value"].notna()].copy()
    if yearly.empty:
        return ""
    yearly["year"] = yearly["period"].astype(int)
    yearly = yearly[[*SERIES_COLUMNS, "year"]]
    counts = yearly.groupby("territory_id")["year"].nunique()
    yearly = yearly[yearly["territory_id"].isin(counts[counts >= 2].index)]
    if yearly.empty:
        return ""
    width, height, left, right, top, bottom = 640, 230, 64, 170, 16, 30
    x0, x1 = int(yearly["year"].min()), int(yearly["year"].max())
    y0, y1 = float(yearly["value"].min()), float(yearly["value"].max())
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    ticks = nice_ticks(y0, y1)
    y0, y1 = min(y0, ticks[0]), max(y1, ticks[-1])
    sx, sy = _scale(x0, x1, left, width - right), _scale(y0, y1, height - bottom, top)
    parts = [_svg_open("series", title, width, height)]
    parts.append(
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}"/>'
    )
    for tick in sorted({x0, x1, (x0 + x1) // 2}):
        parts.append(
            f'<text class="tick" x="{sx(tick):.1f}" y="{height - 10}" text-anchor="middle">{tick}</text>'
        )
    for tick in ticks:
        parts.append(
            f'<text class="tick" x="{left - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end">{fmt(tick)}</text>'
        )
    territories = yearly[["territory_id", "territory_name", "role"]].drop_duplicates("territory_id")
    kind = territories["territory_id"].str.split(":").str[0].map(KIND_ORDER).fillna(9)
    territories = territories.assign(_role=territories["role"].map(ROLE_ORDER).fillna(9), _kind=kind)
    territories = territories.sort_values(["_role", "_kind", "territory_id"])  # the region before its comunas
    drawn, rest = records(territories.head(len(PALETTE))), records(territories.iloc[len(PALETTE) :])
    parts[0] = parts[0].replace(
        "<svg ", f'<svg data-series="{len(territories)}" data-drawn="{len(drawn)}" ', 1
    )
    for index, t in enumerate(drawn):
        colour = PALETTE[index]
        rows = yearly[yearly["territory_id"] == t.territory_id].sort_values("year")
        dash = "" if t.role == "focus" else ' stroke-dasharray="5 3"'
        points = " ".join(
            f"{sx(y):.1f},{sy(v):.1f}" for y, v in zip(rows["year"], rows["value"], strict=True)
        )
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}"/>'
        )
        points_rows = records(rows)
        for r in points_rows:
            parts.append(
                f'<circle cx="{sx(r.year):.1f}" cy="{sy(r.value):.1f}" r="2.5" fill="{colour}">'
                f"<title>{html.escape(str(t.territory_name))} {r.year}: {fmt(r.value)} {html.escape(unit)}</title></circle>"
            )
        first = points_rows[0]
        if t.role == "focus" and not _missing(first.trend_per_year):
            a, b = int(first.trend_first_year), int(first.trend_last_year)
            slope, intercept = float(first.trend_per_year), float(first.trend_intercept)
            ya, yb = slope * a + intercept, slope * b + intercept
            parts.append(
                f'<line class="trend" x1="{sx(a):.1f}" y1="{sy(ya):.1f}" x2="{sx(b):.1f}" y2="{sy(yb):.1f}" '
                f'stroke="{colour}" stroke-dasharray="1 3" stroke-width="1.5">'
                f"<title>trend {html.escape(str(t.territory_name))} {a}–{b}: {_signed(slope)} {html.escape(unit)} per year</title></line>"
            )
        label_y = top + 14 * index + 8
        parts.append(
            f'<text class="legend" x="{width - right + 10}" y="{label_y}" fill="{colour}">'
            f"{html.escape(str(t.territory_name)[:24])}{'' if t.role == 'focus' else ' (' + t.role + ')'}</text>"
        )
    if rest:  # said, never dropped in silence: the table below and data/ hold every series
        parts.append(
            f'<text class="legend" x="{width - right + 10}" y="{top + 14 * len(drawn) + 8}" fill="#444">'
            f"+ {len(rest)} more in the table</text><title>not drawn: "
            f"{html.escape(', '.join(str(t.territory_name) for t in rest))}</title>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _is_ratio(unit: str, indicator_id: str) -> bool:
    text = f"{unit} {indicator_id}".lower()
    return "ratio" in text or re.search(r"(^|_)rr(_|$)", indicator_id.lower()) is not None


def interval_chart(latest: pd.DataFrame, unit: str, title: str, indicator_id: str) -> str:
    """Dot and whisker per territory for the latest period, with a reference line (1 for ratios)."""
    rows = latest[latest["value"].notna()].copy()
    if rows.empty or not (rows["lower"].notna() | rows["upper"].notna()).any():
        return ""
    rows = rows.head(24)
    width, left, right, row_h, top = 640, 200, 30, 18, 20
    height = top + row_h * len(rows) + 26
    lows = rows["lower"].fillna(rows["value"])
    highs = rows["upper"].fillna(rows["value"])
    reference, reference_name = (
        (1.0, "1 = same as the comparison") if _is_ratio(unit, indicator_id) else (None, "")
    )
    if reference is None:
        country = rows[rows["territory_id"].str.startswith("country:")]
        if len(country):
            reference, reference_name = (
                float(country["value"].iloc[0]),
                str(country["territory_name"].iloc[0]),
            )
    lo = min(float(lows.min()), reference if reference is not None else math.inf)
    hi = max(float(highs.max()), reference if reference is not None else -math.inf)
    pad = (hi - lo) * 0.05 or 1.0
    sx = _scale(lo - pad, hi + pad, left, width - right)
    parts = [_svg_open("interval", title, width, height)]
    if reference is not None:
        parts.append(
            f'<line class="reference" x1="{sx(reference):.1f}" y1="{top - 6}" x2="{sx(reference):.1f}" '
            f'y2="{height - 22}"><title>reference {fmt(reference)}</title></line>'
            f'<text class="tick" x="{sx(reference):.1f}" y="{height - 8}" text-anchor="middle">'
            f"{html.escape(reference_name)}: {fmt(reference)}</text>"
        )
    for index, (r, low, high) in enumerate(zip(records(rows), lows, highs, strict=True)):
        y = top + row_h * index + row_h / 2
        colour = PALETTE[0] if r.role == "focus" else "#555"
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{html.escape(str(r.territory_name)[:28])}</text>'
            f'<line class="whisker" x1="{sx(low):.1f}" y1="{y:.1f}" x2="{sx(high):.1f}" y2="{y:.1f}" stroke="{colour}"/>'
            f'<circle cx="{sx(r.value):.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{html.escape(str(r.territory_name))} '
            f"{html.escape(str(r.period))}: {fmt(r.value)} [{fmt(r.lower)}–{fmt(r.upper)}] {html.escape(unit)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(latest: pd.DataFrame, unit: str, title: str) -> str:
    """Horizontal bars when there is one period and several territories (e.g. nine comunas)."""
    rows = latest[latest["value"].notna()].head(24)
    if len(rows) < 2:
        return ""
    width, left, right, row_h, top = 640, 200, 90, 18, 8
    height = top + row_h * len(rows) + 8
    hi = max(float(rows["value"].max()), 0.0)
    lo = min(float(rows["value"].min()), 0.0)
    sx = _scale(lo, hi or 1.0, left, width - right)
    parts = [_svg_open("bars", title, width, height)]
    for index, r in enumerate(records(rows)):
        y = top + row_h * index
        x_start, x_end = sorted((sx(0), sx(r.value)))
        colour = PALETTE[1] if r.role == "focus" else "#999"
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(str(r.territory_name)[:28])}</text>'
            f'<rect x="{x_start:.1f}" y="{y + 2}" width="{max(x_end - x_start, 0.5):.1f}" height="{row_h - 5}" fill="{colour}">'
            f"<title>{html.escape(str(r.territory_name))} {html.escape(str(r.period))}: {fmt(r.value)} {html.escape(unit)}</title></rect>"
            f'<text class="tick" x="{x_end + 4:.1f}" y="{y + 12}">{fmt(r.value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- map -------------------------------------------------------------------------------------


MAP_STYLES = {
    "region": "fill:#f3efe6;stroke:#8a8170;stroke-width:1",
    "comuna": "fill:#fbe3c2;stroke:#b0702f;stroke-width:.7",
    "basin-other": "fill:none;stroke:#8fa9bf;stroke-width:1;stroke-dasharray:4 3",
    "basin": "fill:rgba(33,102,172,.12);stroke:#2166ac;stroke-width:1.8",
    "settlement": "fill:#c51b7d;stroke:#fff;stroke-width:.5",
    "gauge": "fill:#1b7837;stroke:#fff;stroke-width:.6",
    "facility": "fill:#2b8cbe;stroke:#fff;stroke-width:.5",
    "conflict": "fill:#e6550d;stroke:#fff;stroke-width:.6",
    "site": "fill:#111;stroke:#fff;stroke-width:1.5",
}


def _swatch(style: str) -> str:
    """The colour a legend swatch shows for an SVG style: its fill, else its stroke."""
    props = dict(part.split(":", 1) for part in style.split(";") if ":" in part)
    fill = props.get("fill", "none")
    return props.get("stroke", "#999") if fill == "none" else fill


def _rings(geometry: dict) -> list[list]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return list(coords)
    if kind == "MultiPolygon":
        return [ring for polygon in coords for ring in polygon]
    if kind == "GeometryCollection":
        return [r for g in geometry.get("geometries", []) for r in _rings(g)]
    return []


def map_svg(geo) -> str:
    """An equirectangular map (longitudes shrunk by cos(latitude)) of the focus, basins, settlements,
    gauges and sites."""
    if geo is None:
        return ""
    west, south, east, north = geo.extent
    shrink = math.cos(math.radians((south + north) / 2))
    width = 640
    height = int(min(max(width * (north - south) / max((east - west) * shrink, 1e-9), 240), 820))
    # keep the aspect: fit the tighter dimension
    span_x, span_y = (east - west) * shrink, north - south
    scale = min(width / span_x, height / span_y)
    cx, cy = (west + east) / 2, (south + north) / 2

    def project(lon: float, lat: float) -> tuple[float, float]:
        return width / 2 + (lon - cx) * shrink * scale, height / 2 - (lat - cy) * scale

    parts = [
        f'<svg id="lens-map" data-map="study" class="map" role="img" aria-label="Map of the study area" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>Study area</title>"
    ]
    legend, all_labels = [], []
    for index, layer in enumerate(geo.layers):
        layer_id = f"map-layer-{index}"
        style = MAP_STYLES.get(layer["style"], "fill:none;stroke:#999")
        marks, labels = [], []
        for feature in layer["features"]:
            full = str(feature.get("name") or "")
            name, short = html.escape(full), html.escape(full if len(full) <= 36 else full[:35] + "…")
            geometry = feature["geometry"]
            if geometry.get("type") == "Point":
                x, y = project(*geometry["coordinates"][:2])
                if layer["style"] == "site":
                    marks.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" style="{style}"><title>{name}</title></circle>'
                    )
                    labels.append(
                        f'<text class="map-label site-label" x="{x - 9 if x > width * 0.55 else x + 9:.1f}" '
                        f'y="{y + 4:.1f}" text-anchor="{"end" if x > width * 0.55 else "start"}">{short}</text>'
                    )
                elif layer["style"] == "gauge":
                    marks.append(
                        f'<path d="M{x:.1f},{y - 5:.1f} L{x + 4.5:.1f},{y + 3.5:.1f} L{x - 4.5:.1f},{y + 3.5:.1f} Z" '
                        f'style="{style}"><title>{name}</title></path>'
                    )
                else:
                    marks.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.8" style="{style}"><title>{name}</title></circle>'
                    )
                continue
            path = " ".join(
                "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in (project(*pt[:2]) for pt in ring)) + " Z"
                for ring in _rings(geometry)
                if len(ring) >= 3
            )
            if path:
                marks.append(
                    f'<path d="{path}" style="{style}" fill-rule="evenodd"><title>{name}</title></path>'
                )
            if feature.get("label") and layer["style"] in ("comuna", "basin", "basin-other"):
                x, y = project(*feature["label"])
                labels.append(
                    f'<text class="map-label {layer["style"]}-label" x="{x:.1f}" y="{y:.1f}">{name}</text>'
                )
        parts.append(f'<g id="{layer_id}" class="layer">{"".join(marks)}</g>')
        all_labels.append((0 if layer["style"] == "site" else 1, layer_id, labels))  # sites placed first
        count = len(layer["features"])
        sample = " · SAMPLE geometry" if layer.get("sample") else ""
        legend.append(
            f'<label><input type="checkbox" checked data-layer="{layer_id}"> '
            f'<span class="swatch" style="background:{_swatch(style)}"></span>{html.escape(layer["name"])} '
            f"({count}{sample})</label>"
        )
    placed: list[tuple[float, float, float, float]] = []
    for _, layer_id, labels in sorted(all_labels, key=lambda item: item[0]):  # none over another
        kept = [text for text in labels if _place_label(text, placed, width, height)]
        parts.append(f'<g class="labels" data-labels-for="{layer_id}">{"".join(kept)}</g>')
    parts.append(_scale_bar(scale, shrink, height))
    if any(layer.get("sample") for layer in geo.layers):
        parts.append(
            '<text class="map-sample" x="8" y="18" fill="#b2182b" font-weight="700">'
            "SAMPLE geometry: not official boundaries</text>"
        )
    parts.append("</svg>")
    return (
        '<figure class="map-figure">'
        + "".join(parts)
        + f'<figcaption class="legend">{" ".join(legend)}</figcaption></figure>'
    )


def _place_label(text: str, placed: list, width: int, height: int) -> bool:
    """Keep a label when its box (estimated from its length) overlaps no kept one and stays inside."""
    x = float(re.search(r' x="([-\d.]+)"', text)[1])
    y = float(re.search(r' y="([-\d.]+)"', text)[1])
    length = 6.2 * len(html.unescape(re.sub(r"<[^>]+>", "", text)))
    left = x - length if 'text-anchor="end"' in text else x
    box = (left, y - 11, left + length, y + 3)
    if box[0] < 0 or box[2] > width or box[1] < 0 or box[3] > height:
        return False
    if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
        return False
    placed.append(box)
    return True


def _scale_bar(scale: float, shrink: float, height: int) -> str:
    """A scale bar of a round length near 120 px (km at the map's middle latitude)."""
    km_per_px = 111.32 / scale  # one degree of latitude is ~111.32 km; x is already shrunk by cos(lat)
    target = 120 * km_per_px
    power = 10 ** math.floor(math.log10(target))
    length_km = max(m * power for m in (1, 2, 5, 10) if m * power <= target)
    pixels = length_km / km_per_px
    x, y = 12, height - 14
    label = f"{length_km:,.0f} km" if length_km >= 1 else f"{length_km * 1000:,.0f} m"
    return (
        f'<g class="scale-bar" data-km="{length_km:g}"><line x1="{x}" y1="{y}" x2="{x + pixels:.1f}" y2="{y}" '
        'stroke="#222" stroke-width="2"/>'
        f'<line x1="{x}" y1="{y - 4}" x2="{x}" y2="{y + 4}" stroke="#222"/>'
        f'<line x1="{x + pixels:.1f}" y1="{y - 4}" x2="{x + pixels:.1f}" y2="{y + 4}" stroke="#222"/>'
        f'<text x="{x + pixels / 2:.1f}" y="{y - 6}" text-anchor="middle" font-size="11">{label}</text></g>'
    )


# --- sections --------------------------------------------------------------------------------


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


def _topic_of(section: Section, theme: str, indicator_id: str) -> str:
    text = f"{theme} {indicator_id}".lower()
    for topic in section.topics:
        if any(k in text for k in topic.keywords):
            return topic.key
    return "other"


def _sample_note(rows: pd.DataFrame) -> str | None:
    if rows.empty:
        return None
    if (rows["mode"] == "sample").all():
        return (
            "**SAMPLE DATA**: every value in this section comes from offline sample snapshots written by the "
            "context-lens maintainers, not from the real sources. Do not cite them."
        )
    sampled = sorted(rows.loc[rows["mode"] == "sample", "label"].unique())
    if sampled:
        return f"**Partly SAMPLE DATA**: {', '.join(sampled)} come from offline sample snapshots. Do not cite them."
    return None


def _value_cell(r) -> str:
    text = fmt(r.value)
    if not _missing(r.lower) or not _missing(r.upper):
        text += f" [{fmt(r.lower)}–{fmt(r.upper)}]"
    return text


def _trend_cell(r) -> str:
    if _missing(r.trend_per_year):
        return "–"
    return f"{_signed(r.trend_per_year)}/yr ({int(r.trend_first_year)}–{int(r.trend_last_year)}, n={int(r.trend_points)})"


def _indicator_block(doc: Doc, rows: pd.DataFrame, comparisons: pd.DataFrame, last_year: int) -> None:
    first = rows.iloc[0]
    indicator_id, unit = first.indicator_id, first.unit or "unit not stated"
    doc.heading(4, f"{first.label} ({unit})", anchor=f"ind-{indicator_id}")
    higher = f" · higher is {first.higher_is}" if isinstance(first.higher_is, str) and first.higher_is else ""
    definition = f" {first.definition}" if first.definition else ""
    doc.para(
        f"`{indicator_id}` · claim level: **{first.claim_level}**{higher}.{definition}", css="indicator-meta"
    )
    latest = headline(rows, last_year)
    doc.html_only(series_chart(rows, unit, f"{first.label}, {unit}"))
    chart = interval_chart(latest, unit, f"{first.label} with interval, {unit}", indicator_id)
    if not chart and rows["period"].nunique() == 1:
        chart = bar_chart(latest, unit, f"{first.label}, {unit}")
    doc.html_only(chart)
    mine = comparisons[comparisons["indicator_id"] == indicator_id]
    targets = (
        mine.sort_values(["is_reference", "compared_with"], ascending=[False, True])
        .drop_duplicates("compared_with")[["compared_with", "compared_with_name"]]
        .itertuples(index=False)
    )
    targets = list(targets)
    header = ["Territory", "Role", "Period", f"Value ({unit})"]
    header += [f"vs {name}" for _, name in targets]
    header += ["Trend", "Flag", "Source", "Retrieved", "Mode", "Freshness"]
    lookup = {(c.territory_id, c.period, c.compared_with): c for c in records(mine)}
    table = []
    for r in records(latest):
        cells = [r.territory_name, r.role, r.period, _value_cell(r)]
        for target, _ in targets:
            c = lookup.get((r.territory_id, r.period, target))
            cells.append(
                "–" if c is None or _missing(c.ratio) else f"×{c.ratio:.2f} ({_signed(c.difference)})"
            )
        cells += [
            _trend_cell(r),
            r.flag if isinstance(r.flag, str) else "",
            Link(r.source_id, r.source_url or ""),
            _date(r.retrieved_at),
            "SAMPLE" if r.mode == "sample" else (r.mode or "–"),
            r.freshness,
        ]
        table.append(cells)
    doc.table(header, table, css="values")
    if targets:
        doc.para(
            "Comparisons are for the same period: ×ratio (difference in the indicator's unit). Basins are "
            "compared with the median of the peer basins; other territories with the comparison territories.",
            css="small",
        )


def _mart_table(doc: Doc, name: str, frame: pd.DataFrame, sources: pd.DataFrame) -> None:
    doc.heading(4, name.replace("_", " ").capitalize())
    used = sorted(frame["source_id"].dropna().unique()) if "source_id" in frame.columns else []
    links = [f"[{s.source_id}]({s.landing_url})" for s in records(sources) if s.source_id in used]
    doc.para(
        "As published by the family that owns this table; units are in the headers"
        + (f"; source: {', '.join(links)}." if links else "."),
        css="small",
    )
    named = [c for c in frame.columns if c.endswith("_id") and f"{c[:-3]}_name" in frame.columns]
    shown = frame.drop(columns=named).head(40)  # an id beside its name is for machines
    rows = [
        [fmt(v) if isinstance(v, float) else ("" if _missing(v) else str(v)) for v in row]
        for row in shown.itertuples(index=False)
    ]
    doc.table([_human_header(str(c)) for c in shown.columns], rows, css="values")
    if len(frame) > len(shown):
        doc.para(f"First {len(shown)} of {len(frame)} rows; all rows are in data/{name}.csv.", css="small")


def _human_header(column: str) -> str:
    """A column name as a reader's header: 'reference_mean_m3s' -> 'Reference mean (m³/s)'."""
    units = {"m3s": "(m³/s)", "pct": "(%)", "clp": "(CLP)", "ha": "(ha)", "km2": "(km²)"}
    words = [units.get(w, w) for w in column.split("_")]
    return " ".join(words).capitalize()


def _section(
    doc: Doc,
    section: Section,
    rows: pd.DataFrame,
    comparisons: pd.DataFrame,
    extras: dict,
    last_year: int,
    sources: pd.DataFrame,
) -> None:
    doc.open(f'<section id="{section.key}">')
    doc.heading(2, section.title)
    doc.para(f"Study question: {section.question}", css="question")
    note = _sample_note(rows)
    if note:
        doc.note(note, "sample-banner")
    if rows.empty and not any(MART_SECTIONS.get(n, ("",))[0] == section.key for n in extras):
        doc.note(
            "No indicator for this section is in the warehouse yet; nothing is shown rather than a guess.",
            "missing",
        )
    topics = (
        {
            key: group
            for key, group in rows.groupby(
                [_topic_of(section, t, i) for t, i in zip(rows["theme"], rows["indicator_id"], strict=True)],
                sort=False,
            )
        }
        if len(rows)
        else {}
    )
    for topic in [*section.topics, Topic("other", "Other indicators", (), "")]:
        group = topics.get(topic.key)
        marts = [
            n for n, (s, t) in MART_SECTIONS.items() if s == section.key and t == topic.key and n in extras
        ]
        if topic.key == "other" and group is None:
            continue
        doc.heading(3, topic.title)
        if group is None and not marts:
            doc.note(
                f"Missing: no indicator on this is in the warehouse yet. It would come from {topic.expected}.",
                "missing",
            )
            continue
        if group is not None:
            blocks = dict(iter(group.groupby("indicator_id", sort=True)))
            for indicator_id in sorted(blocks, key=lambda i: (presentation(i).order, i)):
                _indicator_block(doc, blocks[indicator_id], comparisons, last_year)  # registry order
        for name in marts:
            _mart_table(doc, name, extras[name], sources)
    doc.open("</section>")


def _focus_section(doc: Doc, study: Study, lens: Lens, scope: LensScope, geo) -> None:
    doc.open('<section id="focus">')
    doc.heading(2, "Study focus")
    if study.description:
        doc.para(study.description)
    territories = scope.territories
    doc.table(
        ["Territory", "Id", "Kind", "Role", "Why", "In warehouse", "Polygon"],
        [
            [
                t.name,
                t.territory_id,
                t.kind,
                t.role,
                t.origin,
                "yes" if t.in_warehouse else "no",
                "yes" if t.has_geometry else "no",
            ]
            for t in territories.itertuples()
        ],
        css="focus",
    )
    if len(scope.sites):
        doc.heading(3, "Sites")
        doc.table(
            ["Site", "Lat", "Lon", "Comuna", "Region", "Basin", "Placed by", "Status"],
            [
                [
                    s.site,
                    f"{s.lat:.4f}",
                    f"{s.lon:.4f}",
                    s.comuna_id or "–",
                    s.region_id or "–",
                    s.basin_id or "–",
                    s.method,
                    f"{s.status}: {s.message}",
                ]
                for s in scope.sites.itertuples()
            ],
        )
    periods = ", ".join(f"{name} {a}–{b}" for name, (a, b) in study.periods.items()) or "none set"
    doc.para(
        f"Dates: {study.start.isoformat()} to {study.end.isoformat()}. Periods of interest: {periods} "
        "(a period named like an indicator theme limits that theme's trend and the value shown first)."
    )
    indicators = lens.indicators
    coverage = []
    counts = territories["name"].value_counts()
    for t in territories[territories["role"] == "focus"].itertuples():
        mine = indicators[indicators["territory_id"] == t.territory_id]
        coverage.append(
            [f"{t.name} ({t.kind})" if counts[t.name] > 1 else t.name]
            + [str(mine.loc[mine["section"] == s, "indicator_id"].nunique()) for s in SECTION_ORDER]
        )
    doc.heading(3, "Coverage")
    doc.table(["Focus territory", *[s.title for s in SECTIONS]], coverage, css="coverage")
    doc.heading(3, "Map")
    if geo is None:
        doc.note(
            "No map: core.territories holds no polygon for the focus territories yet (boundaries come from the "
            "territories family).",
            "missing",
        )
    else:
        doc.md += [
            "The map (focus territories, basins, settlements, gauges and sites) is drawn in lens.html.",
            "",
        ]
        doc.html_only(map_svg(geo))
        missing_layers = [
            n
            for n, s in (("settlements", "settlement"), ("gauges", "gauge"))
            if not any(layer["style"] == s for layer in geo.layers)
        ]
        if missing_layers:
            doc.para(
                f"Not on the map (no such data in the warehouse yet): {', '.join(missing_layers)}.",
                css="small",
            )
    doc.open("</section>")


def _sources_section(doc: Doc, lens: Lens) -> None:
    doc.open('<section id="sources">')
    doc.heading(2, "Sources and limitations")
    sources = lens.tables["sources"]
    rows = []
    for s in sources.itertuples():
        snapshots = [x for x in (s.snapshots or "").split(", ") if x]
        shown = (
            snapshots[-1] + (f" (+{len(snapshots) - 1} more)" if len(snapshots) > 1 else "")
            if snapshots
            else "–"
        )
        status = s.status if isinstance(s.status, str) else "–"
        rows.append(
            [
                Link(s.source_id, s.landing_url),
                f"{s.publisher}: {s.title}",
                s.licence,
                s.vintage or "–",
                shown,
                _date(s.retrieved_last),
                "SAMPLE" if s.mode == "sample" else (s.mode or "–"),
                f"{s.freshness} (cadence {s.cadence_days:g} days)",
                status,
            ]
        )
    doc.table(
        [
            "Source",
            "Publisher and title",
            "Licence",
            "Vintage",
            "Snapshot",
            "Retrieved",
            "Mode",
            "Freshness",
            "Status",
        ],
        rows,
        css="sources",
    )
    doc.heading(3, "What is missing, stale or sample")
    gaps = lens.tables["gaps"]
    if gaps.empty:
        doc.para("Nothing: every section has data, every source is fresh and live.")
    else:
        items = []
        for kind, group in gaps.groupby("kind", sort=False):
            label = GAP_LABELS.get(kind, kind)
            details = group["detail"].tolist()
            items.append(
                (f"**{label}**: {details[0]}", []) if len(details) == 1 else (f"**{label}**:", details)
            )
        doc.bullets(items, css="gaps")
    doc.open("</section>")


def _reproducibility(doc: Doc, study: Study, lens: Lens) -> None:
    doc.open('<section id="reproducibility">')
    doc.heading(2, "Reproducibility")
    as_of = lens.as_of.isoformat() if lens.as_of else "latest snapshots"
    doc.bullets(
        [
            f"As of: {as_of} (only snapshots retrieved by the end of that day); freshness measured at "
            f"{lens.reference_date.isoformat()}.",
            f"Content hash (SHA-256 of the lens tables): `{lens.content_hash}`.",
            f"Tables: `lens.{lens.prefix}_indicators`, `_comparisons`, `_territories`, `_sites`, `_sources`, "
            f"`_gaps`, `_manifest`; view `marts.territory_profile`.",
            "Data: `data/` beside this report (CSV and Parquet per table, described in `data/datapackage.json`).",
            f"Rebuild: `context-lens build --study {study.id}"
            + (f" --as-of {as_of}`." if lens.as_of else "`."),
        ]
    )
    doc.open("</section>")


STYLE = (
    "body{font-family:system-ui,-apple-system,sans-serif;max-width:1080px;margin:2em auto;padding:0 1em;color:#222;"
    "line-height:1.45}h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}"
    "h4{margin:1.4em 0 .3em}table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:12.5px}"
    "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f4f4f4;text-align:left}"
    ".sample-banner{background:#fff3cd;border:1px solid #e0b400;padding:.5em .8em}"
    ".missing{color:#5a5a5a;background:#f6f6f6;border-left:4px solid #aaa;padding:.4em .8em}"
    ".question{font-style:italic}.meta,.small{color:#555;font-size:.9em}.indicator-meta{color:#444;font-size:.92em}"
    "svg.chart{display:block;margin:.4em 0;overflow:visible}svg .axis{stroke:#999}svg .tick{font-size:10px;fill:#444}"
    "svg .legend{font-size:11px}svg .reference{stroke:#777;stroke-dasharray:4 3}svg .whisker{stroke-width:2}"
    ".map-figure{margin:.5em 0}svg.map{border:1px solid #ccc;background:#fcfcfa}"
    ".map-label{font-size:9px;fill:#333;pointer-events:none}.site-label{font-size:11px;font-weight:bold}"
    ".basin-label{fill:#2166ac;font-size:11px}.basin-other-label{fill:#7890a8}"
    ".legend label{margin-right:1em;font-size:12px;white-space:nowrap}.table-wrap{overflow-x:auto}"
    ".swatch{display:inline-block;width:12px;height:12px;margin:0 4px;vertical-align:middle;border:1px solid #999}"
)

SCRIPT = """
(function () {
  "use strict";
  var drawn = document.querySelectorAll("svg[data-chart], svg[data-map]");
  for (var i = 0; i < drawn.length; i++) {
    var marks = drawn[i].querySelectorAll("path, polyline, circle, rect, line").length;
    drawn[i].setAttribute("data-marks", String(marks));
    drawn[i].setAttribute("data-rendered", marks > 0 ? "true" : "empty");
  }
  var boxes = document.querySelectorAll("input[data-layer]");
  for (var j = 0; j < boxes.length; j++) {
    boxes[j].addEventListener("change", function (event) {
      var layer = document.getElementById(event.target.getAttribute("data-layer"));
      if (layer) { layer.style.display = event.target.checked ? "" : "none"; }
    });
  }
  document.body.setAttribute("data-scroll-width", String(document.documentElement.scrollWidth));
  document.body.setAttribute("data-lens-ready", "true");
})();
"""
# No network, whatever the content: nothing may be fetched, only inline style and script run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


REPORT_COLUMNS = [
    "section",
    "theme",
    "indicator_id",
    "label",
    "unit",
    "definition",
    "claim_level",
    "higher_is",
    "territory_id",
    "territory_name",
    "territory_kind",
    "role",
    "period",
    "in_study_period",
    "value",
    "lower",
    "upper",
    "flag",
    "trend_per_year",
    "trend_intercept",
    "trend_points",
    "trend_first_year",
    "trend_last_year",
    "source_id",
    "source_url",
    "retrieved_at",
    "mode",
    "freshness",
]


def _display_names(rows: pd.DataFrame, territories: pd.DataFrame) -> pd.DataFrame:
    """Territory names with their kind where two territories share a name (Antofagasta region and comuna)."""
    counts = territories["name"].value_counts()
    names = {
        t.territory_id: f"{t.name} ({t.kind})" if counts.get(t.name, 0) > 1 else t.name
        for t in territories.itertuples()
    }
    return rows.assign(territory_name=rows["territory_id"].map(names).fillna(rows["territory_name"]))


def render(
    study: Study,
    lens: Lens,
    scope: LensScope,
    geo=None,
    extras: dict | None = None,
    front: dict | None = None,
) -> tuple[str, str]:
    """(markdown, html) for the study's lens; `front` is reading.context() (claims, summary, contents)."""
    extras = extras or {}
    front = front if front is not None else reading.context(study, lens, scope, reading.language())
    doc = Doc()
    as_of = lens.as_of.isoformat() if lens.as_of else "latest snapshots"
    doc.heading(1, study.title)
    doc.para(
        f"*Study `{study.id}` · lens as of {as_of} · reference date {lens.reference_date.isoformat()} · "
        f"content hash `{lens.content_hash[:16]}`*",
        css="meta",
    )
    doc.para(INTRO)
    doc.html_only(reading.front_html(front))
    doc.md += [reading.front_markdown(front).rstrip(), ""]
    indicators = _display_names(lens.indicators[REPORT_COLUMNS], scope.territories)
    claims = sorted(indicators["claim_level"].dropna().unique())
    if any(c != "contribution" for c in claims):
        doc.note(
            "Some indicators are registered with claim level 'attribution'; check them before use: "
            + ", ".join(
                sorted(indicators.loc[indicators["claim_level"] != "contribution", "indicator_id"].unique())
            ),
            "sample-banner",
        )
    _focus_section(doc, study, lens, scope, geo)
    comparisons = lens.tables["comparisons"]
    for section in SECTIONS:
        _section(
            doc,
            section,
            indicators[indicators["section"] == section.key],
            comparisons,
            extras,
            study.end.year,
            lens.tables["sources"],
        )
    others = indicators[~indicators["section"].isin([s.key for s in SECTIONS])]
    for key, rows in others.groupby("section", sort=True):
        _section(
            doc,
            Section(key, f"Other indicators (lens_section '{key}')", "not assigned to a study question"),
            rows,
            comparisons,
            {},
            study.end.year,
            lens.tables["sources"],
        )
    _sources_section(doc, lens)
    _reproducibility(doc, study, lens)
    markdown = "\n".join(doc.md).rstrip() + "\n"
    page = (
        f'<!doctype html><html lang="{front["lang"]}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="context-lens-content-hash" content="{lens.content_hash}">'
        f'<meta name="context-lens-as-of" content="{html.escape(as_of)}">'
        f"<title>{html.escape(study.title)}</title><style>{STYLE}{reading.stylesheet('reader.css')}</style></head>"
        f"<body>{''.join(doc.body)}<script>{SCRIPT}</script></body></html>\n"
    )
    return markdown, page


def write_report(study: Study, markdown: str, page: str, folder: Path | None = None) -> Path:
    folder = folder or output_dir() / "lens" / study.id
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("lens.md", markdown), ("lens.html", page)):
        temp = folder / f".{name}.tmp"
        temp.write_text(text, encoding="utf-8")
        temp.replace(folder / name)
    return folder

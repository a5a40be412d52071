"""Charts of the lens as Vega-Lite specifications (Altair), rendered offline to static SVG (vl-convert).

Every series the data has is drawn: up to `MAX_LINES` territories share one chart (20
colours, the legend names each one); more become small multiples, one panel per territory.
When one series is over 20 times another, the y scale is logarithmic (positive values) or
each panel gets its own scale. Ticks are Vega's "nice" round numbers; p-values and zero rate
ratios are never drawn as marks (the tables hold them). Each chart carries its source line
and a SAMPLE mark when any input is sample. The root <svg> says how many series its data has
(`data-series`) and how many it draws (`data-drawn`). The same data gives the same bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from html import escape

import altair as alt
import pandas as pd

from warehouse.lens import KIND_ORDER, ROLE_ORDER

MAX_LINES = 20  # one chart with a colour each; beyond, small multiples
PANEL_COLUMNS = 4
DIRECT_LABELS = 6  # up to this many lines are named at their ends instead of in a legend
LABEL_ROWS = 14  # a line label's height as a share of the plot's: 1/14 of 200 px
DASHES = [[1, 0], [5, 3]]  # focus solid, comparisons dashed
MAX_POINTS = 15  # years on a line beyond which each year is no longer marked by a dot
WIDTH = 560
SPREAD = 20  # one series over 20 times another flattens it: log scale or separate panels
PALETTE = [  # ColorBrewer / Tableau 20, colour-blind-aware order, focus first
    "#b2182b", "#2166ac", "#1b7837", "#762a83", "#e08214", "#01665e", "#c51b7d", "#8c510a",
    "#4d4d4d", "#5aae61", "#9970ab", "#f4a582", "#92c5de", "#d6604d", "#4393c3", "#a6dba0",
    "#c2a5cf", "#fdb863", "#80cdc1", "#bababa",
]  # fmt: skip
LOCALES = {"en": "en-GB", "es": "es-ES"}  # d3-format locales vl-convert ships
WORDS = {
    "en": {"year": "Year", "source": "Source", "sample": "SAMPLE data: do not cite", "log": "log scale",
           "panels": "one panel per territory, each on its own scale", "zero": "not drawn (ratio 0)",
           "reference": "reference", "same": "1 = same as the comparison",
           "million": "million CLP", "billion": "thousand million CLP",
           "trend": "dotted: least-squares trend of each focus territory"},
    "es": {"year": "Año", "source": "Fuente", "sample": "datos de MUESTRA: no citar", "log": "escala logarítmica",
           "panels": "un panel por territorio, cada uno con su escala", "zero": "no dibujado (razón 0)",
           "reference": "referencia", "same": "1 = igual que la comparación",
           "million": "millones de CLP", "billion": "miles de millones de CLP",
           "trend": "punteado: tendencia por mínimos cuadrados de cada territorio foco"},
}  # fmt: skip


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


def _ordered_territories(frame: pd.DataFrame) -> pd.DataFrame:
    territories = frame[["territory_id", "territory_name", "role"]].drop_duplicates("territory_id")
    kind = territories["territory_id"].str.split(":").str[0].map(KIND_ORDER).fillna(9)
    territories = territories.assign(_role=territories["role"].map(ROLE_ORDER).fillna(9), _kind=kind)
    return territories.sort_values(["_role", "_kind", "territory_id"])  # the region before its comunas


def _is_ratio(unit: str, indicator_id: str) -> bool:
    text = f"{unit} {indicator_id}".lower()
    return "ratio" in text or re.search(r"(^|_)rr(_|$)", indicator_id.lower()) is not None


def _caption(frame: pd.DataFrame, lang: str, extra: list[str]) -> list[str]:
    words = WORDS[lang]
    lines = []
    if "source_title" in frame.columns:
        titles = sorted({str(t) for t in frame["source_title"].dropna()})
        if titles:
            lines.append(f"{words['source']}: {'; '.join(titles)}"[:160])
    if "mode" in frame.columns and (frame["mode"] == "sample").any():
        lines.append(words["sample"])
    return lines + extra


@lru_cache(maxsize=4096)
def _svg(spec_json: str, lang: str) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(spec_json, format_locale=LOCALES[lang])


# What Vega writes for interaction and per-mark accessibility, which a static figure does not use:
# each point would otherwise carry its own aria-label (a third of the lens's bytes).
SVG_NOISE = re.compile(
    r'<path class="(?:background|foreground)" aria-hidden="true" d="[^"]*"(?: pointer-events="none")?'
    r'(?: display="none")?/>'
    r'| (?:aria-label|aria-roledescription)="[^"]*"| role="graphics-(?:symbol|object)"'
    r'| aria-hidden="true"| pointer-events="none"| opacity="1"|\s+xmlns:xlink="[^"]*"'
)
LONG_DECIMAL = re.compile(r"(\d+\.\d)\d{2,}")  # coordinates to a tenth of a pixel


def compact(svg: str) -> str:
    """The SVG without interaction scaffolding, coordinates to 0.1 px; the drawing is unchanged."""
    tags = re.compile(r"<[^>]+>")  # numbers inside tags only: text a reader sees stays as written
    return tags.sub(lambda tag: LONG_DECIMAL.sub(r"\1", tag[0]), SVG_NOISE.sub("", svg))


def _render(chart: alt.TopLevelMixin, kind: str, title: str, lang: str, series: int, drawn: int) -> str:
    """The chart as inline SVG, its root marked for the page script and the tests."""
    spec = chart.configure_view(stroke=None).to_json(sort_keys=True, indent=None)
    svg = compact(_svg(spec, lang))
    attributes = (
        f'class="chart" data-chart="{kind}" data-series="{series}" data-drawn="{drawn}" role="img" '
        f'aria-label="{escape(title)}" '
    )
    svg = re.sub(r'<svg ([^>]*?)class="marks" ', lambda m: f"<svg {attributes}{m[1]}", svg, count=1)
    return svg.replace(">", f"><title>{escape(title)}</title>", 1)


def render(spec: Spec | None, title: str, lang: str) -> str:
    """A chart specification as inline SVG; no specification, no chart."""
    return "" if spec is None else _render(spec.chart, spec.kind, title, lang, spec.series, spec.series)


def _money_unit(data: pd.DataFrame, unit: str, kind: str, lang: str, *others: pd.DataFrame) -> str:
    """Money drawn in millions or thousands of millions of CLP (the frames are scaled in place)."""
    if kind != "money" or data.empty:
        return unit
    top = float(data["value"].abs().max())
    divisor = 1e9 if top >= 1e10 else 1e6 if top >= 1e7 else 1
    for frame in (data, *others):
        for name in ("value", "low", "high"):
            if name in frame.columns:
                frame[name] = frame[name] / divisor
    if top >= 1e10:
        return WORDS[lang]["billion"]
    return WORDS[lang]["million"] if top >= 1e7 else unit


def _trend_lines(yearly: pd.DataFrame) -> pd.DataFrame:
    """The least-squares trend of each focus territory, as its two end points."""
    needed = {"trend_per_year", "trend_intercept", "trend_first_year", "trend_last_year"}
    if not needed <= set(yearly.columns):
        return pd.DataFrame(columns=["territory", "year", "value"])
    focus = yearly[(yearly["role"] == "focus") & yearly["trend_per_year"].notna()]
    points = []
    for r in focus.drop_duplicates("territory_id").itertuples():
        for year in (int(r.trend_first_year), int(r.trend_last_year)):
            points.append(
                {
                    "territory": str(r.territory_name),
                    "year": year,
                    "value": r.trend_per_year * year + r.trend_intercept,
                }
            )
    return pd.DataFrame(points, columns=["territory", "year", "value"])


def _title(title: str, lines: list[str]) -> alt.TitleParams:
    return alt.TitleParams(
        text=title, subtitle=lines or [""], anchor="start", fontSize=13, subtitleFontSize=10
    )


def _layout(data: pd.DataFrame, series: int, words: dict) -> tuple[alt.Scale, bool, bool, list[str]]:
    """(y scale, small multiples?, log scale?, caption lines): one series over SPREAD times another
    gets a log scale when every value is positive, else a panel of its own; too many series, panels."""
    maxima = data.groupby("territory")["value"].apply(lambda v: v.abs().max())
    spread = maxima.max() / max(maxima[maxima > 0].min(), 1e-300) if (maxima > 0).any() else 1.0
    positive = bool((data["value"] > 0).all())
    log = spread > SPREAD and positive
    panels = series > MAX_LINES or (spread > SPREAD and not positive)
    extra = ([words["log"]] if log else []) + ([words["panels"]] if panels else [])
    scale = alt.Scale(type="log", nice=True) if log else alt.Scale(nice=True, zero=False)
    return scale, panels, log, extra


@dataclass(frozen=True)
class Spec:
    """One chart before rendering: the Vega-Lite chart, its kind and how many series it draws."""

    chart: alt.TopLevelMixin
    kind: str
    series: int


def _yearly(group: pd.DataFrame) -> pd.DataFrame:
    """The rows of calendar years, for territories with at least two of them (a line needs two)."""
    yearly = group[group["period"].astype(str).str.fullmatch(r"\d{4}") & group["value"].notna()].copy()
    yearly["year"] = yearly["period"].astype(int)
    counts = yearly.groupby("territory_id")["year"].nunique()
    return yearly[yearly["territory_id"].isin(counts[counts >= 2].index)]


def _end_labels(data: pd.DataFrame, log: bool) -> pd.DataFrame:
    """Each line's name at its last point, nudged upwards where two would overlap."""
    ends = data.sort_values(["year", "territory"]).groupby("territory").tail(1)
    where = (lambda v: v.map(math.log10)) if log else (lambda v: v)
    low, high = float(where(data["value"]).min()), float(where(data["value"]).max())
    gap = (high - low) / LABEL_ROWS if high > low else 1.0
    placed, previous = [], -math.inf
    for r in ends.assign(at=where(ends["value"])).sort_values(["at", "territory"]).itertuples():
        previous = max(r.at, previous + gap)
        placed.append(
            {"territory": r.territory, "year": r.year, "label_at": 10**previous if log else previous}
        )
    return pd.DataFrame(placed)


def _trend_layer(trends: pd.DataFrame, colour_scale: alt.Scale) -> alt.Chart:
    colour = alt.Color("territory:N", scale=colour_scale, legend=None)
    return (
        alt.Chart(alt.Data(values=trends.to_dict("records")))
        .mark_line(strokeDash=[1, 3], strokeWidth=1.5)
        .encode(x="year:Q", y="value:Q", color=colour)
    )


def _end_label_layer(data: pd.DataFrame, log: bool, colour: alt.Color) -> alt.Chart:
    names = alt.Chart(alt.Data(values=_end_labels(data, log).to_dict("records")))
    return names.mark_text(align="left", dx=5, fontSize=10, limit=170).encode(
        x="year:Q", y="label_at:Q", text="territory:N", color=colour
    )


def series_chart(group: pd.DataFrame, unit: str, title: str, lang: str = "en", kind: str = "") -> str:
    """Yearly series per territory: focus solid, comparisons dashed, every territory drawn."""
    return render(series_spec(group, unit, title, lang, kind), title, lang)


def series_spec(group: pd.DataFrame, unit: str, title: str, lang: str = "en", kind: str = "") -> Spec | None:
    if kind == "probability":
        return None  # p-values are read in the table, not as a line
    yearly = _yearly(group)
    if yearly.empty:
        return None
    words = WORDS[lang]
    territories = _ordered_territories(yearly)
    order = territories["territory_name"].astype(str).tolist()
    series = len(order)
    data = yearly.assign(
        territory=yearly["territory_name"].astype(str),
        line=yearly["role"].map(lambda r: "focus" if r == "focus" else "comparison"),
    )[["territory", "line", "year", "value"]].sort_values(["territory", "year"])
    trends = _trend_lines(yearly)
    unit = _money_unit(data, unit, kind, lang, trends)
    y_scale, panels, log, extra = _layout(data, series, words)
    x = alt.X("year:Q", title=words["year"], axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("value:Q", title=unit, scale=y_scale, axis=alt.Axis(tickCount=5, titleLimit=190))
    dash = alt.StrokeDash(
        "line:N", scale=alt.Scale(domain=["focus", "comparison"], range=DASHES), legend=None
    )
    colour_scale = alt.Scale(domain=order, range=[PALETTE[i % len(PALETTE)] for i in range(series)])
    direct = not panels and series <= DIRECT_LABELS  # few lines: named at their ends, no legend
    colour = alt.Color(
        "territory:N",
        scale=colour_scale,
        legend=None
        if direct
        else alt.Legend(title=None, orient="right", labelLimit=180, symbolLimit=0, columns=1),
    )
    base = alt.Chart(alt.Data(values=data.to_dict("records")))
    points = alt.OverlayMarkDef(size=18) if data["year"].nunique() <= MAX_POINTS else False
    lines = base.mark_line(point=points, strokeWidth=1.8).encode(x=x, y=y, color=colour, strokeDash=dash)
    if not panels and len(trends) and (not log or (trends["value"] > 0).all()):
        lines = alt.layer(lines, _trend_layer(trends, colour_scale))
        extra.append(words["trend"])
    if direct:
        lines = alt.layer(lines, _end_label_layer(data, log, colour))
    if panels:
        chart = lines.properties(width=WIDTH // PANEL_COLUMNS - 20, height=90).facet(
            facet=alt.Facet("territory:N", sort=order, title=None), columns=PANEL_COLUMNS
        )
        chart = chart.resolve_scale(y="independent").properties(
            title=_title(title, _caption(group, lang, extra))
        )
    else:
        chart = lines.properties(
            width=WIDTH - 180, height=200, title=_title(title, _caption(group, lang, extra))
        )
    return Spec(chart, "series", series)


def interval_chart(
    latest: pd.DataFrame, unit: str, title: str, indicator_id: str, lang: str = "en", kind: str = ""
) -> str:
    """Dot and whisker per territory for the latest period, with a reference line (1 for ratios)."""
    return render(interval_spec(latest, unit, title, indicator_id, lang, kind), title, lang)


def interval_spec(
    latest: pd.DataFrame, unit: str, title: str, indicator_id: str, lang: str = "en", kind: str = ""
) -> Spec | None:
    rows = latest[latest["value"].notna()].copy()
    if kind == "probability" or rows.empty or not (rows["lower"].notna() | rows["upper"].notna()).any():
        return None
    words = WORDS[lang]
    extra = []
    ratio = _is_ratio(unit, indicator_id)
    if ratio:  # a ratio of 0 (no deaths) is a count, not a point on a ratio scale
        zero = rows[rows["value"] <= 0]
        if len(zero):
            extra.append(f"{words['zero']}: {', '.join(zero['territory_name'].astype(str))}")
        rows = rows[rows["value"] > 0]
    if rows.empty:
        return None
    rows = rows.assign(
        territory=rows["territory_name"].astype(str),
        low=rows["lower"].fillna(rows["value"]),
        high=rows["upper"].fillna(rows["value"]),
        line=rows["role"].map(lambda r: "focus" if r == "focus" else "comparison"),
    )
    order = rows["territory"].tolist()
    data = rows[["territory", "line", "value", "low", "high"]].copy()
    unit = _money_unit(data, unit, kind, lang)
    reference, reference_name = (1.0, words["same"]) if ratio else (None, "")
    if reference is None:
        country = rows[rows["territory_id"].str.startswith("country:")]
        if len(country):
            reference, reference_name = float(country["value"].iloc[0]), str(country["territory"].iloc[0])
    colour = alt.Color(
        "line:N", scale=alt.Scale(domain=["focus", "comparison"], range=[PALETTE[0], "#555555"]), legend=None
    )
    y = alt.Y("territory:N", sort=order, title=None, axis=alt.Axis(labelLimit=200))
    x_scale = alt.Scale(nice=True, zero=False)
    base = alt.Chart(alt.Data(values=data.to_dict("records")))
    layers = [
        base.mark_rule(strokeWidth=2).encode(
            x=alt.X("low:Q", title=unit[:60], scale=x_scale), x2="high:Q", y=y, color=colour
        ),
        base.mark_point(filled=True, size=40).encode(x="value:Q", y=y, color=colour),
    ]
    if reference is not None:
        extra.append(f"{words['reference']}: {reference_name}")
        layers.append(
            alt.Chart(alt.Data(values=[{"ref": reference}]))
            .mark_rule(strokeDash=[4, 3], color="#777777")
            .encode(x="ref:Q")
        )
    height = max(18 * len(order), 40)
    chart = alt.layer(*layers).properties(
        width=WIDTH - 220, height=height, title=_title(title, _caption(latest, lang, extra))
    )
    return Spec(chart, "interval", len(order))


def bar_chart(latest: pd.DataFrame, unit: str, title: str, lang: str = "en", kind: str = "") -> str:
    """Horizontal bars when there is one period and several territories (e.g. nine comunas)."""
    return render(bar_spec(latest, unit, title, lang, kind), title, lang)


def _bar_mark(base: alt.Chart, values: pd.Series, words: dict) -> tuple[alt.Chart, alt.Scale, list[str]]:
    """Bars from zero on a linear scale; or, when one value is over SPREAD times another and all are
    positive, dots on a stated log scale (a bar has no zero to start from there), so the Loa is not
    a sliver beside the Maipo."""
    positive = values[values > 0]
    if len(positive) == len(values) and positive.max() > SPREAD * positive.min():
        return base.mark_point(filled=True, size=60), alt.Scale(type="log", nice=True), [words["log"]]
    return base.mark_bar(), alt.Scale(nice=True), []


def bar_spec(latest: pd.DataFrame, unit: str, title: str, lang: str = "en", kind: str = "") -> Spec | None:
    rows = latest[latest["value"].notna()]
    if kind == "probability" or len(rows) < 2:
        return None
    data = rows.assign(
        territory=rows["territory_name"].astype(str),
        line=rows["role"].map(lambda r: "focus" if r == "focus" else "comparison"),
    )[["territory", "line", "value"]].copy()
    unit = _money_unit(data, unit, kind, lang)
    order = data["territory"].tolist()
    base = alt.Chart(alt.Data(values=data.to_dict("records")))
    mark, scale, extra = _bar_mark(base, data["value"], WORDS[lang])
    colour = alt.Color(
        "line:N", scale=alt.Scale(domain=["focus", "comparison"], range=[PALETTE[1], "#999999"]), legend=None
    )
    y = alt.Y("territory:N", sort=order, title=None, axis=alt.Axis(labelLimit=200))
    chart = alt.layer(
        mark.encode(x=alt.X("value:Q", title=unit[:60], scale=scale), y=y, color=colour),
        base.mark_text(align="left", dx=3, fontSize=10).encode(
            x="value:Q", y=y, text=alt.Text("value:Q", format=",.3~g")
        ),
    ).properties(
        width=WIDTH - 260, height=max(18 * len(order), 40), title=_title(title, _caption(latest, lang, extra))
    )
    return Spec(chart, "bars", len(order))


# --- an indicator's charts, and indicators drawn together ------------------------------------------


@dataclass(frozen=True)
class Member:
    """One indicator as charts draw it: label and unit as printed, all its rows, its headline rows."""

    indicator_id: str
    label: str
    unit: str
    kind: str
    rows: pd.DataFrame
    latest: pd.DataFrame

    @property
    def title(self) -> str:
        return f"{self.label}, {self.unit}" if self.unit else self.label


def indicator_specs(member: Member, lang: str) -> list[Spec]:
    """An indicator's own charts: its yearly series, and its headline period as intervals or bars."""
    m = member
    latest = interval_spec(m.latest, m.unit, m.title, m.indicator_id, lang, m.kind)
    if latest is None and m.rows["period"].nunique() == 1:
        latest = bar_spec(m.latest, m.unit, m.title, lang, m.kind)
    return [s for s in (series_spec(m.rows, m.unit, m.title, lang, m.kind), latest) if s is not None]


def indicator_charts(member: Member, lang: str) -> list[str]:
    return [render(spec, member.title, lang) for spec in indicator_specs(member, lang)]


LINKING_WORDS = {"of", "the", "per", "de", "la", "el", "del", "los", "las", "por"}


def shared_unit(units: list[str]) -> str:
    """The words every unit starts with, without a dangling 'of the'; '' when they share none."""
    words = [u.split() for u in units]
    common = []
    for column in zip(*words, strict=False):
        if len(set(column)) > 1:
            break
        common.append(column[0])
    while common and common[-1] in LINKING_WORDS:
        common.pop()
    return " ".join(common)


def _compare_spec(members: list[Member], unit: str, lang: str) -> Spec | None:
    """Indicators in one unit on shared axes, coloured by indicator: yearly lines in a panel per
    territory when they have years, else their headline values as grouped bars."""
    words, kind = WORDS[lang], members[0].kind
    yearly = pd.concat([_yearly(m.rows).assign(indicator=m.label) for m in members])
    lines = not yearly.empty
    rows = (
        yearly
        if lines
        else pd.concat([m.latest[m.latest["value"].notna()].assign(indicator=m.label) for m in members])
    )
    if rows.empty:
        return None
    order = _ordered_territories(rows)["territory_name"].astype(str).tolist()
    labels = [m.label for m in members]
    columns = ["territory", "indicator", "value"] + (["year"] if lines else [])
    data = rows.assign(territory=rows["territory_name"].astype(str))[columns].copy()
    unit = _money_unit(data, unit, kind, lang)
    colour = alt.Color(
        "indicator:N",
        sort=labels,
        scale=alt.Scale(domain=labels, range=PALETTE[: len(labels)]),
        legend=alt.Legend(title=None, orient="top", labelLimit=260, columns=1),
    )
    base = alt.Chart(alt.Data(values=data.sort_values(columns[:2] + columns[3:]).to_dict("records")))
    mark, scale, extra = (
        (None, alt.Scale(nice=True, zero=False), []) if lines else _bar_mark(base, data["value"], words)
    )
    caption = _caption(pd.concat([m.rows for m in members]), lang, extra)
    title = _title(", ".join(labels) if len(", ".join(labels)) < 90 else labels[0], caption)
    series = int(data[["territory", "indicator"]].drop_duplicates().shape[0])
    if lines:
        panels = min(len(order), PANEL_COLUMNS)
        y = alt.Y("value:Q", title=unit[:60], scale=alt.Scale(nice=True, zero=False))
        x = alt.X("year:Q", title=words["year"], axis=alt.Axis(format="d", tickMinStep=1))
        chart = (
            base.mark_line(strokeWidth=1.8)
            .encode(x=x, y=y, color=colour)
            .properties(width=WIDTH // panels - 30, height=110)
            .facet(facet=alt.Facet("territory:N", sort=order, title=None), columns=panels)
            .properties(title=title)
        )
        return Spec(chart, "series", series)
    y = alt.Y("territory:N", sort=order, title=None, axis=alt.Axis(labelLimit=200))
    bars = mark.encode(
        x=alt.X("value:Q", title=unit[:60], scale=scale),
        y=y,
        yOffset=alt.YOffset("indicator:N", sort=labels),
        color=colour,
    )
    chart = bars.properties(width=WIDTH - 260, height=max(9 * len(labels) * len(order), 40), title=title)
    return Spec(chart, "bars", series)


def group_chart(members: list[Member], title: str, lang: str) -> str:
    """Indicators the registry draws together (`display.chart`) as one figure.

    Members written alike whose units share their leading words ("percent of the labour force",
    "percent of the female labour force": percent) share axes (`_compare_spec`); members in different units (a rate and its
    ratio to Chile) are stacked as panels, each on its own axis with its own title. Every series
    of every member is drawn: the figure's `data-series` is the sum of its panels'.
    """
    by_kind: dict[str, list[Member]] = {}
    for member in members:
        if member.kind != "probability":  # p-values are read in the table
            by_kind.setdefault(member.kind, []).append(member)
    panels: list[Spec] = []
    for same in by_kind.values():
        unit = shared_unit([m.unit for m in same])
        if len(same) > 1 and unit:
            panels += [s for s in [_compare_spec(same, unit, lang)] if s is not None]
        else:
            panels += [spec for m in same for spec in indicator_specs(m, lang)]
    if not panels:
        return ""
    if len(panels) == 1:
        return render(panels[0], title, lang)
    figure = (  # each panel has its own title, axes, colours and legend
        alt.vconcat(*(p.chart for p in panels), spacing=18)
        .resolve_scale(color="independent", strokeDash="independent")
        .resolve_legend(color="independent")
    )
    kinds = " ".join(p.kind for p in panels)
    svg = render(Spec(figure, "group", sum(p.series for p in panels)), title, lang)
    return svg.replace('data-chart="group" ', f'data-chart="group" data-panels="{kinds}" ', 1)

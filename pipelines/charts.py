"""Charts of the lens as inline SVG: yearly series per territory, intervals and bars.

Every chart says how many series its data has (`data-series`) and how many it draws
(`data-drawn`); nothing is dropped in silence.
"""

import html
import math
import re
from types import SimpleNamespace

import pandas as pd

from warehouse.lens import KIND_ORDER, ROLE_ORDER

PALETTE = ["#b2182b", "#2166ac", "#1b7837", "#762a83", "#e08214", "#01665e", "#c51b7d", "#8c510a", "#4d4d4d"]


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


def series_chart(group: pd.DataFrame, unit: str, title: str, lang: str = "en") -> str:
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


def interval_chart(latest: pd.DataFrame, unit: str, title: str, indicator_id: str, lang: str = "en") -> str:
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


def bar_chart(latest: pd.DataFrame, unit: str, title: str, lang: str = "en") -> str:
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

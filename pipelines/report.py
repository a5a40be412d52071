"""Render a study's lens tables as `lens.md` and a self-contained `lens.html` (no network)."""

import html
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.studies import Study


def output_dir() -> Path:
    """Where rendered outputs go: `CONTEXT_LENS_OUTPUT` if set, else output/ in the repository."""
    default = Path(__file__).resolve().parents[1] / "output"
    return Path(os.environ.get("CONTEXT_LENS_OUTPUT", default))


INTRO = (
    "This context lens documents the territorial conditions around the field study: governance "
    "conditions, state presence and structural constraints. Everything in it is at the **contribution** "
    "level: external conditions outside any site's control, which an assurance scheme can at most "
    "contribute to, never claim as its own site-level outputs (attribution). Every number states its "
    "period, unit and source; values marked SAMPLE are stand-ins written by the context-lens "
    "maintainers for offline runs and must not be cited."
)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    question: str


SECTIONS = [
    Section(
        "governance",
        "Governance conditions",
        "Where do mining revenues go, and how much do regional and municipal governments depend on transfers?",
    ),
    Section(
        "state_presence",
        "State presence and social provision",
        "How large are the health burden and the housing deficit against the country?",
    ),
    Section(
        "structural_constraints",
        "Structural constraints",
        "What water, economic and inequality conditions frame what any site can achieve?",
    ),
]


def _fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    magnitude = abs(value)
    text = f"{value:,.0f}" if magnitude >= 1000 else f"{value:,.2f}" if magnitude >= 1 else f"{value:.3f}"
    return text


def _latest_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest period of each indicator × territory, the figure a reader looks for first."""
    ordered = rows.sort_values(["indicator_id", "territory_id", "period"])
    return ordered.groupby(["indicator_id", "territory_id"], as_index=False).tail(1)


def _svg_series(rows: pd.DataFrame, title: str) -> str:
    """A small inline line chart of each territory's yearly series."""
    series = rows[pd.to_numeric(rows["period"], errors="coerce").notna()].copy()
    if series.empty or series["period"].nunique() < 2:
        return ""
    series["year"] = series["period"].astype(int)
    width, height, pad = 420, 160, 30
    x0, x1 = series["year"].min(), series["year"].max()
    y0, y1 = float(series["value"].min()), float(series["value"].max())
    y0, y1 = (y0 - 1, y1 + 1) if y0 == y1 else (y0, y1)
    colours = ["#b2182b", "#2166ac", "#4d9221", "#762a83", "#e08214"]
    lines, legend = [], []
    for index, (territory, group) in enumerate(series.groupby("territory_name", sort=True)):
        colour = colours[index % len(colours)]
        points = " ".join(
            f"{pad + (r.year - x0) / max(x1 - x0, 1) * (width - 2 * pad):.1f},"
            f"{height - pad - (r.value - y0) / (y1 - y0) * (height - 2 * pad):.1f}"
            for r in group.sort_values("year").itertuples()
        )
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        legend.append(
            f'<text x="{pad + 130 * index}" y="14" fill="{colour}" font-size="11">{html.escape(str(territory))}</text>'
        )
    axis = (
        f'<text x="{pad}" y="{height - 8}" font-size="10">{x0}</text>'
        f'<text x="{width - pad - 24}" y="{height - 8}" font-size="10">{x1}</text>'
        f'<text x="2" y="{pad}" font-size="10">{_fmt(y1)}</text>'
        f'<text x="2" y="{height - pad}" font-size="10">{_fmt(y0)}</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(legend)}{"".join(lines)}{axis}</svg>'
    )


def render(
    study: Study, lens: pd.DataFrame, sources: pd.DataFrame, as_of: str, digest: str
) -> tuple[str, str]:
    """(markdown, html) for the study."""
    md = [
        f"# {study.title}",
        "",
        f"*Study `{study.id}` · lens as of {as_of} · content hash `{digest[:16]}`*",
        "",
    ]
    md += [INTRO, ""]
    body = [f"<h1>{html.escape(study.title)}</h1>"]
    body.append(
        f'<p class="meta">Study <code>{html.escape(study.id)}</code> · lens as of {html.escape(as_of)} · '
        f"content hash <code>{digest[:16]}</code></p>"
    )
    body.append(f"<p>{html.escape(INTRO).replace('**contribution**', '<strong>contribution</strong>')}</p>")
    for section in SECTIONS:
        rows = lens[lens["section"] == section.key]
        md += [f"## {section.title}", "", f"*Study question: {section.question}*", ""]
        body += [
            f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>',
            f'<p class="question">Study question: {html.escape(section.question)}</p>',
        ]
        if rows.empty:
            note = (
                "No indicator for this section is in the warehouse yet; nothing is shown rather than a guess."
            )
            md += [f"> {note}", ""]
            body.append(f'<p class="missing">{html.escape(note)}</p></section>')
            continue
        if (rows["mode"] == "sample").all():
            note = "SAMPLE DATA: every value in this section comes from the offline sample snapshot, not from the real source."
            md += [f"> **{note}**", ""]
            body.append(f'<p class="sample-banner"><strong>{html.escape(note)}</strong></p>')
        for _indicator_id, group in rows.groupby("indicator_id", sort=True):
            first = group.iloc[0]
            md += [f"### {first.label} ({first.unit})", ""]
            body.append(f"<h3>{html.escape(first.label)} <small>({html.escape(first.unit)})</small></h3>")
            body.append(_svg_series(group, first.label))
            header = [
                "Territory",
                "Period",
                "Value",
                f"vs {first.compared_with or 'comparison'}",
                "Trend/yr",
                "Source",
                "Retrieved",
                "Mode",
                "Freshness",
            ]
            md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            body.append(
                "<table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                + "</tr></thead><tbody>"
            )
            for r in _latest_rows(group).itertuples():
                ratio = "–" if pd.isna(r.ratio) else f"×{r.ratio:.2f}"
                mode = "SAMPLE" if r.mode == "sample" else r.mode
                retrieved = str(r.retrieved_at)[:10]
                cells = [
                    r.territory_name or r.territory_id,
                    r.period,
                    _fmt(r.value),
                    ratio,
                    _fmt(r.trend_per_year),
                    r.source_title,
                    retrieved,
                    mode,
                    r.freshness,
                ]
                md.append(
                    "| "
                    + " | ".join(str(c) for c in cells[:5])
                    + f" | [{r.source_id}]({r.source_url}) | {retrieved} | {mode} | {r.freshness} |"
                )
                body.append(
                    "<tr>"
                    + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells[:5])
                    + f'<td><a href="{html.escape(r.source_url)}">{html.escape(r.source_id)}</a></td>'
                    + f'<td>{retrieved}</td><td class="mode-{html.escape(r.mode)}">{mode}</td>'
                    + f"<td>{html.escape(str(r.freshness))}</td></tr>"
                )
            md.append("")
            body.append("</tbody></table>")
        body.append("</section>")
    md += ["## Sources and limitations", ""]
    body.append('<section id="sources"><h2>Sources and limitations</h2><ul>')
    for s in sources.itertuples():
        state = "SAMPLE (offline stand-in, not real data)" if s.mode == "sample" else f"{s.mode}, {s.status}"
        line = (
            f"{s.publisher}: *{s.title}*. Licence: {s.licence}. Snapshot {s.last_snapshot_id or '–'} "
            f"retrieved {str(s.retrieved_at)[:10]}; {state}."
        )
        if s.error:
            line += f" Last error: {s.error}"
        md.append(f"- [{s.source_id}]({s.landing_url}): {line}")
        body.append(
            f'<li><a href="{html.escape(s.landing_url)}">{html.escape(s.source_id)}</a>: '
            f"{html.escape(line).replace('*', '')}</li>"
        )
    md.append("")
    body.append("</ul></section>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        ".sample-banner{background:#fff3cd;border:1px solid #e0b400;padding:.5em}.mode-sample{color:#a15c00;font-weight:bold}"
        ".question{font-style:italic}.missing{color:#666}.meta{color:#555}svg.chart{display:block;margin:.5em 0}"
    )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(study.title)}</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    return "\n".join(md), page


def write_report(study: Study, markdown: str, page: str) -> Path:
    folder = output_dir() / "lens" / study.id
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("lens.md", markdown), ("lens.html", page)):
        temp = folder / f".{name}.tmp"
        temp.write_text(text, encoding="utf-8")
        temp.replace(folder / name)
    return folder

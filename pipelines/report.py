"""Render a study's lens as `lens.md` and a self-contained `lens.html` (inline CSS, SVG and JS; no network).

Both documents come from the same values (`pipelines.reading` for the front matter,
`pipelines.body` for the rest) through Jinja2 templates in `pipelines/templates/`
(`lens.html.j2`, `lens.md.j2`), so they say the same things in the same language. There is
no markup here: the charts come from `pipelines.charts`, the map from `pipelines.lens_map`.
"""

from pathlib import Path

from pipelines import body, reading
from pipelines.paths import output_dir
from pipelines.studies import Study
from warehouse.lens import Lens, LensScope

# No network, whatever the content: nothing may be fetched, only inline style and script run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def render(
    study: Study,
    lens: Lens,
    scope: LensScope,
    geo=None,
    extras: dict | None = None,
    front: dict | None = None,
) -> tuple[str, str]:
    """(markdown, html) for the study's lens; `front` is reading.context() (claims, summary, contents)."""
    front = front if front is not None else reading.context(study, lens, scope, reading.language())
    values = front | body.body_view(study, lens, scope, geo, extras or {}, front["lang"])
    values |= {
        "csp": CSP,
        "content_hash": lens.content_hash,
        "as_of": lens.as_of.isoformat() if lens.as_of else front["t"]["latest"],
        "body_css": reading.stylesheet("lens.css"),
        "reader_css": reading.stylesheet("reader.css"),
        "script": reading.stylesheet("lens.js"),
        "front_md": reading.front_markdown(front).rstrip(),
    }
    page = reading.render_template("lens.html.j2", values, markdown=False)
    markdown = reading.render_template("lens.md.j2", values, markdown=True)
    return "\n".join(line.rstrip() for line in markdown.rstrip().splitlines()) + "\n", page


def write_report(study: Study, markdown: str, page: str, folder: Path | None = None) -> Path:
    folder = folder or output_dir() / "lens" / study.id
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("lens.md", markdown), ("lens.html", page)):
        temp = folder / f".{name}.tmp"
        temp.write_text(text, encoding="utf-8")
        temp.replace(folder / name)
    return folder

"""The reader's lens: numbers for people in both languages, the claims table and the summary
from templates, and lens.pdf (WeasyPrint) within its page bound with the claims table in its text."""

from __future__ import annotations

import re

import pytest

from pipelines import reading

pypdf = pytest.importorskip("pypdf")

MAX_PAGES = 25


@pytest.mark.parametrize(
    ("value", "kind", "lang", "expected"),
    [
        (121_857_304_000, "money", "en", "121.9 thousand million CLP"),
        (121_857_304_000, "money", "es", "121,9 mil millones de CLP"),
        (6_568_573_000, "money", "en", "6.57 thousand million CLP"),
        (121_857_304_000, "money", "es", "121,9 mil millones de CLP"),
        (1.05e-13, "probability", "en", "< 0.001"),
        (0.0412, "probability", "es", "0,041"),
        (-0.00816, "rate", "en", "-0.00816"),
        (403_048_200, "money", "es", "403,0 millones de CLP"),
        (52.0, "count", "en", "52"),
        (12_345.0, "count", "es", "12.345"),
        (25.64, "percent", "en", "25.6 %"),
        (25.64, "percent", "es", "25,6 %"),
        (1.0512, "ratio", "en", "1.05"),
        (0.399, "index", "es", "0,399"),
        (None, "count", "en", "no value"),
        (float("nan"), "percent", "es", "sin valor"),
    ],
)
def test_numbers_for_people(value, kind, lang, expected):
    assert reading.Numbers(lang)(value, kind) == expected


@pytest.mark.parametrize(
    ("indicator_id", "unit", "kind"),
    [
        ("x", "CLP (nominal)", "money"),
        ("x", "CLP (nominal) per person", "money"),
        ("x", "persons", "count"),
        ("x", "persons per household", "rate"),
        ("x", "deaths per 100,000 person-years (age-standardised)", "rate"),
        ("x", "percent of the labour force", "percent"),
        ("x", "ratio (1 = same age-standardised rate as Chile)", "ratio"),
        ("x", "index (0 = equality, 1 = maximal inequality)", "index"),
        ("x", "m3/s", "decimal"),
        ("x", "probability (two-sided)", "probability"),
    ],
)
def test_number_format_read_from_the_unit(indicator_id, unit, kind):
    assert reading.number_format(indicator_id, unit) == kind


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        reading.language("fr")


def _claims_table(values: dict) -> list[tuple[str, str]]:
    return [(c["id"], check["verdict_text"]) for c in values["claims"]["claims"] for check in c["checks"]]


def test_front_matter_in_both_languages(sample_env):
    built = sample_env.built
    from pipelines.lens import study_scope
    from warehouse import db

    with db.reader() as conn:
        scope = study_scope(conn, sample_env.study)
    english = reading.context(sample_env.study, built.lens, scope, "en")
    spanish = reading.context(sample_env.study, built.lens, scope, "es")
    assert ("loa-flow-loss", "Inconsistent") in _claims_table(english)
    assert ("loa-flow-loss", "Incoherente") in _claims_table(spanish)
    assert ("calama-deaths", "Only sample data") in _claims_table(english)
    assert ("not-yet", "Not measurable from open data") in _claims_table(english)
    # every registered section the lens holds appears, in the declared order
    assert [s["key"] for s in english["sections"]] == [
        "governance",
        "state_presence",
        "structural_constraints",
    ]
    # the key figures: a headline indicator for each focus territory with data and Chile, badge on each
    headline = {"indicator_id": "sample_gdp", "label": "GDP", "unit": "USD", "period": "2020"}
    figures = reading.key_figures(built.lens, scope, [{"headlines": [headline]}], "en")
    assert [c["id"] for c in figures["columns"]] == ["region:02", "country:CL"]
    (row,) = figures["rows"]
    gdp = built.lens.indicators.query("indicator_id == 'sample_gdp'")
    newest = gdp.assign(y=gdp["period"].astype(int)).sort_values("y").groupby("territory_id").tail(1)
    for territory_id in ("region:02", "country:CL"):
        value = newest.loc[newest["territory_id"] == territory_id, "value"].iloc[0]
        assert row["cells"][territory_id]["value"] == reading.Numbers("en")(value)
        assert row["cells"][territory_id]["badge"] == "live"
    page = reading.front_html(english | {"key_figures": figures})
    assert "Key figures by focus territory, against Chile" in page
    assert "The study&#39;s claims checked against the data" in page and "None" not in page
    assert "Las afirmaciones del estudio" in reading.front_html(spanish)
    markdown = reading.front_markdown(spanish)
    assert "| Afirmación | Lo que dicen los datos | Regla | Veredicto |" in markdown


def test_html_and_markdown_open_with_the_claims(sample_env):
    page = (sample_env.folder / "lens.html").read_text(encoding="utf-8")
    markdown = (sample_env.folder / "lens.md").read_text(encoding="utf-8")
    assert page.index('id="claims"') < page.index('id="summary"') < page.index('id="contents"')
    assert markdown.index("## The study's claims checked against the data") < markdown.index("## Summary")
    assert "SAMPLE claim: the Loa has lost about 75% of its flow." in markdown


def test_pdf_exists_within_its_page_bound_with_the_claims_table(sample_env):
    path = sample_env.folder / "lens.pdf"
    reader = pypdf.PdfReader(path)
    assert 1 <= len(reader.pages) <= MAX_PAGES
    text = " ".join(" ".join(p.extract_text().split()) for p in reader.pages)
    assert "The study's claims checked against the data" in text
    assert "Claim What the data says Rule Verdict" in text
    assert "SAMPLE claim: the region's GDP per capita is above Chile's." in text
    assert "Not measurable from open data" in text and "Inconsistent" in text
    assert "NaN" not in text and "None" not in text
    assert f"1 / {len(reader.pages)}" in text  # page numbers
    # the table of contents links to the sections inside the document
    links = [
        a.get_object().get("/Dest") or a.get_object().get("/A") for a in reader.pages[0].get("/Annots") or []
    ]
    assert links, "the contents on the first page are clickable"


def test_axis_ticks_are_round():
    from pipelines.charts import nice_ticks

    assert nice_ticks(19.63, 49.51) == [10, 20, 30, 40, 50]
    assert nice_ticks(0.311, 0.47) == [0.3, 0.4, 0.5]


def _series_rows(count: int, scale=lambda i: 1.0) -> list[dict]:
    rows = [
        {
            "territory_id": f"comuna:021{i:02d}",
            "territory_name": f"Comuna {i}",
            "role": "focus",
            "period": str(year),
            "value": float(i + year - 2000) * scale(i),
            "source_title": "SAMPLE source",
            "mode": "sample",
        }
        for i in range(count)
        for year in (2020, 2021, 2022)
    ]
    return rows + [{**r, "territory_id": "region:02", "territory_name": "Region"} for r in rows[:3]]


def test_a_chart_draws_every_series_it_has():
    import pandas as pd

    from pipelines.charts import series_chart

    svg = series_chart(pd.DataFrame(_series_rows(12)), "CLP", "t")
    assert 'data-series="13" data-drawn="13"' in svg
    for name in ["Region", *(f"Comuna {i}" for i in range(12))]:
        assert f">{name}</text>" in svg  # each one named in the legend
    assert "SAMPLE data: do not cite" in svg and "Source: SAMPLE source" in svg
    assert svg.index(">Region</text>") < svg.index(">Comuna 0</text>")  # the region before its comunas


def test_more_series_than_colours_become_small_multiples():
    import pandas as pd

    from pipelines.charts import MAX_LINES, series_chart

    svg = series_chart(pd.DataFrame(_series_rows(MAX_LINES + 4)), "CLP", "t")
    assert f'data-series="{MAX_LINES + 5}" data-drawn="{MAX_LINES + 5}"' in svg
    assert "one panel per territory" in svg and ">Comuna 23</text>" in svg


def test_a_series_100_times_another_gets_a_log_scale_and_p_values_no_chart():
    import pandas as pd

    from pipelines.charts import interval_chart, series_chart

    flat = series_chart(pd.DataFrame(_series_rows(2)), "m³/s", "t")
    assert "log scale" not in flat
    steep = series_chart(pd.DataFrame(_series_rows(2, lambda i: 1000.0**i)), "m³/s", "t")
    assert "log scale" in steep
    assert series_chart(pd.DataFrame(_series_rows(2)), "p", "t", kind="probability") == ""
    ratios = pd.DataFrame(
        [
            {"territory_id": "comuna:02101", "territory_name": "Antofagasta", "role": "focus", "period": "2016-2020",
             "value": 1.2, "lower": 1.1, "upper": 1.3},
            {"territory_id": "comuna:02202", "territory_name": "Ollagüe", "role": "focus", "period": "2016-2020",
             "value": 0.0, "lower": 0.0, "upper": 3.1},
        ]
    )  # fmt: skip
    svg = interval_chart(ratios, "ratio", "t", "health_rr_x")
    assert 'data-series="1"' in svg and "not drawn (ratio 0): Ollagüe" in svg


def test_charts_are_byte_identical_across_renders():
    import pandas as pd

    from pipelines import charts

    first = charts.series_chart(pd.DataFrame(_series_rows(5)), "CLP", "t", "es")
    charts._svg.cache_clear()
    assert charts.series_chart(pd.DataFrame(_series_rows(5)), "CLP", "t", "es") == first


def test_map_has_a_scale_bar_marks_sample_geometry_and_labels_do_not_collide():
    from pipelines.lens_map import map_svg
    from pipelines.map_layers import MapData

    box = {"type": "Polygon", "coordinates": [[[-70, -24], [-68, -24], [-68, -22], [-70, -22], [-70, -24]]]}
    feature = {"name": "Calama", "geometry": box, "label": [-69, -23]}
    twin = {"name": "Calama twin", "geometry": box, "label": [-69, -23]}  # same place: one label kept
    layers = [
        {
            "name": "Focus comunas",
            "style": "comuna",
            "source": "x",
            "sample": True,
            "features": [feature, twin],
        }
    ]
    svg = map_svg(MapData((-70.5, -24.5, -67.5, -21.5), layers))
    assert 'class="scale-bar" data-km="' in svg
    assert "SAMPLE geometry: not official boundaries" in svg and "(2 · SAMPLE geometry)" in svg
    labels = svg.split('data-labels-for="map-layer-0">', 1)[1].split("</g>", 1)[0]
    assert labels.count("<text") == 1
    assert "SAMPLE geometry" not in map_svg(
        MapData((-70.5, -24.5, -67.5, -21.5), [{**layers[0], "sample": False}])
    )


def test_the_whole_lens_in_spanish_from_the_same_templates(sample_env):
    """--lang es: the body (focus, sections, sources) speaks Spanish too, numbers in es_CL."""
    from pipelines.lens import study_scope
    from pipelines.report import render
    from warehouse import db

    with db.reader() as conn:
        scope = study_scope(conn, sample_env.study)
    front = reading.context(sample_env.study, sample_env.built.lens, scope, "es")
    markdown, page = render(sample_env.study, sample_env.built.lens, scope, None, {}, front)
    for heading in ("## Foco del estudio", "## Condiciones de gobernanza", "## Fuentes y limitaciones"):
        assert heading in markdown
    for english in ("## Study focus", "Study question", "claim level", "Sources and limitations"):
        assert english not in markdown and english not in page
    assert "nivel de afirmación: **contribución**" in markdown
    assert "fijado en el archivo del estudio" in markdown and "| configured |" not in markdown
    assert '<html lang="es">' in page and "<strong>contribución</strong>" in page
    # Babel's es_CL: a decimal comma in the body's values, e.g. "585,0" deaths per 100,000
    assert re.search(r"\| \d+,\d ", markdown)


def test_the_spanish_lens_shows_no_english_indicator_label(sample_env):
    """Every registry entry has an es: block, so no English label reaches the Spanish body."""
    import yaml

    from pipelines.lens import study_scope
    from pipelines.report import render
    from tests.lens.sample_warehouse import SAMPLE_INDICATORS
    from warehouse import db
    from warehouse.registry import REGISTRY_DIR, presentations

    with db.reader() as conn:
        scope = study_scope(conn, sample_env.study)
    front = reading.context(sample_env.study, sample_env.built.lens, scope, "es")
    markdown, page = render(sample_env.study, sample_env.built.lens, scope, None, {}, front)
    registry = presentations()
    assert all("es" in entry.texts for entry in registry.values())
    entries = [e for path in sorted(REGISTRY_DIR.glob("*.yaml")) for e in yaml.safe_load(path.read_text())]
    english = {e["label"] for e in entries if e["label"] != e["es"]["label"]}
    spanish = {e["es"]["label"] for e in entries}
    assert any(label in markdown for label in spanish)  # the body does name indicators
    # the sample warehouse's own indicators are not in the registry: their (English) labels may show
    sample_only = {row[1] for row in SAMPLE_INDICATORS}
    assert sorted(label for label in english - sample_only if label in markdown) == []
    # definitions too: every English definition has its Spanish one, and none reaches the Spanish body
    defined = [e for e in entries if e.get("definition")]
    assert [e["indicator_id"] for e in defined if not e["es"].get("definition")] == []
    assert len(defined) > 80
    for e in defined:  # what the body prints (pipelines.body.indicator_block) in each language
        shown = registry[e["indicator_id"]]
        assert shown.text("es", "definition", e["definition"]) == e["es"]["definition"] != e["definition"]
        assert shown.text("en", "definition", e["definition"]) == e["definition"]


def test_a_focus_trend_is_drawn_dotted_between_its_years():
    import pandas as pd

    from pipelines.charts import series_chart

    rows = pd.DataFrame(_series_rows(2))
    plain = series_chart(rows, "CLP", "t")
    trended = rows.assign(
        trend_per_year=2.0, trend_intercept=-4000.0, trend_first_year=2020, trend_last_year=2022
    )
    svg = series_chart(trended, "CLP", "t")
    assert "least-squares trend" in svg and "least-squares trend" not in plain
    assert svg.count('stroke-dasharray="1,3"') == 3  # one per focus territory (two comunas, the region)


FAMILY_FLAGS = [  # as the families write them (core.observations.flag of a sample build)
    "estimated",
    "few_deaths",
    "located by polygon; settlements without polygon not counted",
    "located by map point; conflicts without a point not counted",
    "gauge 02104002; 20 complete years",
    "INE population 2025",
    "suppressed by INE (a cell of 50 persons or fewer)",
    "suppressed by INE in a comuna of the province (50 persons or fewer)",
    "unreliable estimate (INE OBS_STATUS Y)",
    "sum of 9 comunas",
    "1 of 1 curated rows not checked against the primary document; population is SAMPLE data",
    "sum of 9 listed allocations (fondo_puente); regional-government payments (Presupuesto Abierto) is SAMPLE data",
    "validated data, stations RII/217, RII/233; run by a mining company (Codelco Distrito Norte): RII/217, RII/233",
    "validated data, stations RII/251; the station with most days: RII/251",
    "computed: 100 x FCM / (IPP + FCM) over 9 comunas",
    "straight-line km, lower median over the comuna's 4 located establishment(s); "
    "nearest high-complexity hospital: Hospital SAMPLE 103100 (Antofagasta)",
    "synthetic estimate (comuna outside the Casen sample or below its inclusion criteria)",
]


def test_every_family_flag_reads_in_spanish_and_ids_read_as_words():
    from pipelines.reading import flag_text

    for flag in FAMILY_FLAGS:
        spanish = flag_text(flag, "es")
        for english, translated in zip(flag.split("; "), spanish.split("; "), strict=True):
            assert translated != english, english  # a rule in texts.yaml knew this part
    assert flag_text("few_deaths", "en") == "few deaths (rate unstable)"
    assert (
        flag_text("gauge 05701002; 18 complete years", "es")
        == "estación fluviométrica 05701002; 18 años completos"
    )
    assert flag_text("a flag no rule knows", "es") == "a flag no rule knows" and flag_text(None, "es") == ""


def test_periods_and_mart_headers_read_in_the_readers_language():
    from pipelines.reading import period_text, texts

    assert period_text("1976-1995 to 2001-2020", "es") == "1976-1995 a 2001-2020"
    assert period_text("1976-1995 to 2001-2020", "en") == "1976-1995 to 2001-2020"
    english, spanish = (texts(lang)["body"]["mart_columns"] for lang in ("en", "es"))
    assert set(english) == set(spanish) and "mk_p_value" in english

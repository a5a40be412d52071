"""Indicators the registry draws together share one figure; few lines are named at their ends.

Built from small frames in the lens's own row shape, rendered by the same Vega-Lite → SVG path
as the lens, and read back from the SVG.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from pipelines import charts
from pipelines.body import draw_charts
from pipelines.writer import Writer

TERRITORIES = (("region:02", "Antofagasta (region)", "focus"), ("country:CL", "Chile", "comparison"))


def _rows(values: dict[str, float], period: str = "2024", lower=None, upper=None) -> pd.DataFrame:
    rows = []
    for territory_id, name, role in TERRITORIES:
        if territory_id in values:
            value = values[territory_id]
            rows.append(
                {
                    "territory_id": territory_id,
                    "territory_name": name,
                    "role": role,
                    "period": period,
                    "value": value,
                    "lower": None if lower is None else value * lower,
                    "upper": None if upper is None else value * upper,
                    "source_title": "Test source",
                    "mode": "live",
                }
            )
    return pd.DataFrame(rows)


def _member(indicator_id: str, label: str, unit: str, kind: str, frame: pd.DataFrame) -> charts.Member:
    return charts.Member(indicator_id, label, unit, kind, frame, frame)


def _series(svg: str) -> int:
    return int(re.search(r'data-series="(\d+)"', svg)[1])


def test_indicators_in_one_unit_share_axes_as_grouped_bars():
    men = _member("u_men", "Unemployment, men", "percent of the male labour force", "percent",
                  _rows({"region:02": 7.1, "country:CL": 8.0}))  # fmt: skip
    women = _member("u_women", "Unemployment, women", "percent of the female labour force", "percent",
                    _rows({"region:02": 9.4, "country:CL": 9.9}))  # fmt: skip
    svg = charts.group_chart([men, women], "Unemployment", "en")
    assert 'data-chart="bars"' in svg and _series(svg) == 4  # 2 indicators x 2 territories, every one drawn
    assert ">Unemployment, men</text>" in svg and ">Unemployment, women</text>" in svg  # the legend
    assert ">percent</text>" in svg  # the units' shared words title the one axis
    assert "log scale" not in svg


def test_a_rate_and_its_ratio_stack_as_panels_of_one_figure():
    rate = _member("asr_x", "Death rate", "deaths per 100,000", "rate",
                   _rows({"region:02": 150.0, "country:CL": 130.0}, lower=0.9, upper=1.1))  # fmt: skip
    ratio = _member("asr_ratio_x", "Rate ratio vs Chile", "ratio (1 = same as Chile)", "ratio",
                    _rows({"region:02": 1.15}, lower=0.95, upper=1.3))  # fmt: skip
    svg = charts.group_chart([rate, ratio], "Death rate, ratio", "en")
    assert svg.count("<svg") == 1  # one figure
    assert re.search(r'data-chart="group" data-panels="interval interval"', svg)
    own = [charts.indicator_specs(m, "en") for m in (rate, ratio)]
    assert _series(svg) == sum(spec.series for specs in own for spec in specs) == 3
    assert (
        ">Death rate, deaths per 100,000</text>" in svg
        and ">Rate ratio vs Chile, ratio (1 = same as Chile)</text>" in svg
    )


def test_p_values_are_left_to_the_table_in_a_group_too():
    p = _member(
        "mk_p", "Mann-Kendall p", "probability", "probability", _rows({"region:02": 0.03, "country:CL": 0.2})
    )
    assert charts.group_chart([p], "p", "en") == ""


def test_a_bar_over_twenty_times_another_gets_a_stated_log_scale():
    loa = pd.DataFrame(
        [
            {"territory_id": "basin:021", "territory_name": "Río Loa", "role": "focus", "period": "2001-2020",
             "value": 0.5, "lower": None, "upper": None, "source_title": "T", "mode": "live"},
            {"territory_id": "basin:057", "territory_name": "Río Maipo", "role": "peer", "period": "2001-2020",
             "value": 60.0, "lower": None, "upper": None, "source_title": "T", "mode": "live"},
        ]
    )  # fmt: skip
    assert "log scale" in charts.bar_chart(loa, "m³/s", "Mean annual flow")
    assert "log scale" not in charts.bar_chart(loa.assign(value=[40.0, 60.0]), "m³/s", "Mean annual flow")


def test_the_first_member_holds_the_figure_and_the_others_point_to_it():
    frame = _rows({"region:02": 7.1, "country:CL": 8.0})
    blocks = [
        {"chart_key": key, "member": _member(i, i, "percent", "percent", frame), "title": i.upper(),
         "anchor": f"ind-{i}", "charts": [], "drawn_with": "", "drawn_with_anchor": ""}
        for i, key in (("a", "g"), ("b", "g"), ("c", "c"))
    ]  # fmt: skip
    draw_charts(Writer("en", {}, {}), blocks)
    first, second, alone = blocks
    assert len(first["charts"]) == 1 and _series(first["charts"][0]) == 4
    assert second["charts"] == [] and second["drawn_with_anchor"] == "ind-a" and "“A”" in second["drawn_with"]
    assert len(alone["charts"]) == 1 and alone["drawn_with"] == ""


@pytest.mark.parametrize("lang", ["en", "es"])
def test_few_lines_are_named_at_their_ends_apart_from_each_other(lang):
    rows = pd.concat(
        [
            _rows({"region:02": 10.0 + year * 0.01, "country:CL": 10.02 + year * 0.01}, period=str(year))
            for year in range(2015, 2023)
        ]
    )
    svg = charts.series_chart(rows, "percent", "Rates", lang)
    assert ">Antofagasta (region)</text>" in svg and ">Chile</text>" in svg
    assert 'class="role-legend' not in svg and "role-legend" not in svg  # named on the lines, no legend
    data = rows.assign(territory=rows["territory_name"], year=rows["period"].astype(int))
    labels = charts._end_labels(data, log=False).sort_values("label_at")
    span = data["value"].max() - data["value"].min()
    assert (
        labels["label_at"].diff().dropna().min() >= span / charts.LABEL_ROWS - 1e-9
    )  # never on top of each other


def test_compact_svg_keeps_the_drawing_and_drops_per_mark_scaffolding():
    rows = pd.concat([_rows({"region:02": float(y) / 3}, str(y)) for y in range(2000, 2005)])
    spec = charts.series_spec(rows, "x", "t")
    raw = charts._svg(spec.chart.configure_view(stroke=None).to_json(sort_keys=True, indent=None), "en")
    small = charts.compact(raw)
    assert len(small) < 0.8 * len(raw)
    assert 'aria-label="' in raw and 'aria-label="' not in small  # the figure's own is added by _render
    assert "pointer-events" not in small and not re.search(
        r"\d\.\d{2,}", "".join(re.findall(r"<[^>]+>", small))
    )

    def drawn(svg: str) -> list[str]:  # the elements that put ink on the page, in order
        return re.findall(r"<(line|text|rect|path(?! class=\"(?:background|foreground)\"))", svg)

    assert drawn(small) == drawn(raw) and re.findall(r">([^<]+)</text>", small) == re.findall(
        r">([^<]+)</text>", raw
    )

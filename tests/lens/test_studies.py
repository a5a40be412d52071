"""Study files: the shipped ones load; a broken one fails with a message naming the field."""

from __future__ import annotations

import pytest

from pipelines.studies import STUDIES_DIR, StudyConfigError, all_studies, load_study, parse_study

VALID = """\
id: sample-config
title: "SAMPLE config"
dates: {start: 2025-01-01, end: 2025-06-30}
focus:
  regions: ["02"]
  comunas: ["02201"]
  basins: ["021"]
  sites: [{name: "SAMPLE site", lat: -22.4, lon: -68.9}]
comparison:
  territories: ["country:CL"]
  peer_basins: ["025"]
periods:
  economy: [2015, 2022]
"""


def _write(tmp_path, text: str, name: str = "sample-config"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_studies_load():
    studies = {s.id: s for s in all_studies()}
    assert {"antofagasta-2025", "calama-loa-2025"} <= set(studies)
    assert {p.stem for p in STUDIES_DIR.glob("*.yaml")} == set(studies)
    calama = studies["calama-loa-2025"]
    assert calama.comunas == ["02201"] and calama.basins == ["021"] and len(calama.sites) == 1
    assert calama.table_prefix == "calama_loa_2025"
    antofagasta = load_study("antofagasta-2025")
    assert len(antofagasta.comunas) == 9 and "oecd:OECD" in antofagasta.comparison


def test_valid_file_and_defaults(tmp_path):
    study = parse_study(_write(tmp_path, VALID))
    assert study.focus_territories == ["region:02", "comuna:02201", "basin:021"]
    assert study.sites[0].field == "focus.sites[0]" and study.peer_basin_territories == ["basin:025"]
    bare = parse_study(
        _write(
            tmp_path,
            'id: sample-config\ntitle: t\ndates: {start: 2025-01-01, end: 2025-01-02}\nfocus: {comunas: ["02201"]}\n',
        )
    )
    assert bare.comparison == ["country:CL"] and bare.peer_basins == [] and bare.periods == {}


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('title: "SAMPLE config"', "title: ''", "title"),
        ("start: 2025-01-01", "start: 2025-13-01", "dates.start"),
        ("end: 2025-06-30", "end: 2024-06-30", "dates.end"),
        ('comunas: ["02201"]', "comunas: [2201]", "focus.comunas"),
        ('regions: ["02"]', 'regions: "02"', "focus.regions"),
        ("lat: -22.4, ", "", r"focus.sites\[0\]"),
        ("lat: -22.4", "lat: -122.4", r"focus.sites\[0\]"),
        ("focus:\n", "focus:\n  comuna: ['02201']\n", "focus.comuna"),
        ("periods:", "comparision: {}\nperiods:", "comparision"),
        ('territories: ["country:CL"]', 'territories: ["Chile"]', "comparison.territories"),
        ('peer_basins: ["025"]', 'peer_basins: ["021"]', "comparison.peer_basins"),
        ("economy: [2015, 2022]", "economy: [2022]", "periods.economy"),
        ("economy: [2015, 2022]", "economy: [2022, 2015]", "periods.economy"),
        ("id: sample-config", "id: another-id", "id"),
    ],
)
def test_invalid_field_is_named(tmp_path, old, new, field):
    assert old in VALID
    with pytest.raises(StudyConfigError, match=rf"sample-config.yaml: field '{field}'"):
        parse_study(_write(tmp_path, VALID.replace(old, new, 1)))


def test_empty_focus_and_unsafe_ids(tmp_path):
    text = "id: sample-config\ntitle: t\ndates: {start: 2025-01-01, end: 2025-01-02}\nfocus: {}\n"
    with pytest.raises(StudyConfigError, match="field 'focus'"):
        parse_study(_write(tmp_path, text))
    for bad in ("../etc/passwd", "Antofagasta", ""):
        with pytest.raises(StudyConfigError, match="not allowed"):
            load_study(bad)
    with pytest.raises(StudyConfigError, match="no study file .*available: .*antofagasta-2025"):
        load_study("no-such-study")
    with pytest.raises(StudyConfigError, match="not valid YAML"):
        parse_study(_write(tmp_path, "id: [unclosed\n"))

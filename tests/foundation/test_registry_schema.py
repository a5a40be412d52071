"""The indicator registry's schema: every shipped file loads, and a wrong entry is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.ingest import load_indicators
from warehouse import registry

ENTRY = {
    "indicator_id": "test_share",
    "source_id": "test_source",
    "label": "A share",
    "unit": "percent",
    "theme": "water",
    "definition": "What it measures.",
    "method": "How it is computed.",
    "lens_section": "structural_constraints",
    "claim_level": "contribution",
    "higher_is": None,
}


def _folder(tmp_path: Path, **files: list[dict]) -> Path:
    for name, entries in files.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(entries), encoding="utf-8")
    return tmp_path


def _load(tmp_path: Path, **files: list[dict]) -> list[dict]:
    folder = _folder(tmp_path, **files)
    return [e for name in files for e in registry.family_indicators(name, folder)]


def test_every_shipped_file_loads_through_the_one_loader():
    files = sorted(registry.REGISTRY_DIR.glob("*.yaml"))
    assert len(files) >= 11
    for path in files:
        entries = load_indicators(path.stem)
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert entries == raw, path.name
        assert all(set(e) <= set(registry.FIELDS) for e in entries)
    assert len(registry.presentations()) == sum(len(load_indicators(p.stem)) for p in files)


def test_a_valid_entry_loads_as_written(tmp_path):
    assert _load(tmp_path, fam=[ENTRY]) == [ENTRY]


def test_a_misspelt_key_is_refused_with_the_nearest_name(tmp_path):
    entry = {**ENTRY, "untis": ENTRY["unit"]}
    with pytest.raises(
        registry.RegistryError, match=r"fam\.yaml: indicator 'test_share': untis: unknown field"
    ):
        _load(tmp_path, fam=[entry])
    with pytest.raises(registry.RegistryError, match=r"did you mean 'unit'\?"):
        _load(tmp_path, fam=[entry])


def test_a_duplicate_id_across_files_is_refused(tmp_path):
    with pytest.raises(
        registry.RegistryError, match=r"b\.yaml: indicator 'test_share'.*already registered in a\.yaml"
    ):
        _load(tmp_path, a=[ENTRY], b=[ENTRY])


def test_a_duplicate_id_within_one_file_is_refused(tmp_path):
    with pytest.raises(registry.RegistryError, match=r"already registered in fam\.yaml"):
        _load(tmp_path, fam=[ENTRY, ENTRY])


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("higher_is", "higher", r"higher_is: 'higher' is not one of better, worse"),
        ("claim_level", "causal", r"claim_level: 'causal' is not one of contribution, attribution"),
        ("lens_section", "water", r"lens_section: 'water' is not one of governance"),
        ("unit", 3, r"unit: expected a non-empty str, got 3"),
        ("label", "  ", r"label: expected a non-empty str"),
        ("claim_level", None, r"claim_level: expected a non-empty str, got None"),
        ("display", "top", r"display: expected a dict, got 'top'"),
    ],
)
def test_a_wrong_value_is_refused(tmp_path, field, value, problem):
    with pytest.raises(registry.RegistryError, match=problem):
        _load(tmp_path, fam=[{**ENTRY, field: value}])


def test_a_missing_required_field_is_refused(tmp_path):
    entry = {k: v for k, v in ENTRY.items() if k != "method"}
    with pytest.raises(registry.RegistryError, match=r"method: missing \(required\)"):
        _load(tmp_path, fam=[entry])


def test_display_and_es_are_still_checked_at_load(tmp_path):
    with pytest.raises(registry.RegistryError, match=r"display\.colour: unknown"):
        _load(tmp_path, fam=[{**ENTRY, "display": {"colour": "red"}}])
    with pytest.raises(registry.RegistryError, match=r"es: expected a mapping"):
        _load(tmp_path, fam=[{**ENTRY, "es": {"etiqueta": "x"}}])


def test_an_unknown_family_is_refused(tmp_path):
    with pytest.raises(registry.RegistryError, match=r"nope\.yaml: no such registry file"):
        registry.family_indicators("nope", _folder(tmp_path, fam=[ENTRY]))


def test_the_size_cap_holds(tmp_path, monkeypatch):
    folder = _folder(tmp_path, fam=[ENTRY])
    monkeypatch.setattr(registry, "MAX_FILE_BYTES", 10)
    with pytest.raises(registry.RegistryError, match=r"fam\.yaml: larger than 10 bytes"):
        registry.family_indicators("fam", folder)


def test_a_key_given_twice_in_one_entry_is_refused(tmp_path):
    """YAML keeps the last of two equal keys; the registry refuses them, so no display is dropped."""
    text = yaml.safe_dump([{**ENTRY, "display": {"chart": "a"}}], sort_keys=False)
    (tmp_path / "fam.yaml").write_text(text + "  display: {order: 1}\n", encoding="utf-8")
    with pytest.raises(registry.RegistryError, match=r"fam\.yaml: key 'display' given twice"):
        registry.family_indicators("fam", tmp_path)


def test_chart_groups_are_real_groups_within_one_section():
    """Indicators sharing `display.chart` are drawn in one figure (pipelines.body.draw_charts)."""
    entries = {
        e["indicator_id"]: e for p in registry.REGISTRY_DIR.glob("*.yaml") for e in load_indicators(p.stem)
    }
    groups: dict[str, list[str]] = {}
    for indicator_id, shown in registry.presentations().items():
        if shown.chart != indicator_id:
            groups.setdefault(shown.chart, []).append(indicator_id)
    assert {"water_flow_periods", "health_respiratory", "ene_unemployment"} <= set(groups)
    for key, members in groups.items():
        assert len(members) >= 2, key
        assert len({entries[m]["lens_section"] for m in members}) == 1, key

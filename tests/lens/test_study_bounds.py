"""Study files are bounded and isolated: a bad one fails alone, quickly, naming file and field."""

from __future__ import annotations

import pytest
from dagster import materialize

from pipelines import finance_sources, lens, studies
from pipelines.studies import StudyConfigError, parse_study

BASE = 'id: bounded\ntitle: t\ndates: {start: 2025-01-01, end: 2025-01-02}\nfocus: {comunas: ["02201"]}\n'
SITE = "{lat: -22.4, lon: -68.9}"


def _refusal(tmp_path, text: str) -> str:
    path = tmp_path / "bounded.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StudyConfigError) as caught:
        parse_study(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # nine levels of nine aliases would be 9**9 strings once expanded
        (
            "a: &a [lol, lol, lol]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n" + BASE,
            "bounded.yaml: not valid YAML: line 2: YAML aliases (*name) are not allowed",
        ),
        (BASE + "description: '" + "x" * (studies.MAX_STUDY_BYTES + 1) + "'\n", "larger than 256 KiB"),
        (BASE + "description: " + "[" * 30 + "]" * 30 + "\n", "levels of nesting"),
        (BASE + "periods: {" + ", ".join(f"p{i}: [2000, 2001]" for i in range(7000)) + "}\n", "20000 values"),
        (
            BASE.replace('{comunas: ["02201"]}', "{sites: [" + ", ".join([SITE] * 201) + "]}"),
            "field 'focus.sites': 201 sites; a study may name at most 200",
        ),
        (
            BASE.replace('["02201"]', "[" + ", ".join(f'"{c:05d}"' for c in range(2001, 2502)) + "]"),
            "field 'focus': 502 territories named; a study may name at most 500",  # with country:CL
        ),
        (BASE.encode("latin-1").decode("latin-1").replace("title: t", "title: 'Peñas'"), None),
    ],
)
def test_a_study_file_cannot_grow_without_bound(tmp_path, text, expected):
    if expected is None:  # within the bounds: loads
        path = tmp_path / "bounded.yaml"
        path.write_text(text, encoding="utf-8")
        assert parse_study(path).title == "Peñas"
        return
    assert expected in _refusal(tmp_path, text)


def test_a_million_sites_are_refused_unread(tmp_path):
    text = BASE.replace('{comunas: ["02201"]}', "{sites: [" + ", ".join([SITE] * 1_000_000) + "]}")
    assert "larger than 256 KiB, the cap for a study file" in _refusal(tmp_path, text)


def test_a_bad_study_file_fails_only_its_own_lens(tmp_path, monkeypatch, capsys):
    good = (studies.STUDIES_DIR / "calama-loa-2025.yaml").read_text(encoding="utf-8")
    (tmp_path / "calama-loa-2025.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "broken-one.yaml").write_text(good.replace("calama-loa-2025", "broken-one") + "focus: 3\n")
    monkeypatch.setattr(studies, "STUDIES_DIR", tmp_path)
    monkeypatch.setattr(lens, "_ASSETS", None)
    [(bad_path, error)] = [(p, s) for p, s in studies.study_files() if isinstance(s, StudyConfigError)]
    assert bad_path.name == "broken-one.yaml" and "broken-one.yaml" in str(error)
    assert [s.id for s in studies.all_studies()] == ["calama-loa-2025"]
    assert finance_sources.study_scope() == (["02201"], ["02"])  # refreshes scope by the usable studies
    keys = sorted(a.key.path[-1] for a in lens.ASSETS)
    assert keys == ["lens_calama_loa_2025", "lens_unusable_broken_one"]
    assert [a.key.path[-1] for a in lens.usable(lens.ASSETS)] == ["lens_calama_loa_2025"]
    from dagster import AssetKey

    from pipelines import cli

    left_out = cli._unusable_lenses().resolve(lens.ASSETS)  # what a refresh leaves out, with a warning
    assert left_out == {AssetKey("lens_unusable_broken_one")}
    assert (
        "warning: study broken-one.yaml is left out: broken-one.yaml: field 'focus'"
        in capsys.readouterr().err
    )
    broken = next(a for a in lens.ASSETS if a.key.path[-1] == "lens_unusable_broken_one")
    result = materialize([broken], raise_on_error=False)
    [failure] = result.get_step_failure_events()
    message = failure.event_specific_data.error.cause.message
    assert message.startswith("pipelines.studies.StudyConfigError: broken-one.yaml: field 'focus'")
    assert "broken-one.yaml" in message and "focus" in message

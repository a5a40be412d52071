"""Source specs (sources/specs/*.yaml): every source declared as data, checked by one loader.

`source_specs_before.json` was derived once from main's in-code declarations (commit 21c2192,
before the move), so the tests below compare what the specs give now with what the code said.
"""

import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import sources
from pipelines.families import catalog
from sources import ine_ene, oecd, sinca, specs
from sources.base import SourceInfo
from sources.endpoints import endpoint, known_endpoints
from sources.specs import SpecError, load_spec

REPO = Path(__file__).resolve().parents[2]
BEFORE = json.loads((Path(__file__).with_name("source_specs_before.json")).read_text(encoding="utf-8"))
# Declared (parsers exist) but acquired by no family: alternatives kept for operators and tests.
NOT_ACQUIRED = {
    "bcentral_bde": "official alternative to mindicador; needs an account",
    "caravan_camelscl": "manual: several GB, placed by an operator",
    "chilemapas": "alternative boundary publisher",
    "fcortes_chile_geojson": "alternative boundary publisher",
    "bastianolea_comunas_cut": "alternative CUT code table",
}


def _declared_infos() -> dict[str, list[tuple[str, SourceInfo]]]:
    """Every SourceInfo a source module exports, by id, with the module that exports it."""
    found: dict[str, list[tuple[str, SourceInfo]]] = {}
    for module_info in pkgutil.iter_modules(sources.__path__):
        module = importlib.import_module(f"sources.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, SourceInfo):
                found.setdefault(value.id, []).append((module_info.name, value))
    return found


def test_every_spec_loads_and_is_named_by_its_id():
    files = sorted(specs.SPECS_DIR.glob("*.yaml"))
    loaded = specs.all_specs()
    assert [p.stem for p in files] == sorted(loaded)
    assert len(loaded) == 25
    for source_id, spec in loaded.items():
        assert spec.info.id == source_id and spec.path.name == f"{source_id}.yaml"


def test_the_specs_are_the_sources_the_code_declares_and_the_pipeline_registers():
    declared, loaded = _declared_infos(), specs.all_specs()
    assert set(declared) == set(loaded), (
        "a source module declares a SourceInfo with no spec, or a spec is unused"
    )
    for source_id, owners in declared.items():
        assert all(info is loaded[source_id].info for _, info in owners), owners  # built from the spec
    registered = {s: f for f, ids in catalog().items() for s in ids}
    assert set(registered) <= set(loaded), (
        f"registered without a spec: {sorted(set(registered) - set(loaded))}"
    )
    assert set(loaded) - set(registered) == set(NOT_ACQUIRED)
    for source_id, family in registered.items():
        assert loaded[source_id].info.family == family, source_id


def test_source_infos_equal_the_declarations_before_the_move():
    loaded = specs.all_specs()
    assert sorted(BEFORE["sources"]) == sorted(loaded)
    for source_id, before in BEFORE["sources"].items():
        info = loaded[source_id].info
        fields = ("id", "publisher", "title", "landing_url", "licence", "citation", "family")
        assert {f: getattr(info, f) for f in fields} == {f: before[f] for f in fields}, source_id
        assert info.cadence.total_seconds() == before["cadence_seconds"], source_id


def test_module_endpoints_equal_the_declarations_before_the_move():
    """Every module's ENDPOINTS-like dict has the same names, URLs and order as before."""
    for key, pairs in BEFORE["module_endpoints"].items():
        module_name, attribute = key.split(".")
        now = getattr(importlib.import_module(f"sources.{module_name}"), attribute)
        expected = [[name, url.replace("file://{REPO}/", f"file://{REPO}/")] for name, url in pairs]
        assert [[name, url] for name, url in now.items()] == expected, key


def test_known_endpoint_names_equal_those_before_the_move():
    """Unchanged, except that boundaries.py's one dict is now split among its three publishers."""
    now = {source_id: sorted(names) for source_id, names in known_endpoints().items()}
    before = dict(BEFORE["known_endpoints"])
    boundary_ids = ("chilemapas", "fcortes_chile_geojson", "bastianolea_comunas_cut")
    assert sorted(n for s in boundary_ids for n in now.pop(s)) == before.pop("chilemapas")
    assert now == before


def test_request_headers_equal_those_before_the_move():
    for key, headers in BEFORE["module_headers"].items():
        module_name, attribute = key.split(".")
        assert getattr(importlib.import_module(f"sources.{module_name}"), attribute) == headers, key


def test_coded_queries_match_the_urls_the_specs_declare():
    for query in oecd.QUERIES:
        assert f"/{oecd.AGENCY},{query.dataflow},{query.version}/" in oecd.ENDPOINTS[query.indicator]
    for flow in ine_ene.DATAFLOWS:
        assert f"/{ine_ene.AGENCY},{flow.id},{ine_ene.VERSION}/all?" in ine_ene.ENDPOINTS[flow.id]
    for station, parameter in sinca.SERIES:
        url = sinca.ENDPOINTS[sinca.series_name(station, parameter)]
        assert f"macro=./{station}/Cal/{parameter}//{parameter}.diario.diario.ic&" in url
    assert oecd.REQUESTS_PER_HOUR == {"sdmx.oecd.org": 60}


def test_every_sample_payload_belongs_to_exactly_one_spec():
    claimed = [path for spec in specs.all_specs().values() for path in spec.samples]
    assert len(claimed) == len(set(claimed))
    payloads = {
        path.resolve()
        for path in specs.SAMPLES_DIR.rglob("*")
        if path.is_file()
        and path.suffix != ".py"
        and path.name != "README.md"
        and "__pycache__" not in path.parts
    }
    assert payloads == set(claimed), sorted(
        str(p.relative_to(specs.SAMPLES_DIR)) for p in payloads ^ set(claimed)
    )


def test_modes_say_how_each_source_is_acquired():
    loaded = specs.all_specs()
    assert {s for s, spec in loaded.items() if spec.mode == "curated"} == {"royalties_curated"}
    assert all(url.startswith("file://") for url in loaded["royalties_curated"].default_urls().values())
    assert {s for s, spec in loaded.items() if spec.mode == "manual"} == {"caravan_camelscl"}


def test_an_environment_override_replaces_a_spec_default(monkeypatch):
    defaults = specs.endpoints("indh_conflicts")
    assert (
        endpoint("indh_conflicts", "conflicts", defaults) == "https://mapaconflictos.indh.cl/api/conflictos"
    )
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__INDH_CONFLICTS__CONFLICTS", "https://mirror.example/c.json")
    assert endpoint("indh_conflicts", "conflicts", defaults) == "https://mirror.example/c.json"
    # an optional endpoint (no default in its spec) is known, so its override is accepted
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DGA_BNA_BASINS__SUBCUENCAS", "https://mirror.example/s.zip")
    assert endpoint("dga_bna_basins", "subcuencas", {}) == "https://mirror.example/s.zip"


# --- a wrong spec fails, naming the file and the field ------------------------------------------


def _spec_copy(tmp_path: Path, edit) -> Path:
    text = (specs.SPECS_DIR / "indh_conflicts.yaml").read_text(encoding="utf-8")
    path = tmp_path / "indh_conflicts.yaml"
    path.write_text(edit(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (lambda t: t.replace("licence:", "licnece:"), "licnece", "unknown field"),
        (lambda t: t.replace("\ncitation:", "\n# citation:"), "citation", "required field is missing"),
        (lambda t: t.replace("mode: live", "mode: sample"), "mode", "'sample' is not an acquisition mode"),
        (
            lambda t: t.replace("landing_url: https://", "landing_url: http://"),
            "landing_url",
            "must be an https URL",
        ),
        (
            lambda t: t.replace("    url: https://", "    url: ftp://"),
            "endpoints.conflicts.url",
            "must be an https URL",
        ),
        (lambda t: t.replace("    url:", "    ulr:"), "endpoints.conflicts.ulr", "did you mean 'url'"),
        (
            lambda t: t.replace("cadence_days: 180", "cadence_days: half a year"),
            "cadence_days",
            "whole number",
        ),
        (lambda t: t.replace("family: conflicts", "family: conflict"), "family", "is not a family"),
        (lambda t: t.replace("id: indh_conflicts", "id: indh"), "id", "differs from the file name"),
        (lambda t: t + "samples:\n- facilities/nothing_SAMPLE.json\n", "samples", "given twice"),
        (lambda t: t.replace("facilities/indh", "../../etc/indh"), "samples[0]", "relative path inside"),
        (lambda t: t + "request_headers:\n  User Agent: x\n", "request_headers.User Agent", "header name"),
        (
            lambda t: t + "requests_per_hour:\n  mapaconflictos.indh.cl: 0\n",
            "requests_per_hour.mapaconflictos.indh.cl",
            "positive",
        ),
    ],
)
def test_a_wrong_spec_names_the_file_and_the_field(tmp_path, edit, field, problem):
    path = _spec_copy(tmp_path, edit)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert str(path) in message or "indh_conflicts.yaml" in message
    assert problem in message
    if problem != "given twice":  # YAML reports a duplicate key by line, before any field is read
        assert caught.value.field == field, message


def test_a_file_endpoint_outside_curated_mode_is_refused(tmp_path):
    path = _spec_copy(
        tmp_path,
        lambda t: t.replace(
            "url: https://mapaconflictos.indh.cl/api/conflictos", "file: curated/royalty_allocations.csv"
        ),
    )
    with pytest.raises(SpecError, match="only a curated source reads local files") as caught:
        load_spec(path)
    assert caught.value.field == "endpoints.conflicts.file"


def test_an_oversized_spec_is_refused(tmp_path):
    path = _spec_copy(tmp_path, lambda t: t + "#" * specs.MAX_SPEC_BYTES)
    with pytest.raises(SpecError, match="larger than 64 KiB"):
        load_spec(path)


def test_code_and_spec_endpoints_cannot_drift(monkeypatch):
    with pytest.raises(
        SpecError, match=r"indh_conflicts\.yaml: field 'endpoints'.*missing \['conflicts_v2'\]"
    ):
        specs.endpoints("indh_conflicts", names=["conflicts", "conflicts_v2"])

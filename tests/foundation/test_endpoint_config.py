"""Configuration mistakes are errors: misspelt or mis-cased overrides, and file roots that add."""

import pytest

from pipelines import cli
from sources import oecd
from sources.endpoints import REPO_ROOT, EndpointError, allowed_file_roots, check_overrides, endpoint

URL = "http://127.0.0.1:9/mirror.csv"


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("CONTEXT_LENS_ENDPOINT") or key == "CONTEXT_LENS_FILE_ROOTS":
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("variable", "problem"),
    [
        (
            "CONTEXT_LENS_ENDPOINT__OECD_REGINAL__OECD_POPULATION",
            "no source named 'OECD_REGINAL'; valid: bastianolea_comunas_cut, bcentral_bde,",
        ),
        (
            "CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__OECD_POPULATON",
            "source 'oecd_regional' has no endpoint named 'OECD_POPULATON'; valid: oecd_gdp_per_capita_usd_ppp,",
        ),
    ],
)
def test_a_misspelt_environment_override_is_refused_with_the_nearest_name(monkeypatch, variable, problem):
    monkeypatch.setenv(variable, URL)
    with pytest.raises(EndpointError) as refused:
        check_overrides()
    assert variable in str(refused.value) and problem in str(refused.value)
    nearest = "'oecd_regional'" if "REGINAL" in variable else "'oecd_population'"
    assert str(refused.value).endswith(f"nearest: {nearest}")


def test_a_wrong_case_yaml_override_is_refused_also_when_the_source_asks(monkeypatch, tmp_path):
    path = tmp_path / "endpoints.yaml"
    path.write_text(f"oecd_regional:\n  OECD_Population: {URL}\n", encoding="utf-8")
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINTS_FILE", str(path))
    for attempt in (
        check_overrides,
        lambda: endpoint(oecd.SOURCE.id, "oecd_gini_disposable_income", oecd.ENDPOINTS),
    ):
        with pytest.raises(
            EndpointError, match="has no endpoint named 'OECD_Population'.*nearest: 'oecd_population'"
        ):
            attempt()
    path.write_text(f"OECD_Regional:\n  oecd_population: {URL}\n", encoding="utf-8")
    with pytest.raises(EndpointError, match="no source named 'OECD_Regional'.*nearest: 'oecd_regional'"):
        check_overrides()
    path.write_text(f"oecd_regional:\n  oecd_population: {URL}\n", encoding="utf-8")
    check_overrides()
    assert endpoint(oecd.SOURCE.id, "oecd_population", oecd.ENDPOINTS) == URL


def test_valid_and_optional_overrides_pass(monkeypatch):
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__OECD_POPULATION", URL)
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__DGA_BNA_BASINS__SUBCUENCAS", URL)  # declared optional
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__INE_ENE__DF_TDES_SEXO", URL)
    check_overrides()


def test_the_cli_refuses_before_running_anything(monkeypatch, capsys):
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__OECD_POPULATON", URL)
    monkeypatch.setattr(cli, "_materialize", lambda *a, **k: pytest.fail("nothing may run"))
    assert cli.main(["build", "--offline"]) == 2
    assert cli.main(["refresh"]) == 2
    assert "nearest: 'oecd_population'" in capsys.readouterr().err


def test_file_roots_add_to_the_repository(monkeypatch, tmp_path):
    curated = REPO_ROOT / "sources" / "curated"
    monkeypatch.setenv("CONTEXT_LENS_FILE_ROOTS", str(tmp_path))
    assert allowed_file_roots() == [REPO_ROOT.resolve(), tmp_path.resolve()]
    assert endpoint("test_source", "data", {"data": curated.as_uri()}) == curated.as_uri()
    assert endpoint("test_source", "data", {"data": tmp_path.as_uri()}) == tmp_path.as_uri()

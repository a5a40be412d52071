"""The study's claims: parsed field by field, judged by their rule on the lens values, and the
verdict follows the data (a changed value in the warehouse changes the verdict)."""

from __future__ import annotations

import pytest

from pipelines.claims import parse_claims
from pipelines.lens import build_lens
from pipelines.resources import WarehouseResource
from pipelines.studies import StudyConfigError, load_study, parse_study
from tests.lens import sample_warehouse as sw
from warehouse import db

CLAIM = {"text": "t", "indicator": "sample_gdp", "territory": "region:02", "relation": "above", "value": 1}


def _verdicts(frame) -> dict[tuple[str, int], tuple]:
    return {
        (r.claim_id, r.check_order): (r.verdict, r.reason if isinstance(r.reason, str) else None)
        for r in frame.itertuples()
    }


def test_every_verdict_and_its_rule_on_the_sample_lens(sample_env):
    claims = sample_env.built.lens.tables["claims"]
    assert _verdicts(claims) == {
        ("gdp-above-chile", 0): ("consistent", None),  # live: 50,000 + ... above Chile's 25,000 + ...
        ("loa-flow-loss", 0): ("inconsistent", None),  # live: -24.8 is not within 10 of -75
        ("calama-deaths", 0): ("sample_only", None),  # interval 1.02-1.09 clears 1, but SAMPLE data
        ("income-range", 0): ("consistent", None),  # 2022: 100 + 7 * 3 = 121, stale source
        ("not-yet", 0): ("not_measurable", "no_data"),  # no GDP for a comuna
        ("not-yet", 1): ("not_measurable", "no_source"),  # registered, but no family loaded it here
        ("not-yet", 2): ("not_measurable", "no_indicator"),
        ("not-yet", 3): ("not_measurable", "no_open_data"),
    }
    row = claims.set_index(["claim_id", "check_order"])
    gdp = row.loc[("gdp-above-chile", 0)]
    assert gdp["period"] == "2022" and gdp["badge"] == "live"
    assert (gdp["value"], gdp["than_value"]) == (
        sw.expected("sample_gdp", "region:02", "2022"),
        sw.expected("sample_gdp", "country:CL", "2022"),
    )
    assert row.loc[("income-range", 0), "badge"] == "stale"
    deaths = row.loc[("calama-deaths", 0)]
    assert deaths["rule_result"] == "consistent" and deaths["badge"] == "sample"
    assert deaths["rule"] == "consistent when the whole 95% interval is above 1"
    assert row.loc[("loa-flow-loss", 0), "rule"] == "consistent when the value is within 10 of -75"
    assert row.loc[("not-yet", 2), "measured_by"] == "SAMPLE survey that nobody has loaded"
    with db.reader() as conn:
        stored = conn.execute("SELECT count(*) FROM lens.sample_lens_test_claims").fetchone()[0]
    assert stored == len(claims) == 8


def test_changing_one_value_in_the_warehouse_changes_the_verdict(warehouse_env):
    with db.writer() as conn, db.transaction(conn):
        sw.seed(conn)
    study = parse_study(sw.write_study(warehouse_env))
    before = build_lens(WarehouseResource(), study).lens.tables["claims"]
    assert _verdicts(before)[("loa-flow-loss", 0)] == ("inconsistent", None)
    with db.writer() as conn:
        conn.execute(
            "UPDATE core.observations SET value = -71.5 "
            "WHERE indicator_id = 'sample_flow_change' AND territory_id = 'basin:021'"
        )
    after = build_lens(WarehouseResource(), study).lens.tables["claims"]
    assert _verdicts(after)[("loa-flow-loss", 0)] == ("consistent", None)
    assert after.set_index("claim_id").loc["loa-flow-loss", "value"] == -71.5
    unchanged = {k: v for k, v in _verdicts(after).items() if k != ("loa-flow-loss", 0)}
    assert unchanged == {k: v for k, v in _verdicts(before).items() if k != ("loa-flow-loss", 0)}


def test_default_study_lists_the_field_study_claims():
    study = load_study("antofagasta-2025")
    assert len(study.claims) == 11
    air = next(c for c in study.claims if c.id == "calama-air-pollution")
    assert [c.indicator for c in air.checks][-1] == "sinca_arsenic_pm_annual_mean"
    assert "NOT arsenic in the Loa's water" in air.checks[-1].note
    arsenic = next(c for c in study.claims if c.id == "loa-arsenic")
    assert not arsenic.checks[0].open_data and "reCAPTCHA" in arsenic.checks[0].measured_by
    measured = {c.indicator for claim in study.claims for c in claim.checks if c.indicator}
    assert "water_mean_annual_flow_change_pct" in measured and "settlements_count" in measured
    # the labour and census families measure three more claims (Calama, rural water, women in mining)
    assert {
        "census_unemployment_rate",
        "census_dwellings_no_public_water_share_rural",
        "ene_mining_women_share",
    } <= measured
    unmeasured = {c.id for c in study.claims if not any(k.indicator for k in c.checks)}
    assert unmeasured == {"loa-arsenic", "mining-subcontracting"}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"relation": "about"}, r"claims\[0\].relation", "expected one of"),
        ({"value": "121.857.304.000"}, r"claims\[0\].value", "expected a number"),
        ({"territory": "Calama"}, r"claims\[0\].territory", "invalid territory id"),
        ({"relation": "approx"}, r"claims\[0\]'", "needs one of tolerance"),
        ({"relation": "range"}, r"claims\[0\]'", "takes high and low"),
        ({"than": "country:CL"}, r"claims\[0\]'", "takes than"),
        ({"tolerance": 1}, r"claims\[0\]'", "applies to approx only"),
        ({"significant": "yes"}, r"claims\[0\].significant", "true or false"),
        (
            {"indicator": None, "relation": None, "territory": None, "value": None},
            r"claims\[0\]'",
            "measured_by",
        ),
        ({"teritory": "region:02"}, r"claims\[0\].teritory", "unknown field"),
        ({"text": None}, r"claims\[0\].text", "required"),
    ],
)
def test_a_wrong_claim_names_its_field(tmp_path, change, field, problem):
    claim = {k: v for k, v in (CLAIM | change).items() if v is not None}
    with pytest.raises(ValueError, match=rf"study.yaml: field '{field}.*{problem}"):
        parse_claims(tmp_path / "study.yaml", [claim])


def test_a_claim_error_stops_the_study_with_the_field(tmp_path):
    text = sw.STUDY_YAML.format(study_id="sample-bad-claim", sites="    []")
    text = text.replace("relation: range", "relation: between", 1)
    path = tmp_path / "sample-bad-claim.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StudyConfigError, match=r"field 'claims\[3\].relation'"):
        parse_study(path)


def test_an_unregistered_indicator_is_a_typo_not_a_verdict(warehouse_env):
    with db.writer() as conn, db.transaction(conn):
        sw.seed(conn)
    text = sw.STUDY_YAML.format(study_id="sample-typo", sites="    []").replace(
        "indicator: sample_gdp\n", "indicator: sample_gpd\n", 1
    )
    path = warehouse_env / "sample-typo.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"claims\[0\].indicator': 'sample_gpd' is neither in the indicator registry"
    ):
        build_lens(WarehouseResource(), parse_study(path))

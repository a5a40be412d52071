"""mindicador.cl (real saved root answer, SAMPLE series) and the Banco Central BDE alternative."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from sources import mindicador
from sources.base import ParseError
from sources.fetch import redact_url

SAMPLES = Path(mindicador.__file__).resolve().parent / "samples" / "finance"
ROOT = "finance/mindicador_api_root_2022-08-04.json"


def test_root_answer_parses_its_12_indicators(shared_data: Path) -> None:
    path = shared_data / ROOT
    raw = json.loads(path.read_text(encoding="utf-8"))
    frame = mindicador.parse_root(path).set_index("indicator")
    expected = {"uf", "ivp", "dolar", "dolar_intercambio", "euro", "ipc", "utm", "imacec", "tpm", "libra_cobre",
                "tasa_desempleo", "bitcoin"}  # fmt: skip
    assert set(frame.index) == expected and len(frame) == 12  # PROVENANCE.md §6c
    for code in expected:
        assert frame.at[code, "value"] == float(raw[code]["valor"])
        assert frame.at[code, "unit"] == raw[code]["unidad_medida"]
    assert frame.at["dolar", "name"] == "Dólar observado"
    assert frame.at["dolar", "date"].date() == date(2022, 8, 4)
    assert frame.at["dolar_intercambio", "date"].date() == date(2014, 11, 13)  # the stale one
    assert frame.at["utm", "value"] == 58772.0


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2022-01-28T03:00:00.000Z", date(2022, 1, 28)),  # midnight in summer time (UTC-3)
        ("2022-08-04T04:00:00.000Z", date(2022, 8, 4)),  # midnight in winter time (UTC-4)
        ("2022-08-05T02:30:00.000Z", date(2022, 8, 4)),  # 22:30 local on the 4th, though the 5th in UTC
    ],
)
def test_utc_stamps_map_to_the_chilean_date(stamp: str, expected: date) -> None:
    assert mindicador.local_date(stamp) == expected


def test_series_answer_parses_sorted_by_chilean_date() -> None:
    path = SAMPLES / "mindicador_uf_2023_SAMPLE.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    frame = mindicador.parse_series(path)
    assert set(frame["indicator"]) == {"uf"} and len(frame) == len(raw["serie"])
    assert frame["date"].is_monotonic_increasing
    by_stamp = {point["fecha"]: point["valor"] for point in raw["serie"]}
    assert all(by_stamp[row.fecha_utc] == row.value for row in frame.itertuples())
    assert frame["date"].dt.year.eq(2023).all()


def test_series_request_is_built_from_the_endpoint_given() -> None:
    request = mindicador.series_request("https://mirror.example/api/", "dolar", 2023)
    assert request.url == "https://mirror.example/api/dolar/2023" and request.method == "GET"
    with pytest.raises(ValueError, match="bitcoin"):
        mindicador.series_request(mindicador.ENDPOINTS["api"], "bitcoin", 2023)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
        (
            b'{"version": "1.7.0", "autor": "mindicador.cl", "fecha": "x"}',
            r"expected 'codigo' and a 'serie' list",
        ),
        (b'{"codigo": "dolar", "serie": [{"fecha": "ayer", "valor": 1}]}', "unreadable observation"),
    ],
)
def test_series_error_answers_fail_clearly(content: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        mindicador.parse_series(content)


def test_root_parser_refuses_a_series_answer() -> None:
    with pytest.raises(ParseError, match="not a mindicador root answer"):
        mindicador.parse_root((SAMPLES / "mindicador_dolar_2020_SAMPLE.json").read_bytes())


# --- Banco Central BDE -------------------------------------------------------------------------

BDE_ANSWER = {
    "Codigo": 0,
    "Descripcion": "Success",
    "Series": {
        "descripEsp": "Tipo de cambio nominal (dólar observado $/USD)",
        "descripIng": "Nominal exchange rate",
        "seriesId": "F073.TCO.PRE.Z.D",
        "Obs": [
            {"indexDateString": "02-01-2023", "value": "855.86", "statusCode": "OK"},
            {"indexDateString": "07-01-2023", "value": "NaN", "statusCode": "ND"},
            {"indexDateString": "09-01-2023", "value": "869.54", "statusCode": "OK"},
        ],
    },
    "SeriesInfos": [],
}  # written by us in BDE's documented shape; values invented (SAMPLE)


def test_bde_answer_drops_unpublished_days() -> None:
    frame = mindicador.parse_bde_series(json.dumps(BDE_ANSWER).encode())
    assert frame["date"].dt.date.tolist() == [date(2023, 1, 2), date(2023, 1, 9)]
    assert frame["value"].tolist() == [855.86, 869.54]


def test_bde_error_code_is_an_error() -> None:
    answer = {"Codigo": -5, "Descripcion": "Invalid username or password", "Series": {"Obs": None}}
    with pytest.raises(ParseError, match="Codigo -5: Invalid username or password"):
        mindicador.parse_bde_series(json.dumps(answer).encode())


def test_bde_credentials_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mindicador.BDE_USER_ENV, "analyst@example.cl")
    monkeypatch.setenv(mindicador.BDE_PASS_ENV, "s3cret&pass=word")
    request = mindicador.bde_series_request(
        mindicador.BDE_ENDPOINTS["series"], "uf", date(2019, 1, 1), date(2024, 12, 31)
    )
    assert request.params["timeseries"] == "F073.UFF.PRE.Z.D" and request.params["function"] == "GetSeries"
    shown = mindicador.bde_display_url(request)
    assert "user=REDACTED" in shown and "pass=REDACTED" in shown
    for secret in ("analyst", "s3cret", "word"):
        assert secret not in shown and secret not in request.url and secret not in request.name
    assert "timeseries=F073.UFF.PRE.Z.D" in shown and "firstdate=2019-01-01" in shown


def test_bde_without_credentials_names_the_variables_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mindicador.BDE_USER_ENV, raising=False)
    monkeypatch.setenv(mindicador.BDE_PASS_ENV, "s3cret")
    with pytest.raises(mindicador.MissingCredentials) as caught:
        mindicador.bde_series_request(
            mindicador.BDE_ENDPOINTS["series"], "dolar", date(2023, 1, 1), date(2023, 12, 31)
        )
    assert mindicador.BDE_USER_ENV in str(caught.value) and "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://si3.bcentral.cl/SieteRestWS/SieteRestWS.ashx?user=me%40x.cl&pass=p%26w&function=GetSeries",
            "https://si3.bcentral.cl/SieteRestWS/SieteRestWS.ashx?user=REDACTED&pass=REDACTED&function=GetSeries",
        ),
        ("https://mindicador.cl/api/uf/2023", "https://mindicador.cl/api/uf/2023"),
        ("https://x.example/a?pass=&user=", "https://x.example/a?pass=REDACTED&user=REDACTED"),
    ],
)
def test_redaction_of_credential_query_params(url: str, expected: str) -> None:
    assert redact_url(url) == expected

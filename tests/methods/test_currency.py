"""Pure conversions: real CLP via the UF and USD via the mean dólar observado, on SAMPLE mindicador series."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from methods import currency
from sources import mindicador

SAMPLES = Path(mindicador.__file__).resolve().parent / "samples" / "finance"


def _series(indicator: str) -> pd.DataFrame:
    return pd.concat(
        [
            mindicador.parse_series(SAMPLES / f"mindicador_{indicator}_{y}_SAMPLE.json")
            for y in range(2019, 2025)
        ],
        ignore_index=True,
    )


def _raw_values(indicator: str, year: int) -> list[float]:
    raw = json.loads((SAMPLES / f"mindicador_{indicator}_{year}_SAMPLE.json").read_text(encoding="utf-8"))
    return [point["valor"] for point in raw["serie"]]


def test_a_year_is_the_mean_of_its_values_or_its_31_december() -> None:
    uf = _series("uf")
    mean = currency.year_rate(uf, 2019)
    raw = _raw_values("uf", 2019)
    assert mean.value == pytest.approx(sum(raw) / len(raw)) and mean.observations == len(raw)
    assert mean.rate_date == "2019-01-01/2019-12-31"
    dec31 = currency.year_rate(uf, 2019, "dec31")
    assert dec31.rate_date == "2019-12-31" and dec31.value == max(raw)  # the UF rose through 2019


def test_real_clp_carries_its_conversion() -> None:
    uf = _series("uf")
    frame = pd.DataFrame({"comuna_code": ["02201", "02201", "02202"], "year": [2019, 2023, 2020],
                          "value": [1_532_715.0, 1_917_621.0, None]})  # fmt: skip
    out = currency.to_real_clp(frame, uf, base_year=2023)
    uf2019, uf2023 = (sum(_raw_values("uf", y)) / len(_raw_values("uf", y)) for y in (2019, 2023))
    assert out.at[0, "real_clp"] == pytest.approx(1_532_715.0 / uf2019 * uf2023)
    assert out.at[1, "real_clp"] == pytest.approx(1_917_621.0)  # the base year converts to itself
    assert pd.isna(out.at[2, "real_clp"])  # missing stays missing
    assert out.at[0, "rate"] == pytest.approx(uf2019) and out.at[0, "rate_date"] == "2019-01-01/2019-12-31"
    assert (
        out.at[0, "base_rate"] == pytest.approx(uf2023)
        and out.at[0, "base_rate_date"] == "2023-01-01/2023-12-31"
    )
    assert "real CLP of 2023" in out.at[0, "conversion"]


def test_an_amount_with_a_date_uses_the_uf_of_that_day() -> None:
    uf = _series("uf")
    frame = pd.DataFrame({"paid_on": [date(2024, 7, 1)], "year": [2024], "amount": [2_163_944_957.0]})
    out = currency.to_real_clp(
        frame, uf, base_year=2024, amount_col="amount", date_col="paid_on", method="dec31"
    )
    day = dict(zip(mindicador.parse_series(SAMPLES / "mindicador_uf_2024_SAMPLE.json")["date"].dt.date,
                   _raw_values("uf", 2024)[::-1], strict=True))  # fmt: skip
    assert out.at[0, "rate"] == day[date(2024, 7, 1)] and out.at[0, "rate_date"] == "2024-07-01"
    assert out.at[0, "real_clp"] == pytest.approx(
        2_163_944_957.0 / day[date(2024, 7, 1)] * day[date(2024, 12, 31)]
    )


def test_usd_at_the_year_mean_observed_rate() -> None:
    dollar = _series("dolar")
    frame = pd.DataFrame({"year": [2024], "value": [6_296_924_140.0]})
    out = currency.to_usd(frame, dollar)
    raw = _raw_values("dolar", 2024)
    assert out.at[0, "usd"] == pytest.approx(6_296_924_140.0 / (sum(raw) / len(raw)))
    assert out.at[0, "rate_date"] == "2024-01-01/2024-12-31" and "dólar observado" in out.at[0, "conversion"]


def test_a_missing_rate_is_an_error_not_a_guess() -> None:
    uf = _series("uf")
    with pytest.raises(currency.ConversionError, match="no UF values in 2018"):
        currency.to_real_clp(pd.DataFrame({"year": [2018], "value": [1.0]}), uf, base_year=2023)
    with pytest.raises(currency.ConversionError, match="no UF value for 2024-07-02"):
        currency.day_rate(uf, date(2024, 7, 2))

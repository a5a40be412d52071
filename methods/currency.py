"""Pure conversions of nominal CLP: to real CLP of a base year (via the UF) and to USD.

No fetching and no I/O: the UF and dollar series come in as frames (date, value), as parsed by
`sources.mindicador`. Every converted value carries how it was converted, in the columns
`conversion`, `rate` and `rate_date` (and `base_rate`, `base_rate_date` for real CLP), so a
number in the lens can always be traced to the rates that made it.

Which UF stands for a year: annual SINIM figures are flows accumulated over the whole year,
so by default a year is represented by the **mean of that year's daily UF values**
(method "annual_mean", rate_date "YYYY-01-01/YYYY-12-31"). Method "dec31" uses the UF of
31 December instead (rate_date "YYYY-12-31"), matching figures stated "al 31 de diciembre".
An amount with an exact date uses the UF of that day. Dollars use the year's mean dólar
observado (the mean of the published days; the dollar is not published on weekends/holidays).

The conversions are linear, so the unit's scale carries through: M$ (thousands of CLP) in,
thousands of real CLP or thousands of USD out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import pandas as pd

Method = Literal["annual_mean", "dec31"]


class ConversionError(ValueError):
    """A conversion that lacks the rate it needs; never filled with a neighbour's rate silently."""


@dataclass(frozen=True)
class ReferenceRate:
    value: float
    rate_date: str  # "YYYY-12-31", "YYYY-01-01/YYYY-12-31" or an exact "YYYY-MM-DD"
    observations: int


def _series(series: pd.DataFrame, name: str) -> pd.Series:
    """A (date -> value) Series from a frame with `date` and `value` columns."""
    missing = {"date", "value"} - set(series.columns)
    if missing:
        raise ConversionError(f"{name} series lacks column(s) {sorted(missing)}")
    values = pd.Series(series["value"].astype("float64").to_numpy(), index=pd.to_datetime(series["date"]))
    return values.sort_index()


def year_rate(
    series: pd.DataFrame, year: int, method: Method = "annual_mean", name: str = "UF"
) -> ReferenceRate:
    """The rate that represents `year`: the mean of its daily values, or its 31 December value."""
    values = _series(series, name)
    in_year = values[values.index.year == year]
    if method == "annual_mean":
        if in_year.empty:
            raise ConversionError(f"no {name} values in {year}")
        return ReferenceRate(float(in_year.mean()), f"{year}-01-01/{year}-12-31", len(in_year))
    if method == "dec31":
        return day_rate(series, date(year, 12, 31), name)
    raise ConversionError(f"unknown method {method!r}")


def day_rate(series: pd.DataFrame, day: date, name: str = "UF") -> ReferenceRate:
    """The value published for exactly `day` (the UF is published for every calendar day)."""
    values = _series(series, name)
    stamp = pd.Timestamp(day)
    if stamp not in values.index:
        raise ConversionError(f"no {name} value for {day.isoformat()}")
    return ReferenceRate(float(values.loc[stamp]), day.isoformat(), 1)


def to_real_clp(
    frame: pd.DataFrame,
    uf: pd.DataFrame,
    base_year: int,
    amount_col: str = "value",
    year_col: str = "year",
    date_col: str | None = None,
    method: Method = "annual_mean",
) -> pd.DataFrame:
    """Add `real_clp` = amount / UF(period) × UF(base year), with its conversion columns.

    The period is the row's `date_col` when given (UF of that day), else its `year_col`
    (the year's UF by `method`). The base is always the base year's UF by `method`.
    Adds: real_clp, conversion, rate (UF of the period), rate_date, base_rate, base_rate_date.
    """
    base = year_rate(uf, base_year, method)
    out = frame.copy()
    rates = []
    for row in out.itertuples(index=False):
        if date_col is not None:
            rates.append(day_rate(uf, pd.Timestamp(getattr(row, date_col)).date()))
        else:
            rates.append(year_rate(uf, int(getattr(row, year_col)), method))
    amounts = out[amount_col].astype("float64")
    out["real_clp"] = [
        None if pd.isna(a) else a / r.value * base.value for a, r in zip(amounts, rates, strict=True)
    ]
    out["real_clp"] = out["real_clp"].astype("float64")
    basis = "UF of the day" if date_col is not None else f"UF {method.replace('_', ' ')}"
    out["conversion"] = (
        f"nominal CLP -> real CLP of {base_year} ({basis} -> UF {method.replace('_', ' ')} {base_year})"
    )
    out["rate"] = [r.value for r in rates]
    out["rate_date"] = [r.rate_date for r in rates]
    out["base_rate"] = base.value
    out["base_rate_date"] = base.rate_date
    return out


def to_usd(
    frame: pd.DataFrame, dollar: pd.DataFrame, amount_col: str = "value", year_col: str = "year"
) -> pd.DataFrame:
    """Add `usd` = amount / the year's mean dólar observado (CLP per USD), with its conversion columns."""
    out = frame.copy()
    rates = [year_rate(dollar, int(y), "annual_mean", name="dólar observado") for y in out[year_col]]
    amounts = out[amount_col].astype("float64")
    out["usd"] = pd.Series(
        [a / r.value for a, r in zip(amounts, rates, strict=True)], index=out.index, dtype="float64"
    )
    out["conversion"] = "nominal CLP -> USD at the year's mean dólar observado"
    out["rate"] = [r.value for r in rates]
    out["rate_date"] = [r.rate_date for r in rates]
    return out

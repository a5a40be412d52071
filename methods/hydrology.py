"""Plain statistics of daily streamflow: completeness, annual/monthly means, period change,
Sen's slope with the Mann-Kendall test, and data coverage.

Pure numpy/scipy over arrays, so every figure in the lens can be recomputed by hand. Input
is one gauge's daily series as `dates` (anything numpy turns into `datetime64[D]`) and
`flows` (float; NaN for missing). Days absent from the arrays count as missing, so the long
rows of the loaders (which drop missing days) can be passed as they are.

A year (or month) counts only when at least `min_coverage` (default 80 %) of its calendar
days have data: a mean over a few wet-season days says nothing about the year.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy import stats

DEFAULT_MIN_COVERAGE = 0.8
# Loa defaults: 2104002 (Salida Embalse Conchi) starts in Feb 1976 and the CR2/CAMELS-CL
# records run to 2017-2021; twenty years at each end of the record.
DEFAULT_REFERENCE = (1976, 1995)
DEFAULT_RECENT = (2001, 2020)

SECONDS_PER_DAY = 86_400


def mm_per_day_to_m3s(flow_mm_d, area_km2: float):
    """Runoff depth (mm/d) over a catchment to discharge (m³/s): q · area · 1000 / 86400.

    1 mm over 1 km² is 1,000 m³; spread over the 86,400 s of a day.
    """
    if not area_km2 or area_km2 <= 0 or math.isnan(area_km2):
        raise ValueError(f"catchment area must be a positive number of km², got {area_km2!r}")
    return np.asarray(flow_mm_d, dtype=float) * area_km2 * 1000.0 / SECONDS_PER_DAY


@dataclass(frozen=True)
class DailySeries:
    """One gauge's observed days: sorted unique dates with finite flows only."""

    days: np.ndarray  # datetime64[D]
    flows: np.ndarray  # float64

    @classmethod
    def of(cls, dates, flows) -> DailySeries:
        days = np.asarray(dates).astype("datetime64[D]")
        values = np.asarray(flows, dtype=float)
        if days.shape != values.shape or days.ndim != 1:
            raise ValueError(
                f"dates and flows must be 1-D and of equal length, got {days.shape} and {values.shape}"
            )
        unique, counts = np.unique(days, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"dates appear more than once: {[str(d) for d in unique[counts > 1][:5]]}")
        observed = np.isfinite(values)
        order = np.argsort(days[observed])
        return cls(days[observed][order], values[observed][order])


def _years(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[Y]").astype(int) + 1970


def days_in_year(year: int) -> int:
    return int((np.datetime64(f"{year + 1}-01-01") - np.datetime64(f"{year}-01-01")).astype(int))


def days_in_month(year: int, month: int) -> int:
    start = np.datetime64(f"{year}-{month:02d}", "M")
    return int(((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(int))


@dataclass(frozen=True)
class PeriodMean:
    """Mean flow of one year (month is None) or one month, with how complete it was."""

    year: int
    month: int | None
    mean: float | None  # over the days with data; None when there are none
    days_with_data: int
    days_in_period: int
    coverage: float
    complete: bool  # coverage >= the rule's minimum


def annual_means(dates, flows, min_coverage: float = DEFAULT_MIN_COVERAGE) -> list[PeriodMean]:
    """One row per calendar year from the first to the last year with data."""
    series = DailySeries.of(dates, flows)
    if series.days.size == 0:
        return []
    years = _years(series.days)
    first = int(years[0])
    index = years - first
    counts = np.bincount(index)
    sums = np.bincount(index, weights=series.flows)
    out = []
    for offset, (count, total) in enumerate(zip(counts, sums, strict=True)):
        year = first + offset
        size = days_in_year(year)
        out.append(_period_mean(year, None, int(count), float(total), size, min_coverage))
    return out


def monthly_means(dates, flows, min_coverage: float = DEFAULT_MIN_COVERAGE) -> list[PeriodMean]:
    """One row per calendar month from the first to the last month with data."""
    series = DailySeries.of(dates, flows)
    if series.days.size == 0:
        return []
    months = series.days.astype("datetime64[M]").astype(int)
    first = int(months[0])
    index = months - first
    counts = np.bincount(index)
    sums = np.bincount(index, weights=series.flows)
    out = []
    for offset, (count, total) in enumerate(zip(counts, sums, strict=True)):
        year, month0 = divmod(first + offset, 12)
        year, month = year + 1970, month0 + 1
        out.append(
            _period_mean(year, month, int(count), float(total), days_in_month(year, month), min_coverage)
        )
    return out


def _period_mean(year, month, count, total, size, min_coverage) -> PeriodMean:
    coverage = count / size
    return PeriodMean(
        year=year,
        month=month,
        mean=total / count if count else None,
        days_with_data=count,
        days_in_period=size,
        coverage=coverage,
        complete=count > 0 and coverage >= min_coverage,
    )


@dataclass(frozen=True)
class Coverage:
    """Share of the calendar days of [start, end] that have data."""

    start: date
    end: date
    days_in_period: int
    days_with_data: int
    share: float


def coverage(dates, flows, start: date | str, end: date | str) -> Coverage:
    """Data coverage of a period, both ends included."""
    first, last = np.datetime64(start, "D"), np.datetime64(end, "D")
    if last < first:
        raise ValueError(f"period ends ({end}) before it starts ({start})")
    series = DailySeries.of(dates, flows)
    size = int((last - first).astype(int)) + 1
    inside = int(((series.days >= first) & (series.days <= last)).sum())
    return Coverage(first.item(), last.item(), size, inside, inside / size)


@dataclass(frozen=True)
class FlowChange:
    """Change of mean annual flow between a reference and a recent period (complete years only)."""

    reference_start: int
    reference_end: int
    recent_start: int
    recent_end: int
    reference_mean: float | None
    recent_mean: float | None
    reference_complete_years: int
    recent_complete_years: int
    absolute_change: float | None  # recent - reference, in the unit of the flows
    relative_change: float | None  # (recent - reference) / reference; None when reference is 0
    min_coverage: float


def mean_annual_flow_change(
    dates,
    flows,
    reference: tuple[int, int] = DEFAULT_REFERENCE,
    recent: tuple[int, int] = DEFAULT_RECENT,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> FlowChange:
    """Mean of the complete years' annual means in each period, and the change between them."""
    for name, (start, end) in (("reference", reference), ("recent", recent)):
        if end < start:
            raise ValueError(f"{name} period ends ({end}) before it starts ({start})")
    years = annual_means(dates, flows, min_coverage)

    def period_mean(start: int, end: int) -> tuple[float | None, int]:
        means = [y.mean for y in years if y.complete and start <= y.year <= end]
        return (float(np.mean(means)) if means else None), len(means)

    ref_mean, ref_years = period_mean(*reference)
    rec_mean, rec_years = period_mean(*recent)
    absolute = rec_mean - ref_mean if ref_mean is not None and rec_mean is not None else None
    relative = absolute / ref_mean if absolute is not None and ref_mean else None
    return FlowChange(
        reference_start=reference[0],
        reference_end=reference[1],
        recent_start=recent[0],
        recent_end=recent[1],
        reference_mean=ref_mean,
        recent_mean=rec_mean,
        reference_complete_years=ref_years,
        recent_complete_years=rec_years,
        absolute_change=absolute,
        relative_change=relative,
        min_coverage=min_coverage,
    )


@dataclass(frozen=True)
class Trend:
    """Sen's slope and the Mann-Kendall test of one series."""

    n: int
    slope: float | None  # Sen's slope, units of value per unit of time
    intercept: float | None  # median of value - slope * time (Conover)
    s: int  # Mann-Kendall S
    var_s: float  # variance of S, corrected for ties in the values
    z: float
    p_value: float  # two-sided, normal approximation
    continuity_correction: bool


def sens_slope(times, values) -> float | None:
    """Median of the pairwise slopes (v_j - v_i) / (t_j - t_i) over pairs with t_j > t_i."""
    t, v = _clean_pairs(times, values)
    i, j = np.triu_indices(t.size, k=1)
    dt = t[j] - t[i]
    keep = dt != 0
    if not keep.any():
        return None
    return float(np.median((v[j] - v[i])[keep] / dt[keep]))


def mann_kendall(times, values, continuity_correction: bool = True) -> Trend:
    """Mann-Kendall S, its tie-corrected variance, Z and two-sided p, plus Sen's slope.

    S = Σ_{i<j} sign(v_j - v_i) with pairs ordered by time. Var(S) = [n(n-1)(2n+5) -
    Σ t(t-1)(2t+5)] / 18 over groups of tied values. Z = (S - sign(S)) / √Var(S) with the
    continuity correction, S / √Var(S) without. p = 2 · (1 - Φ(|Z|)).
    """
    t, v = _clean_pairs(times, values)
    n = t.size
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    i, j = np.triu_indices(n, k=1)
    s = int(np.sign(v[j] - v[i]).sum())
    _, tie_sizes = np.unique(v, return_counts=True)
    ties = float((tie_sizes * (tie_sizes - 1) * (2 * tie_sizes + 5)).sum())
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var_s > 0:
        numerator = s - np.sign(s) if continuity_correction else s
        z = float(numerator / math.sqrt(var_s))
        p = float(2 * stats.norm.sf(abs(z)))
    else:
        z, p = 0.0, 1.0
    slope = sens_slope(t, v)
    intercept = float(np.median(v - slope * t)) if slope is not None else None
    return Trend(n, slope, intercept, s, var_s, z, p, continuity_correction)


def annual_trend(
    years: list[PeriodMean],
    start: int | None = None,
    end: int | None = None,
    continuity_correction: bool = True,
) -> Trend:
    """Mann-Kendall / Sen's slope of the complete years' annual means (value per year)."""
    chosen = [
        y
        for y in years
        if y.month is None
        and y.complete
        and (start is None or y.year >= start)
        and (end is None or y.year <= end)
    ]
    return mann_kendall([y.year for y in chosen], [y.mean for y in chosen], continuity_correction)


def _clean_pairs(times, values) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"times and values must be 1-D and of equal length, got {t.shape} and {v.shape}")
    keep = np.isfinite(t) & np.isfinite(v)
    return t[keep], v[keep]

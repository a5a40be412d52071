"""Streamflow statistics, each figure recomputed independently in the test; Caravan unit
conversion and coverage checked against the real Caravan files read with the csv module."""

from __future__ import annotations

import csv
import itertools
import statistics
from datetime import date, timedelta

import numpy as np
import pytest
from scipy import stats

from methods import hydrology as h
from sources import caravan

CARAVAN = "streamflow/caravan_camelscl_subsets"
CARAVAN_ATTRIBUTES = "streamflow/caravan_attributes_other_camelscl.csv"


def _trend_series(n: int = 40, seed: int = 11) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(seed)
    years = list(range(1976, 1976 + n))
    values = [2.0 - 0.03 * (y - 1976) + float(rng.normal(0, 0.2)) for y in years]
    return years, values


# --- Sen's slope and Mann-Kendall -------------------------------------------------------------


def test_sens_slope_is_the_median_of_pairwise_slopes():
    years, values = _trend_series()
    pairs = itertools.combinations(range(len(years)), 2)
    expected = statistics.median((values[j] - values[i]) / (years[j] - years[i]) for i, j in pairs)
    assert h.sens_slope(years, values) == pytest.approx(expected, abs=1e-12)
    assert h.mann_kendall(years, values).slope == pytest.approx(expected, abs=1e-12)


def test_mann_kendall_matches_an_independent_count_and_scipy():
    years, values = _trend_series()
    n = len(years)
    s = sum((values[j] > values[i]) - (values[j] < values[i]) for i, j in itertools.combinations(range(n), 2))
    result = h.mann_kendall(years, values, continuity_correction=False)
    assert result.n == n and result.s == s
    assert result.var_s == pytest.approx(n * (n - 1) * (2 * n + 5) / 18)
    # Without ties in the years, Kendall's tau-b test on (year, value) uses the same S and Var(S).
    tau = stats.kendalltau(years, values, method="asymptotic")
    assert result.p_value == pytest.approx(tau.pvalue, rel=1e-9)
    assert result.z < 0 and result.p_value < 0.001
    corrected = h.mann_kendall(years, values)
    assert corrected.z == pytest.approx((s + 1) / np.sqrt(result.var_s))  # S < 0: S + 1
    assert corrected.p_value == pytest.approx(tau.pvalue, rel=0.2)


def test_mann_kendall_tie_correction_matches_scipy():
    years = list(range(2000, 2020))
    values = [1, 2, 2, 3, 1, 4, 4, 4, 5, 3, 6, 6, 2, 7, 8, 8, 5, 9, 9, 9]
    result = h.mann_kendall(years, values, continuity_correction=False)
    groups = [len(list(g)) for _, g in itertools.groupby(sorted(values))]
    n = len(values)
    expected_var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in groups)) / 18
    assert result.var_s == pytest.approx(expected_var)
    assert result.p_value == pytest.approx(
        stats.kendalltau(years, values, method="asymptotic").pvalue, rel=1e-9
    )


def test_flat_or_tiny_series_have_no_trend():
    assert h.mann_kendall([2000], [1.0]).p_value == 1.0
    assert h.mann_kendall([2000, 2001, 2002], [1.0, 1.0, 1.0]).s == 0
    assert h.sens_slope([2000], [1.0]) is None


# --- completeness, annual and monthly means, period change ----------------------------------------


def _daily(start: date, end: date, value) -> tuple[list[date], list[float]]:
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return days, [value(d) for d in days]


def test_a_year_counts_only_with_80_percent_of_its_days():
    days, flows = _daily(date(2001, 1, 1), date(2003, 12, 31), lambda d: d.year - 2000 + d.month / 100)
    keep = [
        d.year == 2001
        or (d.year == 2002 and d.timetuple().tm_yday <= 273)
        or (d.year == 2003 and d.timetuple().tm_yday <= 292)
        for d in days
    ]
    days = [d for d, k in zip(days, keep, strict=True) if k]
    flows = [f for f, k in zip(flows, keep, strict=True) if k]
    years = {y.year: y for y in h.annual_means(days, flows)}
    assert (years[2002].days_with_data, years[2002].complete) == (273, False)  # 74.8 %
    assert (years[2003].days_with_data, years[2003].complete) == (292, True)  # exactly 80 %
    expected_2001 = statistics.fmean(f for d, f in zip(days, flows, strict=True) if d.year == 2001)
    assert years[2001].mean == pytest.approx(expected_2001) and years[2001].complete
    assert years[2002].mean is not None  # reported, but flagged
    stricter = {y.year: y for y in h.annual_means(days, flows, min_coverage=0.9)}
    assert not stricter[2003].complete


def test_monthly_completeness_uses_the_calendar_length():
    days, flows = _daily(date(2004, 2, 1), date(2004, 3, 31), lambda d: 1.0)
    keep = [not (d.month == 2 and d.day > 23) and not (d.month == 3 and d.day > 25) for d in days]
    chosen = [(d, f) for d, f, k in zip(days, flows, keep, strict=True) if k]
    months = {(m.year, m.month): m for m in h.monthly_means([d for d, _ in chosen], [f for _, f in chosen])}
    assert (months[2004, 2].days_in_period, months[2004, 2].complete) == (29, False)  # 23/29 = 79.3 %
    assert (months[2004, 3].days_in_period, months[2004, 3].complete) == (31, True)  # 25/31 = 80.6 %


def test_missing_days_may_be_nan_or_absent():
    days, flows = _daily(date(2010, 1, 1), date(2010, 12, 31), lambda d: 2.0)
    flows[:100] = [float("nan")] * 100
    with_nan = h.annual_means(days, flows)[0]
    without = h.annual_means(days[100:], flows[100:])[0]
    assert with_nan == without and with_nan.days_with_data == 265


def test_duplicated_dates_are_refused():
    with pytest.raises(ValueError, match="more than once"):
        h.annual_means([date(2000, 1, 1), date(2000, 1, 1)], [1.0, 2.0])


def test_change_between_reference_and_recent_periods():
    def flow(d: date) -> float:
        return 3.0 - 0.05 * (d.year - 1976)

    days, flows = _daily(date(1976, 2, 12), date(2021, 6, 22), flow)
    days = [d for d in days if d.year != 1985]  # a year with no data at all
    flows = [flow(d) for d in days]
    change = h.mean_annual_flow_change(days, flows)
    assert (change.reference_start, change.reference_end, change.recent_start, change.recent_end) == (
        1976,
        1995,
        2001,
        2020,
    )
    reference_years = [y for y in range(1976, 1996) if y != 1985]  # 1976 has 324/366 days: complete
    recent_years = list(range(2001, 2021))
    assert change.reference_complete_years == len(reference_years) == 19
    assert change.recent_complete_years == 20
    ref = statistics.fmean(3.0 - 0.05 * (y - 1976) for y in reference_years)
    rec = statistics.fmean(3.0 - 0.05 * (y - 1976) for y in recent_years)
    assert change.reference_mean == pytest.approx(ref)
    assert change.recent_mean == pytest.approx(rec)
    assert change.relative_change == pytest.approx((rec - ref) / ref)
    other = h.mean_annual_flow_change(days, flows, reference=(1980, 1989), recent=(2010, 2019))
    assert (other.reference_start, other.recent_end, other.reference_complete_years) == (1980, 2019, 9)


def test_annual_trend_uses_complete_years_only():
    days, flows = _daily(date(1990, 1, 1), date(1999, 12, 31), lambda d: float(d.year - 1990))
    flows = [
        f if not (d.year == 1995 and d.month < 6) else float("nan") for d, f in zip(days, flows, strict=True)
    ]
    trend = h.annual_trend(h.annual_means(days, flows))
    assert trend.n == 9 and trend.slope == pytest.approx(1.0)


def test_coverage_of_a_period():
    days, flows = _daily(date(2000, 1, 1), date(2000, 12, 31), lambda d: 1.0)
    result = h.coverage(days[::2], flows[::2], "2000-01-01", date(2000, 1, 10))
    assert (result.days_in_period, result.days_with_data, result.share) == (10, 5, 0.5)


# --- Caravan: mm/d to m3/s and coverage, on the real files --------------------------------------


def _caravan_areas(path) -> dict[str, float]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["gauge_id"]: float(row["area"]) for row in csv.DictReader(handle)}


def _caravan_streamflow(path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["date"], row["streamflow"]) for row in csv.DictReader(handle)]


def test_mm_per_day_to_m3s_by_hand():
    assert h.mm_per_day_to_m3s(1.0, 86.4) == pytest.approx(1.0)  # 1 mm over 86.4 km2 in 86,400 s
    with pytest.raises(ValueError):
        h.mm_per_day_to_m3s([1.0], 0.0)


def test_caravan_streamflow_converted_with_the_attribute_area(shared_data):
    areas = _caravan_areas(shared_data / CARAVAN_ATTRIBUTES)
    attributes = caravan.parse_attributes_other(shared_data / CARAVAN_ATTRIBUTES).set_index("gauge_code")
    assert len(attributes) == 314 and attributes.loc["02105001", "area_km2"] == areas["camelscl_2105001"]
    for gauge in ("2105001", "5701002", "3421001"):
        path = shared_data / CARAVAN / f"camelscl_{gauge}.csv"
        area = areas[f"camelscl_{gauge}"]
        frame = caravan.parse_streamflow(path, gauge, attributes.loc[gauge.zfill(8), "area_km2"])
        raw = _caravan_streamflow(path)
        expected = [float("nan") if v == "NA" else float(v) * area * 1000 / 86400 for _, v in raw]
        assert len(frame) == len(raw) == 100
        np.testing.assert_allclose(frame["flow_m3s"], expected, rtol=1e-12, equal_nan=True)
        assert frame["date"].dt.strftime("%Y-%m-%d").tolist() == [d for d, _ in raw]


def test_caravan_coverage_counts_match_the_files(shared_data):
    areas = _caravan_areas(shared_data / CARAVAN_ATTRIBUTES)
    files = sorted((shared_data / CARAVAN).glob("camelscl_*.csv"))
    assert len(files) == 13
    for path in files:
        gauge = path.stem.removeprefix("camelscl_")
        frame = caravan.parse_streamflow(path, gauge, areas[path.stem])
        raw = _caravan_streamflow(path)
        with_data = sum(1 for _, v in raw if v != "NA")
        result = h.coverage(frame["date"], frame["flow_m3s"], raw[0][0], raw[-1][0])
        assert (result.days_in_period, result.days_with_data) == (len(raw), with_data), path.name
    empty = caravan.parse_streamflow(files[0], "2103001", areas["camelscl_2103001"])
    assert files[0].name == "camelscl_2103001.csv"
    assert h.coverage(empty["date"], empty["flow_m3s"], "1981-01-01", "1981-04-10").days_with_data == 0


def test_caravan_negative_depth_is_a_parse_error(tmp_path):
    from sources.base import ParseError

    path = tmp_path / "camelscl_2105001.csv"
    path.write_text('date,streamflow\n"1981-01-01",0.03\n"1981-01-02",-0.5\n', encoding="utf-8")
    with pytest.raises(ParseError, match="negative streamflow"):
        caravan.parse_streamflow(path, "2105001", 528.6)

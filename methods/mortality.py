"""Death rates for small areas: crude, directly age-standardised, gamma CIs, rate ratios.

Pure numpy/scipy/pandas on already-aggregated counts (deaths by year x comuna x sex x
5-year age group x cause group, population by the same keys), so it is cheap to test
against hand computations. Conventions, all per 100,000 unless `per` says otherwise:

- Age groups are 0-4, 5-9, ..., 75-79, 80+ (`AGE_GROUPS`): 80+ is the top because the INE
  comuna projections stop at "80 and over".
- Direct standardisation: ASR = sum_i w_i d_i / n_i with w_i the standard population's
  share in group i; Var = sum_i w_i^2 d_i / n_i^2 (deaths treated as Poisson).
- 95% CI by the gamma method of Fay & Feuer (1997, Stat Med 16:791-801): lower =
  Gamma(ASR^2/V, scale V/ASR) quantile alpha/2 (0 when there are no deaths), upper =
  Gamma((ASR+w_M)^2/(V+w_M^2), scale (V+w_M^2)/(ASR+w_M)) quantile 1-alpha/2, with
  w_M = max_i w_i/n_i. It stays valid for the handful of deaths of a small comuna.
- Pooled windows (e.g. 2016-2020) add deaths and person-years (yearly populations) over
  the years, which is what makes rates for comunas such as Ollagüe computable at all.
- Rate ratio against a reference territory (the country): RR = ASR_t / ASR_ref with a
  log-normal CI, Var(log RR) = V_t/ASR_t^2 + V_ref/ASR_ref^2 (delta method). It treats the
  two rates as independent; a comuna's deaths are also in the country's, which makes the
  interval slightly conservative, negligibly so when the comuna is small.
- Rates from fewer than `min_deaths` deaths (default 20, the usual NCHS reliability
  threshold) are flagged `few_deaths`, and blanked when `suppress=True`.
- Deaths with unknown age cannot be standardised: they are counted in `deaths` and
  `deaths_unknown_age` and in the crude rate, but not in the ASR.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

PER = 100_000
AGE_GROUP_WIDTH = 5
AGE_GROUP_TOP = 80
AGE_GROUPS: tuple[str, ...] = tuple(
    f"{low}-{low + AGE_GROUP_WIDTH - 1}" for low in range(0, AGE_GROUP_TOP, AGE_GROUP_WIDTH)
) + (f"{AGE_GROUP_TOP}+",)
UNKNOWN_AGE = "unknown"
SEX_TOTAL = "T"

FLAG_OK = "ok"
FLAG_FEW_DEATHS = "few_deaths"
FLAG_NO_POPULATION = "no_population"
FLAG_DEATHS_WITHOUT_POPULATION = "deaths_without_population"

TABLE_COLUMNS = [
    "territory",
    "period",
    "cause_group",
    "sex",
    "deaths",
    "deaths_unknown_age",
    "population",
    "crude_rate",
    "asr",
    "asr_lower",
    "asr_upper",
    "rate_ratio",
    "rr_lower",
    "rr_upper",
    "standard",
    "cause_groups_version",
    "flag",
]


# --- age groups ---------------------------------------------------------------------------


def age_group_of(age: float | None) -> str:
    """Completed years -> '0-4' ... '80+'; None/NaN/negative -> 'unknown'."""
    if age is None or age != age or age < 0:
        return UNKNOWN_AGE
    age = int(age)
    if age >= AGE_GROUP_TOP:
        return AGE_GROUPS[-1]
    return AGE_GROUPS[age // AGE_GROUP_WIDTH]


def age_band_to_group(band: str) -> str:
    """A published age band -> its age group: '< 1' and '1 a 4' -> '0-4', '90 a 99', '100 +'
    and '100 o mas' -> '80+'. ValueError for a band that straddles two groups or has no number.
    """
    text = str(band).strip()
    if text.startswith("<"):
        return AGE_GROUPS[0]
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if not numbers:
        raise ValueError(f"age band {band!r} has no age in it")
    group = age_group_of(numbers[0])
    if len(numbers) > 1 and numbers[0] < AGE_GROUP_TOP and age_group_of(numbers[1]) != group:
        raise ValueError(f"age band {band!r} straddles the age groups {group} and {age_group_of(numbers[1])}")
    return group


def sql_age_group(age_sql: str) -> str:
    """The SQL twin of `age_group_of` for an INTEGER expression (NULL -> 'unknown')."""
    low = f"(({age_sql}) // {AGE_GROUP_WIDTH} * {AGE_GROUP_WIDTH})"
    return (
        f"(CASE WHEN ({age_sql}) IS NULL OR ({age_sql}) < 0 THEN '{UNKNOWN_AGE}' "
        f"WHEN ({age_sql}) >= {AGE_GROUP_TOP} THEN '{AGE_GROUPS[-1]}' "
        f"ELSE CAST({low} AS VARCHAR) || '-' || CAST({low} + {AGE_GROUP_WIDTH - 1} AS VARCHAR) END)"
    )


def to_age_groups(frame: pd.DataFrame, value_col: str = "population", age_col: str = "age") -> pd.DataFrame:
    """Sum single years of age (`age`, top value meaning 'and over') into `AGE_GROUPS`."""
    if age_col not in frame.columns:
        raise ValueError(f"no {age_col!r} column to group into age groups")
    keys = [c for c in frame.columns if c not in (age_col, value_col)]
    groups = {age: age_group_of(age) for age in frame[age_col].unique()}
    grouped = frame.drop(columns=[age_col]).assign(age_group=frame[age_col].map(groups))
    return grouped.groupby([*keys, "age_group"], as_index=False, sort=False)[value_col].sum()


# --- standard populations -----------------------------------------------------------------


@dataclass(frozen=True)
class StandardPopulation:
    """Standard population counts by `AGE_GROUPS`; `name` is written into every result row."""

    name: str
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.counts) != len(AGE_GROUPS) or min(self.counts) < 0 or sum(self.counts) <= 0:
            raise ValueError(f"standard {self.name!r} needs {len(AGE_GROUPS)} non-negative counts")

    @property
    def weights(self) -> np.ndarray:
        counts = np.asarray(self.counts, dtype=float)
        return counts / counts.sum()


def standard_from_population(population: pd.DataFrame, year: int, name: str) -> StandardPopulation:
    """A standard from a population frame (`age` or `age_group`, `year`, `population`, maybe `sex`).

    Uses the both-sexes rows (`sex == 'T'`) when the frame has them, else sums the sexes.
    """
    rows = population[population["year"] == year]
    if rows.empty:
        raise ValueError(f"no population rows for {year} to build standard {name!r}")
    if "sex" in rows.columns and (rows["sex"] == SEX_TOTAL).any():
        rows = rows[rows["sex"] == SEX_TOTAL]
    if "age_group" not in rows.columns:
        rows = to_age_groups(rows[["age", "population"]])
    by_group = rows.groupby("age_group")["population"].sum()
    missing = [g for g in AGE_GROUPS if g not in by_group.index]
    if missing:
        raise ValueError(f"standard {name!r}: population has no rows for age groups {missing}")
    return StandardPopulation(name, tuple(float(by_group[g]) for g in AGE_GROUPS))


def chile_standard(national_projection: pd.DataFrame, year: int = 2017) -> StandardPopulation:
    """The default standard: Chile's population in `year` (2017, the census year of the base).

    `national_projection` is `ine_population.parse_national_projection(...)` of the INE file
    "Estimaciones y proyecciones de población 1992-2050, base 2017". It is computed from the
    file rather than copied into the repository.
    """
    return standard_from_population(
        national_projection,
        year,
        f"Chile {year}, INE estimaciones y proyecciones base 2017, both sexes, 0-4..80+",
    )


# --- rate arithmetic ----------------------------------------------------------------------


def crude_rate(deaths: np.ndarray, population: np.ndarray, per: float = PER) -> np.ndarray:
    deaths, population = np.asarray(deaths, float), np.asarray(population, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(population > 0, deaths / population * per, np.nan)


@dataclass(frozen=True)
class StandardizedRates:
    """Arrays, one value per stratum (row of the inputs), already multiplied by `per`."""

    asr: np.ndarray
    variance: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    valid: np.ndarray  # False where some age group has deaths but no population


def direct_standardized_rates(
    deaths: np.ndarray,
    population: np.ndarray,
    standard_weights: np.ndarray,
    alpha: float = 0.05,
    per: float = PER,
) -> StandardizedRates:
    """ASR, its variance and the Fay-Feuer gamma CI for each row of (strata x age groups) arrays."""
    deaths = np.atleast_2d(np.asarray(deaths, dtype=float))
    population = np.atleast_2d(np.asarray(population, dtype=float))
    weights = np.asarray(standard_weights, dtype=float)
    weights = weights / weights.sum()
    has_pop = population > 0
    valid = ~((deaths > 0) & ~has_pop).any(axis=1) & has_pop.any(axis=1)
    safe_pop = np.where(has_pop, population, 1.0)
    weight_per_person = np.where(has_pop, weights / safe_pop, 0.0)
    asr = (weight_per_person * deaths).sum(axis=1)
    variance = (weight_per_person**2 * deaths).sum(axis=1)
    w_max = weight_per_person.max(axis=1)

    lower = np.zeros_like(asr)
    positive = valid & (asr > 0)
    lower[positive] = stats.gamma.ppf(
        alpha / 2, asr[positive] ** 2 / variance[positive], scale=variance[positive] / asr[positive]
    )
    upper = np.full_like(asr, np.nan)
    upper[valid] = stats.gamma.ppf(
        1 - alpha / 2,
        (asr[valid] + w_max[valid]) ** 2 / (variance[valid] + w_max[valid] ** 2),
        scale=(variance[valid] + w_max[valid] ** 2) / (asr[valid] + w_max[valid]),
    )
    nan = np.where(valid, 1.0, np.nan)
    return StandardizedRates(
        asr=asr * per * nan,
        variance=variance * per**2 * nan,
        lower=lower * per * nan,
        upper=upper * per,
        valid=valid,
    )


def rate_ratio(
    asr: np.ndarray, variance: np.ndarray, ref_asr: np.ndarray, ref_variance: np.ndarray, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RR = ASR/ASR_ref with the log-normal CI described in the module docstring."""
    asr, variance = np.asarray(asr, float), np.asarray(variance, float)
    ref_asr, ref_variance = np.asarray(ref_asr, float), np.asarray(ref_variance, float)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref_asr > 0, asr / ref_asr, np.nan)
        se_log = np.sqrt(variance / asr**2 + ref_variance / ref_asr**2)
        ok = (asr > 0) & (ref_asr > 0)
        lower = np.where(ok, ratio * np.exp(-z * se_log), np.nan)
        upper = np.where(ok, ratio * np.exp(z * se_log), np.nan)
    return ratio, lower, upper


# --- periods and territories --------------------------------------------------------------


def pooled_periods(first_year: int, last_year: int, window: int = 5) -> list[tuple[int, int]]:
    """Complete windows ending at `last_year`, oldest first: (2002, 2020, 5) -> 2006-2010 .. 2016-2020."""
    periods = []
    end = last_year
    while end - window + 1 >= first_year:
        periods.append((end - window + 1, end))
        end -= window
    return periods[::-1]


def period_label(period: tuple[int, int]) -> str:
    start, end = period
    return str(start) if start == end else f"{start}-{end}"


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")


def _by_territory(
    frame: pd.DataFrame, territories: Mapping[str, Collection[str] | None], keys: list[str], value: str
) -> pd.DataFrame:
    parts = []
    for name, codes in territories.items():
        rows = frame if codes is None else frame[frame["comuna_code"].isin(list(codes))]
        summed = rows.groupby(keys, as_index=False, sort=False)[value].sum()
        summed.insert(0, "territory", name)
        parts.append(summed)
    return pd.concat(parts, ignore_index=True)


def _with_total_sex(frame: pd.DataFrame, sexes: Sequence[str]) -> pd.DataFrame:
    parts = [frame[frame["sex"].isin([s for s in sexes if s != SEX_TOTAL])]]
    if SEX_TOTAL in sexes:
        parts.append(frame.assign(sex=SEX_TOTAL))
    return pd.concat(parts, ignore_index=True)


def _age_matrix(frame: pd.DataFrame, index_cols: list[str], value: str, index: pd.MultiIndex) -> np.ndarray:
    known = frame[frame["age_group"].isin(AGE_GROUPS)]
    table = known.pivot_table(
        index=index_cols, columns="age_group", values=value, aggfunc="sum", fill_value=0
    )
    table = table.reindex(columns=list(AGE_GROUPS), fill_value=0).reindex(index, fill_value=0)
    return table.to_numpy(dtype=float)


def mortality_table(
    deaths: pd.DataFrame,
    population: pd.DataFrame,
    *,
    standard: StandardPopulation,
    territories: Mapping[str, Collection[str] | None],
    periods: Sequence[tuple[int, int]],
    cause_groups: Sequence[str] | None = None,
    sexes: Sequence[str] = (SEX_TOTAL, "M", "F"),
    reference: str | None = None,
    min_deaths: int = 20,
    suppress: bool = False,
    alpha: float = 0.05,
    per: float = PER,
    cause_groups_version: str | None = None,
    stated_populations: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per territory x period x cause group x sex, with the columns `TABLE_COLUMNS`.

    deaths: `year, comuna_code, sex ('M','F','U'), age_group, cause_group, deaths`
    (as `deis_deaths.aggregate_*` return). population: `year, comuna_code, sex ('M','F'),
    age` or `age_group`, `population` (as `ine_population.parse_comunas` returns).
    territories: name -> comuna codes, or None for "every row" (the country, which then
    also counts deaths of unknown residence, comuna 99999). reference: the territory the
    rate ratios are taken against. Every year of every period must be in `population`.
    stated_populations: territory -> its own population (`year, sex ('M','F'), age_group,
    population`), the figure its publisher states for the whole territory (Chile from the INE
    national projection), used as its denominator instead of the sum of its comunas' rows.
    """
    population, years_by_comuna = _checked_inputs(deaths, population, territories, reference)
    stated = {name: frame for name, frame in (stated_populations or {}).items() if name in territories}
    if cause_groups is None:
        cause_groups = sorted(deaths["cause_group"].unique())
    tables = []
    for period in periods:
        _require_period(period, population, years_by_comuna, territories, stated)
        start, end = period
        period_deaths = deaths[deaths["year"].between(start, end) & deaths["cause_group"].isin(cause_groups)]
        dead = _by_territory(
            _with_total_sex(period_deaths, sexes), territories, ["cause_group", "sex", "age_group"], "deaths"
        )
        pop = _period_population(population, stated, territories, period, sexes)
        strata = pd.MultiIndex.from_product(
            [list(territories), list(cause_groups), list(sexes)], names=["territory", "cause_group", "sex"]
        )
        table = _period_table(dead, pop, strata, standard, alpha=alpha, per=per, min_deaths=min_deaths)
        table.insert(1, "period", period_label(period))
        tables.append(table)
    result = pd.concat(tables, ignore_index=True)
    _add_rate_ratios(result, reference, alpha)
    result["standard"] = standard.name
    result["cause_groups_version"] = cause_groups_version
    if suppress:
        blank = result["flag"] != FLAG_OK
        rate_cols = ["crude_rate", "asr", "asr_lower", "asr_upper", "rate_ratio", "rr_lower", "rr_upper"]
        result.loc[blank, rate_cols] = np.nan
    return result[TABLE_COLUMNS]


def _checked_inputs(
    deaths: pd.DataFrame,
    population: pd.DataFrame,
    territories: Mapping[str, Collection[str] | None],
    reference: str | None,
) -> tuple[pd.DataFrame, dict[str, set]]:
    """(population in age groups, each comuna's years), once the columns are there, the reference
    is one of the territories and every comuna named has population rows (else ValueError)."""
    _require_columns(deaths, ["year", "comuna_code", "sex", "age_group", "cause_group", "deaths"], "deaths")
    if "age_group" not in population.columns:
        population = to_age_groups(population[["year", "comuna_code", "sex", "age", "population"]])
    _require_columns(population, ["year", "comuna_code", "sex", "age_group", "population"], "population")
    if reference is not None and reference not in territories:
        raise ValueError(f"reference territory {reference!r} is not among the territories")
    years_by_comuna = population.groupby("comuna_code")["year"].agg(set).to_dict()
    for name, codes in territories.items():
        absent = sorted(set(codes or ()) - set(years_by_comuna))
        if absent:
            raise ValueError(f"territory {name!r}: comunas {absent} have no population rows")
    return population, years_by_comuna


def _require_period(
    period: tuple[int, int],
    population: pd.DataFrame,
    years_by_comuna: Mapping[str, set],
    territories: Mapping[str, Collection[str] | None],
    stated: Mapping[str, pd.DataFrame],
) -> None:
    """Every year of the period has population: overall, in each stated population, in each comuna."""
    start, end = period
    wanted = set(range(start, end + 1))
    missing_years = sorted(wanted - set(population["year"].unique()))
    if missing_years:
        raise ValueError(f"period {period_label(period)}: no population for years {missing_years}")
    for name, frame in stated.items():
        lacking = sorted(wanted - set(frame["year"].unique()))
        if lacking:
            raise ValueError(f"territory {name!r}: its stated population lacks years {lacking}")
    for name, codes in territories.items():
        gaps = {code: sorted(wanted - years_by_comuna[code]) for code in codes or ()}
        gaps = {code: years for code, years in gaps.items() if years}
        if gaps:
            raise ValueError(f"territory {name!r}, period {period_label(period)}: population lacks {gaps}")


def _period_population(
    population: pd.DataFrame,
    stated: Mapping[str, pd.DataFrame],
    territories: Mapping[str, Collection[str] | None],
    period: tuple[int, int],
    sexes: Sequence[str],
) -> pd.DataFrame:
    """Person-years by territory, sex and age group: summed over comunas, or as the publisher states them."""
    start, end = period
    summed = {name: codes for name, codes in territories.items() if name not in stated}
    period_pop = population[population["year"].between(start, end)]
    parts = [
        _by_territory(_with_total_sex(period_pop, sexes), summed, ["sex", "age_group"], "population")
        if summed
        else None,
        *(
            _by_territory(
                _with_total_sex(frame[frame["year"].between(start, end)], sexes),
                {name: None},
                ["sex", "age_group"],
                "population",
            )
            for name, frame in stated.items()
        ),
    ]
    return pd.concat(parts, ignore_index=True)


def _period_table(
    dead: pd.DataFrame,
    pop: pd.DataFrame,
    strata: pd.MultiIndex,
    standard: StandardPopulation,
    *,
    alpha: float,
    per: float,
    min_deaths: int,
) -> pd.DataFrame:
    """Deaths, person-years, crude and standardized rates and the flag of every stratum of one period."""
    death_matrix = _age_matrix(dead, ["territory", "cause_group", "sex"], "deaths", strata)
    pop_index = pd.MultiIndex.from_arrays(
        [strata.get_level_values("territory"), strata.get_level_values("sex")], names=["territory", "sex"]
    )
    pop_matrix = _age_matrix(pop, ["territory", "sex"], "population", pop_index)
    unknown_age = (
        dead[dead["age_group"] == UNKNOWN_AGE]
        .groupby(["territory", "cause_group", "sex"])["deaths"]
        .sum()
        .reindex(strata, fill_value=0)
        .to_numpy(dtype=float)
    )
    total_deaths = death_matrix.sum(axis=1) + unknown_age
    total_pop = pop_matrix.sum(axis=1)
    rates = direct_standardized_rates(death_matrix, pop_matrix, standard.weights, alpha=alpha, per=per)
    table = strata.to_frame(index=False)
    table["deaths"] = total_deaths.astype(np.int64)
    table["deaths_unknown_age"] = unknown_age.astype(np.int64)
    table["population"] = total_pop
    table["crude_rate"] = crude_rate(total_deaths, total_pop, per)
    table["asr"], table["asr_lower"], table["asr_upper"] = rates.asr, rates.lower, rates.upper
    table["_variance"] = rates.variance
    table["flag"] = np.select(
        [total_pop <= 0, ~rates.valid, total_deaths < min_deaths],
        [FLAG_NO_POPULATION, FLAG_DEATHS_WITHOUT_POPULATION, FLAG_FEW_DEATHS],
        default=FLAG_OK,
    )
    return table


def _add_rate_ratios(result: pd.DataFrame, reference: str | None, alpha: float) -> None:
    result["rate_ratio"] = result["rr_lower"] = result["rr_upper"] = np.nan
    if reference is None:
        result.drop(columns="_variance", inplace=True)
        return
    keys = ["period", "cause_group", "sex"]
    ref = result.loc[result["territory"] == reference, [*keys, "asr", "_variance"]]
    ref = ref.rename(columns={"asr": "_ref_asr", "_variance": "_ref_variance"})
    merged = result[keys].merge(ref, on=keys, how="left")
    ratio, lower, upper = rate_ratio(
        result["asr"].to_numpy(),
        result["_variance"].to_numpy(),
        merged["_ref_asr"].to_numpy(),
        merged["_ref_variance"].to_numpy(),
        alpha,
    )
    is_ref = (result["territory"] == reference).to_numpy()
    result["rate_ratio"] = np.where(is_ref & ~np.isnan(ratio), 1.0, ratio)
    result["rr_lower"] = np.where(is_ref, np.nan, lower)
    result["rr_upper"] = np.where(is_ref, np.nan, upper)
    result.drop(columns="_variance", inplace=True)

"""Rates: ASR, gamma CI and rate ratios checked against independent hand computations."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from methods.mortality import (
    AGE_GROUPS,
    FLAG_DEATHS_WITHOUT_POPULATION,
    FLAG_FEW_DEATHS,
    FLAG_OK,
    TABLE_COLUMNS,
    StandardPopulation,
    age_band_to_group,
    age_group_of,
    chile_standard,
    direct_standardized_rates,
    mortality_table,
    pooled_periods,
    rate_ratio,
    sql_age_group,
    standard_from_population,
    to_age_groups,
)

SAMPLES = Path(__file__).resolve().parents[2] / "sources" / "samples" / "health"
ANTOFAGASTA = ["02101", "02102", "02103", "02104", "02201", "02202", "02203", "02301", "02302"]


def test_age_groups_python_and_sql_agree():
    assert len(AGE_GROUPS) == 17 and AGE_GROUPS[0] == "0-4" and AGE_GROUPS[-1] == "80+"
    con = duckdb.connect()
    ages = [None, -1, *range(0, 121)]
    for age in ages:
        assert con.execute(f"SELECT {sql_age_group('$age::INTEGER')}", {"age": age}).fetchone()[
            0
        ] == age_group_of(age)


def test_age_bands():
    assert age_band_to_group("< 1") == "0-4"
    assert age_band_to_group("1 a 4") == "0-4"
    assert age_band_to_group("75 a 79") == "75-79"
    assert age_band_to_group("90 a 99") == "80+"
    assert age_band_to_group("100 +") == "80+"
    assert age_band_to_group("100 o mas") == "80+"
    with pytest.raises(ValueError, match="straddles"):
        age_band_to_group("0 a 9")
    with pytest.raises(ValueError):
        age_band_to_group("Ignorada")


def _loop_asr(deaths, population, standard):
    """Direct standardisation with plain loops, straight from the definition."""
    total = sum(standard)
    asr = variance = 0.0
    for d, n, s in zip(deaths, population, standard, strict=True):
        w = s / total
        asr += w * d / n
        variance += w * w * d / (n * n)
    w_max = max((s / total) / n for n, s in zip(population, standard, strict=True))
    return asr, variance, w_max


def _chi2_interval(asr, variance, w_max, alpha=0.05):
    """Fay & Feuer's interval written with chi-square quantiles (gamma(k, theta) = theta/2 chi2(2k))."""
    lower = 0.0 if asr == 0 else variance / (2 * asr) * stats.chi2.ppf(alpha / 2, 2 * asr**2 / variance)
    a, v = asr + w_max, variance + w_max**2
    upper = v / (2 * a) * stats.chi2.ppf(1 - alpha / 2, 2 * a**2 / v)
    return lower, upper


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asr_and_gamma_interval_match_independent_computations(seed):
    rng = np.random.default_rng(seed)
    population = rng.integers(50, 20_000, size=(4, 17))
    deaths = rng.poisson(population * np.linspace(0.0002, 0.08, 17))
    deaths[3] = 0  # a stratum without deaths
    standard = rng.integers(1_000, 100_000, size=17)
    result = direct_standardized_rates(deaths, population, standard, per=100_000)
    for row in range(4):
        asr, variance, w_max = _loop_asr(deaths[row], population[row], standard)
        lower, upper = _chi2_interval(asr, variance, w_max)
        assert result.asr[row] == pytest.approx(asr * 1e5, rel=1e-12)
        assert result.variance[row] == pytest.approx(variance * 1e10, rel=1e-12)
        assert result.lower[row] == pytest.approx(lower * 1e5, rel=1e-9, abs=1e-12)
        assert result.upper[row] == pytest.approx(upper * 1e5, rel=1e-9)
    assert result.lower[3] == 0 and result.upper[3] > 0


def test_rate_ratio_log_normal_interval():
    ratio, lower, upper = rate_ratio(np.array([120.0]), np.array([90.0]), np.array([100.0]), np.array([4.0]))
    se = math.sqrt(90 / 120**2 + 4 / 100**2)
    z = stats.norm.ppf(0.975)
    assert ratio[0] == pytest.approx(1.2)
    assert lower[0] == pytest.approx(1.2 * math.exp(-z * se))
    assert upper[0] == pytest.approx(1.2 * math.exp(z * se))


def _toy_inputs():
    """Two comunas over two years; comuna B has deaths in an age group with no population."""
    rows_pop, rows_deaths = [], []
    for comuna, scale in (("02201", 1000), ("02202", 10)):
        for year in (2019, 2020):
            for sex in ("M", "F"):
                for i, group in enumerate(AGE_GROUPS):
                    rows_pop.append((year, comuna, sex, group, scale * (20 - i) + year - 2019))
                    deaths = (i * scale) // 200 + (1 if sex == "M" else 0)
                    rows_deaths.append((year, comuna, sex, group, "all_causes", deaths))
    rows_deaths.append((2020, "02201", "U", "40-44", "all_causes", 3))  # sex unknown
    rows_deaths.append((2020, "02201", "F", "unknown", "all_causes", 2))  # age unknown
    rows_deaths.append((2020, "99999", "M", "60-64", "all_causes", 4))  # residence unknown
    deaths = pd.DataFrame(
        rows_deaths, columns=["year", "comuna_code", "sex", "age_group", "cause_group", "deaths"]
    )
    population = pd.DataFrame(rows_pop, columns=["year", "comuna_code", "sex", "age_group", "population"])
    return deaths, population


def test_mortality_table_against_plain_loops():
    deaths, population = _toy_inputs()
    standard = StandardPopulation("toy standard", tuple(float(100 + 10 * i) for i in range(17)))
    table = mortality_table(
        deaths,
        population,
        standard=standard,
        territories={"Calama": ["02201"], "Country": None},
        periods=[(2019, 2020)],
        reference="Country",
        min_deaths=20,
    )
    assert list(table.columns) == TABLE_COLUMNS
    assert set(table["standard"]) == {"toy standard"}

    def cell(territory, sex):
        return table[(table["territory"] == territory) & (table["sex"] == sex)].iloc[0]

    # independent sums over the raw rows, pooled over 2019-2020
    for territory, comunas in (("Calama", {"02201"}), ("Country", None)):
        per_group_d = {g: 0 for g in AGE_GROUPS}
        per_group_n = {g: 0 for g in AGE_GROUPS}
        unknown = 0
        for row in deaths.itertuples():
            if comunas is None or row.comuna_code in comunas:
                if row.age_group == "unknown":
                    unknown += row.deaths
                else:
                    per_group_d[row.age_group] += row.deaths
        for row in population.itertuples():
            if comunas is None or row.comuna_code in comunas:
                per_group_n[row.age_group] += row.population
        d = [per_group_d[g] for g in AGE_GROUPS]
        n = [per_group_n[g] for g in AGE_GROUPS]
        asr, variance, w_max = _loop_asr(d, n, standard.counts)
        lower, upper = _chi2_interval(asr, variance, w_max)
        got = cell(territory, "T")
        assert got["deaths"] == sum(d) + unknown
        assert got["deaths_unknown_age"] == unknown
        assert got["population"] == sum(n)
        assert got["crude_rate"] == pytest.approx((sum(d) + unknown) / sum(n) * 1e5)
        assert got["asr"] == pytest.approx(asr * 1e5)
        assert got["asr_lower"] == pytest.approx(lower * 1e5)
        assert got["asr_upper"] == pytest.approx(upper * 1e5)
        if territory == "Country":
            ref_asr, ref_var = asr, variance
        else:
            calama_asr, calama_var = asr, variance
    ratio = calama_asr / ref_asr
    se = math.sqrt(calama_var / calama_asr**2 + ref_var / ref_asr**2)
    calama = cell("Calama", "T")
    assert calama["rate_ratio"] == pytest.approx(ratio)
    assert calama["rr_lower"] == pytest.approx(ratio * math.exp(-stats.norm.ppf(0.975) * se))
    assert cell("Country", "T")["rate_ratio"] == 1.0

    # sex-specific rows leave out the unknown sex; the totals keep it
    assert cell("Calama", "T")["deaths"] == cell("Calama", "M")["deaths"] + cell("Calama", "F")["deaths"] + 3


def test_flags_and_suppression():
    deaths, population = _toy_inputs()
    # Ollagüe-sized comuna: deaths where the population of the group is zero
    population.loc[
        (population["comuna_code"] == "02202") & (population["age_group"] == "80+"), "population"
    ] = 0
    standard = StandardPopulation("toy", tuple(1.0 for _ in AGE_GROUPS))
    kwargs = dict(standard=standard, territories={"B": ["02202"], "Country": None}, periods=[(2019, 2020)])
    table = mortality_table(deaths, population, **kwargs, min_deaths=10**6)
    b = table[(table["territory"] == "B") & (table["sex"] == "T")].iloc[0]
    assert b["flag"] == FLAG_DEATHS_WITHOUT_POPULATION and math.isnan(b["asr"])
    country = table[(table["territory"] == "Country") & (table["sex"] == "T")].iloc[0]
    assert country["flag"] == FLAG_FEW_DEATHS and not math.isnan(country["asr"])
    suppressed = mortality_table(deaths, population, **kwargs, min_deaths=10**6, suppress=True)
    assert suppressed["asr"].isna().all() and suppressed["crude_rate"].isna().all()
    assert (mortality_table(deaths, population, **kwargs, min_deaths=0)["flag"] != FLAG_FEW_DEATHS).all()


def test_missing_population_years_and_comunas_are_errors():
    deaths, population = _toy_inputs()
    standard = StandardPopulation("toy", tuple(1.0 for _ in AGE_GROUPS))
    with pytest.raises(ValueError, match="2018"):
        mortality_table(
            deaths, population, standard=standard, territories={"C": None}, periods=[(2018, 2020)]
        )
    with pytest.raises(ValueError, match="09999"):
        mortality_table(
            deaths, population, standard=standard, territories={"C": ["09999"]}, periods=[(2019, 2020)]
        )
    gap = population[~((population["comuna_code"] == "02202") & (population["year"] == 2019))]
    with pytest.raises(ValueError, match="02202"):
        mortality_table(deaths, gap, standard=standard, territories={"B": ["02202"]}, periods=[(2019, 2020)])


def test_pooled_periods():
    assert pooled_periods(2002, 2020, 5) == [(2006, 2010), (2011, 2015), (2016, 2020)]
    assert pooled_periods(2019, 2020, 1) == [(2019, 2019), (2020, 2020)]


def test_chile_standard_from_the_real_national_file(shared_data):
    from sources.ine_population import parse_national_projection

    path = shared_data / "health" / "ine_proyecciones_pais_1992-2050_base2017_edad_simple.csv"
    standard = chile_standard(parse_national_projection(path), 2017)
    # independent: the both-sexes block, ages 80..100+ of 2017, read with the csv module
    eighty_plus, total, block = 0, 0, None
    with path.open(encoding="cp1252", newline="") as handle:
        for row in csv.reader(handle, delimiter=";"):
            if row and row[0].startswith("POBLACI"):
                block = "T"
            elif row and row[0] in ("HOMBRES", "MUJERES"):
                block = None
            elif block == "T" and row and row[0] == "EDAD":
                column = row.index("2017")
            elif block == "T" and row and row[0][:1].isdigit():
                value = int(row[column].replace(".", ""))
                total += value
                eighty_plus += value if int(row[0].rstrip("+")) >= 80 else 0
    assert sum(standard.counts) == total
    assert standard.counts[-1] == eighty_plus
    assert "2017" in standard.name
    assert standard.weights.sum() == pytest.approx(1.0)


def test_sample_snapshot_gives_a_table_for_the_antofagasta_comunas():
    from sources.deis_deaths import aggregate_deaths_zip
    from sources.ine_population import parse_comunas

    con = duckdb.connect()
    deaths = aggregate_deaths_zip(con, SAMPLES / "DEFUNCIONES_FUENTE_DEIS_SAMPLE_2016_2020.zip")
    population = parse_comunas(SAMPLES / "ine_proyecciones_comunas_SAMPLE_2002-2035.csv")
    standard = standard_from_population(population, 2017, "SAMPLE country 2017")
    territories = {code: [code] for code in ANTOFAGASTA} | {"Antofagasta": ANTOFAGASTA, "Country": None}
    table = mortality_table(
        deaths,
        population,
        standard=standard,
        territories=territories,
        periods=pooled_periods(2016, 2020, 5),
        reference="Country",
    )
    rows = table[(table["cause_group"] == "all_causes") & (table["sex"] == "T")]
    assert len(rows) == 11 and rows["period"].eq("2016-2020").all()
    assert rows["asr"].notna().all() and rows["rate_ratio"].notna().all()
    ollague = rows[rows["territory"] == "02202"].iloc[0]
    assert ollague["flag"] == FLAG_FEW_DEATHS
    assert rows[rows["territory"] == "Antofagasta"].iloc[0]["flag"] == FLAG_OK
    # the single-age population grouped here equals the long population summed by hand
    grouped = to_age_groups(population[population["year"] == 2017])
    assert grouped["population"].sum() == population.loc[population["year"] == 2017, "population"].sum()


def test_sample_generator_is_deterministic(tmp_path):
    from sources.samples.health import make_sample

    for written in make_sample.main(tmp_path):
        assert written.read_bytes() == (SAMPLES / written.name).read_bytes(), written.name


def test_a_stated_population_replaces_the_sum_of_comunas_as_the_denominator():
    """The country's deaths (all rows, unknown residence too) over the population its publisher
    states, not over the comunas the file holds; regions still sum their comunas."""
    groups = list(AGE_GROUPS)
    population = pd.DataFrame(
        [(2020, "02201", sex, g, 100.0) for sex in ("M", "F") for g in groups],
        columns=["year", "comuna_code", "sex", "age_group", "population"],
    )
    stated = pd.DataFrame(
        [(2020, sex, g, 1000.0 + i) for sex in ("M", "F") for i, g in enumerate(groups)],
        columns=["year", "sex", "age_group", "population"],
    )
    deaths = pd.DataFrame(
        [(2020, "02201", "M", "80+", "all_causes", 10), (2020, "99999", "F", "80+", "all_causes", 4)],
        columns=["year", "comuna_code", "sex", "age_group", "cause_group", "deaths"],
    )
    standard = StandardPopulation("flat", tuple([1.0] * len(groups)))
    table = mortality_table(
        deaths,
        population,
        standard=standard,
        territories={"Country": None, "Calama": ["02201"]},
        periods=[(2020, 2020)],
        reference="Country",
        stated_populations={"Country": stated},
    )
    rows = table[table["sex"] == "T"].set_index("territory")
    top = 2 * (1000.0 + len(groups) - 1)  # both sexes of the stated 80+ group
    assert rows.loc["Country", "population"] == stated["population"].sum()
    assert rows.loc["Country", "deaths"] == 14
    assert rows.loc["Country", "asr"] == pytest.approx(100_000 * 14 / top / len(groups))
    assert rows.loc["Calama", "population"] == population["population"].sum()
    assert rows.loc["Calama", "asr"] == pytest.approx(100_000 * 10 / 200 / len(groups))
    with pytest.raises(ValueError, match="stated population lacks years"):
        mortality_table(
            deaths,
            population,
            standard=standard,
            territories={"Country": None},
            periods=[(2020, 2020)],
            stated_populations={"Country": stated.assign(year=2019)},
        )

"""Finance indicators as series: one value per territory and year, with flags and inputs.

Amounts become indicator series; ratios (per inhabitant, shares of income and budget) pair a
numerator with the denominator of the same territory and year; royalty totals are summed by
comuna and by region only where the allocations cover the whole region. The result is the
governance indicators of warehouse/indicators/finance.yaml as core.observations rows, by source.
"""

import pandas as pd

from pipelines.finance_tables import SINIM_MONEY
from sources import division, presupuesto_abierto, royalties, sinim
from warehouse import store

# Population, in order of preference: INE comuna/region population (health family), then OECD TL2.
POPULATION_INDICATORS = ("population", "oecd_population")

# How a ratio names its population denominator: indicator population, else oecd_population, same year.
POPULATION_NAME = "population"
SOURCES_WITH_OBSERVATIONS = (sinim.SOURCE.id, royalties.SOURCE.id, presupuesto_abierto.SOURCE.id)


SERIES = ["territory_id", "year", "value", "snapshot_id", "flag"]


def _series(territory_ids, years, values, snapshots, flags=None) -> pd.DataFrame:
    """One value per territory and year, the unit every indicator below is built from."""
    frame = pd.DataFrame(
        {
            "territory_id": list(territory_ids),
            "year": [int(y) for y in years],
            "value": [float(v) for v in values],
            "snapshot_id": list(snapshots),
        }
    )
    frame["flag"] = list(flags) if flags is not None else None
    return frame[SERIES].astype({"year": "int64", "value": "float64", "flag": "object"})


def amount_series(amounts: pd.DataFrame, measure: str) -> pd.DataFrame:
    rows = amounts[amounts["measure"] == measure]
    flags = [f"sum of {p} comunas" if p > 1 else None for p in rows["parts"]]
    return _series(rows["territory_id"], rows["year"], rows["amount_clp"], rows["snapshot_id"], flags)


def _inputs_as(frame: pd.DataFrame, role: str, suffix: str = "") -> list[list[tuple[str, str]]]:
    """Each row's inputs under `role`: its declared ones if it lists them, else its own snapshot."""
    declared = frame[f"inputs{suffix}"] if f"inputs{suffix}" in frame.columns else [None] * len(frame)
    return [
        [(role, *rest) for _, *rest in listed] if isinstance(listed, list) else [(role, own)]
        for listed, own in zip(declared, frame[f"snapshot_id{suffix}"], strict=True)
    ]


def ratio_series(
    numerator: pd.DataFrame,
    denominator: pd.DataFrame,
    scale: float,
    modes: dict[str, str],
    denominator_name: str,
) -> tuple[pd.DataFrame, list[str]]:
    """scale × numerator ÷ denominator for the same territory and year; never across years.

    Returns (series, the numerator's territory-years that had no denominator). A value stays
    under the numerator's snapshot (its source's) and lists both as inputs, so its mode is the
    weaker of the two (a SAMPLE denominator makes it sample; the numerator's source stays what
    it is); a flag says when the denominator is SAMPLE data.
    """
    merged = numerator.merge(
        denominator[denominator["value"] > 0], on=["territory_id", "year"], suffixes=("", "_d"), how="left"
    )
    matched = merged[merged["value_d"].notna()]
    unmatched = [f"{t} {y}" for t, y in merged.loc[merged["value_d"].isna(), ["territory_id", "year"]].values]
    flags = []
    for row in matched.itertuples(index=False):
        sampled = modes.get(row.snapshot_id_d) == "sample" and modes.get(row.snapshot_id) != "sample"
        notes = [n for n in (row.flag, f"{denominator_name} is SAMPLE data" if sampled else None) if n]
        flags.append("; ".join(notes) or None)
    series = _series(
        matched["territory_id"],
        matched["year"],
        scale * matched["value"] / matched["value_d"],
        matched["snapshot_id"],
        flags,
    )
    series["inputs"] = [
        sorted(set(n + d))
        for n, d in zip(
            _inputs_as(matched, "numerator"), _inputs_as(matched, "denominator", "_d"), strict=True
        )
    ]
    return series, unmatched


def population_series(conn) -> pd.DataFrame:
    """Population by territory and year from core.observations, preferring INE's over the OECD's."""
    frame = conn.execute(
        """
        SELECT territory_id, TRY_CAST(period AS INTEGER) AS year, value, snapshot_id, indicator_id
        FROM core.observations
        WHERE indicator_id IN (SELECT unnest(?::VARCHAR[])) AND value > 0 AND TRY_CAST(period AS INTEGER) IS NOT NULL
        """,
        [list(POPULATION_INDICATORS)],
    ).df()
    frame["rank"] = frame["indicator_id"].map(POPULATION_INDICATORS.index)
    frame = frame.sort_values("rank").drop_duplicates(["territory_id", "year"])
    flags = [None if i == POPULATION_INDICATORS[0] else f"population: {i}" for i in frame["indicator_id"]]
    return _series(frame["territory_id"], frame["year"], frame["value"], frame["snapshot_id"], flags)


def whole_region_years(rows: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
    """Which royalty rows belong to a region-year whose every fund lists all the comunas of the
    region (`sources.division.coverage`), or that lists only region-level allocations; and the
    region-years left out, with the coverage of each partial fund ('fondo_x: 3 of 9 comunas')."""
    comunas = rows[rows["territory_id"].str.startswith("comuna:")]
    partial: dict[str, list[str]] = {}
    for (region, year, fund), group in comunas.groupby(["region", "year", "detail"], sort=True):
        cover = division.coverage(region, group["code"])
        if not cover.complete:
            partial.setdefault(f"{region} {year}", []).append(f"{fund}: {cover.describe()}")
    keys = rows["region"] + " " + rows["year"].astype(str)
    return ~keys.isin(list(partial)), {key: "; ".join(funds) for key, funds in partial.items()}


def royalty_totals(
    amounts: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(comuna totals, region totals of every listed allocation, region totals of the comuna
    allocations, the region-years left out with their coverage).

    A region's total is written only where its comuna allocations cover the whole region
    (`whole_region_years`): a sum over some of its comunas is no value of the region.
    """
    rows = amounts[amounts["measure"] == "royalty_allocation"].copy()
    rows["code"] = rows["territory_id"].str.split(":").str[1]
    rows["region"] = "region:" + rows["code"].str[:2]
    comunas = rows[rows["territory_id"].str.startswith("comuna:")]
    whole, left_out = whole_region_years(rows)

    def totals(frame: pd.DataFrame, by: str) -> pd.DataFrame:
        grouped = frame.groupby([by, "year"]).agg(
            value=("amount_clp", "sum"),
            snapshot_id=("snapshot_id", "max"),
            parts=("amount_clp", "size"),
            funds=("detail", lambda f: ", ".join(sorted(set(f)))),
            unverified=("verification", lambda v: int((v == "unverified").sum())),
        )
        grouped = grouped.reset_index()
        flags = [
            "; ".join(
                ([f"sum of {p} listed allocations ({funds})"] if p > 1 else [])
                + ([f"{u} of {p} curated rows not checked against the primary document"] if u else [])
            )
            or None
            for p, funds, u in zip(grouped["parts"], grouped["funds"], grouped["unverified"], strict=True)
        ]
        series = _series(grouped[by], grouped["year"], grouped["value"], grouped["snapshot_id"], flags)
        series["inputs"] = [  # an unverified row makes the value curated-unverified
            [("parts" if p > 1 else "value", snapshot, *(["unverified"] if u else []))]
            for p, snapshot, u in zip(
                grouped["parts"], grouped["snapshot_id"], grouped["unverified"], strict=True
            )
        ]
        return series

    return (
        totals(comunas, "territory_id"),
        totals(rows[whole], "region"),
        totals(comunas[whole[comunas.index]], "region"),
        left_out,
    )


def fcm_dependence(staging: pd.DataFrame, amounts: pd.DataFrame) -> pd.DataFrame:
    """FCM dependence (%): as SINIM publishes it by comuna; by region 100 × ΣFCM ÷ Σ(IPP + FCM).

    SINIM's variable 1272 is 100 × FCM ÷ (IPP + FCM) (checked on the real 2019-2023 extract;
    the check `sinim_fcm_dependence_consistent` keeps checking it), so the region's figure is
    the same ratio over the summed amounts of all its comunas.
    """
    published = staging[(staging["measure"] == "fcm_dependence_pct") & (staging["value_status"] == "ok")]
    comunas = _series(
        "comuna:" + published["comuna_code"], published["year"], published["value"], published["snapshot_id"]
    )
    regions = amounts[amounts["territory_id"].str.startswith("region:")]
    wide = regions.pivot_table(
        index=["territory_id", "year"], columns="measure", values="amount_clp", aggfunc="first"
    )
    snapshots = regions.groupby(["territory_id", "year"])["snapshot_id"].max()
    parts = regions.groupby(["territory_id", "year"])["parts"].max()
    if not {"fcm_income", "own_permanent_income_ipp"} <= set(wide.columns):
        return comunas
    wide = wide.dropna(subset=["fcm_income", "own_permanent_income_ipp"])
    keys = list(wide.index)
    computed = _series(
        [k[0] for k in keys],
        [k[1] for k in keys],
        100 * wide["fcm_income"] / (wide["own_permanent_income_ipp"] + wide["fcm_income"]),
        [snapshots[k] for k in keys],
        [f"computed: 100 x FCM / (IPP + FCM) over {parts[k]} comunas" for k in keys],
    )
    return pd.concat([comunas, computed], ignore_index=True)


class IndicatorSeries:
    """The indicators being built: {indicator: (source id, series)} and a note per derived one."""

    def __init__(self, modes: dict[str, str]):
        self.modes = modes
        self.series: dict[str, tuple[str, pd.DataFrame]] = {}
        self.notes: dict[str, str] = {}

    def add(self, indicator: str, source_id: str, values: pd.DataFrame) -> None:
        self.series[indicator] = (source_id, values)

    def derived(self, indicator, source_id, numerator, denominator, scale, name) -> None:
        """scale × numerator ÷ denominator (`ratio_series`), or a note saying why there is none."""
        if numerator.empty:
            self.notes[indicator] = "no numerator values"
            return
        if denominator.empty:
            self.notes[indicator] = f"skipped: no {name} in the warehouse"
            return
        values, unmatched = ratio_series(numerator, denominator, scale, self.modes, name)
        self.series[indicator] = (source_id, values)
        self.notes[indicator] = f"{len(values)} values" + (
            f"; no {name} of the same year for {len(unmatched)} territory-years ({', '.join(unmatched[:12])})"
            if unmatched
            else ""
        )


def add_sinim_indicators(
    built: IndicatorSeries, amounts: pd.DataFrame, sinim_rows: pd.DataFrame | None, population: pd.DataFrame
) -> None:
    """SINIM's amounts, FCM dependence and mining concession fees per inhabitant."""
    for measure, indicator in SINIM_MONEY.items():
        built.add(indicator, sinim.SOURCE.id, amount_series(amounts, measure))
    if sinim_rows is not None:
        built.add("fcm_dependence_pct", sinim.SOURCE.id, fcm_dependence(sinim_rows, amounts))
    built.derived(
        "mining_concession_fees_per_inhabitant_clp",
        sinim.SOURCE.id,
        amount_series(amounts, "mining_concession_fees"),
        population,
        1.0,
        POPULATION_NAME,
    )


def add_royalty_indicators(built: IndicatorSeries, amounts: pd.DataFrame, population: pd.DataFrame) -> None:
    """Royalty totals, per inhabitant and as shares of municipal income and of the regional budget;
    and the regional-government payments themselves."""
    comuna_totals, region_totals, region_comuna_totals, regions_left_out = royalty_totals(amounts)
    if regions_left_out:
        built.notes["royalty_regions_not_summed"] = "; ".join(
            f"{k} ({v})" for k, v in regions_left_out.items()
        )
    all_totals = pd.concat([comuna_totals, region_totals], ignore_index=True)
    built.add("royalty_allocations_clp", royalties.SOURCE.id, all_totals)
    built.derived(
        "royalty_allocations_per_inhabitant_clp",
        royalties.SOURCE.id,
        all_totals,
        population,
        1.0,
        POPULATION_NAME,
    )
    total_income = amount_series(amounts, "total_income")
    built.derived(
        "royalty_share_of_municipal_income_pct",
        royalties.SOURCE.id,
        pd.concat([comuna_totals, region_comuna_totals], ignore_index=True),
        total_income,
        100.0,
        "SINIM municipal total income",
    )
    built.derived(
        "royalty_share_of_regional_budget_pct",
        royalties.SOURCE.id,
        region_totals,
        amount_series(amounts, "regional_government_payments"),
        100.0,
        "regional-government payments (Presupuesto Abierto)",
    )
    built.add(
        "regional_government_payments_clp",
        presupuesto_abierto.SOURCE.id,
        amount_series(amounts, "regional_government_payments"),
    )


def observation_frames(series: dict[str, tuple[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """core.observations rows (with their inputs) of every indicator series, by source."""
    by_source = {source_id: [] for source_id in SOURCES_WITH_OBSERVATIONS}
    for indicator, (source_id, values) in series.items():
        by_source[source_id].append(
            pd.DataFrame(
                {
                    "indicator_id": indicator,
                    "territory_id": values["territory_id"],
                    "period": values["year"].astype(str),
                    "value": values["value"],
                    "lower": float("nan"),
                    "upper": float("nan"),
                    "flag": values["flag"],
                    "source_id": source_id,
                    "snapshot_id": values["snapshot_id"],
                    "inputs": values["inputs"] if "inputs" in values else None,
                },
                columns=[*store.OBSERVATION_COLUMNS, "inputs"],
            )
        )
    return {
        source_id: pd.concat(parts, ignore_index=True).astype(
            {"value": "float64", "lower": "float64", "upper": "float64", "flag": "object", "period": "object"}
        )
        for source_id, parts in by_source.items()
    }


def finance_observations_frames(
    amounts: pd.DataFrame, sinim_rows: pd.DataFrame | None, population: pd.DataFrame, modes: dict[str, str]
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Every indicator of warehouse/indicators/finance.yaml, by source; plus a note per derived indicator."""
    built = IndicatorSeries(modes)
    add_sinim_indicators(built, amounts, sinim_rows, population)
    add_royalty_indicators(built, amounts, population)
    return observation_frames(built.series), built.notes

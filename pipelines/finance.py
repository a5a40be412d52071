"""Finance family: Ley 21.591 royalty allocations, municipal finance (SINIM), UF and dollar, regional budgets.

Per source, raw.* (payloads as parsed) → staging.* (typed and validated; amounts as published,
with their unit: SINIM writes M$, thousands of nominal CLP). `finance_observations` then builds:
- core.finance_amounts: every amount in nominal CLP, with the published value, unit and the
  conversion that turned one into the other;
- core.finance_annual_rates: the UF and the dólar observado that stand for each year;
- core.observations: the governance indicators of warehouse/indicators/finance.yaml;
- the marts views of warehouse/sql/views/30_finance.sql: each amount in nominal CLP, real CLP of
  the base year (UF-based) and USD, with `conversion`, `rate` and `rate_date`.
A cell SINIM never received ("No Recepcionado") or left blank is missing, never zero: it gives
no amount and no observation, and sums over comunas need every comuna of the region.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    sensor,
)

from pipelines import health as health_assets
from pipelines import oecd as oecd_assets
from pipelines.finance_amounts import REAL_BASE_YEAR
from pipelines.finance_core import build_core, existing_table
from pipelines.finance_sources import (
    acquire_available,
    acquire_sinim,
    comuna_territories,
    curated_digest,
    curated_paths,
    pagos_requests,
    parse_pagos,
    parse_rates,
    parse_sinim,
    rate_requests,
    raw_csv_rows,
    unresolved_territories,
)
from pipelines.finance_tables import (
    AMOUNT_COLUMNS,
    ANNUAL_RATE_COLUMNS,
    PAGOS_COLUMNS,
    PAGOS_SCHEMA,
    RATE_COLUMNS,
    RATE_SCHEMA,
    ROYALTY_COLUMNS,
    ROYALTY_SCHEMA,
    SINIM_COLUMNS,
    SINIM_MONEY,
    SINIM_PERCENT,
    STATED_COLUMNS,
    STATED_SCHEMA,
    validated,
)
from pipelines.ingest import (
    derived_writer,
    log_acquisitions,
    publish,
    refusing,
    source_version,
    table_declaration,
    unchanged,
)
from pipelines.refresh import refresh_job, refresh_schedule
from pipelines.resources import SourcesResource, WarehouseResource
from pipelines.territories import territories
from sources import mindicador, presupuesto_abierto, royalties, sinim
from sources.base import FetchError
from sources.endpoints import EndpointError, endpoints

FAMILY = "finance"


# --- assets --------------------------------------------------------------------------------------


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[territories],
    description="Ley 21.591 royalty allocations by comuna, transcribed from public documents (mode curated): "
    "raw.royalty_allocations, staging.royalty_allocations, staging.royalty_stated_totals. Every row cites its "
    "document; the rows of a fund and year must add up to the stated total.",
    metadata={
        **table_declaration(
            ROYALTY_COLUMNS,
            "staging.royalty_allocations",
            extra={"staging.royalty_stated_totals": STATED_COLUMNS},
        ),
        "source": royalties.SOURCE.landing_url,
    },
)
def royalty_allocations(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer = sources.acquirer()
    try:
        paths = curated_paths()
        acquired = [
            acquirer.curated(royalties.SOURCE, f"royalty-{name}", path) for name, path in paths.items()
        ]
    except (EndpointError, OSError) as exc:
        raise FetchError(royalties.SOURCE.id, f"cannot read the curated files: {exc}") from exc
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {royalties.SOURCE: acquired}, metadata)) is not None:
        return same
    allocations, stated = (item.payload for item in acquired)
    with warehouse.writer() as conn:
        known = comuna_territories(conn)

    def parse() -> dict:
        frame, gaps = royalties.load_allocations(allocations.content, stated.content, known)
        totals = royalties.load_stated_totals(stated.content)
        return {
            "gaps": gaps,
            ("staging", "royalty_allocations"): validated(
                ROYALTY_SCHEMA, royalties.SOURCE, frame.assign(snapshot_id=allocations.snapshot_id)
            ),
            ("staging", "royalty_stated_totals"): validated(
                STATED_SCHEMA, royalties.SOURCE, totals.assign(snapshot_id=stated.snapshot_id)
            ),
        }

    with refusing(warehouse, acquirer, {royalties.SOURCE: acquired}):
        tables = parse()
        gaps = tables.pop("gaps")
        tables[("raw", "royalty_allocations")] = raw_csv_rows(allocations.content, allocations.snapshot_id)
        tables[("raw", "royalty_stated_totals")] = raw_csv_rows(stated.content, stated.snapshot_id)
    counts = publish(warehouse, acquirer, royalties.SOURCE, acquired, tables)
    for gap in gaps:
        context.log.warning(f"royalties: known gap: {gap}")
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **metadata,
            **counts,
            "known_gaps": MetadataValue.json(gaps),
            "comunas_checked_against": "core.territories"
            if known
            else "region 02's nine comunas (no comuna territories loaded)",
        },
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="SINIM municipal finance of the studies' comunas (FCM income, own permanent income, total "
    "income, Patentes Mineras, FCM dependence), walked live through SINIM's POST forms; offline the SAMPLE long "
    "extract. raw.sinim_finance, staging.sinim_finance (values as published, M$ or %, with status).",
    metadata={
        **table_declaration(SINIM_COLUMNS, "staging.sinim_finance"),
        "source": sinim.SOURCE.landing_url,
    },
)
def sinim_municipal_finance(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    acquirer = sources.acquirer()
    # An answer inside the live walk that is unusable: the walk has quarantined what it fetched.
    with refusing(warehouse, acquirer, {sinim.SOURCE: []}):
        acquired, walked = acquire_sinim(acquirer)
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {sinim.SOURCE: acquired}, metadata)) is not None:
        return same

    def parse() -> dict:
        raw, staging = parse_sinim(acquired, walked)
        return {("raw", "sinim_finance"): raw, ("staging", "sinim_finance"): staging}

    with refusing(warehouse, acquirer, {sinim.SOURCE: acquired}):
        tables = parse()
    staging = tables[("staging", "sinim_finance")]
    counts = publish(warehouse, acquirer, sinim.SOURCE, acquired, tables)
    status = staging.groupby("value_status").size().to_dict()
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={
            **metadata,
            **counts,
            "value_status": MetadataValue.json({k: int(v) for k, v in status.items()}),
        },
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="Daily UF and dólar observado per year from mindicador.cl (Banco Central series), for the "
    "real-CLP and USD conversions: raw.mindicador_series, staging.mindicador_series.",
    metadata={
        **table_declaration(RATE_COLUMNS, "raw.mindicador_series", "staging.mindicador_series"),
        "source": mindicador.SOURCE.landing_url,
    },
)
def fx_rates(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(mindicador.SOURCE.id, mindicador.ENDPOINTS)
    requests, asked = rate_requests(urls["api"])
    acquirer = sources.acquirer()
    pairs, unavailable = acquire_available(acquirer, mindicador.SOURCE, requests)
    acquired = [item for _, item in pairs]
    metadata = log_acquisitions(context, acquired)
    if (same := unchanged(context, warehouse, acquirer, {mindicador.SOURCE: acquired}, metadata)) is not None:
        return same
    for line in unavailable:
        context.log.warning(f"mindicador: no data: {line}")

    def parse() -> dict:
        raw = parse_rates(pairs, asked)
        return {
            ("raw", "mindicador_series"): raw,
            ("staging", "mindicador_series"): validated(
                RATE_SCHEMA, mindicador.SOURCE, raw[list(RATE_COLUMNS)]
            ),
        }

    with refusing(warehouse, acquirer, {mindicador.SOURCE: acquired}):
        tables = parse()
    counts = publish(warehouse, acquirer, mindicador.SOURCE, acquired, tables)
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "unavailable": MetadataValue.json(unavailable)},
    )


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    description="Central-government payments in the studies' regions by partida, capítulo and área from "
    "Presupuesto Abierto (response shape ASSUMED): raw/staging.presupuesto_abierto_pagos.",
    metadata={
        **table_declaration(
            PAGOS_COLUMNS, "raw.presupuesto_abierto_pagos", "staging.presupuesto_abierto_pagos"
        ),
        "source": presupuesto_abierto.SOURCE.landing_url,
    },
)
def regional_budget(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> MaterializeResult:
    urls = endpoints(presupuesto_abierto.SOURCE.id, presupuesto_abierto.ENDPOINTS)
    requests, keys = pagos_requests(urls["pagos"])
    acquirer = sources.acquirer()
    pairs, unavailable = acquire_available(acquirer, presupuesto_abierto.SOURCE, requests)
    acquired = [item for _, item in pairs]
    metadata = log_acquisitions(context, acquired)
    if (
        same := unchanged(context, warehouse, acquirer, {presupuesto_abierto.SOURCE: acquired}, metadata)
    ) is not None:
        return same

    def parse() -> dict:
        raw = parse_pagos(pairs, keys)
        return {
            ("raw", "presupuesto_abierto_pagos"): raw,
            ("staging", "presupuesto_abierto_pagos"): validated(
                PAGOS_SCHEMA, presupuesto_abierto.SOURCE, raw[list(PAGOS_COLUMNS)]
            ),
        }

    with refusing(warehouse, acquirer, {presupuesto_abierto.SOURCE: acquired}):
        tables = parse()
    counts = publish(warehouse, acquirer, presupuesto_abierto.SOURCE, acquired, tables)
    return MaterializeResult(
        data_version=source_version(context, acquired),
        metadata={**metadata, **counts, "unavailable": MetadataValue.json(unavailable)},
    )


# Assets that write population observations; per-inhabitant indicators are computed after them.
POPULATION_ASSETS = [health_assets.health_population, oecd_assets.oecd_observations]


@asset(
    group_name=FAMILY,
    pool="duckdb_writer",
    deps=[
        royalty_allocations,
        sinim_municipal_finance,
        fx_rates,
        regional_budget,
        territories,
        *POPULATION_ASSETS,
    ],
    description="Finance amounts in nominal CLP (core.finance_amounts, conversion recorded), the UF and dollar "
    "of each year (core.finance_annual_rates), the governance indicators in core.observations, and the views "
    "marts.finance_amounts, marts.municipal_finance, marts.royalty_allocations (nominal CLP, real CLP, USD).",
    metadata={
        **table_declaration(
            AMOUNT_COLUMNS, "core.finance_amounts", extra={"core.finance_annual_rates": ANNUAL_RATE_COLUMNS}
        )
    },
)
def finance_observations(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with derived_writer(warehouse, FAMILY) as conn:
        metadata = build_core(conn, FAMILY)
    for indicator, note in metadata["derived_indicators"].value.items():
        context.log.info(f"{indicator}: {note}")
    return MaterializeResult(metadata=metadata)


# --- checks --------------------------------------------------------------------------------------


@asset_check(asset=royalty_allocations, description="Every curated royalty row cites a public document.")
def royalty_rows_cite_a_document(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        total, uncited = conn.execute(
            r"""
            SELECT count(*), count(*) FILTER (
                coalesce(trim(document_title), '') = '' OR NOT regexp_matches(document_url, '^https?://\S+$'))
            FROM staging.royalty_allocations
            """
        ).fetchone()
    return AssetCheckResult(passed=uncited == 0, metadata={"rows": total, "rows_without_citation": uncited})


@asset_check(
    asset=royalty_allocations,
    description="Allocation rows of each fund and year add up to the total the documents state (exactly for "
    "whole pesos, within half the rounding of a rounded total); stated totals without rows are listed as gaps.",
)
def royalty_totals_reconcile(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            """
            WITH sums AS (SELECT fund, year, currency, sum(amount) AS allocated, count(*) AS rows
                          FROM staging.royalty_allocations GROUP BY ALL)
            SELECT coalesce(t.fund, s.fund) AS fund, coalesce(t.year, s.year) AS year,
                   coalesce(t.currency, s.currency) AS currency, s.allocated, s.rows, t.stated_total,
                   CASE WHEN t.rounded_to <= 1 THEN 0 ELSE t.rounded_to / 2 END AS tolerance
            FROM staging.royalty_stated_totals t FULL JOIN sums s USING (fund, year, currency)
            ORDER BY 1, 2
            """
        ).df()
    with_rows = frame[frame["allocated"].notna()]
    unstated = with_rows[with_rows["stated_total"].isna()]
    stated = with_rows[with_rows["stated_total"].notna()]
    off = stated[(stated["allocated"] - stated["stated_total"]).abs() > stated["tolerance"]]
    gaps = frame[frame["allocated"].isna()]
    return AssetCheckResult(
        passed=off.empty and unstated.empty,
        metadata={
            "reconciled": MetadataValue.json(stated.astype(str).to_dict("records")),
            "not_reconciling": MetadataValue.json(off.astype(str).to_dict("records")),
            "rows_without_stated_total": MetadataValue.json(unstated.astype(str).to_dict("records")),
            "known_gaps": MetadataValue.json([f"{r.fund} {r.year}" for r in gaps.itertuples()]),
        },
    )


@asset_check(
    asset=finance_observations,
    description="Every comuna and region code of SINIM, the royalty file and the budget resolves to a territory.",
)
def finance_codes_resolve(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        ids = [
            r[0] for r in conn.execute("SELECT DISTINCT territory_id FROM core.finance_amounts").fetchall()
        ]
        for table, column in (("sinim_finance", "comuna_code"), ("royalty_allocations", "territory_code")):
            frame = existing_table(conn, "staging", table)
            if frame is not None:
                levels = frame["territory_level"] if "territory_level" in frame else "comuna"
                ids += list(levels + ":" + frame[column])
        unresolved, basis = unresolved_territories(conn, ids)
    return AssetCheckResult(
        passed=not unresolved,
        metadata={
            "codes": len(set(ids)),
            "unresolved": MetadataValue.json(unresolved),
            "resolved_against": basis,
        },
    )


@asset_check(
    asset=finance_observations,
    description="SINIM cells 'No Recepcionado' or blank are counted as missing: no value, no amount, no "
    "observation (never zero). Reports the counts.",
)
def sinim_not_received_is_missing(warehouse: WarehouseResource) -> AssetCheckResult:
    indicators = {**SINIM_MONEY, **SINIM_PERCENT}
    with warehouse.reader() as conn:
        counts = conn.execute(
            "SELECT variable_code, measure, value_status, count(*) AS cells FROM staging.sinim_finance "
            "GROUP BY ALL ORDER BY ALL"
        ).df()
        leaked = conn.execute(
            """
            WITH indicator_of AS (SELECT unnest(?::VARCHAR[]) AS measure, unnest(?::VARCHAR[]) AS indicator_id)
            SELECT s.comuna_code, s.year, s.measure, s.value_status, s.value, o.value AS observed
            FROM staging.sinim_finance s
            JOIN indicator_of m USING (measure)
            LEFT JOIN core.observations o
                   ON o.indicator_id = m.indicator_id AND o.territory_id = 'comuna:' || s.comuna_code
                  AND o.period = CAST(s.year AS VARCHAR)
            WHERE s.value_status <> 'ok' AND (s.value IS NOT NULL OR o.indicator_id IS NOT NULL)
            """,
            [list(indicators), list(indicators.values())],
        ).df()
    by_status = counts.groupby("value_status")["cells"].sum().to_dict()
    return AssetCheckResult(
        passed=leaked.empty,
        metadata={
            "not_received": int(by_status.get("not_received", 0)),
            "missing_blank": int(by_status.get("missing", 0)),
            "ok": int(by_status.get("ok", 0)),
            "by_variable": MetadataValue.json(counts.astype(str).to_dict("records")),
            "missing_cells_with_a_value": MetadataValue.json(leaked.head(20).astype(str).to_dict("records")),
        },
    )


@asset_check(
    asset=sinim_municipal_finance,
    description="SINIM's FCM dependence (%) equals 100 x FCM / (IPP + FCM) to its 2 published decimals, the "
    "identity the regional figure relies on.",
)
def sinim_fcm_dependence_consistent(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        frame = conn.execute(
            """
            SELECT comuna_code, year,
                   max(value) FILTER (measure = 'fcm_dependence_pct') AS published,
                   100 * max(value) FILTER (measure = 'fcm_income')
                       / (max(value) FILTER (measure = 'fcm_income')
                          + max(value) FILTER (measure = 'own_permanent_income_ipp')) AS computed
            FROM staging.sinim_finance GROUP BY ALL
            """
        ).df()
    both = frame.dropna(subset=["published", "computed"])
    off = both[(both["published"] - both["computed"]).abs() > 0.006]
    return AssetCheckResult(
        passed=off.empty,
        metadata={
            "compared": len(both),
            "differing": MetadataValue.json(off.head(20).astype(str).to_dict("records")),
        },
    )


@asset_check(
    asset=finance_observations,
    description="Every year with an amount has a UF and a dollar rate, and the base year's UF exists.",
)
def finance_rates_cover_amounts(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.reader() as conn:
        missing = conn.execute(
            """
            SELECT DISTINCT a.year, i.indicator FROM core.finance_amounts a
            CROSS JOIN (VALUES ('uf'), ('dolar')) i(indicator)
            LEFT JOIN core.finance_annual_rates r ON r.year = a.year AND r.indicator = i.indicator
            WHERE r.rate IS NULL ORDER BY 1, 2
            """
        ).fetchall()
        base = conn.execute(
            "SELECT count(*) FROM core.finance_annual_rates WHERE indicator = 'uf' AND year = ?",
            [REAL_BASE_YEAR],
        ).fetchone()[0]
    return AssetCheckResult(
        passed=not missing and base == 1,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "years_without_rate": MetadataValue.json([f"{year} {indicator}" for year, indicator in missing]),
            "base_year": REAL_BASE_YEAR,
            "base_year_uf_present": bool(base),
        },
    )


# --- jobs, schedules, sensor ---------------------------------------------------------------------

sinim_job = refresh_job(
    "finance_sinim_refresh", [sinim_municipal_finance, finance_observations], "SINIM's municipal finance"
)
fx_job = refresh_job("finance_fx_refresh", [fx_rates, finance_observations], "the UF, dollar and UTM series")
budget_job = refresh_job(
    "finance_budget_refresh",
    [regional_budget, finance_observations],
    "Presupuesto Abierto's regional payments",
)
royalties_job = refresh_job(
    "finance_royalties_refresh",
    [royalty_allocations, finance_observations],
    "the curated royalty allocations (run when their file changes)",
)

# SINIM publishes yearly but revises and completes late municipalities: check monthly.
sinim_schedule = refresh_schedule(
    sinim_job, "0 5 2 * *", "finance_sinim_monthly", "SINIM revises and completes late municipalities"
)
fx_schedule = refresh_schedule(
    fx_job, "30 6 * * *", "finance_fx_daily", "the UF and the dollar change every day"
)
budget_schedule = refresh_schedule(
    budget_job, "0 5 3 * *", "finance_budget_monthly", "payments accrue month by month"
)


@sensor(
    job=royalties_job,
    minimum_interval_seconds=300,
    description="Reload the curated royalty files when their content changes.",
)
def royalty_curated_changed(context: SensorEvaluationContext):
    try:
        digest = curated_digest()
    except (EndpointError, OSError) as exc:
        return SkipReason(f"curated royalty files unreadable: {exc}")
    if context.cursor == digest:
        return SkipReason("curated royalty files unchanged")
    context.update_cursor(digest)
    return RunRequest(run_key=digest)


ASSETS = [royalty_allocations, sinim_municipal_finance, fx_rates, regional_budget, finance_observations]
CHECKS = [
    royalty_rows_cite_a_document,
    royalty_totals_reconcile,
    finance_codes_resolve,
    sinim_not_received_is_missing,
    sinim_fcm_dependence_consistent,
    finance_rates_cover_amounts,
]
JOBS = [sinim_job, fx_job, budget_job, royalties_job]
SCHEDULES = [sinim_schedule, fx_schedule, budget_schedule]
SENSORS = [royalty_curated_changed]
OBSERVATION_ASSETS = [finance_observations]

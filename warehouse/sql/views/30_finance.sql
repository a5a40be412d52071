-- Finance family views, created by pipelines/finance.py (finance_observations) after it writes
-- core.finance_amounts and core.finance_annual_rates.
--
-- marts.finance_amounts: every amount three ways, one row per basis:
--   nominal_clp  as published, converted to pesos where needed (M$ x 1000): `conversion` says how;
--   real_clp     pesos of the base year: nominal / UF(year) x UF(base year), each UF the mean of its
--                year's daily values (methods/currency.py); `rate` is the year's UF, `base_rate` the base's;
--   usd          nominal / the year's mean dólar observado (CLP per USD); `rate` is that mean.
-- A missing rate gives a NULL amount and a `conversion` that says which rate is missing, never a guess.
-- columns:
--   basis: nominal_clp, real_clp or usd
--   rate_date: the day or span the rate stands for
--   rate_observations: daily values the rate was computed from
--   base_rate: the base year's UF (real_clp only)
--   base_rate_date: the day or span the base rate stands for
--   amount: the amount in the row's basis
--   unit: unit of amount: 'CLP (nominal)', 'CLP of <base year> (real, UF-based)' or 'USD (nominal)'
CREATE OR REPLACE VIEW marts.finance_amounts AS
WITH uf AS (
    SELECT year, rate, rate_date, observations FROM core.finance_annual_rates WHERE indicator = 'uf'
),
usd AS (
    SELECT year, rate, rate_date, observations FROM core.finance_annual_rates WHERE indicator = 'dolar'
),
base AS (
    SELECT r.year, r.rate, r.rate_date
    FROM core.finance_annual_rates r
    WHERE r.indicator = 'uf' AND r.year = r.base_year
),
base_year AS (
    SELECT max(base_year) AS year FROM core.finance_annual_rates
)
SELECT a.source_id, a.measure, a.detail, a.territory_id, a.year,
       'nominal_clp' AS basis,
       a.amount_clp AS amount,
       'CLP (nominal)' AS unit,
       a.conversion,
       NULL::DOUBLE AS rate, NULL::VARCHAR AS rate_date, NULL::BIGINT AS rate_observations,
       NULL::DOUBLE AS base_rate, NULL::VARCHAR AS base_rate_date,
       a.published_value, a.published_unit, a.parts, a.document_title, a.document_url, a.snapshot_id
FROM core.finance_amounts a
UNION ALL
SELECT a.source_id, a.measure, a.detail, a.territory_id, a.year,
       'real_clp' AS basis,
       a.amount_clp / uf.rate * base.rate AS amount,
       'CLP of ' || coalesce(CAST(byr.year AS VARCHAR), '?') || ' (real, UF-based)' AS unit,
       CASE
           WHEN byr.year IS NULL THEN 'not converted: no UF series loaded'
           WHEN uf.rate IS NULL THEN 'not converted: no UF for ' || a.year
           WHEN base.rate IS NULL THEN 'not converted: no UF for the base year ' || byr.year
           ELSE a.conversion || '; then nominal CLP / UF annual mean ' || a.year
                || ' x UF annual mean ' || byr.year
       END AS conversion,
       uf.rate, uf.rate_date, uf.observations AS rate_observations,
       base.rate AS base_rate, base.rate_date AS base_rate_date,
       a.published_value, a.published_unit, a.parts, a.document_title, a.document_url, a.snapshot_id
FROM core.finance_amounts a
CROSS JOIN base_year byr
LEFT JOIN uf ON uf.year = a.year
LEFT JOIN base ON TRUE
UNION ALL
SELECT a.source_id, a.measure, a.detail, a.territory_id, a.year,
       'usd' AS basis,
       a.amount_clp / usd.rate AS amount,
       'USD (nominal)' AS unit,
       CASE
           WHEN usd.rate IS NULL THEN 'not converted: no dólar observado for ' || a.year
           ELSE a.conversion || '; then nominal CLP / mean dólar observado ' || a.year
       END AS conversion,
       usd.rate, usd.rate_date, usd.observations AS rate_observations,
       NULL::DOUBLE AS base_rate, NULL::VARCHAR AS base_rate_date,
       a.published_value, a.published_unit, a.parts, a.document_title, a.document_url, a.snapshot_id
FROM core.finance_amounts a
LEFT JOIN usd ON usd.year = a.year;

-- marts.municipal_finance: SINIM amounts by comuna (and complete region sums), three bases each.
-- columns:
--   basis: nominal_clp, real_clp or usd
--   rate_date: the day or span the rate stands for
--   rate_observations: daily values the rate was computed from
--   base_rate: the base year's UF (real_clp only)
--   base_rate_date: the day or span the base rate stands for
--   comunas_summed: comunas summed (a region total); 1 for a comuna
--   territory_name: official name of the territory
--   amount: the amount in the row's basis
--   unit: unit of amount, as in marts.finance_amounts
CREATE OR REPLACE VIEW marts.municipal_finance AS
SELECT f.measure, f.territory_id, t.name AS territory_name, f.year, f.basis, f.amount, f.unit,
       f.conversion, f.rate, f.rate_date, f.rate_observations, f.base_rate, f.base_rate_date,
       f.published_value, f.published_unit, f.parts AS comunas_summed, s.mode, f.snapshot_id
FROM marts.finance_amounts f
LEFT JOIN core.territories t ON t.territory_id = f.territory_id
LEFT JOIN core.snapshots s ON s.snapshot_id = f.snapshot_id
WHERE f.source_id = 'sinim';

-- marts.royalty_allocations: each curated allocation (fund, territory, year), three bases each, with
-- the document it was transcribed from.
-- columns:
--   basis: nominal_clp, real_clp or usd
--   rate_date: the day or span the rate stands for
--   rate_observations: daily values the rate was computed from
--   base_rate: the base year's UF (real_clp only)
--   base_rate_date: the day or span the base rate stands for
--   territory_name: official name of the territory
--   amount: the amount in the row's basis
--   unit: unit of amount, as in marts.finance_amounts
--   fund: Ley 21.591 fund of the allocation
CREATE OR REPLACE VIEW marts.royalty_allocations AS
SELECT f.detail AS fund, f.territory_id, t.name AS territory_name, f.year, f.basis, f.amount, f.unit,
       f.conversion, f.rate, f.rate_date, f.rate_observations, f.base_rate, f.base_rate_date,
       f.document_title, f.document_url, s.mode, f.snapshot_id
FROM marts.finance_amounts f
LEFT JOIN core.territories t ON t.territory_id = f.territory_id
LEFT JOIN core.snapshots s ON s.snapshot_id = f.snapshot_id
WHERE f.source_id = 'royalties_curated';

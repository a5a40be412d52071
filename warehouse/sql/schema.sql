-- The warehouse contract. Evaluators and other tools rely on these names: keep them stable.
-- Layers flow one way: raw (payloads as parsed) -> staging (typed, validated) -> core -> marts/lens.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS lens;

-- Who publishes each source, under which licence, and how often it is expected to change.
CREATE TABLE IF NOT EXISTS core.sources (
    source_id     VARCHAR PRIMARY KEY,
    family        VARCHAR NOT NULL,
    publisher     VARCHAR NOT NULL,
    title         VARCHAR NOT NULL,
    landing_url   VARCHAR NOT NULL,
    licence       VARCHAR NOT NULL,
    citation      VARCHAR NOT NULL,
    cadence_days  DOUBLE NOT NULL
);

-- One row per fetched payload that was accepted (parsed and validated).
CREATE TABLE IF NOT EXISTS core.snapshots (
    snapshot_id    VARCHAR PRIMARY KEY,
    source_id      VARCHAR NOT NULL,
    name           VARCHAR NOT NULL,
    request_url    VARCHAR NOT NULL,
    method         VARCHAR NOT NULL,
    retrieved_at   TIMESTAMP NOT NULL,
    sha256         VARCHAR NOT NULL,
    bytes          BIGINT NOT NULL,
    http_status    INTEGER,
    etag           VARCHAR,
    last_modified  VARCHAR,
    content_type   VARCHAR,
    mode           VARCHAR NOT NULL CHECK (mode IN ('live', 'curated', 'sample')),
    licence        VARCHAR,
    note           VARCHAR
);

-- The outcome of the newest attempt to refresh each source.
CREATE TABLE IF NOT EXISTS core.source_status (
    source_id         VARCHAR PRIMARY KEY,
    status            VARCHAR NOT NULL,  -- live | unchanged | stale | sample | curated | failed
    mode              VARCHAR,           -- mode of the data now served
    last_snapshot_id  VARCHAR,
    checked_at        TIMESTAMP NOT NULL,
    error             VARCHAR
);

-- Places: country, regions, provinces, comunas, basins, OECD areas, explicit unknowns.
CREATE TABLE IF NOT EXISTS core.territories (
    territory_id  VARCHAR PRIMARY KEY,   -- '<kind>:<code>', e.g. 'comuna:02201'
    kind          VARCHAR NOT NULL,
    code          VARCHAR NOT NULL,
    name          VARCHAR NOT NULL,
    parent_id     VARCHAR,
    area_km2      DOUBLE,
    geometry      GEOMETRY,             -- EPSG:4326
    snapshot_id   VARCHAR
);

-- Other codes and spellings of the same place: OECD TL2 'CL02', 'De Antofagasta', '2201'.
CREATE TABLE IF NOT EXISTS core.territory_aliases (
    territory_id  VARCHAR NOT NULL,
    scheme        VARCHAR NOT NULL,
    alias         VARCHAR NOT NULL,
    PRIMARY KEY (scheme, alias)
);

-- What each indicator is, how it is computed, and what it can be used to claim.
CREATE TABLE IF NOT EXISTS core.indicators (
    indicator_id  VARCHAR PRIMARY KEY,
    label         VARCHAR NOT NULL,
    unit          VARCHAR NOT NULL,
    theme         VARCHAR NOT NULL,
    lens_section  VARCHAR NOT NULL,
    definition    VARCHAR NOT NULL,
    method        VARCHAR NOT NULL,
    source_id     VARCHAR NOT NULL,
    claim_level   VARCHAR NOT NULL CHECK (claim_level IN ('contribution', 'attribution')),
    higher_is     VARCHAR            -- 'better', 'worse' or NULL when neither
);

-- The current value of every indicator, territory and period.
CREATE TABLE IF NOT EXISTS core.observations (
    indicator_id  VARCHAR NOT NULL,
    territory_id  VARCHAR NOT NULL,
    period        VARCHAR NOT NULL,     -- '2022', '2016-2020', '2022-03'
    value         DOUBLE,
    lower         DOUBLE,               -- interval bounds where the method gives them
    upper         DOUBLE,
    flag          VARCHAR,              -- e.g. 'provisional', 'few events'
    source_id     VARCHAR NOT NULL,
    snapshot_id   VARCHAR NOT NULL,
    PRIMARY KEY (indicator_id, territory_id, period)
);

-- Every value ever loaded, by snapshot: what `--as-of` rebuilds a lens from.
CREATE TABLE IF NOT EXISTS core.observation_history (
    indicator_id  VARCHAR NOT NULL,
    territory_id  VARCHAR NOT NULL,
    period        VARCHAR NOT NULL,
    value         DOUBLE,
    lower         DOUBLE,
    upper         DOUBLE,
    flag          VARCHAR,
    source_id     VARCHAR NOT NULL,
    snapshot_id   VARCHAR NOT NULL,
    retrieved_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (indicator_id, territory_id, period, snapshot_id)
);

-- The lineage of every current observation: each snapshot it was computed from, by role
-- (value, numerator, denominator, parts, conversion_rate, standard_population, boundary...).
-- Written with core.observations in the same transaction (warehouse.store.replace_observations);
-- an observation's mode is the weakest of its inputs' (marts.observation_lineage).
CREATE TABLE IF NOT EXISTS core.observation_inputs (
    indicator_id       VARCHAR NOT NULL,
    territory_id       VARCHAR NOT NULL,
    period             VARCHAR NOT NULL,
    source_id          VARCHAR NOT NULL,   -- the observation's source
    role               VARCHAR NOT NULL,
    input_snapshot_id  VARCHAR NOT NULL,
    input_source_id    VARCHAR,            -- the source that snapshot belongs to (core.snapshots)
    PRIMARY KEY (indicator_id, territory_id, period, role, input_snapshot_id)
);

-- The lineage of every value in core.observation_history (keyed by the value's snapshot), so
-- that `--as-of` rebuilds the inputs and modes of the values it selects.
CREATE TABLE IF NOT EXISTS core.observation_input_history (
    indicator_id       VARCHAR NOT NULL,
    territory_id       VARCHAR NOT NULL,
    period             VARCHAR NOT NULL,
    snapshot_id        VARCHAR NOT NULL,   -- the value's snapshot in core.observation_history
    source_id          VARCHAR NOT NULL,
    role               VARCHAR NOT NULL,
    input_snapshot_id  VARCHAR NOT NULL,
    input_source_id    VARCHAR,
    PRIMARY KEY (indicator_id, territory_id, period, snapshot_id, role, input_snapshot_id)
);

-- Curated inputs say how sure they are: 'unverified' (transcribed from a secondary source, not
-- checked against the primary document) makes the value curated-unverified; NULL otherwise.
ALTER TABLE core.observation_inputs ADD COLUMN IF NOT EXISTS verification VARCHAR;
ALTER TABLE core.observation_input_history ADD COLUMN IF NOT EXISTS verification VARCHAR;

-- The warehouse contract. Evaluators and other tools rely on these names: keep them stable.
-- Layers flow one way: raw (payloads as parsed) -> staging (typed, validated) -> core -> marts/lens.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS lens;

-- Who publishes each source, under which licence, and how often it is expected to change.
CREATE TABLE IF NOT EXISTS core.sources (
    source_id     VARCHAR PRIMARY KEY,   -- source id, as in sources/*.py and ops.yaml
    family        VARCHAR NOT NULL,      -- family of sources it belongs to (pipelines/families.yaml)
    publisher     VARCHAR NOT NULL,      -- who publishes the data
    title         VARCHAR NOT NULL,      -- the publisher's title of the dataset
    landing_url   VARCHAR NOT NULL,      -- the dataset's landing page
    licence       VARCHAR NOT NULL,      -- licence as stated by the publisher
    citation      VARCHAR NOT NULL,      -- how to cite the dataset
    cadence_days  DOUBLE NOT NULL        -- expected days between the publisher's updates
);

-- One row per fetched payload that was accepted (parsed and validated).
CREATE TABLE IF NOT EXISTS core.snapshots (
    snapshot_id    VARCHAR PRIMARY KEY,                          -- id of the accepted payload ('<source>-<UTC time>-<hash>')
    source_id      VARCHAR NOT NULL,                             -- source the payload belongs to (core.sources)
    name           VARCHAR NOT NULL,                             -- the payload's name within the source (file or request)
    request_url    VARCHAR NOT NULL,                             -- URL (or file) the payload was fetched from
    method         VARCHAR NOT NULL,                             -- HTTP method, or how the payload was obtained
    retrieved_at   TIMESTAMP NOT NULL,                           -- when it was retrieved (UTC)
    sha256         VARCHAR NOT NULL,                             -- SHA-256 of the payload's bytes
    bytes          BIGINT NOT NULL,                              -- size of the payload in bytes
    http_status    INTEGER,                                      -- HTTP status of the response, NULL when not fetched over HTTP
    etag           VARCHAR,                                      -- ETag of the response
    last_modified  VARCHAR,                                      -- Last-Modified of the response
    content_type   VARCHAR,                                      -- Content-Type of the response
    mode           VARCHAR NOT NULL CHECK (mode IN ('live', 'curated', 'sample')), -- live (fetched), curated (transcribed by us from a cited document) or sample (invented stand-in, never to be cited)
    licence        VARCHAR,                                      -- licence of the payload, when it differs from the source's
    note           VARCHAR                                       -- free note on the payload (why it is a sample, what was curated)
);

-- The outcome of the newest attempt to refresh each source.
CREATE TABLE IF NOT EXISTS core.source_status (
    source_id         VARCHAR PRIMARY KEY, -- source id (core.sources)
    status            VARCHAR NOT NULL,  -- outcome of the attempt (live | unchanged | stale | sample | curated | failed)
    mode              VARCHAR,           -- mode of the data now served
    last_snapshot_id  VARCHAR,           -- newest snapshot accepted by that attempt
    checked_at        TIMESTAMP NOT NULL, -- when the attempt ended (UTC)
    error             VARCHAR            -- why the source was not reached live, or failed; NULL when live
);

-- Places: country, regions, provinces, comunas, basins, OECD areas, explicit unknowns.
CREATE TABLE IF NOT EXISTS core.territories (
    territory_id  VARCHAR PRIMARY KEY,   -- territory id ('<kind>:<code>', e.g. 'comuna:02201')
    kind          VARCHAR NOT NULL,      -- country, region, province, comuna, basin, subbasin, subsubbasin, oecd_area, unknown
    code          VARCHAR NOT NULL,      -- official code within its kind ('02201', '021')
    name          VARCHAR NOT NULL,      -- official name
    parent_id     VARCHAR,               -- the enclosing territory (comuna -> province -> region -> country)
    area_km2      DOUBLE,                -- area in km2 (equal-area projection)
    geometry      GEOMETRY,             -- boundary polygon, EPSG:4326
    snapshot_id   VARCHAR                -- snapshot the boundary came from
);

-- Other codes and spellings of the same place: OECD TL2 'CL02', 'De Antofagasta', '2201'.
CREATE TABLE IF NOT EXISTS core.territory_aliases (
    territory_id  VARCHAR NOT NULL,      -- territory id (core.territories)
    scheme        VARCHAR NOT NULL,      -- coding scheme or spelling the alias belongs to (oecd_tl2, name, old code)
    alias         VARCHAR NOT NULL,      -- the other code or spelling
    PRIMARY KEY (scheme, alias)
);

-- What each indicator is, how it is computed, and what it can be used to claim.
CREATE TABLE IF NOT EXISTS core.indicators (
    indicator_id  VARCHAR PRIMARY KEY,   -- indicator id (warehouse/indicators/*.yaml)
    label         VARCHAR NOT NULL,      -- short label
    unit          VARCHAR NOT NULL,      -- unit of value, lower and upper
    theme         VARCHAR NOT NULL,      -- theme (economy, health, water, ...)
    lens_section  VARCHAR NOT NULL,      -- lens section it is shown in (governance, state_presence, structural_constraints)
    definition    VARCHAR NOT NULL,      -- what the indicator measures
    method        VARCHAR NOT NULL,      -- how it is computed from the source
    source_id     VARCHAR NOT NULL,      -- source it is computed from (core.sources)
    claim_level   VARCHAR NOT NULL CHECK (claim_level IN ('contribution', 'attribution')), -- contribution (a territorial condition) or attribution (a site's output)
    higher_is     VARCHAR            -- whether higher is 'better' or 'worse'; NULL when neither
);

-- The current value of every indicator, territory and period.
CREATE TABLE IF NOT EXISTS core.observations (
    indicator_id  VARCHAR NOT NULL,      -- indicator (core.indicators)
    territory_id  VARCHAR NOT NULL,      -- territory (core.territories)
    period        VARCHAR NOT NULL,     -- period of the value: '2022', '2016-2020', '2022-03'
    value         DOUBLE,                -- value in the indicator's unit
    lower         DOUBLE,               -- lower interval bound, where the method gives one
    upper         DOUBLE,               -- upper interval bound (NULL without an interval)
    flag          VARCHAR,              -- observation flag, e.g. 'provisional', 'few events'
    source_id     VARCHAR NOT NULL,      -- source of the value (core.sources)
    snapshot_id   VARCHAR NOT NULL,      -- snapshot the value was computed from (core.snapshots)
    PRIMARY KEY (indicator_id, territory_id, period)
);

-- Every value ever loaded, by snapshot: what `--as-of` rebuilds a lens from.
CREATE TABLE IF NOT EXISTS core.observation_history (
    indicator_id  VARCHAR NOT NULL,      -- indicator (core.indicators)
    territory_id  VARCHAR NOT NULL,      -- territory (core.territories)
    period        VARCHAR NOT NULL,      -- period of the value ('2022', '2016-2020', '2022-03')
    value         DOUBLE,                -- value in the indicator's unit
    lower         DOUBLE,                -- lower interval bound
    upper         DOUBLE,                -- upper interval bound
    flag          VARCHAR,               -- observation flag
    source_id     VARCHAR NOT NULL,      -- source of the value
    snapshot_id   VARCHAR NOT NULL,      -- snapshot the value was computed from
    retrieved_at  TIMESTAMP NOT NULL,    -- when that snapshot was retrieved (UTC)
    PRIMARY KEY (indicator_id, territory_id, period, snapshot_id)
);

-- The lineage of every current observation: each snapshot it was computed from, by role
-- (value, numerator, denominator, parts, conversion_rate, standard_population, boundary...).
-- Written with core.observations in the same transaction (warehouse.store.replace_observations);
-- an observation's mode is the weakest of its inputs' (marts.observation_lineage).
CREATE TABLE IF NOT EXISTS core.observation_inputs (
    indicator_id       VARCHAR NOT NULL, -- indicator of the observation (core.indicators)
    territory_id       VARCHAR NOT NULL, -- territory of the observation (core.territories)
    period             VARCHAR NOT NULL, -- period of the observation
    source_id          VARCHAR NOT NULL,   -- the observation's source
    role               VARCHAR NOT NULL, -- what the input is to the value: value, numerator, denominator, parts, conversion_rate, standard_population, boundary
    input_snapshot_id  VARCHAR NOT NULL, -- snapshot the value was computed from (core.snapshots)
    input_source_id    VARCHAR,            -- the source that snapshot belongs to (core.snapshots)
    verification       VARCHAR,            -- 'unverified': a curated input not checked against the primary document
    PRIMARY KEY (indicator_id, territory_id, period, role, input_snapshot_id)
);

-- The lineage of every value in core.observation_history (keyed by the value's snapshot), so
-- that `--as-of` rebuilds the inputs and modes of the values it selects.
CREATE TABLE IF NOT EXISTS core.observation_input_history (
    indicator_id       VARCHAR NOT NULL, -- indicator of the observation (core.indicators)
    territory_id       VARCHAR NOT NULL, -- territory of the observation (core.territories)
    period             VARCHAR NOT NULL, -- period of the observation
    snapshot_id        VARCHAR NOT NULL,   -- the value's snapshot in core.observation_history
    source_id          VARCHAR NOT NULL, -- the observation's source
    role               VARCHAR NOT NULL, -- what the input is to the value: value, numerator, denominator, parts, conversion_rate, standard_population, boundary
    input_snapshot_id  VARCHAR NOT NULL, -- snapshot the value was computed from (core.snapshots)
    input_source_id    VARCHAR, -- the source that snapshot belongs to (core.snapshots)
    verification       VARCHAR,            -- 'unverified': a curated input not checked against the primary document
    PRIMARY KEY (indicator_id, territory_id, period, snapshot_id, role, input_snapshot_id)
);

-- Curated inputs say how sure they are: 'unverified' (transcribed from a secondary source, not
-- checked against the primary document) makes the value curated-unverified; NULL otherwise.
ALTER TABLE core.observation_inputs ADD COLUMN IF NOT EXISTS verification VARCHAR; -- 'unverified' for a curated input not checked against the primary document, else NULL
ALTER TABLE core.observation_input_history ADD COLUMN IF NOT EXISTS verification VARCHAR; -- as in core.observation_inputs

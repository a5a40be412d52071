-- Informal settlements (family `settlements`, pipelines/settlements.py).
-- core.settlements is declared here, with the views over it, so the views bind even before
-- the family's first run; the `settlements` asset fills it (delete + insert, one transaction).

-- One row per settlement and catastro (2024 update, 2022 CNC), geometry in EPSG:4326.
CREATE TABLE IF NOT EXISTS core.settlements (
    settlement_id        VARCHAR NOT NULL,  -- '<catastro_year>-<folio>' ('-2' for a folio repeated in one file)
    catastro_year        INTEGER NOT NULL,
    name                 VARCHAR,
    comuna_code          VARCHAR NOT NULL,  -- 5-digit CUT as the catastro attributes it
    households           BIGINT,            -- N_HOG; 0 is a count, NULL is unknown
    hectares             DOUBLE,            -- as MINVU publishes it: planar Web Mercator area (inflated)
    hectares_geodesic    DOUBLE,            -- true ground area of the polygon; NULL without polygon
    catastro_origin      VARCHAR,           -- AN_CAT: catastro that first listed it
    source_flag          VARCHAR,           -- FUENTE: who reported it
    located_comuna_code  VARCHAR,           -- comuna polygon (core.territories) holding the polygon
    located_basin_code   VARCHAR,           -- basin polygon (core.territories) holding the polygon
    cut_mismatch         BOOLEAN,           -- attribute CUT differs from location; NULL = not checkable
    quality_flags        VARCHAR,           -- ';'-joined: geometry_missing, geometry_repaired, folio_repeated, folio_missing
    geometry             GEOMETRY,          -- EPSG:4326
    snapshot_id          VARCHAR NOT NULL,
    PRIMARY KEY (settlement_id)
);

-- Settlements, households and both areas per comuna (as attributed by the catastro) and
-- catastro year. Comunas of core.territories without settlements get a row of zeros for
-- every catastro year loaded: a catastro is national, so absence means none were counted.
-- columns:
--   settlements: settlements the catastro attributes to the comuna
--   settlements_without_households: of them, without a household count
--   area_ha_published: area as the catastro publishes it, hectares
--   area_ha_geodesic: area of the polygons measured on the ellipsoid, hectares
--   settlements_without_polygon: of them, without a polygon
--   settlements_located_elsewhere: of them, whose polygon lies in another comuna
--   settlements_not_located: of them, whose polygon could not be placed in a comuna
--   comuna_name: official name of the comuna
CREATE OR REPLACE VIEW marts.settlements_by_comuna AS
WITH years AS (
    SELECT DISTINCT catastro_year FROM core.settlements
),
comunas AS (
    SELECT code AS comuna_code, name AS comuna_name FROM core.territories WHERE kind = 'comuna'
    UNION
    SELECT DISTINCT comuna_code, NULL FROM core.settlements
    WHERE comuna_code NOT IN (SELECT code FROM core.territories WHERE kind = 'comuna')
),
totals AS (
    SELECT comuna_code, catastro_year,
           count(*) AS settlements,
           sum(households) AS households,
           count(*) FILTER (WHERE households IS NULL) AS settlements_without_households,
           sum(hectares) AS area_ha_published,
           sum(hectares_geodesic) AS area_ha_geodesic,
           count(*) FILTER (WHERE geometry IS NULL) AS settlements_without_polygon,
           count(*) FILTER (WHERE cut_mismatch) AS settlements_located_elsewhere,
           count(*) FILTER (WHERE cut_mismatch IS NULL) AS settlements_not_located
    FROM core.settlements
    GROUP BY ALL
)
SELECT c.comuna_code, c.comuna_name, left(c.comuna_code, 2) AS region_code, y.catastro_year,
       coalesce(t.settlements, 0) AS settlements,
       -- sums stay NULL where settlements exist but none has the figure; zero where none exist
       if(t.settlements IS NULL, 0, t.households) AS households,
       coalesce(t.settlements_without_households, 0) AS settlements_without_households,
       if(t.settlements IS NULL, 0, t.area_ha_published) AS area_ha_published,
       if(t.settlements IS NULL, 0, t.area_ha_geodesic) AS area_ha_geodesic,
       coalesce(t.settlements_without_polygon, 0) AS settlements_without_polygon,
       coalesce(t.settlements_located_elsewhere, 0) AS settlements_located_elsewhere,
       coalesce(t.settlements_not_located, 0) AS settlements_not_located
FROM comunas c CROSS JOIN years y
LEFT JOIN totals t ON t.comuna_code = c.comuna_code AND t.catastro_year = y.catastro_year;

-- A map layer for the lens: settlement polygons and comuna polygons as GeoJSON text
-- (EPSG:4326). Filter on region_code or comuna_code; `layer` says which is which.
-- columns:
--   layer: settlement or comuna
--   feature_id: the settlement id or the comuna's territory id
--   geojson: the polygon as GeoJSON text, EPSG:4326
--   name: name of the settlement or of the comuna
CREATE OR REPLACE VIEW marts.settlement_map AS
SELECT 'settlement' AS layer, s.settlement_id AS feature_id, s.catastro_year, s.name,
       s.comuna_code, left(s.comuna_code, 2) AS region_code, s.households, s.hectares,
       s.hectares_geodesic, s.cut_mismatch, s.quality_flags,
       ST_AsGeoJSON(s.geometry)::VARCHAR AS geojson
FROM core.settlements s
WHERE s.geometry IS NOT NULL
UNION ALL
SELECT 'comuna', t.territory_id, NULL, t.name, t.code, left(t.code, 2), NULL, NULL, NULL, NULL, NULL,
       ST_AsGeoJSON(t.geometry)::VARCHAR
FROM core.territories t
WHERE t.kind = 'comuna' AND t.geometry IS NOT NULL;

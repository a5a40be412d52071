-- Territories family (pipelines/territories.py): lineage, the comuna × basin crosswalk and a
-- point lookup. core.territory_overlap_areas is declared here, with the views over it, so the
-- views bind even before the family's first run; the `territories` asset fills it.

-- Area overlap of every comuna with every basin (and sub-basin, sub-sub-basin) polygon,
-- computed in the equal-area projection of sources/geometry.py. Pairs that do not overlap
-- are absent.
CREATE TABLE IF NOT EXISTS core.territory_overlap_areas (
    comuna_id        VARCHAR NOT NULL,   -- 'comuna:02201'
    basin_id         VARCHAR NOT NULL,   -- 'basin:021', 'subbasin:0211', 'subsubbasin:02110'
    basin_kind       VARCHAR NOT NULL,   -- basin | subbasin | subsubbasin
    overlap_km2      DOUBLE NOT NULL,    -- area shared by the comuna and the basin polygon, km2
    share_of_comuna  DOUBLE NOT NULL,    -- overlap / comuna area
    share_of_basin   DOUBLE NOT NULL,    -- overlap / basin area
    PRIMARY KEY (comuna_id, basin_id)
);

-- The crosswalk with population weights. population_share is the comuna part's share of the
-- basin's population, assuming people are spread evenly over each comuna:
--   population(comuna) * share_of_comuna / sum over the basin's comunas of the same.
-- Population is the indicator 'population' of core.observations (loaded by the health
-- family), for the latest year that is not in the future. It is NULL for every comuna of a
-- basin when any of them lacks that year's population, and NULL everywhere until loaded.
-- columns:
--   overlap_km2: area shared by the comuna and the basin polygon, km2
--   population_in_overlap: comuna population x share_of_comuna (people assumed spread evenly)
--   population_share: the comuna part's share of the basin's population (NULL when any comuna lacks it)
--   population_period: year of the population used
CREATE OR REPLACE VIEW core.territory_overlaps AS
WITH population_year AS (
    SELECT max(period) AS period
    FROM core.observations
    WHERE indicator_id = 'population' AND territory_id LIKE 'comuna:%'
      AND regexp_full_match(period, '[0-9]{4}') AND period <= strftime(current_date, '%Y')
),
population AS (
    SELECT o.territory_id, o.period, o.value
    FROM core.observations o JOIN population_year y ON o.period = y.period
    WHERE o.indicator_id = 'population'
),
weighted AS (
    SELECT a.*, p.period AS population_period, p.value * a.share_of_comuna AS population_in_overlap
    FROM core.territory_overlap_areas a
    LEFT JOIN population p ON p.territory_id = a.comuna_id
)
SELECT comuna_id, basin_id, basin_kind, overlap_km2, share_of_comuna, share_of_basin,
       population_in_overlap,
       CASE WHEN count(population_in_overlap) OVER basin = count(*) OVER basin
                 AND sum(population_in_overlap) OVER basin > 0
            THEN population_in_overlap / sum(population_in_overlap) OVER basin
       END AS population_share,
       population_period
FROM weighted
WINDOW basin AS (PARTITION BY basin_id);

-- Every territory with its enclosing territories. A territory is its own province/region/...
-- when it is of that kind, so `region_id` answers "which region" for a region too.
-- `ancestors` lists the parents nearest first; `path` reads from the top down.
-- columns:
--   country_id: the enclosing country
--   province_id: the enclosing province (the territory itself for a province)
--   subbasin_id: the enclosing sub-basin (the territory itself for a sub-basin)
--   ancestors: enclosing territory ids, nearest first
--   path: names from the top down, joined by ' > '
--   name: official name of the territory
--   region_id: the enclosing region (the territory itself for a region)
--   region_name: name of that region
CREATE OR REPLACE VIEW marts.territory_lineage AS
WITH RECURSIVE chain(territory_id, ancestor_id, depth) AS (
    SELECT territory_id, territory_id, 0 FROM core.territories
    UNION ALL
    SELECT c.territory_id, t.parent_id, c.depth + 1
    FROM chain c JOIN core.territories t ON t.territory_id = c.ancestor_id
    WHERE t.parent_id IS NOT NULL AND c.depth < 8
)
SELECT t.territory_id, t.kind, t.code, t.name, t.parent_id,
       max(a.territory_id) FILTER (WHERE a.kind = 'comuna') AS comuna_id,
       max(a.territory_id) FILTER (WHERE a.kind = 'province') AS province_id,
       max(a.territory_id) FILTER (WHERE a.kind = 'region') AS region_id,
       max(a.name) FILTER (WHERE a.kind = 'region') AS region_name,
       max(a.territory_id) FILTER (WHERE a.kind = 'country') AS country_id,
       max(a.territory_id) FILTER (WHERE a.kind = 'basin') AS basin_id,
       max(a.territory_id) FILTER (WHERE a.kind = 'subbasin') AS subbasin_id,
       coalesce(list(c.ancestor_id ORDER BY c.depth) FILTER (WHERE c.depth > 0), []) AS ancestors,
       string_agg(a.name, ' > ' ORDER BY c.depth DESC) AS path
FROM core.territories t
JOIN chain c ON c.territory_id = t.territory_id
JOIN core.territories a ON a.territory_id = c.ancestor_id
GROUP BY t.territory_id, t.kind, t.code, t.name, t.parent_id;

-- The comunas of each basin polygon, largest part of the basin first.
-- columns:
--   basin_area_km2: area of the basin polygon, km2
--   comuna_area_km2: area of the comuna, km2
--   province_id: province of the comuna
--   overlap_km2: area shared by the comuna and the basin polygon, km2
--   population_in_overlap: comuna population x share_of_comuna (people assumed spread evenly)
--   population_share: the comuna part's share of the basin's population
--   population_period: year of the population used
--   comuna_name: official name of the comuna
--   region_id: region of the comuna
--   basin_name: official name of the basin polygon
CREATE OR REPLACE VIEW marts.basin_comunas AS
SELECT o.basin_id, b.kind AS basin_kind, b.name AS basin_name, b.area_km2 AS basin_area_km2,
       o.comuna_id, c.name AS comuna_name, l.province_id, l.region_id, c.area_km2 AS comuna_area_km2,
       o.overlap_km2, o.share_of_comuna, o.share_of_basin,
       o.population_in_overlap, o.population_share, o.population_period
FROM core.territory_overlaps o
JOIN core.territories b ON b.territory_id = o.basin_id
JOIN core.territories c ON c.territory_id = o.comuna_id
LEFT JOIN marts.territory_lineage l ON l.territory_id = o.comuna_id
ORDER BY o.basin_id, o.share_of_basin DESC, o.comuna_id;

-- Every territory polygon holding a WGS84 point: SELECT * FROM marts.locate(-68.926, -22.456).
-- A point on a shared border belongs to both sides (ST_Intersects, not ST_Contains).
CREATE OR REPLACE MACRO marts.locate(lon, lat) AS TABLE
SELECT t.territory_id, t.kind, t.code, t.name, t.parent_id
FROM core.territories t
WHERE t.geometry IS NOT NULL AND ST_Intersects(t.geometry, ST_Point(lon, lat))
ORDER BY t.kind, t.territory_id;

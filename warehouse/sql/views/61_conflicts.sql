-- Socio-environmental conflicts (family `conflicts`, pipelines/conflicts.py). Run by the
-- `indh_conflict_observations` asset once staging.socioenvironmental_conflicts exists.

-- One row per conflict of the INDH map: title, start year, status, sector, link, where its map point
-- lies (comuna, basin) and the region it is counted in; the list and map layer of the lens.
-- columns:
--   conflict_id: INDH conflict id
--   indigenous_territory: esTerritorioIndigena
--   latitude: DOUBLE
--   location_flag: no map point, or a point outside Chile (then not located)
--   location_kind: point, polygon or none
--   longitude: map point, or the representative point of the map polygon
--   placed_region_code: region counted: the located comuna's, else the stated one
--   region_mismatch: the point lies in another region than the one stated; NULL when not checkable
--   regions_stated: every region the record states, comma-separated
--   sector: sectorProductivo (Energía, Minería, ...)
--   start_year: anyo, the year the conflict started
--   url: the conflict's page on the INDH map
--   comuna_name: official name of the comuna holding the map point
--   geometry: the conflict's map point, EPSG:4326 (NULL when flagged)
--   source_id: source of the row (indh_conflicts)
CREATE OR REPLACE VIEW marts.socioenvironmental_conflicts AS
SELECT c.conflict_id, c.title, c.start_year, c.status, c.sector, c.indigenous_territory, c.url,
       c.placed_region_code, c.regions_stated, c.located_comuna_code, t.name AS comuna_name,
       c.located_basin_code, c.region_mismatch, c.location_kind, c.location_flag, c.longitude, c.latitude,
       CASE WHEN c.longitude IS NOT NULL AND c.location_flag IS NULL
            THEN ST_Point(c.longitude, c.latitude) END AS geometry,
       c.snapshot_id, s.mode, 'indh_conflicts' AS source_id
FROM staging.socioenvironmental_conflicts c
LEFT JOIN core.territories t ON t.kind = 'comuna' AND t.code = c.located_comuna_code
LEFT JOIN core.snapshots s ON s.snapshot_id = c.snapshot_id;

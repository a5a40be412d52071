-- Health facilities (family `facilities`, pipelines/facilities.py). Run by the
-- `deis_facility_observations` asset once staging.health_facilities and staging.public_beds exist.

-- One row per establishment in force, with its public beds (NULL: none in the public-beds sheet),
-- its point (NULL while DEIS has not geocoded it) and whether the point lies in the comuna it
-- states: the map layer of state presence. Points are never moved.
-- columns:
--   care_level: primary, secondary, tertiary, not_applicable, pending or NULL
--   comuna_mismatch: the point lies outside the comuna stated; NULL when not checkable
--   coordinate_flag: coordinates pending, or outside Chile (then not used)
--   dependency: Dependencia as published
--   establishment_code: DEIS Código Nuevo
--   facility_type: Tipo Establecimiento
--   high_complexity: a high-complexity (alta complejidad) hospital or institute
--   latitude: WGS84 degrees; NULL when pending
--   longitude: WGS84 degrees; NULL when DEIS has not geocoded it (Pendiente)
--   provision: public, private, other (armed forces, universities, mutuals) or unknown
--   version: release date of the workbook (YYYY-MM-DD)
--   comuna_name: official name of the stated comuna
--   public_beds: beds of the establishment in the public-beds sheet (NULL: not listed there)
--   geometry: the establishment's point, EPSG:4326 (NULL when not geocoded or flagged)
CREATE OR REPLACE VIEW marts.health_facilities AS
SELECT f.establishment_code, f.name, f.territory_id, f.comuna_code, t.name AS comuna_name, f.region_code,
       f.facility_type, f.dependency, f.provision, f.care_level, f.high_complexity, b.beds AS public_beds,
       f.longitude, f.latitude,
       CASE WHEN f.longitude IS NOT NULL AND f.coordinate_flag IS NULL
            THEN ST_Point(f.longitude, f.latitude) END AS geometry,
       f.coordinate_flag, f.located_comuna_code, f.comuna_mismatch, f.version, f.snapshot_id, s.mode
FROM staging.health_facilities f
LEFT JOIN staging.public_beds b ON b.matched_code = f.establishment_code
LEFT JOIN core.territories t ON t.territory_id = f.territory_id
LEFT JOIN core.snapshots s ON s.snapshot_id = f.snapshot_id;

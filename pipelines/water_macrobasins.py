"""The CAMELS-CL macro-basin source: annual observed outlet flows, validated, as observations of the
basin whose polygon contains each outlet gauge.
"""

import numpy as np
import pandas as pd

from pipelines.ingest import validate_frame
from pipelines.water_streamflow import SAMPLE_DIR
from pipelines.water_tables import MACROBASIN_SCHEMA
from sources import camels_cl
from sources.base import Payload, ValidationError
from warehouse import store

MACROBASIN_SOURCE = camels_cl.MACROBASIN_SOURCE
MACROBASIN_SAMPLE = SAMPLE_DIR / "camelscl_macrobasins_yr_SAMPLE.csv"

# The basin polygon containing each gauge's catalogued location (smallest wins, as in pipelines.water.GAUGES_SQL).
MACROBASIN_PLACEMENT_SQL = """
SELECT g.gauge_code, b.territory_id AS basin_id
FROM core.gauges g
JOIN core.territories b
  ON b.kind = 'basin' AND b.geometry IS NOT NULL AND ST_Contains(b.geometry, ST_Point(g.lon, g.lat))
WHERE g.gauge_code IN (SELECT unnest(?)) AND g.lat IS NOT NULL AND g.lon IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY g.gauge_code ORDER BY ST_Area(b.geometry)) = 1
"""


def macrobasin_frame(payload: Payload) -> pd.DataFrame:
    """Parsed and pandera-validated rows of one payload (a ParseError/ValidationError refuses it)."""
    frame = camels_cl.parse_macrobasin_annual(payload.content, payload.snapshot_id)
    frame = frame.astype({"area_km2": float, "qobs_m3s": float, "qsim_m3s": float, "year": int})
    frame["snapshot_id"] = payload.snapshot_id
    frame = validate_frame(MACROBASIN_SCHEMA, frame, MACROBASIN_SOURCE.id, payload.snapshot_id)
    observed = frame[frame["qobs_m3s"].notna()]
    disagree = observed.groupby(["gauge_code", "year"])["qobs_m3s"].nunique()
    if (disagree > 1).any():
        raise ValidationError(
            MACROBASIN_SOURCE.id,
            f"observed flow differs between experiments for {disagree[disagree > 1].index.tolist()[:10]}",
            payload.snapshot_id,
        )
    return frame


def macrobasin_observations(frame: pd.DataFrame, placed: dict[str, str]) -> pd.DataFrame:
    """One observation per placed gauge and year with an observed flow; NA years are left out."""
    observed = frame[frame["qobs_m3s"].notna() & frame["gauge_code"].isin(placed)]
    observed = observed.drop_duplicates(["gauge_code", "year"])
    out = pd.DataFrame(
        {
            "indicator_id": "water_outlet_annual_flow_observed",
            "territory_id": observed["gauge_code"].map(placed),
            "period": observed["year"].astype(str),
            "value": observed["qobs_m3s"].astype(float),
            "lower": np.nan,
            "upper": np.nan,
            "flag": "gauge " + observed["gauge_code"] + " " + observed["gauge_name"],
            "source_id": MACROBASIN_SOURCE.id,
            "snapshot_id": observed["snapshot_id"],
        }
    )
    return out[list(store.OBSERVATION_COLUMNS)].reset_index(drop=True)

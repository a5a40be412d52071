"""Lens tables: a study's indicators with comparisons, trends and provenance, rebuilt from the warehouse.

For a study prefix `p`, `build_lens_tables` replaces, in one transaction:

- `lens.p_indicators`: one row per indicator × territory × period for every focus,
  comparison and peer territory, with the value (and interval), the reference comparison
  (Chile for comunas and regions, the median of the peer basins for basins), ratio and
  difference, a least-squares trend over the territory's yearly series, and provenance
  (source, snapshot, retrieval time, licence, mode) with freshness against the source's cadence;
- `lens.p_comparisons`: every focus value against every comparison target (Chile, the OECD,
  the peer-basin median), so "region vs Chile and the OECD" is one query;
- `lens.p_territories`, `lens.p_sites`: what the study covers and where its sites fell;
- `lens.p_sources`: every source with licence, vintage, snapshots used and freshness;
- `lens.p_gaps`: what is missing, stale or sample, with its facts and in words (warehouse.gaps);
- `lens.p_manifest`: as-of date, reference date and the content hash of the tables above.

With an as-of date only snapshots retrieved by the end of that day count (values come from
core.observation_history); without one, the current core.observations. Rows are sorted
and floats rounded before hashing, so the same warehouse and date give the same hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pandas as pd

from warehouse.db import table_name
from warehouse.gaps import gap_rows
from warehouse.lens_tables import (
    COMPARISON_COLUMNS,
    INDICATOR_COLUMNS,
    MANIFEST_COLUMNS,
    SOURCE_COLUMNS,
    comment_lens_table,
)
from warehouse.registry import LENS_SECTIONS
from warehouse.store import replace_table

PEERS = "peers:basin"
PEERS_NAME = "peer basins (median)"
SECTION_ORDER = list(LENS_SECTIONS)
ROLE_ORDER = {"focus": 0, "comparison": 1, "peer": 2}
KIND_ORDER = {"country": 0, "oecd_area": 1, "oecd": 1, "region": 2, "province": 3, "comuna": 4, "basin": 5}
MODE_WEAKNESS = {"sample": 0, "stale": 1, "curated-unverified": 2, "curated": 3, "live": 4}
HASHED_TABLES = ("indicators", "comparisons", "territories", "sites", "sources", "gaps")
MIN_TREND_POINTS = 3
_YEAR = re.compile(r"^(\d{4})$")
_YEAR_SPAN = re.compile(r"^(\d{4})-(\d{4})$")
_YEAR_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_MONTHS_FROM = re.compile(r"^(\d{4})-(\d{2})/P(\d+)M$")  # ISO 8601 start/duration: '2024-07/P6M'


@dataclass(frozen=True)
class LensScope:
    """What a lens covers, already resolved against the warehouse (sites placed, regions derived).

    `territories` has columns territory_id, role (focus | comparison | peer) and origin.
    `references` maps each focus territory to the id it is compared with by default
    (a territory id or PEERS). `periods` maps a theme to its years of interest.
    """

    prefix: str
    territories: pd.DataFrame
    references: dict[str, str]
    comparisons: list[str]
    periods: dict[str, tuple[int, int]] = field(default_factory=dict)
    sites: pd.DataFrame = field(default_factory=pd.DataFrame)
    as_of: date | None = None
    notes: list[tuple[str, str, dict]] = field(default_factory=list)  # extra gaps: (kind, subject, facts)

    @property
    def reference_date(self) -> date:
        """The date freshness is measured at: the as-of date, else today (UTC)."""
        return self.as_of or datetime.now(UTC).date()


@dataclass
class Lens:
    prefix: str
    tables: dict[str, pd.DataFrame]
    content_hash: str
    as_of: date | None
    reference_date: date

    @property
    def indicators(self) -> pd.DataFrame:
        return self.tables["indicators"]


OBSERVATIONS_LATEST = """
SELECT o.indicator_id, o.territory_id, o.period, o.value, o.lower, o.upper, o.flag, o.source_id, o.snapshot_id
FROM core.observations o
WHERE o.territory_id IN (SELECT unnest(?::VARCHAR[]))
"""

OBSERVATIONS_AS_OF = """
SELECT h.indicator_id, h.territory_id, h.period, h.value, h.lower, h.upper, h.flag, h.source_id, h.snapshot_id
FROM core.observation_history h
WHERE h.territory_id IN (SELECT unnest(?::VARCHAR[])) AND h.retrieved_at <= ?::TIMESTAMP
QUALIFY row_number() OVER (
    PARTITION BY h.indicator_id, h.territory_id, h.period ORDER BY h.retrieved_at DESC, h.snapshot_id DESC) = 1
"""

DESCRIBE_SQL = """
SELECT o.*, coalesce(i.lens_section, 'unregistered') AS section, coalesce(i.theme, '') AS theme,
       coalesce(i.label, o.indicator_id) AS label, coalesce(i.unit, '') AS unit,
       coalesce(i.definition, '') AS definition, coalesce(i.claim_level, 'contribution') AS claim_level,
       i.higher_is, t.name AS territory_name, t.kind AS territory_kind,
       src.title AS source_title, src.landing_url AS source_url,
       coalesce(sn.licence, src.licence) AS licence, src.cadence_days,
       sn.retrieved_at, coalesce(li.mode, sn.mode) AS mode, coalesce(li.own_mode, sn.mode) AS source_mode,
       li.inputs
FROM o
LEFT JOIN core.indicators i USING (indicator_id)
LEFT JOIN core.territories t USING (territory_id)
LEFT JOIN core.sources src ON src.source_id = o.source_id
LEFT JOIN core.snapshots sn ON sn.snapshot_id = o.snapshot_id
"""
# The mode of a value is the weakest of its inputs (marts.observation_lineage*, warehouse/sql/views/90_lens.sql).
DESCRIBE_LATEST = (
    "WITH o AS ("
    + OBSERVATIONS_LATEST
    + ")"
    + DESCRIBE_SQL
    + "LEFT JOIN marts.observation_lineage li ON li.indicator_id = o.indicator_id "
    + "AND li.territory_id = o.territory_id AND li.period = o.period"
)
DESCRIBE_AS_OF = (
    "WITH o AS ("
    + OBSERVATIONS_AS_OF
    + ")"
    + DESCRIBE_SQL
    + "LEFT JOIN marts.observation_lineage_history li ON li.indicator_id = o.indicator_id "
    + "AND li.territory_id = o.territory_id AND li.period = o.period AND li.snapshot_id = o.snapshot_id"
)

SOURCES_SQL = """
WITH newest AS (
    SELECT source_id, arg_max(snapshot_id, retrieved_at) AS newest_snapshot, max(retrieved_at) AS newest_at,
           arg_max(mode, retrieved_at) AS newest_mode
    FROM core.snapshots WHERE retrieved_at <= ?::TIMESTAMP GROUP BY source_id
)
SELECT src.source_id, src.family, src.publisher, src.title, src.landing_url, src.licence, src.citation,
       src.cadence_days, n.newest_snapshot, n.newest_at, n.newest_mode, st.status, st.error
FROM core.sources src
LEFT JOIN newest n USING (source_id)
LEFT JOIN core.source_status st USING (source_id)
ORDER BY src.source_id
"""


def period_years(period: str) -> tuple[int, int] | None:
    """First and last year a period covers ('2022', '2016-2020', '2022-03', '2024-11/P3M'), or None."""
    text = str(period)
    if m := _YEAR.match(text):
        return int(m[1]), int(m[1])
    if m := _YEAR_SPAN.match(text):
        return int(m[1]), int(m[2])
    if m := _YEAR_MONTH.match(text):
        return int(m[1]), int(m[1])
    if m := _MONTHS_FROM.match(text):
        last_month = int(m[2]) - 1 + int(m[3]) - 1
        return int(m[1]), int(m[1]) + last_month // 12
    return None


def _in_period(period: str, window: tuple[int, int] | None) -> bool:
    years = period_years(period)
    if window is None or years is None:
        return True
    return years[0] <= window[1] and years[1] >= window[0]


def _cutoff(as_of: date | None) -> datetime:
    return datetime.combine(as_of, datetime.max.time()) if as_of else datetime(9999, 12, 31)


def _observations(conn: duckdb.DuckDBPyConnection, scope: LensScope) -> pd.DataFrame:
    ids = sorted(scope.territories["territory_id"].unique().tolist())
    if scope.as_of:
        frame = conn.execute(DESCRIBE_AS_OF, [ids, _cutoff(scope.as_of)]).df()
    else:
        frame = conn.execute(DESCRIBE_LATEST, [ids]).df()
    return frame.sort_values(["indicator_id", "territory_id", "period"], ignore_index=True)


def _freshness(mode, retrieved_at, cadence_days, reference: date) -> tuple[float | None, str]:
    if retrieved_at is None or pd.isna(retrieved_at):
        return None, "unknown"
    age = float((pd.Timestamp(reference) - pd.Timestamp(retrieved_at).normalize()).days)
    if mode in ("sample", "curated", "curated-unverified"):
        return age, str(mode)
    if cadence_days is None or pd.isna(cadence_days):
        return age, "unknown"
    return age, "fresh" if age <= float(cadence_days) else "stale"


def _trends(rows: pd.DataFrame) -> pd.DataFrame:
    """Ordinary least squares of value on year, per indicator × territory, over ≥3 in-period years.

    Computed on centred years in a fixed order, so the result does not depend on row order.
    """
    yearly = rows[rows["period"].astype(str).str.fullmatch(r"\d{4}") & rows["in_study_period"]]
    yearly = yearly[yearly["value"].notna()].sort_values(["indicator_id", "territory_id", "period"])
    records = []
    for (indicator, territory), group in yearly.groupby(["indicator_id", "territory_id"], sort=True):
        if len(group) < MIN_TREND_POINTS:
            continue
        years = group["period"].astype(int).to_numpy(dtype=float)
        values = group["value"].to_numpy(dtype=float)
        centred = years - years.mean()
        slope = float((centred * (values - values.mean())).sum() / (centred**2).sum())
        intercept = float(values.mean() - slope * years.mean())
        records.append(
            (indicator, territory, slope, intercept, len(group), int(years.min()), int(years.max()))
        )
    return pd.DataFrame(
        records,
        columns=[
            "indicator_id",
            "territory_id",
            "trend_per_year",
            "trend_intercept",
            "trend_points",
            "trend_first_year",
            "trend_last_year",
        ],
    )


def _comparison_targets(rows: pd.DataFrame, scope: LensScope) -> pd.DataFrame:
    """The value of every comparison target per indicator × period, peers summarized by their median."""
    targets = rows[rows["territory_id"].isin(scope.comparisons)][
        ["indicator_id", "period", "territory_id", "territory_name", "value"]
    ].rename(columns={"territory_id": "compared_with", "territory_name": "compared_with_name"})
    targets = targets.assign(comparison_count=1).rename(columns={"value": "comparison_value"})
    peers = rows[(rows["role"] == "peer") & rows["value"].notna()]
    peer_median = (
        peers.groupby(["indicator_id", "period"], as_index=False)
        .agg(comparison_value=("value", "median"), comparison_count=("value", "size"))
        .assign(compared_with=PEERS, compared_with_name=PEERS_NAME)
    )
    frame = pd.concat([targets, peer_median], ignore_index=True)
    frame["compared_with_name"] = frame["compared_with_name"].fillna(frame["compared_with"])
    return frame


def _ratio(value: pd.Series, reference: pd.Series) -> pd.Series:
    safe = reference.where(reference != 0)
    return value / safe


def _comparisons(rows: pd.DataFrame, targets: pd.DataFrame, scope: LensScope) -> pd.DataFrame:
    focus = rows[rows["role"] == "focus"][
        ["indicator_id", "territory_id", "territory_kind", "period", "value"]
    ]
    merged = focus.merge(targets, on=["indicator_id", "period"], how="inner")
    is_basin = merged["territory_kind"].eq("basin") | merged["territory_id"].str.startswith("basin:")
    # Basins are compared with peer basins only; administrative areas with the comparison territories.
    keep = (merged["compared_with"] == PEERS) == is_basin
    merged = merged[keep & (merged["territory_id"] != merged["compared_with"])].copy()
    merged["ratio"] = _ratio(merged["value"], merged["comparison_value"])
    merged["difference"] = merged["value"] - merged["comparison_value"]
    merged["is_reference"] = pd.Series(
        [
            scope.references.get(t) == c
            for t, c in zip(merged["territory_id"], merged["compared_with"], strict=True)
        ],
        index=merged.index,
        dtype=bool,
    )
    merged = merged.drop(columns=["territory_kind"])
    merged = merged.sort_values(
        ["indicator_id", "territory_id", "period", "compared_with"], ignore_index=True
    )
    return merged[list(COMPARISON_COLUMNS)]


def indicator_rows(conn: duckdb.DuckDBPyConnection, scope: LensScope) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lens indicator rows, all comparisons) for the scope, deterministic for a given warehouse."""
    rows = _observations(conn, scope)
    roles = scope.territories.copy()
    roles["order"] = roles["role"].map(ROLE_ORDER)
    roles = roles.sort_values(["territory_id", "order"]).drop_duplicates("territory_id")
    rows = rows.merge(roles[["territory_id", "role", "origin"]], on="territory_id", how="inner")
    rows["territory_name"] = rows["territory_name"].fillna(rows["territory_id"])
    rows["territory_kind"] = rows["territory_kind"].fillna(rows["territory_id"].str.split(":").str[0])
    rows["in_study_period"] = [
        _in_period(p, scope.periods.get(theme))
        for p, theme in zip(rows["period"], rows["theme"], strict=True)
    ]
    fresh = [
        _freshness(m, r, c, scope.reference_date)
        for m, r, c in zip(rows["mode"], rows["retrieved_at"], rows["cadence_days"], strict=True)
    ]
    rows["age_days"] = [f[0] for f in fresh]
    rows["freshness"] = [f[1] for f in fresh]
    targets = _comparison_targets(rows, scope)
    comparisons = _comparisons(rows, targets, scope)
    reference = comparisons.loc[comparisons["is_reference"].astype(bool)][
        ["indicator_id", "territory_id", "period", "compared_with", "compared_with_name"]
        + ["comparison_value", "comparison_count", "ratio", "difference"]
    ]
    rows = rows.merge(reference, on=["indicator_id", "territory_id", "period"], how="left")
    rows = rows.merge(_trends(rows), on=["indicator_id", "territory_id"], how="left")
    rows["section_order"] = rows["section"].map({s: i for i, s in enumerate(SECTION_ORDER)}).fillna(99)
    rows["role_order"] = rows["role"].map(ROLE_ORDER)
    rows["kind_order"] = rows["territory_kind"].map(KIND_ORDER).fillna(9)
    rows = rows.sort_values(
        ["section_order", "section", "indicator_id", "role_order", "kind_order", "territory_id", "period"],
        ignore_index=True,
    )
    for column in ("comparison_count", "trend_points", "trend_first_year", "trend_last_year"):
        rows[column] = rows[column].astype("Int64")
    rows["retrieved_at"] = pd.to_datetime(rows["retrieved_at"])
    return rows[list(INDICATOR_COLUMNS)], comparisons


def _weakest_mode(modes: pd.Series) -> str | None:
    known = [m for m in modes.dropna().unique() if m in MODE_WEAKNESS]
    return min(known, key=MODE_WEAKNESS.get) if known else None


def source_rows(conn: duckdb.DuckDBPyConnection, indicators: pd.DataFrame, scope: LensScope) -> pd.DataFrame:
    """Every source in the warehouse with its licence, vintage, the snapshots used and freshness."""
    base = conn.execute(SOURCES_SQL, [_cutoff(scope.as_of)]).df()
    records = []
    for s in base.itertuples():
        used = indicators[indicators["source_id"] == s.source_id]
        if len(used):
            snapshots = sorted(used["snapshot_id"].unique())
            first, last = used["retrieved_at"].min(), used["retrieved_at"].max()
            mode = _weakest_mode(used["source_mode"])  # what the source is, not what it was divided by
            years = [y for p in used["period"].unique() if (y := period_years(p))]
            vintage = (
                f"{min(y[0] for y in years)}–{max(y[1] for y in years)}"
                if years
                else ", ".join(sorted(used["period"].unique()))
            )
        elif s.newest_snapshot is not None and not pd.isna(s.newest_snapshot):
            snapshots, first, last, mode, vintage = (
                [s.newest_snapshot],
                s.newest_at,
                s.newest_at,
                s.newest_mode,
                "",
            )
        else:
            snapshots, first, last, mode, vintage = [], pd.NaT, pd.NaT, None, ""
        freshness = (
            _freshness(mode, first, s.cadence_days, scope.reference_date)[1] if snapshots else "not loaded"
        )
        records.append(
            {
                "source_id": s.source_id,
                "family": s.family,
                "publisher": s.publisher,
                "title": s.title,
                "landing_url": s.landing_url,
                "licence": s.licence,
                "citation": s.citation,
                "cadence_days": s.cadence_days,
                "indicators": ", ".join(sorted(used["indicator_id"].unique())),
                "lens_rows": len(used),
                "vintage": vintage,
                "snapshots": ", ".join(snapshots),
                "retrieved_first": first,
                "retrieved_last": last,
                "mode": mode,
                "freshness": freshness,
                "status": None if scope.as_of else s.status,
                "error": None if scope.as_of else s.error,
            }
        )
    frame = pd.DataFrame(records, columns=list(SOURCE_COLUMNS))
    for column in ("retrieved_first", "retrieved_last"):
        frame[column] = pd.to_datetime(frame[column])
    frame["lens_rows"] = frame["lens_rows"].astype("int64")
    return frame


CONFLICT_COLUMNS = (
    "title", "start_year", "status", "sector", "indigenous_territory", "url", "comuna_name",
    "located_comuna_code", "located_basin_code", "placed_region_code", "mode", "source_id",
)  # fmt: skip


def focus_conflicts(conn: duckdb.DuckDBPyConnection, territory_ids: list[str]) -> pd.DataFrame | None:
    """The documented socio-environmental conflicts placed in the focus comunas, basins or regions.

    None when marts.socioenvironmental_conflicts does not exist (the conflicts family has not run),
    an empty frame when it exists and none is in the focus territories. Newest first.
    """
    present = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' "
        "AND table_name = 'socioenvironmental_conflicts'"
    ).fetchone()[0]
    if not present:
        return None

    def codes(kind: str) -> list[str]:
        return [t.split(":", 1)[1] for t in territory_ids if t.startswith(f"{kind}:")]

    columns = ", ".join(CONFLICT_COLUMNS)
    return conn.execute(
        f"SELECT {columns} FROM marts.socioenvironmental_conflicts "  # noqa: S608 (constant column list)
        "WHERE located_comuna_code IN (SELECT unnest(?::VARCHAR[])) "
        "OR located_basin_code IN (SELECT unnest(?::VARCHAR[])) "
        "OR placed_region_code IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY start_year DESC NULLS LAST, title",
        [codes("comuna"), codes("basin"), codes("region")],
    ).df()


def _canonical(frame: pd.DataFrame) -> str:
    """Rows as sorted CSV text: floats to 12 significant digits, every kind of missing value alike."""
    canonical = frame.copy()
    for column in canonical.columns:
        if pd.api.types.is_float_dtype(canonical[column]):
            canonical[column] = [None if pd.isna(v) else f"{v:.12g}" for v in canonical[column]]
    canonical = canonical.astype(object).where(canonical.notna(), "")
    text = canonical.astype(str)
    return text.sort_values(list(text.columns)).to_csv(index=False) if len(text.columns) else ""


def content_hash(tables: dict[str, pd.DataFrame] | pd.DataFrame) -> str:
    """SHA-256 over the lens tables, independent of row order and of float noise below 1e-9."""
    if isinstance(tables, pd.DataFrame):
        tables = {"indicators": tables}
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(f"== {name}\n".encode())
        digest.update(_canonical(tables[name]).encode())
    return digest.hexdigest()


def build_lens_tables(conn: duckdb.DuckDBPyConnection, scope: LensScope) -> Lens:
    """Replace the study's lens tables (inside the caller's transaction) and return them with their hash."""
    indicators, comparisons = indicator_rows(conn, scope)
    sources = source_rows(conn, indicators, scope)
    territories = scope.territories.copy()
    gaps = gap_rows(indicators, sources, territories, scope)
    tables = {
        "indicators": indicators,
        "comparisons": comparisons,
        "territories": territories,
        "sites": scope.sites,
        "sources": sources,
        "gaps": gaps,
    }
    digest = content_hash({name: tables[name] for name in HASHED_TABLES})
    reference = scope.reference_date
    tables["manifest"] = pd.DataFrame(
        [
            ("prefix", scope.prefix),
            ("as_of", scope.as_of.isoformat() if scope.as_of else ""),
            ("reference_date", reference.isoformat()),
            ("content_hash", digest),
            ("hashed_tables", ", ".join(f"lens.{scope.prefix}_{t}" for t in HASHED_TABLES)),
        ],
        columns=list(MANIFEST_COLUMNS),
    )
    for name, frame in tables.items():
        replace_table(conn, "lens", f"{scope.prefix}_{name}", storable(frame))
        comment_lens_table(conn, scope.prefix, name)
    return Lens(scope.prefix, tables, digest, scope.as_of, reference)


def storable(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns that are entirely empty get a string dtype, so DuckDB types them VARCHAR."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object and out[column].isna().all():
            out[column] = out[column].astype("string")
    return out


def lens_table(prefix: str, name: str) -> str:
    """The quoted name of a lens table, e.g. lens."antofagasta_2025_indicators"."""
    return table_name("lens", f"{prefix}_{name}")

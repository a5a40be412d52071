"""The comuna x basin crosswalk as a Markdown report, and the committed one of the SAMPLE boundaries.

Evaluators read it to judge how basins and comunas fit (incomplete shares, slivers, every
pair): in the `territories` asset's metadata, and in `docs/crosswalk_summary.md`, generated from
the shipped SAMPLE inputs by `.venv/bin/python -m pipelines.territories`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from pipelines.territory_tables import BASIN_KINDS, SHARE_TOLERANCE, TerritoryTables

SLIVER_SHARE = 0.005  # an overlap under 0.5 % of the comuna is reported as a sliver


def _km2(value: float) -> str:
    return f"{value:,.1f}" if value >= 0.1 else f"{value:.1e}"


def _share(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["None.", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _with_polygon(places: pd.DataFrame, kind: str) -> pd.Series:
    return places.loc[(places["kind"] == kind) & places.geometry.notna(), "territory_id"]


def _counts(tables: TerritoryTables, comunas: list[str]) -> list[str]:
    regions = {tid.split(":")[1][:2] for tid in comunas}
    counts = [("comunas with a polygon", len(comunas)), ("regions with comunas", len(regions))]
    for kind in BASIN_KINDS.values():
        if polygons := len(_with_polygon(tables.places, kind)):
            pairs = int((tables.overlaps["basin_kind"] == kind).sum())
            counts += [(f"{kind} polygons", polygons), (f"comuna × {kind} overlaps", pairs)]
    return ["## Counts", "", *_table(["what", "count"], [(what, str(n)) for what, n in counts])]


def _coverage(kind: str, names: dict, comunas: list[str], by_comuna, by_basin, polygons) -> list[str]:
    """Which comunas lie in no polygon of `kind`, which polygons touch no comuna, and the doubles."""
    outside = [tid for tid in comunas if tid not in by_comuna.index]
    untouched = sorted(tid for tid in polygons if tid not in by_basin.index)
    return [
        f"## Comunas × {kind}",
        "",
        f"Comunas in no {kind} polygon ({len(outside)}): "
        + (", ".join(f"{tid} {names[tid]}" for tid in outside) or "none")
        + ".",
        "",
        f"{kind.capitalize()} polygons overlapping no comuna ({len(untouched)}): "
        + (", ".join(f"{tid} {names[tid]}" for tid in untouched) or "none")
        + ".",
        "",
        f"Comunas in more than one {kind}: {int((by_comuna['n'] > 1).sum())}.",
        "",
    ]


def _incomplete(kind: str, names: dict, by_comuna, by_basin) -> list[str]:
    """Comunas and basins whose shares do not add up to 1 within the tolerance."""
    lines = [
        f"### Comunas whose {kind} shares do not sum to 1 (part of the comuna lies in no {kind} polygon)",
        "",
    ]
    off = by_comuna[(by_comuna["total"] - 1).abs() > SHARE_TOLERANCE]
    lines += _table(
        ["comuna", "name", kind + "s", "sum of share_of_comuna"],
        [(r.Index, names[r.Index], str(r.n), _share(r.total)) for r in off.itertuples()],
    )
    lines += [
        f"### {kind.capitalize()}s whose comuna shares do not sum to 1 (part lies in no loaded comuna)",
        "",
    ]
    off = by_basin[(by_basin["total"] - 1).abs() > SHARE_TOLERANCE]
    return lines + _table(
        [kind, "name", "comunas", "sum of share_of_basin"],
        [(r.Index, names[r.Index], str(r.n), _share(r.total)) for r in off.itertuples()],
    )


def _pairs(kind: str, names: dict, pairs: pd.DataFrame) -> list[str]:
    """The slivers, then every comuna x basin pair of one kind."""
    slivers = pairs[pairs["share_of_comuna"] < SLIVER_SHARE]
    lines = [f"### Slivers (overlap under {SLIVER_SHARE:.1%} of the comuna)", ""]
    lines += _table(
        ["comuna", kind, "overlap km²", "share_of_comuna"],
        [
            (r.comuna_id, r.basin_id, _km2(r.overlap_km2), _share(r.share_of_comuna))
            for r in slivers.itertuples()
        ],
    )
    every = [
        (
            r.comuna_id,
            names[r.comuna_id],
            r.basin_id,
            names[r.basin_id],
            _km2(r.overlap_km2),
            _share(r.share_of_comuna),
            _share(r.share_of_basin),
        )
        for r in pairs.itertuples()
    ]
    header = ["comuna", "name", kind, "name", "overlap km²", "share_of_comuna", "share_of_basin"]
    return lines + ["### Every overlap", "", *_table(header, every)]


def crosswalk_summary(tables: TerritoryTables, heading: str, inputs: Sequence[str] = ()) -> str:
    """A deterministic Markdown report of the comuna x basin crosswalk: counts, incomplete shares, slivers, pairs."""
    places = tables.places
    names = dict(zip(places["territory_id"], places["name"], strict=True))
    comunas = sorted(_with_polygon(places, "comuna"))
    lines = [f"# {heading}", ""]
    if inputs:
        lines += ["Inputs:", "", *[f"- {item}" for item in inputs], ""]
    lines += [
        f"Shares count as complete within 1 ± {SHARE_TOLERANCE}; an overlap under {SLIVER_SHARE:.1%} of its "
        "comuna is a sliver. Areas are km² in the equal-area projection of `sources/geometry.py`.",
        "",
        *_counts(tables, comunas),
    ]
    for kind in BASIN_KINDS.values():
        pairs = tables.overlaps[tables.overlaps["basin_kind"] == kind]
        if not len(pairs):
            continue
        by_comuna = pairs.groupby("comuna_id").agg(n=("basin_id", "size"), total=("share_of_comuna", "sum"))
        by_basin = pairs.groupby("basin_id").agg(n=("comuna_id", "size"), total=("share_of_basin", "sum"))
        lines += _coverage(kind, names, comunas, by_comuna, by_basin, _with_polygon(places, kind))
        lines += _incomplete(kind, names, by_comuna, by_basin)
        lines += _pairs(kind, names, pairs)
    return "\n".join(lines).rstrip() + "\n"

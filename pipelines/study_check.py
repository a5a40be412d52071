"""Every territory a study names, resolved: unknown codes are errors with the nearest valid names.

Regions, provinces and comunas are checked against Chile's official territorial division
(`sources.division`, reference data shipped with the project), so they are checked even
before anything is built. Basins are checked against the basins in the warehouse (the DGA
BNA layer the territories family loaded); before the territories family has run they
cannot be checked, and the check says so instead of guessing. Sites are placed with
`marts.locate` when the warehouse has polygons.

`context-lens studies check` reports every problem; the lens build refuses a study with
errors, naming the file and the field. Nothing here imports Dagster.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pipelines.studies import Study

SPECIAL_TERRITORIES = {"country:CL": "Chile", "oecd:OECD": "OECD member countries"}
NEAREST = 3
BASIN_SOURCE = "dga_bna_basins"  # sources.dga_basins.SOURCE.id (not imported: it brings geopandas)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    severity: str = "error"  # error | warning | info

    def line(self, file_name: str) -> str:
        return f"{file_name}: field '{self.field}': {self.severity}: {self.message}"


@dataclass(frozen=True)
class Places:
    """The territories a study may name: id -> name (basins only when a warehouse has them)."""

    division: dict[str, str]
    basins: dict[str, str] | None  # None: no warehouse with basins to check against
    polygons: bool = False  # the warehouse can place sites


def division_places() -> dict[str, str]:
    from sources.division import load_division

    division = load_division()
    return dict(zip(division["territory_id"], division["name"], strict=True))


def nearest(territory_id: str, known: dict[str, str]) -> list[str]:
    """The closest valid ids of the same kind: by spelling of the code, then by numeric distance."""
    kind, _, code = territory_id.partition(":")
    same = {t: n for t, n in known.items() if t.startswith(f"{kind}:")}
    codes = {t.split(":", 1)[1]: t for t in same}
    if code.isdigit():  # CUT and BNA codes are hierarchical numbers: the nearest numbers are neighbours
        chosen = sorted(
            (t for c, t in codes.items() if c.isdigit()),
            key=lambda t: (abs(int(t.split(":", 1)[1]) - int(code)), t),
        )
    else:
        chosen = [codes[c] for c in difflib.get_close_matches(code, list(codes), n=NEAREST, cutoff=0.6)]
    return [f"{t.split(':', 1)[1]} {same[t]}" for t in chosen[:NEAREST]]


def _unknown(field: str, territory_id: str, known: dict[str, str], where: str) -> Problem:
    close = nearest(territory_id, known)
    hint = f"; nearest: {', '.join(close)}" if close else ""
    return Problem(field, f"{territory_id} is not {where}{hint}")


def _check_ids(field: str, ids: list[str], places: Places) -> list[Problem]:
    problems = []
    for territory_id in ids:
        kind = territory_id.split(":", 1)[0]
        if territory_id in SPECIAL_TERRITORIES:
            continue
        if kind in ("region", "province", "comuna"):
            if territory_id not in places.division:
                problems.append(
                    _unknown(field, territory_id, places.division, f"a {kind} of Chile's official division")
                )
        elif kind == "basin":
            if places.basins is None:
                problems.append(
                    Problem(
                        field,
                        f"{territory_id} not checked: the DGA basin layer is not in the warehouse yet "
                        "(run `context-lens build`)",
                        "warning",
                    )
                )
            elif territory_id not in places.basins:
                problems.append(
                    _unknown(field, territory_id, places.basins, "a basin of the warehouse (DGA BNA)")
                )
        else:
            known = ", ".join(sorted(SPECIAL_TERRITORIES))
            problems.append(
                Problem(
                    field, f"{territory_id}: unknown kind {kind!r} (use region:, comuna:, basin:, {known})"
                )
            )
    return problems


def check_study(study: Study, places: Places) -> list[Problem]:
    """Every code the study names, resolved against the division and the warehouse's basins."""
    problems = []
    problems += _check_ids("focus.regions", [f"region:{c}" for c in study.regions], places)
    problems += _check_ids("focus.comunas", [f"comuna:{c}" for c in study.comunas], places)
    problems += _check_ids("focus.basins", [f"basin:{c}" for c in study.basins], places)
    problems += _check_ids("comparison.territories", list(study.comparison), places)
    problems += _check_ids("comparison.peer_basins", study.peer_basin_territories, places)
    return problems


def errors_in(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warehouse_places(conn) -> tuple[dict[str, str] | None, bool]:
    """The basins of core.territories and whether comunas have polygons.

    Basins are None (not checkable) until the DGA basin layer has been loaded: basins
    written some other way (a partial test warehouse) are not the list of basins that exist.
    """
    layer = conn.execute(
        "SELECT count(*) FROM core.snapshots WHERE source_id = ?", [BASIN_SOURCE]
    ).fetchone()[0]
    basins = dict(
        conn.execute(
            "SELECT territory_id, name FROM core.territories WHERE kind = 'basin' ORDER BY 1"
        ).fetchall()
    )
    shaped = conn.execute(
        "SELECT count(*) FROM core.territories WHERE kind = 'comuna' AND geometry IS NOT NULL"
    ).fetchone()[0]
    return (basins if layer and basins else None), shaped > 0


def site_problems(conn, study: Study) -> list[Problem]:
    """Where each site falls (info), or an error when it lies in no comuna of the loaded polygons."""
    problems = []
    for site in study.sites:
        rows = conn.execute(
            "SELECT territory_id, name FROM marts.locate(?, ?)", [site.lon, site.lat]
        ).fetchall()
        placed = ", ".join(f"{t} {n}" for t, n in rows)
        if any(t.startswith("comuna:") for t, _ in rows):
            problems.append(Problem(site.field, f"{site.name}: in {placed}", "info"))
        else:
            problems.append(
                Problem(
                    site.field,
                    f"{site.name} (lat {site.lat}, lon {site.lon}) lies in no comuna"
                    + (f" (only {placed})" if placed else "")
                    + "; decimal degrees, south and west negative: lat and lon swapped?",
                )
            )
    return problems


def refuse_unknown_territories(conn, study: Study) -> None:
    """For the lens build: a study naming a place that does not exist fails with every such place."""
    from pipelines.studies import StudyConfigError

    basins, _ = warehouse_places(conn)
    errors = errors_in(check_study(study, Places(division_places(), basins)))
    if errors:
        name = study.path.name if study.path else f"{study.id}.yaml"
        raise StudyConfigError("; ".join(p.line(name) for p in errors))

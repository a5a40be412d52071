"""Field study configuration: `studies/<id>.yaml`, loaded safely and checked field by field."""

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import yaml

STUDIES_DIR = Path(__file__).resolve().parents[1] / "studies"
STUDY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CUT_BY_KIND = {"regions": r"^\d{2}$", "comunas": r"^\d{5}$", "basins": r"^\d{3,5}$"}
TERRITORY_ID = re.compile(r"^[a-z_0-9]+:[A-Za-z0-9_]{1,12}$")


class StudyConfigError(ValueError):
    """A study file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Site:
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Study:
    id: str
    title: str
    start: date
    end: date
    regions: list[str]
    comunas: list[str]
    basins: list[str]
    sites: list[Site]
    comparison: list[str]
    peer_basins: list[str]
    periods: dict[str, tuple[int, int]]
    as_of: date | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def table_prefix(self) -> str:
        """The study id as a SQL identifier prefix: lens.<prefix>_indicators."""
        return self.id.replace("-", "_")

    @property
    def focus_territories(self) -> list[str]:
        return (
            [f"region:{c}" for c in self.regions]
            + [f"comuna:{c}" for c in self.comunas]
            + [f"basin:{c}" for c in self.basins]
        )


def study_path(study_id: str) -> Path:
    """The file of a study id; ids with path separators or '..' are refused."""
    if not STUDY_ID.match(study_id or ""):
        raise StudyConfigError(
            f"study id {study_id!r} is not allowed: use lower-case letters, digits and '-' (no '/', no '..')"
        )
    return STUDIES_DIR / f"{study_id}.yaml"


def _fail(path: Path, field_name: str, problem: str) -> StudyConfigError:
    return StudyConfigError(f"{path.name}: field '{field_name}': {problem}")


def _date(path: Path, name: str, value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _fail(path, name, f"expected a date YYYY-MM-DD, got {value!r}") from None


def _codes(path: Path, name: str, values, pattern: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise _fail(path, name, "expected a list")
    codes = [str(v) for v in values]
    bad = [c for c in codes if not re.match(pattern, c)]
    if bad:
        raise _fail(path, name, f"invalid code(s) {bad}")
    return codes


def parse_study(path: Path) -> Study:
    with open(path, encoding="utf-8") as handle:
        try:
            document = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise StudyConfigError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise StudyConfigError(f"{path.name}: expected a mapping at the top level")
    study_id = document.get("id")
    if study_id != path.stem:
        raise _fail(path, "id", f"must equal the file name {path.stem!r}, got {study_id!r}")
    study_path(study_id)
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _fail(path, "title", "a non-empty title is required")
    dates = document.get("dates") or {}
    start, end = _date(path, "dates.start", dates.get("start")), _date(path, "dates.end", dates.get("end"))
    if end < start:
        raise _fail(path, "dates.end", "ends before dates.start")
    focus = document.get("focus") or {}
    if not isinstance(focus, dict):
        raise _fail(path, "focus", "expected a mapping")
    codes = {kind: _codes(path, f"focus.{kind}", focus.get(kind), pat) for kind, pat in CUT_BY_KIND.items()}
    sites = []
    for index, site in enumerate(focus.get("sites") or []):
        try:
            lat, lon = float(site["lat"]), float(site["lon"])
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"focus.sites[{index}]", "needs numeric lat and lon") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise _fail(path, f"focus.sites[{index}]", f"coordinates out of range: {lat}, {lon}")
        sites.append(Site(str(site.get("name") or f"site {index + 1}"), lat, lon))
    if not any(codes.values()) and not sites:
        raise _fail(path, "focus", "name at least one region, comuna, basin or site")
    comparison = document.get("comparison") or {}
    compare_to = comparison.get("territories") or ["country:CL"]
    bad = [t for t in compare_to if not TERRITORY_ID.match(str(t))]
    if bad:
        raise _fail(path, "comparison.territories", f"invalid territory id(s) {bad} (use e.g. 'country:CL')")
    peer_basins = _codes(path, "comparison.peer_basins", comparison.get("peer_basins"), CUT_BY_KIND["basins"])
    periods = {}
    for name, span in (document.get("periods") or {}).items():
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(y, int) for y in span)):
            raise _fail(path, f"periods.{name}", "expected [first_year, last_year]")
        if span[1] < span[0]:
            raise _fail(path, f"periods.{name}", "last year before first year")
        periods[name] = (span[0], span[1])
    as_of = document.get("as_of")
    return Study(
        id=study_id,
        title=title.strip(),
        start=start,
        end=end,
        regions=codes["regions"],
        comunas=codes["comunas"],
        basins=codes["basins"],
        sites=sites,
        comparison=[str(t) for t in compare_to],
        peer_basins=peer_basins,
        periods=periods,
        as_of=_date(path, "as_of", as_of) if as_of else None,
        path=path,
    )


def load_study(study_id: str) -> Study:
    path = study_path(study_id)
    if not path.exists():
        raise StudyConfigError(f"no study file {path.name} in {STUDIES_DIR}")
    return parse_study(path)


def all_studies() -> list[Study]:
    return [parse_study(p) for p in sorted(STUDIES_DIR.glob("*.yaml"))]


DEFAULT_STUDY = "antofagasta-2025"

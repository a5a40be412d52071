"""Field study configuration: `studies/<id>.yaml`, loaded safely and checked field by field.

A study names what the lens is about (focus: a region, comunas, basins and sites given by
coordinates), what it is compared with (comparison territories, default Chile; peer basins,
default every other basin with data) and which periods matter. Every problem is reported
as `<file>: field '<field>': <problem>` so the analyst knows what to fix.
"""

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import yaml

from pipelines.claims import Claim, ClaimConfigError, parse_claims

STUDIES_DIR = Path(__file__).resolve().parents[1] / "studies"
STUDY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CUT_BY_KIND = {"regions": r"^\d{2}$", "comunas": r"^\d{5}$", "basins": r"^\d{3,5}$"}
TERRITORY_ID = re.compile(r"^[a-z_0-9]+:[A-Za-z0-9_]{1,12}$")
DEFAULT_COMPARISON = ["country:CL"]
TOP_LEVEL_FIELDS = {
    "id",
    "title",
    "dates",
    "focus",
    "comparison",
    "periods",
    "as_of",
    "description",
    "claims",
}
FOCUS_FIELDS = {"regions", "comunas", "basins", "sites"}
COMPARISON_FIELDS = {"territories", "peer_basins"}
# Bounds of a study file: a study names a few places, not a data set; beyond these it is a mistake
# (or an attack) that must fail alone, quickly, without exhausting memory.
MAX_STUDY_BYTES = 256 * 1024
MAX_YAML_NODES = 20_000  # scalars, lists and mappings; YAML anchors and aliases are refused outright
MAX_YAML_DEPTH = 20
MAX_SITES = 200
MAX_TERRITORIES = 500  # regions + comunas + basins + comparison territories + peer basins

log = logging.getLogger(__name__)


class StudyConfigError(ValueError):
    """A study file that cannot be used; the message names the file and the field."""


class StudyLoader(yaml.SafeLoader):
    """`yaml.safe_load` that cannot expand without bound: no aliases, bounded nodes and depth.

    An alias lets a few bytes stand for an exponential document ("billion laughs"); a study
    file has no use for them, so they are refused where they appear.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.nodes = 0
        self.depth = 0

    @classmethod
    def load(cls, text: str):
        """What `yaml.safe_load(text)` returns, within the bounds."""
        loader = cls(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()

    @classmethod
    def compose(cls, text: str):
        """The node tree of `text` (nothing constructed), within the bounds."""
        loader = cls(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed in study files")
        self.nodes += 1
        self.depth += 1
        try:
            if self.nodes > MAX_YAML_NODES or self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(
                    f"line {mark.line + 1}: more than {MAX_YAML_NODES} values or {MAX_YAML_DEPTH} levels "
                    "of nesting (a study names places, not data)"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


@dataclass(frozen=True)
class Site:
    """A place given by coordinates (WGS84); the lens resolves it to comuna, region and basin."""

    name: str
    lat: float
    lon: float
    field: str = ""  # where it was configured, e.g. "focus.sites[0]", for error messages


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
    description: str = ""
    claims: tuple[Claim, ...] = ()  # the field study's own quantitative claims (pipelines.claims)
    path: Path | None = field(default=None, compare=False)

    @property
    def table_prefix(self) -> str:
        """The study id as a SQL identifier prefix: lens.<prefix>_indicators."""
        return self.id.replace("-", "_")

    @property
    def focus_territories(self) -> list[str]:
        """The territories named in the file (sites add theirs once resolved against the warehouse)."""
        return (
            [f"region:{c}" for c in self.regions]
            + [f"comuna:{c}" for c in self.comunas]
            + [f"basin:{c}" for c in self.basins]
        )

    @property
    def peer_basin_territories(self) -> list[str]:
        return [f"basin:{c}" for c in self.peer_basins]


def studies_dir() -> Path:
    """Where study files live: `CONTEXT_LENS_STUDIES_DIR` if set, else studies/ in the repository."""
    configured = os.environ.get("CONTEXT_LENS_STUDIES_DIR")
    return Path(configured) if configured else STUDIES_DIR


def study_path(study_id: str) -> Path:
    """The file of a study id; ids with path separators or '..' are refused."""
    if not STUDY_ID.match(study_id or ""):
        raise StudyConfigError(
            f"study id {study_id!r} is not allowed: use lower-case letters, digits and '-' (no '/', no '..')"
        )
    return studies_dir() / f"{study_id}.yaml"


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


def _mapping(path: Path, name: str, value, allowed: set[str]) -> dict:
    """A mapping (or nothing) whose keys are all known: a misspelt key must not be silently ignored."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, name, "expected a mapping")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        prefix = f"{name}." if name else ""
        raise _fail(path, f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
    return value


def _codes(path: Path, name: str, values, pattern: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise _fail(path, name, "expected a list")
    codes = [str(v) for v in values]
    bad = [c for c in codes if not re.match(pattern, c)]
    if bad:
        hint = ' (quote codes in YAML so leading zeros survive, e.g. "02201")'
        raise _fail(path, name, f"invalid code(s) {bad}{hint}")
    if len(set(codes)) != len(codes):
        raise _fail(path, name, f"repeated code(s) {sorted({c for c in codes if codes.count(c) > 1})}")
    return codes


def _sites(path: Path, values) -> list[Site]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise _fail(path, "focus.sites", "expected a list of {name, lat, lon}")
    sites = []
    for index, site in enumerate(values):
        name = f"focus.sites[{index}]"
        if not isinstance(site, dict):
            raise _fail(path, name, "expected a mapping with name, lat and lon")
        try:
            lat, lon = float(site["lat"]), float(site["lon"])
        except (KeyError, TypeError, ValueError):
            raise _fail(path, name, "needs numeric lat and lon (decimal degrees, WGS84)") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise _fail(path, name, f"coordinates out of range: lat {lat}, lon {lon}")
        sites.append(Site(str(site.get("name") or f"site {index + 1}"), lat, lon, name))
    return sites


def _periods(path: Path, values) -> dict[str, tuple[int, int]]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise _fail(path, "periods", "expected a mapping of name: [first_year, last_year]")
    periods = {}
    for name, span in values.items():
        if not (isinstance(span, list) and len(span) == 2 and all(type(y) is int for y in span)):
            raise _fail(path, f"periods.{name}", f"expected [first_year, last_year], got {span!r}")
        if span[1] < span[0]:
            raise _fail(path, f"periods.{name}", "last year before first year")
        periods[str(name)] = (span[0], span[1])
    return periods


def _bad_date_field(text: str) -> str | None:
    """The dotted path of a date YAML cannot construct (e.g. 2025-13-01), found on the node tree.

    `yaml.safe_load` raises a bare ValueError for such dates; composing (no construction)
    walks the same document safely to tell the user which field it was.
    """
    timestamp = "tag:yaml.org,2002:timestamp"

    def walk(node, path: str) -> str | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found = walk(value, f"{path}.{key.value}" if path else str(key.value))
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found = walk(item, f"{path}[{index}]")
                if found:
                    return found
        elif node.tag == timestamp:
            try:
                date.fromisoformat(node.value[:10])
            except ValueError:
                return path
        return None

    try:
        return walk(StudyLoader.compose(text), "")
    except yaml.YAMLError:
        return None


def _read(path: Path) -> str:
    """The file's text, refused unread beyond MAX_STUDY_BYTES."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_STUDY_BYTES + 1)
    except OSError as exc:
        raise StudyConfigError(f"{path.name}: cannot be read: {exc.strerror}") from exc
    if len(data) > MAX_STUDY_BYTES:
        raise StudyConfigError(
            f"{path.name}: larger than {MAX_STUDY_BYTES // 1024} KiB, the cap for a study file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StudyConfigError(f"{path.name}: not UTF-8 text (byte {exc.start})") from exc


def _bounded(path: Path, codes: dict[str, list[str]], sites: list, compare_to: list, peers: list) -> None:
    if len(sites) > MAX_SITES:
        raise _fail(path, "focus.sites", f"{len(sites)} sites; a study may name at most {MAX_SITES}")
    named = sum(len(v) for v in codes.values()) + len(compare_to) + len(peers)
    if named > MAX_TERRITORIES:
        raise _fail(path, "focus", f"{named} territories named; a study may name at most {MAX_TERRITORIES}")


def _document(path: Path) -> dict:
    """The study file as a mapping of known fields; YAML, date and shape errors name the file."""
    text = _read(path)
    try:
        document = StudyLoader.load(text)
    except yaml.YAMLError as exc:
        raise StudyConfigError(f"{path.name}: not valid YAML: {exc}") from exc
    except ValueError as exc:  # a date such as 2025-13-01
        field_name = _bad_date_field(text) or "?"
        raise _fail(path, field_name, f"expected a date YYYY-MM-DD: {exc}") from exc
    if not isinstance(document, dict):
        raise StudyConfigError(f"{path.name}: expected a mapping at the top level")
    _mapping(path, "", document, TOP_LEVEL_FIELDS)
    return document


def _comparison(path: Path, document: dict) -> tuple[list, list[str]]:
    """(territories compared with, peer basin codes) of the `comparison` block."""
    comparison = _mapping(path, "comparison", document.get("comparison"), COMPARISON_FIELDS)
    compare_to = comparison.get("territories") or DEFAULT_COMPARISON
    if not isinstance(compare_to, list):
        raise _fail(path, "comparison.territories", "expected a list of territory ids such as 'country:CL'")
    bad = [t for t in compare_to if not TERRITORY_ID.match(str(t))]
    if bad:
        raise _fail(path, "comparison.territories", f"invalid territory id(s) {bad} (use e.g. 'country:CL')")
    peer_basins = _codes(path, "comparison.peer_basins", comparison.get("peer_basins"), CUT_BY_KIND["basins"])
    return compare_to, peer_basins


def parse_study(path: Path) -> Study:
    document = _document(path)
    study_id = document.get("id")
    if study_id != path.stem:
        raise _fail(path, "id", f"must equal the file name {path.stem!r}, got {study_id!r}")
    study_path(study_id)
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _fail(path, "title", "a non-empty title is required")
    dates = _mapping(path, "dates", document.get("dates"), {"start", "end"})
    start, end = _date(path, "dates.start", dates.get("start")), _date(path, "dates.end", dates.get("end"))
    if end < start:
        raise _fail(path, "dates.end", "ends before dates.start")
    focus = _mapping(path, "focus", document.get("focus"), FOCUS_FIELDS)
    codes = {kind: _codes(path, f"focus.{kind}", focus.get(kind), pat) for kind, pat in CUT_BY_KIND.items()}
    sites = _sites(path, focus.get("sites"))
    if not any(codes.values()) and not sites:
        raise _fail(path, "focus", "name at least one region, comuna, basin or site")
    compare_to, peer_basins = _comparison(path, document)
    _bounded(path, codes, sites, compare_to, peer_basins)
    overlap = sorted(set(peer_basins) & set(codes["basins"]))
    if overlap:
        raise _fail(path, "comparison.peer_basins", f"basin(s) {overlap} are also focus basins")
    as_of = document.get("as_of")
    description = document.get("description") or ""
    if not isinstance(description, str):
        raise _fail(path, "description", "expected text")
    try:
        claims = parse_claims(path, document.get("claims"))
    except ClaimConfigError as exc:
        raise StudyConfigError(str(exc)) from exc
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
        periods=_periods(path, document.get("periods")),
        as_of=_date(path, "as_of", as_of) if as_of else None,
        description=description.strip(),
        claims=claims,
        path=path,
    )


def load_study(study_id: str) -> Study:
    path = study_path(study_id)
    if not path.exists():
        available = ", ".join(p.stem for p in sorted(studies_dir().glob("*.yaml"))) or "none"
        raise StudyConfigError(f"no study file {path.name} in {studies_dir()} (available: {available})")
    return parse_study(path)


def study_files() -> list[tuple[Path, Study | StudyConfigError]]:
    """Every file in studies/, parsed, or the error that makes it unusable: one bad file is its own
    problem, never the other studies' (nor the code location's)."""
    found = []
    for path in sorted(studies_dir().glob("*.yaml")):
        try:
            found.append((path, parse_study(path)))
        except StudyConfigError as exc:
            found.append((path, exc))
    return found


def all_studies() -> list[Study]:
    """The usable studies; a broken file is logged and left out (its lens asset fails with the reason)."""
    studies = []
    for path, study in study_files():
        if isinstance(study, StudyConfigError):
            log.warning("study file %s is not usable and is left out: %s", path.name, study)
        else:
            studies.append(study)
    return studies


DEFAULT_STUDY = "antofagasta-2025"

"""Source specs: every source is declared as data, one YAML file per source in this folder.

`sources/specs/<source_id>.yaml` holds what a source *is* (publisher, title, landing page,
licence, citation, cadence, family, acquisition mode), what we ask it for (its endpoints and
their default URLs), the SAMPLE files that stand in for it offline, the headers its requests carry and
the request budgets of its hosts. This module is the only reader: it loads each file with a size limit through a
safe YAML loader, checks it against `FIELDS` and `ENDPOINT_FIELDS`, and refuses anything else
with an error naming the file and the field (a misspelt key is an error, never a silent None).

Source modules get their declarations from here, e.g. `SOURCE = specs.source("camels_cl")` and
`ENDPOINTS = specs.endpoints("camels_cl")`; `SourceInfo` stays the in-memory interface every
caller (sensors, schedules, `status`, `core.sources`) uses. Endpoint overrides
(`sources.endpoints`) apply on top of the defaults declared here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml

from sources import strict_yaml
from sources.base import SourceInfo

SPECS_DIR = Path(__file__).resolve().parent
SOURCES_DIR = SPECS_DIR.parent
SAMPLES_DIR = SOURCES_DIR / "samples"
MAX_SPEC_BYTES = 64 * 1024
MODES = ("live", "curated", "manual")
MAX_CADENCE_DAYS = 3650
SOURCE_ID = re.compile(r"[a-z][a-z0-9_]*")
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9_]+")

AcquisitionMode = Literal["live", "curated", "manual"]


class SpecError(ValueError):
    """A source spec that cannot be used: the message names the file and the field."""

    def __init__(self, path: Path, field: str, problem: str):
        self.path, self.field, self.problem = path, field, problem
        super().__init__(f"{_shown(path)}: field {field!r}: {problem}")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(SOURCES_DIR.parent))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: a default https URL, a curated file under sources/, or neither (optional)."""

    name: str
    url: str | None
    note: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """One loaded, checked spec. `info` is what callers use; the rest feeds the fetch layer."""

    info: SourceInfo
    mode: AcquisitionMode
    endpoints: tuple[Endpoint, ...]
    samples: tuple[Path, ...]
    requests_per_hour: dict[str, int]
    request_headers: dict[str, str]
    path: Path

    def default_urls(self) -> dict[str, str]:
        """Endpoint name -> default URL, in declaration order; optional endpoints have none."""
        return {e.name: e.url for e in self.endpoints if e.url is not None}

    def endpoint_names(self) -> frozenset[str]:
        return frozenset(e.name for e in self.endpoints)


# --- the schema ------------------------------------------------------------------------------


def _text(path: Path, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, field, f"must be non-empty text, not {value!r}")
    return value


def _https_url(path: Path, field: str, value: Any) -> str:
    text = _text(path, field, value)
    parsed = urlparse(text)
    if parsed.scheme != "https" or not parsed.netloc or any(ch.isspace() for ch in text):
        raise SpecError(path, field, f"must be an https URL, not {text!r}")
    return text


def _source_id(path: Path, field: str, value: Any) -> str:
    text = _text(path, field, value)
    if not SOURCE_ID.fullmatch(text):
        raise SpecError(path, field, f"must be lower-case letters, digits and '_', not {text!r}")
    if text != path.stem:
        raise SpecError(path, field, f"{text!r} differs from the file name {path.name!r}")
    return text


def _cadence(path: Path, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CADENCE_DAYS:
        raise SpecError(
            path, field, f"must be a whole number of days from 1 to {MAX_CADENCE_DAYS}, not {value!r}"
        )
    return value


@functools.cache
def _families() -> tuple[str, ...]:
    from pipelines.families import catalog  # the one list of families (families.yaml)

    return tuple(sorted(catalog()))


def _family(path: Path, field: str, value: Any) -> str:
    from pipelines.families import CATALOG_PATH

    families = _families()
    if value not in families:
        raise SpecError(
            path, field, f"{value!r} is not a family of {CATALOG_PATH.name}; valid: {', '.join(families)}"
        )
    return value


def _mode(path: Path, field: str, value: Any) -> str:
    if value not in MODES:
        raise SpecError(path, field, f"{value!r} is not an acquisition mode; valid: {', '.join(MODES)}")
    return value


def _samples(path: Path, field: str, value: Any) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise SpecError(path, field, f"must be a list of files under sources/samples/, not {value!r}")
    return tuple(_file_under(path, f"{field}[{i}]", item, SAMPLES_DIR) for i, item in enumerate(value))


def _file_under(path: Path, field: str, value: Any, root: Path) -> Path:
    """A relative path to an existing file that stays under `root` (no '..' out, no absolute path)."""
    text = _text(path, field, value)
    target = (root / text).resolve()
    if Path(text).is_absolute() or root.resolve() not in target.parents:
        raise SpecError(path, field, f"{text!r} must be a relative path inside {_shown(root)}/")
    if not target.is_file():
        raise SpecError(path, field, f"{_shown(target)} does not exist")
    return target


def _requests_per_hour(path: Path, field: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SpecError(path, field, f"must map host -> requests per hour, not {value!r}")
    for host, limit in value.items():
        if not isinstance(host, str) or not re.fullmatch(r"[a-z0-9.-]+", host):
            raise SpecError(path, f"{field}.{host}", "must be a host name (lower case, no scheme or path)")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise SpecError(path, f"{field}.{host}", f"must be a positive whole number, not {limit!r}")
    return dict(value)


def _request_headers(path: Path, field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SpecError(path, field, f"must map header name -> value, not {value!r}")
    for name, text in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]+", name):
            raise SpecError(path, f"{field}.{name}", "must be an HTTP header name (letters, digits, '-')")
        _text(path, f"{field}.{name}", text)
        if "\n" in text or "\r" in text:
            raise SpecError(path, f"{field}.{name}", "a header value is one line")
    return dict(value)


# field -> (required, checker); the order is the order of a spec file.
FIELDS = {
    "id": (True, _source_id),
    "publisher": (True, _text),
    "title": (True, _text),
    "landing_url": (True, _https_url),
    "licence": (True, _text),
    "citation": (True, _text),
    "cadence_days": (True, _cadence),
    "family": (True, _family),
    "mode": (True, _mode),
    "endpoints": (True, None),  # checked by `_endpoints`, which needs the mode
    "samples": (False, _samples),
    "requests_per_hour": (False, _requests_per_hour),
    "request_headers": (False, _request_headers),
}
# An endpoint has exactly one of `url` (an https default), `file` (a file under sources/,
# curated sources only) or `optional: true` (no default: configured by an override when known).
ENDPOINT_FIELDS = ("url", "file", "optional", "note")


def _unknown_keys(path: Path, where: str, keys, valid) -> None:
    import difflib

    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(path, f"{where}{key}", f"unknown field (valid: {', '.join(valid)}){hint}")


def _endpoint(path: Path, name: Any, value: Any, mode: str) -> Endpoint:
    field = f"endpoints.{name}"
    if not isinstance(name, str) or not ENDPOINT_NAME.fullmatch(name):
        raise SpecError(path, field, "an endpoint name is letters, digits and '_'")
    if not isinstance(value, dict):
        raise SpecError(path, field, f"must be a mapping with one of url, file, optional; not {value!r}")
    _unknown_keys(path, f"{field}.", value, ENDPOINT_FIELDS)
    given = [key for key in ("url", "file", "optional") if key in value]
    if len(given) != 1:
        raise SpecError(path, field, f"needs exactly one of url, file, optional; has {given or 'none'}")
    note = _text(path, f"{field}.note", value["note"]) if "note" in value else None
    if "url" in value:
        return Endpoint(name, _https_url(path, f"{field}.url", value["url"]), note)
    if "file" in value:
        if mode != "curated":
            raise SpecError(
                path, f"{field}.file", f"only a curated source reads local files; mode is {mode!r}"
            )
        return Endpoint(name, _file_under(path, f"{field}.file", value["file"], SOURCES_DIR).as_uri(), note)
    if value["optional"] is not True:
        raise SpecError(path, f"{field}.optional", f"must be true when given, not {value['optional']!r}")
    return Endpoint(name, None, note)


def _endpoints(path: Path, value: Any, mode: str) -> tuple[Endpoint, ...]:
    if not isinstance(value, dict) or not value:
        raise SpecError(
            path, "endpoints", f"must map at least one endpoint name to its declaration, not {value!r}"
        )
    found = tuple(_endpoint(path, name, entry, mode) for name, entry in value.items())
    if mode == "curated" and any(e.url is None or not e.url.startswith("file:") for e in found):
        raise SpecError(path, "endpoints", "a curated source declares only `file` endpoints")
    return found


# --- reading ---------------------------------------------------------------------------------


def _read(path: Path) -> dict:
    with open(path, "rb") as handle:
        data = handle.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(path, "(file)", f"larger than {MAX_SPEC_BYTES // 1024} KiB; not a source spec")
    try:
        document = strict_yaml.load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(path, "(file)", f"not valid UTF-8 YAML: {exc}") from None
    if not isinstance(document, dict):
        raise SpecError(path, "(file)", f"must be a mapping of fields, not {type(document).__name__}")
    return document


def load_spec(path: Path) -> SourceSpec:
    """Read and check one spec file; SpecError naming the file and the field on anything wrong."""
    path = Path(path)
    document = _read(path)
    _unknown_keys(path, "", document, FIELDS)
    for field, (required, _) in FIELDS.items():
        if required and field not in document:
            raise SpecError(path, field, "required field is missing")
    checked = {
        field: check(path, field, document[field])
        for field, (_, check) in FIELDS.items()
        if check is not None and field in document
    }
    info = SourceInfo(
        id=checked["id"],
        publisher=checked["publisher"],
        title=checked["title"],
        landing_url=checked["landing_url"],
        licence=checked["licence"],
        citation=checked["citation"],
        cadence=timedelta(days=checked["cadence_days"]),
        family=checked["family"],
    )
    return SourceSpec(
        info=info,
        mode=checked["mode"],
        endpoints=_endpoints(path, document["endpoints"], checked["mode"]),
        samples=checked.get("samples", ()),
        requests_per_hour=checked.get("requests_per_hour", {}),
        request_headers=checked.get("request_headers", {}),
        path=path,
    )


@functools.cache
def all_specs() -> dict[str, SourceSpec]:
    """Every spec of this folder, by source id (loaded once per process)."""
    return {spec.info.id: spec for spec in map(load_spec, sorted(SPECS_DIR.glob("*.yaml")))}


def spec(source_id: str) -> SourceSpec:
    specs = all_specs()
    if source_id not in specs:
        raise KeyError(f"no spec sources/specs/{source_id}.yaml; declared: {', '.join(sorted(specs))}")
    return specs[source_id]


def source(source_id: str) -> SourceInfo:
    """The SourceInfo of a declared source (what a source module exports as SOURCE)."""
    return spec(source_id).info


def endpoints(source_id: str, names=None) -> dict[str, str]:
    """The default URLs of a declared source's endpoints (what a source module exports as ENDPOINTS).

    `names`, when given, are the endpoints the module's code builds requests for (its queries,
    dataflows or series); the spec must declare exactly those, so the two cannot drift apart.
    """
    found = spec(source_id)
    if names is not None and list(names) != [e.name for e in found.endpoints]:
        declared = [e.name for e in found.endpoints]
        missing, extra = sorted(set(names) - set(declared)), sorted(set(declared) - set(names))
        raise SpecError(
            found.path,
            "endpoints",
            f"must declare the code's endpoints {list(names)} in that order; missing {missing}, not used {extra}",
        )
    return found.default_urls()

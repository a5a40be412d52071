"""Endpoint overrides: every public URL can be pointed at a mirror, a local server or a file.

Resolution order for endpoint `NAME` of source `SOURCE`:
1. environment variable `CONTEXT_LENS_ENDPOINT__<SOURCE>__<NAME>` (upper case, non-alphanumerics as `_`);
2. the YAML file named by `CONTEXT_LENS_ENDPOINTS_FILE`, shaped `{source: {name: url}}`;
3. the default its spec declares (a source module's `ENDPOINTS`).

Only http(s) and file:// URLs are accepted; file:// paths must lie under an allowed root: the
repository, plus the roots `CONTEXT_LENS_FILE_ROOTS` adds (an `os.pathsep`-separated list).

An override naming a source or endpoint that does not exist is an error naming the valid names
and the nearest one (a misspelt key would otherwise be ignored and the source quietly served
from its default or its SAMPLE). The names come from the source specs (`sources/specs/`),
optional endpoints (no default URL) included.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


class EndpointError(ValueError):
    """An endpoint override that is not allowed (scheme, path outside the allowed roots, bad file)."""


ENV_PREFIX = "CONTEXT_LENS_ENDPOINT__"
MAX_FILE_BYTES = 256 * 1024


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


def _env_key(source_id: str, name: str) -> str:
    return f"{ENV_PREFIX}{_clean(source_id)}__{_clean(name)}"


def allowed_file_roots() -> list[Path]:
    """The repository (its curated files and samples), plus every root CONTEXT_LENS_FILE_ROOTS adds."""
    configured = os.environ.get("CONTEXT_LENS_FILE_ROOTS", "")
    roots = [str(REPO_ROOT), *configured.split(os.pathsep)]
    return list(dict.fromkeys(Path(root).resolve() for root in roots if root))


@functools.cache
def known_endpoints() -> dict[str, frozenset[str]]:
    """Every source id and its endpoint names (optional ones included), as the specs declare them."""
    from sources import specs

    return {source_id: spec.endpoint_names() for source_id, spec in specs.all_specs().items()}


def _nearest(word: str, choices) -> str:
    """', nearest: X' for the closest valid name (case and small misspellings), else ''."""
    by_key = {_clean(c): c for c in choices}
    if _clean(word) in by_key:
        return f"; nearest: {by_key[_clean(word)]!r}"
    close = difflib.get_close_matches(_clean(word), list(by_key), n=1, cutoff=0.6)
    return f"; nearest: {by_key[close[0]]!r}" if close else ""


def _configured() -> list[tuple[str, str, str, bool]]:
    """Every override: (where it was set, source key, endpoint key, keys already cleaned)."""
    found = []
    for key in sorted(os.environ):
        if key.startswith(ENV_PREFIX):
            source, _, name = key.removeprefix(ENV_PREFIX).partition("__")
            found.append((f"environment variable {key}", source, name, True))
    path = os.environ.get("CONTEXT_LENS_ENDPOINTS_FILE")
    for source, names in _file_overrides().items():
        if not isinstance(names, dict):
            raise EndpointError(f"{path}: {source!r} must map endpoint names to URLs, not {names!r}")
        found += [(f"{path}: {source}.{name}", str(source), str(name), False) for name in names]
    return found


def _unknown_name(where: str, source_id: str, name: str, valid) -> EndpointError:
    return EndpointError(
        f"endpoint override ({where}): source {source_id!r} has no endpoint named {name!r}; "
        f"valid: {', '.join(sorted(valid))}{_nearest(name, valid)}"
    )


def check_overrides() -> None:
    """Refuse every override naming a source or an endpoint that does not exist."""
    catalog = known_endpoints()
    by_key = {_clean(source_id): source_id for source_id in catalog}
    for where, source, name, cleaned in _configured():
        source_id = by_key.get(source) if cleaned else (source if source in catalog else None)
        if source_id is None:
            raise EndpointError(
                f"endpoint override ({where}): no source named {source!r}; "
                f"valid: {', '.join(sorted(catalog))}{_nearest(source, catalog)}"
            )
        _check_name(where, source_id, name, cleaned, catalog[source_id])


def _check_name(where: str, source_id: str, name: str, cleaned: bool, valid) -> None:
    if (name not in {_clean(v) for v in valid}) if cleaned else (name not in valid):
        raise _unknown_name(where, source_id, name, valid)


def _check_source(source_id: str, defaults: dict[str, str]) -> None:
    """The overrides set for this source name only endpoints it has."""
    valid = set(defaults) | known_endpoints().get(source_id, frozenset())
    for where, source, name, cleaned in _configured():
        if source == (_clean(source_id) if cleaned else source_id):
            _check_name(where, source_id, name, cleaned, valid)


def file_url_path(url: str) -> Path:
    """The local path of a file:// URL, refused unless it resolves under an allowed root."""
    parsed = urlparse(url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise EndpointError(f"not a local file URL: {url}")
    path = Path(unquote(parsed.path)).resolve()
    for root in allowed_file_roots():
        if path == root or root in path.parents:
            return path
    raise EndpointError(
        f"file URL {url} lies outside the allowed roots {[str(r) for r in allowed_file_roots()]} "
        "(set CONTEXT_LENS_FILE_ROOTS to allow a mirror directory)"
    )


def check_url(url: str) -> str:
    """Accept only http(s) and allowed file:// URLs; anything else is an error, never a fallback."""
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        if not urlparse(url).netloc:
            raise EndpointError(f"URL has no host: {url}")
        return url
    if scheme == "file":
        file_url_path(url)
        return url
    raise EndpointError(
        f"endpoint scheme {scheme or '(none)'!r} is not allowed (use http, https or file): {url}"
    )


def _file_overrides() -> dict:
    path = os.environ.get("CONTEXT_LENS_ENDPOINTS_FILE")
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES:
        raise EndpointError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; not an endpoints file")
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise EndpointError(f"{path}: expected a mapping of source -> {{endpoint: url}}")
    return document


def endpoint(source_id: str, name: str, defaults: dict[str, str]) -> str:
    """The URL to use for one endpoint of a source, after overrides, checked."""
    _check_source(source_id, defaults)
    override = os.environ.get(_env_key(source_id, name))
    if override is None:
        override = (_file_overrides().get(source_id) or {}).get(name)
    if override is None:
        if name not in defaults:
            raise EndpointError(f"source {source_id!r} has no endpoint named {name!r}")
        override = defaults[name]
    try:
        return check_url(str(override))
    except EndpointError as exc:  # say which source and endpoint the refused URL was configured for
        raise EndpointError(f"source {source_id!r}, endpoint {name!r}: {exc}") from None


def endpoints(source_id: str, defaults: dict[str, str]) -> dict[str, str]:
    """All endpoints of a source, each resolved through `endpoint`."""
    return {name: endpoint(source_id, name, defaults) for name in defaults}

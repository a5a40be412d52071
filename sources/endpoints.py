"""Endpoint overrides: every public URL can be pointed at a mirror, a local server or a file.

Resolution order for endpoint `NAME` of source `SOURCE`:
1. environment variable `CONTEXT_LENS_ENDPOINT__<SOURCE>__<NAME>` (upper case, non-alphanumerics as `_`);
2. the YAML file named by `CONTEXT_LENS_ENDPOINTS_FILE`, shaped `{source: {name: url}}`;
3. the source module's default in its `ENDPOINTS`.

Only http(s) and file:// URLs are accepted; file:// paths must lie under an allowed root
(`CONTEXT_LENS_FILE_ROOTS`, an `os.pathsep`-separated list; default: the repository).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


class EndpointError(ValueError):
    """An endpoint override that is not allowed (scheme, path outside the allowed roots, bad file)."""


def _env_key(source_id: str, name: str) -> str:
    clean = lambda text: re.sub(r"[^A-Za-z0-9]", "_", text).upper()  # noqa: E731
    return f"CONTEXT_LENS_ENDPOINT__{clean(source_id)}__{clean(name)}"


def allowed_file_roots() -> list[Path]:
    configured = os.environ.get("CONTEXT_LENS_FILE_ROOTS")
    roots = configured.split(os.pathsep) if configured else [str(REPO_ROOT)]
    return [Path(root).resolve() for root in roots if root]


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
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, dict):
        raise EndpointError(f"{path}: expected a mapping of source -> {{endpoint: url}}")
    return document


def endpoint(source_id: str, name: str, defaults: dict[str, str]) -> str:
    """The URL to use for one endpoint of a source, after overrides, checked."""
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

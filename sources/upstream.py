"""Cheap upstream probes: has a source changed since we last accepted it, for one small request?

A probe never downloads a payload. For each request whose payload we accepted (the raw
store's latest sidecars) it asks the smallest question the publisher can answer:
- a conditional GET with the stored ETag / Last-Modified, closed after the headers
  (`304 Not Modified` means unchanged);
- HEAD, when nothing was stored to be conditional on;
- for SDMX data queries (the OECD), the dataflow's actual content constraint
  (`contentconstraint/{agency}/CR_A_{dataflow}`), a small document that changes with the data;
- for DEIS deaths, the name of the newest weekly file linked from the open-data page
  (the weekly file changes name every week, so the name is the version);
- for ArcGIS FeatureServer layers, the layer's `editingInfo.lastEditDate`;
- for file:// endpoints (curated files), the file's SHA-256, with no network at all.
POST form protocols (SINIM) have no cheap probe: they come back `validator=None` and the
caller falls back on the source's cadence. No Dagster and no DuckDB here: the sensors in
`pipelines/ops.py` decide what a probe means for a run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

import requests

from sources import deis_deaths
from sources.base import decode_text
from sources.endpoints import EndpointError, check_url, file_url_path
from sources.fetch import USER_AGENT, redact_url
from sources.rawstore import RawStore, Sidecar

# An SDMX 2.1 REST data query: {base}/data/{agency},{dataflow},{version}/{key}
SDMX_DATA_URL = re.compile(r"^(?P<base>https?://.+?/)data/(?P<agency>[^,/]+),(?P<flow>[^,/]+),[^/]+(/|$)")
ARCGIS_LAYER_URL = re.compile(r"^(?P<layer>https?://.+?/(Feature|Map)Server/\d+)(/query)?/?$", re.I)
SDMX_HEADER = re.compile(rb"<(\w+:)?Header\b.*?</(\w+:)?Header>", re.S)
OBS_COUNT = re.compile(rb'id="obs_count".*?AnnotationTitle>\s*(\d+)\s*<', re.S)
MAX_PROBE_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """One question to ask upstream, with what we know of the version we accepted.

    `baseline` is the validator of the accepted payload, when the probe kind can derive
    one from the raw store (an ETag, a weekly file name, a file hash); otherwise only the
    validators remembered by the caller (the sensor cursor) can say whether it changed.
    """

    source: str
    name: str
    kind: str  # conditional_get | head | sdmx_constraint | deis_weekly | arcgis_layer | file | none
    url: str
    etag: str | None = None
    last_modified: str | None = None
    baseline: str | None = None
    retrieved_at: str | None = None

    @property
    def key(self) -> str:
        """How the caller remembers this target between probes."""
        return f"{self.source}|{self.kind}|{redact_url(self.url)}"


@dataclass(frozen=True)
class Probe:
    target: Target
    validator: str | None  # None: upstream gives no cheap version marker
    not_modified: bool = False  # upstream answered 304 to our conditional request
    error: str | None = None
    detail: str = ""


def judge(probe: Probe, remembered: str | None) -> str:
    """`changed`, `unchanged`, `unknown` (no cheap marker) or `error`.

    The reference is the accepted payload's validator when there is one (so a refresh
    that failed is asked for again), else the last validator the caller saw. With
    neither, the first sight of a source counts as a change.
    """
    if probe.error:
        return "error"
    if probe.not_modified:
        return "unchanged"
    if probe.validator is None:
        return "unknown"
    reference = probe.target.baseline if probe.target.baseline is not None else remembered
    if reference is None:
        return "changed"
    return "unchanged" if probe.validator == reference else "changed"


# --- planning: which questions to ask for a source -----------------------------------------


def _http_validator(etag: str | None, last_modified: str | None) -> str | None:
    if etag:
        return f"etag:{etag}"
    if last_modified:
        return f"last-modified:{last_modified}"
    return None


def _target_for_url(
    source: str, name: str, url: str, method: str = "GET", sidecar: Sidecar | None = None
) -> Target:
    if method.upper() != "GET":
        return Target(source, name, "none", url)
    scheme = urlparse(url).scheme
    if scheme == "file":
        baseline = f"sha256:{sidecar.sha256}" if sidecar else None
        return Target(source, name, "file", url, baseline=baseline)
    sdmx = SDMX_DATA_URL.match(url)
    if sdmx:
        constraint = f"{sdmx['base']}contentconstraint/{sdmx['agency']}/CR_A_{sdmx['flow']}"
        return Target(source, name, "sdmx_constraint", constraint)
    arcgis = ARCGIS_LAYER_URL.match(url.split("?", 1)[0])
    if arcgis:
        return Target(source, name, "arcgis_layer", arcgis["layer"])
    etag = sidecar.etag if sidecar else None
    last_modified = sidecar.last_modified if sidecar else None
    if etag or last_modified:
        return Target(
            source, name, "conditional_get", url, etag, last_modified, _http_validator(etag, last_modified)
        )
    return Target(source, name, "head", url)


def weekly_file_name(url: str) -> str | None:
    """`DEFUNCIONES_FUENTE_DEIS_2023_2025_14102025.zip` from a link or a stored request URL."""
    match = deis_deaths.WEEKLY_ZIP_PATTERN.search(unquote(url))
    return PurePosixPath(match.group(0)).name if match else None


def plan_targets(
    source: str, store: RawStore, endpoints: dict[str, str] | None = None, sidecars: Iterable[Sidecar] = ()
) -> list[Target]:
    """The probes for one source: one per accepted live request (deduplicated), else per endpoint.

    `sidecars` are the source's latest accepted ones (`latest_sidecars`); with none (a
    source never fetched live) the module's endpoints are used instead, skipping templates.
    """
    accepted = [s for s in sidecars if s.mode in ("live", "curated")]
    targets: list[Target] = []
    if source == deis_deaths.SOURCE.id:
        targets, accepted = _plan_deis(store, endpoints or {}, accepted)
    if accepted:
        for sidecar in accepted:
            target = _target_for_url(source, sidecar.name, sidecar.request_url, sidecar.method, sidecar)
            targets.append(replace(target, retrieved_at=sidecar.retrieved_at))
    elif not targets:
        for name, url in (endpoints or {}).items():
            if "{" in url:  # a template filled in by the family (e.g. one URL per region)
                continue
            targets.append(_target_for_url(source, name, url))
    unique: dict[str, Target] = {}
    for target in targets:
        unique.setdefault(target.key, target)
    return list(unique.values())


def _plan_deis(
    store: RawStore, endpoints: dict[str, str], accepted: list[Sidecar]
) -> tuple[list[Target], list[Sidecar]]:
    """DEIS weekly files are versioned by name: ask the open-data page for the newest name."""
    weekly = [s for s in accepted if weekly_file_name(s.request_url)]
    others = [s for s in accepted if s not in weekly and s.name != "open-data-page"]
    page = endpoints.get("open_data_page")
    if not page:
        return [], others
    newest = max(weekly, key=lambda s: s.retrieved_at, default=None)
    baseline = f"deis:{weekly_file_name(newest.request_url)}" if newest else None
    target = Target(
        deis_deaths.SOURCE.id,
        "deaths-weekly",
        "deis_weekly",
        page,
        baseline=baseline,
        retrieved_at=newest.retrieved_at if newest else None,
    )
    return [target], others


def latest_sidecars(store: RawStore, source: str) -> list[Sidecar]:
    """The latest accepted sidecar of each of the source's requests (`latest/<source>/*.json`)."""
    folder = store.root / "latest" / source
    if not folder.is_dir():
        return []
    return [Sidecar(**json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


# --- asking --------------------------------------------------------------------------------


class Prober:
    """Carries out probes over one HTTP session: honest User-Agent, short timeouts, TLS on."""

    def __init__(self, session: requests.Session | None = None, timeout: tuple[float, float] = (5.0, 20.0)):
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.timeout = timeout
        self.requests_made = 0

    def probe(self, target: Target) -> Probe:
        try:
            if target.kind == "none":
                return Probe(target, None, detail="no cheap probe for this request (e.g. a POST form)")
            if target.kind == "file":
                return self._file(target)
            check_url(target.url)
            method = getattr(self, f"_{target.kind}")
            return method(target)
        except (requests.RequestException, EndpointError, OSError, ValueError) as exc:
            text = str(exc)
            return Probe(target, None, error=f"{redact_url(target.url)}: {text[:200]}")

    # Each probe kind below makes at most one request.

    def _request(self, method: str, url: str, headers: dict[str, str] | None = None) -> requests.Response:
        self.requests_made += 1
        return self.session.request(
            method,
            url,
            headers=headers or {},
            timeout=self.timeout,
            stream=True,
            verify=True,
            allow_redirects=True,
        )

    def _small_body(self, response: requests.Response) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            if size > MAX_PROBE_BODY:
                raise ValueError(f"probe answer larger than {MAX_PROBE_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _raise_for_status(response: requests.Response) -> None:
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code}")

    def _conditional_get(self, target: Target) -> Probe:
        headers = {}
        if target.etag:
            headers["If-None-Match"] = target.etag
        if target.last_modified:
            headers["If-Modified-Since"] = target.last_modified
        with self._request("GET", target.url, headers) as response:  # headers only: the body is never read
            if response.status_code == 304:
                return Probe(target, target.baseline, not_modified=True, detail="304 Not Modified")
            self._raise_for_status(response)
            validator = _http_validator(response.headers.get("ETag"), response.headers.get("Last-Modified"))
            return Probe(target, validator, detail=f"HTTP {response.status_code}")

    def _head(self, target: Target) -> Probe:
        with self._request("HEAD", target.url) as response:
            self._raise_for_status(response)
            headers = response.headers
            validator = _http_validator(headers.get("ETag"), headers.get("Last-Modified"))
            return Probe(target, validator, detail=f"HEAD {response.status_code}")

    def _sdmx_constraint(self, target: Target) -> Probe:
        with self._request("GET", target.url, {"Accept": "application/xml"}) as response:
            self._raise_for_status(response)
            body = self._small_body(response)
        # The message header carries a per-response id and timestamp; the constraint itself
        # (cube region, time range, observation count) is what changes with the data.
        content = SDMX_HEADER.sub(b"", body)
        if b"ContentConstraint" not in content:
            raise ValueError("answer is not an SDMX content constraint")
        count = OBS_COUNT.search(content)
        detail = f"obs_count={count.group(1).decode()}" if count else "constraint"
        return Probe(target, "sdmx:" + hashlib.sha256(content).hexdigest()[:24], detail=detail)

    def _deis_weekly(self, target: Target) -> Probe:
        with self._request("GET", target.url) as response:
            self._raise_for_status(response)
            body = self._small_body(response)
        url = deis_deaths.find_weekly_zip_url(decode_text(body, target.source), target.url)
        if url is None:
            raise ValueError("the page links no DEFUNCIONES_FUENTE_DEIS_<y0>_<y1>_<DDMMYYYY>.zip file")
        name = weekly_file_name(url)
        return Probe(target, f"deis:{name}", detail=f"newest weekly file {name}")

    def _arcgis_layer(self, target: Target) -> Probe:
        with self._request("GET", f"{target.url}?f=json") as response:
            self._raise_for_status(response)
            body = self._small_body(response)
        layer = json.loads(body)
        if "error" in layer:
            raise ValueError(f"ArcGIS error {layer['error']}")
        info = layer.get("editingInfo") or {}
        stamp = info.get("dataLastEditDate") or info.get("lastEditDate")
        if stamp is None:
            return Probe(target, None, detail="layer publishes no edit date")
        return Probe(target, f"arcgis:{stamp}", detail=f"lastEditDate {stamp}")

    def _file(self, target: Target) -> Probe:
        digest = hashlib.sha256(file_url_path(target.url).read_bytes()).hexdigest()
        return Probe(target, f"sha256:{digest}", detail="local file")

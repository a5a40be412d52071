"""The one fetch layer every source goes through.

It gives each request: a total deadline per attempt (connect, headers and body: a server
that trickles bytes is cut off, see `FetchLimits`); retries with exponential backoff on
connection errors, 429 and 5xx, honouring `Retry-After` up to a cap; a time budget per
source, after which its requests fail at once so the source falls back (stale, or sample)
and says why; an honest User-Agent; a size cap; conditional requests (ETag /
Last-Modified) against the raw store; refusal of HTML error pages, empty bodies and
truncated bodies; and a content-addressed copy of every accepted payload with its
provenance. Bytes identical to the request's last accepted payload are `unchanged`
whatever the validators say: no new snapshot. A stored payload that fails its hash check
is never reused: the request is made unconditionally and the object downloaded again.
Rejected payloads are quarantined, never stored as snapshots.
TLS verification is always on: there is deliberately no switch to turn it off.

The retry loop is written out rather than delegated to urllib3's `Retry` or tenacity:
each give-up keeps the failed body in quarantine, waits are charged to the source's
budget, and the sleep is injectable so tests never wait.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import requests

from sources.base import FetchError, FetchRequest, Payload, SourceInfo
from sources.endpoints import EndpointError, check_url, file_url_path
from sources.rawstore import SECRET_PARAMS, DamagedObject, RawStore, Sidecar, request_key, utc_now
from sources.transfer import Pace, TooLarge, TransferFailed, describe, read_body

log = logging.getLogger(__name__)

USER_AGENT = (
    "context-lens/0.1 (territorial context data pipeline; research use; "
    "+https://github.com/context-lens/context-lens)"
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_SECRET_IN_TEXT = re.compile(r"\b" + SECRET_PARAMS.pattern.strip("^$") + r"=[^&\s'\"#)]+", re.I)


@dataclass(frozen=True)
class FetchLimits:
    """Every time and size limit of the fetch layer, in seconds and bytes.

    `read_timeout` bounds one silence on the socket; `request_deadline` bounds one attempt
    from connect to the last byte; a transfer slower than `min_rate` bytes/s over
    `stall_window` seconds is abandoned as stalled; `source_budget` bounds every attempt and
    wait of every request of one source in one run. A `Retry-After` above `max_retry_after`
    is not waited for: the source falls back at once.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    request_deadline: float = 1800.0
    source_budget: float = 3600.0
    max_attempts: int = 4
    backoff_seconds: float = 2.0
    max_retry_after: float = 60.0
    min_rate: float = 1024.0
    stall_window: float = 60.0
    max_bytes: int = 2 * 1024**3

    def merged(self, overrides: dict | None) -> FetchLimits:
        """These limits with a source's overrides (ops.yaml `fetch:`) applied."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in (overrides or {}).items() if k in known})


def redact_url(url: str) -> str:
    """The URL with credential-like query values replaced, for logs, sidecars and errors."""
    parts = urlparse(url)
    if not parts.query:
        return url
    query = [(k, "REDACTED" if SECRET_PARAMS.match(k) else v) for k, v in parse_qsl(parts.query, True)]
    return urlunparse(parts._replace(query=urlencode(query, safe="[]{},:\"'")))


def redact_text(text: str) -> str:
    """Free text (an exception, a log line) with credential-like `name=value` pairs redacted."""
    return _SECRET_IN_TEXT.sub(r"\1=REDACTED", text)


class _RedactSecrets(logging.Filter):
    """urllib3 logs request lines and retried URLs, query included, at DEBUG: redact them first."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry", "urllib3.connection"):
    logging.getLogger(_name).addFilter(_RedactSecrets())


def looks_like_html(content: bytes) -> bool:
    return bool(_HTML_START.match(content[:512].lstrip(b"\xef\xbb\xbf")))


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not: what happened, what the server sent."""

    def __init__(self, problem: str, body: bytes | None = None, wait: float | None = None, asked: str = ""):
        super().__init__(problem)
        self.problem, self.body, self.wait, self.asked = problem, body, wait, asked


class HttpFetcher:
    """Fetch, check and store payloads; see the module docstring for the guarantees."""

    def __init__(
        self,
        store: RawStore,
        *,
        limits: FetchLimits | None = None,
        source_limits: dict[str, dict] | None = None,
        rate_limits: dict[str, int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        **overrides,
    ):
        self.store = store
        self.limits = (limits or FetchLimits()).merged(overrides)
        unknown = set(overrides) - {f.name for f in fields(FetchLimits)}
        if unknown:
            raise TypeError(f"unknown fetch limits {sorted(unknown)}")
        self.source_limits = source_limits or {}
        self.rate_limits = rate_limits or {}
        self.sleep = sleep
        self.clock = clock
        self.requests_made = 0
        self._budget_ends: dict[str, float] = {}
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.max_redirects = 5

    # -- public -------------------------------------------------------------------------

    def limits_for(self, source_id: str) -> FetchLimits:
        return self.limits.merged(self.source_limits.get(source_id))

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        try:
            url = check_url(request.url)
        except EndpointError as exc:
            raise FetchError(source.id, str(exc)) from exc
        key = request_key(request.method, url, request.params, request.data)
        previous = self.store.latest(source.id, key)
        cached = self._cached(source, previous)
        if urlparse(url).scheme == "file":
            content, status, headers = self._read_file(source, url), 200, {}
        else:
            content, status, headers = self._download(source, request, url, cached)
            if status == 304:
                return self._not_modified(source, request, url, cached)
        self._check_body(source, request, redact_url(url), content, headers)
        if previous is not None and previous.mode == "live" and previous.sha256 == _sha256(content):
            return self._identical(source, request, previous, content, headers)
        sidecar = self.store.put(
            source=source.id,
            name=request.name,
            content=content,
            request_url=redact_url(self._full_url(url, request)),
            method=request.method,
            key=key,
            mode="live",
            http_status=status,
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
            content_type=headers.get("Content-Type"),
            licence=source.licence,
        )
        return payload_from_sidecar(sidecar, content)

    def previous_live(self, source: SourceInfo, request: FetchRequest) -> Payload | None:
        """The newest stored live payload of this request, if any (for stale fallback).

        A payload whose stored bytes fail their hash check is never served: FetchError.
        """
        key = request_key(request.method, request.url, request.params, request.data)
        sidecar = self.store.latest(source.id, key)
        if sidecar is None or sidecar.mode != "live":
            return None
        problem = self.store.check_object(sidecar)
        if problem is None:
            try:
                return payload_from_sidecar(sidecar, self.store.read(sidecar.sha256))
            except DamagedObject:
                problem = self.store.check_object(sidecar)
        raise FetchError(
            source.id,
            f"the earlier live snapshot of {request.name} cannot be served: {problem}; "
            "incident recorded, the next successful fetch downloads it again",
            sidecar.snapshot_id,
        )

    # -- conditional requests and the raw store -------------------------------------------

    def _cached(self, source: SourceInfo, previous: Sidecar | None) -> Sidecar | None:
        """The request's last accepted payload for a conditional request, unless its bytes are gone or damaged."""
        if previous is None:
            return None
        problem = self.store.check_object(previous)
        if problem is None:
            return previous
        log.warning("%s: %s; fetching unconditionally to replace it", source.id, problem)
        return None

    def _not_modified(self, source: SourceInfo, request: FetchRequest, url: str, previous: Sidecar | None):
        if previous is None or previous.mode != "live":
            raise FetchError(
                source.id,
                f"HTTP 304 Not Modified from {redact_url(url)} for a request with no cached payload "
                "(no validators were sent): nothing to reuse",
            )
        log.info("%s %s: not modified, reusing snapshot %s", source.id, request.name, previous.snapshot_id)
        return payload_from_sidecar(previous, self.store.read(previous.sha256), not_modified=True)

    def _identical(
        self, source: SourceInfo, request: FetchRequest, previous: Sidecar, content: bytes, headers: dict
    ) -> Payload:
        """Same bytes as the last accepted payload: unchanged, whatever ETag or Last-Modified say."""
        self.store.write_object(content)
        current = self.store.refresh_validators(previous, headers.get("ETag"), headers.get("Last-Modified"))
        log.info(
            "%s %s: content identical to snapshot %s (sha256 %s): unchanged",
            source.id,
            request.name,
            previous.snapshot_id,
            previous.sha256[:12],
        )
        return payload_from_sidecar(current, content, not_modified=True)

    # -- transport ------------------------------------------------------------------------

    @staticmethod
    def _full_url(url: str, request: FetchRequest) -> str:
        if not request.params:
            return url
        prepared = requests.Request("GET", url, params=request.params).prepare()
        return prepared.url or url

    def _read_file(self, source: SourceInfo, url: str) -> bytes:
        try:
            path = file_url_path(url)
            cap = self.limits_for(source.id).max_bytes
            if path.stat().st_size > cap:
                raise FetchError(source.id, f"{url} is larger than the size cap of {cap} bytes")
            return path.read_bytes()
        except (OSError, EndpointError) as exc:
            raise FetchError(source.id, f"cannot read {redact_url(url)}: {redact_text(str(exc))}") from exc

    def _respect_rate_limit(self, source: SourceInfo, host: str) -> None:
        """Refuse a request beyond the host's hourly budget, counted across processes.

        Every request to a rate-limited host is logged under the raw store
        (`requests/<host>.log`, one UTC timestamp a line), so scheduled runs in separate
        processes share one budget (the OECD allows 60 data downloads an hour).
        """
        limit = self.rate_limits.get(host)
        if not limit:
            return
        log_path = self.store.root / "requests" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', host)}.log"
        now = datetime.now(UTC)
        cutoff = now - timedelta(hours=1)
        stamps = []
        if log_path.exists():
            for line in log_path.read_text().split():
                try:
                    stamp = datetime.fromisoformat(line)
                except ValueError:
                    continue
                if stamp > cutoff:
                    stamps.append(stamp)
        if len(stamps) >= limit:
            raise FetchError(
                source.id,
                f"rate limit: {limit} downloads per hour from {host} already used; "
                "try again later (cached snapshots are still served)",
            )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        kept = "".join(f"{stamp.isoformat()}\n" for stamp in stamps) + f"{now.isoformat()}\n"
        temp = log_path.with_suffix(".tmp")
        temp.write_text(kept)
        os.replace(temp, log_path)

    def _budget_end(self, source: SourceInfo) -> float:
        """When the source's time budget for this run ends (it starts with its first request)."""
        if source.id not in self._budget_ends:
            self._budget_ends[source.id] = self.clock() + self.limits_for(source.id).source_budget
        return self._budget_ends[source.id]

    def _download(
        self, source: SourceInfo, request: FetchRequest, url: str, previous: Sidecar | None
    ) -> tuple[bytes, int, dict[str, str]]:
        headers = dict(request.headers)
        if previous is not None and previous.mode == "live":
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        limits, shown = self.limits_for(source.id), redact_url(url)
        budget_end = self._budget_end(source)
        failure: _Retryable | None = None
        for attempt in range(1, limits.max_attempts + 1):
            remaining = budget_end - self.clock()
            if remaining <= 0:
                failure = _Retryable(
                    f"time budget of {limits.source_budget:g} s for {source.id} used up"
                    + (f" (last problem: {failure.problem})" if failure else f" before requesting {shown}"),
                    failure.body if failure else None,
                )
                break
            self._respect_rate_limit(source, urlparse(url).netloc)
            try:
                return self._attempt(source, request, url, headers, min(remaining, limits.request_deadline))
            except _Retryable as exc:
                failure = exc
            wait = failure.wait if failure.wait is not None else limits.backoff_seconds * 2 ** (attempt - 1)
            if failure.wait is not None and failure.wait > limits.max_retry_after:
                failure.problem += (
                    f": not retried, the wait asked for is beyond the cap of {limits.max_retry_after:g} s"
                )
                break
            if attempt == limits.max_attempts:
                break
            if self.clock() + wait >= budget_end:
                failure.problem += (
                    f"; time budget of {limits.source_budget:g} s for {source.id} used up (not retried)"
                )
                break
            log.warning("%s: %s; retrying in %.1fs (attempt %d)", source.id, failure.problem, wait, attempt)
            self.sleep(wait)
        assert failure is not None
        if failure.body is not None:
            self.store.quarantine(
                source=source.id,
                name=request.name,
                content=failure.body,
                request_url=shown,
                reason=failure.problem,
            )
        raise FetchError(source.id, f"gave up after {attempt} attempt(s): {failure.problem}")

    def _attempt(
        self, source: SourceInfo, request: FetchRequest, url: str, headers: dict, seconds: float
    ) -> tuple[bytes, int, dict[str, str]]:
        """One request, every phase within `seconds`; _Retryable for what another attempt may fix."""
        limits, shown = self.limits_for(source.id), redact_url(url)
        deadline = self.clock() + seconds
        self.requests_made += 1
        try:
            with self._session.request(
                request.method,
                url,
                params=request.params,
                data=request.data,
                headers=headers,
                timeout=(min(limits.connect_timeout, seconds), max(0.01, min(limits.read_timeout, seconds))),
                stream=True,
                verify=True,
            ) as response:
                if response.status_code in RETRY_STATUSES:
                    body = self._read_body(source, request, response, shown, deadline, cap=4096)
                    problem = f"HTTP {response.status_code} from {shown}"
                    asked = response.headers.get("Retry-After")
                    wait = _retry_after_seconds(asked)
                    if asked:
                        problem += f" (Retry-After {asked})"
                    raise _Retryable(problem, body, wait, asked or "")
                if response.status_code == 304:
                    return b"", 304, dict(response.headers)
                if response.status_code >= 400:
                    body = self._read_body(source, request, response, shown, deadline, cap=4096)
                    self.store.quarantine(
                        source=source.id,
                        name=request.name,
                        content=body,
                        request_url=shown,
                        reason=f"HTTP {response.status_code}",
                    )
                    raise FetchError(source.id, f"HTTP {response.status_code} from {shown}")
                content = self._read_body(source, request, response, shown, deadline)
                return content, response.status_code, dict(response.headers)
        except requests.TooManyRedirects as exc:
            raise FetchError(source.id, f"redirect loop or too many redirects at {shown}") from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise _Retryable(
                f"connection reset or body cut mid-transfer at {shown}: {_describe(exc)}"
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            if _is_name_resolution_failure(exc):
                raise FetchError(
                    source.id, f"host not reachable (name resolution failed) for {shown}"
                ) from exc
            raise _Retryable(f"{type(exc).__name__} at {shown}: {_describe(exc)}") from exc

    def _read_body(
        self,
        source: SourceInfo,
        request: FetchRequest,
        response: requests.Response,
        shown: str,
        deadline: float,
        cap: int | None = None,
    ) -> bytes:
        """The body within the attempt's deadline (`sources.transfer`); what arrived of a broken one is kept."""
        limits = self.limits_for(source.id)
        pace = Pace(deadline, limits.read_timeout, limits.min_rate, limits.stall_window, self.clock)
        declared = response.headers.get("Content-Length")

        def progress(size: int) -> None:
            log.info(
                "%s %s: %d MB of %s bytes received", source.id, request.name, size >> 20, declared or "?"
            )

        try:
            content = read_body(response, pace, max_bytes=limits.max_bytes, cap=cap, progress=progress)
        except TooLarge as exc:
            raise FetchError(source.id, f"{shown} is {exc}") from exc
        except TransferFailed as exc:
            self._quarantine(source, request, exc.partial, shown, f"{exc.problem} (what arrived is kept)")
            raise _Retryable(f"{exc.problem} from {shown}") from exc
        encoded = response.headers.get("Content-Encoding")
        if cap is None and declared and declared.isdigit() and not encoded and int(declared) != len(content):
            self._quarantine(source, request, content, shown, "truncated body")
            raise _Retryable(f"truncated body from {shown}: {len(content)} of {declared} bytes")
        return content

    def _quarantine(
        self, source: SourceInfo, request: FetchRequest, content: bytes, shown: str, why: str
    ) -> None:
        self.store.quarantine(
            source=source.id, name=request.name, content=content, request_url=shown, reason=why
        )

    def _check_body(
        self, source: SourceInfo, request: FetchRequest, shown: str, content: bytes, headers: dict[str, str]
    ) -> None:
        problem = None
        content_type = (headers.get("Content-Type") or "").lower()
        if not content.strip():
            problem = f"empty body from {shown}"
        elif request.expect not in ("html", "any") and (
            looks_like_html(content) or "text/html" in content_type
        ):
            problem = f"an HTML page was served where {request.expect} was expected, from {shown}"
        if problem:
            self.store.quarantine(
                source=source.id, name=request.name, content=content, request_url=shown, reason=problem
            )
            raise FetchError(source.id, problem)


def payload_from_sidecar(sidecar: Sidecar, content: bytes, not_modified: bool = False) -> Payload:
    return Payload(
        source=sidecar.source,
        name=sidecar.name,
        url=sidecar.request_url,
        content=content,
        sha256=sidecar.sha256,
        retrieved_at=sidecar.retrieved_at,
        mode=sidecar.mode,
        snapshot_id=sidecar.snapshot_id,
        status=sidecar.http_status or 200,
        etag=sidecar.etag,
        last_modified=sidecar.last_modified,
        not_modified=not_modified,
        content_type=sidecar.content_type,
    )


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _is_name_resolution_failure(exc: Exception) -> bool:
    """DNS failures do not heal in seconds: retrying them only delays the offline fallback."""
    text = repr(exc)
    return "NameResolutionError" in text or "Failed to resolve" in text or "Name or service not known" in text


def _describe(exc: Exception) -> str:
    return redact_text(describe(exc))


__all__ = [
    "FetchLimits",
    "HttpFetcher",
    "USER_AGENT",
    "redact_url",
    "redact_text",
    "looks_like_html",
    "utc_now",
]

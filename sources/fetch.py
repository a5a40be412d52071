"""The one fetch layer every source goes through.

It gives each request: timeouts; retries with exponential backoff on connection errors,
429 and 5xx, honouring `Retry-After`; an honest User-Agent; a size cap; conditional
requests (ETag / Last-Modified) against the raw store; refusal of HTML error pages, empty
bodies and truncated bodies; and a content-addressed copy of every accepted payload with
its provenance. Rejected payloads are quarantined, never stored as snapshots.
TLS verification is always on: there is deliberately no switch to turn it off.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import requests

from sources.base import FetchError, FetchRequest, Payload, SourceInfo
from sources.endpoints import EndpointError, check_url, file_url_path
from sources.rawstore import SECRET_PARAMS, RawStore, Sidecar, request_key, utc_now

log = logging.getLogger(__name__)

USER_AGENT = (
    "context-lens/0.1 (territorial context data pipeline; research use; "
    "+https://github.com/context-lens/context-lens)"
)
PROGRESS_EVERY_BYTES = 50 * 1024**2  # a progress line in the run log per 50 MB of a long download
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_SECRET_IN_TEXT = re.compile(r"\b" + SECRET_PARAMS.pattern.strip("^$") + r"=[^&\s'\"#)]+", re.I)


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


class _TruncatedBody(FetchError):
    """A body shorter than its Content-Length: retried like a broken connection."""


class HttpFetcher:
    """Fetch, check and store payloads; see the module docstring for the guarantees."""

    def __init__(
        self,
        store: RawStore,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_attempts: int = 4,
        backoff_seconds: float = 2.0,
        max_retry_after: float = 300.0,
        max_bytes: int = 2 * 1024**3,
        rate_limits: dict[str, int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_retry_after = max_retry_after
        self.max_bytes = max_bytes
        self.rate_limits = rate_limits or {}
        self.sleep = sleep
        self.requests_made = 0
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.max_redirects = 5

    # -- public -------------------------------------------------------------------------

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        try:
            url = check_url(request.url)
        except EndpointError as exc:
            raise FetchError(source.id, str(exc)) from exc
        key = request_key(request.method, url, request.params, request.data)
        previous = self.store.latest(source.id, key)
        if urlparse(url).scheme == "file":
            content, status, headers = self._read_file(source, url), 200, {}
        else:
            content, status, headers = self._download(source, request, url, previous)
            if status == 304 and previous is not None:
                log.info(
                    "%s %s: not modified, reusing snapshot %s", source.id, request.name, previous.snapshot_id
                )
                return payload_from_sidecar(previous, self.store.read(previous.sha256), not_modified=True)
        self._check_body(source, request, redact_url(url), content, headers)
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
        """The newest stored live payload of this request, if any (for stale fallback)."""
        key = request_key(request.method, request.url, request.params, request.data)
        sidecar = self.store.latest(source.id, key)
        if sidecar is None or sidecar.mode != "live":
            return None
        return payload_from_sidecar(sidecar, self.store.read(sidecar.sha256))

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _full_url(url: str, request: FetchRequest) -> str:
        if not request.params:
            return url
        prepared = requests.Request("GET", url, params=request.params).prepare()
        return prepared.url or url

    def _read_file(self, source: SourceInfo, url: str) -> bytes:
        try:
            path = file_url_path(url)
            if path.stat().st_size > self.max_bytes:
                raise FetchError(source.id, f"{url} is larger than the size cap of {self.max_bytes} bytes")
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

    def _download(
        self, source: SourceInfo, request: FetchRequest, url: str, previous: Sidecar | None
    ) -> tuple[bytes, int, dict[str, str]]:
        headers = dict(request.headers)
        if previous is not None and previous.mode == "live":
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        shown = redact_url(url)
        last_problem = "no attempt made"
        last_body: bytes | None = None  # the body of the last retryable error, kept if we give up
        for attempt in range(1, self.max_attempts + 1):
            self._respect_rate_limit(source, urlparse(url).netloc)
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                self.requests_made += 1
                with self._session.request(
                    request.method,
                    url,
                    params=request.params,
                    data=request.data,
                    headers=headers,
                    timeout=self.timeout,
                    stream=True,
                    verify=True,
                ) as response:
                    if response.status_code in RETRY_STATUSES:
                        last_body = response.raw.read(4096, decode_content=True) or b""
                        after = _retry_after_seconds(response.headers.get("Retry-After"))
                        last_problem = f"HTTP {response.status_code} from {shown}"
                        if after is not None:
                            wait = min(after, self.max_retry_after)
                            last_problem += f" (Retry-After {response.headers.get('Retry-After')})"
                    elif response.status_code == 304:
                        return b"", 304, dict(response.headers)
                    elif response.status_code >= 400:
                        body = response.raw.read(4096, decode_content=True) or b""
                        self.store.quarantine(
                            source=source.id,
                            name=request.name,
                            content=body,
                            request_url=shown,
                            reason=f"HTTP {response.status_code}",
                        )
                        raise FetchError(source.id, f"HTTP {response.status_code} from {shown}")
                    else:
                        return (
                            self._read_body(source, request, response, shown),
                            response.status_code,
                            dict(response.headers),
                        )
            except requests.TooManyRedirects as exc:
                raise FetchError(source.id, f"redirect loop or too many redirects at {shown}") from exc
            except _TruncatedBody as exc:
                last_body, last_problem = None, exc.problem
            except requests.exceptions.ChunkedEncodingError as exc:
                last_body = None
                last_problem = f"connection reset or body cut mid-transfer at {shown}: {_describe(exc)}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_body = None
                last_problem = f"{type(exc).__name__} at {shown}: {_describe(exc)}"
                if _is_name_resolution_failure(exc):
                    raise FetchError(
                        source.id, f"host not reachable (name resolution failed) for {shown}"
                    ) from exc
            if attempt < self.max_attempts:
                log.warning("%s: %s; retrying in %.1fs (attempt %d)", source.id, last_problem, wait, attempt)
                self.sleep(wait)
        if last_body is not None:
            self.store.quarantine(
                source=source.id, name=request.name, content=last_body, request_url=shown, reason=last_problem
            )
        raise FetchError(source.id, f"gave up after {self.max_attempts} attempts: {last_problem}")

    def _read_body(
        self, source: SourceInfo, request: FetchRequest, response: requests.Response, shown: str
    ) -> bytes:
        chunks, size = [], 0
        if not response.headers.get("Content-Encoding"):
            # Count against Content-Length below instead of letting urllib3 raise and drop the bytes.
            response.raw.enforce_content_length = False
        declared_total = response.headers.get("Content-Length", "?")
        next_report = PROGRESS_EVERY_BYTES
        try:
            for chunk in response.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                if size >= next_report:
                    log.info(
                        "%s %s: %d MB of %s bytes received",
                        source.id,
                        request.name,
                        size >> 20,
                        declared_total,
                    )
                    next_report += PROGRESS_EVERY_BYTES
                if size > self.max_bytes:
                    raise FetchError(
                        source.id, f"{shown} is larger than the size cap of {self.max_bytes} bytes"
                    )
                chunks.append(chunk)
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
            # Keep what did arrive: where a transfer breaks says a lot (a proxy's cap, a reset).
            self.store.quarantine(
                source=source.id,
                name=request.name,
                content=b"".join(chunks),
                request_url=shown,
                reason=f"transfer broken after {size} bytes: {_describe(exc)}",
            )
            raise
        content = b"".join(chunks)
        declared = response.headers.get("Content-Length")
        encoded = response.headers.get("Content-Encoding")
        if declared and declared.isdigit() and not encoded and int(declared) != len(content):
            self.store.quarantine(
                source=source.id,
                name=request.name,
                content=content,
                request_url=shown,
                reason="truncated body",
            )
            raise _TruncatedBody(
                source.id, f"truncated body from {shown}: {len(content)} of {declared} bytes"
            )
        return content

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


def _is_name_resolution_failure(exc: Exception) -> bool:
    """DNS failures do not heal in seconds: retrying them only delays the offline fallback."""
    text = repr(exc)
    return "NameResolutionError" in text or "Failed to resolve" in text or "Name or service not known" in text


def _describe(exc: Exception) -> str:
    """The root cause of a requests error, credentials redacted, short enough for a status row.

    requests wraps urllib3 errors whose text repeats the URL, query string included, before
    the reason ('[Errno 111] Connection refused'); the reason is what a reader needs.
    """
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None) or inner or exc
    return _short(redact_text(str(reason)))


def _short(exc: Exception | str) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"


__all__ = ["HttpFetcher", "USER_AGENT", "redact_url", "redact_text", "looks_like_html", "utc_now"]

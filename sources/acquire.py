"""Which payload a run uses: live if it can be had, else the last live one, else the sample.

The policy, the same for every source:
1. fetch live (conditionally, so an unchanged upstream costs one small request);
2. if that fails and the raw store holds an earlier live snapshot of the same request,
   reuse it and report the source as `stale` with the error;
3. only if there is no earlier live snapshot, use the shipped sample (mode `sample`);
4. with neither, raise the fetch error.
Sample data never replaces real data: step 3 is unreachable once a live snapshot exists,
even one of the same request name fetched from another URL (a moved endpoint): then the
fetch error is raised instead.
Offline runs skip step 1.

A multi-request protocol (ArcGIS paging, a POST form walk, the parts of a shapefile) goes
through `acquire_walk`, which applies the same policy to the walk as one unit: all payloads
come from one live walk, or all from the earlier live walk, or one sample stands for all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sources.base import Fetcher, FetchError, FetchRequest, Mode, Payload, SourceError, SourceInfo
from sources.fetch import HttpFetcher, payload_from_sidecar
from sources.rawstore import Sidecar, request_key

log = logging.getLogger(__name__)
# Marks a fallback line: the asset that acquired the payload reports the same fallback in its run
# log, so the CLI shows that one line and drops this one (`pipelines.progress`).
FALLBACK = {"fallback": True}

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


@dataclass(frozen=True)
class Acquired:
    payload: Payload
    status: str  # live | unchanged | stale | sample
    error: str | None = None


class Acquirer:
    """Carries out the policy above over one `HttpFetcher`."""

    def __init__(self, fetcher: HttpFetcher, offline: bool = False):
        self.fetcher = fetcher
        self.offline = offline

    def acquire(self, source: SourceInfo, request: FetchRequest, sample: Path | None) -> Acquired:
        error: str | None = "offline run: live fetch skipped"
        problem = error
        if not self.offline:
            try:
                payload = self.fetcher.fetch(source, request)
                return Acquired(payload, "unchanged" if payload.not_modified else "live")
            except FetchError as exc:
                error, problem = str(exc), exc.problem
        try:
            previous = self.fetcher.previous_live(source, request)
        except FetchError as exc:  # the earlier live payload is damaged in the raw store: never served
            raise FetchError(source.id, f"{problem}; {exc.problem}", exc.snapshot) from exc
        if previous is not None:
            log.warning(
                "%s: %s; serving earlier live snapshot %s",
                source.id,
                error,
                previous.snapshot_id,
                extra=FALLBACK,
            )
            return Acquired(previous, "stale", error)
        if sample is None:
            raise FetchError(source.id, f"{error}; no earlier live snapshot and no sample to fall back on")
        self._never_over_live(source, request.name, error)
        log.warning(
            "%s: %s; no earlier live snapshot, using SAMPLE data %s",
            source.id,
            error,
            sample.name,
            extra=FALLBACK,
        )
        return Acquired(self._store_sample(source, request, sample), "sample", error)

    def acquire_walk(
        self,
        source: SourceInfo,
        walk: Callable[[Fetcher], list[Payload]],
        sample: Path | None,
        sample_request: FetchRequest,
    ) -> list[Acquired]:
        """Acquire a multi-request walk as one unit, never mixing payloads of different walks.

        `walk(fetcher)` performs every request through the fetcher it is given and returns
        the payloads. Live: the walk runs on the real fetcher. Stale: the same walk is
        replayed over each request's earlier live payload, so it follows the path the last
        good walk took (a request without one makes the replay fail). Sample: one shipped
        file stands for the whole unit, filed under `sample_request`. A parse error raised
        inside a live walk (an ArcGIS error answered with HTTP 200) is no fetch failure: the
        payloads fetched so far are quarantined and the error propagates.
        """
        error: str | None = "offline run: live fetch skipped"
        if not self.offline:
            recorder = _RecordingFetcher(self.fetcher)
            try:
                return [Acquired(p, "unchanged" if p.not_modified else "live") for p in walk(recorder)]
            except FetchError as exc:
                error = str(exc)
            except SourceError as exc:
                for payload in recorder.payloads:
                    self.reject(Acquired(payload, "live"), str(exc))
                raise
        try:
            previous = walk(_PreviousLiveFetcher(self.fetcher))
        except _NoPreviousLive:
            previous = None
        except FetchError as exc:  # an earlier live payload of the walk is damaged: never served
            raise FetchError(source.id, f"{error}; {exc.problem}", exc.snapshot) from exc
        if previous:
            log.warning(
                "%s: %s; serving the earlier live walk (%d payloads)",
                source.id,
                error,
                len(previous),
                extra=FALLBACK,
            )
            return [Acquired(payload, "stale", error) for payload in previous]
        if sample is None:
            raise FetchError(source.id, f"{error}; no earlier live walk and no sample to fall back on")
        # A walk's requests change with its parameters (years, pages), so any live payload of
        # the source counts: the sample never stands in for a source that has had live data.
        self._never_over_live(source, None, error)
        log.warning(
            "%s: %s; no earlier live walk, using SAMPLE data %s",
            source.id,
            error,
            sample.name,
            extra=FALLBACK,
        )
        return [Acquired(self._store_sample(source, sample_request, sample), "sample", error)]

    def _never_over_live(self, source: SourceInfo, name: str | None, error: str | None) -> None:
        """Refuse the sample when `name` (any request if None) has live data under another key."""
        live = self.fetcher.store.latest_live(source.id, name)
        if live is not None:
            raise FetchError(
                source.id,
                f"{error}; not falling back on SAMPLE data: live data of {name or source.id!r} exists (snapshot "
                f"{live.snapshot_id} from {live.request_url}), and sample data never replaces live data",
            )

    def accept(self, acquired: Acquired) -> None:
        """The payload parsed and validated: it becomes the request's last good snapshot.

        An unchanged payload is its request's latest already, perhaps with fresher validators
        (identical bytes under a new ETag): that pointer is kept.
        """
        store = self.fetcher.store
        sidecar = store.sidecar(acquired.payload.source, acquired.payload.snapshot_id)
        current = store.latest(sidecar.source, sidecar.request_key)
        if current is None or current.snapshot_id != sidecar.snapshot_id:
            store.promote(sidecar)

    def reject(self, acquired: Acquired, reason: str) -> None:
        """The payload failed to parse or validate: keep a copy aside for diagnosis."""
        payload = acquired.payload
        self.fetcher.store.quarantine(
            source=payload.source,
            name=payload.name,
            content=payload.content,
            request_url=payload.url,
            reason=reason,
        )

    def curated(self, source: SourceInfo, name: str, path: Path) -> Acquired:
        """A file maintained in this repository (e.g. figures transcribed from PDFs), as a `curated` snapshot.

        There is nothing to fetch and nothing to fall back on: the file is the source. It is
        promoted like a live payload, only once it has validated (`accept`).
        """
        key = "curated-" + request_key("GET", path.resolve().as_uri())
        sidecar, content = self._file_local(
            source,
            name,
            path,
            key,
            "curated",
            source.licence,
            f"curated file {path.name}, kept in the repository",
        )
        return Acquired(payload_from_sidecar(sidecar, content), "curated")

    def _store_sample(self, source: SourceInfo, request: FetchRequest, sample: Path) -> Payload:
        # Sample payloads are filed under their own key, so they never pose as the live request.
        key = "sample-" + request_key(request.method, request.url, request.params, request.data)
        sidecar, content = self._file_local(
            source,
            request.name,
            sample,
            key,
            "sample",
            "sample data written by the context-lens maintainers; not real data",
            f"SAMPLE stand-in for {request.url}",
        )
        self.fetcher.store.promote(sidecar)
        return payload_from_sidecar(sidecar, content)

    def _file_local(
        self, source: SourceInfo, name: str, path: Path, key: str, mode: Mode, licence: str, note: str
    ) -> tuple[Sidecar, bytes]:
        """Store a repository file under `key`; a new snapshot only when its content changed."""
        content = path.read_bytes()
        store = self.fetcher.store
        sidecar = store.latest(source.id, key)
        if sidecar is not None and sidecar.sha256 == hashlib.sha256(content).hexdigest():
            store.write_object(content)  # heals a damaged or missing copy of the same file
        else:
            sidecar = store.put(
                source=source.id,
                name=name,
                content=content,
                request_url=path.resolve().as_uri(),
                key=key,
                mode=mode,
                licence=licence,
                note=note,
            )
        return sidecar, content


class _RecordingFetcher:
    """Passes requests to the real fetcher and keeps every payload it returned."""

    def __init__(self, fetcher: HttpFetcher):
        self.fetcher = fetcher
        self.payloads: list[Payload] = []

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        payload = self.fetcher.fetch(source, request)
        self.payloads.append(payload)
        return payload


class _NoPreviousLive(FetchError):
    """A replayed request has no earlier live payload."""


class _PreviousLiveFetcher:
    """Answers each request with its earlier live payload, for replaying a walk offline."""

    def __init__(self, fetcher: HttpFetcher):
        self.fetcher = fetcher

    def fetch(self, source: SourceInfo, request: FetchRequest) -> Payload:
        previous = self.fetcher.previous_live(source, request)
        if previous is None:
            raise _NoPreviousLive(source.id, f"no earlier live payload for {request.name}")
        return previous

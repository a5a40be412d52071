"""The immutable raw store: every payload kept once, by content, beside its provenance.

Layout under the store root:
- `objects/ab/<sha256>`: payload bytes, written once, never changed;
- `snapshots/<source>/<snapshot_id>.json`: one provenance sidecar per fetched payload;
- `latest/<source>/<request key>.json`: the newest *accepted* sidecar of a request (see
  `promote`), for conditional requests and for deciding whether an earlier live snapshot exists;
- `quarantine/<source>/<stamp>-<sha12>.{bin,json}`: rejected payloads kept for diagnosis.
Every write goes to a temporary file first and is renamed into place, so a crash never
leaves half a payload or half a sidecar.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sources.base import Mode


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Query parameters that carry credentials: shown redacted (sources.fetch.redact_url) and kept out of keys.
SECRET_PARAMS = re.compile(r"^(user|pass|password|token|key|apikey|api_key|access_token|secret)$", re.I)


def crashpoint(name: str) -> None:
    """Die here, as abruptly as a power cut, when `CONTEXT_LENS_CRASH_AT` names this point.

    A no-op otherwise. The crash-safety tests (tests/faults) set the variable in a child
    process to prove that a kill at any named point leaves the last committed state.
    """
    if os.environ.get("CONTEXT_LENS_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def request_key(method: str, url: str, params: Any = None, data: Any = None) -> str:
    """A stable key for 'the same request', so its history can be found again.

    Credential-like params are left out: a changed password is still the same request, and
    no hash of a secret ends up in a file name of the raw store.
    """
    if isinstance(params, dict):
        params = {k: v for k, v in params.items() if not SECRET_PARAMS.match(str(k))}
    canonical = json.dumps([method.upper(), url, params, data], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Sidecar:
    """Provenance of one stored payload; mirrors a row of `core.snapshots`."""

    snapshot_id: str
    source: str
    name: str
    request_key: str
    request_url: str
    method: str
    retrieved_at: str
    sha256: str
    bytes: int
    mode: Mode
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    licence: str | None = None
    note: str | None = None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _safe_segment(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}", text) or ".." in text:
        raise ValueError(f"unsafe store path segment: {text!r}")
    return text


class RawStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        data = self.object_path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"raw store object {sha256} does not match its hash: the store is corrupt")
        return data

    def put(
        self,
        *,
        source: str,
        name: str,
        content: bytes,
        request_url: str,
        method: str = "GET",
        key: str,
        mode: Mode,
        retrieved_at: str | None = None,
        **extra: Any,
    ) -> Sidecar:
        """Store a payload (once per content) and a new sidecar; update the request's latest."""
        sha = hashlib.sha256(content).hexdigest()
        target = self.object_path(sha)
        if not target.exists():
            _atomic_write(target, content)
        crashpoint("rawstore.put:after_object")
        retrieved_at = retrieved_at or utc_now()
        stamp = re.sub(r"[^0-9]", "", retrieved_at)[:14]
        sidecar = Sidecar(
            snapshot_id=f"{source}-{stamp}-{sha[:12]}",
            source=source,
            name=name,
            request_key=key,
            request_url=request_url,
            method=method,
            retrieved_at=retrieved_at,
            sha256=sha,
            bytes=len(content),
            mode=mode,
            **extra,
        )
        body = json.dumps(asdict(sidecar), indent=2, sort_keys=True).encode()
        _atomic_write(self.root / "snapshots" / _safe_segment(source) / f"{sidecar.snapshot_id}.json", body)
        return sidecar

    def promote(self, sidecar: Sidecar) -> None:
        """Make a payload the request's latest good one, once it has parsed and validated.

        Until then, conditional requests and stale fallbacks keep using the previous good
        payload, so a bad payload can never become 'what we have'.
        """
        body = json.dumps(asdict(sidecar), indent=2, sort_keys=True).encode()
        _atomic_write(
            self.root / "latest" / _safe_segment(sidecar.source) / f"{sidecar.request_key}.json", body
        )

    def latest(self, source: str, key: str) -> Sidecar | None:
        path = self.root / "latest" / _safe_segment(source) / f"{key}.json"
        if not path.exists():
            return None
        return Sidecar(**json.loads(path.read_text()))

    def latest_live(self, source: str, name: str | None = None) -> Sidecar | None:
        """The newest accepted live sidecar of a request name (any name if None), under any request key."""
        folder = self.root / "latest" / _safe_segment(source)
        found = [Sidecar(**json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]
        live = [s for s in found if s.mode == "live" and (name is None or s.name == name)]
        return max(live, key=lambda s: (s.retrieved_at, s.snapshot_id)) if live else None

    def sidecar(self, source: str, snapshot_id: str) -> Sidecar:
        path = self.root / "snapshots" / _safe_segment(source) / f"{_safe_segment(snapshot_id)}.json"
        return Sidecar(**json.loads(path.read_text()))

    def sidecars(self, source: str | None = None) -> list[Sidecar]:
        base = self.root / "snapshots"
        pattern = f"{_safe_segment(source)}/*.json" if source else "*/*.json"
        return sorted(
            (Sidecar(**json.loads(p.read_text())) for p in base.glob(pattern)),
            key=lambda s: (s.retrieved_at, s.snapshot_id),
        )

    def quarantine(self, *, source: str, name: str, content: bytes, request_url: str, reason: str) -> Path:
        """Keep a rejected payload and the reason, so the failure can be diagnosed later."""
        sha = hashlib.sha256(content).hexdigest()
        stamp = re.sub(r"[^0-9]", "", utc_now())
        base = self.root / "quarantine" / _safe_segment(source) / f"{stamp}-{sha[:12]}"
        _atomic_write(base.with_suffix(".bin"), content)
        meta = {"source": source, "name": name, "request_url": request_url, "reason": reason, "sha256": sha}
        _atomic_write(base.with_suffix(".json"), json.dumps(meta, indent=2).encode())
        return base.with_suffix(".bin")

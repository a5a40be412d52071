"""The immutable raw store: every payload kept once, by content, beside its provenance.

Layout under the store root:
- `objects/ab/<sha256>`: payload bytes, written once, never changed;
- `snapshots/<source>/<snapshot_id>.json`: one provenance sidecar per fetched payload;
- `latest/<source>/<request key>.json`: the newest *accepted* sidecar of a request (see
  `promote`), for conditional requests and for deciding whether an earlier live snapshot exists;
- `quarantine/<source>/<stamp>-<sha12>.{bin,json}`: rejected payloads kept for diagnosis;
- `incidents/<source>.jsonl`: one line per damaged or missing object found (see `check_object`).
Every write goes to a temporary file first and is renamed into place, so a crash never
leaves half a payload or half a sidecar.

The store heals: an object that fails its hash check, or is missing, is never served. It
is moved to quarantine, the incident is recorded, and the next fetch downloads it again
(`put` rewrites any object whose bytes do not match their name).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import signal
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sources.base import Mode


class DamagedObject(OSError):
    """A raw-store object whose bytes no longer match their hash."""


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


def failpoint(name: str) -> None:
    """Fail here as a full disk would (ENOSPC), when `CONTEXT_LENS_FAIL_AT` names this point.

    A no-op otherwise. The fault matrix sets it to prove that a write that fails is
    recorded as failed, with the reason, and leaves the last committed state.
    """
    if os.environ.get("CONTEXT_LENS_FAIL_AT") == name:
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")


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


def _written_temp(path: Path, data: bytes) -> str:
    """`data` written and synced to a temporary file beside `path`; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def _atomic_write(path: Path, data: bytes) -> None:
    temp = _written_temp(path, data)
    try:
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _exclusive_write(path: Path, data: bytes) -> bool:
    """Write `path` whole and only if it does not exist yet (a hard link publishes the written
    file atomically and fails on an existing name); False when another writer has it."""
    temp = _written_temp(path, data)
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        Path(temp).unlink(missing_ok=True)


def _safe_segment(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}", text) or ".." in text:
        raise ValueError(f"unsafe store path segment: {text!r}")
    return text


class RawStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._damage_found: dict[str, str] = {}  # sha256 -> problem, as first found by this process

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        data = self.object_path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DamagedObject(f"raw store object {sha256} does not match its hash: the store is corrupt")
        return data

    def object_ok(self, sha256: str) -> bool:
        """Whether the object exists and its bytes hash to its name (read in 1 MB blocks)."""
        path = self.object_path(sha256)
        if not path.is_file():
            return False
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == sha256

    def check_object(self, sidecar: Sidecar) -> str | None:
        """None when the sidecar's object is intact; else the problem, with the incident recorded.

        A damaged object is moved to quarantine (kept for diagnosis, never served again), so the
        next `put` of the same content writes it afresh.
        """
        path = self.object_path(sidecar.sha256)
        if self.object_ok(sidecar.sha256):
            self._damage_found.pop(sidecar.sha256, None)
            return None
        if sidecar.sha256 in self._damage_found:  # found (and quarantined) earlier in this run
            return (
                f"raw store object of snapshot {sidecar.snapshot_id} is {self._damage_found[sidecar.sha256]}"
            )
        problem = "missing" if not path.is_file() else "damaged (its bytes do not match its sha256)"
        self._damage_found[sidecar.sha256] = problem
        if path.is_file():
            damaged = path.read_bytes()
            self.quarantine(
                source=sidecar.source,
                name=sidecar.name,
                content=damaged,
                request_url=sidecar.request_url,
                reason=f"raw store object {sidecar.sha256} of snapshot {sidecar.snapshot_id} failed its hash check",
            )
            path.unlink(missing_ok=True)
        self.record_incident(sidecar, problem)
        return f"raw store object of snapshot {sidecar.snapshot_id} is {problem}"

    def record_incident(self, sidecar: Sidecar, problem: str) -> None:
        line = json.dumps(
            {
                "at": utc_now(),
                "source": sidecar.source,
                "snapshot_id": sidecar.snapshot_id,
                "sha256": sidecar.sha256,
                "problem": problem,
                "action": "not served; quarantined if present; downloaded again on the next fetch",
            },
            sort_keys=True,
        )
        path = self.root / "incidents" / f"{_safe_segment(sidecar.source)}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def incidents(self, source: str | None = None) -> list[dict]:
        folder = self.root / "incidents"
        paths = [folder / f"{_safe_segment(source)}.jsonl"] if source else sorted(folder.glob("*.jsonl"))
        return [json.loads(line) for path in paths if path.exists() for line in path.read_text().splitlines()]

    def write_object(self, content: bytes) -> str:
        """Store the bytes under their hash unless an intact copy is there already; return the hash."""
        sha = hashlib.sha256(content).hexdigest()
        if not self.object_ok(sha):
            _atomic_write(self.object_path(sha), content)
        return sha

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
        sha = self.write_object(content)
        crashpoint("rawstore.put:after_object")
        retrieved_at = retrieved_at or utc_now()
        stamp = re.sub(r"[^0-9]", "", retrieved_at)[:14]
        base = f"{source}-{stamp}-{sha[:12]}"
        folder = self.root / "snapshots" / _safe_segment(source)
        for attempt in itertools.count(1):
            # Two processes storing the same payload in the same second (two runs at once) get
            # two snapshots: the id is claimed by creating its sidecar, never by overwriting one.
            sidecar = Sidecar(
                snapshot_id=base if attempt == 1 else f"{base}-{attempt}",
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
            if _exclusive_write(folder / f"{sidecar.snapshot_id}.json", body):
                return sidecar
        raise AssertionError("unreachable")

    def promote(self, sidecar: Sidecar) -> None:
        """Make a payload the request's latest good one, once it has parsed and validated.

        Until then, conditional requests and stale fallbacks keep using the previous good
        payload, so a bad payload can never become 'what we have'.
        """
        body = json.dumps(asdict(sidecar), indent=2, sort_keys=True).encode()
        _atomic_write(
            self.root / "latest" / _safe_segment(sidecar.source) / f"{sidecar.request_key}.json", body
        )

    def refresh_validators(self, sidecar: Sidecar, etag: str | None, last_modified: str | None) -> Sidecar:
        """The request's latest pointer with the validators of an identical new answer.

        The content (and so the snapshot) is unchanged; only what the next conditional
        request sends changes. The snapshot's own sidecar keeps the validators it was fetched with.
        """
        fresh = replace(
            sidecar, etag=etag or sidecar.etag, last_modified=last_modified or sidecar.last_modified
        )
        if fresh != sidecar:
            self.promote(fresh)
        return fresh

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

"""Safe unpacking of the zip archives public sources ship (shapefile zips, CSV bundles).

A downloaded archive is untrusted input: a member may try to escape the target directory
(`../x`, `/etc/x`, a symlink), or be a decompression bomb that fills the disk. Every member
is checked before anything is written, and sizes are counted again while bytes are copied
because the sizes declared in the zip directory can lie.
"""

from __future__ import annotations

import fnmatch
import io
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from sources.base import ParseError

Archive = bytes | Path | str

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps that bound what one archive may cost in disk, memory and time.

    The defaults fit the largest archives the project reads (the DGA BNA basin zip is about
    7 MB packed; shapefiles compress 2–10 times) with a wide margin.
    """

    max_total_bytes: int = 2 * 1024**3
    max_member_bytes: int = 1024**3
    max_members: int = 10_000
    max_ratio: float = 200.0


DEFAULT_LIMITS = ArchiveLimits()


def _open_zip(source: str, archive: Archive, snapshot: str | None) -> zipfile.ZipFile:
    handle: IO[bytes] | Path
    handle = io.BytesIO(archive) if isinstance(archive, bytes) else Path(archive)
    try:
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseError(source, f"payload is not a readable zip archive ({exc})", snapshot) from exc


def _unsafe_name_reason(name: str) -> str | None:
    if not name or "\x00" in name:
        return "has an empty or NUL-containing name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "has a '..' path component (zip-slip)"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_archive(
    source: str, archive: Archive, limits: ArchiveLimits = DEFAULT_LIMITS, snapshot: str | None = None
) -> list[zipfile.ZipInfo]:
    """Validate every member of an archive against the limits and path rules; return the members.

    Raises `ParseError` naming the first offending member.
    """
    with _open_zip(source, archive, snapshot) as zf:
        return _checked_members(source, zf, limits, snapshot)


def _checked_members(
    source: str, zf: zipfile.ZipFile, limits: ArchiveLimits, snapshot: str | None
) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    if len(members) > limits.max_members:
        raise ParseError(
            source, f"archive has {len(members)} members, more than the cap of {limits.max_members}", snapshot
        )
    total = 0
    for info in members:
        reason = _unsafe_name_reason(info.filename)
        if reason is None and _is_symlink(info):
            reason = "is a symbolic link"
        if reason is None and info.flag_bits & 0x1:
            reason = "is encrypted"
        if reason is None and info.file_size > limits.max_member_bytes:
            reason = (
                f"declares {info.file_size} bytes, more than the per-member cap of {limits.max_member_bytes}"
            )
        if reason is None and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            reason = (
                f"expands {info.file_size} bytes from {info.compress_size} "
                f"(ratio above {limits.max_ratio:g}: decompression bomb?)"
            )
        if reason:
            raise ParseError(source, f"refusing archive member {info.filename!r}: it {reason}", snapshot)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ParseError(
                source,
                f"refusing archive member {info.filename!r}: the archive expands to more than "
                f"the cap of {limits.max_total_bytes} bytes",
                snapshot,
            )
    return members


class _CappedReader(io.RawIOBase):
    """A member stream that counts real bytes and stops at the caps whatever the zip header said."""

    def __init__(self, raw: IO[bytes], cap: int, on_exceeded):
        self._raw = raw
        self._cap = cap
        self._seen = 0
        self._on_exceeded = on_exceeded

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        self._seen += len(data)
        if self._seen > self._cap:
            self._on_exceeded(self._seen)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _member_stream(
    source: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, snapshot: str | None
) -> io.BufferedReader:
    def exceeded(seen: int) -> None:
        raise ParseError(
            source,
            f"refusing archive member {info.filename!r}: it expands past {cap} bytes "
            f"although its header declares {info.file_size}",
            snapshot,
        )

    try:
        raw = zf.open(info)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ParseError(
            source, f"archive member {info.filename!r} cannot be read ({exc})", snapshot
        ) from exc
    return io.BufferedReader(_CappedReader(raw, cap, exceeded), buffer_size=_CHUNK)


def extract_archive(
    source: str,
    archive: Archive,
    destination: Path,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    snapshot: str | None = None,
) -> list[Path]:
    """Extract all members into `destination` (created if needed) after checking them; return file paths.

    Nothing is written outside `destination`; symlinks, absolute paths and `..` are refused.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    written: list[Path] = []
    total = 0
    with _open_zip(source, archive, snapshot) as zf:
        for info in _checked_members(source, zf, limits, snapshot):
            target = (root / info.filename.replace("\\", "/")).resolve()
            if not target.is_relative_to(root):
                raise ParseError(
                    source, f"refusing archive member {info.filename!r}: it resolves outside {root}", snapshot
                )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            cap = min(limits.max_member_bytes, limits.max_total_bytes - total)
            try:
                with _member_stream(source, zf, info, cap, snapshot) as stream, target.open("wb") as out:
                    shutil.copyfileobj(stream, out, _CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                target.unlink(missing_ok=True)
                raise ParseError(
                    source, f"archive member {info.filename!r} is corrupt ({exc})", snapshot
                ) from exc
            except ParseError:
                target.unlink(missing_ok=True)
                raise
            total += target.stat().st_size
            written.append(target)
    return written


def _matches(name: str, pattern: str) -> bool:
    """A pattern starting with '.' is a case-insensitive suffix; otherwise a glob on path or base name."""
    lowered = name.lower()
    if pattern.startswith("."):
        return lowered.endswith(pattern.lower())
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    return fnmatch.fnmatchcase(lowered, pattern.lower()) or fnmatch.fnmatchcase(base, pattern.lower())


def find_member(
    source: str, members: list[zipfile.ZipInfo], pattern: str, snapshot: str | None = None
) -> zipfile.ZipInfo:
    """The one member matching `pattern`; a missing or ambiguous match is a ParseError listing names."""
    found = [info for info in members if not info.is_dir() and _matches(info.filename, pattern)]
    if len(found) == 1:
        return found[0]
    names = [info.filename for info in members if not info.is_dir()]
    if not found:
        raise ParseError(source, f"archive has no member matching {pattern!r} (members: {names})", snapshot)
    raise ParseError(
        source,
        f"archive has {len(found)} members matching {pattern!r}: {[info.filename for info in found]}",
        snapshot,
    )


@contextmanager
def open_member(
    source: str,
    archive: Archive,
    pattern: str,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    snapshot: str | None = None,
) -> Iterator[io.BufferedReader]:
    """Stream one member (by suffix like '.csv' or a glob) without extracting the rest.

    The whole archive is still checked first, so a hostile archive is refused even when the
    member asked for is harmless.
    """
    with _open_zip(source, archive, snapshot) as zf:
        members = _checked_members(source, zf, limits, snapshot)
        info = find_member(source, members, pattern, snapshot)
        with _member_stream(source, zf, info, limits.max_member_bytes, snapshot) as stream:
            try:
                yield stream
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise ParseError(
                    source, f"archive member {info.filename!r} is corrupt ({exc})", snapshot
                ) from exc


def read_member(
    source: str,
    archive: Archive,
    pattern: str,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    snapshot: str | None = None,
) -> bytes:
    """The bytes of one member, for members small enough to hold in memory."""
    with open_member(source, archive, pattern, limits, snapshot) as stream:
        return stream.read()

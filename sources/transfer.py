"""Reading one HTTP response body within a deadline, above a minimum rate, below a size cap.

`requests`' timeouts bound each silence on the socket, not a whole transfer: a server that
sends a byte every few seconds never times out. `read_body` reads what has arrived
(`read1`), gives every read only the time still left, and gives up when the attempt's
deadline passes or the rate over the last window falls below the minimum. It knows nothing
of sources or the raw store: `sources.fetch` decides what to retry and what to keep.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProtocolError, ReadTimeoutError

PROGRESS_EVERY_BYTES = 50 * 1024**2  # a progress line in the run log per 50 MB of a long download


class TransferFailed(Exception):
    """The transfer broke off; `partial` is what arrived, `problem` says why (another attempt may work)."""

    def __init__(self, problem: str, partial: bytes):
        super().__init__(problem)
        self.problem, self.partial = problem, partial


class TooLarge(Exception):
    """The body passed the size cap."""


@dataclass(frozen=True)
class Pace:
    """The time limits of one read: when the attempt ends, and the slowest rate accepted."""

    deadline: float
    read_timeout: float
    min_rate: float
    stall_window: float
    clock: Callable[[], float]


def socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response reads from, so each read can get the time still left."""
    connection = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def read_body(
    response: requests.Response,
    pace: Pace,
    *,
    max_bytes: int,
    cap: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> bytes:
    """The body as it arrives; with `cap`, only its first `cap` bytes (an error page).

    Raises TransferFailed (deadline, stall, timeout, reset) with what arrived, and TooLarge
    past `max_bytes`. Content-Length is not enforced here: the caller compares.
    """
    if not response.headers.get("Content-Encoding"):
        # Count against Content-Length in the caller instead of letting urllib3 raise and drop the bytes.
        response.raw.enforce_content_length = False
    sock, chunks, size = socket_of(response), [], 0
    next_report = PROGRESS_EVERY_BYTES
    window_start, window_bytes = pace.clock(), 0
    try:
        while cap is None or size < cap:
            now = pace.clock()
            if now >= pace.deadline:
                raise TransferFailed(f"deadline passed after {size} bytes: the request took too long", b"")
            if now - window_start >= pace.stall_window:
                if window_bytes < pace.min_rate * (now - window_start):
                    raise TransferFailed(
                        f"transfer stalled: {window_bytes} bytes in {now - window_start:.0f} s "
                        f"(below {pace.min_rate:g} bytes/s) after {size} bytes",
                        b"",
                    )
                window_start, window_bytes = now, 0
            if sock is not None:
                sock.settimeout(max(0.01, min(pace.read_timeout, pace.deadline - now, pace.stall_window)))
            chunk = response.raw.read1(1 << 16, decode_content=True)
            if not chunk:
                break
            size, window_bytes = size + len(chunk), window_bytes + len(chunk)
            chunks.append(chunk)
            if cap is None and size > max_bytes:
                raise TooLarge(f"larger than the size cap of {max_bytes} bytes")
            if cap is None and progress is not None and size >= next_report:
                progress(size)
                next_report += PROGRESS_EVERY_BYTES
    except TransferFailed as exc:
        raise TransferFailed(exc.problem, b"".join(chunks)) from None
    except (ReadTimeoutError, TimeoutError) as exc:
        raise TransferFailed(f"read timed out after {size} bytes", b"".join(chunks)) from exc
    except (ProtocolError, Urllib3Error, requests.exceptions.RequestException, ConnectionError) as exc:
        raise TransferFailed(
            f"connection reset or body cut mid-transfer after {size} bytes: {describe(exc)}", b"".join(chunks)
        ) from exc
    content = b"".join(chunks)
    return content if cap is None else content[:cap]


def describe(exc: Exception) -> str:
    """The root cause of a requests/urllib3 error, short enough for a status row.

    requests wraps urllib3 errors whose text repeats the URL, query string included, before
    the reason ('[Errno 111] Connection refused'); the reason is what a reader needs. The
    caller redacts credentials.
    """
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None) or inner or exc
    text = str(reason)
    return text if len(text) < 200 else text[:200] + "…"

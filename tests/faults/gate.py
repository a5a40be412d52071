"""A TCP front door for the scripted HTTP server, on a port that stays the same all session.

Requests are keyed by their URL in the raw store, so a fault must hit the *same* URL as the
earlier good fetch for the stale fallback to apply. The scripted server
(`tests/support/http.py`) answers HTTP; this gate in front of it can also refuse
connections (nothing listening on the port) or reset them mid-body (TCP RST), faults an
HTTP handler cannot produce.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


def _read_request(client: socket.socket) -> bytes:
    """One HTTP request (headers and a Content-Length body) as raw bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _path(request: bytes) -> str:
    """The path of an HTTP request line, without the query."""
    target = request.split(b"\r\n", 1)[0].split(b" ")[1:2]
    return target[0].decode("latin-1").split("?", 1)[0] if target else ""


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends a TCP RST instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Gate:
    """Forward each connection to `upstream_port`; or refuse, or reset mid-body (for the paths in `reset_paths`).

    The upstream (Python's http.server, HTTP/1.0) closes after every response, so one
    connection carries one exchange.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = 0
        self.reset_paths: set[str] = set()
        self._listener: socket.socket | None = None
        self.open()

    def open(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        """Stop listening: connecting to the port is now refused by the kernel."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the thread blocked in accept(); close() alone leaves the port listening
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            request = _read_request(client)
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30) as upstream:
                upstream.sendall(request)
                if _path(request) not in self.reset_paths:  # pass bytes on as they come (a drip stays a drip)
                    while chunk := upstream.recv(65536):
                        client.sendall(chunk)
                    client.close()
                    return
                response = b""
                while chunk := upstream.recv(65536):
                    response += chunk
            head, _, body = response.partition(b"\r\n\r\n")
            client.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
            time.sleep(0.05)  # let the half body arrive before the reset discards the queue
            _reset(client)
        except OSError:
            client.close()

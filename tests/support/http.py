"""A programmable local HTTP server for tests: real sockets, scripted answers, no internet."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer. `body_override` sends fewer bytes than Content-Length says."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None
    close_mid_body: bool = False
    delay: float = 0.0
    trickle: float = 0.0  # seconds between single bytes of the body (a server that drips)


Handler = Callable[[BaseHTTPRequestHandler], Reply]


class ScriptedServer:
    """Serve scripted replies per path; the last reply of a path repeats. Records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply | Handler]] = defaultdict(list)
        self.requests: list[dict] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                server.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                script = server.routes.get(path)
                if not script:
                    reply = Reply(404, b"not found")
                else:
                    item = script.pop(0) if len(script) > 1 else script[0]
                    reply = item(self) if callable(item) else item
                if reply.delay:
                    import time

                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                declared = reply.declared_length if reply.declared_length is not None else len(reply.body)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                if reply.trickle:
                    import time

                    for byte in reply.body:
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:  # the client gave up: what the test wants to see
                            return
                        time.sleep(reply.trickle)
                    return
                if reply.close_mid_body:
                    self.wfile.write(reply.body[: len(reply.body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(reply.body)

            do_GET = _answer
            do_POST = _answer
            do_HEAD = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def script(self, path: str, *replies: Reply | Handler) -> None:
        self.routes[path] = list(replies)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"].split("?", 1)[0] == path)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

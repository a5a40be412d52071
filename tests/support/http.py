"""A programmable local HTTP server for tests and benchmarks: real sockets, scripted answers, no internet."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


@dataclass
class Reply:
    """One scripted answer. `declared_length` sends fewer bytes than Content-Length says;
    `file` streams a file from disk as the body (a payload too big to hold in memory)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None
    close_mid_body: bool = False
    delay: float = 0.0
    trickle: float = 0.0  # seconds between single bytes of the body (a server that drips)
    file: Path | None = None


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
                self.request_body = body  # for handlers that answer from a POSTed form
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
                size = reply.file.stat().st_size if reply.file is not None else len(reply.body)
                declared = reply.declared_length if reply.declared_length is not None else size
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                if reply.file is not None:
                    with reply.file.open("rb") as handle:
                        shutil.copyfileobj(handle, self.wfile, 1024 * 1024)
                    return
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


def file_reply(path: Path, content_type: str) -> Handler:
    """Serve a file from disk as a static web server does: an ETag (its sha256, computed once),
    and 304 Not Modified to a request whose If-None-Match names it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    etag = f'"{digest.hexdigest()}"'

    def reply(handler: BaseHTTPRequestHandler) -> Reply:
        headers = {"Content-Type": content_type, "ETag": etag}
        if etag in (handler.headers.get("If-None-Match") or ""):
            return Reply(304, b"", headers)
        return Reply(200, headers=headers, file=path)

    return reply


def featureserver_layer(features: list[dict], max_record_count: int) -> Handler:
    """An ArcGIS FeatureServer layer's `/query`: pages of min(resultRecordCount, max_record_count)
    features ordered by OBJECTID, `exceededTransferLimit` on every page but the last; an
    unexpected query is answered as ArcGIS does, an error with HTTP 200."""
    ordered = sorted(features, key=lambda feature: feature["properties"]["OBJECTID"])
    expected = {
        "where": "1=1",
        "outFields": "*",
        "f": "geojson",
        "outSR": "4326",
        "orderByFields": "OBJECTID",
    }

    def reply(handler: BaseHTTPRequestHandler) -> Reply:
        query = {key: values[0] for key, values in parse_qs(urlparse(handler.path).query).items()}
        if any(query.get(key) != value for key, value in expected.items()):
            error = {"error": {"code": 400, "message": "Invalid or missing input parameters.", "details": []}}
            return Reply(200, json.dumps(error).encode(), {"Content-Type": "application/json"})
        offset = int(query.get("resultOffset", 0))
        count = min(int(query.get("resultRecordCount", max_record_count)), max_record_count)
        page = {"type": "FeatureCollection", "features": ordered[offset : offset + count]}
        if offset + count < len(ordered):
            page["properties"] = {"exceededTransferLimit": True}
        body = json.dumps(page, ensure_ascii=False).encode("utf-8")
        return Reply(200, body, {"Content-Type": "application/geo+json; charset=utf-8"})

    return reply

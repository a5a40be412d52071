"""Transport faults on one OECD endpoint whose earlier live payload is in the raw store.

The expected outcome is the stale fallback: the earlier live snapshot is served, every
table stays as it was, the status row records `stale` with an error naming the source and
the cause, and whatever body the server did send is quarantined.
"""

from __future__ import annotations

from sources import dga_basins, mindicador
from sources.acquire import Acquirer
from sources.base import FetchError
from sources.fetch import HttpFetcher
from sources.rawstore import RawStore
from tests.faults.harness import (
    INDICATORS,
    SLEEPS,
    FaultSources,
    baseline,
    capture,
    endpoint_variable,
    environment,
    expect_stale,
    files_intact,
    gate,
    live_bytes,
    names_source_and_cause,
    oecd_path,
    oecd_url,
    quarantine,
    require,
    run_oecd,
    serve_oecd,
    server,
    shown,
    tables_intact,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply

GDP = INDICATORS[0]
STALE = "stale fallback to the earlier live snapshot; tables intact; error names source and cause"
ERROR_PAGE = b"<html><head><title>%d</title></head><body><h1>Server error %d</h1></body></html>"
CAPTCHA = (
    b"<!DOCTYPE html><html lang=en><head><title>Just a moment...</title></head><body>"
    b"<form id=challenge-form action=/cdn-cgi/challenge>Please complete the security check (captcha)"
    b"</form></body></html>"
)


def _one_fault(reply, cause: str, payload: bytes | None, sources=None) -> str:
    with workspace() as ws:
        serve_oecd(faults={GDP: reply})
        return expect_stale(ws, run_oecd(sources, observations=False), cause, payload)


@case("F01", "fetch", "connection refused", f"{STALE}; nothing to quarantine")
def connection_refused() -> str:
    with workspace() as ws:
        gate().refuse()
        error = run_oecd(observations=False)
        gate().open()
        return expect_stale(ws, error, r"connection refused", None)


@case(
    "F02",
    "fetch",
    "read timeout (server silent for 1 s, read timeout 0.3 s)",
    f"{STALE}; nothing to quarantine",
)
def read_timeout() -> str:
    body = live_bytes(GDP)
    sources = FaultSources(max_attempts=2, backoff_seconds=0.01, read_timeout=0.3)
    return _one_fault(Reply(200, body, delay=1.0), r"timed? ?out", None, sources)


@case("F03", "fetch", "connection reset (TCP RST) mid-body", f"{STALE}; the partial body quarantined")
def reset_mid_body() -> str:
    body = live_bytes(GDP)
    with workspace() as ws:
        serve_oecd(faults={GDP: Reply(200, body, {"Content-Type": "text/csv"})})
        gate().reset_paths.add(oecd_path(GDP))
        error = run_oecd(observations=False)
        return expect_stale(ws, error, r"reset", body[: len(body) // 2], partial=True)


@case(
    "F04",
    "fetch",
    "body shorter than its Content-Length",
    f"retried; {STALE}; the truncated body quarantined",
)
def truncated() -> str:
    body = live_bytes(GDP)[:700]
    reply = Reply(200, body, {"Content-Type": "text/csv"}, declared_length=len(live_bytes(GDP)))
    return _one_fault(reply, r"cut mid-transfer|truncated|IncompleteRead", body)


@case(
    "F05",
    "fetch",
    "HTTP 429 with Retry-After: 7 (persistent)",
    f"waits exactly the 7 s asked for; {STALE}; the 429 body quarantined",
)
def too_many_requests_retry_after() -> str:
    body = b"Too Many Requests: 60 downloads per hour"
    observed = _one_fault(Reply(429, body, {"Retry-After": "7"}), r"HTTP 429.*Retry-After 7", body)
    require(SLEEPS == [7.0], f"waits were {SLEEPS}, not the 7 s the server asked for")
    return f"waited {SLEEPS}; {observed}"


@case(
    "F06",
    "fetch",
    "HTTP 429 without Retry-After (persistent)",
    f"exponential backoff; {STALE}; the 429 body quarantined",
)
def too_many_requests_no_retry_after() -> str:
    body = b"rate limited"
    observed = _one_fault(Reply(429, body), r"HTTP 429", body)
    require(SLEEPS == [0.01], f"waits were {SLEEPS}, not the configured backoff [0.01]")
    return f"waited {SLEEPS}; {observed}"


def _server_error(code: int) -> str:
    body = ERROR_PAGE % (code, code)
    return _one_fault(Reply(code, body, {"Content-Type": "text/html"}), rf"HTTP {code}", body)


@case("F07", "fetch", "HTTP 500 (persistent)", f"retried; {STALE}; the error page quarantined")
def http_500() -> str:
    return _server_error(500)


@case("F08", "fetch", "HTTP 502 (persistent)", f"retried; {STALE}; the error page quarantined")
def http_502() -> str:
    return _server_error(502)


@case("F09", "fetch", "HTTP 503 (persistent)", f"retried; {STALE}; the error page quarantined")
def http_503() -> str:
    return _server_error(503)


@case("F10", "fetch", "redirect loop", f"{STALE}; nothing to quarantine")
def redirect_loop() -> str:
    return _one_fault(Reply(302, b"", {"Location": oecd_path(GDP)}), r"redirect loop", None)


@case(
    "F11",
    "fetch",
    "captcha HTML page with 200 and Content-Type text/csv",
    f"refused by content, not by header; {STALE}; the page quarantined",
)
def captcha_page() -> str:
    return _one_fault(
        Reply(200, CAPTCHA, {"Content-Type": "text/csv"}), r"HTML page .* csv was expected", CAPTCHA
    )


@case(
    "F12",
    "fetch",
    "HTML page with 200 where JSON (mindicador) and zip (DGA) are expected",
    "FetchError naming the source and 'HTML'; page quarantined; warehouse and raw store untouched",
)
def html_for_json_and_zip() -> str:
    observed = []
    with workspace() as ws:
        fetcher = HttpFetcher(RawStore(ws.raw), max_attempts=1, sleep=SLEEPS.append)
        acquirer = Acquirer(fetcher)
        cases = [
            (mindicador.SOURCE, mindicador.root_request(server().url("/mindicador/api")), "json"),
            (dga_basins.SOURCE, dga_basins.basin_requests({"cuencas": server().url("/dga/c.zip")})[0], "zip"),
        ]
        for source, request, expect in cases:
            require(request.expect == expect, f"{source.id} request expects {request.expect}, not {expect}")
            server().script(
                request.url.replace(server().base_url, ""), Reply(200, CAPTCHA, {"Content-Type": "text/html"})
            )
            try:
                acquirer.acquire(source, request, None)
            except FetchError as exc:
                names_source_and_cause(str(exc), rf"HTML page .* {expect} was expected", source.id)
                kept = [body for _, body in quarantine(ws.raw, source.id)]
                require(CAPTCHA in kept, f"{source.id}: the HTML page is not in quarantine")
                observed.append(f"{source.id}: {shown(exc, 110)}")
            else:
                raise AssertionError(f"{source.id}: an HTML page was accepted where {expect} was expected")
        after = capture(ws.root)
        tables_intact(baseline().state, after, keep_status=True)
        files_intact(baseline().state, after, ws.raw)
    return "; ".join(observed)


@case("F13", "fetch", "empty body with 200", f"{STALE}; the empty body quarantined")
def empty_body() -> str:
    return _one_fault(Reply(200, b"", {"Content-Type": "text/csv"}), r"empty body", b"")


@case(
    "F14",
    "fetch",
    "endpoint moved: the new URL fails (404), the old one had live data",
    "the SAMPLE never replaces live data: the run fails naming the source and the cause, tables intact",
)
def endpoint_moved() -> str:
    with workspace() as ws:
        moved = oecd_url(GDP).replace("/oecd/", "/oecd/v3/")
        server().script(moved.split(str(gate().port), 1)[1], Reply(404, b"no such dataflow version"))
        with environment(**{endpoint_variable(GDP): moved}):
            error = run_oecd(observations=False)
        after = capture(ws.root)
        modes = {row[12] for row in after.tables["core.snapshots"]}
        require("sample" not in modes, "SAMPLE payloads were published over the live data")
        tables_intact(baseline().state, after)
        require(error is not None, "the run succeeded although the live payload could not be had")
        names_source_and_cause(str(error), r"HTTP 404")
        files_intact(baseline().state, after, ws.raw)
        return f"SAMPLE not used over live data, tables intact; error: {shown(error)}"

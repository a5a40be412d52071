"""The fetch layer against a real local HTTP server: retries, refusals, conditional requests."""

import hashlib

import pytest

from sources.base import FetchError, FetchRequest, SourceInfo
from sources.endpoints import EndpointError, check_url, endpoint
from sources.fetch import HttpFetcher, redact_url
from sources.rawstore import RawStore
from tests.support.http import Reply

SOURCE = SourceInfo(
    "test_source",
    "Test publisher",
    "Test",
    "http://example.invalid",
    "CC0",
    "Test",
    __import__("datetime").timedelta(days=1),
    "test",
)
CSV = b"a,b\n1,2\n"


@pytest.fixture()
def fetcher(tmp_path):
    sleeps = []
    f = HttpFetcher(RawStore(tmp_path / "raw"), max_attempts=3, backoff_seconds=0.01, sleep=sleeps.append)
    f.sleeps = sleeps
    return f


def request(server, path="/data.csv", expect="csv"):
    return FetchRequest(name="data", url=server.url(path), expect=expect)


def test_429_with_retry_after_is_honoured(http_server, fetcher):
    http_server.script("/data.csv", Reply(429, b"slow down", {"Retry-After": "7"}), Reply(200, CSV))
    payload = fetcher.fetch(SOURCE, request(http_server))
    assert payload.content == CSV
    assert fetcher.sleeps == [7.0]
    assert http_server.hits("/data.csv") == 2


def test_500_then_success(http_server, fetcher):
    http_server.script("/data.csv", Reply(500, b"oops"), Reply(200, CSV))
    payload = fetcher.fetch(SOURCE, request(http_server))
    assert payload.sha256 == hashlib.sha256(CSV).hexdigest()
    assert len(fetcher.sleeps) == 1


def test_persistent_503_gives_up_naming_source_and_status(http_server, fetcher):
    http_server.script("/data.csv", Reply(503, b"down"))
    with pytest.raises(FetchError, match=r"test_source.*HTTP 503"):
        fetcher.fetch(SOURCE, request(http_server))
    assert http_server.hits("/data.csv") == 3


def test_html_error_page_with_200_is_refused_and_quarantined(http_server, fetcher, tmp_path):
    page = b"<!DOCTYPE html><html><body>Service unavailable</body></html>"
    http_server.script("/data.csv", Reply(200, page, {"Content-Type": "text/html"}))
    with pytest.raises(FetchError, match="HTML page was served where csv was expected"):
        fetcher.fetch(SOURCE, request(http_server))
    kept = list((tmp_path / "raw" / "quarantine" / "test_source").glob("*.bin"))
    assert [p.read_bytes() for p in kept] == [page]
    assert not (tmp_path / "raw" / "snapshots").exists()


def test_truncated_body_is_refused(http_server, fetcher):
    http_server.script("/data.csv", Reply(200, CSV * 100, declared_length=len(CSV) * 200))
    with pytest.raises(FetchError, match=r"test_source"):
        fetcher.fetch(SOURCE, request(http_server))


def test_empty_body_is_refused(http_server, fetcher):
    http_server.script("/data.csv", Reply(200, b""))
    with pytest.raises(FetchError, match="empty body"):
        fetcher.fetch(SOURCE, request(http_server))


def test_conditional_request_reuses_snapshot_on_304(http_server, fetcher):
    http_server.script(
        "/data.csv",
        Reply(200, CSV, {"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"}),
        lambda h: Reply(304) if h.headers.get("If-None-Match") == '"v1"' else Reply(200, b"x,y\n"),
    )
    first = fetcher.fetch(SOURCE, request(http_server))
    fetcher.store.promote(fetcher.store.sidecar(SOURCE.id, first.snapshot_id))
    second = fetcher.fetch(SOURCE, request(http_server))
    assert second.not_modified and second.snapshot_id == first.snapshot_id and second.content == CSV
    assert http_server.requests[-1]["headers"]["If-Modified-Since"] == "Wed, 01 Jan 2025 00:00:00 GMT"


def test_unpromoted_payload_is_not_used_for_conditional_requests(http_server, fetcher):
    http_server.script("/data.csv", Reply(200, CSV, {"ETag": '"bad"'}))
    fetcher.fetch(SOURCE, request(http_server))
    fetcher.fetch(SOURCE, request(http_server))
    assert "If-None-Match" not in http_server.requests[-1]["headers"]


def test_redirect_loop_is_a_clear_error(http_server, fetcher):
    http_server.script("/loop", Reply(302, b"", {"Location": "/loop"}))
    with pytest.raises(FetchError, match="redirect loop"):
        fetcher.fetch(SOURCE, request(http_server, "/loop"))


def test_size_cap(http_server, tmp_path):
    small = HttpFetcher(RawStore(tmp_path / "raw"), max_bytes=10, sleep=lambda s: None)
    http_server.script("/data.csv", Reply(200, CSV * 10))
    with pytest.raises(FetchError, match="size cap"):
        small.fetch(SOURCE, request(http_server))


def test_honest_user_agent(http_server, fetcher):
    http_server.script("/data.csv", Reply(200, CSV))
    fetcher.fetch(SOURCE, request(http_server))
    assert http_server.requests[0]["headers"]["User-Agent"].startswith("context-lens/")


def test_endpoint_overrides_and_allowed_schemes(monkeypatch, tmp_path):
    defaults = {"data": "https://example.org/data.csv"}
    assert endpoint("test_source", "data", defaults) == "https://example.org/data.csv"
    monkeypatch.setenv("CONTEXT_LENS_ENDPOINT__TEST_SOURCE__DATA", "http://127.0.0.1:9/mirror.csv")
    assert endpoint("test_source", "data", defaults) == "http://127.0.0.1:9/mirror.csv"
    for bad in ("ftp://example.org/x", "javascript:alert(1)", "file:///etc/passwd"):
        with pytest.raises(EndpointError):
            check_url(bad)
    monkeypatch.setenv("CONTEXT_LENS_FILE_ROOTS", str(tmp_path))
    (tmp_path / "ok.csv").write_bytes(CSV)
    assert check_url((tmp_path / "ok.csv").as_uri())
    with pytest.raises(EndpointError):
        check_url((tmp_path / ".." / "escape.csv").as_uri())


def test_file_url_fetch(monkeypatch, tmp_path, fetcher):
    monkeypatch.setenv("CONTEXT_LENS_FILE_ROOTS", str(tmp_path))
    (tmp_path / "mirror.csv").write_bytes(CSV)
    payload = fetcher.fetch(SOURCE, FetchRequest("data", (tmp_path / "mirror.csv").as_uri(), expect="csv"))
    assert payload.content == CSV and payload.mode == "live"


def test_credentials_are_redacted():
    url = (
        "https://si3.bcentral.cl/SieteRestWS/SieteRestWS.ashx?user=me%40x.cl&pass=hunter2&function=GetSeries"
    )
    shown = redact_url(url)
    assert "hunter2" not in shown and "me%40x.cl" not in shown and "function=GetSeries" in shown


def test_hourly_rate_limit_is_shared_across_processes(http_server, tmp_path):
    """The budget lives in the raw store, so a second fetcher (another run) sees the first's requests."""
    host = http_server.base_url.split("//", 1)[1]
    http_server.script("/data.csv", Reply(200, CSV))
    first = HttpFetcher(RawStore(tmp_path / "raw"), rate_limits={host: 2}, sleep=lambda s: None)
    first.fetch(SOURCE, request(http_server))
    first.fetch(SOURCE, request(http_server))
    second = HttpFetcher(RawStore(tmp_path / "raw"), rate_limits={host: 2}, sleep=lambda s: None)
    with pytest.raises(FetchError, match="rate limit: 2 downloads per hour"):
        second.fetch(SOURCE, request(http_server))
    assert http_server.hits("/data.csv") == 2

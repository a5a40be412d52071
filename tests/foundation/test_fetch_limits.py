"""Deadlines, budgets, identical bytes and the self-healing raw store, against a real local server."""

import hashlib
import socket
import threading
import time
from datetime import timedelta

import pytest

from sources.acquire import Acquirer
from sources.base import FetchError, FetchRequest, SourceInfo
from sources.fetch import HttpFetcher
from sources.rawstore import RawStore
from tests.support.http import Reply

SOURCE = SourceInfo(
    "limits_source", "Test", "Test", "http://example.invalid", "CC0", "Test", timedelta(days=1), "t"
)
CSV = b"a,b\n" + b"1,2\n" * 200


def _fetcher(tmp_path, sleeps=None, **limits) -> HttpFetcher:
    sleeps = [] if sleeps is None else sleeps
    return HttpFetcher(RawStore(tmp_path / "raw"), sleep=sleeps.append, **{"max_attempts": 2, **limits})


def _request(server, path="/data.csv") -> FetchRequest:
    return FetchRequest(name="data", url=server.url(path), expect="csv")


def test_a_dripping_server_is_cut_off_by_the_request_deadline(http_server, tmp_path):
    http_server.script("/data.csv", Reply(200, CSV, {"Content-Type": "text/csv"}, trickle=0.05))
    fetcher = _fetcher(tmp_path, max_attempts=1, request_deadline=1.0, min_rate=0)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"limits_source.*deadline passed after \d+ bytes"):
        fetcher.fetch(SOURCE, _request(http_server))
    assert time.monotonic() - started < 3


def test_a_dripping_server_is_cut_off_as_stalled_below_the_minimum_rate(http_server, tmp_path):
    http_server.script("/data.csv", Reply(200, CSV, {"Content-Type": "text/csv"}, trickle=0.05))
    fetcher = _fetcher(tmp_path, max_attempts=1, min_rate=1000, stall_window=0.5)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"transfer stalled: \d+ bytes in 1 s .*below 1000 bytes/s"):
        fetcher.fetch(SOURCE, _request(http_server))
    assert time.monotonic() - started < 3
    kept = list((tmp_path / "raw" / "quarantine" / SOURCE.id).glob("*.json"))
    assert kept, "what arrived before the stall is kept in quarantine"


def test_a_server_that_never_answers_costs_at_most_the_source_budget(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    threading.Thread(
        target=lambda: [accepted.append(listener.accept()) for _ in range(8)], daemon=True
    ).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/data.csv"
    fetcher = _fetcher(tmp_path, max_attempts=4, read_timeout=60, source_budget=1.5, backoff_seconds=0.01)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"(?i)timed out.*time budget of 1.5 s for limits_source used up"):
        fetcher.fetch(SOURCE, FetchRequest("data", url, expect="csv"))
    assert time.monotonic() - started < 4
    # The budget is the source's, for the whole run: a second request fails at once.
    started = time.monotonic()
    with pytest.raises(FetchError, match="time budget of 1.5 s for limits_source used up"):
        fetcher.fetch(SOURCE, FetchRequest("other", url + "?x=1", expect="csv"))
    assert time.monotonic() - started < 0.5
    listener.close()


def test_retry_after_beyond_the_cap_is_not_waited_for(http_server, tmp_path):
    sleeps = []
    http_server.script("/data.csv", Reply(503, b"maintenance", {"Retry-After": "3600"}))
    fetcher = _fetcher(tmp_path, sleeps, max_attempts=4, max_retry_after=60)
    with pytest.raises(FetchError, match=r"Retry-After 3600.*not retried.*cap of 60 s"):
        fetcher.fetch(SOURCE, _request(http_server))
    assert sleeps == [] and http_server.hits("/data.csv") == 1


def test_identical_bytes_under_a_new_etag_are_unchanged(http_server, tmp_path):
    fetcher = _fetcher(tmp_path)
    http_server.script("/data.csv", Reply(200, CSV, {"ETag": '"v1"'}))
    first = fetcher.fetch(SOURCE, _request(http_server))
    Acquirer(fetcher).accept(__import__("sources.acquire", fromlist=["Acquired"]).Acquired(first, "live"))
    http_server.script("/data.csv", Reply(200, CSV, {"ETag": '"v2"'}))
    second = fetcher.fetch(SOURCE, _request(http_server))
    assert second.not_modified and second.snapshot_id == first.snapshot_id
    assert len(fetcher.store.sidecars(SOURCE.id)) == 1, "no new snapshot for identical bytes"
    # The next request is conditional on the new validator.
    http_server.script(
        "/data.csv", lambda h: Reply(304) if h.headers.get("If-None-Match") == '"v2"' else Reply(500)
    )
    third = fetcher.fetch(SOURCE, _request(http_server))
    assert third.not_modified and third.snapshot_id == first.snapshot_id


def test_304_with_nothing_cached_is_named_as_such(http_server, tmp_path):
    http_server.script("/data.csv", Reply(304))
    with pytest.raises(FetchError, match="HTTP 304 Not Modified .* no cached payload"):
        _fetcher(tmp_path).fetch(SOURCE, _request(http_server))


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_object_is_downloaded_again_never_served(http_server, tmp_path, damage):
    fetcher = _fetcher(tmp_path)
    acquirer = Acquirer(fetcher)
    http_server.script(
        "/data.csv",
        lambda h: (
            Reply(304) if h.headers.get("If-None-Match") == '"v1"' else Reply(200, CSV, {"ETag": '"v1"'})
        ),
    )
    first = acquirer.acquire(SOURCE, _request(http_server), None)
    acquirer.accept(first)
    path = fetcher.store.object_path(first.payload.sha256)
    if damage == "corrupt":
        path.write_bytes(b"a,b\n9,9\n")
    else:
        path.unlink()
    again = acquirer.acquire(SOURCE, _request(http_server), None)
    assert again.payload.content == CSV and again.status == "unchanged"
    assert "If-None-Match" not in http_server.requests[-1]["headers"], "a damaged copy is not revalidated"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.payload.sha256, "the object is healed"
    incidents = fetcher.store.incidents(SOURCE.id)
    assert [i["snapshot_id"] for i in incidents] == [first.payload.snapshot_id]
    assert ("damaged" in incidents[0]["problem"]) == (damage == "corrupt")


def test_a_damaged_earlier_snapshot_is_not_served_as_stale(http_server, tmp_path):
    fetcher = _fetcher(tmp_path)
    acquirer = Acquirer(fetcher)
    http_server.script("/data.csv", Reply(200, CSV))
    first = acquirer.acquire(SOURCE, _request(http_server), None)
    acquirer.accept(first)
    fetcher.store.object_path(first.payload.sha256).write_bytes(b"garbage")
    http_server.script("/data.csv", Reply(500, b"down"))
    with pytest.raises(
        FetchError, match=r"HTTP 500.*earlier live snapshot of data cannot be served.*damaged"
    ):
        acquirer.acquire(SOURCE, _request(http_server), None)
    assert fetcher.store.incidents(SOURCE.id)

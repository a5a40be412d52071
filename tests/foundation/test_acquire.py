"""The acquisition policy for multi-request walks: live, else the earlier live walk, else SAMPLE — never SAMPLE over live."""

from datetime import timedelta

import pytest

from sources.acquire import Acquirer
from sources.base import FetchError, FetchRequest, SourceInfo
from sources.fetch import HttpFetcher
from sources.rawstore import RawStore
from tests.support.http import Reply

SOURCE = SourceInfo(
    "walk_source", "Test", "Walk", "http://example.invalid", "CC0", "Test", timedelta(days=1), "test"
)


def _walk(server, years):
    """A walk whose requests depend on its parameters (as SINIM's do on the years asked for)."""

    def walk(fetcher):
        return [
            fetcher.fetch(
                SOURCE, FetchRequest(f"values-{year}", server.url(f"/values/{year}"), expect="json")
            )
            for year in years
        ]

    return walk


def test_walk_never_falls_back_on_sample_once_the_source_had_live_data(http_server, tmp_path):
    sample = tmp_path / "walk_SAMPLE.json"
    sample.write_text('{"sample": true}')
    for year in (2022, 2023):
        http_server.script(f"/values/{year}", Reply(200, b'{"value": %d}' % year))
    fetcher = HttpFetcher(RawStore(tmp_path / "raw"), max_attempts=1, sleep=lambda s: None)
    live = Acquirer(fetcher)
    first = live.acquire_walk(SOURCE, _walk(http_server, [2022, 2023]), sample, FetchRequest("walk", "x"))
    assert [a.status for a in first] == ["live", "live"]
    for item in first:
        live.accept(item)

    # Offline, the earlier walk replays as stale.
    offline = Acquirer(fetcher, offline=True)
    replay = offline.acquire_walk(SOURCE, _walk(http_server, [2022, 2023]), sample, FetchRequest("walk", "x"))
    assert [a.status for a in replay] == ["stale", "stale"]

    # The year list grew: the replay cannot cover 2024, and the sample must not stand in for real data.
    with pytest.raises(FetchError, match="sample data never replaces live data"):
        offline.acquire_walk(
            SOURCE, _walk(http_server, [2022, 2023, 2024]), sample, FetchRequest("walk", "x")
        )


def test_walk_uses_sample_when_the_source_never_had_live_data(tmp_path):
    sample = tmp_path / "walk_SAMPLE.json"
    sample.write_text('{"sample": true}')
    fetcher = HttpFetcher(RawStore(tmp_path / "raw"), max_attempts=1, sleep=lambda s: None)
    acquired = Acquirer(fetcher, offline=True).acquire_walk(
        SOURCE, lambda f: [], sample, FetchRequest("walk", "http://example.invalid/walk")
    )
    assert [(a.status, a.payload.mode) for a in acquired] == [("sample", "sample")]

"""The national benchmark in its quick mode: it serves every source, builds, and reports its figures.

An outcome test, not a timing one: the build from the local server succeeds with the
generated payloads taken live (not their samples), the lens is written, and the JSON holds
every phase's median and peak RSS and the verdicts against the targets.
"""

from __future__ import annotations

import json

from bench import bench_national_build as bench
from bench import national_payloads

GENERATED = ("camels_cl", "deis_deaths", "ine_population", "minvu_campamentos", "sinim", "oecd_regional")


def test_quick_bench_builds_from_the_local_server_and_writes_its_figures(tmp_path, capsys):
    target = bench.main(["--quick", "--runs", "1", "--cache", str(tmp_path / "cache"),
                         "--results", str(tmp_path / "results")])  # fmt: skip
    document = json.loads(target.read_text(encoding="utf-8"))
    assert target.parent == tmp_path / "results" and document["mode"] == "quick"
    summary = document["summary"]
    for phase in bench.PHASES:
        assert summary[phase]["median_wall_s"] > 0 and summary[phase]["peak_rss_mb"] > 0, phase
    assert all(summary[phase]["all_succeeded"] for phase in bench.PHASES)
    (run,) = document["runs"]
    assert run["lenses"]["lens_folders"] == ["region-02"]
    # The generated sources were taken live from the local server, not from their samples.
    for source_id in GENERATED:
        assert run["source_modes"][source_id] == "live", source_id
    assert set(document["verdicts"]) == {
        "build_within_5_min",
        "build_rss_under_1_5_gb",
        "lenses_within_60_s",
        "unchanged_within_5_pct",
    }
    # The generated payloads were served at full protocol: every generated source answered.
    served = document["payloads"]
    for source_id in GENERATED:
        assert served[source_id]["scale"] == "full", source_id
    assert document["requests_served"] > 0
    # Generation is deterministic: a second build of the same scale reuses the cache as it is.
    again = national_payloads.build(tmp_path / "cache", national_payloads.QUICK, log=lambda *_: None)
    assert again.served == served

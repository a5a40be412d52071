"""The asset graph as a reviewable picture: every asset with its group, dependencies and checks,
every job with what it selects, every schedule and sensor. Written as sorted, indented JSON so a
change to the graph shows line by line in a diff.

    .venv/bin/python -m tests.foundation.graph_picture     # rewrite tests/foundation/asset_graph.json
    .venv/bin/python -m tests.foundation.graph_picture --print
"""

from __future__ import annotations

import json
from pathlib import Path

PICTURE = Path(__file__).with_name("asset_graph.json")


def picture() -> dict:
    from pipelines.definitions import defs

    repository = defs.get_repository_def()
    graph = repository.asset_graph
    checks: dict[str, list[str]] = {}
    for check in graph.asset_check_keys:
        checks.setdefault(check.asset_key.to_user_string(), []).append(check.name)
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "materializable": node.is_materializable,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(checks.get(key.to_user_string(), [])),
            "pools": sorted(getattr(node, "pools", None) or []),
        }
    jobs = {}
    for job in repository.get_all_jobs():
        if job.name.startswith("__"):
            continue  # Dagster's own implicit jobs
        selected = job.asset_layer.executable_asset_keys if job.asset_layer else set()
        jobs[job.name] = {
            "description": job.description or "",
            "assets": sorted(k.to_user_string() for k in selected),
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "description": s.description or ""}
        for s in repository.schedule_defs
    }
    sensors = {s.name: {"description": s.description or ""} for s in repository.sensor_defs}
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def text() -> str:
    return json.dumps(picture(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--print"]:
        sys.stdout.write(text())
    else:
        PICTURE.write_text(text(), encoding="utf-8")
        print(f"wrote {PICTURE}")

"""A picture of the graph under review: the definitions' assets, dependencies, groups, checks,
jobs, schedules and sensors equal the stored asset_graph.json, so every change to the graph is in
the diff (regenerate with `.venv/bin/python -m tests.foundation.graph_picture`, then review)."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

from tests.foundation import graph_picture

ROOT = Path(__file__).resolve().parents[2]


def test_the_asset_graph_equals_its_stored_picture():
    """Drawn in a fresh process with no CONTEXT_LENS_* settings, so the shipped studies make the
    lens assets whatever other tests of this session pointed the environment at."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXT_LENS_")}
    drawn = subprocess.run(
        [sys.executable, "-m", "tests.foundation.graph_picture", "--print"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    stored = graph_picture.PICTURE.read_text(encoding="utf-8")
    current = drawn.stdout
    diff = "".join(
        difflib.unified_diff(stored.splitlines(True), current.splitlines(True), "stored", "current", n=2)
    )
    assert current == stored, f"the asset graph changed; review and regenerate:\n{diff[:4000]}"


def test_every_job_schedule_and_sensor_says_what_it_is_for():
    picture = graph_picture.picture()
    assert len(picture["assets"]) > 30 and picture["jobs"] and picture["schedules"] and picture["sensors"]
    for kind in ("jobs", "schedules", "sensors"):
        assert [name for name, item in picture[kind].items() if not item["description"].strip()] == [], kind
    for name, job in picture["jobs"].items():
        assert job["assets"], name  # a job that selects nothing is a typo

"""The report renders in a real browser: headless Chromium, no console errors, map and charts drawn.

`--dump-dom` gives the DOM after the inline script ran (it marks every drawn SVG
`data-rendered="true"`); `--enable-logging=stderr` prints console messages, including
errors and Content-Security-Policy refusals, as `CONSOLE` lines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=3000",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium); cannot render"
)


def _render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """(DOM after scripts ran, console lines) for a local file."""
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_console_errors_are_caught(tmp_path):
    """The check below would see a script error and a blocked network request (it is not vacuous)."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!doctype html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        '<img src="http://example.invalid/x.png"><script>notDefinedAnywhere();</script></body></html>',
        encoding="utf-8",
    )
    _, console = _render(page, tmp_path / "profile")
    text = "\n".join(console)
    assert "notDefinedAnywhere" in text and "Content Security Policy" in text


def test_report_renders_without_errors_with_map_and_charts(sample_lens, tmp_path):
    dom, console = _render(sample_lens.folder / "lens.html", tmp_path / "profile")
    assert console == []
    assert re.search(r'<body[^>]*data-lens-ready="true"', dom)
    svg_tags = re.findall(r"<svg\b[^>]*>", dom)
    charts = [t for t in svg_tags if "data-chart=" in t]
    maps = [t for t in svg_tags if 'id="lens-map"' in t]
    assert len(maps) == 1 and 'data-rendered="true"' in maps[0]
    assert {re.search(r'data-chart="(\w+)"', t)[1] for t in charts} >= {"series", "interval"}
    assert all('data-rendered="true"' in t for t in charts), [t for t in charts if "true" not in t]
    for tag in charts:  # every chart draws as many series as its data has
        assert re.search(r'data-series="(\d+)"', tag)[1] == re.search(r'data-drawn="(\d+)"', tag)[1], tag
    marks = [int(m) for m in re.findall(r'data-marks="(\d+)"', " ".join(maps))]
    # Region, two comunas, three basins (one focus, two in view) and the points of the map.
    assert marks and marks[0] >= 6


ARTEFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # git-ignored: screenshots of the last run
WIDTH = 1280


def _visible_text(dom: str) -> str:
    body = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_report_at_1280_px_fits_and_reads_as_text_for_people(sample_lens, tmp_path):
    page = sample_lens.folder / "lens.html"
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},1000"]
    done = subprocess.run(
        [*command, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-2000:]
    width = re.search(r'<body[^>]*data-scroll-width="(\d+)"', done.stdout)
    assert width and int(width[1]) <= WIDTH, "the page scrolls sideways at 1,280 px"
    text = _visible_text(done.stdout)
    for word in ("NaN", "None", "nan", "marts.", "pipelines.", "reference_mean_m3s"):
        assert not re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text), word
    # no table, module or id column names where people read (the reproducibility notes name the tables)
    reader = text.rsplit("Reproducibility", 1)[0]  # the last one is the section (the first, the contents)
    internal = re.findall(r"\b(?:marts|core|staging|pipelines|warehouse)\.\w+|\b\w+_id\b|\b\w+_m3s\b", reader)
    assert internal == [], internal
    # the claims table opens the lens, before the summary and the contents
    assert text.index("The study's claims checked against the data") < text.index("Summary")
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "lens-1280.png"
    done = subprocess.run(
        [*command, f"--screenshot={shot}", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0 and shot.stat().st_size > 10_000

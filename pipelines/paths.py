"""Where outputs go, without importing anything heavy (the CLI's cheap commands read these)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def output_dir() -> Path:
    """Where rendered outputs go: `CONTEXT_LENS_OUTPUT` if set, else output/ in the repository."""
    return Path(os.environ.get("CONTEXT_LENS_OUTPUT", REPO_ROOT / "output"))


def export_dir() -> Path:
    """The published export other tools read: output/export (a link swapped atomically)."""
    return output_dir() / "export"


def lens_dir(study_id: str) -> Path:
    """A study's lens outputs: output/lens/<study>/."""
    return output_dir() / "lens" / study_id

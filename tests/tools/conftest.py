"""The sample build: `context-lens build --offline` of the default study, once per session.

Every source falls back to its SAMPLE snapshot (the machine reaches no public source), so
this is exactly what `make run` produces on a fresh clone. The docs examples and the
export validation run against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.studies import DEFAULT_STUDY


@dataclass
class SampleBuild:
    root: Path

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def export(self) -> Path:
        return self.output / "export"

    @property
    def lens_data(self) -> Path:
        return self.output / "lens" / DEFAULT_STUDY / "data"


def point_at(patch: pytest.MonkeyPatch, root: Path) -> None:
    patch.setenv("CONTEXT_LENS_DB", str(root / "context.duckdb"))
    patch.setenv("CONTEXT_LENS_RAW_DIR", str(root / "raw"))
    patch.setenv("CONTEXT_LENS_OUTPUT", str(root / "output"))
    patch.setenv("CONTEXT_LENS_OFFLINE", "1")  # set here so that it is undone after the build
    patch.delenv("CONTEXT_LENS_AS_OF", raising=False)
    patch.delenv("DAGSTER_HOME", raising=False)  # an ephemeral Dagster instance


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory) -> SampleBuild:
    root = tmp_path_factory.mktemp("sample_build")
    with pytest.MonkeyPatch.context() as patch:
        point_at(patch, root)
        assert cli.main(["build", "--offline", "--study", DEFAULT_STUDY]) == 0
    return SampleBuild(root)


@pytest.fixture()
def sample_build_env(sample_build, monkeypatch) -> SampleBuild:
    """The environment pointed at the sample build for one test (read-only use)."""
    point_at(monkeypatch, sample_build.root)
    return sample_build

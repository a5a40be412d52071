"""A lens built once per module on the SAMPLE warehouse of tests/lens/sample_warehouse.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.lens import LensBuild, build_lens
from pipelines.resources import WarehouseResource
from pipelines.studies import Study, parse_study
from tests.lens import sample_warehouse
from warehouse import db


@dataclass
class SampleLens:
    root: Path
    study: Study
    built: LensBuild

    @property
    def folder(self) -> Path:
        return self.root / "output" / "lens" / self.study.id


@pytest.fixture(scope="session")
def sample_lens(tmp_path_factory) -> SampleLens:
    """Seed the SAMPLE warehouse and build its lens once; the environment is restored afterwards."""
    root = tmp_path_factory.mktemp("lens")
    with pytest.MonkeyPatch.context() as patch:
        _point_at(patch, root)
        with db.writer() as conn, db.transaction(conn):
            sample_warehouse.seed(conn)
        study = parse_study(sample_warehouse.write_study(root))
        built = build_lens(WarehouseResource(), study)
    return SampleLens(root, study, built)


def _point_at(patch: pytest.MonkeyPatch, root: Path) -> None:
    patch.setenv("CONTEXT_LENS_DB", str(root / "context.duckdb"))
    patch.setenv("CONTEXT_LENS_RAW_DIR", str(root / "raw"))
    patch.setenv("CONTEXT_LENS_OUTPUT", str(root / "output"))
    patch.delenv("CONTEXT_LENS_AS_OF", raising=False)


@pytest.fixture()
def sample_env(sample_lens, monkeypatch) -> SampleLens:
    """Point the environment at the SAMPLE warehouse for one test."""
    _point_at(monkeypatch, sample_lens.root)
    return sample_lens

"""A source fails alone: one refused OECD payload (a population file with no Chilean rows) stops
neither the lens nor the other tables; the export stays byte-identical and refresh exits non-zero.

Starts from a copy of the session's sample build (`make run` on a fresh clone); the OECD payloads
are our SAMPLE files served by a local HTTP server as if live, one of them stripped of Chile.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil

from pipelines import cli
from sources import oecd
from sources.acquire import SAMPLES_DIR
from tests.support.http import Reply
from tests.tools.conftest import SampleBuild, point_at
from warehouse import db

REFUSED = "oecd_population"


def _without_chile(body: bytes) -> bytes:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    area = rows[0].index("REF_AREA")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [rows[0], *(r for r in rows[1:] if not r[area].startswith(("CL", "CHL")))]
    )
    return out.getvalue().encode("utf-8")


def _digests(folder) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _oecd_rows() -> list[tuple]:
    with db.reader() as conn:
        return conn.execute(
            "SELECT indicator_id, territory_id, period, value, snapshot_id FROM core.observations "
            "WHERE source_id = 'oecd_regional' ORDER BY ALL"
        ).fetchall()


def test_a_refused_oecd_payload_fails_alone(sample_build, tmp_path, monkeypatch, http_server, capsys):
    shutil.copytree(sample_build.root, tmp_path / "build", symlinks=True)
    build = SampleBuild(tmp_path / "build")
    point_at(monkeypatch, build.root)
    for query in oecd.QUERIES:
        body = (SAMPLES_DIR / "oecd" / f"{query.indicator}_SAMPLE.csv").read_bytes()
        if query.indicator == REFUSED:
            body = _without_chile(body)
        http_server.script(f"/{query.indicator}.csv", Reply(200, body, {"Content-Type": "text/csv"}))
        monkeypatch.setenv(
            f"CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__{query.indicator.upper()}",
            http_server.url(f"/{query.indicator}.csv"),
        )
    lens_md = build.output / "lens" / "antofagasta-2025" / "lens.md"
    export_before, rows_before = _digests(build.export), _oecd_rows()
    lens_before = lens_md.read_bytes()

    assert cli.main(["refresh", "--family", "oecd"]) == 1
    err = capsys.readouterr().err
    assert "oecd_regional" in err and "lens built from the last good data" in err

    # The lens was rebuilt and names the failure in its gaps; the export and the tables stay.
    lens_after = lens_md.read_text(encoding="utf-8")
    assert lens_after.encode() != lens_before
    assert "oecd_regional" in lens_after and "the newest refresh failed" in lens_after
    assert _digests(build.export) == export_before
    assert _oecd_rows() == rows_before and rows_before
    with db.reader() as conn:
        status, error = conn.execute(
            "SELECT status, error FROM core.source_status WHERE source_id = 'oecd_regional'"
        ).fetchone()
        gap = conn.execute(
            "SELECT detail FROM lens.antofagasta_2025_gaps WHERE kind = 'failed' AND subject = 'oecd_regional'"
        ).fetchall()
    assert status == "failed" and REFUSED in error
    assert len(gap) == 1 and error in gap[0][0]


def test_an_unforeseen_exception_in_a_parser_fails_alone(sample_build, tmp_path, monkeypatch, capsys):
    """A KeyError in the ENE family's frame helper (not a ParseError): `build` exits 1 with a line
    naming source, snapshot and cause; ENE is failed with that reason, its payloads quarantined and
    its rows kept; every other source still builds and the lens is written."""
    from pipelines import labour
    from sources import ine_ene

    shutil.copytree(sample_build.root, tmp_path / "build", symlinks=True)
    build = SampleBuild(tmp_path / "build")
    point_at(monkeypatch, build.root)
    monkeypatch.setattr(labour, "with_territories", lambda frame, resolver: frame["CUT"])
    source = ine_ene.SOURCE.id
    with db.reader() as conn:
        before = conn.execute("SELECT * FROM staging.ine_ene ORDER BY ALL").fetchall()
    lens_md = build.output / "lens" / "antofagasta-2025" / "lens.md"
    lens_md.unlink()

    assert cli.main(["build", "--offline", "--study", "antofagasta-2025"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"parse failed for source '{source}', snapshot " in err and "unexpected KeyError: 'CUT'" in err

    with db.reader() as conn:
        statuses = dict(conn.execute("SELECT source_id, status FROM core.source_status").fetchall())
        error = conn.execute("SELECT error FROM core.source_status WHERE source_id = ?", [source]).fetchone()[
            0
        ]
        after = conn.execute("SELECT * FROM staging.ine_ene ORDER BY ALL").fetchall()
    assert statuses.pop(source) == "failed" and "unexpected KeyError: 'CUT'" in error
    assert len(statuses) > 10 and "failed" not in statuses.values(), statuses
    assert after == before and before
    kept = list((build.root / "raw" / "quarantine" / source).glob("*.json"))
    assert len(kept) == len(ine_ene.DATAFLOWS)
    assert lens_md.is_file()

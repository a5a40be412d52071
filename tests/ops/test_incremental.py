"""Incremental builds (issue 20, items 1 and 2), read from Dagster's own event log.

A second build with nothing changed runs every source asset, finds each one unchanged and
writes nothing: no downstream asset runs, the warehouse's tables and snapshots are as they
were, the lens the same. Then one source's payload changes (the OECD population query,
served from a file endpoint): that source's assets, the observations it feeds and what reads
them run again, nothing else, and the lens equals a from-scratch build from the same inputs.

Four builds of the sample in one module: slow by nature (minutes on a loaded 2-core machine).
"""

import csv
import hashlib
import io
import json
import re

import pytest

from pipelines import cli
from sources.acquire import SAMPLES_DIR
from warehouse import db

STUDY = "antofagasta-2025"
OVERRIDE = "CONTEXT_LENS_ENDPOINT__OECD_REGIONAL__OECD_POPULATION"
# Lens columns that name a build rather than its content: snapshot ids and retrieval times
# are minted when a payload is first stored, so two warehouses never share them.
RUN_SPECIFIC = re.compile(r"snapshot|retrieved|generated|vintage|freshness|_at$")
# ... and the snapshot ids quoted inside other columns (a value's `inputs`: 'value: <source> <id> (sample)').
SNAPSHOT_ID = re.compile(r"\b[a-z0-9_]+-\d{14}-[0-9a-f]{12}(?:-\d+)?\b")


def _latest(instance) -> dict[str, tuple]:
    """{asset: (run, time) of its latest materialization} in the Dagster instance."""
    from pipelines.definitions import defs

    latest = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            latest[key.to_user_string()] = (event.run_id, event.timestamp)
    return latest


def _ran_since(instance, before: dict[str, tuple]) -> tuple[set[str], set[str]]:
    """(assets materialized since `before` that did work, those that reported themselves unchanged)."""
    from dagster import AssetKey

    worked, unchanged = set(), set()
    for name, latest in _latest(instance).items():
        if before.get(name) == latest:
            continue
        event = instance.get_latest_materialization_event(AssetKey.from_user_string(name))
        meta = event.asset_materialization.metadata.get("unchanged")
        (unchanged if meta is not None and meta.value else worked).add(name)
    return worked, unchanged


def _tables() -> dict[str, int]:
    with db.reader() as conn:
        names = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{s}.{t}": conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0]  # noqa: S608
            for s, t in names
        }


def _snapshot_ids() -> set[str]:
    with db.reader() as conn:
        return {row[0] for row in conn.execute("SELECT snapshot_id FROM core.snapshots").fetchall()}


def _lens_content(run_specific: bool = True) -> dict[str, str]:
    """{lens table: sha256 of its sorted rows}, without the run-specific columns unless asked."""
    hashes = {}
    with db.reader() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lens' "
                "AND table_name LIKE ? ORDER BY 1",
                [STUDY.replace("-", "_") + "%"],
            ).fetchall()
        ]
        for table in tables:
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'lens' "
                    "AND table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if run_specific or not RUN_SPECIFIC.search(row[0])
            ]
            if table.endswith("_manifest") and not run_specific:
                continue  # its content hash and build time cover the run-specific columns too
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {listed} FROM lens."{table}"').fetchall()  # noqa: S608
            text = "\n".join(sorted(repr(r) for r in rows))
            if not run_specific:
                text = SNAPSHOT_ID.sub("<snapshot>", text)
            hashes[table] = hashlib.sha256(text.encode()).hexdigest()
    return hashes


def _changed_population(folder) -> str:
    """The OECD population sample with Antofagasta's (CL02) first value raised by 1000: a file URL."""
    sample = SAMPLES_DIR / "oecd" / "oecd_population_SAMPLE.csv"
    rows = list(csv.reader(io.StringIO(sample.read_text(encoding="utf-8"))))
    header = rows[0]
    area, value = header.index("REF_AREA"), header.index("OBS_VALUE")
    row = next(r for r in rows[1:] if r[area] == "CL02" and r[value])
    row[value] = str(float(row[value]) + 1000)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path = folder / "oecd_population.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path.resolve().as_uri()


def _build(instance_home, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(instance_home))
    assert cli.main(["build", "--study", STUDY]) in (0, 1)  # 1: a sample build's checks may fail


def _instance():
    from dagster import DagsterInstance

    return DagsterInstance.get()


@pytest.fixture()
def homes(tmp_path, monkeypatch):
    """A private warehouse, raw store, output and Dagster instance for each of two builds."""
    monkeypatch.delenv("CONTEXT_LENS_OFFLINE", raising=False)
    monkeypatch.setenv("CONTEXT_LENS_FILE_ROOTS", str(tmp_path))

    def use(name: str):
        root = tmp_path / name
        (root / "dagster").mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("CONTEXT_LENS_DB", str(root / "context.duckdb"))
        monkeypatch.setenv("CONTEXT_LENS_RAW_DIR", str(root / "raw"))
        monkeypatch.setenv("CONTEXT_LENS_OUTPUT", str(root / "output"))
        monkeypatch.delenv("CONTEXT_LENS_PUBLISHED_DB", raising=False)
        return root / "dagster"

    return use


def test_nothing_changed_skips_everything_then_one_change_rebuilds_only_its_part(
    homes, tmp_path, monkeypatch, capsys
):
    from pipelines.definitions import SOURCE_ASSET_KEYS, defs

    home = homes("incremental")
    _build(home, monkeypatch)
    instance = _instance()
    before, tables, snapshots, lens = _latest(instance), _tables(), _snapshot_ids(), _lens_content()

    _build(home, monkeypatch)  # nothing changed
    worked, unchanged = _ran_since(instance, before)
    assert worked == set(), f"assets that did work although nothing changed: {sorted(worked)}"
    assert unchanged == {k.to_user_string() for k in SOURCE_ASSET_KEYS}
    assert _tables() == tables and _snapshot_ids() == snapshots
    assert _lens_content() == lens  # every column, the manifest's content hash included
    capsys.readouterr()  # the builds' output
    assert cli.main(["status", "--json"]) == 0
    status = {row["source"]: row for row in json.loads(capsys.readouterr().out)}
    assert all(
        "unchanged" in status[s].get("last_build", "") for s in ("oecd_regional", "camels_cl", "sinim")
    )

    monkeypatch.setenv(OVERRIDE, _changed_population(tmp_path))  # one payload of one source changes
    before = _latest(instance)
    _build(home, monkeypatch)
    worked, unchanged = _ran_since(instance, before)
    graph = defs.resolve_asset_graph()
    from dagster import AssetKey, AssetSelection

    touched = AssetSelection.assets(AssetKey("oecd_regional")).downstream().resolve(graph)
    expected = {
        k.to_user_string() for k in touched if k.path[-1] == "oecd_regional" or k not in SOURCE_ASSET_KEYS
    }
    other_lenses = {k for k in expected if k.startswith("lens_") and k != f"lens_{STUDY.replace('-', '_')}"}
    assert worked == expected - other_lenses
    assert unchanged == {k.to_user_string() for k in SOURCE_ASSET_KEYS} - {"oecd_regional"}
    assert _lens_content() != lens
    incremental = _lens_content(run_specific=False)

    scratch = homes("scratch")  # the same inputs, from nothing
    _build(scratch, monkeypatch)
    scratch_content = _lens_content(run_specific=False)
    differing = sorted(k for k in incremental if scratch_content.get(k) != incremental[k])
    assert differing == [], "the incremental lens must equal a from-scratch build from the same inputs"
    assert scratch_content == incremental

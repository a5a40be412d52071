"""Value gates in the shared write path: declared tables judged against their last accepted values.

The tables here are test stand-ins declared through the same `pipelines.gates.declare` every
family uses; their values are invented.
"""

from datetime import datetime

import pandas as pd
import pytest

from pipelines import gates
from pipelines.ingest import write_tables
from pipelines.rules import OpsConfig
from warehouse import db
from warehouse import gates as sql

gates.declare(
    "staging.gate_test",
    gates.TableGates(keys=("indicator", "area", "year"), values=("value",), group="indicator"),
)
gates.declare(
    "core.gate_counts",
    gates.TableGates(
        keys=("year", "place", "kind"),
        aggregates=(
            gates.Aggregate("count per year", by={"year": "year"}, value="n"),
            gates.Aggregate("share unknown", by={"year": "year"}, value="n", share_of="place = 'unknown'"),
        ),
    ),
)
AREAS = [f"A{i:02d}" for i in range(10)]


@pytest.fixture()
def conn(tmp_path):
    connection = db.connect(tmp_path / "gates.duckdb")
    for snapshot, mode in [
        ("s1", "live"),
        ("s2", "live"),
        ("s3", "live"),
        ("x1", "sample"),
        ("x2", "sample"),
    ]:
        connection.execute(
            "INSERT INTO core.snapshots (snapshot_id, source_id, name, request_url, method, retrieved_at, sha256, "
            "bytes, mode) VALUES (?, 'gate_src', 'n', 'u', 'GET', ?, 'h', 1, ?)",
            [snapshot, datetime(2025, 1, 1), mode],
        )
    yield connection
    connection.close()


def _values(snapshot: str, scale: dict[str, float] | None = None, **changes) -> pd.DataFrame:
    scale = scale or {}
    rows = []
    for indicator, base in (("pop", 1000.0), ("rate", 5.0)):
        for i, area in enumerate(AREAS):
            for year in (2020, 2021):
                value = (base + i) * scale.get(area, 1.0)
                rows.append({"indicator": indicator, "area": area, "year": year, "value": value})
    frame = pd.DataFrame(rows)
    for column, fn in changes.items():
        frame[column] = fn(frame)
    frame["snapshot_id"] = snapshot
    return frame


def _write(conn, frame, table=("staging", "gate_test"), config=None):
    return write_tables(conn, "gate_src", {table: frame}, config=config or OpsConfig())


def _read(conn):
    return conn.execute("SELECT indicator, area, year, value FROM staging.gate_test ORDER BY ALL").fetchall()


def test_order_of_magnitude_on_three_areas_is_refused_naming_keys_and_values(conn):
    _write(conn, _values("s1"))
    before = _read(conn)
    bad = _values(
        "s2",
        value=lambda f: f["value"].where(
            ~(f["area"].isin(AREAS[:3]) & (f["indicator"] == "pop")), f["value"] * 1000
        ),
    )
    with pytest.raises(gates.GateRefusal) as refused:
        _write(conn, bad)
    message = str(refused.value)
    assert "gate_src" in message and "snapshot s2" in message and "snapshots s1" in message
    assert "value of pop: 6 value(s) change by an order of magnitude" in message
    assert "A00 2020: 1,000 -> 1e+06" in message
    assert _read(conn) == before


def test_blanking_or_removing_an_indicator_is_refused(conn):
    _write(conn, _values("s1"))
    blank = _values("s2", value=lambda f: f["value"].where(f["indicator"] != "pop"))
    with pytest.raises(gates.GateRefusal, match=r"value of pop: would remove or blank 20 of 20 current keys"):
        _write(conn, blank)
    half = _values("s2")
    half = half[~((half["indicator"] == "rate") & half["area"].isin(AREAS[:5]))]
    with pytest.raises(
        gates.GateRefusal, match=r"value of rate: would remove or blank 10 of 20 current keys \(50%"
    ):
        _write(conn, half)


def test_sign_flips_and_jumps_are_refused_small_moves_and_additions_pass(conn):
    _write(conn, _values("s1"))
    with pytest.raises(gates.GateRefusal, match="change sign"):
        _write(conn, _values("s2", value=lambda f: f["value"].where(f["area"] != "A01", -f["value"])))
    with pytest.raises(gates.GateRefusal, match=r"value\(s\) move by more than x1.5 either way"):
        _write(conn, _values("s2", {"A04": 0.5}))  # a halving is as far as a doubling
    grown = pd.concat(
        [_values("s2", {"A04": 1.2}), _values("s2").query("year == 2020").assign(year=2022)],
        ignore_index=True,
    )
    assert _write(conn, grown) == {"staging.gate_test": 60}


def test_a_group_tolerance_from_the_rules_applies(conn):
    _write(conn, _values("s1"))
    config = OpsConfig(sources={"gate_src": {"values": {"groups": {"rate": {"tolerance": 2.0}}}}})
    moved = _values("s2", value=lambda f: f["value"].where(f["indicator"] != "rate", f["value"] * 2))
    assert _write(conn, moved, config=config)
    with pytest.raises(gates.GateRefusal):
        _write(conn, _values("s3", value=lambda f: f["value"] * 2))  # the default still holds for pop


def test_sample_data_and_republished_snapshots_are_not_judged(conn):
    _write(conn, _values("x1"))
    assert _write(conn, _values("s1", value=lambda f: f["value"] * 1000)), (
        "sample -> live: nothing to compare"
    )
    assert _write(conn, _values("s1", value=lambda f: f["value"] / 1000 * 3)), "same snapshot: a code change"


def test_aggregates_judge_totals_and_shares_of_count_tables(conn):
    def counts(snapshot, factor=1, unknown=1):
        rows = [
            {"year": y, "place": p, "kind": k, "n": 10 * factor}
            for y in (2020, 2021)
            for p in ("p1", "p2", "p3")
            for k in ("a", "b")
        ]
        rows += [{"year": y, "place": "unknown", "kind": "a", "n": unknown} for y in (2020, 2021)]
        return pd.DataFrame(rows).assign(snapshot_id=snapshot)

    _write(conn, counts("s1"), ("core", "gate_counts"))
    with pytest.raises(gates.GateRefusal, match=r"count per year: 2 value\(s\) move by more than x1.5"):
        _write(conn, counts("s2", factor=2), ("core", "gate_counts"))
    with pytest.raises(
        gates.GateRefusal, match=r"share unknown: 2 value\(s\) move by more than 0.05 \(share\)"
    ):
        _write(conn, counts("s2", unknown=20), ("core", "gate_counts"))
    assert _write(conn, counts("s2", unknown=2), ("core", "gate_counts"))


def test_an_identical_table_is_not_rewritten_and_every_write_is_recorded(conn):
    _write(conn, _values("s1"))
    first = sql.previous(conn, "staging.gate_test", "")
    assert first.row_count == 40 and first.mode == "live" and first.snapshot_ids == ("s1",)
    assert sql.fingerprint(conn, sql.relation_sql("staging.gate_test"))[1] == first.fingerprint
    _write(conn, _values("s1"))
    assert sql.previous(conn, "staging.gate_test", "").fingerprint == first.fingerprint

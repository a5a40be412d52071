"""Cause groups: the reference file loads, chapters partition, and the SQL twin agrees with Python."""

from __future__ import annotations

import itertools

import duckdb
import pandas as pd
import pytest
import yaml

from sources.icd_groups import (
    REFERENCE_PATH,
    UNMAPPED,
    CauseGroupsError,
    load_cause_groups,
    normalize_code,
    parse_cause_groups,
    sql_normalize_code,
)

GROUPS = load_cause_groups()


def test_reference_file_is_versioned_and_documented():
    text = REFERENCE_PATH.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    assert GROUPS.version == str(document["version"]) and GROUPS.version
    assert GROUPS.icd10_from_year == 1997
    # the header comment explains which groups partition and which overlap
    assert "chapter" in text and "specific" in text and "unmapped" in text
    assert {g.id for g in GROUPS.chapters} >= {
        "neoplasms_malignant",
        "circulatory",
        "respiratory",
        "external",
    }
    assert {g.id for g in GROUPS.specifics} == {"lung_cancer", "pneumoconiosis"}


@pytest.mark.parametrize(
    ("year", "diag1", "diag2", "expected"),
    [
        (2019, "C34.9", "", {"all_causes", "neoplasms_malignant", "lung_cancer"}),
        (2019, "C349", None, {"all_causes", "neoplasms_malignant", "lung_cancer"}),
        (2019, "C679", None, {"all_causes", "neoplasms_malignant"}),
        (2019, "J628", None, {"all_causes", "respiratory", "pneumoconiosis"}),
        (2019, "J66", None, {"all_causes", "respiratory"}),
        (2019, "I64X", None, {"all_causes", "circulatory"}),
        (2019, "E119", None, {"all_causes", UNMAPPED}),
        (2020, "U07.1", None, {"all_causes", "covid19"}),
        (2020, "U07.2", None, {"all_causes", "covid19"}),
        (2020, "U07", None, {"all_causes", UNMAPPED}),
        (2018, "X70X", None, {"all_causes", "external"}),
        # injury nature in DIAG1, external cause in DIAG2 -> the death is external
        (2018, "S069", "V892", {"all_causes", "external"}),
        (2018, "T71X", "X70X", {"all_causes", "external"}),
        # without an external cause in DIAG2 the injury code stays the cause (unmapped)
        (2018, "S069", "", {"all_causes", UNMAPPED}),
        # DIAG2 is ignored when DIAG1 is not an injury code
        (2018, "I219", "X70X", {"all_causes", "circulatory"}),
        (2018, "", None, {"all_causes", UNMAPPED}),
        # ICD-9 before 1997
        (1996, "1629", None, {"all_causes", "neoplasms_malignant", "lung_cancer"}),
        (1995, "4109", None, {"all_causes", "circulatory"}),
        (1995, "5020", None, {"all_causes", "respiratory", "pneumoconiosis"}),
        (1995, "E9509", None, {"all_causes", "external"}),
        (1995, "9509", None, {"all_causes", "external"}),
        # the same letters mean something else in ICD-10
        (1997, "E950", None, {"all_causes", UNMAPPED}),
        (1996, "C349", None, {"all_causes", UNMAPPED}),
    ],
)
def test_groups_of(year, diag1, diag2, expected):
    revision = GROUPS.revision_for_year(year)
    assert set(GROUPS.groups_of(revision, diag1, diag2)) == expected


def _code_sweep() -> list[tuple[int, str, str]]:
    """Every ICD-10 category and ICD-9 3-digit code, some 4-character codes, and injury pairs."""
    rows = []
    for letter, number in itertools.product("ABCDEFGHIJKLMNOPQRSTUVWXYZ", range(100)):
        rows.append((2010, f"{letter}{number:02d}", ""))
        rows.append((2010, f"{letter}{number:02d}9", ""))
    for number in range(1000):
        rows.append((1990, f"{number:03d}", ""))
        rows.append((1990, f"{number:03d}9", ""))
    for number in range(800, 1000):
        rows.append((1990, f"E{number}", ""))
    for cause in ("V892", "W19X", "X70X", "Y98", "I219", "", "Z99"):
        for injury in ("S069", "T71X", "T98", "R99", "C349"):
            rows.append((2010, injury, cause))
    rows += [(2020, "U071", ""), (2020, "U072", ""), (2020, "U07.1", ""), (2020, "u07.2 ", "")]
    return rows


def test_chapters_partition_every_code():
    partition = set(GROUPS.partition_ids)
    for year, diag1, diag2 in _code_sweep():
        found = GROUPS.groups_of(GROUPS.revision_for_year(year), diag1, diag2)
        assert found.count("all_causes") == 1
        assert len([g for g in found if g in partition]) == 1, (year, diag1, diag2, found)


def test_sql_classification_matches_python():
    sweep = _code_sweep()
    frame = pd.DataFrame(sweep, columns=["year", "raw1", "raw2"])
    revision = GROUPS.sql_revision("year")
    cause = GROUPS.sql_underlying_code("revision", "diag1", "diag2")
    flags = GROUPS.sql_specific_flags("revision", "cause_code")
    flag_sql = "".join(f", {sql} AS {gid}" for gid, sql in flags.items())
    con = duckdb.connect()
    con.register("sweep", frame)
    result = con.execute(
        f"""
        WITH coded AS (SELECT year, raw1, raw2, {revision} AS revision,
                              {sql_normalize_code("raw1")} AS diag1, {sql_normalize_code("raw2")} AS diag2 FROM sweep),
             caused AS (SELECT *, {cause} AS cause_code FROM coded)
        SELECT year, raw1, raw2, cause_code, {GROUPS.sql_chapter("revision", "cause_code")} AS chapter{flag_sql}
        FROM caused
        """  # noqa: S608 - test SQL built from the reference file
    ).df()
    assert len(result) == len(sweep)
    for row in result.itertuples(index=False):
        revision_py = GROUPS.revision_for_year(row.year)
        code = GROUPS.underlying_code(revision_py, row.raw1, row.raw2)
        assert row.cause_code == code
        expected = set(GROUPS.groups_of(revision_py, row.raw1, row.raw2))
        got = {"all_causes", row.chapter} | {gid for gid in flags if getattr(row, gid)}
        assert got == expected, row


def test_normalize_code_python_and_sql_agree():
    raws = ["C34.9", " u07.1 ", "I64X", "X-70", "", None, "E950.9"]
    con = duckdb.connect()
    for raw in raws:
        sql_value = con.execute(f"SELECT {sql_normalize_code('$raw')}", {"raw": raw}).fetchone()[0]
        assert sql_value == normalize_code(raw)


def _document(**changes):
    document = yaml.safe_load(REFERENCE_PATH.read_text(encoding="utf-8"))
    document.update(changes)
    return document


def test_overlapping_chapters_are_refused():
    document = _document()
    document["groups"].append({"id": "cancers_again", "kind": "chapter", "icd10": [["C30", "C39"]]})
    with pytest.raises(CauseGroupsError, match="cancers_again"):
        parse_cause_groups(document)


def test_malformed_reference_entries_are_refused():
    document = _document()
    document["groups"].append({"id": "bad", "kind": "specific", "icd10": [["C34'; DROP", "C35"]]})
    with pytest.raises(CauseGroupsError, match="not an ICD code"):
        parse_cause_groups(document)
    document = _document()
    document["groups"].append({"id": "empty", "kind": "specific", "icd10": [["C50", "C40"]]})
    with pytest.raises(CauseGroupsError, match="empty"):
        parse_cause_groups(document)
    with pytest.raises(CauseGroupsError, match="version"):
        parse_cause_groups({k: v for k, v in _document().items() if k != "version"})

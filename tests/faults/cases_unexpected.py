"""Issue 14 item 8 for exceptions nobody foresaw: a KeyError or TypeError raised by a family's own
parse or transform code (not a ParseError or ValidationError) refuses the payload like any bad
payload. The source is recorded `failed` naming source, snapshot and cause, the payload is in
quarantine, no table changes, and the other sources and the lens still build. A step that
computes tables from accepted data (no payload) is recorded `failed` the same way (U04).

The fault is injected by wrapping one of the family's real functions so that it trips over a
column the payload lacks (`frame["CUT"]`, pandas' own KeyError) or fails on a value, only while
the case runs; the payload served is otherwise a good one (accepted without the fault).
"""

from __future__ import annotations

from unittest import mock

from pipelines import gates, labour
from pipelines import oecd as oecd_assets
from pipelines.ingest import DeriveError, UnexpectedError
from sources import ine_ene, oecd
from sources.base import SourceError
from tests.faults import cases_labour
from tests.faults.cases_failalone import POPULATION, lens_names_the_failure
from tests.faults.harness import (
    OECD,
    baseline,
    capture,
    expect_refused,
    live_bytes,
    names_source_and_cause,
    require,
    run_asset,
    run_oecd,
    serve_oecd,
    shown,
    status,
    tables_intact,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply

ENE = ine_ene.SOURCE.id
EXPECTED = (
    "refused: error names source, snapshot and the original exception; status failed with it; payload "
    "quarantined; tables intact (0 rows lost or altered)"
)


def _unforeseen(error: Exception | None, kind: type[BaseException]) -> str:
    """The refusal is an UnexpectedError whose __cause__ is the original exception (still visible)."""
    require(isinstance(error, UnexpectedError), f"not raised as UnexpectedError: {error!r}")
    require(isinstance(error.__cause__, kind), f"the original {kind.__name__} is not its cause: {error!r}")
    return f"UnexpectedError from {type(error.__cause__).__name__}"


def _serve_new(body: bytes) -> None:
    serve_oecd({POPULATION: Reply(200, body, {"Content-Type": "text/csv", "ETag": '"unforeseen"'})})


@case(
    "U01",
    "content",
    "OECD parser trips a KeyError ('CUT') on one payload, then the lens",
    EXPECTED + "; the lens still builds and names the failure",
)
def oecd_parser_key_error() -> str:
    body = live_bytes(POPULATION, 1.03)  # a good payload: 1% off the baseline's values
    parse = oecd.parse_sdmx_csv

    def tripping(content, *args, **kwargs):
        frame = parse(content, *args, **kwargs)
        if content == body:
            frame["CUT"]  # noqa: B018 (the KeyError a parser meets on a column the payload lacks)
        return frame

    with workspace() as ws:
        _serve_new(body)
        with mock.patch.object(oecd, "parse_sdmx_csv", tripping):
            error = run_oecd()
        observed = expect_refused(ws, error, r"unexpected KeyError: 'CUT'", body)
        kind = _unforeseen(error, KeyError)
        require(error.snapshot and error.snapshot in str(status(ws.db)[3]), "status names no snapshot")
        lens_names_the_failure(ws, "unexpected KeyError")
    return f"{kind}: {observed}; lens written, its gaps name {OECD} as failed"


@case(
    "U02",
    "content",
    "a TypeError inside the publishing transaction (a gate's helper fails on the frame)",
    EXPECTED + "; the transaction rolled back",
)
def type_error_while_publishing() -> str:
    body = live_bytes(POPULATION, 1.03)
    stage = gates.stage

    def failing(conn, source_id, table, content, *args, **kwargs):
        if source_id == OECD and table == "staging.oecd_regional":
            raise TypeError("unsupported operand type(s) for /: 'str' and 'int'")
        return stage(conn, source_id, table, content, *args, **kwargs)

    with workspace() as ws:
        _serve_new(body)
        with mock.patch.object(gates, "stage", failing):
            error = run_oecd(observations=False)
        observed = expect_refused(ws, error, r"unexpected TypeError: unsupported operand", body)
        kind = _unforeseen(error, TypeError)
    return f"{kind}: {observed}"


@case(
    "U03",
    "content",
    "ENE frame-building helper trips a KeyError ('CUT'), then every other source of the harness",
    EXPECTED + "; census, poverty, facilities and conflicts still build (not failed)",
)
def ene_helper_key_error() -> str:
    name = ine_ene.DATAFLOWS[0].id
    body = (labour.SAMPLE_DIR / f"{name}_SAMPLE.csv").read_bytes() + b"\n"  # same rows, new bytes

    def tripping(frame, resolver):
        return frame.assign(territory_id=frame["CUT"])

    with cases_labour.workspace() as ws:
        cases_labour._serve({(ENE, name): body})
        with mock.patch.object(labour, "with_territories", tripping):
            error = cases_labour.run_family(ENE)
        observed = cases_labour.check_refused(ws, ENE, body, error, r"unexpected KeyError: 'CUT'")
        kind = _unforeseen(error, KeyError)
        others = [source for source in cases_labour.FAMILIES if source != ENE]
        for source in others:
            failed = cases_labour.run_family(source)
            require(failed is None, f"{source} failed after {ENE} was refused: {failed}")
            row = status(ws.db, source)
            require(row is not None and row[0] != "failed", f"{source} status is {row}")
        require(status(ws.db, ENE)[0] == "failed", f"{ENE} status changed by the other runs")
    return f"{kind}: {observed}; {len(others)} other sources built"


@case(
    "U04",
    "content",
    "a ValueError while computing OECD observations from accepted data (a derived step)",
    "DeriveError naming source and cause (original kept); status failed with it; the transaction rolled "
    "back (0 rows lost or altered)",
)
def value_error_in_derived_step() -> str:
    def failing(family):
        raise ValueError(f"invalid literal for int() with base 10: {family!r}")

    with workspace() as ws:
        with mock.patch.object(oecd_assets, "load_indicators", failing):
            try:
                run_asset(oecd_assets.oecd_observations)
            except SourceError as exc:
                error = exc
            else:
                raise AssertionError("the failing derived step succeeded")
        require(isinstance(error, DeriveError), f"not raised as DeriveError: {error!r}")
        require(isinstance(error.__cause__, ValueError), f"the ValueError is not its cause: {error!r}")
        names_source_and_cause(str(error), r"unexpected ValueError: invalid literal")
        row = status(ws.db)
        require(row is not None and row[0] == "failed", f"status is {row}, not failed")
        names_source_and_cause(f"{OECD} {row[3]}", r"unexpected ValueError: invalid literal")
        tables_intact(baseline().state, capture(ws.root))
    return f"{shown(error)}; status failed with it; tables intact"

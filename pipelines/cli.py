"""`context-lens`: the analyst's command line. It drives the same Dagster definitions.

    context-lens build [--study ID] [--as-of DATE] [--offline]   materialize everything, write the lens
    context-lens refresh [--family F]                            fetch live sources, rebuild downstream
    context-lens status                                          per source: mode, snapshot, freshness, error
    context-lens sql [QUERY] [--export]                          query the warehouse (or the export) read-only

Every failure ends with a non-zero exit and one line saying why.
"""

import argparse
import json
import logging
import os
import sys
from datetime import date
from pathlib import Path

import duckdb
from dagster import AssetSelection, DagsterInstance, materialize

from pipelines.studies import DEFAULT_STUDY, load_study
from warehouse import db


class CommandError(Exception):
    """A failure the user can act on; printed as one line."""


def _instance() -> DagsterInstance:
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _selection(study_id: str | None) -> AssetSelection:
    """Everything except the lenses of other studies."""
    from pipelines import lens

    others = [
        a.key for a in lens.ASSETS if study_id and a.key.path[-1] != f"lens_{study_id.replace('-', '_')}"
    ]
    return AssetSelection.all() - AssetSelection.assets(*others)


def _failure_reason(result) -> str:
    """The first failed step and the innermost error message, on one line."""
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        message = (error.message if error else "unknown error").strip().splitlines()
        return f"step {event.step_key}: {message[0] if message else 'unknown error'}"
    return "the run did not succeed (no step failure recorded; see the run log above)"


def _materialize(selection: AssetSelection) -> None:
    """Run the selection with the code location's own assets, checks and resources."""
    from pipelines.definitions import defs

    result = materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        instance=_instance(),
        resources=defs.resources,
        raise_on_error=False,
        # The run log at INFO: step starts and ends, fallbacks, warnings; DEBUG events stay in the instance.
        run_config={
            "loggers": {
                "console": {"config": {"log_level": os.environ.get("CONTEXT_LENS_LOG_LEVEL", "INFO")}}
            }
        },
    )
    if not result.success:
        raise CommandError(f"{_failure_reason(result)}; previous good tables and export are still served")


def cmd_build(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    if args.as_of:
        os.environ["CONTEXT_LENS_AS_OF"] = args.as_of.isoformat()
    if args.offline:
        os.environ["CONTEXT_LENS_OFFLINE"] = "1"
    _materialize(_selection(study.id))
    from pipelines.export import export_dir

    print(f"lens written: output/lens/{study.id}/ (warehouse {db.db_path()}; export {export_dir()})")
    return 0


def _family_modules() -> dict:
    from pipelines.families import family_modules

    return {m.FAMILY: m for m in family_modules()}


def cmd_refresh(args: argparse.Namespace) -> int:
    """Fetch live (never offline), rebuild downstream, and fail loudly if a source was not reached."""
    from pipelines import ops

    os.environ.pop("CONTEXT_LENS_OFFLINE", None)
    families = _family_modules()
    if args.family and args.family not in families:
        raise CommandError(f"unknown family {args.family!r}; known: {', '.join(sorted(families))}")
    chosen = [families[args.family]] if args.family else list(families.values())
    if args.family:
        selection = AssetSelection.assets(*ops.family_asset_keys(chosen[0])).downstream()
    else:
        selection = AssetSelection.all()
    _materialize(selection)
    source_ids = {s.info.id for m in chosen for s in ops.family_sources(m)}
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT source_id, status, mode, error FROM core.source_status "
            "WHERE source_id IN (SELECT unnest(?)) ORDER BY 1",
            [sorted(source_ids)],
        ).fetchall()
    for source_id, status, mode, _ in rows:
        print(f"{source_id:26} {status:10} ({mode})")
    missed = [
        f"{sid} ({status}: {error})" for sid, status, mode, error in rows if status in ("sample", "stale")
    ]
    if missed:
        raise CommandError(f"{len(missed)} source(s) not reached live: {'; '.join(missed)}")
    return 0


def _status_rows() -> list[dict]:
    """Every known source: those in the warehouse, and those the families use but never built."""
    from pipelines import ops

    rows: dict[str, dict] = {}
    for family, module in _family_modules().items():
        for source in ops.family_sources(module):
            rows[source.info.id] = {
                "source": source.info.id,
                "family": family,
                "mode": "-",
                "status": "never run",
                "snapshot": "-",
                "freshness": "never refreshed",
                "reason": "not built yet: run `context-lens build`",
            }
    if db.db_path().exists():
        with db.reader() as conn:
            for fresh in ops.freshness_report(conn):
                rows[fresh.source_id] = {
                    "source": fresh.source_id,
                    "family": fresh.family,
                    "mode": fresh.mode or "-",
                    "status": fresh.status or "never run",
                    "snapshot": fresh.last_snapshot_id or "-",
                    "freshness": fresh.describe(),
                    "reason": fresh.error or "",
                }
    return [rows[k] for k in sorted(rows)]


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.export import export_dir

    rows = _status_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        reason = f"  reason: {row['reason']}" if row["reason"] else ""
        print(
            f"{row['source']:26} family={row['family']:12} mode={row['mode']:8} status={row['status']:10} "
            f"freshness={row['freshness']}  snapshot={row['snapshot']}{reason}"
        )
    manifest = export_dir() / "manifest.json"
    if manifest.exists():
        published = json.loads(manifest.read_text(encoding="utf-8"))
        print(
            f"export: {export_dir()} content {published['content_hash'][:12]} at {published['generated_at']}"
        )
    else:
        print(f"export: none yet at {export_dir()}")
    return 0


def _export_connection(folder: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per exported table (`core.observations`, ...)."""
    from pipelines.export import sql_string

    manifest = folder / "manifest.json"
    if not manifest.exists():
        raise CommandError(f"no export at {folder}: run `context-lens build` first")
    conn = duckdb.connect()
    conn.execute(f"LOAD '{db.spatial_extension_path()}'")
    for name, table in json.loads(manifest.read_text(encoding="utf-8"))["tables"].items():
        schema, relation = name.split(".", 1)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {db.quote_ident(schema)}")
        path = sql_string(str(folder / table["path"]))
        conn.execute(f"CREATE VIEW {db.table_name(schema, relation)} AS SELECT * FROM read_parquet({path})")  # noqa: S608
    return conn


def cmd_sql(args: argparse.Namespace) -> int:
    from pipelines.export import export_dir

    if args.export:
        conn = _export_connection(export_dir().resolve())
        where = f"export {export_dir()}"
    else:
        conn = db.connect(read_only=True)
        where = f"warehouse {db.db_path()} (read-only)"
    try:
        if args.query:
            print(conn.sql(args.query))
            return 0
        print(f"{where}. End with an empty line or Ctrl-D.")
        for line in sys.stdin:
            if not line.strip():
                break
            try:
                print(conn.sql(line))
            except duckdb.Error as exc:  # a typo in an interactive query should not end the session
                print(f"error: {exc}")
    finally:
        conn.close()
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="context-lens",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    commands = main.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="materialize every asset and write a study's lens and the export"
    )
    build.add_argument("--study", default=DEFAULT_STUDY)
    build.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="use only snapshots retrieved by DATE"
    )
    build.add_argument(
        "--offline", action="store_true", help="skip live fetches; use stored or sample snapshots"
    )
    build.set_defaults(run=cmd_build)
    refresh = commands.add_parser(
        "refresh", help="fetch live sources and rebuild; fails if a source could not be reached live"
    )
    refresh.add_argument("--family", default=None, help="refresh one family (and what depends on it)")
    refresh.set_defaults(run=cmd_refresh)
    status = commands.add_parser("status", help="per source: mode, last snapshot, freshness, last error")
    status.add_argument("--json", action="store_true", help="print the rows as JSON")
    status.set_defaults(run=cmd_status)
    sql = commands.add_parser("sql", help="query the warehouse read-only (or the published export)")
    sql.add_argument("query", nargs="?")
    sql.add_argument(
        "--export", action="store_true", help="query output/export/ instead of the live warehouse"
    )
    sql.set_defaults(run=cmd_sql)
    return main


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Progress of downloads and loads: the fetch and acquisition layers log at INFO.
    for name in ("sources", "pipelines"):
        logging.getLogger(name).setLevel(logging.INFO)
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"context-lens: {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"context-lens: {args.command} interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # any other failure: one line, not a traceback
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"context-lens: {args.command} failed: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

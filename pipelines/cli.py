"""`context-lens`: the analyst's command line. It drives the same Dagster definitions."""

import argparse
import logging
import os
import sys
from datetime import date

from dagster import AssetSelection, DagsterInstance, materialize

from pipelines.studies import DEFAULT_STUDY, StudyConfigError, load_study
from warehouse import db


def _instance() -> DagsterInstance:
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _selection(study_id: str | None) -> AssetSelection:
    """Everything except the lenses of other studies."""
    from pipelines import lens

    others = [
        a.key for a in lens.ASSETS if study_id and a.key.path[-1] != f"lens_{study_id.replace('-', '_')}"
    ]
    return AssetSelection.all() - AssetSelection.assets(*others)


def _materialize(selection: AssetSelection, offline: bool) -> bool:
    from pipelines.definitions import defs

    if offline:
        os.environ["CONTEXT_LENS_OFFLINE"] = "1"
    assets = [*defs.assets, *defs.asset_checks]
    result = materialize(
        assets,
        selection=selection,
        instance=_instance(),
        resources=defs.resources,
        raise_on_error=False,
    )
    return result.success


def cmd_build(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    if args.as_of:
        os.environ["CONTEXT_LENS_AS_OF"] = args.as_of.isoformat()
    ok = _materialize(_selection(study.id), args.offline)
    if not ok:
        print(f"context-lens: build of {study.id} failed; see the run log above", file=sys.stderr)
        return 1
    print(f"lens written: output/lens/{study.id}/lens.html and lens.md (warehouse {db.db_path()})")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    selection = AssetSelection.groups(args.family) if args.family else AssetSelection.all()
    ok = _materialize(selection, offline=False)
    if not ok:
        print("context-lens: refresh failed; previous good tables are still served", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with db.reader() as conn:
        rows = conn.execute(
            """
            SELECT src.source_id, coalesce(st.mode, '-') AS mode, coalesce(st.status, 'never run') AS status,
                   coalesce(st.last_snapshot_id, '-') AS snapshot, sn.retrieved_at, st.error
            FROM core.sources src LEFT JOIN core.source_status st USING (source_id)
            LEFT JOIN core.snapshots sn ON sn.snapshot_id = st.last_snapshot_id
            ORDER BY 1
            """
        ).fetchall()
    for source_id, mode, status, snapshot, retrieved, error in rows:
        reason = f"  reason: {error}" if error else ""
        print(
            f"{source_id:28} mode={mode:8} status={status:10} snapshot={snapshot} retrieved={retrieved}{reason}"
        )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    with db.reader() as conn:
        if args.query:
            print(conn.sql(args.query))
            return 0
        print(f"warehouse {db.db_path()} (read-only). End with an empty line or Ctrl-D.")
        for line in sys.stdin:
            if not line.strip():
                break
            try:
                print(conn.sql(line))
            except Exception as exc:  # a typo in an interactive query should not end the session
                print(f"error: {exc}")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="context-lens", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="materialize every asset and write a study's lens")
    build.add_argument("--study", default=DEFAULT_STUDY)
    build.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="use only snapshots retrieved by DATE"
    )
    build.add_argument(
        "--offline", action="store_true", help="skip live fetches; use stored or sample snapshots"
    )
    build.set_defaults(run=cmd_build)
    refresh = commands.add_parser("refresh", help="fetch live sources and rebuild")
    refresh.add_argument("--family", default=None)
    refresh.set_defaults(run=cmd_refresh)
    status = commands.add_parser("status", help="per source: mode, last snapshot, freshness, last error")
    status.set_defaults(run=cmd_status)
    sql = commands.add_parser("sql", help="query the warehouse read-only")
    sql.add_argument("query", nargs="?")
    sql.set_defaults(run=cmd_sql)
    return main


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (StudyConfigError, FileNotFoundError, ValueError) as exc:
        print(f"context-lens: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

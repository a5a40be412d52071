"""`context-lens sql`: read-only SQL against the warehouse or the export, from an argument, a file,
standard input or an interactive loop, written as a table, CSV, JSON or Markdown.

Starts without Dagster, pandera or pandas (tests/ops/test_cheap_entry_points.py): the query
layer is warehouse.query, imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines import formats
from pipelines.command_errors import CommandError
from pipelines.paths import export_dir


def sql_statements(args: argparse.Namespace) -> tuple[list[str], bool]:
    """The SQL to run, as statements, and whether to read queries interactively instead."""
    from warehouse.query import QueryError, split_statements

    if args.file:
        try:
            text = args.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
    elif args.query == "-" or (args.query is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
    elif args.query is None:
        return [], True
    else:
        text = args.query
    try:
        statements = split_statements(text)
    except QueryError as exc:
        raise CommandError(" ".join(str(exc).split())) from exc
    if not statements:
        raise CommandError("no SQL statement given")
    return statements, False


def write_result(result, args: argparse.Namespace, out, width: int | None) -> int:
    kind = args.format
    if kind == "csv":
        return formats.write_csv(out, result.columns, result.rows())
    if kind == "json":
        return formats.write_json(out, result.columns, result.rows())
    if kind == "markdown":
        return formats.write_markdown(out, result.columns, result.types, result.rows())
    return formats.write_table(
        out, result.columns, result.types, result.rows(), width=width, max_rows=args.max_rows
    )


def run_statements(session, statements: list[str], args: argparse.Namespace, out, width) -> int:
    from warehouse.query import QueryError

    if args.param and len(statements) > 1:
        raise CommandError("--param works with a single statement")
    results = 0
    for number, statement in enumerate(statements, 1):
        try:
            result = session.run(statement, args.param)
            if result is None:
                continue
            if results and args.format in ("csv", "json"):
                raise CommandError(
                    f"statement {number} returns a second result; --format {args.format} writes one"
                )
            if results:
                out.write("\n")
            rows = write_result(result, args, out, width)
        except QueryError as exc:
            raise CommandError(f"statement {number}: {' '.join(str(exc).split())}") from exc
        results += 1
    return rows if results else 0


def interactive(session, args: argparse.Namespace) -> None:
    from warehouse.query import QueryError, split_statements

    print(f"{session.where}. End a query with ';' or an empty line; an empty line alone quits.")
    buffer: list[str] = []
    for line in sys.stdin:
        if line.strip():
            buffer.append(line)
            if not line.rstrip().endswith(";"):
                continue
        elif not buffer:
            break
        try:
            run_statements(session, split_statements("".join(buffer)), args, sys.stdout, terminal_width())
        except (CommandError, QueryError) as exc:  # a typo should not end the session
            print(f"error: {exc}")
        buffer = []


def terminal_width() -> int | None:
    import shutil

    return shutil.get_terminal_size((120, 40)).columns if sys.stdout.isatty() else None


def cmd_sql(args: argparse.Namespace) -> int:
    from warehouse.query import QuerySession

    if args.output and not args.format:
        args.format = formats.SUFFIX_FORMATS.get(args.output.suffix.lower(), "table")
    args.format = args.format or "table"
    statements, interactive = sql_statements(args)
    session = QuerySession.export(export_dir()) if args.export else QuerySession.warehouse()
    with session:
        if interactive:
            interactive(session, args)
            return 0
        if not args.output:
            run_statements(session, statements, args, sys.stdout, terminal_width())
            return 0
        partial = args.output.with_name(f".{args.output.name}.partial")
        try:
            with open(partial, "w", encoding="utf-8", newline="") as out:
                rows = run_statements(session, statements, args, out, None)
            os.replace(partial, args.output)
        finally:
            partial.unlink(missing_ok=True)
    print(f"wrote {rows} row(s) as {args.format} to {args.output}", file=sys.stderr)
    return 0


def add_sql_parser(commands) -> None:
    sql = commands.add_parser(
        "sql",
        help="query the warehouse read-only (or the published export)",
        description="Run SQL read-only against the warehouse (spatial functions load when a query needs "
        "them, so every marts view works) or, with --export, against output/export/. The SQL comes from "
        "QUERY, from --file, or from standard input ('-', or a pipe); with none of them on a terminal, "
        "queries are read interactively.",
    )
    sql.add_argument(
        "query", nargs="?", help="the SQL (several statements separated by ';'), or '-' for stdin"
    )
    sql.add_argument("-f", "--file", type=Path, help="read the SQL from FILE")
    sql.add_argument(
        "--format",
        choices=formats.FORMATS,
        default=None,
        help="table (default; wide results are shown in blocks of columns, never cut), csv, json or "
        "markdown; with --output the default follows the file's suffix",
    )
    sql.add_argument("-o", "--output", type=Path, help="write the result to FILE (replaced when complete)")
    sql.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        help="a value for the next '?' in the query (repeatable)",
    )
    sql.add_argument(
        "--max-rows",
        type=int,
        default=200,
        help="rows shown by --format table (default 200; 0 shows all; the other formats write every row)",
    )
    sql.add_argument(
        "--export", action="store_true", help="query output/export/ instead of the live warehouse"
    )
    sql.set_defaults(run=cmd_sql)

"""`context-lens`: the analyst's command line. It drives the same Dagster definitions.

    context-lens build [--study ID] [--as-of DATE] [--offline] [--lang en|es]   materialize, write the lens
    context-lens refresh [--family F]                            fetch live sources, rebuild downstream
    context-lens status                                          per source: mode, snapshot, freshness, error
    context-lens sql [QUERY | -f FILE | -] [--format F] [--output FILE] [--export]
                                                                 query the warehouse (or the export) read-only
    context-lens studies list | check FILE... | new ID --region 02 | --comunas ... | --site LAT,LON

Every failure ends with a non-zero exit and one line saying why. `sql`, `status` and
`studies` start without importing Dagster (it is imported by the commands that run assets).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pipelines import progress, study_commands
from pipelines.command_errors import CommandError, Refused
from pipelines.paths import export_dir
from pipelines.sql_command import add_sql_parser
from pipelines.status_command import add_status_parser
from pipelines.studies import DEFAULT_STUDY, load_study
from warehouse import db

if TYPE_CHECKING:
    from dagster import AssetSelection, DagsterInstance


def iso_date(text: str) -> date:
    """An argparse type for dates: a message for people, not Python's."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        reason = str(exc).removeprefix("Invalid isoformat string: ")
        if reason.startswith("'"):
            reason = "not a date"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid date ({reason}); write it as YYYY-MM-DD, e.g. 2024-12-31"
        ) from None


def _instance() -> DagsterInstance:
    from dagster import DagsterInstance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _selection(study_id: str | None) -> AssetSelection:
    """Everything except the lenses of other studies."""
    from dagster import AssetSelection

    from pipelines import lens

    others = [
        a.key for a in lens.ASSETS if study_id and a.key.path[-1] != f"lens_{study_id.replace('-', '_')}"
    ]
    return AssetSelection.all() - AssetSelection.assets(*others)


def _unusable_lenses() -> AssetSelection:
    """The lens assets of study files that cannot be used: a refresh warns about them, by file and
    field, and refreshes everything else (`build --study` of such a file fails with the same reason)."""
    from dagster import AssetSelection

    from pipelines import lens
    from pipelines.studies import StudyConfigError, study_files

    for path, study in study_files():
        if isinstance(study, StudyConfigError):
            print(f"context-lens: warning: study {path.name} is left out: {study}", file=sys.stderr)
    usable = lens.usable(lens.ASSETS)
    return AssetSelection.assets(*[a.key for a in lens.ASSETS if a not in usable])


def _failure_reason(result) -> str:
    """The first failed step and its error on one line: the error that names the source and the
    snapshot (a SourceError), with the innermost cause when that one says something else."""
    for event in result.get_step_failure_events():
        chain, error = [], event.event_specific_data.error
        while error is not None:
            chain.append(error)
            error = error.cause
        if not chain:
            return f"step {event.step_key}: unknown error"

        def line(error) -> str:
            text = error.message.strip().splitlines()
            return text[0] if text else error.cls_name or "unknown error"

        own = [e for e in chain if not (e.cls_name or "").startswith("Dagster")] or chain
        named = next((e for e in own if "failed for source" in e.message), own[0])
        message, cause = line(named), line(chain[-1])
        if chain[-1] is not named and cause not in message:
            message = f"{message} (cause: {cause})"
        return f"step {event.step_key}: {message}"
    return "the run did not succeed (no step failure recorded; see the run log above)"


def _run(selection: AssetSelection, instance: DagsterInstance | None = None):
    """Run the selection with the code location's own assets, checks and resources."""
    progress.quiet_dagster()  # here, not in main: sql, status and studies never import Dagster
    from dagster import materialize

    from pipelines import recovery
    from pipelines.definitions import defs

    instance = instance or _instance()
    recovery.recover(instance)  # a run that died must not hold the writer pool against this one
    tags = recovery.run_tags()
    invocation = {recovery.INVOCATION_TAG: tags[recovery.INVOCATION_TAG]}
    total = progress.step_count(defs, selection)
    with (
        recovery.reporting_waits(instance, invocation),
        progress.watching(instance, invocation, total) as run,
    ):
        result = materialize(
            [*defs.assets, *defs.asset_checks],
            selection=selection,
            instance=instance,
            resources=defs.resources,
            raise_on_error=False,
            tags=tags,
            # Dagster's console log only when asked (CONTEXT_LENS_LOG_LEVEL=INFO): by default the
            # progress watcher prints the steps and what the assets warned about, once each.
            run_config={
                "loggers": {
                    "console": {"config": {"log_level": os.environ.get("CONTEXT_LENS_LOG_LEVEL", "CRITICAL")}}
                }
            },
        )
    return result, run


def _stale(selection: AssetSelection, instance: DagsterInstance) -> tuple[list, list]:
    """(stale or never materialized, fresh) asset keys of the selection, by Dagster's staleness.

    An asset is fresh when the data versions of everything upstream, and its own code version,
    are those of its last materialization: a source whose payloads did not change returned the
    same data version (`ingest.unchanged`), so what it feeds is not run again.
    """
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    keys = sorted(selection.resolve(graph), key=lambda k: k.to_user_string())
    fresh = [k for k in keys if resolver.get_status(k) == StaleStatus.FRESH]
    return [k for k in keys if k not in fresh], fresh


def _unchanged_sources(result) -> list[str]:
    """The source assets of a run that found their payloads unchanged and wrote nothing."""
    return sorted(
        event.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
        if (meta := event.step_materialization_data.materialization.metadata.get("unchanged")) is not None
        and meta.value
    )


def _unchanged_source_ids(result) -> list[str]:
    ids = set()
    for event in result.get_asset_materialization_events():
        meta = event.step_materialization_data.materialization.metadata.get("unchanged_sources")
        ids.update(meta.value if meta is not None else [])
    return sorted(ids)


class _WaveBuild:
    """One build in waves (see `_materialize`): what is settled, blocked by a failed source, left
    unchanged, run and skipped so far, and the step log of every Dagster run it made."""

    def __init__(self, selection: AssetSelection):
        from dagster import AssetSelection

        self.graph = _asset_graph()
        self.instance = _instance()
        self.wanted = set(selection.resolve(self.graph))
        self.upstream = {
            k: set(AssetSelection.assets(k).upstream().resolve(self.graph)) & self.wanted - {k}
            for k in self.wanted
        }
        self.settled: set = set()
        self.blocked: set = set()  # downstream of a failed source: not rebuilt in this build (lenses aside)
        self.unchanged: list[str] = []
        self.unchanged_ids: list[str] = []
        self.skipped: list = []
        self.ran: list = []
        self.failures: list = []
        self.materialized: set = set()
        self.log = None

    def ready(self) -> set:
        """The unsettled assets whose every upstream asset in the selection is settled."""
        return {k for k in self.wanted - self.settled if self.upstream[k] <= self.settled}

    def run(self, part: AssetSelection) -> object:
        """One Dagster run; its step counts are added to the build's log."""
        result, step_log = _run(part, self.instance)
        if self.log is None:
            self.log = step_log
        else:
            self.log.total += step_log.total
            self.log.done += step_log.done
            self.log.failed += step_log.failed
            self.log.failed_checks += step_log.failed_checks
        if not result.success:
            self.failures.append(result)
            self.materialized.clear()  # from here, what materializes was built knowing of the failure
        self.materialized.update(e.asset_key for e in result.get_asset_materialization_events())
        return result

    def run_sources(self, sources: list) -> list:
        """Run the ready source assets, without their checks (an unchanged asset's checks would say
        what they said last time); the keys of those that wrote new data."""
        from dagster import AssetSelection

        result = self.run(AssetSelection.assets(*sources).without_checks())
        done = {e.asset_key for e in result.get_asset_materialization_events()}
        for key in set(sources) - done:  # a failed source: what it feeds keeps its last good state
            self.blocked |= set(AssetSelection.assets(key).downstream().resolve(self.graph)) - {key}
        now_unchanged = _unchanged_sources(result)
        self.unchanged += now_unchanged
        self.unchanged_ids += _unchanged_source_ids(result)
        self.settled |= set(sources)
        return [
            e.asset_key
            for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() not in now_unchanged
        ]

    def run_derived(self, derived: list, changed: list) -> None:
        """Run what Dagster finds stale among the ready derived assets, with the checks of the
        sources that changed; the fresh ones are skipped."""
        from dagster import AssetSelection

        stale, fresh = _stale(AssetSelection.assets(*derived), self.instance) if derived else ([], [])
        if self.failures:
            stale, fresh = self._after_failure(stale, fresh)
        if stale or changed:
            self.run(AssetSelection.assets(*stale) | AssetSelection.checks_for_assets(*changed))
            self.ran += stale
        self.skipped += fresh
        self.settled |= set(derived)

    def _after_failure(self, stale: list, fresh: list) -> tuple[list, list]:
        """(to run, to skip) once a step failed: the lenses run, to name the failure in their gaps;
        nothing else below a failed source runs, nor the export."""
        from pipelines import export, lens

        usable = {a.key for a in lens.usable(lens.ASSETS)}
        stale = stale + [k for k in fresh if k in usable]
        held = {k for k in stale if k not in usable and (k in self.blocked or k == export.EXPORT_KEY)}
        stale = [k for k in stale if k not in held]
        fresh = [k for k in fresh if k not in stale] + list(held)
        return stale, fresh

    def record(self) -> None:
        """Log what the build left unchanged, skipped and ran, and note it for `status`."""
        names = sorted(k.to_user_string() for k in self.skipped)
        logging.getLogger("pipelines.cli").info(
            "%d source asset(s) unchanged (nothing parsed or written): %s; %d downstream asset(s) not stale, "
            "skipped: %s; %d run",
            len(self.unchanged),
            ", ".join(sorted(self.unchanged)) or "none",
            len(names),
            ", ".join(names) or "none",
            len(self.ran),
        )
        self.log.unchanged, self.log.skipped = sorted(self.unchanged), names
        ran = [k.to_user_string() for k in self.ran]
        progress.note_last_run(db.db_path(), sorted(set(self.unchanged_ids)), names, ran)

    def raise_failure(self) -> None:
        """Build the lenses no later wave built, from the warehouse as it stands, then raise the
        first failure (the export stays: only a build whose every step passed publishes it)."""
        from dagster import AssetSelection

        reason = _failure_reason(self.failures[0])
        lenses = [k for k in _lens_keys() if k in self.wanted]
        if not lenses:
            raise CommandError(f"{reason}; previous good tables and export are still served")
        missing = [k for k in lenses if k not in self.materialized]  # built after the failure, or not
        built = "lens built from the last good data"
        if missing:
            logging.getLogger("pipelines.cli").warning(
                "a step failed (%s); building %d lens(es) from the warehouse as it stands",
                reason,
                len(missing),
            )
            rebuilt, _ = _run(AssetSelection.assets(*missing), self.instance)
            built = built if rebuilt.success else _failure_reason(rebuilt)
        raise CommandError(f"{reason}; {built}; the previous good tables and export are still served")


def _materialize(selection: AssetSelection):
    """Run the selection in waves: the source assets whose inputs are settled, then what Dagster
    finds stale among the assets whose inputs are settled, until every asset is settled.

    A source asset whose payloads did not change returns the same data version at once
    (`ingest.unchanged`), so what it feeds is fresh and not run; a source that reads derived
    tables (the territories) waits for them. When a step fails, the lenses still build from the
    warehouse as it stands: a failed source fails alone, Dagster skips what depends on it, so the
    lenses are run again on their own, from the last good data, naming the failure in their
    gaps. The export is not replaced: it is published only by a run whose every step passed.
    """
    from pipelines.definitions import SOURCE_ASSET_KEYS

    build = _WaveBuild(selection)
    while build.settled != build.wanted:
        sources = sorted(k for k in build.ready() if k in SOURCE_ASSET_KEYS)
        changed = build.run_sources(sources) if sources else []
        derived = [k for k in build.ready() if k not in SOURCE_ASSET_KEYS]
        build.run_derived(derived, changed)
        if not sources and not derived:
            break  # nothing ready: a cycle cannot happen in an asset graph, but never spin
    build.record()
    if build.failures:
        build.raise_failure()
    return build.log


def _lens_keys() -> list:
    from pipelines import lens

    return [a.key for a in lens.usable(lens.ASSETS)]


def _asset_graph():
    from pipelines.definitions import defs

    return defs.resolve_asset_graph()


def _snapshots_by(as_of: date) -> tuple[list[str], list[str]]:
    """(sources with a snapshot retrieved by the end of `as_of`, known sources without one)."""
    if not db.exists():
        return [], []
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT src.source_id, count(sn.snapshot_id) FROM core.sources src "
            "LEFT JOIN core.snapshots sn ON sn.source_id = src.source_id AND sn.retrieved_at < ?::TIMESTAMP "
            "GROUP BY 1 ORDER BY 1",
            [as_of + timedelta(days=1)],
        ).fetchall()
    return [r[0] for r in rows if r[1]], [r[0] for r in rows if not r[1]]


def cmd_build_as_of(study, as_of: date) -> int:
    """A lens from the snapshots retrieved by `as_of`, written to its own folder; nothing else changes.

    No asset runs: nothing is fetched, no table of the present (current lens, core, export) is
    written. With no snapshot at all by that date it refuses (exit 2).
    """
    from pipelines.lens import build_lens, lens_folder
    from pipelines.resources import WarehouseResource

    present, absent = _snapshots_by(as_of)
    if not present:
        where = "the warehouse is empty" if not absent else f"{len(absent)} source(s) known, none that early"
        raise Refused(
            f"no snapshot was retrieved by {as_of.isoformat()} ({where} at {db.describe()}); "
            "nothing was written: choose a later date or build first"
        )
    os.environ["CONTEXT_LENS_AS_OF"] = as_of.isoformat()
    if absent:
        print(
            f"context-lens: no snapshot by {as_of.isoformat()} for {len(absent)} source(s): "
            f"{', '.join(absent)} (named in the lens's gaps)",
            file=sys.stderr,
        )
    build_lens(WarehouseResource(), study)
    print(
        f"lens as of {as_of.isoformat()} written: {lens_folder(study)} (the current lens and export unchanged)"
    )
    return 0


def _check_configuration() -> None:
    """Endpoint overrides naming no real source or endpoint are refused before anything runs."""
    from sources.endpoints import EndpointError, check_overrides

    try:
        check_overrides()
    except EndpointError as exc:
        raise Refused(str(exc)) from exc


def _summary(run, source_ids, places: dict[str, str]) -> None:
    """The final table: each source of the run, its status and mode, rows written, reason."""
    from pipelines.ingest import ROWS_WRITTEN

    with db.reader() as conn:
        rows = progress.summary_rows(conn, source_ids, dict(ROWS_WRITTEN))
    progress.render_summary(rows, run, places, sys.stdout)


def _places() -> dict[str, str]:
    """Where the run wrote, and where readers connect (the published copy, or the DuckLake)."""
    return {
        "warehouse": db.describe(),
        "readers": str(db.reader_target() or db.describe()),
        "export": str(export_dir()),
    }


def cmd_build(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    _check_configuration()
    if getattr(args, "lang", None):
        os.environ["CONTEXT_LENS_LANG"] = args.lang  # the reader's lens (pipelines/reading.py)
    if args.as_of:
        return cmd_build_as_of(study, args.as_of)
    if args.offline:
        os.environ["CONTEXT_LENS_OFFLINE"] = "1"
    run = _materialize(_selection(study.id))
    from pipelines.families import catalog

    _summary(run, [s for ids in catalog().values() for s in ids], _places())
    print(f"lens written: output/lens/{study.id}/")
    return 0


def _family_modules() -> dict:
    from pipelines.families import family_modules

    return {m.FAMILY: m for m in family_modules()}


def cmd_refresh(args: argparse.Namespace) -> int:
    """Fetch live (never offline), rebuild downstream, and fail loudly if a source was not reached."""
    from dagster import AssetSelection

    from pipelines import ops

    os.environ.pop("CONTEXT_LENS_OFFLINE", None)
    _check_configuration()
    families = _family_modules()
    if args.family and args.family not in families:
        raise CommandError(f"unknown family {args.family!r}; known: {', '.join(sorted(families))}")
    chosen = [families[args.family]] if args.family else list(families.values())
    if args.family:
        selection = AssetSelection.assets(*ops.family_asset_keys(chosen[0])).downstream()
    else:
        selection = AssetSelection.all()
    run = _materialize(selection - _unusable_lenses())
    source_ids = {s.info.id for m in chosen for s in ops.family_sources(m)}
    _summary(run, source_ids, _places())
    with db.reader() as conn:
        rows = conn.execute(
            "SELECT source_id, status, mode, error FROM core.source_status "
            "WHERE source_id IN (SELECT unnest(?)) ORDER BY 1",
            [sorted(source_ids)],
        ).fetchall()
    missed = [
        f"{sid} ({status}: {error})" for sid, status, mode, error in rows if status in ("sample", "stale")
    ]
    if missed:
        raise CommandError(f"{len(missed)} source(s) not reached live: {'; '.join(missed)}")
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
    build.add_argument(
        "--study",
        default=DEFAULT_STUDY,
        help=f"the study id: studies/<ID>.yaml (default {DEFAULT_STUDY}; see `context-lens studies list`)",
    )
    build.add_argument(
        "--as-of",
        type=iso_date,
        default=None,
        metavar="DATE",
        help="a lens from only the snapshots retrieved by DATE (YYYY-MM-DD), written to "
        "output/lens/<study>/as-of-DATE/; nothing is fetched and the current lens and export stay",
    )
    build.add_argument(
        "--offline", action="store_true", help="skip live fetches; use stored or sample snapshots"
    )
    build.add_argument(
        "--lang",
        choices=("en", "es"),
        default=None,
        help="language of the claims table, summary and lens.pdf (default en, or CONTEXT_LENS_LANG)",
    )
    build.set_defaults(run=cmd_build)
    refresh = commands.add_parser(
        "refresh", help="fetch live sources and rebuild; fails if a source could not be reached live"
    )
    refresh.add_argument("--family", default=None, help="refresh one family (and what depends on it)")
    refresh.set_defaults(run=cmd_refresh)
    add_status_parser(commands)
    add_sql_parser(commands)
    study_commands.add_parsers(commands)
    return main


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(progress.DropReportedFallbacks())
    # Progress of downloads and loads: the fetch and acquisition layers log at INFO.
    for name in ("sources", "pipelines"):
        logging.getLogger(name).setLevel(logging.INFO)
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, study_commands.StudyCommandError) as exc:
        print(f"context-lens: {args.command} failed: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print(f"context-lens: {args.command} interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # any other failure: one line, not a traceback
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"context-lens: {args.command} failed: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

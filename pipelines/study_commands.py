"""`context-lens studies list | check | new`: studies from the command line, without Dagster.

- `list`: every study file with its focus, whether it parses, and whether its lens is built.
- `check FILE|ID ...`: every field validated, every code resolved against the official
  territorial division (and basins against the warehouse), sites placed when polygons are
  loaded; unknown codes are errors with the nearest valid names. Exit 1 on any error.
- `new ID --region 02 | --comunas 02201,Ollagüe | --site=LAT,LON[,NAME]`: a valid study file
  to start from, written to studies/<ID>.yaml (codes or names; a lost leading zero is restored).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

from pipelines import studies as study_files
from pipelines.paths import lens_dir
from pipelines.study_check import (
    Places,
    Problem,
    check_study,
    division_places,
    errors_in,
    site_problems,
    warehouse_places,
)
from warehouse import db

DEFAULT_PERIODS = {  # the windows the shipped studies use; edit them in the file
    "economy": (2015, 2022),
    "flow_reference": (1976, 1995),
    "flow_recent": (2001, 2020),
    "mortality": (2016, 2020),
}
CODE_WIDTH = {"region": 2, "comuna": 5}


class StudyCommandError(ValueError):
    """A `studies` argument that cannot be used; printed as one line."""


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(plain.lower().replace("-", " ").split())


def resolve_code(kind: str, token: str, division: dict[str, str]) -> str:
    """A code or a name of a region or comuna as its CUT code ('2201' -> '02201', 'Ollague' -> '02202')."""
    token = token.strip()
    known = {t.split(":", 1)[1]: n for t, n in division.items() if t.startswith(f"{kind}:")}
    if token.isdigit():
        code = token.zfill(CODE_WIDTH[kind])
        if code in known:
            return code
    else:
        by_name = {}
        for code, name in known.items():
            by_name.setdefault(_fold(name), []).append(code)
        matches = by_name.get(_fold(token), [])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise StudyCommandError(f"{kind} name {token!r} is ambiguous: codes {', '.join(matches)}")
    folded = {}
    for code, name in known.items():
        folded.setdefault(_fold(name), f"{code} {name}")
    close = [folded[n] for n in difflib.get_close_matches(_fold(token), list(folded), n=3, cutoff=0.5)]
    if token.isdigit():
        target = int(token)
        close += [f"{c} {known[c]}" for c in sorted(known, key=lambda c: (abs(int(c) - target), c))[:3]]
    hint = f"; nearest: {', '.join(dict.fromkeys(close))}" if close else ""
    raise StudyCommandError(f"{token!r} is not a {kind} of Chile's official division{hint}")


def _site(text: str) -> tuple[float, float, str]:
    parts = [p.strip() for p in text.split(",", 2)]
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        raise StudyCommandError(
            f"--site {text!r}: expected LAT,LON[,NAME] in decimal degrees, e.g. --site=-22.40,-68.90"
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise StudyCommandError(f"--site {text!r}: coordinates out of range")
    return lat, lon, parts[2] if len(parts) > 2 else f"site at {lat}, {lon}"


def _quoted(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _yaml_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def study_yaml(study_id: str, title: str, regions, comunas, sites, peers, start: str, end: str) -> str:
    """The text of a new study file, commented so the analyst knows what to edit."""
    lines = [
        f"# Study {study_id}, written by `context-lens studies new`. Edit it, then run",
        f"# `context-lens studies check {study_id}` and `context-lens build --study {study_id}`.",
        f"id: {study_id}",
        f"title: {_yaml_text(title)}",
        "dates:",
        f"  start: {start}",
        f"  end: {end}",
        "focus:  # codes of the official division (CUT), quoted so leading zeros survive",
        f"  regions: {_quoted(regions)}",
        f"  comunas: {_quoted(comunas)}",
        '  basins: []  # DGA BNA basin codes, e.g. ["021"] for the Loa',
    ]
    if sites:
        lines.append(
            "  sites:  # WGS84 decimal degrees; the lens places each in its comuna, region and basin"
        )
        for lat, lon, name in sites:
            lines += [f"    - name: {_yaml_text(name)}", f"      lat: {lat}", f"      lon: {lon}"]
    else:
        lines.append("  sites: []")
    lines += [
        "comparison:",
        f"  territories: {_quoted(['country:CL', 'oecd:OECD'] if regions else ['country:CL'])}",
    ]
    lines.append(
        f"  peer_basins: {_quoted(peers)}"
        if peers
        else '  # peer_basins: ["025", "034"]  # without it: every other basin with data'
    )
    lines.append("periods:  # first and last year of interest per theme")
    lines += [f"  {name}: [{a}, {b}]" for name, (a, b) in DEFAULT_PERIODS.items()]
    return "\n".join(lines) + "\n"


def _places() -> Places:
    basins, polygons = None, False
    if db.exists():
        with db.published_reader() as conn:
            basins, polygons = warehouse_places(conn)
    return Places(division_places(), basins, polygons)


def cmd_new(args: argparse.Namespace) -> int:
    study_files.study_path(args.id)  # refuses ids that are not plain names
    folder = Path(args.folder) if args.folder else study_files.studies_dir()
    target = folder / f"{args.id}.yaml"
    if target.exists() and not args.force:
        raise StudyCommandError(f"{target} exists; choose another id or pass --force")
    division = division_places()
    regions = [resolve_code("region", t, division) for t in args.region or []]
    comunas = [
        resolve_code("comuna", t, division) for a in args.comunas or [] for t in a.split(",") if t.strip()
    ]
    sites = [_site(s) for s in args.site or []]
    if not (regions or comunas or sites):
        raise StudyCommandError("name the focus: --region CODE, --comunas CODE,... or --site=LAT,LON")
    peers = [p.strip() for a in args.peer_basins or [] for p in a.split(",") if p.strip()]
    year = datetime.now(UTC).year
    named = [division[f"region:{c}"] + " region" for c in regions] + [
        division[f"comuna:{c}"] for c in comunas
    ]
    title = args.title or "Context lens: " + (", ".join(named) or ", ".join(s[2] for s in sites))
    text = study_yaml(
        args.id,
        title,
        regions,
        comunas,
        sites,
        peers,
        args.start or f"{year}-01-01",
        args.end or f"{year}-12-31",
    )
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    try:
        study = study_files.parse_study(target)
    except study_files.StudyConfigError:
        target.unlink(missing_ok=True)
        raise
    problems = errors_in(check_study(study, _places()))
    if problems:
        target.unlink(missing_ok=True)
        raise StudyCommandError("; ".join(p.line(target.name) for p in problems))
    print(f"wrote {target}")
    print(f"next: context-lens studies check {target}  then  context-lens build --study {args.id}")
    return 0


def _study_file(token: str) -> Path:
    path = Path(token)
    if path.suffix in (".yaml", ".yml") or os.sep in token:
        return path
    return study_files.study_path(token)


def check_file(path: Path, places: Places) -> tuple[list[Problem], str]:
    """(problems, summary) for one study file; a parse error is one problem."""
    try:
        study = study_files.parse_study(path)
    except FileNotFoundError:
        return [Problem("-", f"no such file {path}")], ""
    except study_files.StudyConfigError as exc:
        return [Problem("-", str(exc))], ""
    problems = check_study(study, places)
    if study.sites and places.polygons:
        with db.published_reader() as conn:
            problems += site_problems(conn, study)
    elif study.sites:
        problems.append(
            Problem("focus.sites", "sites not placed: no comuna polygons in the warehouse yet", "warning")
        )
    named = [*study.focus_territories, *study.comparison, *study.peer_basin_territories]
    names = {**places.division, **(places.basins or {})}
    resolved = [f"{t} {names[t]}" for t in named if t in names]
    return (
        problems,
        f"{len(resolved)} territories resolved ({'; '.join(resolved[:6])}{' ...' if len(resolved) > 6 else ''})",
    )


def cmd_check(args: argparse.Namespace) -> int:
    places = _places()
    failed = 0
    for token in args.files:
        path = _study_file(token)
        problems, summary = check_file(path, places)
        for problem in problems:
            line = problem.message if problem.field == "-" else problem.line(path.name)
            print(line, file=sys.stderr if problem.severity == "error" else sys.stdout)
        errors = errors_in(problems)
        failed += bool(errors)
        print(
            f"{path.name}: {'INVALID' if errors else 'ok'}"
            + (f": {summary}" if summary and not errors else "")
        )
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for path in sorted(study_files.studies_dir().glob("*.yaml")):
        try:
            study = study_files.parse_study(path)
        except study_files.StudyConfigError as exc:
            rows.append((path.stem, "INVALID", " ".join(str(exc).split())[:90], "-"))
            continue
        focus = [f"region {', '.join(study.regions)}" if study.regions else ""]
        focus += [f"{len(study.comunas)} comuna(s)" if study.comunas else ""]
        focus += [f"basin {', '.join(study.basins)}" if study.basins else ""]
        focus += [f"{len(study.sites)} site(s)" if study.sites else ""]
        report = lens_dir(study.id) / "lens.html"
        built = (
            datetime.fromtimestamp(report.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if report.exists()
            else "not built"
        )
        rows.append((study.id, "ok", "; ".join(f for f in focus if f), built))
    if not rows:
        print(f"no study files in {study_files.studies_dir()}; start one with `context-lens studies new`")
        return 0
    header = ("study", "file", "focus", "lens")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    print(f"({len(rows)} studies in {study_files.studies_dir()})")
    return 0


def add_parsers(commands) -> None:
    parser = commands.add_parser("studies", help="list, check or start study files (studies/<id>.yaml)")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every study file: focus, validity, lens built")
    listing.set_defaults(run=cmd_list)
    check = actions.add_parser("check", help="validate study files and resolve every code they name")
    check.add_argument(
        "files", nargs="+", metavar="FILE|ID", help="a study file, or the id of one in studies/"
    )
    check.set_defaults(run=cmd_check)
    new = actions.add_parser(
        "new",
        help="write a valid study file to start from",
        description="Write studies/ID.yaml. Codes or names; for coordinates use --site=LAT,LON "
        "(with '=': a value starting with '-' would read as an option).",
    )
    new.add_argument("id", help="lower-case letters, digits and '-'")
    new.add_argument("--region", action="append", help="region code or name (repeatable), e.g. 02")
    new.add_argument("--comunas", action="append", help="comuna codes or names, comma-separated")
    new.add_argument("--site", action="append", help="LAT,LON[,NAME] in decimal degrees (repeatable)")
    new.add_argument("--peer-basins", action="append", help="DGA BNA basin codes to compare with")
    new.add_argument("--title", help="default: the focus places' names")
    new.add_argument("--start", help="study start date YYYY-MM-DD (default: 1 January this year)")
    new.add_argument("--end", help="study end date YYYY-MM-DD (default: 31 December this year)")
    new.add_argument("--folder", help="write there instead of studies/")
    new.add_argument("--force", action="store_true", help="replace an existing file")
    new.set_defaults(run=cmd_new)

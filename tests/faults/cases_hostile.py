"""Hostile configuration and input: SQL and HTML in names, path traversal, YAML tags, endpoint
schemes, TLS, and credentials that must never be written down."""

from __future__ import annotations

import contextlib
import http.server
import io
import logging
import re
import ssl
import subprocess
import tempfile
import threading
import urllib.request
import uuid
from pathlib import Path

import yaml

from pipelines import lens
from pipelines.resources import WarehouseResource
from pipelines.studies import StudyConfigError, load_study, parse_study, study_path
from sources import oecd, strict_yaml
from sources.base import FetchError, FetchRequest
from sources.endpoints import EndpointError, check_url, endpoint
from sources.fetch import HttpFetcher
from sources.rawstore import RawStore
from tests.faults import payloads
from tests.faults.harness import (
    INDICATORS,
    OECD,
    SLEEPS,
    baseline,
    capture,
    endpoint_variable,
    environment,
    gate,
    live_bytes,
    oecd_url,
    require,
    run_oecd,
    serve_oecd,
    short,
    table_dump,
    tables_intact,
    workspace,
)
from tests.faults.matrix import case
from tests.support.http import Reply
from warehouse.db import quote_ident, table_name

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("sources", "pipelines", "warehouse")
SQL = "'; DROP TABLE core.observations; --"
MARKUP = "<script>alert(1)</script>"
CORE = ("raw.", "staging.", "core.")


def _core_tables(state) -> dict:
    return {name: rows for name, rows in state.data_tables().items() if name.startswith(CORE)}


def _code_files() -> list[Path]:
    return [path for folder in CODE_DIRS for path in sorted((REPO / folder).rglob("*.py"))]


def _study_text(study_id: str, title: str, **focus: str) -> str:
    lines = [
        f"id: {study_id}",
        f"title: {title!r}",
        "dates: {start: 2025-01-01, end: 2025-12-31}",
        "focus:",
        "  regions: ['02']",
        *[f"  {key}: {value}" for key, value in focus.items()],
        "comparison:",
        "  territories: ['country:CL']",
    ]
    return "\n".join(lines) + "\n"


def _write_study(folder: Path, study_id: str, text: str) -> Path:
    path = folder / f"{study_id}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@case(
    "H01",
    "hostile",
    "SQL and markup in a study file (title, site name, codes, territories, id)",
    "free text kept verbatim and inert (lens built, core tables intact, HTML escaped); codes and ids refused",
)
def sql_in_study_file() -> str:
    title = f"Lens {SQL} {MARKUP}"
    site = f"{{name: {('Pozo ' + SQL)!r}, lat: -22.46, lon: -68.93}}"
    refused = {  # field: (file stem, study text)
        "focus.comunas": ("sql-codes", _study_text("sql-codes", "t", comunas=f"[{('02201' + SQL)!r}]")),
        "comparison.territories": (
            "sql-territories",
            _study_text("sql-territories", "t").replace("['country:CL']", f"[{('country:CL' + SQL)!r}]"),
        ),
        "id": ("sql-id", _study_text("sql-id", "t").replace("id: sql-id", f"id: {('sql-id' + SQL)!r}")),
    }
    with workspace() as ws, tempfile.TemporaryDirectory() as folder:
        for field, (stem, text) in refused.items():
            try:
                parse_study(_write_study(Path(folder), stem, text))
            except StudyConfigError as exc:
                require(field.split(".")[0] in str(exc), f"the error does not name {field}: {exc}")
            else:
                raise AssertionError(f"a study with SQL in {field} was accepted")
        study = parse_study(
            _write_study(Path(folder), "sql-inert", _study_text("sql-inert", title, sites=f"[{site}]"))
        )
        require(study.title == title and SQL in study.sites[0].name, "free text was altered on loading")
        lens.build_lens(WarehouseResource(), study)
        require(_core_tables(capture(ws.root)) == _core_tables(baseline().state), "core tables changed")
        folder_out = ws.output / "lens" / "sql-inert"
        markdown, page = (folder_out / "lens.md").read_text(), (folder_out / "lens.html").read_text()
        require(SQL in markdown, "the title is not shown verbatim in lens.md")
        require(
            MARKUP not in page and "&lt;script&gt;" in page, "the title's markup is not escaped in lens.html"
        )
    return (
        f"3 hostile fields refused by name; hostile title/site kept verbatim, lens built, "
        f"{len(_core_tables(baseline().state))} raw/staging/core tables intact, markup escaped in HTML"
    )


@case(
    "H02",
    "hostile",
    "SQL and markup in territory names (a payload's area label; a territory's name)",
    "stored verbatim through parameters and registered frames; tables intact; escaped in the lens HTML",
)
def sql_in_territory_names() -> str:
    hostile = f"Antofagasta{SQL}{MARKUP}"
    body = payloads.edit_rows(live_bytes(INDICATORS[0]), payloads.area("CL02"), {"Reference area": hostile})
    with workspace() as ws:
        serve_oecd(faults={INDICATORS[0]: Reply(200, body, {"Content-Type": "text/csv", "ETag": '"v2"'})})
        error = run_oecd()
        require(error is None, f"a label with SQL in it broke the run: {error}")
        labels = {row[2] for row in table_dump(ws.db)["raw.oecd_regional"]}
        require(hostile in labels, "the label was not stored verbatim")
        with WarehouseResource().writer() as conn:
            conn.execute("UPDATE core.territories SET name = ? WHERE territory_id = 'region:02'", [hostile])
        lens.build_lens(WarehouseResource(), load_study("antofagasta-2025"))
        after = table_dump(ws.db)
        require(
            len(after["core.observations"]) == len(baseline().state.tables["core.observations"]), "rows lost"
        )
        page = (ws.output / "lens" / "antofagasta-2025" / "lens.html").read_text()
        require(MARKUP not in page, "a territory name's markup reached lens.html unescaped")
    for bad in (f"x{SQL}", "a.b", 'x"y', "1x"):
        try:
            quote_ident(bad)
        except ValueError:
            continue
        raise AssertionError(f"quote_ident accepted {bad!r}")
    try:
        table_name("lens", f"sql_id{SQL}_indicators")
    except ValueError:
        pass
    else:
        raise AssertionError("table_name accepted a hostile table name")
    return "label stored verbatim, observations intact, lens HTML escaped; hostile identifiers refused"


@case(
    "H03",
    "hostile",
    "study ids with path traversal ('../', '/', '..')",
    "refused before any file is opened, naming the id",
)
def traversal_in_study_ids() -> str:
    refused = []
    for study_id in ("../secrets", "../../etc/passwd", "a/b", "..", "/etc/passwd", "x\x00y", ""):
        for attempt in (study_path, load_study):
            try:
                attempt(study_id)
            except StudyConfigError as exc:
                require("not allowed" in str(exc), f"unclear refusal of {study_id!r}: {exc}")
                refused.append(study_id)
            else:
                raise AssertionError(f"{attempt.__name__} accepted the study id {study_id!r}")
    with tempfile.TemporaryDirectory() as folder:
        path = _write_study(
            Path(folder), "inner", _study_text("inner", "t").replace("id: inner", "id: ../inner")
        )
        try:
            parse_study(path)
        except StudyConfigError as exc:
            require("'id'" in str(exc), f"the error does not name the id field: {exc}")
        else:
            raise AssertionError("a study file whose id climbs out of studies/ was accepted")
    return f"{len(refused)} traversal attempts refused; a file whose id is '../inner' refused naming 'id'"


@case(
    "H04",
    "hostile",
    "YAML with !!python/object tags (study file, endpoints file); unsafe loaders in the code",
    "refused as invalid YAML, nothing executed; only yaml.safe_load (or sources/strict_yaml, a SafeLoader) in the code",
)
def yaml_python_tags() -> str:
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "pwned"
        tag = f"!!python/object/apply:os.system [touch {marker}]"
        study = _write_study(
            Path(folder), "tagged", _study_text("tagged", "t").replace("title: 't'", f"title: {tag}")
        )
        try:
            parse_study(study)
        except StudyConfigError as exc:
            require("not valid YAML" in str(exc), f"unexpected error: {exc}")
        else:
            raise AssertionError("a study file with a python tag was loaded")
        overrides = Path(folder) / "endpoints.yaml"
        overrides.write_text(f"oecd_regional:\n  oecd_population: {tag}\n")
        with environment(CONTEXT_LENS_ENDPOINTS_FILE=str(overrides)):
            try:
                endpoint(OECD, "oecd_population", {"oecd_population": "https://example.org/x"})
            except Exception as exc:  # noqa: BLE001 (any refusal will do; what matters is nothing ran)
                error = exc
            else:
                raise AssertionError("an endpoints file with a python tag was loaded")
        try:  # the specs' and the registry's loader: a SafeLoader that also refuses repeated keys
            strict_yaml.load(f"title: {tag}\n")
        except yaml.YAMLError:
            pass
        else:
            raise AssertionError("the strict loader loaded a python tag")
        require(not marker.exists(), "the python tag was executed")
    loader = strict_yaml.StrictLoader  # constructs only what SafeConstructor does, nothing of Full/Unsafe
    require(
        issubclass(loader, yaml.constructor.SafeConstructor)
        and not issubclass(loader, yaml.constructor.FullConstructor),
        "sources/strict_yaml.StrictLoader is not a safe loader",
    )
    unsafe = re.compile(
        r"(?<!\w)yaml\.(load|unsafe_load|full_load|load_all)\(|Loader\s*=|FullLoader|UnsafeLoader"
    )
    allowed = {"sources/strict_yaml.py"}  # yaml.load with its SafeLoader subclass, checked above
    offenders = [
        f"{p.relative_to(REPO)}"
        for p in _code_files()
        if unsafe.search(p.read_text(encoding="utf-8")) and str(p.relative_to(REPO)) not in allowed
    ]
    require(not offenders, f"unsafe YAML loading in {offenders}")
    return (
        f"study file and endpoints file refused ({type(error).__name__}); the strict loader refuses the tag; "
        "nothing executed; no unsafe loader"
    )


@case(
    "H05",
    "hostile",
    "endpoint overrides with other schemes or files outside the allowed roots",
    "only http(s) and file:// under CONTEXT_LENS_FILE_ROOTS; an override refused names the source; tables intact",
)
def endpoint_overrides() -> str:
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as outside:
        inside = Path(root) / "mirror.csv"
        inside.write_bytes(b"a,b\n1,2\n")
        secret = Path(outside) / "secret.csv"
        secret.write_bytes(b"a,b\n")
        (Path(root) / "link.csv").symlink_to(secret)
        bad = [
            "ftp://example.org/x.csv",
            "gopher://example.org/x",
            "javascript:alert(1)",
            "data:text/csv,a,b",
            "file:///etc/passwd",
            secret.as_uri(),
            (Path(root) / ".." / Path(outside).name / "secret.csv").as_uri(),
            (Path(root) / "link.csv").as_uri(),
            "file://evil.example.org/share/x.csv",
            "http:///no-host",
        ]
        with environment(CONTEXT_LENS_FILE_ROOTS=root):
            for url in bad:
                try:
                    check_url(url)
                except EndpointError:
                    continue
                raise AssertionError(f"the endpoint {url!r} was accepted")
            require(check_url(inside.as_uri()), "an allowed file:// URL was refused")
    with workspace() as ws, environment(**{endpoint_variable(INDICATORS[3]): "file:///etc/passwd"}):
        try:
            run_oecd()
        except EndpointError as exc:
            message = str(exc)
        else:
            raise AssertionError("a run with a file:// override outside the allowed roots went ahead")
        tables_intact(baseline().state, capture(ws.root), keep_status=True)
    require("/etc/passwd" in message and "allowed roots" in message, f"unclear refusal: {message}")
    require(
        OECD in message and INDICATORS[3] in message, f"the refusal does not name the endpoint: {message}"
    )
    return f"{len(bad)} hostile endpoints refused; allowed file:// accepted; pipeline: {short(message, 120)}"


def _self_signed(folder: Path) -> ssl.SSLContext:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class _Csv(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"a,b\n1,2\n")

    def log_message(self, *args) -> None:
        pass


@case(
    "H06",
    "hostile",
    "TLS verification: a self-signed HTTPS server; CA-bundle variables emptied; verify=False in the code",
    "refused (certificate verify failed) even with the variables emptied; no code path turns verification off",
)
def tls_verification() -> str:
    pattern = re.compile(
        r"verify\s*=\s*(False|0|None)|CERT_NONE|_create_unverified_context|check_hostname\s*=\s*False"
    )
    offenders = [
        f"{p.relative_to(REPO)}" for p in _code_files() if pattern.search(p.read_text(encoding="utf-8"))
    ]
    require(not offenders, f"TLS verification can be turned off in {offenders}")
    with tempfile.TemporaryDirectory() as folder:
        fetcher = HttpFetcher(RawStore(Path(folder) / "raw"), max_attempts=1, sleep=SLEEPS.append)
        require(fetcher._session.verify is True, "the session does not verify certificates")  # noqa: SLF001
        require(
            not [p for p in ("verify", "insecure", "ssl") if p in HttpFetcher.__init__.__code__.co_varnames],
            "HttpFetcher takes a switch for TLS verification",
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Csv)
        server.socket = _self_signed(Path(folder)).wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"https://127.0.0.1:{server.server_address[1]}/data.csv"
        try:
            control = ssl.create_default_context()
            control.check_hostname, control.verify_mode = False, ssl.CERT_NONE
            with urllib.request.urlopen(url, context=control, timeout=10) as answer:  # noqa: S310 (local test server)
                require(answer.read() == b"a,b\n1,2\n", "the HTTPS test server does not answer")
            with environment(CURL_CA_BUNDLE="", REQUESTS_CA_BUNDLE=""):
                try:
                    fetcher.fetch(oecd.SOURCE, FetchRequest("data", url, expect="csv"))
                except FetchError as exc:
                    require(re.search(r"certificate verify failed|SSLError", str(exc)), f"unexpected: {exc}")
                    message = str(exc)
                else:
                    raise AssertionError("a self-signed certificate was accepted")
        finally:
            server.shutdown()
            server.server_close()
    return f"no verify=False in the code; session verifies; self-signed server refused: {short(message, 110)}"


@case(
    "H07",
    "hostile",
    "credentials in an endpoint URL (?user=...&pass=...&token=...), on success and on failures",
    "never written: not in the raw store, the warehouse, the lens, the logs or the errors (shown REDACTED)",
)
def credentials_never_written() -> str:
    password, token = f"pw-{uuid.uuid4().hex[:10]}", f"tk-{uuid.uuid4().hex[:10]}"
    user = f"fieldteam-{uuid.uuid4().hex[:6]}"
    secrets = (password, token, user)
    query = f"?user={user}&pass={password}&token={token}&format=csv"
    overrides = {endpoint_variable(i): oecd_url(i) + query for i in INDICATORS}
    texts: list[str] = []
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setLevel(logging.DEBUG)
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    stderr = io.StringIO()
    try:
        with workspace() as ws, environment(**overrides), contextlib.redirect_stderr(stderr):
            serve_oecd()
            texts.append(str(run_oecd()))  # live, with the credentials
            serve_oecd(faults={INDICATORS[0]: Reply(503, b"down")})
            texts.append(str(run_oecd()))  # a retried failure: stale fallback
            gate().refuse()
            texts.append(str(run_oecd()))  # connection refused: the error text of urllib3 repeats the URL
            gate().open()
            lens.build_lens(WarehouseResource(), load_study("antofagasta-2025"))
            stored = {p.name: p.read_bytes() for p in ws.root.rglob("*") if p.is_file()}
            tables = table_dump(ws.db)
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
    logs = records.getvalue() + stderr.getvalue()
    require("GET /oecd/" in logs, "the DEBUG request log was not captured: this check would prove nothing")
    urls = {row[3] for row in tables["core.snapshots"] if "?" in row[3]}
    require(urls and all("REDACTED" in url for url in urls), f"snapshot URLs not redacted: {urls}")
    leaks = []
    for secret in secrets:
        leaks += [f"file {name}" for name, content in stored.items() if secret.encode() in content]
        written = (("tables", repr(tables)), ("logs", logs), ("errors", " ".join(texts)))
        leaks += [name for name, text in written if secret in text]
    require(not leaks, f"a credential was written to: {sorted(set(leaks))}")
    return (
        f"3 runs (live, 503, refused) + lens: {len(stored)} files, every table, {len(logs.splitlines())} log lines "
        f"and the errors hold no credential; snapshot URLs read e.g. {short(sorted(urls)[0].split('?')[1], 70)}"
    )

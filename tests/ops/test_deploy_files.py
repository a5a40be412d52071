"""The shared-deployment files in deploy/ agree with the code they configure.

What is checked here is what can be checked without installing services: every variable of the
environment file is one the code, Dagster or libpq reads; the DuckLake setting it shows is one
`warehouse.lake` accepts; the systemd units start programs this environment has, on the code
location that imports, with the environment file the example says to install.
"""

from __future__ import annotations

import configparser
import importlib
import shlex
import sys
from pathlib import Path

import pytest

from warehouse import lake

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / "context-lens.env.example"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
READ_ELSEWHERE = {"DAGSTER_HOME", "PGPASSWORD"}  # read by Dagster and by libpq, not by our code


def _assignments(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("# ")
        name, sep, value = line.partition("=")
        if sep and name.isidentifier() and name.isupper():
            pairs[name] = value
    return pairs


def _code_text() -> str:
    files = [
        *REPO_ROOT.glob("pipelines/**/*.py"),
        *REPO_ROOT.glob("warehouse/**/*.py"),
        *REPO_ROOT.glob("sources/**/*.py"),
    ]
    files += [DEPLOY / "dagster.postgres.yaml"]
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


def test_every_variable_of_the_environment_file_is_read_by_something():
    names = _assignments(ENV_EXAMPLE.read_text(encoding="utf-8"))
    code = _code_text()
    assert {"CONTEXT_LENS_WAREHOUSE", "CONTEXT_LENS_LAKE_DATA", "DAGSTER_PG_PASSWORD"} <= set(names)
    unread = sorted(n for n in names if n not in READ_ELSEWHERE and n not in code)
    assert not unread, f"deploy/context-lens.env.example sets variables nothing reads: {unread}"


def test_the_example_ducklake_setting_is_accepted_and_holds_no_password(monkeypatch):
    names = _assignments(ENV_EXAMPLE.read_text(encoding="utf-8"))
    monkeypatch.setenv(lake.SETTING, names[lake.SETTING])
    monkeypatch.setenv(lake.DATA_SETTING, names[lake.DATA_SETTING])
    configured = lake.configured()
    assert configured is not None and configured.catalog.startswith("postgres:dbname=")
    assert "password" not in names[lake.SETTING]  # the password comes from PGPASSWORD


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_units_start_installed_programs_on_the_code_location(unit):
    parsed = configparser.ConfigParser(interpolation=None, strict=False)
    parsed.read_string(unit.read_text(encoding="utf-8"))
    service = parsed["Service"]
    assert service["EnvironmentFile"] == "/etc/context-lens/context-lens.env"
    assert "/etc/context-lens/context-lens.env" in ENV_EXAMPLE.read_text(encoding="utf-8")
    command = shlex.split(service["ExecStart"])
    program = Path(command[0]).name
    assert (Path(sys.executable).parent / program).exists(), f"{program} is not installed with the project"
    module = command[command.index("-m") + 1]
    assert module == "pipelines.definitions"
    assert importlib.import_module(module).defs is not None
    assert parsed["Install"]["WantedBy"] == "multi-user.target"

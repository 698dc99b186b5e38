"""Text from data, specs, users and audit entries reaches the terminal as written.

Rich reads ``[...]`` as markup and ``:name:`` as emoji codes, and terminals obey control
characters: none of that may come from a value (ddp_assets/cli/console.py). Every text output
below runs the real command in-process (``ddp_assets.cli.app.main``, its error handlers
included) over a corpus of markup, emoji codes and control sequences placed in a product
spec, in warehouse data, in SQL queries, on the command line and in the audit log; each
asserts the exit code, that every corpus value is shown literally, and that no control
character of the input reaches the output.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ddp_assets.cli import console
from ddp_assets.cli.app import main
from ddp_assets.settings import ProjectPaths
from tests.conftest import ROOT
from tests.test_cli import copy_project

DDP = str(Path(sys.executable).parent / "ddp")

# (as written in the input, as the terminal must show it)
CORPUS: list[tuple[str, str]] = [
    ("[/]", "[/]"),  # a closing tag with nothing to close: MarkupError when read as markup
    ("[red]x", "[red]x"),
    ("[link=http://evil.example]click[/link]", "[link=http://evil.example]click[/link]"),
    ("[bold", "[bold"),
    ("[bold red]y[/]", "[bold red]y[/]"),
    ("\\[z]", "\\[z]"),  # markup's own escape: shown with its backslash
    ("tail\\", "tail\\"),  # a trailing backslash before the template's closing tag
    (":smile:", ":smile:"),  # an emoji code
    ("\x1b[2J", "\\x1b[2J"),  # clear the screen
    ("\x1b[31mred", "\\x1b[31mred"),
    ("\x1b]8;;http://evil.example\x1b\\", "\\x1b]8;;http://evil.example\\x1b\\"),  # OSC 8 link
    ("\x9b2J", "\\x9b2J"),  # CSI as one C1 character
    ("\u202eevil", "\\u202eevil"),  # right-to-left override
    ("bell\x07", "bell\\x07"),
]
RAW = " ".join(raw for raw, _ in CORPUS)
SHOWN = [shown for _, shown in CORPUS]
# Without whitespace: an owner (email pattern), a consumer's note, a product id on the line.
WORD = "[red]x[/]\x1b[2J:smile:[link=http://evil.example]y[/link]\\"
WORD_SHOWN = "[red]x[/]\\x1b[2J:smile:[link=http://evil.example]y[/link]\\"
OWNER = WORD.rstrip("\\") + "@evil.example"
OWNER_SHOWN = WORD_SHOWN.rstrip("\\") + "@evil.example"
# In a SQL string literal, a quoted identifier and a landing CSV: no quotes, no commas.
assert not any(char in RAW for char in "'\",\n")

# Control characters of the corpus (the output itself is not a terminal: Rich adds none).
CONTROL = ("\x1b", "\x9b", "\u202e", "\x07", "\r")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def ddp(args: Sequence[str], env: dict[str, str]) -> Outcome:
    """``ddp ARGS`` in this process: Typer's runner swaps the streams and the environment."""
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        try:
            main(list(args))
            code: Any = 0
        except SystemExit as exit_:
            code = exit_.code
        sys.stdout.flush()  # what was written without Rich (JSON, click's usage errors)
        sys.stderr.flush()
        written = stdout.getvalue().decode(), stderr.getvalue().decode()
    return Outcome(code if isinstance(code, int) else 1, *written)


def assert_literal(outcome: Outcome, code: int, shown: Sequence[str]) -> None:
    text = outcome.text
    assert outcome.code == code, text
    for forbidden in ("Traceback", "MarkupError", "😄"):
        assert forbidden not in text, text
    for char in CONTROL:
        assert char not in text, f"{char!r} reached the terminal: {text!r}"
    for value in shown:
        assert value in text, f"{value!r} not shown as written in {text!r}"


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as their text, so no cell is wrapped in the middle of a corpus value."""
    for name in ("out", "err"):
        monkeypatch.setattr(getattr(console, name), "width", 1000)


def private_env(root: Path, tmp: Path) -> dict[str, str]:
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    return {
        "DDP_PROJECT_ROOT": str(root),
        "DDP_DATA_DIR": str(tmp / "data"),
        "DAGSTER_HOME": str(tmp / "home"),
        "DDP_TOKEN": "",
    }


# -- specs: a product whose name, owner and description carry the corpus ----------------------


def mark_customers(project: Path) -> Path:
    spec_file = project / "ddp_assets/defs/sales/customers/defs.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    attributes = spec["attributes"]
    attributes["name"] = RAW
    attributes["owners"] = [OWNER, "team:sales-analytics"]
    attributes["description"] = {
        "purpose": "customer " + RAW,
        "limitations": RAW,
        "usage": RAW,
    }
    spec_file.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False))
    return spec_file


@pytest.fixture(scope="module")
def marked_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("marked")
    project = copy_project(tmp / "project")
    mark_customers(project)
    return private_env(project, tmp)


SPEC_CASES = {
    "show": (["show", "customers"], [*SHOWN, OWNER_SHOWN, "customer [/]"]),
    "list": (["list"], [*SHOWN, OWNER_SHOWN]),
    "catalog": (["catalog", "customer"], [*SHOWN, OWNER_SHOWN]),
    "catalog-owner": (["catalog", "--owner", OWNER], [OWNER_SHOWN]),
}


@pytest.mark.parametrize("case", SPEC_CASES)
def test_spec_text_is_shown_as_written(marked_project: dict[str, str], case: str) -> None:
    args, shown = SPEC_CASES[case]
    assert_literal(ddp(args, marked_project), 0, shown)


def test_spec_problems_are_shown_as_written(tmp_path: Path) -> None:
    """A misspelt field and a bad owner named by the corpus: ``ddp validate`` reports them."""
    project = copy_project(tmp_path / "project")
    spec_file = project / "ddp_assets/defs/sales/customers/defs.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["attributes"]["owners"] = [RAW]  # whitespace: not an email
    spec["attributes"][WORD] = "x"
    spec_file.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False))
    outcome = ddp(["validate", "--no-dbt"], private_env(project, tmp_path))
    assert_literal(outcome, 1, ["ddp_assets/defs/sales/customers/defs.yaml:", WORD_SHOWN])
    assert "owners" in outcome.stderr


# -- the command line: product ids, consumer ids, paths, notes, commands -----------------------


@pytest.fixture(scope="module")
def project_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return private_env(ROOT, tmp_path_factory.mktemp("cli"))


def unwritable(env: dict[str, str]) -> str:
    """A path under a regular file, named by the corpus: writing there fails unexpectedly."""
    blocker = Path(env["DDP_DATA_DIR"]).parent / "blocker"
    blocker.write_text("")
    return str(blocker / WORD / "x.yaml")


LINE_CASES: dict[str, tuple[list[str], int, list[str]]] = {
    "show": (["show", RAW], 1, SHOWN),
    "show-word": (["show", WORD], 1, [WORD_SHOWN]),
    "materialize": (["materialize", RAW], 1, SHOWN),
    "lineage": (["lineage", RAW], 1, SHOWN),
    "export-odps": (["export", "odps", RAW], 1, SHOWN),
    "contract-test": (["contract", "test", RAW], 1, SHOWN),
    "status": (["status", RAW], 1, SHOWN),
    "audit-product": (["audit", RAW], 1, SHOWN),
    "ports-access": (["ports", "access", RAW], 0, SHOWN),
    "token-issue": (["token", "issue", RAW], 2, [repr(RAW)]),
    "unknown-command": ([WORD], 2, [WORD_SHOWN]),
    "bad-option-value": (["lineage", "--format", WORD], 2, [WORD_SHOWN]),
}


@pytest.mark.parametrize("case", LINE_CASES)
def test_command_line_text_is_shown_as_written(project_env: dict[str, str], case: str) -> None:
    args, code, shown = LINE_CASES[case]
    assert_literal(ddp(args, project_env), code, shown)


def test_the_last_line_of_defence_shows_the_error_as_written(project_env: dict[str, str]) -> None:
    """An unexpected error (here: an output path under a file) is reported, not re-rendered."""
    path = unwritable(project_env)
    outcome = ddp(["export", "odps", "orders", "-o", path], project_env)
    assert_literal(outcome, 1, ["error: NotADirectoryError:", "[red]x[/]", "[link="])
    assert "DDP_DEBUG" in outcome.stderr


def test_a_token_note_is_shown_as_written(project_env: dict[str, str]) -> None:
    issued = ddp(["token", "issue", "markup-note", "--note", RAW], project_env)
    assert_literal(issued, 0, ["markup-note"])
    assert_literal(ddp(["token", "list"], project_env), 0, SHOWN)


# -- data, SQL queries and the audit log: a warehouse whose customers carry the corpus ---------


@pytest.fixture(scope="module")
def warehouse_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private landing zone whose first customer's last name is the corpus, the customers
    product materialized from it (a ``ddp`` process, its own Dagster instance) and a token
    of role ``crm`` (names in clear) with its SQL port."""
    from ddp_assets.demo.generator import generate_landing_zone

    tmp = tmp_path_factory.mktemp("warehouse")
    env = private_env(ROOT, tmp)
    shutil.copyfile(ROOT / "dagster.yaml", tmp / "home" / "dagster.yaml")
    landing = tmp / "data" / "landing"
    generate_landing_zone(landing, scale=200)
    customers = landing / "customers" / "customers.csv"
    with customers.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["last_name"] = RAW
    with customers.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    built = subprocess.run(
        [DDP, "materialize", "customers", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    issued = ddp(["token", "issue", "markup-crm", "--role", "crm", "--json"], env)
    assert issued.code == 0, issued.text
    token = yaml.safe_load(issued.stdout)["token"]
    ports = ddp(["ports", "build", "--consumer", "markup-crm"], env)
    assert ports.code == 0, ports.text
    yield {"env": {**env, "DDP_TOKEN": token}, "token": token, "first": rows[0]["customer_id"]}


@pytest.mark.slow
def test_data_values_are_shown_as_written(warehouse_env: dict[str, Any]) -> None:
    first = warehouse_env["first"]
    query = f"select customer_id, last_name from customers.customers where customer_id = {first}"
    assert_literal(ddp(["ports", "sql", query], warehouse_env["env"]), 0, SHOWN)


SQL_CASES: dict[str, tuple[str, int, list[str]]] = {
    "values-and-column-names": (f"select '{RAW}' as v, 1 as \"{RAW}\"", 0, [*SHOWN, *SHOWN]),
    "refused-query": (f'select * from "{WORD}"', 2, ["error:", "[red]x[/]"]),
    "failing-query": (f"select cast('{WORD}' as integer)", 2, ["the query failed", "[red]x[/]"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", SQL_CASES)
def test_sql_queries_are_shown_as_written(warehouse_env: dict[str, Any], case: str) -> None:
    query, code, shown = SQL_CASES[case]
    outcome = ddp(["ports", "sql", query], warehouse_env["env"])
    assert_literal(outcome, code, shown)
    if case == "values-and-column-names":
        assert outcome.stdout.count("[link=http://evil.example]click[/link]") == 2


@pytest.mark.slow
def test_file_port_errors_are_shown_as_written(warehouse_env: dict[str, Any]) -> None:
    outcome = ddp(["ports", "export", "customers", RAW], warehouse_env["env"])
    assert_literal(outcome, 2, SHOWN)


@pytest.mark.slow
def test_audit_entries_are_shown_as_written(warehouse_env: dict[str, Any]) -> None:
    """Refused reads (a REST ``columns=[/]``, a file export, a query) and a record whose every
    field holds the corpus: ``ddp audit`` shows them all literally."""
    from fastapi.testclient import TestClient

    from ddp_assets.ports.audit import record
    from ddp_assets.ports.rest import create_app
    from ddp_assets.ports.store import Store

    env = warehouse_env["env"]
    paths = ProjectPaths(ROOT)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with TestClient(create_app(paths)) as client:
            refused = client.get(
                "/products/customers/ports/customers/rows",
                params={"columns": "[/]"},
                headers={"Authorization": f"Bearer {warehouse_env['token']}"},
            )
        assert refused.status_code == 400, refused.text
        record(
            Store.open(paths),
            consumer=WORD,
            product=WORD,
            port=RAW,
            channel=WORD,
            action=WORD,
            allowed=False,
            status=403,
            reason=RAW,
        )
    ddp(["ports", "export", "customers", WORD], env)
    ddp(["ports", "sql", f'select * from "{WORD}"'], env)
    for args in (["audit", "--denied"], ["audit", "--consumer", WORD], ["audit"]):
        assert_literal(ddp(args, env), 0, [*SHOWN, WORD_SHOWN])
    denied = ddp(["audit", "--denied", "--consumer", "markup-crm"], env)
    assert_literal(denied, 0, ["[/]", "[red]x[/]"])

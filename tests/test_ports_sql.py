"""The SQL and file ports and their commands (``ddp token``, ``ddp ports``, ``ddp audit``).

Runs the real ``ddp`` command against the built demo: tokens are issued and revoked, each
consumer's SQL port database is built and opened as an outsider would open it, and ports are
exported as Parquet and CSV with their contract.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from ddp_assets.ports.sql_port import sql_port_path
from ddp_assets.settings import ProjectPaths

pytestmark = pytest.mark.slow
DDP = str(Path(sys.executable).parent / "ddp")
EMEA = {"DE", "FR", "GB", "NL", "ES", "IT"}


def ddp(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DDP, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def consumers(built_demo: Any, demo_env: Any) -> dict[str, str]:
    env = demo_env.env()
    issued = {}
    for name, roles in (("sql-analyst", ["analyst"]), ("emea-sales", []), ("sql-leaver", ["crm"])):
        args = ["token", "issue", name, "--json"] + [a for r in roles for a in ("--role", r)]
        issued[name] = json.loads(ddp(env, *args).stdout)["token"]
    report = json.loads(ddp(env, "ports", "build", "--json").stdout)
    assert len(report["snapshot"]) == 14
    assert {p["port"] for p in report["sql_ports"]["emea-sales"]} == {"customers", "orders"}
    return issued


def test_token_commands(demo_env: Any, consumers: dict[str, str]) -> None:
    env = demo_env.env()
    listed = ddp(env, "token", "list", "--json").stdout
    assert "sql-analyst" in listed
    assert not any(token in listed for token in consumers.values())
    bad = ddp(env, "token", "issue", "Bad Id", code=2)
    assert "not a valid consumer id" in bad.stderr and "hint:" in bad.stderr
    missing = ddp(env, "token", "revoke", "nope", code=2)
    assert "no active token" in missing.stderr


def test_sql_port_holds_only_the_consumers_policy(demo_env: Any, consumers: dict[str, str]) -> None:
    paths: ProjectPaths = demo_env.paths
    # Opened as an outsider would: plain DuckDB, no lockdown; the file itself holds nothing more.
    with duckdb.connect(str(sql_port_path(paths, "emea-sales")), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() order by 1, 2"
        ).fetchall()
        version = re.compile(r"__v\d+$")
        current = [(schema, table) for schema, table in tables if not version.search(table)]
        assert current == [
            ("_ddp", "ports"),
            ("_ddp", "version_moves"),  # the granted ports' history (time travel)
            ("_ddp", "versions"),
            ("customers", "customers"),
            ("orders", "orders"),
        ]
        # after more than one build: the granted ports' retained versions, under the same policy
        customers = [t for s, t in tables if s == "customers"]
        assert {(s, version.sub("", t)) for s, t in tables} <= set(current)
        for table in customers:
            countries = {
                r[0]
                for r in connection.execute(f'select country from customers."{table}"').fetchall()
            }
            assert countries <= EMEA, table
            emails = connection.execute(f'select email from customers."{table}"').fetchall()
            assert all(len(e) == 64 and "@" not in e for (e,) in emails), table


def test_ports_sql_command(demo_env: Any, consumers: dict[str, str]) -> None:
    env = {**demo_env.env(), "DDP_TOKEN": consumers["sql-analyst"]}
    result = ddp(env, "ports", "sql", "select count(*) as n from orders.order_lines", "--json")
    assert json.loads(result.stdout)["rows"][0][0] > 0
    refused = ddp(env, "ports", "sql", "select * from read_csv('/etc/passwd')", code=2)
    assert "file system operations are disabled" in refused.stderr
    nobody = ddp(demo_env.env(), "ports", "sql", "select 1", code=2)
    assert "no token given" in nobody.stderr


def test_file_port_exports_parquet_and_csv_with_the_contract(
    demo_env: Any, consumers: dict[str, str], tmp_path: Path
) -> None:
    env = {**demo_env.env(), "DDP_TOKEN": consumers["emea-sales"]}
    for file_format in ("parquet", "csv"):
        out = tmp_path / file_format
        result = ddp(
            env,
            "ports",
            "export",
            "customers",
            "customers",
            "--format",
            file_format,
            "--out",
            str(out),
            "--json",
        )
        exported = json.loads(result.stdout)
        data = Path(exported["data"])
        assert data == out / f"customers.{file_format}"
        table = pq.read_table(data) if file_format == "parquet" else pa_csv.read_csv(data)
        assert table.num_rows == exported["rows"] > 0
        assert set(table.column("country").to_pylist()) <= EMEA
        contract = json.loads((out / "customers.odcs.json").read_text())
        assert contract["id"] == "urn:ddp:sales:customers:customers"
        notes = {p["property"]: p["value"] for p in contract["customProperties"]}
        assert notes["ddp.maskedColumns"]["email"] == "hash"
        assert notes["ddp.rowFiltered"] is True
    denied = ddp(env, "ports", "export", "orders", "order_lines", "--out", str(tmp_path), code=2)
    assert "not granted" in denied.stderr
    log = json.loads(ddp(demo_env.env(), "audit", "orders", "--denied", "--json").stdout)
    assert any(r["channel"] == "file" and r["port"] == "order_lines" for r in log)
    bad = ddp(env, "ports", "export", "customers", "customers", "--format", "xlsx", code=2)
    assert "unknown format" in bad.stderr


def test_access_command_explains_the_policy(demo_env: Any, consumers: dict[str, str]) -> None:
    shown = json.loads(ddp(demo_env.env(), "ports", "access", "emea-sales", "--json").stdout)
    ports = {f"{p['product']}.{p['port']}": p for p in shown["ports"]}
    assert set(ports) == {"customers.customers", "orders.orders"}
    assert ports["customers.customers"]["masked"] == {
        "first_name": "hash",
        "last_name": "hash",
        "email": "hash",
    }
    assert ports["orders.orders"]["row_filter"][0][0]["column"] == "country"


def test_revoked_consumer_loses_its_sql_port(demo_env: Any, consumers: dict[str, str]) -> None:
    paths: ProjectPaths = demo_env.paths
    assert sql_port_path(paths, "sql-leaver").exists()
    ddp(demo_env.env(), "token", "revoke", "--consumer", "sql-leaver")
    assert not sql_port_path(paths, "sql-leaver").exists()
    env = {**demo_env.env(), "DDP_TOKEN": consumers["sql-leaver"]}
    refused = ddp(env, "ports", "sql", "select 1", code=2)
    assert "unknown or revoked token" in refused.stderr


def test_postgres_script_command(demo_env: Any, consumers: dict[str, str]) -> None:
    script = ddp(demo_env.env(), "ports", "postgres").stdout
    lines = script.splitlines()
    assert lines[0] == "begin;" and lines[-1] == "commit;"
    assert 'create view "customers__ports"."customers"' in script
    # rows filtered in the security-barrier view, over the published relation (a view itself)
    assert "with (security_barrier) as select" in script
    assert 'from "customers"."customers" where (pg_has_role(current_user' in script
    assert "enable row level security" not in script
    assert 'grant "role:analyst" to "sql-analyst";' in script


def test_ports_sql_is_bounded_attributed_and_audited(
    demo_env: Any, consumers: dict[str, str]
) -> None:
    env = {**demo_env.env(), "DDP_TOKEN": consumers["sql-analyst"], "DDP_SQL_TIMEOUT_SECONDS": "1"}
    endless = (
        "with recursive t(n) as (select 1 union all select n + 1 from t) "
        "select count(*) from t, orders.order_lines"
    )
    aborted = ddp(env, "ports", "sql", endless, code=2)
    assert "time limit (1 s)" in aborted.stderr and "DDP_SQL_TIMEOUT_SECONDS" in aborted.stderr
    dodge = ddp(env, "ports", "sql", "select * from query_table('orders.order_lines')", code=2)
    assert "named by a string" in dodge.stderr
    for leak in ("pragma database_list", "select * from duckdb_databases()", "use orders"):
        refused = ddp(env, "ports", "sql", leak, code=2)
        assert str(demo_env.data_dir) not in refused.stdout + refused.stderr
    log = json.loads(ddp(demo_env.env(), "audit", "orders", "--denied", "--json").stdout)
    mine = [r for r in log if r["consumer"] == "sql-analyst" and r["channel"] == "sql"]
    assert {(r["port"], r["status"]) for r in mine} >= {("order_lines", 408), ("order_lines", 400)}
    assert any("time limit" in r["reason"] for r in mine)


def test_port_files_are_private_and_stale_builds_go(
    demo_env: Any, consumers: dict[str, str]
) -> None:
    paths: ProjectPaths = demo_env.paths
    ports = paths.data_dir / "ports"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [
        ports / f".serving.{dead.pid}.building.duckdb",
        ports / "sql" / f".emea-sales.{dead.pid}.building.duckdb",
    ]
    for path in stale:
        path.write_bytes(b"")
    ddp(demo_env.env(), "ports", "build", "--consumer", "emea-sales")
    assert not any(path.exists() for path in stale)
    assert stat.S_IMODE(ports.stat().st_mode) == 0o700
    files = [ports / "serving.duckdb", ports / "access.sqlite", ports / "mask.salt"]
    files += sorted((ports / "sql").glob("*.duckdb"))
    assert len(files) > 4
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}

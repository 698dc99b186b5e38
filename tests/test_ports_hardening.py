"""The SQL and REST ports as a hostile consumer sees them: bounded, attributed, private.

Fast: no demo build. A consumer's SQL port is written with real DuckDB in ``tmp_path`` the way
``ddp ports build`` lays it out (one schema per product, ``_ddp.ports``), tokens and the audit
log are the real SQLite store, and the REST app runs in-process (Starlette's TestClient) over
the project's own product specs.
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from ddp_assets.ports import api, audit, tokens
from ddp_assets.ports.policy import PortError
from ddp_assets.ports.serving import ServedPort, clean_stale_builds, write_meta
from ddp_assets.ports.sql_guard import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    MEMORY_ENV,
    REDACTED_PATH,
    TIMEOUT_ENV,
    QueryLimits,
)
from ddp_assets.ports.sql_port import sql_port_path
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.warehouse.permissions import (
    GROUP_ENV,
    DataModes,
    PermissionsConfigError,
    private_dir,
    private_file,
)

ROOT = Path(__file__).resolve().parent.parent
LINES = ("orders", "order_lines")
CUSTOMERS = ("customers", "customers")


@dataclass
class Port:
    paths: ProjectPaths
    store: Store
    token: str

    def query(self, sql: str, limits: QueryLimits | None = None, max_rows: int = 100):
        return api.query(self.paths, self.store, self.token, sql, max_rows, limits)

    def last_audit(self, count: int = 1) -> list[audit.AccessRecord]:
        return audit.read(self.store, consumer="mallory", limit=count)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Port]:
    data = tmp_path_factory.mktemp("hardening")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(data))
        patch.delenv(TIMEOUT_ENV, raising=False)
        patch.delenv(MEMORY_ENV, raising=False)
        patch.delenv(GROUP_ENV, raising=False)
        paths = ProjectPaths(ROOT)
        store = Store.open(paths)
        token = tokens.issue(store, "mallory", []).token or ""
        path = sql_port_path(paths, "mallory")
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as connection:
            connection.execute(
                "create schema orders; create table orders.order_lines as "
                "select range as line_id, 'sku-' || range as sku from range(100); "
                "create schema customers; create table customers.customers as "
                "select range as customer_id from range(10)"
            )
            write_meta(
                connection,
                [
                    ServedPort(*LINES, "order_lines", 100, "r1", "p", "c", "1", "x", "s"),
                    ServedPort(*CUSTOMERS, "customers", 10, "r1", "p", "c", "1", "y", "s"),
                ],
            )
        yield Port(paths, store, token)
        store.close()


# -- what a query may do -----------------------------------------------------------------

ALLOWED = [
    ("select count(*) from orders.order_lines", [LINES]),
    ("SELECT count(*) FROM Orders.ORDER_LINES", [LINES]),
    ('select count(*) from "mallory".orders.order_lines', [LINES]),
    ("from orders.order_lines select line_id limit 3", [LINES]),
    ("with x as (select * from orders.order_lines) select count(*) from x", [LINES]),
    ("select (select max(customer_id) from customers.customers)", [CUSTOMERS]),
    (
        "select count(*) from orders.order_lines where line_id in "
        "(select customer_id from customers.customers)",
        [CUSTOMERS, LINES],
    ),
    ("select 1; select * from customers.customers", [CUSTOMERS]),
    (
        "select * from customers.customers c, lateral "
        "(select count(*) from orders.order_lines o where o.line_id = c.customer_id)",
        [CUSTOMERS, LINES],
    ),
    ("describe orders.order_lines", [LINES]),
    ("summarize customers.customers", [CUSTOMERS]),
    ("select table_name from information_schema.tables", []),
    ("select * from range(5)", []),
    ("select unnest([1, 2, 3])", []),
    ("show databases", []),
    ("select 'a\\' , (select count(*) from orders.order_lines), '' as x", [LINES]),
]


@pytest.mark.parametrize(("sql", "ports"), ALLOWED, ids=[q[:40] for q, _ in ALLOWED])
def test_allowed_queries_are_attributed(port: Port, sql: str, ports: list[tuple[str, str]]) -> None:
    result = port.query(sql)
    assert result.ports == ports
    written = port.last_audit(max(len(ports), 1))
    assert sorted((r.product, r.port) for r in written) == (ports or [(None, None)])
    assert all(r.allowed and r.channel == "sql" for r in written)


DEEP = "select " + "(" * 5000 + "1" + ")" * 5000
REFUSED = [
    # (query, message fragment, ports the denied audit rows name)
    ("select * from query_table('orders.order_lines')", "named by a string", [LINES]),
    (
        "select * from customers.customers, query_table('orders.order_lines')",
        "named by a string",
        [CUSTOMERS, LINES],
    ),
    ("select * from query('select * from orders.order_lines')", "named by a string", []),
    ("use orders", "only SELECT", []),
    ("pragma database_list", "only SELECT", []),
    ("call pragma_database_list()", "only SELECT", []),
    ("set memory_limit = '100GB'", "only SELECT", []),
    ("reset lock_configuration", "only SELECT", []),
    ("attach ':memory:' as m", "only SELECT", []),
    ("copy (select 1) to '/tmp/ddp-pwned-canary'", "only SELECT", []),
    ("create temp table t as select * from orders.order_lines", "only SELECT", []),
    ("install httpfs", "only SELECT", []),
    ("explain select 1", "only SELECT", []),
    ("select * from duckdb_databases", "server's settings", []),
    ("select * from duckdb_databases()", "server's settings", []),
    ("select path from system.main.duckdb_databases", "server's settings", []),
    ("select * from pragma_database_list", "server's settings", []),
    ("select current_setting('temp_directory')", "server's settings", []),
    ("select * from duckdb_settings()", "server's settings", []),
    ("select * from pg_catalog.pg_settings", "server's settings", []),
    ("select getenv('HOME')", "server's settings", []),
    ("select * from orders.order_lines, duckdb_extensions()", "server's settings", [LINES]),
    ("select * from read_csv('/etc/passwd')", "file system operations are disabled", []),
    ("select * from '/etc/passwd'", "file system operations are disabled", []),
    ("select * from glob('/etc/*')", "file system operations are disabled", []),
    ("select * from parquet_metadata('x.parquet')", "file system operations are disabled", []),
    ("select * from checkpoint()", "not allowed", []),
    (DEEP, f"more than {MAX_DEPTH} deep (at line 1, column {8 + MAX_DEPTH})", []),
    ("select\n" + "[" * (MAX_DEPTH + 1), "(at line 2, column", []),
    ("select " + "+".join(["1"] * 900), "nested too deeply", []),
    ("select " + "+".join(["1"] * 5000), "expression depth", []),
    ("select 1" + " " * MAX_QUERY_CHARS, "at most", []),
    ("select 'a\x00b'", "NUL byte", []),
    ("selec 1", "does not parse (at line 1, column 1)", []),
    ("select * from orders.nope", "does not exist", []),
]


@pytest.mark.parametrize(
    ("sql", "message", "ports"),
    REFUSED,
    ids=[q[:40].replace("\x00", "NUL") for q, _, _ in REFUSED],
)
def test_refused_queries_are_located_and_audited(
    port: Port, sql: str, message: str, ports: list[tuple[str, str]]
) -> None:
    started = time.monotonic()
    with pytest.raises(PortError) as refused:
        port.query(sql)
    assert time.monotonic() - started < 5
    assert refused.value.status == 400
    assert message in refused.value.message, refused.value.message
    written = port.last_audit(max(len(ports), 1))
    assert sorted((r.product, r.port) for r in written) == (ports or [(None, None)])
    assert all(not r.allowed and r.status == 400 for r in written)
    assert written[0].reason == refused.value.message[:500]


def test_time_limit_aborts_and_is_audited(port: Port) -> None:
    endless = (
        "with recursive t(n) as (select 1 union all select n + 1 from t) "
        "select count(*) from t, orders.order_lines"
    )
    started = time.monotonic()
    with pytest.raises(PortError) as aborted:
        port.query(endless, QueryLimits(1.0, "1GB"))
    assert 0.9 < time.monotonic() - started < 10
    assert aborted.value.status == 408
    assert "time limit (1 s)" in aborted.value.message
    (row,) = port.last_audit()
    assert (row.product, row.port, row.allowed, row.status) == (*LINES, False, 408)
    assert row.reason and "time limit" in row.reason
    with pytest.raises(PortError) as counted:  # streaming does not help an aggregate
        port.query("select count(*) from range(1000000000000)", QueryLimits(1.0, "1GB"))
    assert counted.value.status == 408


def test_memory_limit_aborts_and_is_audited(port: Port) -> None:
    doubling = (
        "with recursive t(s) as (select sku from orders.order_lines "
        "union all select s || s from t where length(s) < 1e12) select max(length(s)) from t"
    )
    with pytest.raises(PortError) as aborted:
        port.query(doubling, QueryLimits(30.0, "64MB"))
    assert aborted.value.status == 413
    assert "memory limit (64MB)" in aborted.value.message
    (row,) = port.last_audit()
    assert (row.product, row.port, row.allowed, row.status) == (*LINES, False, 413)


def test_results_stream_up_to_max_rows(port: Port) -> None:
    started = time.monotonic()
    result = port.query("select * from range(1000000000000)", max_rows=5)
    assert time.monotonic() - started < 5
    assert result.rows == [(0,), (1,), (2,), (3,), (4,)] and result.truncated


def test_server_paths_never_reach_the_consumer(port: Port) -> None:
    data = str(port.paths.data_dir)
    shown = port.query(f"select '{data}/ports/x' as p, ['{data}'] as l")
    assert shown.rows == [(f"{REDACTED_PATH}/ports/x", [REDACTED_PATH])]
    with pytest.raises(PortError) as failed:
        port.query(f"select cast('{data}' as integer)")
    assert data not in failed.value.message and REDACTED_PATH in failed.value.message


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        (TIMEOUT_ENV, "soon", "is not a number of seconds"),
        (TIMEOUT_ENV, "0", "is not a number of seconds"),
        (TIMEOUT_ENV, "-3", "is not a number of seconds"),
        (MEMORY_ENV, "lots", "is not a memory size"),
        (MEMORY_ENV, "1GB; set x=1", "is not a memory size"),
    ],
)
def test_limits_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    assert QueryLimits.from_env() == QueryLimits(30.0, "1GB")
    monkeypatch.setenv(TIMEOUT_ENV, "1.5")
    monkeypatch.setenv(MEMORY_ENV, "512 MB")
    assert QueryLimits.from_env() == QueryLimits(1.5, "512MB")
    monkeypatch.setenv(env, value)
    with pytest.raises(PortError) as bad:
        QueryLimits.from_env()
    assert env in bad.value.message and message in bad.value.message and bad.value.hint


def test_env_time_limit_applies(port: Port, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    with pytest.raises(PortError) as aborted:
        port.query(
            "with recursive t(n) as (select 1 union all select n + 1 from t) select max(n) from t"
        )
    assert aborted.value.status == 408


# -- files ---------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private_or_group_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GROUP_ENV, raising=False)
    folder = private_dir(tmp_path / "ports")
    database = folder / "serving.duckdb"
    duckdb.connect(str(database)).close()
    (folder / "serving.duckdb.wal").write_text("")
    assert private_file(database)
    assert (_mode(folder), _mode(database), _mode(folder / "serving.duckdb.wal")) == (
        0o700,
        0o600,
        0o600,
    )
    assert not private_file(folder / "missing.duckdb")
    group = grp.getgrgid(os.getgid()).gr_name
    monkeypatch.setenv(GROUP_ENV, group)
    assert DataModes.from_env() == DataModes(0o640, 0o750, os.getgid())
    private_dir(folder)
    private_file(database)
    assert (_mode(folder), _mode(database)) == (0o750, 0o640)
    assert database.stat().st_gid == os.getgid()
    monkeypatch.setenv(GROUP_ENV, "no-such-group-ddp")
    with pytest.raises(PermissionsConfigError) as bad:
        DataModes.from_env()
    assert GROUP_ENV in str(bad.value) and bad.value.hint


def test_store_and_sql_port_folder_are_private(port: Port) -> None:
    ports = port.paths.data_dir / "ports"
    assert _mode(ports) == 0o700
    assert _mode(ports / "access.sqlite") == 0o600


def test_stale_builds_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [
        tmp_path / f".serving.{dead.pid}.building.duckdb",
        tmp_path / f".serving.{dead.pid}.building.duckdb.wal",
        tmp_path / f".emea-sales.{dead.pid}.building.duckdb",
    ]
    kept = [
        tmp_path / f".serving.{os.getpid()}.building.duckdb",  # this process's own build
        tmp_path / f".serving.{os.getppid()}.building.duckdb",  # a live process's
        tmp_path / "serving.duckdb",
        tmp_path / ".notes.txt",
    ]
    for path in stale + kept:
        path.write_text("")
    assert sorted(clean_stale_builds(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert clean_stale_builds(tmp_path / "missing") == []


# -- REST: requests no route takes ----------------------------------------------------------


@pytest.fixture(scope="module")
def client(port: Port) -> Iterator[tuple[TestClient, str]]:
    from ddp_assets.ports.rest.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(port.paths.data_dir))
        app = create_app(port.paths)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client, port.token


REQUESTS = [
    ("GET", "/nope", 404, "mallory"),
    ("GET", "/products/customers/ports/customers/rows/extra", 404, "mallory"),
    ("POST", "/products", 405, "mallory"),
    ("DELETE", "/products/customers/ports/customers/rows", 405, "mallory"),
    ("PUT", "/health", 405, None),
    ("GET", "/nope", 404, None),
]


@pytest.mark.parametrize(("method", "path", "status", "who"), REQUESTS)
def test_unrouted_requests_are_audited(
    client: tuple[TestClient, str], port: Port, method: str, path: str, status: int, who: str | None
) -> None:
    test_client, token = client
    headers = {"Authorization": f"Bearer {token}"} if who else {}
    response = test_client.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["status"] == status and response.json()["error"]["hint"]
    if status == 405:
        assert "GET" in response.headers["allow"]
    (row,) = audit.read(port.store, limit=1)
    assert (row.consumer, row.channel, row.status, row.allowed) == (who, "rest", status, False)
    assert row.reason and row.reason.startswith(f"{method} {path}")


@pytest.mark.parametrize("path", ["/health", "/products", "/openapi.json", "/nope"])
def test_head_is_answered_wherever_get_is(client: tuple[TestClient, str], path: str) -> None:
    test_client, token = client
    headers = {"Authorization": f"Bearer {token}"}
    got = test_client.get(path, headers=headers)
    head = test_client.head(path, headers=headers)
    assert head.status_code == got.status_code and head.status_code != 405
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"]


def test_a_server_failure_is_a_bare_500_audited(client: tuple[TestClient, str], port: Port) -> None:
    """A broken snapshot (here: garbage bytes) fails inside DuckDB with the file's path in its
    message; the caller gets 'internal error' and nothing of the server's files."""
    test_client, token = client
    snapshot = port.paths.data_dir / "ports" / "serving.duckdb"
    snapshot.write_bytes(b"not a database" * 1000)
    try:
        response = test_client.get("/health", headers={"Authorization": f"Bearer {token}"})
    finally:
        snapshot.unlink()
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "internal error"
    assert str(port.paths.data_dir) not in response.text and "serving" not in response.text
    (row,) = audit.read(port.store, limit=1)
    assert (row.consumer, row.status, row.allowed) == ("mallory", 500, False)
    assert test_client.get("/health").json()["snapshot"] is False


def test_the_warehouse_file_is_private(tmp_path: Path) -> None:
    """The warehouse holds unmasked rows: ddp's writer leaves it 0600 whoever created it."""
    from ddp_assets.warehouse.duckdb import writer

    path = tmp_path / "warehouse.duckdb"
    with writer(path) as connection:  # created here
        connection.execute("create table t as select 1 as x")
    path.chmod(0o644)  # as another tool (dbt-duckdb) would leave it
    with writer(path) as connection:
        connection.execute("select * from t")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

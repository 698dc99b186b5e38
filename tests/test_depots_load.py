"""Depot input ports loaded by dlt, end to end, with real sources on loopback.

- a PostgreSQL table (the test server) loaded incrementally twice, with an update and an
  insert between, merged on its primary key; the cursor survives a new process (the state is
  in the warehouse) and a failed load does not advance it;
- a FastAPI app serving paginated JSON, loaded with a cursor parameter;
- moto's S3 server with Parquet files;
- a column removed upstream: the port fails its input contract, nothing is loaded, the
  product's published port keeps its rows.

One throwaway ddp project (``ddp init``) holds the three products; every run goes through
ddp's own ``materialize`` (Dagster, dbt, write-audit-publish) on a private data directory.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import duckdb
import pytest

from ddp_assets.runtime.materialize import RunOutcome, materialize
from ddp_assets.settings import ProjectPaths
from ddp_assets.starter import init_project

pytestmark = pytest.mark.slow

PG_PASSWORD_ENV = "DDP_TEST_CRM_PASSWORD"
S3_KEY, S3_SECRET = "testing-key", "testing-secret-value"

ACCOUNTS_CONTRACT = """apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:crm:accounts:{obj}
name: {obj}
version: 1.0.0
status: active
schema:
  - name: {obj}
    physicalName: {obj}
    physicalType: table
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        required: true
        primaryKey: true
        primaryKeyPosition: 1
      - name: name
        logicalType: string
        physicalType: varchar
      - name: tier
        logicalType: string
        physicalType: varchar
      - name: updated_at
        logicalType: timestamp
        physicalType: timestamp
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _product(
    root: Path, product: str, port_yaml: str, model_sql: str, contract: str, input_contract: str
) -> None:
    folder = root / "dproj" / "defs" / "crm" / product
    (folder / "models").mkdir(parents=True)
    (folder / "contracts").mkdir()
    (folder / "defs.yaml").write_text(
        f"""type: ddp_assets.components.DataProduct
attributes:
  id: {product}
  name: {product}
  domain: crm
  version: 1.0.0
  owners: [crm-data@example.com]
  description:
    purpose: Test product reading a depot.
  input_ports:
{port_yaml}
  output_ports:
    - name: {product}
      model: {product}
      contract: contracts/{product}.odcs.yaml
"""
    )
    (folder / "models" / f"{product}.sql").write_text(model_sql)
    (folder / "contracts" / f"{product}.odcs.yaml").write_text(contract)
    if input_contract:
        port = port_yaml.split("name:", 1)[1].split()[0]
        (folder / "contracts" / f"{port}.odcs.yaml").write_text(input_contract)


# -- the API ------------------------------------------------------------------------------

EVENTS = [
    {"id": i, "kind": "click" if i % 2 else "view", "updated_at": f"2026-01-{i:02d}T00:00:00Z"}
    for i in range(1, 8)
]


def _api_app() -> Any:
    from fastapi import FastAPI, Header, HTTPException

    app = FastAPI()
    app.state.requests = []

    @app.get("/v1/events")
    def events(
        since: str = "1970-01-01T00:00:00Z",
        page: int = 1,
        authorization: str = Header(default=""),
    ) -> dict[str, Any]:
        if authorization != "Bearer api-token-xyz":
            raise HTTPException(401, "unauthorized")
        app.state.requests.append((since, page))
        rows = [e for e in EVENTS if e["updated_at"] > since]
        size = 3
        chunk = rows[(page - 1) * size : page * size]
        pages = max(1, -(-len(rows) // size))
        return {"data": chunk, "page": page, "total_pages": pages}

    return app


@dataclass
class Servers:
    api_port: int
    api_app: Any
    s3_port: int


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    import uvicorn
    from moto.server import ThreadedMotoServer

    app = _api_app()
    api_port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    s3_port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield Servers(api_port, app, s3_port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        moto.stop()


def _s3(port: int) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("shipment_id", pa.int64()), ("weight", pa.float64())])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    return buffer.getvalue()


# -- the project --------------------------------------------------------------------------


@dataclass
class Project:
    paths: ProjectPaths
    pg: Any  # tests.postgres_server.PostgresServer
    servers: Servers

    def run(self, *products: str) -> RunOutcome:
        return materialize(self.paths, list(products), log_level="ERROR")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.paths.warehouse_path), read_only=True) as connection:
            return connection.execute(sql).fetchall()

    def built(self, product: str) -> None:
        """The product loaded and built once: a test may run alone, or first on its xdist
        worker (each worker has its own module fixture, source server and warehouse)."""
        if self.paths.warehouse_path.exists():
            found = self.query(
                "select count(*) from information_schema.tables "
                f"where table_schema = '{product}' and table_name = '{product}'"
            )
            if found != [(0,)]:
                return
        _succeeded(self.run(product))

    def logs(self, run_id: str) -> str:
        """Every event of a run as text: messages and their metadata."""
        import dagster as dg

        entries = dg.DagsterInstance.get().all_logs(run_id)
        return "\n".join(f"{e.message} {e.dagster_event!r}" for e in entries)

    def source(self, statement: LiteralString) -> None:
        import psycopg

        with psycopg.connect(self.pg.dsn("crm"), autocommit=True) as connection:
            connection.execute(statement)


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Any, servers: Servers
) -> Iterator[Project]:
    import psycopg

    root = init_project(tmp_path_factory.mktemp("depots") / "dproj").root
    data = tmp_path_factory.mktemp("data")
    home = tmp_path_factory.mktemp("home")
    (home / "dagster.yaml").write_text((root / "dagster.yaml").read_text())
    postgres_server.create_database("crm")
    with psycopg.connect(postgres_server.dsn("crm"), autocommit=True) as connection:
        connection.execute("drop role if exists crm_reader")
        connection.execute("create role crm_reader login password 'crm-pass-31'")
        connection.execute(
            "create table accounts (id bigint primary key, name text, tier text, "
            "updated_at timestamp not null)"
        )
        connection.execute(
            "insert into accounts values (1, 'Ada', 'gold', '2026-01-01'), "
            "(2, 'Grace', 'silver', '2026-01-02'), (3, 'Linus', 'bronze', '2026-01-03')"
        )
        connection.execute("grant select on accounts to crm_reader")
        # the test server trusts every login; this role must give its password
        hba = postgres_server.data_dir / "pg_hba.conf"
        rule = "host all crm_reader 127.0.0.1/32 scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())
            connection.execute("select pg_reload_conf()")
    depots = root / "depots"
    depots.mkdir()
    (depots / "crm.yaml").write_text(
        f"kind: postgres\nhost: 127.0.0.1\nport: {postgres_server.port}\ndatabase: crm\n"
        f"username: crm_reader\npassword: env:{PG_PASSWORD_ENV}\n"
    )
    (depots / "tracker.yaml").write_text(
        f"kind: rest_api\nbase_url: http://127.0.0.1:{servers.api_port}/v1/\n"
        "auth:\n  type: bearer\n  token: env:DDP_TEST_API_TOKEN\n"
    )
    (depots / "lake.yaml").write_text(
        f"kind: filesystem\nbucket_url: s3://exports/crm\n"
        f"endpoint_url: http://127.0.0.1:{servers.s3_port}\nregion: us-east-1\n"
        "access_key_id: env:DDP_TEST_S3_KEY\nsecret_access_key: env:DDP_TEST_S3_SECRET\n"
    )
    _product(
        root,
        "accounts",
        "    - name: raw_accounts\n      type: depot\n      depot: crm\n"
        "      table: public.accounts\n      cursor: updated_at\n      primary_key: [id]\n",
        "select cast(id as bigint) as id, name, tier, cast(updated_at as timestamp) as "
        "updated_at from {{ source('accounts', 'raw_accounts') }}\n",
        ACCOUNTS_CONTRACT.format(obj="accounts"),
        ACCOUNTS_CONTRACT.format(obj="raw_accounts"),
    )
    _product(
        root,
        "events",
        "    - name: raw_events\n      type: depot\n      depot: tracker\n"
        "      resource: events\n      data_selector: data\n      cursor: updated_at\n"
        "      cursor_param: since\n      initial_value: '1970-01-01T00:00:00Z'\n"
        "      primary_key: [id]\n"
        "      paginator: {type: page_number, base_page: 1, page_param: page, "
        "total_path: total_pages}\n",
        "select cast(id as bigint) as id, kind from {{ source('events', 'raw_events') }}\n",
        """apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:crm:events:events
name: events
version: 1.0.0
status: active
schema:
  - name: events
    physicalName: events
    physicalType: table
    properties:
      - {name: id, logicalType: integer, physicalType: bigint, required: true}
      - {name: kind, logicalType: string, physicalType: varchar}
""",
        "",
    )
    _product(
        root,
        "shipments",
        "    - name: raw_shipments\n      type: depot\n      depot: lake\n"
        "      files: 'shipments/*.parquet'\n      format: parquet\n",
        "select cast(shipment_id as bigint) as shipment_id, cast(weight as double) as weight "
        "from {{ source('shipments', 'raw_shipments') }}\n",
        """apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:crm:shipments:shipments
name: shipments
version: 1.0.0
status: active
schema:
  - name: shipments
    physicalName: shipments
    physicalType: table
    properties:
      - {name: shipment_id, logicalType: integer, physicalType: bigint, required: true}
      - {name: weight, logicalType: number, physicalType: double}
""",
        """apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:crm:shipments:raw_shipments
name: raw_shipments
version: 1.0.0
status: active
schema:
  - name: raw_shipments
    physicalType: table
    properties:
      - {name: shipment_id, logicalType: integer, physicalType: bigint, required: true}
      - {name: weight, logicalType: number, physicalType: double, required: true}
""",
    )
    s3 = _s3(servers.s3_port)
    s3.create_bucket(Bucket="exports")
    s3.put_object(
        Bucket="exports",
        Key="crm/shipments/2026-01-01.parquet",
        Body=_parquet([{"shipment_id": 1, "weight": 2.5}, {"shipment_id": 2, "weight": 1.0}]),
    )
    env = {
        "DDP_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
        "DDP_PROJECT_ROOT": str(root),
        PG_PASSWORD_ENV: "crm-pass-31",
        "DDP_TEST_API_TOKEN": "api-token-xyz",
        "DDP_TEST_S3_KEY": S3_KEY,
        "DDP_TEST_S3_SECRET": S3_SECRET,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield Project(ProjectPaths(root), postgres_server, servers)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _succeeded(outcome: RunOutcome) -> None:
    assert outcome.success, (outcome.errors, outcome.failed_checks)


def test_postgres_table_loads_incrementally_and_merges(project: Project) -> None:
    _succeeded(project.run("accounts"))
    assert project.query("select id, name from accounts.raw_accounts order by id") == [
        (1, "Ada"),
        (2, "Grace"),
        (3, "Linus"),
    ]
    project.source("update accounts set tier = 'gold', updated_at = '2026-02-01' where id = 2")
    project.source("insert into accounts values (4, 'Barbara', 'silver', '2026-02-02')")
    _succeeded(project.run("accounts"))
    assert project.query("select id, tier from accounts.raw_accounts order by id") == [
        (1, "gold"),
        (2, "gold"),
        (3, "bronze"),
        (4, "silver"),
    ]
    assert project.query("select count(*) from accounts.accounts") == [(4,)]
    # only the two changed rows were read the second time
    loads = project.query(
        "select _dlt_load_id, count(*) from accounts.raw_accounts group by 1 order by 1"
    )
    assert [n for _, n in loads] == [2, 2]


def test_a_failed_load_does_not_advance_the_cursor(project: Project) -> None:
    project.built("accounts")
    [(loaded,)] = project.query("select count(*) from accounts.raw_accounts")
    with duckdb.connect(str(project.paths.warehouse_path)) as connection:
        connection.execute("alter table accounts.raw_accounts alter column name set not null")
    project.source("insert into accounts values (6, null, 'gold', '2026-02-10')")
    failed = project.run("accounts")
    assert not failed.success
    assert "NOT NULL constraint failed" in str(failed.errors)
    assert project.query("select count(*) from accounts.raw_accounts") == [(loaded,)]
    # the same source row loads once the warehouse takes it: the cursor stayed before it
    with duckdb.connect(str(project.paths.warehouse_path)) as connection:
        connection.execute("alter table accounts.raw_accounts alter column name drop not null")
    _succeeded(project.run("accounts"))
    assert (6, None) in project.query("select id, name from accounts.raw_accounts")
    project.source("update accounts set name = 'Alan', updated_at = '2026-02-11' where id = 6")


def test_api_pages_load_with_a_cursor(project: Project) -> None:
    _succeeded(project.run("events"))
    assert project.query("select count(*) from events.events") == [(7,)]
    assert len([r for r in project.servers.api_app.state.requests if r[0].startswith("1970")]) == 3
    project.servers.api_app.state.requests.clear()
    EVENTS.append({"id": 8, "kind": "view", "updated_at": "2026-01-20T00:00:00Z"})
    _succeeded(project.run("events"))
    assert project.query("select count(*) from events.raw_events") == [(8,)]
    sent = {since for since, _ in project.servers.api_app.state.requests}
    assert sent and all(s.startswith("2026-01-07") for s in sent), sent


def test_s3_parquet_files_load(project: Project) -> None:
    _succeeded(project.run("shipments"))
    assert project.query("select count(*) from shipments.shipments") == [(2,)]
    _s3(project.servers.s3_port).put_object(
        Bucket="exports",
        Key="crm/shipments/2026-01-02.parquet",
        Body=_parquet([{"shipment_id": 3, "weight": 4.0}]),
    )
    _succeeded(project.run("shipments"))
    assert project.query("select shipment_id from shipments.shipments order by 1") == [
        (1,),
        (2,),
        (3,),
    ]


def test_rows_breaking_the_input_contract_hold_the_product_back(project: Project) -> None:
    """The port's ODCS input contract screens what dlt loaded before any model reads it."""
    project.built("shipments")
    before = project.query("select * from shipments.shipments order by 1")
    _s3(project.servers.s3_port).put_object(
        Bucket="exports",
        Key="crm/shipments/2026-01-09.parquet",
        Body=_parquet([{"shipment_id": 9, "weight": None}]),  # weight is required
    )
    outcome = project.run("shipments")
    assert not outcome.success
    failed = [(asset, check.name) for asset, check in outcome.failed_checks]
    assert ("shipments/raw_shipments", "pandera_schema") in failed, failed
    assert project.query("select * from shipments.shipments order by 1") == before


def test_a_new_source_column_is_a_warning(project: Project) -> None:
    project.built("accounts")  # the raw table exists before the source changes shape
    project.source("alter table accounts add column if not exists region text")
    # newer than any row loaded so far, whatever ran before on this worker
    project.source(
        "update accounts set region = 'EU', "
        "updated_at = (select max(updated_at) from accounts) + interval '1 second' where id = 1"
    )
    outcome = project.run("accounts")
    _succeeded(outcome)
    assert "input port 'accounts.raw_accounts': the source adds column 'region'" in project.logs(
        outcome.run_id
    )
    columns = [
        c
        for (c,) in project.query(
            "select column_name from information_schema.columns "
            "where table_schema = 'accounts' and table_name = 'raw_accounts'"
        )
    ]
    assert "region" in columns


def test_a_wrong_password_fails_the_load_at_the_depot_line(project: Project) -> None:
    wrong = "wrong-crm-pass-77"
    os.environ[PG_PASSWORD_ENV] = wrong
    try:
        outcome = project.run("accounts")
    finally:
        os.environ[PG_PASSWORD_ENV] = "crm-pass-31"
    assert not outcome.success
    text = str(outcome.errors)
    assert "depots/crm.yaml:6: error: password:" in text, text
    assert "password authentication failed" in text
    assert wrong not in text and wrong not in project.logs(outcome.run_id)


def test_a_removed_column_holds_the_product_back(project: Project) -> None:
    project.built("accounts")
    before = project.query("select * from accounts.accounts order by id")
    raw_before = project.query("select count(*) from accounts.raw_accounts")
    project.source("alter table accounts drop column tier")
    project.source(
        "insert into accounts (id, name, updated_at) select 5, 'Edsger', "
        "max(updated_at) + interval '1 day' from accounts"
    )
    outcome = project.run("accounts")
    assert not outcome.success
    text = str(outcome.errors)
    assert "raw_accounts" in text and "tier" in text, text
    assert project.query("select * from accounts.accounts order by id") == before
    assert project.query("select count(*) from accounts.raw_accounts") == raw_before
    # the cursor did not move: once the source is fixed, row 5 loads
    project.source("alter table accounts add column tier text")
    _succeeded(project.run("accounts"))
    assert (5,) in project.query("select id from accounts.accounts")


def test_lineage_names_each_source_dataset(project: Project) -> None:
    from ddp_assets.lineage.graph import build_graph
    from ddp_assets.spec.registry import Registry

    registry = Registry.load(project.paths.defs_dir, project.paths.root)
    graph = build_graph(project.paths, registry, {})
    inputs = {
        key: [(i.namespace, i.name) for i in asset.inputs]
        for key, asset in graph.assets.items()
        if asset.kind == "depot"
    }
    assert inputs == {
        "accounts/raw_accounts": [
            (f"postgres://127.0.0.1:{project.pg.port}", "crm.public.accounts")
        ],
        "events/raw_events": [(f"http://127.0.0.1:{project.servers.api_port}", "/v1/events")],
        "shipments/raw_shipments": [("s3://exports", "crm/shipments/*.parquet")],
    }


def test_the_catalog_shows_the_depot_without_credentials(project: Project) -> None:
    from ddp_assets.catalog.describe import input_port_summary
    from ddp_assets.spec.registry import Registry

    registry = Registry.load(project.paths.defs_dir, project.paths.root)
    [port] = input_port_summary(registry.products["accounts"])
    assert port["depot"] == "crm" and port["path"] == "depot crm: public.accounts"
    assert "crm-pass-31" not in str(port)


def test_a_retyped_column_fails_the_input_contract_before_loading(tmp_path: Path) -> None:
    """A reflected table whose column changes type: with the column in the input contract the
    port fails before anything is loaded; without, it is a warning naming the port."""
    import sqlite3

    from ddp_assets.depots.loader import load_depots
    from ddp_assets.depots.pipeline import PortMismatch, load_port
    from ddp_assets.spec.model import DepotInputPort

    root = init_project(tmp_path / "rtproj").root
    (root / "depots").mkdir()
    (root / "depots" / "shop.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/shop.db\n")
    data = tmp_path / "data"
    data.mkdir()
    database = data / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table orders (id integer primary key, amount real, note text)")
        connection.execute("insert into orders values (1, 9.5, 'a'), (2, 3.0, 'b')")
    saved = os.environ.get("DDP_DATA_DIR")
    os.environ["DDP_DATA_DIR"] = str(data)
    try:
        paths = ProjectPaths(root)
        depot = load_depots(paths).depots["shop"]
        port = DepotInputPort.model_validate(
            {"name": "raw_orders", "type": "depot", "depot": "shop", "table": "orders"}
        )
        assert load_port("sales", port, depot, paths, contract_columns=["id", "amount"]).rows == 2
        with sqlite3.connect(database) as connection:
            connection.execute("drop table orders")
            connection.execute(
                "create table orders (id integer primary key, amount text, note integer)"
            )
            connection.execute("insert into orders values (1, 'nine', 1), (3, 'three', 2)")
        with pytest.raises(PortMismatch) as raised:
            load_port("sales", port, depot, paths, contract_columns=["id", "amount"])
        assert raised.value.retyped == ["amount"]  # note changed too, but no contract lists it
        assert "input port 'sales.raw_orders' fails its input contract" in raised.value.message
        with duckdb.connect(str(paths.warehouse_path), read_only=True) as connection:
            rows = connection.execute("select id, amount from sales.raw_orders order by id")
            assert rows.fetchall() == [(1, 9.5), (2, 3.0)]
        warnings: list[str] = []
        with sqlite3.connect(database) as connection:
            connection.execute("delete from orders")
            connection.execute("insert into orders values (4, '5.5', 3)")
        load_port("sales", port, depot, paths, contract_columns=["id"], log=warnings.append)
        assert "input port 'sales.raw_orders': column 'amount' changed type in the source" in (
            warnings
        )
    finally:
        if saved is None:
            os.environ.pop("DDP_DATA_DIR", None)
        else:
            os.environ["DDP_DATA_DIR"] = saved


def test_a_query_from_sqlite_loads_into_a_postgresql_warehouse(
    tmp_path: Path, postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warehouse is the dbt target's: here PostgreSQL (dlt's postgres destination)."""
    import sqlite3

    import psycopg

    from ddp_assets.depots.loader import load_depots
    from ddp_assets.depots.pipeline import load_port
    from ddp_assets.spec.model import DepotInputPort

    root = init_project(tmp_path / "pgproj").root
    (root / "depots").mkdir()
    (root / "depots" / "shop.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/shop.db\n")
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "shop.db") as connection:
        connection.execute("create table orders (id integer, amount real, updated_at text)")
        connection.execute(
            "insert into orders values (1, 9.5, '2026-01-01'), (2, 3.0, '2026-01-02')"
        )
    postgres_server.create_database("depot_wh")
    for key, value in {
        "DDP_DATA_DIR": str(data),
        "DDP_DBT_TARGET": "postgres",
        "DDP_PG_HOST": postgres_server.host,
        "DDP_PG_PORT": str(postgres_server.port),
        "DDP_PG_USER": postgres_server.user,
        "DDP_PG_PASSWORD": "",
        "DDP_PG_DBNAME": "depot_wh",
        "DDP_PG_SSLMODE": "disable",
    }.items():
        monkeypatch.setenv(key, value)
    paths = ProjectPaths(root)
    depot = load_depots(paths).depots["shop"]
    port = DepotInputPort.model_validate(
        {
            "name": "raw_orders",
            "type": "depot",
            "depot": "shop",
            "query": "select id, amount, updated_at from orders where amount > 1",
            "cursor": "updated_at",
        }
    )
    first = load_port("sales", port, depot, paths)
    assert first.rows == 2 and first.cursor == "2026-01-02"
    with sqlite3.connect(data / "shop.db") as connection:
        connection.execute(
            "insert into orders values (3, 7.0, '2026-01-03'), (4, 0.5, '2026-01-04')"
        )
    second = load_port("sales", port, depot, paths)
    assert second.rows == 1  # only the new row that passes the query's filter
    with psycopg.connect(postgres_server.dsn("depot_wh")) as connection:
        rows = connection.execute("select id from sales.raw_orders order by id").fetchall()
    assert rows == [(1,), (2,), (3,)]

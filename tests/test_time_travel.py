"""Time travel for consumers (issue 20): the REST port's ``?version=`` and ``?as_of=``, the SQL
port's ``<product>.<port>__v<N>`` relations and file exports of a retained version, always under
the port's current policy (masking, row filters); a dropped or unknown version is a 404 naming
the retained ones.

One isolated project state: the demo's customers materialized twice (the second time with
every customer moved to NL), two more versions published directly, one of them pushing v1 out
of retention, then a rollback to v3. A real ``ddp serve`` on loopback, real DuckDB files.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.csv as pa_csv
import pytest

from ddp_assets.contracts.wap import moves, publish, versions
from ddp_assets.ports.policy import PortAccess, PortColumn, PortError
from ddp_assets.spec.model import RowCondition

ROOT = Path(__file__).resolve().parents[1]
EMEA = ("DE", "FR", "GB", "NL", "ES", "IT")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ROWS = "/products/customers/ports/customers/rows"

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@dataclass
class Travelled:
    url: str
    env: dict[str, str]
    data_dir: Path
    tokens: dict[str, str]
    client: httpx.Client
    published_at: dict[int, str]  # version → when its publish moved the pointer

    def get(self, path: str, who: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.get(self.url + path, headers=headers, params=params or None)

    def rows(self, who: str, **params: Any) -> list[dict[str, Any]]:
        found, offset = [], 0
        while offset is not None:
            response = self.get(ROWS, who, limit=1000, offset=offset, **params)
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(body["rows"])
            offset = body["next_offset"]
        return found

    def warehouse(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as c:
            return c.execute(sql).fetchall()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _staged_publish(connection: duckdb.DuckDBPyConnection, run_id: str, select: str) -> None:
    """A version published straight from a staging table (what a run's publish does)."""
    connection.execute(
        f'create or replace table "customers__staging"."customers__next" as {select}'
    )
    connection.execute('drop view if exists "customers__staging"."customers"')
    connection.execute('alter table "customers__staging"."customers__next" rename to "customers"')
    publish(
        connection,
        product="customers",
        port="customers",
        model="customers",
        contract_id="urn:ddp:sales:customers:customers",
        contract_version="1.0.0",
        run_id=run_id,
    )


@pytest.fixture(scope="module")
def travelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Travelled]:
    from ddp_assets.contracts.rollback import rollback
    from ddp_assets.demo.generator import generate_landing_zone
    from ddp_assets.ports import api, tokens
    from ddp_assets.ports.store import Store
    from ddp_assets.runtime.materialize import materialize
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    base = tmp_path_factory.mktemp("time_travel")
    data_dir, home = base / "data", base / "home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((ROOT / "dagster.yaml").read_bytes())
    env = {
        **os.environ,
        "DDP_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        "DDP_PROJECT_ROOT": str(ROOT),
    }
    paths = ProjectPaths(ROOT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(data_dir))
        patch.setenv("DAGSTER_HOME", str(home))
        generate_landing_zone(data_dir / "landing", scale=1_000)
        outcome = materialize(paths, ["customers"], log_level="ERROR")
        assert outcome.success, outcome.errors
        export = data_dir / "landing" / "customers" / "customers.csv"
        with export.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            row["country"] = "NL"
        with export.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        time.sleep(1.1)  # the ledger's times are in seconds: as_of tells them apart
        outcome = materialize(paths, ["customers"], log_level="ERROR")
        assert outcome.success, outcome.errors
        registry = Registry.load(paths.defs_dir, paths.root)
        with duckdb.connect(str(data_dir / "warehouse.duckdb")) as connection:
            time.sleep(1.1)
            v1 = '"customers__staging"."customers__v1"'
            _staged_publish(connection, "run-v3", f"select * from {v1} where customer_id % 2 = 0")
            time.sleep(1.1)
            _staged_publish(connection, "run-v4", f"select * from {v1}")  # v1 leaves retention
            time.sleep(1.1)
            rollback(
                connection,
                registry,
                "customers",
                port="customers",
                to=3,
                actor="alice",
                reason="v4 is wrong",
            )
            history = moves(connection, "customers", "customers")
            assert [v.dropped_at is None for v in versions(connection, "customers")] == [
                False,
                True,
                True,
                True,
            ]
        published_at = {m.version: m.moved_at for m in history if m.action == "publish"}
        store = Store.open(paths)
        issued = {
            "analyst": tokens.issue(store, "tt-analyst", ["analyst"]),
            "emea": tokens.issue(store, "emea-sales", []),
            "crm": tokens.issue(store, "tt-crm", ["crm"]),
            "nobody": tokens.issue(store, "tt-nobody", []),
        }
        api.build_ports(paths, registry, store)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (data_dir / "serve.log").open("w")
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ddp"), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = httpx.Client(timeout=30)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, (data_dir / "serve.log").read_text()
                assert time.monotonic() < deadline, "ddp serve did not start"
                time.sleep(0.3)
            yield Travelled(
                url,
                env,
                data_dir,
                {k: t.token or "" for k, t in issued.items()},
                client,
                published_at,
            )
        finally:
            client.close()
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _version_rows(t: Travelled, number: int, where: str = "true") -> list[tuple[Any, ...]]:
    return t.warehouse(
        "select customer_id, country from customers__staging.customers__v"
        f"{number} where {where} order by 1"
    )


def test_the_versions_endpoint_lists_retained_dropped_and_published(t: Travelled) -> None:
    body = t.get("/products/customers/ports/customers/versions", "analyst").json()
    listed = {v["version"]: v for v in body["versions"]}
    assert sorted(listed) == [1, 2, 3, 4]
    assert [listed[n]["retained"] for n in (1, 2, 3, 4)] == [False, True, True, True]
    assert listed[1]["dropped_at"] is not None
    assert [n for n, v in listed.items() if v["published"]] == [3]
    assert listed[2]["rows"] == len(_version_rows(t, 2))
    assert listed[3]["contract_version"] == "1.0.0"
    assert body["moves"][-1] == {
        "version": 3,
        "previous_version": 4,
        "action": "rollback",
        "reason": "v4 is wrong",
        "moved_at": body["moves"][-1]["moved_at"],
    }
    # the row-filtered consumer is not told how many rows a whole version has
    filtered = t.get("/products/customers/ports/customers/versions", "emea").json()
    assert all(v["rows"] is None for v in filtered["versions"])
    assert t.get("/products/customers/ports/customers/versions", "nobody").status_code == 403


def test_rows_of_a_retained_version_under_the_current_policy(t: Travelled) -> None:
    published = t.rows("analyst")
    assert sorted(r["customer_id"] for r in published) == [r[0] for r in _version_rows(t, 3)]
    second = t.rows("analyst", version=2)
    assert {r["country"] for r in second} == {"NL"}
    assert sorted(r["customer_id"] for r in second) == [r[0] for r in _version_rows(t, 2)]
    assert all(HEX64.match(r["email"]) for r in second)  # masked as in the published version
    fourth = t.rows("analyst", version=4)
    assert sorted((r["customer_id"], r["country"]) for r in fourth) == _version_rows(t, 4)
    assert all(HEX64.match(r["email"]) for r in fourth)
    page = t.get(ROWS, "analyst", version=4, limit=1).json()
    assert page["version"] == 4 and page["run_id"] == "run-v4"
    assert t.get(ROWS, "analyst", limit=1).json()["version"] == 3
    # the row filter applies to every version: v4 holds non-EMEA customers, emea sees none
    emea = t.rows("emea", version=4)
    countries = ", ".join(f"'{c}'" for c in EMEA)
    expected = _version_rows(t, 4, f"country in ({countries})")
    assert sorted((r["customer_id"], r["country"]) for r in emea) == expected
    assert len(expected) < len(_version_rows(t, 4))
    # cleared consumers read clear values of old versions too
    crm = t.rows("crm", version=2)
    clear = t.warehouse("select email from customers__staging.customers__v2 order by customer_id")
    assert [r["email"] for r in sorted(crm, key=lambda r: r["customer_id"])] == [
        c[0] for c in clear
    ]
    # filters and ordering of a request work on a version as on the published one
    de = t.rows("analyst", version=4, filter="country:eq:DE")
    assert {r["customer_id"] for r in de} == {r[0] for r in _version_rows(t, 4, "country = 'DE'")}
    refused = t.get(ROWS, "analyst", version=2, filter="email:eq:x")
    assert refused.status_code == 400 and "masked" in refused.json()["error"]["message"]


def test_rows_as_of_a_time_follow_publishes_and_rollbacks(t: Travelled) -> None:
    at_v2 = t.get(ROWS, "analyst", as_of=t.published_at[2], limit=1).json()
    assert at_v2["version"] == 2
    now = t.get(ROWS, "analyst", as_of="2999-01-01T00:00:00Z", limit=1).json()
    assert now["version"] == 3  # the rollback moved the pointer back
    at_v4 = t.get(ROWS, "analyst", as_of=t.published_at[4], limit=1).json()
    assert at_v4["version"] == 4
    at_v1 = t.get(ROWS, "analyst", as_of=t.published_at[1])
    assert at_v1.status_code == 404
    error = at_v1.json()["error"]
    assert "dropped by retention" in error["message"]
    assert "v2, v3 (published), v4" in error["hint"]
    before = t.get(ROWS, "analyst", as_of="2000-01-01")
    assert before.status_code == 404 and "not published yet" in before.json()["error"]["message"]
    bad = t.get(ROWS, "analyst", as_of="yesterday")
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]["message"]
    both = t.get(ROWS, "analyst", version=2, as_of="2999-01-01")
    assert both.status_code == 400


def test_a_dropped_or_unknown_version_is_a_404_naming_the_retained_ones(t: Travelled) -> None:
    for number, why in ((1, "dropped by retention"), (99, "does not exist")):
        for path in (ROWS, "/products/customers/ports/customers/file"):
            response = t.get(path, "analyst", version=number)
            assert response.status_code == 404, response.text
            error = response.json()["error"]
            assert why in error["message"] and f"version {number}" in error["message"]
            assert error["hint"] == (
                "retained versions of 'customers.customers': v2, v3 (published), v4"
            )
    # no grant is no grant, whatever the version
    assert t.get(ROWS, "nobody", version=2).status_code == 403
    audit = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), "audit", "customers", "--json"],
        env=t.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    denied = [r for r in json.loads(audit.stdout) if r["status"] == 404]
    assert any("version 99" in (r["reason"] or "") for r in denied)


def test_port_detail_of_a_version(t: Travelled) -> None:
    detail = t.get("/products/customers/ports/customers", "analyst", version=2).json()
    assert detail["version"]["version"] == 2
    assert detail["version"]["rows"] == len(_version_rows(t, 2))
    assert detail["version"]["contract_version"] == "1.0.0"
    current = t.get("/products/customers/ports/customers", "analyst").json()
    assert current["version"]["version"] == 3
    # a filtered consumer's counts are of what it sees of that version
    emea = t.get("/products/customers/ports/customers", "emea", version=4).json()
    countries = ", ".join(f"'{c}'" for c in EMEA)
    assert emea["version"]["rows"] == len(_version_rows(t, 4, f"country in ({countries})"))


def test_file_export_of_a_version_over_rest_and_the_cli(t: Travelled, tmp_path: Path) -> None:
    response = t.get("/products/customers/ports/customers/file", "emea", version=4, format="csv")
    assert response.status_code == 200
    path = tmp_path / "v4.csv"
    path.write_bytes(response.content)
    table = pa_csv.read_csv(path)
    countries = ", ".join(f"'{c}'" for c in EMEA)
    expected = _version_rows(t, 4, f"country in ({countries})")
    assert sorted(table.column("customer_id").to_pylist()) == [r[0] for r in expected]
    assert all(HEX64.match(e) for e in table.column("email").to_pylist())
    out = tmp_path / "cli"
    exported = subprocess.run(
        [
            str(Path(sys.executable).parent / "ddp"),
            "ports",
            "export",
            "customers",
            "customers",
            "--version",
            "2",
            "--format",
            "csv",
            "--out",
            str(out),
            "--json",
        ],
        env={**t.env, "DDP_TOKEN": t.tokens["analyst"]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["rows"] == len(_version_rows(t, 2))
    contract = json.loads((out / "customers.odcs.json").read_text(encoding="utf-8"))
    notes = {p["property"]: p["value"] for p in contract["customProperties"]}
    assert notes["ddp.version"] == 2
    assert notes["ddp.versionContract"] == "urn:ddp:sales:customers:customers 1.0.0"
    gone = subprocess.run(
        [
            str(Path(sys.executable).parent / "ddp"),
            "ports",
            "export",
            "customers",
            "customers",
            "--version",
            "1",
            "--out",
            str(out),
        ],
        env={**t.env, "DDP_TOKEN": t.tokens["analyst"]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert gone.returncode == 2 and "dropped by retention" in gone.stderr
    assert "v2, v3 (published), v4" in gone.stderr and "Traceback" not in gone.stderr


def test_the_sql_port_holds_each_retained_version_under_the_policy(t: Travelled) -> None:
    from ddp_assets.ports import api
    from ddp_assets.ports.store import Store
    from ddp_assets.settings import ProjectPaths

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(t.data_dir))
        patch.setenv("DAGSTER_HOME", t.env["DAGSTER_HOME"])
        paths = ProjectPaths(ROOT)
        store = Store.open(paths)
        result = api.query(
            paths, store, t.tokens["analyst"], "select count(*) from customers.customers__v2"
        )
        assert result.rows == [(len(_version_rows(t, 2)),)]
        assert result.ports == [("customers", "customers")]  # audited as the port
        emea = api.query(
            paths,
            store,
            t.tokens["emea"],
            "select customer_id, country from customers.customers__v4 order by 1",
        )
        countries = ", ".join(f"'{c}'" for c in EMEA)
        assert emea.rows == _version_rows(t, 4, f"country in ({countries})")
        hashed = api.query(
            paths, store, t.tokens["analyst"], "select email from customers.customers__v4 limit 5"
        )
        assert all(HEX64.match(r[0]) for r in hashed.rows)
        listed = api.query(
            paths,
            store,
            t.tokens["analyst"],
            "select version, published, stored_as from _ddp.versions order by version",
        )
        assert listed.rows == [
            (1, False, None),
            (2, False, "customers__v2"),
            (3, True, "customers"),
            (4, False, "customers__v4"),
        ]
        with pytest.raises(PortError, match="customers__v1"):
            api.query(paths, store, t.tokens["analyst"], "select * from customers.customers__v1")


def test_a_version_without_a_row_filters_column_is_refused() -> None:
    from ddp_assets.ports.policy import Consumer
    from ddp_assets.ports.versions import version_access

    access = PortAccess(
        "p",
        "m",
        "m",
        Consumer("c"),
        (PortColumn("id", "bigint"), PortColumn("country", "varchar"), PortColumn("x", "int")),
        ((RowCondition(column="country", op="eq", value="DE"),),),
        ("id",),
    )
    narrowed = version_access(access, ["id", "country", "dropped_later"])
    assert narrowed.names == ["id", "country"]  # only the current contract's columns
    with pytest.raises(PortError, match="country") as refused:
        version_access(access, ["id", "x"])
    assert refused.value.status == 409


def _ddp(t: Travelled, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), *args],
        env=t.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def test_ddp_show_lists_versions_with_contract_and_audit(t: Travelled) -> None:
    shown = json.loads(_ddp(t, "show", "customers", "--json").stdout)
    listed = shown["versions"]["customers"]
    assert [(v["version"], v["state"]) for v in listed] == [
        (1, "dropped"),
        (2, "retained"),
        (3, "published"),
        (4, "retained"),
    ]
    assert all(v["contract_version"] == "1.0.0" for v in listed)
    # the materialized versions passed their run's audit; the ones published directly had none
    assert listed[1]["audit"]["passed"] is True and listed[1]["audit"]["failed_checks"] == []
    assert listed[2]["audit"] is None
    assert [(m["action"], m["actor"], m["reason"]) for m in listed[2]["moves"]] == [
        ("publish", "ddp", ""),
        ("rollback", "alice", "v4 is wrong"),
    ]
    text = _ddp(t, "show", "customers").stdout
    assert "versions of port customers" in text and "rollback by alice" in text


def test_ddp_status_shows_the_published_version(t: Travelled) -> None:
    (card,) = json.loads(_ddp(t, "status", "customers", "--json").stdout)
    assert card["published"]["customers"]["version"] == 3
    assert card["published"]["customers"]["contract_version"] == "1.0.0"
    assert "customers v3 (1.0.0)" in _ddp(t, "status", "customers").stdout


def test_the_catalog_lists_versions(t: Travelled, tmp_path: Path) -> None:
    _ddp(t, "catalog", "build", str(tmp_path / "site"))
    page = (tmp_path / "site" / "products" / "customers.html").read_text(encoding="utf-8")
    versions = page[page.index("<h2>Versions</h2>") :]
    for text in ("v4", "v3", "<b>published</b>", "dropped", "v4 is wrong", "by alice"):
        assert text in versions, text
    assert "urn:ddp:sales:customers:customers 1.0.0" in versions


def test_a_rollback_is_a_materialization_a_lineage_run_and_refreshes_the_ports(
    t: Travelled,
) -> None:
    """Last in the module: it moves the published version (v3 → v4), as ``ddp rollback``."""
    import dagster as dg

    from ddp_assets.contracts.rollback import rollback
    from ddp_assets.ports.refresh import ports_refresh_sensor, publish_keys
    from ddp_assets.ports.rollbacks import announce
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(t.data_dir))
        patch.setenv("DAGSTER_HOME", t.env["DAGSTER_HOME"])
        patch.delenv("OPENLINEAGE_DISABLED", raising=False)
        patch.delenv("OPENLINEAGE_URL", raising=False)
        paths = ProjectPaths(ROOT)
        registry = Registry.load(paths.defs_dir, paths.root)
        instance = dg.DagsterInstance.from_config(t.env["DAGSTER_HOME"])
        sensor = ports_refresh_sensor(registry, paths, 30)
        # the refresh sensor has served every publish so far
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        cursor = first.cursor
        idle = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert idle.cursor == cursor and "no output port published" in str(idle.skip_message)
        with duckdb.connect(str(t.data_dir / "warehouse.duckdb")) as connection:
            result = rollback(
                connection,
                registry,
                "customers",
                port="customers",
                to=4,
                actor="bob",
                reason="v4 was right after all",
            )
        announced = announce(paths, registry, result, instance)
        assert announced.lineage == "emitted"
        key = dg.AssetKey(["customers", "customers"])
        assert announced.materializations == [key]
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert metadata["ddp/version"] == 4 and metadata["ddp/rolled_back_from"] == 3
        assert metadata["ddp/reason"] == "v4 was right after all"
        assert metadata["ddp/actor"] == "bob" and metadata["dagster/row_count"] == len(
            _version_rows(t, 4)
        )
        # the run's lineage: a run of customers.rollback, v4's table in, the published view out
        lines = (Path(t.env["DAGSTER_HOME"]) / "lineage" / "events.jsonl").read_text("utf-8")
        events = [json.loads(line) for line in lines.splitlines()]
        runs = [e for e in events if e["run"]["runId"] == announced.rollback_id]
        assert [e["eventType"] for e in runs] == ["START", "COMPLETE"]
        complete = runs[-1]
        assert complete["job"] == {
            **complete["job"],
            "namespace": "ddp",
            "name": "customers.rollback",
        }
        assert complete["job"]["facets"]["jobType"]["jobType"] == "ROLLBACK"
        assert "bob" in complete["job"]["facets"]["documentation"]["description"]
        (output,) = complete["outputs"]
        assert output["name"].endswith(".customers.customers")
        assert output["facets"]["version"]["datasetVersion"] == "4"
        assert output["facets"]["ddp_dataProduct"]["port"] == "customers"
        assert [i["name"].split(".", 1)[1] for i in complete["inputs"]] == [
            "customers__staging.customers__v4"
        ]
        # a rollback is a publish to the consumers: the refresh sensor rebuilds the ports
        assert key in publish_keys(registry)
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert tick.cursor != cursor and "serving snapshot rebuilt" in str(tick.skip_message)
    deadline = time.monotonic() + 20
    while t.get(ROWS, "analyst", limit=1).json()["version"] != 4:  # the server's new snapshot
        assert time.monotonic() < deadline, "the REST port still serves v3"
        time.sleep(0.2)
    published = t.rows("analyst")
    assert sorted(r["customer_id"] for r in published) == [r[0] for r in _version_rows(t, 4)]
    versions_now = t.get("/products/customers/ports/customers/versions", "analyst").json()
    assert [v["version"] for v in versions_now["versions"] if v["published"]] == [4]


def test_a_version_gone_from_a_newer_snapshot_is_a_404_not_an_error() -> None:
    from ddp_assets.ports.policy import Consumer
    from ddp_assets.ports.versions import ServedVersion, travel

    access = PortAccess("p", "m", "m", Consumer("c"), (PortColumn("id", "bigint"),), None)
    listed = [
        ServedVersion("p", "m", 1, 1, 3, "x", "urn:c", "1.0.0", "r1", "t", None, "m__v1", False),
        ServedVersion("p", "m", 2, 2, 3, "y", "urn:c", "1.0.0", "r2", "t", None, "m", True),
    ]
    with duckdb.connect() as connection:
        connection.execute("create schema p; create table p.m as select 1 as id")
        source, _, found = travel(connection, "memory", access, (listed, []), version=2)
        assert found.version == 2 and source == '"memory"."p"."m"'
        with pytest.raises(PortError, match="not in the serving snapshot any more") as gone:
            travel(connection, "memory", access, (listed, []), version=1)
        assert gone.value.status == 404


@pytest.fixture
def t(travelled: Travelled) -> Travelled:
    return travelled


def test_the_snapshot_of_a_postgres_warehouse_holds_its_retained_versions(
    postgres_server, tmp_path: Path
) -> None:
    """From PostgreSQL the versions are streamed out with COPY as the published table is."""
    from ddp_assets.ports.serving import _copy_from_warehouse
    from ddp_assets.ports.versions import PortHistory, read_versions, write_versions
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    warehouse = postgres_server.warehouse("ddp_time_travel")
    with warehouse.writer() as connection:
        for schema in ("customers", "customers__staging", "_ddp"):
            connection.execute(f"drop schema if exists {schema} cascade")
        connection.execute("create schema customers__staging")
        for run, (rows, country) in enumerate(((30, "DE"), (12, "US"), (5, "FR")), start=1):
            connection.execute("drop view if exists customers__staging.customers")
            connection.execute(
                "create table customers__staging.customers as select g as customer_id, "
                f"'{country}'::varchar as country from generate_series(1, {rows}) as g"
            )
            publish(
                connection,
                product="customers",
                port="customers",
                model="customers",
                contract_id="urn:ddp:sales:customers:customers",
                contract_version="1.0.0",
                run_id=f"run-{run}",
                retain=2,
            )
    paths = ProjectPaths(ROOT)
    registry = Registry.load(paths.defs_dir, paths.root)
    histories: list[PortHistory] = []
    used: set[Path] = set()
    with duckdb.connect() as snapshot:
        served = _copy_from_warehouse(snapshot, warehouse, registry, histories, (tmp_path, used))
        write_versions(
            snapshot,
            [v for h in histories for v in h.versions],
            [m for h in histories for m in h.moves],
        )
        assert [(s.product, s.port) for s in served] == [("customers", "customers")]
        assert snapshot.execute(
            "select count(*), min(country) from customers.customers"
        ).fetchone() == (5, "FR")
        assert snapshot.execute(
            "select count(*), min(country) from customers.customers__v2"
        ).fetchone() == (12, "US")
        tables = snapshot.execute(
            "select table_name from information_schema.tables where table_schema = 'customers' "
            "order by 1"
        ).fetchall()
        assert tables == [("customers",), ("customers__v2",)]  # v1 left retention
        listed, moved = read_versions(snapshot)
        history = listed[("customers", "customers")]
        assert [(v.version, v.stored_as, v.published) for v in history] == [
            (1, None, False),
            (2, "customers__v2", False),
            (3, "customers", True),
        ]
        assert [m.version for m in moved[("customers", "customers")]] == [1, 2, 3]
    # the retained version was written once, to its own file; a second build reuses it
    (stored,) = used
    assert stored.parent == tmp_path / "customers" and stored.name.startswith("customers__v2.")
    written = stored.stat().st_mtime_ns
    with duckdb.connect() as snapshot:
        _copy_from_warehouse(snapshot, warehouse, registry, [], (tmp_path, set()))
        assert snapshot.execute("select count(*) from customers.customers__v2").fetchone() == (12,)
    assert stored.stat().st_mtime_ns == written


def test_each_retained_version_is_copied_once_and_a_dropped_one_loses_its_file(
    t: Travelled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retained version is immutable: its file under ports/versions is written by the first
    build that holds it and reused (not rewritten) by the next; a file of a version the
    snapshot no longer holds is removed; the snapshot's ``<port>__v<N>`` is a view over it."""
    from ddp_assets.ports.serving import build_snapshot, serving_path
    from ddp_assets.ports.versions import read_versions
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    monkeypatch.setenv("DDP_DATA_DIR", str(t.data_dir))
    paths = ProjectPaths(ROOT)
    folder = t.data_dir / "ports" / "versions" / "customers"
    with duckdb.connect(str(serving_path(paths)), read_only=True) as snapshot:
        listed = read_versions(snapshot)[0][("customers", "customers")]
    held = sorted(str(v.stored_as) for v in listed if v.retained and not v.published)
    assert len(held) >= 2  # the fixture retains three versions, one of them published
    files = sorted(folder.glob("*.parquet"))
    assert sorted(f.name.split(".")[0] for f in files) == held
    written = {f: f.stat().st_mtime_ns for f in files}
    stale = folder / "customers__v1.0123456789abcdef.parquet"
    stale.write_bytes(b"left by an older build")
    build_snapshot(paths, Registry.load(paths.defs_dir, paths.root))
    assert {f: f.stat().st_mtime_ns for f in sorted(folder.glob("*.parquet"))} == written
    assert not stale.exists()
    with duckdb.connect(str(serving_path(paths)), read_only=True) as snapshot:
        kinds = snapshot.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'customers' order by 1"
        ).fetchall()
        assert kinds == [("customers", "BASE TABLE"), *((name, "VIEW") for name in held)]
        for name in held:
            number = int(name.rsplit("__v", 1)[1])
            assert snapshot.execute(f"select count(*) from customers.{name}").fetchone() == (
                len(_version_rows(t, number)),
            )

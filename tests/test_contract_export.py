"""``ddp contract export`` and the REST port's contract endpoint: the contract with its servers.

Every demo port's exported contract conforms to the official ODCS JSON Schema of its
``apiVersion`` and parses with the standard's own pydantic model; it is the contract file plus
the ``servers`` block of the active warehouse target (DuckDB file + schema, or PostgreSQL host,
port, database, schema) and never carries a credential. The REST port serves the same document.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from typer.testing import CliRunner

from ddp_assets.cli.app import app
from ddp_assets.contracts.servers import exported_contract, with_servers
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.ports import tokens
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.loader import read_yaml
from ddp_assets.spec.odcs import plain, schema_problems

ROOT = Path(__file__).resolve().parents[1]
PG_SECRET = "pg-password-canary-7f3a"


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """The repository's products over a private data folder (no warehouse needs to exist)."""
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DDP_DBT_TARGET", raising=False)
    return ProjectPaths(ROOT)


def ports(paths: ProjectPaths) -> list[tuple[str, str, str]]:
    registry = load_registry(paths)
    return [
        (p.id, o.name, o.model) for p in registry.products.values() for o in p.spec.output_ports
    ]


def export(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["contract", "export", *args])


def check_standard(path: Path, document: dict[str, Any]) -> None:
    """The official JSON Schema of the contract's apiVersion, and the standard's model."""
    assert schema_problems(path, ROOT) == []
    parsed = OpenDataContractStandard.model_validate(document)
    assert parsed.servers and parsed.servers[0].server == document["servers"][0]["server"]


def test_every_port_exports_with_its_duckdb_server(paths: ProjectPaths, tmp_path: Path) -> None:
    found = ports(paths)
    assert len(found) >= 13
    warehouse = str(paths.warehouse_path.absolute())
    registry = load_registry(paths)
    for product, port, model in found:
        out = tmp_path / f"{product}.{port}.odcs.yaml"
        result = export([product, port, "--output", str(out)])
        assert result.exit_code == 0, result.output
        document = yaml.safe_load(out.read_text(encoding="utf-8"))
        assert document["servers"] == [
            {
                "server": "dev",
                "type": "duckdb",
                "environment": "dev",
                "description": document["servers"][0]["description"],
                "database": warehouse,
                "schema": product,
            }
        ]
        check_standard(out, document)
        # the contract file's content, unchanged but for the servers and the relation's name
        source = plain(read_yaml(registry.get(product).contract_path(port)))
        assert {k: v for k, v in document.items() if k != "servers"} | {
            "schema": source["schema"]
        } == source
        names = [o.get("physicalName") for o in document["schema"]]
        assert model in names


def test_json_format_is_the_same_document(paths: ProjectPaths) -> None:
    as_yaml = yaml.safe_load(export(["orders", "orders"]).stdout)
    result = export(["orders", "orders", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == as_yaml
    assert as_yaml["servers"][0]["type"] == "duckdb"


def test_postgres_server_names_no_credential(
    paths: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDP_DBT_TARGET", "postgres")
    monkeypatch.setenv("DDP_PG_HOST", "warehouse.internal")
    monkeypatch.setenv("DDP_PG_PORT", "6543")
    monkeypatch.setenv("DDP_PG_DBNAME", "analytics")
    monkeypatch.setenv("DDP_PG_USER", "ddp_writer")
    monkeypatch.setenv("DDP_PG_PASSWORD", PG_SECRET)
    out = tmp_path / "orders.json"
    result = export(["orders", "order_lines", "--format", "json", "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert PG_SECRET not in text and "ddp_writer" not in text
    document = json.loads(text)
    server = document["servers"][0]
    assert {k: v for k, v in server.items() if k != "description"} == {
        "server": "postgres",
        "type": "postgres",
        "environment": "postgres",
        "host": "warehouse.internal",
        "port": 6543,
        "database": "analytics",
        "schema": "orders",
    }
    assert "DDP_PG_PASSWORD" in server["description"]
    check_standard(out, document)


def test_authors_servers_are_kept_and_a_same_named_one_replaced() -> None:
    ours = [{"server": "dev", "type": "duckdb", "database": "/w.duckdb", "schema": "p"}]
    document = {
        "schema": [{"name": "Orders table", "properties": []}],
        "servers": [
            {"server": "dev", "type": "duckdb", "database": "/old.duckdb"},
            {"server": "lake", "type": "s3", "location": "s3://bucket/orders/"},
        ],
    }
    exported = with_servers(document, ours, "orders", "orders")
    assert [s["server"] for s in exported["servers"]] == ["dev", "lake"]
    assert exported["servers"][0]["database"] == "/w.duckdb"
    # the only schema object is the port's: it names the published relation
    assert exported["schema"][0]["physicalName"] == "orders"
    # the input is not changed
    assert document["servers"][0]["database"] == "/old.duckdb"
    assert "physicalName" not in document["schema"][0]


def ddp(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``ddp`` console script, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DDP_PROJECT_ROOT": str(ROOT)},
        check=False,
        timeout=120,
    )


def test_bad_input_is_a_located_error(paths: ProjectPaths, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    for args, words in [
        (["orders", "order_line"], ["port: product 'orders' has no output port", "order_lines"]),
        (["ordrs", "orders"], ["product: no product 'ordrs'", "did you mean 'orders'"]),
        (["orders", "orders", "--output", str(blocked / "x.yaml")], ["cannot write", "--output"]),
    ]:
        done = ddp("contract", "export", *args)
        assert done.returncode == 1, done
        assert all(w in done.stderr for w in words), done.stderr
        assert "Traceback" not in done.stderr and not done.stdout


def test_console_script_prints_to_stdout(paths: ProjectPaths) -> None:
    done = ddp("contract", "export", "customers", "customers")
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load(done.stdout)
    assert document["id"] == "urn:ddp:sales:customers:customers"
    assert document["servers"][0]["schema"] == "customers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_rest_port_serves_the_exported_contract(paths: ProjectPaths) -> None:
    """``ddp serve`` on loopback: the contract endpoint answers the exported document."""
    issued = tokens.issue(Store.open(paths), "contract-export-test", ["analyst"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ddp"), "serve", "--port", str(port)],
        env={**os.environ, "DDP_PROJECT_ROOT": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.stderr and process.stderr.read()
                assert time.monotonic() < deadline, "ddp serve did not start"
                time.sleep(0.3)
            headers = {"Authorization": f"Bearer {issued.token}"}
            served = client.get(url + "/products/orders/ports/orders/contract", headers=headers)
            assert served.status_code == 200, served.text
            registry = load_registry(paths)
            assert served.json() == exported_contract(paths, registry.get("orders"), "orders")
            assert served.json()["servers"][0]["database"] == str(paths.warehouse_path.absolute())
            unknown = client.get(url + "/products/orders/ports/nope/contract", headers=headers)
            assert unknown.status_code == 404
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()

"""The MCP port, live: ``ddp mcp`` on loopback (streamable HTTP) and over stdio, driven by the
official SDK's own client, as several consumers of the customers product.

An allowed read, a masked column, a row filter, a denied port, SQL escape attempts (file
reads, ATTACH, COPY ... TO, settings), an oversized query, resources (ODCS, ODPS), search and
describe, 401 without a token, and an access request an owner approves after which the same
read succeeds — each audited with channel mcp.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextResourceContents
from pydantic import AnyUrl

from ddp_assets.ports import access, api, audit, tokens
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry
from tests.test_access_requests import EMEA, OWNER, customers_built, free_port, stop

pytestmark = [pytest.mark.slow, pytest.mark.integration]
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CANARY = Path("/tmp/ddp-mcp-pwned-canary")
__all__ = ["customers_built"]  # the fixture, shared with the access request tests


@dataclass
class Mcp:
    url: str
    paths: ProjectPaths
    registry: Registry
    store: Store
    tokens: dict[str, str]
    env: dict[str, str]

    async def _session(self, who: str, work: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=60) as client,
            streamable_http_client(self.url, http_client=client) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)

    def call(self, who: str, tool: str, **arguments: Any) -> tuple[bool, Any]:
        """(is_error, structured result or the error text)."""

        async def work(session: ClientSession) -> tuple[bool, Any]:
            result = await session.call_tool(tool, arguments)
            text = "".join(getattr(c, "text", "") for c in result.content)
            if result.isError:
                return True, text
            structured = result.structuredContent
            if structured is not None and set(structured) == {"result"}:
                return False, structured["result"]
            return False, structured if structured is not None else json.loads(text)

        return asyncio.run(self._session(who, work))

    def ok(self, who: str, tool: str, **arguments: Any) -> Any:
        failed, value = self.call(who, tool, **arguments)
        assert not failed, value
        return value

    def refused(self, who: str, tool: str, **arguments: Any) -> str:
        failed, value = self.call(who, tool, **arguments)
        assert failed, value
        assert "Traceback" not in value
        return value


@pytest.fixture(scope="module")
def server(customers_built: ProjectPaths, demo_env: Any) -> Iterator[Mcp]:
    paths = customers_built
    store = Store.open(paths)
    issued = {
        "analyst": tokens.issue(store, "mcp-analyst", ["analyst"]),
        "emea": tokens.issue(store, "emea-sales", []),
        "nobody": tokens.issue(store, "mcp-nobody", []),
        "newbie": tokens.issue(store, "mcp-newbie", []),
    }
    registry = Registry.load(paths.defs_dir, paths.root)
    api.build_ports(paths, registry, store)
    port = free_port()
    log = (paths.data_dir / f"mcp-{port}.log").open("w")
    env = {**demo_env.env(), "DDP_SQL_TIMEOUT_SECONDS": "3"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ddp"), "mcp", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.post(url, timeout=5).status_code == 401:  # up, and wants a token
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, "ddp mcp did not start"
            time.sleep(0.3)
        yield Mcp(url, paths, registry, store, {k: t.token or "" for k, t in issued.items()}, env)
    finally:
        stop(process)
        log.close()


def last_mcp_row(server: Mcp, consumer: str) -> audit.AccessRecord:
    (row,) = audit.read(server.store, consumer=consumer, limit=1)
    assert row.channel == "mcp"
    return row


def test_unauthenticated_http_is_401(server: Mcp) -> None:
    for headers in ({}, {"Authorization": "Bearer ddp_not-a-token"}):
        response = httpx.post(server.url, headers=headers, json={}, timeout=10)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "authentication required" in response.json()["error"]["message"]


def test_tools_and_resources_are_listed(server: Mcp) -> None:
    async def work(session: ClientSession) -> tuple[set[str], set[str]]:
        found = await session.list_tools()
        listed = await session.list_resources()
        return {t.name for t in found.tools}, {str(r.uri) for r in listed.resources}

    names, uris = asyncio.run(server._session("analyst", work))
    assert names == {
        "search_catalog",
        "describe_product",
        "read_rows",
        "query_sql",
        "request_access",
    }
    assert "ddp://products/customers/ports/customers/contract" in uris
    assert "ddp://products/customers/odps" in uris


def test_allowed_read_with_a_masked_column(server: Mcp) -> None:
    page = server.ok("analyst", "read_rows", product="customers", port="customers", limit=20)
    assert len(page["rows"]) == 20 and page["next_offset"] == 20
    masked = {c["name"]: c["masked"] for c in page["columns"]}
    assert masked["email"] == "hash" and masked["country"] is None
    assert all(HEX64.match(r["email"]) for r in page["rows"] if r["email"])
    row = last_mcp_row(server, "mcp-analyst")
    assert (row.action, row.allowed, row.rows, row.port) == ("read", True, 20, "customers")
    # filtering on a masked column would reveal it: refused, as on REST
    text = server.refused(
        "analyst", "read_rows", product="customers", port="customers", filters=["email:eq:x"]
    )
    assert "refused (400)" in text and "masked" in text


def test_row_filter(server: Mcp) -> None:
    page = server.ok(
        "emea", "read_rows", product="customers", port="customers", columns=["country"], limit=1000
    )
    assert page["row_filtered"] is True
    countries = {r["country"] for r in page["rows"]}
    assert countries and countries <= EMEA


def test_denied_port_is_a_tool_error_and_audited(server: Mcp) -> None:
    text = server.refused("nobody", "read_rows", product="customers", port="customers")
    assert "refused (403)" in text and "not granted" in text and "ddp access request" in text
    row = last_mcp_row(server, "mcp-nobody")
    assert (row.allowed, row.status, row.action) == (False, 403, "read")
    unknown = server.refused("nobody", "read_rows", product="custmers", port="customers")
    assert "refused (404)" in unknown and "did you mean 'customers'" in unknown
    # the server is still up
    assert server.ok("analyst", "read_rows", product="customers", port="customers", limit=1)


@pytest.mark.parametrize(
    "query",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "attach '/tmp/ddp-mcp-other.duckdb' as other",
        f"copy (select 1) to '{CANARY}'",
        "set enable_external_access = true",
        "select current_setting('memory_limit')",
        "select * from duckdb_settings()",
        "install httpfs",
    ],
    ids=[
        "read_csv",
        "read_text",
        "attach",
        "copy_to",
        "set",
        "current_setting",
        "settings",
        "install",
    ],
)
def test_sql_escape_attempts_are_refused(server: Mcp, query: str) -> None:
    text = server.refused("analyst", "query_sql", sql=query)
    assert "refused (4" in text, text
    assert not CANARY.exists()
    assert "root:" not in text


def test_oversized_query_is_refused(server: Mcp) -> None:
    text = server.refused("analyst", "query_sql", sql="select 1" + " " * 100_001)
    assert "refused (400)" in text and "at most 100000" in text
    # a query too big to run in time is aborted at the port's time limit (3 s here)
    started = time.monotonic()
    slow = server.refused(
        "analyst",
        "query_sql",
        sql="select sum(a.range * b.range) from range(100000000) a, range(100000) b",
    )
    assert "refused (408)" in slow and "time limit" in slow
    assert time.monotonic() - started < 30
    row = last_mcp_row(server, "mcp-analyst")
    assert (row.action, row.allowed, row.status) == ("query", False, 408)


def test_sql_reads_the_consumer_s_port(server: Mcp) -> None:
    result = server.ok(
        "emea",
        "query_sql",
        sql="select country, count(*) as n from customers.customers group by 1 order by 1",
    )
    assert result["columns"] == ["country", "n"]
    assert {r[0] for r in result["rows"]} <= EMEA
    assert result["ports"] == ["customers.customers"]
    row = last_mcp_row(server, "emea-sales")
    assert (row.action, row.allowed, row.port) == ("query", True, "customers")
    bounded = server.ok("analyst", "query_sql", sql="select * from range(5000)", max_rows=10)
    assert len(bounded["rows"]) == 10 and bounded["truncated"] is True


def test_search_describe_and_resources(server: Mcp) -> None:
    hits = server.ok("analyst", "search_catalog", query="customer")
    found = {h["id"]: h for h in hits}
    assert "customers" in found and found["customers"]["granted_ports"] == ["customers"]
    info = server.ok("analyst", "describe_product", product="customers")
    assert info["owners"] == [OWNER, "team:sales-analytics"]
    assert info["description"]["purpose"]
    port = info["ports"][0]
    assert port["granted"] is True and port["published"]["run_id"]
    # its SLO status, as REST's /slo: just built, so fresh against max_age 26h
    assert port["slo"]["state"] == "pass" and port["slo"]["max_age_seconds"] == 26 * 3600
    assert port["slo"]["last_materialized_at"] and port["slo"]["refresh"] == "schedule"
    assert isinstance(info["access_grants"], list)  # the grants store's, beside the spec's
    # its versions, as REST's .../versions: the published one; masked, so no checksums
    (published,) = [v for v in port["versions"] if v["published"]]
    assert published["run_id"] == port["published"]["run_id"] and published["retained"]
    assert published["rows"] == port["published"]["rows"] and published["checksum"] is None
    emea = server.ok("emea", "describe_product", product="customers")["ports"][0]
    assert emea["versions"] and all(v["rows"] is None for v in emea["versions"])  # row filter
    nobody = server.ok("nobody", "describe_product", product="customers")["ports"][0]
    assert nobody["granted"] is False and nobody["versions"] is None
    assert "downstream" in info and info["version"] == "1.0.0"

    async def work(session: ClientSession) -> tuple[str, str]:
        contract = await session.read_resource(
            AnyUrl("ddp://products/customers/ports/customers/contract")
        )
        odps = await session.read_resource(AnyUrl("ddp://products/customers/odps"))
        first, second = contract.contents[0], odps.contents[0]
        assert isinstance(first, TextResourceContents) and isinstance(second, TextResourceContents)
        return first.text, second.text

    contract_text, odps_text = asyncio.run(server._session("analyst", work))
    contract = json.loads(contract_text)
    assert contract["kind"] == "DataContract" and contract["schema"][0]["name"] == "customers"
    odps = json.loads(odps_text)
    assert odps["kind"] == "DataProduct" and odps["id"]
    row = last_mcp_row(server, "mcp-analyst")
    assert (row.action, row.product) == ("descriptor", "customers")


def test_access_request_then_owner_approval_then_the_same_read(server: Mcp) -> None:
    def read() -> tuple[bool, Any]:
        return server.call("newbie", "read_rows", product="customers", port="customers", limit=5)

    failed, text = read()
    assert failed and "refused (403)" in text
    # asking for a classified column without saying so is refused, nothing filed
    bad = server.refused(
        "newbie", "request_access", product="customers", purpose="x", columns=["email"]
    )
    assert "classified 'restricted'" in bad and "--clearance restricted" in bad
    filed = server.ok(
        "newbie",
        "request_access",
        product="customers",
        ports=["customers"],
        purpose="agent summarising customer segments",
    )
    assert (filed["status"], filed["via"], filed["consumer"]) == ("pending", "mcp", "mcp-newbie")
    steps = access.audit_events(server.store, "customers", consumer="mcp-newbie", limit=5)
    assert [(r.action, r.channel, r.allowed) for r in steps[:2]] == [
        ("access_request", "mcp", True),
        ("access_request", "mcp", False),
    ]
    assert read()[0]  # still pending: refused
    ctx = access.AccessContext(server.paths, server.registry, server.store)
    access.approve(ctx, filed["id"], approver=OWNER, rows=["segment:eq:enterprise"])
    failed, page = read()
    assert not failed, page
    assert page["rows"] and {r["segment"] for r in page["rows"]} == {"enterprise"}
    counted = server.ok(
        "newbie", "query_sql", sql="select distinct segment from customers.customers"
    )
    assert counted["rows"] == [["enterprise"]]
    described = server.ok("newbie", "describe_product", product="customers")
    assert described["ports"][0]["granted"] is True
    (grant,) = [g for g in described["access_grants"] if g["source"] == filed["id"]]
    assert grant["to"] == "mcp-newbie" and grant["rows"][0]["value"] == "enterprise"
    access.revoke(ctx, filed["id"], by=OWNER, reason="test done")
    assert read()[0]
    assert "refused" in server.refused(
        "newbie", "query_sql", sql="select 1 from customers.customers"
    )


def test_stdio_transport(server: Mcp) -> None:
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "ddp"),
        args=["mcp", "--transport", "stdio"],
        env={**server.env, "DDP_TOKEN": server.tokens["emea"]},
    )

    async def work() -> tuple[bool, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(
                "read_rows", {"product": "customers", "port": "customers", "limit": 50}
            )
            return result.isError, result.structuredContent

    failed, page = asyncio.run(work())
    assert not failed and page
    assert {r["country"] for r in page["rows"]} <= EMEA
    row = last_mcp_row(server, "emea-sales")
    assert (row.action, row.rows) == ("read", 50)
    bad = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), "mcp", "--transport", "stdio"],
        env={**server.env, "DDP_TOKEN": "ddp_revoked-or-made-up"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "stdio needs the consumer's token" in bad.stderr


def test_read_rows_of_a_retained_version_under_the_same_policy(server: Mcp) -> None:
    """read_rows' ``version`` (and ``as_of``) read a retained version through the port's
    current policy, as REST's ?version= does; a version not retained is a 404 naming the
    retained ones. Afterwards the published version is the one the module started with."""
    import duckdb

    from ddp_assets.contracts.wap import move_pointers, publish, published_version

    warehouse = server.paths.data_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        first = published_version(connection, "customers", "customers")
        assert first is not None and first.version is not None and first.stored_as
        connection.execute(
            'create or replace table "customers__staging"."customers__next" as '
            f"select * from {first.stored_as} where customer_id % 2 = 0"
        )
        connection.execute('drop view if exists "customers__staging"."customers"')
        connection.execute(
            'alter table "customers__staging"."customers__next" rename to "customers"'
        )
        second = publish(
            connection,
            product="customers",
            port="customers",
            model="customers",
            contract_id=first.contract_id,
            contract_version=first.contract_version,
            run_id="mcp-time-travel",
        )
    api.build_ports(server.paths, server.registry, server.store)
    try:
        now = server.ok("analyst", "read_rows", product="customers", port="customers", limit=1000)
        assert now["version"] == second.version and len(now["rows"]) == second.rows
        old = server.ok(
            "analyst",
            "read_rows",
            product="customers",
            port="customers",
            version=first.version,
            limit=1000,
        )
        assert old["version"] == first.version and old["run_id"] == first.run_id
        assert len(old["rows"]) == first.rows > len(now["rows"])
        masked = {c["name"]: c["masked"] for c in old["columns"]}
        assert masked["email"] == "hash"  # the current policy, on the old version too
        assert all(HEX64.match(r["email"]) for r in old["rows"] if r["email"])
        ids = {r["customer_id"] for r in old["rows"]}
        assert any(i % 2 for i in ids)  # rows only the old version has
        # the row filter applies to the old version as to the published one
        emea = server.ok(
            "emea",
            "read_rows",
            product="customers",
            port="customers",
            columns=["country"],
            version=first.version,
            limit=1000,
        )
        assert emea["row_filtered"] and {r["country"] for r in emea["rows"]} <= EMEA
        by_time = server.ok(
            "analyst", "read_rows", product="customers", port="customers", as_of="2999-01-01"
        )
        assert by_time["version"] == second.version
        text = server.refused(
            "analyst", "read_rows", product="customers", port="customers", version=999
        )
        assert "refused (404)" in text and "version 999" in text
        assert f"v{first.version}" in text and f"v{second.version} (published)" in text
        row = last_mcp_row(server, "mcp-analyst")
        assert (row.allowed, row.status, row.action) == (False, 404, "read")
        denied = server.refused(
            "nobody", "read_rows", product="customers", port="customers", version=first.version
        )
        assert "refused (403)" in denied
    finally:
        with duckdb.connect(str(warehouse)) as connection:
            move_pointers(
                connection,
                "customers",
                [("customers", "customers", int(first.version))],
                action="rollback",
                actor="test",
                reason="restore the module's published version",
            )
        api.build_ports(server.paths, server.registry, server.store)

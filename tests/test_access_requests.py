"""Access requests, live: a consumer asks, an owner approves (narrowed or not), and the grant is
enforced at once by a real ``ddp serve`` on loopback, the SQL port and the file port; expiry
on time, revocation, denial, bad input, the audit log, the owners' notifications (a JSON-lines
file and a webhook on loopback) and the CLI.

The customers product alone is materialized (the access paths are the same for every product).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
import yaml

from ddp_assets.ports import access, api, tokens
from ddp_assets.ports.policy import PortError
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.integration]
OWNER = "sales-data@example.com"
ROWS = "/products/customers/ports/customers/rows"
EMEA = {"DE", "FR", "GB", "NL", "ES", "IT"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Webhook:
    """An HTTP server on loopback that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Env:
    paths: ProjectPaths
    registry: Registry
    store: Store
    url: str
    tokens: dict[str, str]
    client: httpx.Client
    webhook: Webhook
    env: dict[str, str]

    def ctx(self, via: str = "cli") -> access.AccessContext:
        return access.AccessContext(self.paths, self.registry, self.store, via=via)

    def get(self, path: str, who: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.get(self.url + path, headers=headers, params=params or None)

    def post(self, path: str, who: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.post(self.url + path, headers=headers, json=body)

    def ddp(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "ddp"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def start_server(paths: ProjectPaths, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (paths.data_dir / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ddp"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert process.poll() is None, Path(log.name).read_text()
        assert time.monotonic() < deadline, "ddp serve did not start"
        time.sleep(0.3)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def customers_built(demo_env: Any) -> ProjectPaths:
    """The customers product materialized and served (snapshot built)."""
    from ddp_assets.runtime.materialize import materialize

    outcome = materialize(demo_env.paths, ["customers"], log_level="ERROR")
    assert outcome.success, outcome.errors or outcome.failed_checks
    return demo_env.paths


@pytest.fixture(scope="module")
def env(customers_built: ProjectPaths, demo_env: Any) -> Iterator[Env]:
    paths = customers_built
    store = Store.open(paths)
    issued = {
        "newbie": tokens.issue(store, "ar-newbie", []),
        "analyst": tokens.issue(store, "ar-analyst", ["analyst"]),
        "owner": tokens.issue(store, OWNER, []),
        "team": tokens.issue(store, "ar-teammate", ["sales-analytics"]),
        "other": tokens.issue(store, "ar-other", []),
    }
    registry = Registry.load(paths.defs_dir, paths.root)
    api.build_ports(paths, registry, store)
    webhook = Webhook()
    saved = os.environ.get("DDP_ALERT_WEBHOOK")
    os.environ["DDP_ALERT_WEBHOOK"] = webhook.url
    process_env = {**demo_env.env(), "DDP_ALERT_WEBHOOK": webhook.url}
    process, url = start_server(paths, process_env)
    client = httpx.Client(timeout=30)
    try:
        yield Env(
            paths,
            registry,
            store,
            url,
            {k: t.token or "" for k, t in issued.items()},
            client,
            webhook,
            process_env,
        )
    finally:
        client.close()
        stop(process)
        webhook.close()
        if saved is None:
            os.environ.pop("DDP_ALERT_WEBHOOK", None)
        else:
            os.environ["DDP_ALERT_WEBHOOK"] = saved


def sql(env: Env, who: str, query: str) -> Any:
    return api.query(env.paths, env.store, env.tokens[who], query)


def notifications(env: Env) -> list[dict[str, Any]]:
    path = access.notifications_file(env.paths)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"product_id": "custmers"}, 404, "no product 'custmers'"),
        ({"ports": ["custmers"]}, 404, "has no output port 'custmers'"),
        ({"consumer": "nobody-at-all"}, 404, "unknown consumer 'nobody-at-all'"),
        ({"columns": ["email"]}, 400, "classified 'restricted', above consumer"),
        ({"columns": ["emial"]}, 400, "column 'emial' is in none of the requested ports"),
        ({"clearance": ["secret"]}, 400, "no column of the requested ports is classified so"),
        ({"purpose": "  "}, 400, "the purpose is empty"),
        ({"until": "2001-01-01"}, 400, "is in the past"),
        ({"until": "next week"}, 400, "is not a date or a timestamp"),
    ],
    ids=[
        "product",
        "port",
        "consumer",
        "classified",
        "column",
        "clearance",
        "purpose",
        "past",
        "until",
    ],
)
def test_bad_requests_are_refused_and_audited(
    env: Env, kwargs: dict[str, Any], status: int, message: str
) -> None:
    before = len(access.list_requests(env.store))
    arguments: dict[str, Any] = {
        "product_id": "customers",
        "ports": ["customers"],
        "consumer": "ar-newbie",
        "purpose": "churn model",
        **kwargs,
    }
    product_id, ports = arguments.pop("product_id"), arguments.pop("ports")
    with pytest.raises(access.AccessError) as caught:
        access.request_access(env.ctx(), product_id, ports, **arguments)
    assert caught.value.status == status
    assert message in caught.value.message, caught.value.message
    assert caught.value.hint
    assert len(access.list_requests(env.store)) == before  # nothing filed
    (row,) = access.audit_events(env.store, consumer=arguments["consumer"], limit=1)
    assert (row.action, row.allowed, row.status) == ("access_request", False, status)
    assert message in (row.reason or "")


def test_a_classified_column_asked_in_clear_is_accepted(env: Env) -> None:
    filed = access.request_access(
        env.ctx(),
        "customers",
        ["customers"],
        consumer="ar-newbie",
        purpose="fraud review",
        columns=["email", "country"],
        clearance=["restricted"],
    )
    assert (filed.status, filed.columns, filed.clearance) == (
        "pending",
        ["email", "country"],
        ["restricted"],
    )
    # the analyst is granted the port already, masked: asking for email needs clearance too
    with pytest.raises(access.AccessError, match="above consumer 'ar-analyst'"):
        access.request_access(
            env.ctx(), "customers", [], consumer="ar-analyst", purpose="x", columns=["email"]
        )
    access.deny(env.ctx(), filed.id, approver=OWNER, reason="cleanup")


# -- the whole way: REST request, owner approval, every port -----------------------------


def test_request_over_rest_approve_narrowed_then_every_port_serves_it(env: Env) -> None:
    assert env.get(ROWS, "newbie").status_code == 403
    with pytest.raises(PortError):
        sql(env, "newbie", "select count(*) from customers.customers")

    created = env.post(
        "/access/requests",
        "newbie",
        {"product": "customers", "purpose": "EMEA churn dashboard", "columns": ["country"]},
    )
    assert created.status_code == 201, created.text
    filed = created.json()
    assert (filed["consumer"], filed["via"], filed["status"]) == ("ar-newbie", "rest", "pending")
    assert filed["ports"] == ["customers"]
    rid = filed["id"]

    # the owners were told, by file and webhook
    told = [n for n in notifications(env) if n["key"] == f"access:{rid}"]
    assert told and told[0]["kind"] == "access_requested"
    assert OWNER in told[0]["details"]["to"]
    assert any(b["key"] == f"access:{rid}" for b in env.webhook.bodies)

    # the consumer sees its own request; another consumer does not; the owner does
    def ids(who: str) -> set[str]:
        listed = env.get("/access/requests", who, status="pending")
        assert listed.status_code == 200, listed.text
        return {r["id"] for r in listed.json()}

    assert rid in ids("newbie") and rid in ids("owner") and rid not in ids("other")

    # self-approval and a non-owner are refused; nothing is granted
    own = env.post(f"/access/requests/{rid}/approve", "newbie", {})
    assert own.status_code == 403 and "own request" in own.json()["error"]["message"]
    stranger = env.post(f"/access/requests/{rid}/approve", "other", {})
    assert stranger.status_code == 403 and "not an owner" in stranger.json()["error"]["message"]
    bad_rows = env.post(f"/access/requests/{rid}/approve", "owner", {"rows": ["contry:eq:DE"]})
    assert bad_rows.status_code == 400 and "contry" in bad_rows.json()["error"]["message"]
    assert env.get(ROWS, "newbie").status_code == 403

    # a team owner (role sales-analytics) approves, narrowed to EMEA rows
    approved = env.post(
        f"/access/requests/{rid}/approve",
        "team",
        {"rows": ["country:in:DE,FR,GB,NL,ES,IT"], "reason": "EMEA only"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    # REST at once: rows filtered, restricted columns masked
    page = env.get(ROWS, "newbie", limit=1000)
    assert page.status_code == 200, page.text
    rows = page.json()["rows"]
    assert rows and {r["country"] for r in rows} <= EMEA
    masked = {c["name"]: c["masked"] for c in page.json()["columns"]}
    assert masked["email"] == "hash" and masked["country"] is None

    # SQL port (rebuilt on approval), the same rows
    result = sql(env, "newbie", "select count(*), count(distinct country) from customers.customers")
    total = env.client.get(
        env.url + "/products/customers/ports/customers",
        headers={"Authorization": f"Bearer {env.tokens['newbie']}"},
    ).json()["version"]["rows"]
    assert result.rows[0][0] == total and result.rows[0][1] <= len(EMEA)

    # file port
    exported = api.export(
        env.paths,
        env.registry,
        env.store,
        env.tokens["newbie"],
        "customers",
        "customers",
        env.paths.data_dir / "ar-export",
    )
    table = pq.read_table(exported.data)
    assert table.num_rows == total
    assert set(table.column("country").to_pylist()) <= EMEA

    # audited with who and why, and filtered by `ddp audit --access`
    steps = access.audit_events(env.store, "customers", consumer="ar-newbie", limit=20)
    approve_row = next(r for r in steps if r.action == "access_approve" and r.allowed)
    assert approve_row.channel == "rest"
    assert "ar-teammate" in (approve_row.reason or "") and "EMEA only" in (approve_row.reason or "")

    # revoked: refused at once on REST and the SQL port
    revoked = env.post(f"/access/requests/{rid}/revoke", "owner", {"reason": "dashboard retired"})
    assert revoked.status_code == 200, revoked.text
    assert env.get(ROWS, "newbie").status_code == 403
    with pytest.raises(PortError):
        sql(env, "newbie", "select count(*) from customers.customers")
    again = env.post(f"/access/requests/{rid}/revoke", "owner", {"reason": "twice"})
    assert again.status_code == 409


def test_clearance_granted_or_masking_kept(env: Env) -> None:
    def ask() -> str:
        return access.request_access(
            env.ctx(),
            "customers",
            ["customers"],
            consumer="ar-other",
            purpose="data quality audit of emails",
            columns=["email"],
            clearance=["restricted"],
        ).id

    kept = access.approve(env.ctx(), ask(), approver=OWNER, keep_masking=True)
    assert kept.cleared_for == []
    page = env.get(ROWS, "other", columns="email", limit=5).json()
    assert page["columns"][0]["masked"] == "hash"
    assert all("@" not in r["email"] for r in page["rows"])
    access.revoke(env.ctx(), kept.id, by=OWNER, reason="replaced")

    clear = access.approve(env.ctx(), ask(), approver=OWNER, reason="audit signed off")
    assert clear.cleared_for == ["restricted"]
    page = env.get(ROWS, "other", columns="email", limit=5).json()
    assert page["columns"][0]["masked"] is None
    assert all("@" in r["email"] for r in page["rows"] if r["email"])
    access.revoke(env.ctx(), clear.id, by=OWNER, reason="done")
    assert env.get(ROWS, "other").status_code == 403


def test_expired_grants_stop_on_time(env: Env) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=4)).isoformat(timespec="seconds")
    filed = access.request_access(
        env.ctx(),
        "customers",
        [],
        consumer="ar-other",
        purpose="one-off extract",
        until=until,
    )
    granted = access.approve(env.ctx(), filed.id, approver=OWNER)
    assert env.get(ROWS, "other", limit=1).status_code == 200
    assert sql(env, "other", "select count(*) from customers.customers").rows[0][0] > 0
    expiry = datetime.fromisoformat(granted.until or "")
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.2)
    # REST refuses on time, before any sweep ran: the policy engine reads unexpired grants only
    assert env.get(ROWS, "other", limit=1).status_code == 403
    # the SQL port too: a query sweeps the consumer's due expiry first (no sensor, no sweep)
    assert access.get_request(env.store, filed.id).status == "approved"
    with pytest.raises(PortError):
        sql(env, "other", "select count(*) from customers.customers")
    assert access.get_request(env.store, filed.id).status == "expired"
    assert access.sweep_expired(env.ctx()) == []
    (row,) = access.audit_events(env.store, consumer="ar-other", limit=1)
    assert (row.action, row.allowed, row.channel) == ("access_expire", True, "sql")
    assert any(
        n["kind"] == "access_expired" and n["key"] == f"access:{filed.id}"
        for n in notifications(env)
    )


def test_deny_with_a_reason_then_no_decision_twice(env: Env) -> None:
    filed = access.request_access(
        env.ctx(), "customers", [], consumer="ar-other", purpose="curiosity"
    )
    with pytest.raises(access.AccessError, match="own request"):
        access.deny(env.ctx(), filed.id, approver="ar-other", reason="no")
    with pytest.raises(access.AccessError, match="the reason is empty"):
        access.deny(env.ctx(), filed.id, approver=OWNER, reason=" ")
    denied = access.deny(env.ctx(), filed.id, approver=OWNER, reason="use usage_metrics")
    assert (denied.status, denied.reason, denied.decided_by) == (
        "denied",
        "use usage_metrics",
        OWNER,
    )
    with pytest.raises(access.AccessError) as caught:
        access.approve(env.ctx(), filed.id, approver=OWNER)
    assert caught.value.status == 409
    assert env.get(ROWS, "other").status_code == 403
    # audited with who and why (the refused approval after it too), the owners told
    steps = [
        (r.action, r.allowed, r.reason)
        for r in access.audit_events(env.store, "customers", consumer="ar-other", limit=10)
        if filed.id in (r.reason or "")
    ]
    assert steps[0][:2] == ("access_approve", False) and "not pending" in (steps[0][2] or "")
    assert steps[1] == (
        "access_deny",
        True,
        f"request {filed.id} by {OWNER}: use usage_metrics",
    )
    told = [n for n in notifications(env) if n["key"] == f"access:{filed.id}"]
    assert [n["kind"] for n in told] == ["access_requested", "access_denied"]
    assert "use usage_metrics" in told[1]["message"] and OWNER in told[1]["details"]["to"]


def test_rest_bad_bodies_and_unauthenticated(env: Env) -> None:
    no_token = env.client.post(env.url + "/access/requests", json={"product": "customers"})
    assert no_token.status_code == 401
    for body in ({"product": "customers"}, {"product": "customers", "purpose": "x", "extra": 1}):
        response = env.post("/access/requests", "newbie", body)
        assert response.status_code == 400, response.text
    unknown = env.post("/access/requests/ar-00000000/approve", "owner", {})
    assert unknown.status_code == 404


def test_cli_request_approve_and_audit(env: Env) -> None:
    bad = env.ddp(
        "access", "request", "customers", "--consumer", "ar-newbie", "--purpose", "x",
        "--columns", "email",
    )  # fmt: skip
    assert bad.returncode == 2
    assert "classified 'restricted'" in bad.stderr and "--clearance restricted" in bad.stderr
    assert "Traceback" not in bad.stderr
    made = env.ddp(
        "access", "request", "customers", "customers", "--consumer", "ar-newbie",
        "--purpose", "weekly report", "--until", "2099-12-31", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    rid = json.loads(made.stdout)["id"]
    listed = env.ddp("access", "requests", "--product", "customers", "--json")
    assert rid in {r["id"] for r in json.loads(listed.stdout)}
    own = env.ddp("access", "approve", rid, "--as", "ar-newbie")
    assert own.returncode == 2 and "own request" in own.stderr
    approved = env.ddp("access", "approve", rid, "--as", OWNER, "--rows", "segment:eq:smb")
    assert approved.returncode == 0, approved.stderr
    rows = env.get(ROWS, "newbie", limit=1000).json()["rows"]
    assert rows and {r["segment"] for r in rows} == {"smb"}
    grants = json.loads(env.ddp("access", "grants", "--product", "customers", "--json").stdout)
    assert any(g["source"] == rid and g["until"].startswith("2100-01-01") for g in grants["grants"])
    assert any(g["source"] == "spec" for g in grants["grants"])
    revoked = env.ddp("access", "revoke", rid, "--as", OWNER, "--reason", "report moved")
    assert revoked.returncode == 0, revoked.stderr
    shown = json.loads(env.ddp("audit", "customers", "--access", "--json").stdout)
    actions = [(r["action"], r["allowed"]) for r in shown if rid in (r["reason"] or "")]
    assert actions[:4] == [
        ("access_revoke", True),
        ("access_approve", True),
        ("access_approve", False),  # the consumer's own approval, refused
        ("access_request", True),
    ]
    assert all(r["action"].startswith("access_") for r in shown)


def test_catalog_page_shows_grants_and_how_to_ask(env: Env, tmp_path: Path) -> None:
    """`ddp catalog build` shows the grants store's approved grants beside the spec's."""
    filed = access.request_access(
        env.ctx(), "customers", ["customers"], consumer="ar-other", purpose="catalog check"
    )
    access.approve(env.ctx(), filed.id, approver=OWNER, rows=["country:eq:DE"])
    try:
        built = env.ddp("catalog", "build", str(tmp_path / "site"))
        assert built.returncode == 0, built.stderr
        page = (tmp_path / "site" / "products" / "customers.html").read_text()
        assert "ddp access request customers customers --consumer YOU" in page
        assert "POST /access/requests" in page
        assert "role:crm" in page and "restricted" in page  # the spec's grants
        assert "ar-other" in page and filed.id in page and "country eq DE" in page
        assert filed.id not in (tmp_path / "site" / "products" / "orders.html").read_text()
    finally:
        access.revoke(env.ctx(), filed.id, by=OWNER, reason="catalog check done")
    again = env.ddp("catalog", "build", str(tmp_path / "after"))
    assert again.returncode == 0, again.stderr
    assert filed.id not in (tmp_path / "after" / "products" / "customers.html").read_text()


def test_expiry_sensor_expires_and_rebuilds_the_sql_port(env: Env) -> None:
    """The sensor the code location registers (its Definitions loaded), on by default."""
    import dagster as dg

    from ddp_assets.runtime.instance import definitions

    (sensor,) = [s for s in definitions(env.paths).sensors or [] if s.name == "ddp_access_expiry"]
    assert isinstance(sensor, dg.SensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    until = (datetime.now(UTC) + timedelta(seconds=10)).isoformat(timespec="seconds")
    filed = access.request_access(
        env.ctx(), "customers", [], consumer="ar-other", purpose="sensor check", until=until
    )
    access.approve(env.ctx(), filed.id, approver=OWNER)
    assert sql(env, "other", "select count(*) from customers.customers").rows[0][0] > 0
    with dg.instance_for_test() as instance:
        early = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(early, dg.SkipReason) and filed.id not in (early.skip_message or "")
        time.sleep(max(0.0, (datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()))
        time.sleep(0.2)
        late = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(late, dg.SkipReason) and filed.id in (late.skip_message or "")
    assert access.get_request(env.store, filed.id).status == "expired"
    with pytest.raises(PortError):
        sql(env, "other", "select count(*) from customers.customers")
    (row,) = access.audit_events(env.store, consumer="ar-other", limit=1)
    assert (row.action, row.channel) == ("access_expire", "sensor")


def test_approval_narrowed_to_fewer_ports(env: Env) -> None:
    from ddp_assets.ports.policy import Consumer, resolve

    orders = env.registry.products["orders"]
    who = Consumer("ar-other")
    filed = access.request_access(
        env.ctx(), "orders", ["orders", "order_lines"], consumer="ar-other", purpose="basket size"
    )
    with pytest.raises(access.AccessError, match="not an owner of product 'orders'"):
        access.approve(env.ctx(), filed.id, approver=OWNER)  # customers' owner, not orders'
    with pytest.raises(access.AccessError, match="were not requested"):
        access.approve(env.ctx(), filed.id, approver="orders-data@example.com", ports=["nope"])
    done = access.approve(
        env.ctx(), filed.id, approver="orders-data@example.com", ports=["order_lines"]
    )
    assert done.granted_ports == ["order_lines"]
    assert resolve(orders, "order_lines", who).row_filter is None
    with pytest.raises(PortError) as caught:
        resolve(orders, "orders", who)
    assert caught.value.status == 403
    access.revoke(env.ctx(), filed.id, by="ar-other", reason="giving it up")  # the consumer may
    with pytest.raises(PortError):
        resolve(orders, "order_lines", who)


def copy_project(target: Path) -> Path:
    """A private copy of the project (its specs may be changed), beside the same data dir."""
    root = Path(__file__).resolve().parents[1]
    ignore = shutil.ignore_patterns("target", "_ddp", "__pycache__", "logs")
    for name in ("ddp_assets", "dbt_project", "depots"):
        if (root / name).is_dir():
            shutil.copytree(root / name, target / name, ignore=ignore)
    for name in ("pyproject.toml", "dagster.yaml", "workspace.yaml"):
        shutil.copyfile(root / name, target / name)
    return target


def test_validate_shows_stored_grants_and_warns_on_stale_ones(env: Env, tmp_path: Path) -> None:
    scorecard = access.request_access(
        env.ctx(), "supplier_performance", ["stock_out_alerts"], consumer="ar-other", purpose="x"
    )
    scorecard = access.approve(
        env.ctx(), scorecard.id, approver="supply-chain-analytics@example.com"
    )
    pos = access.request_access(
        env.ctx(), "inventory", ["purchase_orders"], consumer="ar-other", purpose="y"
    )
    pos = access.approve(env.ctx(), pos.id, approver="supply-chain-data@example.com")
    try:
        # the project as it is: both grants shown beside the spec's, neither stale
        shown = env.ddp("validate", "--no-dbt", "--json")
        report = json.loads(shown.stdout)
        stored = {g["source"]: g for g in report["access_grants"]}
        assert stored[scorecard.id]["product"] == "supplier_performance"
        assert stored[pos.id]["ports"] == ["purchase_orders"]
        assert not [p for p in report["problems"] if p["field"].startswith("access grant")]
        text = env.ddp("validate", "--no-dbt")
        assert "approved access grant(s)" in text.stdout + text.stderr

        # a copy where supplier_performance is gone and inventory dropped purchase_orders
        project = copy_project(tmp_path / "project")
        shutil.rmtree(project / "ddp_assets/defs/supply_chain/supplier_performance")
        spec_file = project / "ddp_assets/defs/supply_chain/inventory/defs.yaml"
        spec = yaml.safe_load(spec_file.read_text())
        ports = spec["attributes"]["output_ports"]
        spec["attributes"]["output_ports"] = [p for p in ports if p["name"] != "purchase_orders"]
        for grant in spec["attributes"]["policies"]["grants"]:  # the spec's grants follow
            grant["ports"] = [p for p in grant.get("ports", ["*"]) if p != "purchase_orders"]
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        copy_env = {**env.env, "DDP_PROJECT_ROOT": str(project), "PYTHONPATH": str(project)}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ddp"), "validate", "--no-dbt", "--json"],
            env=copy_env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        problems = {
            p["field"]: p
            for p in json.loads(done.stdout)["problems"]
            if p["field"].startswith("access grant")
        }
        gone = problems[f"access grant {scorecard.id}"]
        assert gone["severity"] == "warning" and gone["file"].endswith("access.sqlite")
        assert "product 'supplier_performance' no longer exists" in gone["message"]
        assert f"ddp access revoke {scorecard.id}" in gone["hint"]
        dropped = problems[f"access grant {pos.id}"]
        assert dropped["severity"] == "warning"
        assert dropped["file"] == "ddp_assets/defs/supply_chain/inventory/defs.yaml"
        assert dropped["line"] and "inventory has no port purchase_orders" in dropped["message"]
    finally:
        access.revoke(env.ctx(), scorecard.id, by="ar-other", reason="validate check done")
        access.revoke(env.ctx(), pos.id, by="ar-other", reason="validate check done")


# -- refusals that need no warehouse (review findings) ------------------------------------


@pytest.fixture(scope="module")
def desk(demo_env: Any) -> access.AccessContext:
    """The access steps on the project's store, with no product built and no server: enough
    for the refusals, which come before anything is granted."""
    store = Store.open(demo_env.paths)
    tokens.issue(store, "ar-desk", [])
    registry = Registry.load(demo_env.paths.defs_dir, demo_env.paths.root)
    return access.AccessContext(demo_env.paths, registry, store)


@pytest.mark.parametrize("until", ["9999-12-31", "9999-12-31T23:59:59-01:00"])
def test_until_beyond_the_calendar_is_a_located_refusal(
    desk: access.AccessContext, until: str
) -> None:
    with pytest.raises(access.AccessError) as caught:
        access.parse_until(until)
    assert caught.value.status == 400
    assert f"--until {until!r} is not a date or a timestamp" in caught.value.message
    assert caught.value.hint and "2027-01-31" in caught.value.hint
    with pytest.raises(access.AccessError, match="is not a date or a timestamp"):
        access.request_access(
            desk, "customers", [], consumer="ar-desk", purpose="churn", until=until
        )


@pytest.mark.parametrize("rows", ["country:in:", "country:in:DE,,FR", "country:eq:"])
def test_an_empty_row_filter_value_is_refused(desk: access.AccessContext, rows: str) -> None:
    filed = access.request_access(desk, "customers", [], consumer="ar-desk", purpose="churn")
    with pytest.raises(access.AccessError) as caught:
        access.approve(desk, filed.id, approver=OWNER, rows=[rows])
    assert caught.value.status == 400
    assert "has an empty value" in caught.value.message, caught.value.message
    assert caught.value.hint and "value" in caught.value.hint
    assert access.get_request(desk.store, filed.id).status == "pending"  # nothing granted


def test_the_self_approval_hint_names_only_the_other_owners(desk: access.AccessContext) -> None:
    owners = desk.registry.products["customers"].spec.owners
    assert OWNER in owners and len(owners) > 1
    filed = access.request_access(
        desk, "customers", [], consumer="ar-desk", purpose="churn", requested_by=OWNER
    )
    with pytest.raises(access.AccessError) as caught:
        access.approve(desk, filed.id, approver=OWNER)
    assert caught.value.status == 403 and "own request" in caught.value.message
    hint = caught.value.hint or ""
    assert OWNER not in hint, hint
    assert all(o in hint for o in owners if o != OWNER), hint

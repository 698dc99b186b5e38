"""Depots: declarations, secret references, redaction, and ``ddp depot list|test``.

Real parts: the depot files are read by ddp's loader, ``ddp`` runs as a subprocess, and the
wrong password is refused by a real PostgreSQL server (the test server, with password
authentication for one role).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddp_assets.depots.connect import DepotError, check_connection, source_dataset
from ddp_assets.depots.loader import load_depots
from ddp_assets.depots.secrets import MASK, Resolver, SecretError, redact
from ddp_assets.settings import ProjectPaths

DDP = str(Path(sys.executable).parent / "ddp")
SECRET = "s3cr3t-Value-9z"


def project(tmp_path: Path, **depots: str) -> ProjectPaths:
    (tmp_path / "depots").mkdir(exist_ok=True)
    for name, text in depots.items():
        (tmp_path / "depots" / f"{name}.yaml").write_text(text)
    return ProjectPaths(tmp_path)


def ddp(paths: ProjectPaths, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DDP_PROJECT_ROOT": str(paths.root),
        "DDP_DATA_DIR": str(paths.root / "data"),
        **env,
    }
    return subprocess.run(
        [DDP, *args], capture_output=True, text=True, env=environment, timeout=120
    )


def test_a_literal_password_is_a_located_error_that_never_shows_it(tmp_path: Path) -> None:
    paths = project(
        tmp_path,
        crm=f"kind: postgres\nhost: db\ndatabase: crm\nusername: u\npassword: {SECRET}\n",
        lake=f"kind: sql\nurl: postgresql://u:{SECRET}@db/crm\n",
    )
    found = load_depots(paths)
    assert not found.depots
    by_file = {p.file: p for p in found.problems}
    crm = by_file["depots/crm.yaml"]
    assert (crm.line, crm.field) == (5, "password")
    assert "env:" in (crm.hint or "")
    lake = by_file["depots/lake.yaml"]
    assert (lake.line, lake.field) == (2, "url")
    result = ddp(paths, "depot", "list")
    assert result.returncode == 1
    assert "depots/crm.yaml:5" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_kind_and_field_have_hints(tmp_path: Path) -> None:
    paths = project(
        tmp_path,
        a="kind: postgress\n",
        b="kind: rest_api\nbase_url: https://api.example.com/\n"
        "auth:\n  type: bearer\n  tokn: env:T\n",
    )
    problems = {(p.file, p.line, p.field): p for p in load_depots(paths).problems}
    assert "did you mean 'postgres'" in (problems[("depots/a.yaml", 1, "kind")].hint or "")
    unknown = problems[("depots/b.yaml", 5, "auth.tokn")]
    assert "did you mean 'token'" in (unknown.hint or "")


def test_secret_references_resolve_and_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPOT_TEST_SECRET", SECRET)
    (tmp_path / "token.txt").write_text("file-secret-123\n")
    resolver = Resolver(tmp_path)
    secret = resolver.resolve("env:DEPOT_TEST_SECRET")
    assert secret.reveal() == SECRET
    assert str(secret) == MASK and SECRET not in repr(secret)
    assert resolver.resolve("file:token.txt").reveal() == "file-secret-123"
    # Dagster's spelling of an environment variable in component YAML is the same reference
    assert resolver.resolve("{{ env.DEPOT_TEST_SECRET }}").reveal() == SECRET
    assert redact(f"login with {SECRET} failed") == f"login with {MASK} failed"
    assert redact("postgresql://bob:other-pass@h/db") == f"postgresql://bob:{MASK}@h/db"
    with pytest.raises(SecretError, match="DEPOT_TEST_UNSET is not set"):
        resolver.resolve("env:DEPOT_TEST_UNSET")
    with pytest.raises(SecretError, match="cannot be read"):
        resolver.resolve("file:missing.txt")


def test_list_shows_targets_without_credentials(tmp_path: Path) -> None:
    paths = project(
        tmp_path,
        crm="kind: postgres\nhost: db.internal\nport: 6543\ndatabase: crm\n"
        "username: reader\npassword: env:CRM_PASSWORD\n",
        api="kind: rest_api\nbase_url: https://api.example.com/v2/\n"
        "auth:\n  type: bearer\n  token: file:/run/secrets/api\n",
        lake="kind: filesystem\nbucket_url: s3://exports/crm\nendpoint_url: http://minio:9000\n"
        "access_key_id: env:K\nsecret_access_key: env:S\n",
    )
    result = ddp(paths, "depot", "list", "--json", CRM_PASSWORD=SECRET)
    assert result.returncode == 0, result.stderr
    rows = {d["name"]: d for d in json.loads(result.stdout)["depots"]}
    assert rows["crm"]["target"] == "postgres://db.internal:6543"
    assert rows["api"]["target"] == "https://api.example.com"
    assert rows["lake"]["target"] == "s3://exports"
    assert SECRET not in result.stdout
    found = load_depots(paths)
    assert source_dataset(found.depots["crm"], paths, "customers") == (
        "postgres://db.internal:6543",
        "crm.public.customers",
    )
    assert source_dataset(found.depots["lake"], paths, "*.parquet") == (
        "s3://exports",
        "crm/*.parquet",
    )


def test_test_connects_to_a_sqlite_depot(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "crm.sqlite") as connection:
        connection.execute("create table customers (id integer)")
    paths = project(tmp_path, lite="kind: sql\nurl: sqlite:///{data_dir}/crm.sqlite\n")
    result = ddp(paths, "depot", "test", "lite", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["detail"] == "1 table(s)"
    missing = ddp(paths, "depot", "test", "lit")
    assert missing.returncode == 1 and "did you mean 'lite'" in missing.stderr


@pytest.fixture
def password_role(postgres_server) -> tuple[str, str]:
    """A role that must log in with a password (the test server trusts everyone else)."""
    import psycopg

    role, password = "depot_reader", "right-password-42"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as connection:
        exists = connection.execute("select 1 from pg_roles where rolname = %s", (role,))
        if not exists.fetchone():
            connection.execute(f"create role {role} login password '{password}'")
        hba = postgres_server.data_dir / "pg_hba.conf"
        rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        text = hba.read_text()
        if rule not in text:
            hba.write_text(rule + text)
            connection.execute("select pg_reload_conf()")
    return role, password


def test_wrong_password_names_the_depot_file_and_line_without_the_secret(
    tmp_path: Path, postgres_server, password_role: tuple[str, str]
) -> None:
    role, password = password_role
    wrong = "wrong-Password-77"
    paths = project(
        tmp_path,
        crm=f"kind: postgres\nhost: {postgres_server.host}\nport: {postgres_server.port}\n"
        f"database: postgres\nusername: {role}\npassword: env:CRM_PASSWORD\n",
    )
    failed = ddp(paths, "depot", "test", "crm", CRM_PASSWORD=wrong)
    assert failed.returncode == 1
    assert "depots/crm.yaml:6: error: password:" in failed.stderr, failed.stderr
    assert "password authentication failed" in failed.stderr
    assert wrong not in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    os.environ["CRM_PASSWORD"] = wrong
    try:
        with pytest.raises(DepotError) as raised:
            check_connection(load_depots(paths).depots["crm"], paths)
    finally:
        del os.environ["CRM_PASSWORD"]
    assert wrong not in str(raised.value)
    ok = ddp(paths, "depot", "test", "crm", CRM_PASSWORD=password)
    assert ok.returncode == 0, ok.stderr
    assert password not in ok.stdout + ok.stderr


def test_depot_json_schema_takes_references_only(tmp_path: Path) -> None:
    import jsonschema

    result = ddp(project(tmp_path), "depot", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    depot = {"kind": "postgres", "host": "h", "database": "d", "username": "u"}
    jsonschema.validate({**depot, "password": "env:CRM_PASSWORD"}, schema)
    jsonschema.validate({**depot, "password": "{{ env.CRM_PASSWORD }}"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**depot, "password": SECRET}, schema)


def test_validate_names_an_unknown_depot_at_the_port(tmp_path: Path) -> None:
    from ddp_assets.starter import init_project

    root = init_project(tmp_path / "vproj").root
    (root / "depots").mkdir()
    (root / "depots" / "crm.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/c.db\n")
    folder = root / "vproj" / "defs" / "crm" / "accounts"
    (folder / "models").mkdir(parents=True)
    (folder / "contracts").mkdir()
    (folder / "defs.yaml").write_text(
        "type: ddp_assets.components.DataProduct\nattributes:\n  id: accounts\n"
        "  name: Accounts\n  domain: crm\n  version: 1.0.0\n  owners: [a@example.com]\n"
        "  description:\n    purpose: test\n  input_ports:\n    - name: raw_accounts\n"
        "      type: depot\n      depot: crn\n      table: accounts\n"
        "    - name: raw_api\n      type: depot\n      depot: crm\n      resource: things\n"
        "  output_ports:\n    - name: accounts\n      model: accounts\n"
        "      contract: contracts/accounts.odcs.yaml\n"
    )
    (folder / "models" / "accounts.sql").write_text(
        "select * from {{ source('accounts', 'raw_accounts') }}\n"
    )
    paths = ProjectPaths(root)
    result = ddp(paths, "validate", "--no-dbt", "--json")
    assert result.returncode == 1
    problems = {p["field"]: p for p in json.loads(result.stdout)["problems"]}
    unknown = problems["input_ports[0].depot"]
    assert unknown["line"] == 13 and "did you mean 'crm'" in unknown["hint"]
    wrong_kind = problems["input_ports[1].resource"]
    assert wrong_kind["line"] == 18 and "depot 'crm' is sql" in wrong_kind["message"]


ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_reads_the_helpdesk_database_through_a_depot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's support_tickets product: `ddp demo` writes the helpdesk's SQLite database,
    the `helpdesk` depot reads it, and a second load takes only the changed and new tickets."""
    import sqlite3

    import duckdb

    from ddp_assets.demo.generator import generate_landing_zone
    from ddp_assets.demo.helpdesk import HELPDESK_DB, ticket_count
    from ddp_assets.depots.pipeline import load_port
    from ddp_assets.spec.model import DepotInputPort
    from ddp_assets.spec.registry import Registry
    from ddp_assets.starter import DEMO_DEPOTS

    # the repository's depots/ is what `ddp init --demo` writes
    shipped = {p.name: p.read_text() for p in DEMO_DEPOTS.glob("*.yaml")}
    assert shipped == {p.name: p.read_text() for p in (ROOT / "depots").glob("*.yaml")}
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DDP_DBT_TARGET", raising=False)
    counts = generate_landing_zone(tmp_path / "landing", scale=1_000)
    paths = ProjectPaths(ROOT)
    result = ddp(paths, "depot", "test", "helpdesk", "--json", DDP_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["detail"] == "1 table(s)"

    product = Registry.load(paths.defs_dir, paths.root).products["support_tickets"]
    [port] = [p for p in product.spec.input_ports if isinstance(p, DepotInputPort)]
    depot = load_depots(paths).depots[port.depot]
    first = load_port(product.id, port, depot, paths, contract_columns=["ticket_id", "status"])
    assert first.rows == ticket_count(1_000) and first.cursor
    database = (tmp_path / "landing" / HELPDESK_DB).absolute()
    assert first.source == (f"sqlite://{database}", "main.tickets")  # like duckdb://<file>
    with sqlite3.connect(tmp_path / "landing" / HELPDESK_DB) as connection:
        connection.execute(
            "update tickets set status = 'closed', updated_at = '2026-01-05 00:00:00.000000' "
            "where ticket_id = 1"
        )
        connection.execute(
            "insert into tickets values (100000, 1, 'chat', 'low', 'open', "
            "'2026-01-06 00:00:00.000000', '2026-01-06 00:00:00.000000')"
        )
    second = load_port(product.id, port, depot, paths, contract_columns=["ticket_id", "status"])
    assert second.rows == 2 and second.cursor and second.cursor.startswith("2026-01-06")
    with duckdb.connect(str(paths.warehouse_path), read_only=True) as connection:
        [(rows, customers, status)] = connection.execute(
            "select count(*), max(customer_id), "
            "max(case when ticket_id = 1 then status end) from support_tickets.raw_tickets"
        ).fetchall()
    assert rows == ticket_count(1_000) + 1 and status == "closed"
    assert customers <= counts["customers/customers.csv"]  # every ticket's customer exists


def test_the_code_location_loads_without_dlt_or_sqlalchemy(tmp_path: Path) -> None:
    """The demo has a depot port, yet loading its code location reads only the depot files:
    dlt and the database drivers are imported by the asset's compute function."""
    script = (
        "import sys\n"
        "from ddp_assets.runtime.instance import definitions\n"
        "from ddp_assets.settings import ProjectPaths\n"
        "graph = definitions(ProjectPaths.discover()).resolve_asset_graph()\n"
        "assert graph.has(__import__('dagster').AssetKey(['support_tickets', 'raw_tickets']))\n"
        "print(sorted(m for m in ('dlt', 'sqlalchemy', 's3fs', 'httpx') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DDP_PROJECT_ROOT": str(ROOT), "DDP_DATA_DIR": str(tmp_path)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = done.stdout.strip().splitlines()[-1]
    assert "dlt" not in loaded and "sqlalchemy" not in loaded and "s3fs" not in loaded, loaded


def test_odps_names_a_depot_port_with_its_input_contract() -> None:
    from ddp_assets.export.odps import to_odps
    from ddp_assets.spec.registry import Registry

    registry = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    document = to_odps(registry.products["support_tickets"], registry)
    [port] = document["inputPorts"]
    assert port["name"] == "raw_tickets"
    assert port["contractId"] == "urn:ddp:support:support_tickets:raw_tickets"
    properties = {p["property"]: p["value"] for p in port["customProperties"]}
    assert (properties["type"], properties["depot"], properties["source"]) == (
        "depot",
        "helpdesk",
        "tickets",
    )

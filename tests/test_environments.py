"""Environments (issue 21): the demo project built in prod, then environments beside it in the
same DuckDB file. A preview (`ddp ci --env`) builds the changed product and its downstream in
its environment; prod's published relations do not change, the unchanged upstream products are
read through views (no table of the environment holds prod's rows), two environments do not
see each other, promote publishes into prod (refused when what an environment read changed
there), and drop removes one environment only. Real dbt, DuckDB and Dagster, through `ddp`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ddp_assets.starter import init_project

DDP = str(Path(sys.executable).parent / "ddp")
ORDERS_SQL = "shop/defs/sales/orders/models/orders.sql"
ORDERS_CONTRACT = "shop/defs/sales/orders/contracts/orders.odcs.yaml"
BUILT = ["customer_360", "orders", "supplier_performance"]  # orders and its downstream
UNCHANGED = ["customers", "inventory", "support_tickets", "usage_events", "usage_metrics"]


@dataclass(frozen=True)
class Project:
    root: Path
    home: Path

    @property
    def warehouse(self) -> Path:
        return self.home / "data" / "warehouse.duckdb"

    def env(self) -> dict[str, str]:
        skip = ("DDP_PROJECT_ROOT", "DDP_CONTRACT_BASE", "GITHUB_BASE_REF", "DDP_ENV")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        return {
            **env,
            "DDP_DATA_DIR": str(self.home / "data"),
            "DAGSTER_HOME": str(self.home / "dagster"),
        }

    def ddp(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DDP, *args], cwd=self.root, env=self.env(), capture_output=True, text=True,
            check=False, timeout=900,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def git(self, *args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
            cwd=self.root, capture_output=True, text=True, check=True,
        )  # fmt: skip

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(sql).fetchall()


def _relations(project: Project, schemas: list[str]) -> list[tuple[str, str, str]]:
    listed = ", ".join(f"'{s}'" for s in schemas)
    return [
        (str(s), str(t), str(k))
        for s, t, k in project.query(
            "select table_schema, table_name, table_type from information_schema.tables "
            f"where table_schema in ({listed}) order by 1, 2"
        )
    ]


def _checksum(project: Project, schema: str, table: str) -> tuple[int, int]:
    [(rows, digest)] = project.query(
        f'select count(*), coalesce(sum(hash(t)::hugeint), 0) from "{schema}"."{table}" as t'
    )
    return int(rows), int(digest)


def _prod_snapshot(project: Project, products: list[str]) -> dict[tuple[str, str], Any]:
    """Every relation of prod's product and staging schemas, with its content; the ledger."""
    schemas = [*products, *(f"{p}__staging" for p in products)]
    found: dict[tuple[str, str], Any] = {
        (s, t): (k, _checksum(project, s, t)) for s, t, k in _relations(project, schemas)
    }
    found["_ddp", "published_versions"] = project.query(
        "select product, port, version, checksum from _ddp.published_versions order by all"
    )
    return found


def _run_tags(home: Path, run_ids: list[str]) -> list[str | None]:
    """The ``ddp/env`` tag of each run, read from an environment's own Dagster instance."""
    import dagster as dg

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)  # ddp's dagster.yaml finds its storage through it
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
            return [run.tags.get("ddp/env") if run else None for run in runs]
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def _envs(project: Project) -> dict[str, dict[str, Any]]:
    listed = json.loads(project.ddp("env", "list", "--json").stdout)
    return {e["name"]: e for e in listed}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The demo project in git (main), its landing zone, every product built in prod."""
    base = tmp_path_factory.mktemp("environments")
    project = Project(init_project(base / "shop", demo=True).root, base / "home")
    (project.home / "data").mkdir(parents=True)
    project.git("init", "-q", "-b", "main")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "the demo project")
    project.ddp("demo", "--scale", "2000")
    project.ddp("materialize", "--all")
    return project


def test_environment_names_and_prod_are_guarded(built: Project) -> None:
    bad = built.ddp("--env", "Bad-Name", "list", ok=False)
    assert bad.returncode == 1
    assert "DDP_ENV / --env" in bad.stderr and "hint:" in bad.stderr
    for command in (("env", "create", "prod"), ("env", "drop", "prod"), ("promote", "prod")):
        refused = built.ddp(*command, ok=False)
        assert refused.returncode == 1 and "'prod'" in refused.stderr, refused.stderr
    assert built.ddp("env", "drop", "nosuch", ok=False).returncode == 1
    preview_in_prod = built.ddp("ci", "--build", ok=False)
    assert preview_in_prod.returncode == 1 and "never builds in prod" in preview_in_prod.stderr


def test_preview_promote_and_drop(built: Project) -> None:
    products = [*BUILT, *UNCHANGED]
    before = _prod_snapshot(built, products)
    prod_orders = _checksum(built, "orders", "orders")

    created = json.loads(built.ddp("env", "create", "pr_a", "--json").stdout)
    assert created["based_on"] == "prod" and not created["missing"]
    assert {p["product"] for p in created["pointers"]} == set(products)
    built.ddp("env", "create", "pr_b")
    assert built.ddp("env", "create", "pr_a", ok=False).returncode == 1  # exists already

    # a change to orders' SQL, previewed in pr_a: orders and its downstream are built there
    built.git("checkout", "-q", "-b", "feature")
    path = built.root / ORDERS_SQL
    text = path.read_text(encoding="utf-8")
    old = "coalesce(lines.line_count, 0) as line_count"
    assert text.count(old) == 1
    path.write_text(text.replace(old, "coalesce(lines.line_count, 0) + 1 as line_count"))
    out = built.home / "ci.json"
    built.ddp("ci", "--env", "pr_a", "--format", "json", "--output", str(out))
    report = json.loads(out.read_text(encoding="utf-8"))
    preview = report["preview"]
    assert report["ok"] and preview["succeeded"] and preview["zero_copies"]
    assert preview["env"] == "pr_a" and not preview["created"]
    assert preview["built"] == BUILT
    assert "customers.customers" in preview["read_from_base"]
    assert not any(p.split(".")[0] in BUILT for p in preview["read_from_base"])

    # prod: not one relation, row or ledger entry changed
    assert _prod_snapshot(built, products) == before

    # pr_a: the unchanged products are views only (over prod's versions: prod's rows, no copy)
    unchanged_schemas = [f"pr_a__{p}" for p in UNCHANGED] + [
        f"pr_a__{p}__staging" for p in UNCHANGED
    ]
    relations = _relations(built, unchanged_schemas)
    assert relations and {kind for _, _, kind in relations} == {"VIEW"}
    assert _checksum(built, "pr_a__customers", "customers") == _checksum(
        built, "customers", "customers"
    )
    # every table of pr_a is one of the products it built (or its own ledger)
    everything = [s for (s,) in built.query("select schema_name from information_schema.schemata")]
    mine = [s for s in everything if s.startswith("pr_a__") or s == "_ddp__pr_a"]
    tables = {s for s, _, kind in _relations(built, mine) if kind == "BASE TABLE"}
    allowed = {f"pr_a__{p}" for p in BUILT} | {f"pr_a__{p}__staging" for p in BUILT}
    assert tables <= allowed | {"_ddp__pr_a"}
    # pr_a's orders are the changed ones; prod's are not
    env_lines = built.query("select sum(line_count), count(*) from pr_a__orders.orders")[0]
    prod_lines = built.query("select sum(line_count), count(*) from orders.orders")[0]
    assert env_lines[1] == prod_lines[1] and env_lines[0] == prod_lines[0] + prod_lines[1]
    # pr_b sees prod's orders, not pr_a's
    assert _checksum(built, "pr_b__orders", "orders") == prod_orders
    envs = _envs(built)
    assert envs["pr_a"]["built"] == BUILT and envs["pr_b"]["built"] == []
    assert (built.home / "dagster" / "envs" / "pr_a").is_dir()
    assert not (built.home / "dagster" / "envs" / "pr_b").exists()

    # promote pr_a into prod: its ports become prod's next versions
    promoted = json.loads(built.ddp("promote", "pr_a", "--json").stdout)
    assert {p["product"] for p in promoted} == set(BUILT)
    assert all(p["version"] == 2 for p in promoted)
    assert _checksum(built, "orders", "orders") == _checksum(built, "pr_a__orders", "orders")
    # pr_b read orders v1 at create: after the promote, its promote is refused
    done = json.loads(built.ddp("--env", "pr_b", "materialize", "customer_360", "--json").stdout)
    assert _run_tags(built.home / "dagster" / "envs" / "pr_b", done["runs"]) == [
        "pr_b" for _ in done["runs"]
    ]
    refused = built.ddp("promote", "pr_b", ok=False)
    assert refused.returncode == 1 and "orders.orders" in refused.stderr, refused.stderr
    assert "since `ddp env create`" in refused.stderr

    # drop pr_a: its schemas and instance go; pr_b and prod stay
    after_promote = _prod_snapshot(built, products)
    dropped = json.loads(built.ddp("env", "drop", "pr_a", "--json").stdout)
    assert "_ddp__pr_a" in dropped["schemas"] and "pr_a__orders" in dropped["schemas"]
    everything = [s for (s,) in built.query("select schema_name from information_schema.schemata")]
    assert not [s for s in everything if s.startswith("pr_a__") or s == "_ddp__pr_a"]
    assert "_ddp__pr_b" in everything and "pr_b__orders" in everything
    assert not (built.home / "dagster" / "envs" / "pr_a").exists()
    assert _prod_snapshot(built, products) == after_promote
    assert set(_envs(built)) == {"pr_b"}


def test_a_breaking_change_is_previewed_names_its_consumers_and_fails(built: Project) -> None:
    """The issue's pull request: a breaking contract change of orders is built in a preview
    with its downstream (which still reads the rest from prod), the report names the consumer
    it affects, and `ddp ci` exits non-zero; prod is not touched."""
    products = [*BUILT, *UNCHANGED]
    built.git("checkout", "-q", "-f", "-B", "breaking", "main")
    before = _prod_snapshot(built, products)
    path = built.root / ORDERS_CONTRACT
    text = path.read_text(encoding="utf-8")
    required = (
        "      - name: status\n        logicalType: string\n        physicalType: varchar\n"
        "        required: true\n"
    )
    assert text.count(required) == 1
    path.write_text(text.replace(required, required.replace("        required: true\n", "")))
    out = built.home / "ci-breaking.json"
    result = built.ddp("ci", "--env", "pr_c", "--format", "json", "--output", str(out), ok=False)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert not report["ok"] and report["breaking"] == ["orders.orders"]
    (port,) = report["contracts"]
    assert port["fails"] and port["affected_products"] == ["customer_360"]
    assert [(r["product"], r["affected"]) for r in port["readers"]] == [("customer_360", True)]
    preview = report["preview"]  # built all the same: the consumers' tests ran on it
    assert preview["env"] == "pr_c" and preview["created"] and preview["succeeded"]
    assert preview["built"] == BUILT and preview["zero_copies"]
    assert "customers.customers" in preview["read_from_base"]
    assert _prod_snapshot(built, products) == before
    built.ddp("env", "drop", "pr_c")
    built.git("checkout", "-q", "-f", "main")


# --- names and the report, without a build ------------------------------------------------------


def test_prod_names_are_unchanged_and_an_environment_prefixes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ddp_assets import naming
    from ddp_assets.settings import ProjectPaths, environment
    from ddp_assets.spec.errors import SpecErrors

    monkeypatch.delenv("DDP_ENV", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    paths = ProjectPaths(tmp_path)
    assert naming.current_env() == "prod" and environment() == "prod"
    assert naming.product_schema("orders") == "orders"
    assert naming.staging_schema("orders") == naming.version_schema("orders") == "orders__staging"
    assert naming.meta_schema() == naming.META_SCHEMA == "_ddp"
    assert naming.published_relation("orders", "orders") == ("orders", "orders")
    assert paths.dagster_home == tmp_path / "home"

    monkeypatch.setenv("DDP_ENV", "pr_42")
    assert naming.product_schema("orders") == "pr_42__orders"
    assert naming.staging_schema("orders") == "pr_42__orders__staging"
    assert naming.meta_schema() == "_ddp__pr_42"
    assert naming.staging_schema("orders", "prod") == "orders__staging"  # another env's names
    assert paths.dagster_home == tmp_path / "home" / "envs" / "pr_42"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "envs" / "pr_42"))  # as set
    assert paths.dagster_home == tmp_path / "home" / "envs" / "pr_42"
    assert paths.base_dagster_home == tmp_path / "home"
    assert naming.in_some_env("pr_42__orders__staging", "orders__staging")
    assert naming.in_some_env("orders__staging", "orders__staging")
    assert not naming.in_some_env("Bad__orders__staging", "orders__staging")

    for bad in ("Pr", "a__b", "a_", "1a", "x" * 32, "a-b", "pg_a"):
        monkeypatch.setenv("DDP_ENV", bad)
        with pytest.raises(SpecErrors) as raised:
            environment()
        assert raised.value.problems[0].field == "DDP_ENV / --env"
        assert raised.value.problems[0].hint


def test_the_report_says_what_the_preview_built_and_read() -> None:
    from ddp_assets.ci.changes import Base, Changes
    from ddp_assets.ci.report import CiReport, Preview

    preview = Preview("pr_1", "prod", True, ["orders"], ["customers.customers"])
    report = CiReport(Base("main", "0" * 40, "given"), {}, [], Changes([]), [], preview=preview)
    assert report.ok
    assert "built orders" in report.text() and "zero copies" in report.text()
    assert "### Preview" in report.markdown()
    assert report.to_dict()["preview"]["read_from_base"] == ["customers.customers"]
    preview.succeeded = False
    preview.errors = ["model 'orders' failed"]
    assert not report.ok and "preview in 'pr_1' failed" in report.summary()
    suites = {suite.name: suite for suite in report.junit()}
    assert suites["preview"].failures == 1


# --- PostgreSQL: the same layout in one database ------------------------------------------------

from tests.test_postgres_warehouse import PostgresDemo, pg_demo  # noqa: E402, F401 (a fixture)


@pytest.mark.integration
@pytest.mark.slow
def test_an_environment_in_postgres(pg_demo: PostgresDemo) -> None:  # noqa: F811
    assert pg_demo.outcome["success"], pg_demo.outcome["errors"]

    def ddp(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [DDP, *args], cwd=pg_demo.env["DDP_PROJECT_ROOT"], env=pg_demo.env,
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
        return done

    def checksums(connection: Any, relations: list[tuple[str, str]]) -> dict[Any, Any]:
        return {
            r: connection.execute(
                f"select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                f'from "{r[0]}"."{r[1]}" as t'
            ).fetchone()
            for r in relations
        }

    watched = [
        ("customers", "customers"),
        ("orders", "orders"),
        ("customer_360", "customer_profile"),
    ]
    with pg_demo.connect() as connection:
        before = checksums(connection, watched)
    ddp("env", "create", "review")
    ddp("--env", "review", "materialize", "customer_360")
    with pg_demo.connect() as connection:
        assert checksums(connection, watched) == before  # prod unchanged
        kinds = connection.execute(
            "select table_schema, table_type from information_schema.tables "
            "where table_schema in ('review__customers', 'review__orders', 'review__usage_metrics')"
        ).fetchall()
        assert kinds and {kind for _, kind in kinds} == {"VIEW"}  # read from prod, no copy
        built = checksums(connection, [("review__customer_360", "customer_profile")])
        assert built[("review__customer_360", "customer_profile")] == before[watched[2]]
        version = connection.execute(
            "select version from _ddp__review.published_versions where port = 'customer_profile'"
        ).fetchall()
        assert version == [(1,)]
    ddp("env", "drop", "review")
    with pg_demo.connect() as connection:
        left = connection.execute(
            "select schema_name from information_schema.schemata "
            "where schema_name like 'review\\_\\_%' or schema_name = '_ddp__review'"
        ).fetchall()
        assert left == []
        assert checksums(connection, watched) == before

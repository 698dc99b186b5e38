"""`ddp ci` in a git repository made from the demo project (`ddp init --demo`): an unchanged
branch passes, a breaking contract change fails with the readers it affects named, a SQL-only
change lists its product and everything downstream, a changed dbt macro its users."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from junitparser import Failure, JUnitXml

from ddp_assets.starter import init_project

DDP = str(Path(sys.executable).parent / "ddp")
ORDERS_CONTRACT = "shop/defs/sales/orders/contracts/orders.odcs.yaml"
CUSTOMERS_SQL = "shop/defs/sales/customers/models/customers.sql"


@dataclass(frozen=True)
class Repo:
    root: Path
    home: Path

    def env(self) -> dict[str, str]:
        skip = ("DDP_PROJECT_ROOT", "DDP_CONTRACT_BASE", "GITHUB_BASE_REF")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        data = self.home / "data"
        return {**env, "DDP_DATA_DIR": str(data), "DAGSTER_HOME": str(self.home / "dagster")}

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def ddp(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DDP, *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    def ci_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.ddp("ci", "--format", "json", *args)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, json.loads(result.stdout)

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} not once in {relative}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The demo project in a git repository, one commit on main, dbt prepared once."""
    base = tmp_path_factory.mktemp("ci")
    repo = Repo(init_project(base / "shop", demo=True).root, base / "home")
    (repo.home / "data").mkdir(parents=True)
    repo.git("init", "-q", "-b", "main")
    repo.commit("the demo project")
    prepared = repo.ddp("validate")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    return repo


@pytest.fixture
def repo(pristine: Repo, tmp_path: Path) -> Repo:
    """A copy of the pristine repository (its prepared dbt target too) on a new branch."""
    copy = Repo(tmp_path / "shop", tmp_path / "home")
    shutil.copytree(pristine.root, copy.root, symlinks=True)
    (copy.home / "data").mkdir(parents=True)
    copy.git("checkout", "-q", "-b", "feature")
    return copy


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def _specs(root: Path) -> dict[str, dict[str, Any]]:
    """Product id → the attributes of its spec, read from the demo's defs.yaml files."""
    specs = {}
    for path in (root / "shop" / "defs").glob("*/*/defs.yaml"):
        if path.parts[-3] == "_platform":
            continue
        attributes = yaml.safe_load(path.read_text())["attributes"]
        specs[attributes["id"]] = attributes
    return specs


def _downstream(root: Path, product: str) -> set[str]:
    """Every product reading ``product``, transitively, from the specs' input ports."""
    reads: dict[str, set[str]] = {}
    for attributes in _specs(root).values():
        for port in attributes.get("input_ports") or []:
            if port.get("type") == "product":
                reads.setdefault(port["product"].split(".")[0], set()).add(attributes["id"])
    found: set[str] = set()
    todo = [product]
    while todo:
        for reader in reads.get(todo.pop(), set()) - found:
            found.add(reader)
            todo.append(reader)
    return found


def test_an_unchanged_branch_passes(repo: Repo) -> None:
    text = repo.ddp("ci")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "no changes since HEAD" in text.stdout
    code, report = repo.ci_json()
    assert code == 0 and report["ok"]
    assert report["base"]["commit"] == repo.git("rev-parse", "main").strip()
    assert report["changes"]["files"] == [] and report["contracts"] == []
    assert report["validate"]["valid"]
    assert sorted(report["validate"]["products"]) == sorted(_specs(repo.root))


def test_a_breaking_change_fails_and_names_the_consumers(repo: Repo, tmp_path: Path) -> None:
    # channel: required → nullable; no model of customer_360 (orders.orders' reader) uses it
    repo.edit(
        ORDERS_CONTRACT,
        "      - name: channel\n        logicalType: string\n        physicalType: varchar\n"
        "        required: true\n",
        "      - name: channel\n        logicalType: string\n        physicalType: varchar\n",
    )
    repo.commit("orders: channel may be null")
    code, report = repo.ci_json()
    assert code == 1 and not report["ok"]
    assert report["base"]["commit"] == repo.git("merge-base", "HEAD", "main").strip()
    assert report["breaking"] == ["orders.orders"]
    port = report["contracts"][0]
    assert [(c["column"], c["kind"]) for c in port["changes"]] == [("channel", "made_nullable")]
    assert port["fails"] and port["major_bump_missing"]
    (reader,) = port["readers"]
    assert (reader["product"], reader["input_port"], reader["affected"]) == (
        "customer_360",
        "orders",
        False,
    )
    assert port["affected_products"] == []
    assert [p["id"] for p in report["changes"]["products"]] == ["orders"]

    # status too, which customer_profile.sql filters on: customer_360 is affected
    repo.edit(
        ORDERS_CONTRACT,
        "      - name: status\n        logicalType: string\n        physicalType: varchar\n"
        "        required: true\n",
        "      - name: status\n        logicalType: string\n        physicalType: varchar\n",
    )
    junit, markdown = tmp_path / "reports" / "ddp-ci.xml", tmp_path / "reports" / "ddp-ci.md"
    result = repo.ddp(
        "ci", "--format", "markdown", "--output", str(markdown), "--junit", str(junit)
    )
    assert result.returncode == 1
    assert "FAILED: 1 breaking contract change(s)" in result.stderr  # the summary line
    comment = markdown.read_text(encoding="utf-8")
    assert comment.startswith("## ❌")
    assert "### Breaking contract changes" in comment
    assert "| `orders.status` | required → nullable |" in comment
    reader_row = "| `customer_360.orders` | **yes** | shop/defs/marketing/customer_360/models/"
    assert reader_row + "customer_profile.sql uses status |" in comment
    assert "**Fails:** breaking change without a major version bump; affects customer_360" in (
        comment
    )

    ET.parse(junit)  # well-formed XML
    xml = JUnitXml.fromfile(str(junit))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"validate", "contracts", "changes"}
    assert xml.failures == 1 and xml.errors == 0
    (case,) = list(suites["contracts"])
    assert case.name == "orders.orders"
    (failure,) = case.result
    assert isinstance(failure, Failure) and "customer_360" in (failure.message or "")
    assert "orders.status: required → nullable" in (failure.text or "")
    # a test per product and one for the project's other files
    assert suites["validate"].tests == len(_specs(repo.root)) + 1
    assert suites["validate"].failures == 0


def test_allow_major_accepts_a_breaking_change_with_a_new_major_version(repo: Repo) -> None:
    contract = "shop/defs/marketing/customer_360/contracts/churn_scores.odcs.yaml"
    repo.edit(contract, "version: 1.0.0\n", "version: 2.0.0\n")
    repo.edit(
        contract,
        "        physicalType: double\n        required: true\n",
        "        physicalType: double\n",
    )
    code, report = repo.ci_json("--no-dbt")
    assert code == 1
    (port,) = report["contracts"]
    assert port["fails"] and not port["major_bump_missing"] and port["readers"] == []
    assert "--allow-major accepts it" in repo.ddp("ci", "--no-dbt").stdout
    code, report = repo.ci_json("--no-dbt", "--allow-major")
    assert code == 0 and report["ok"]
    assert report["breaking"] == ["customer_360.churn_scores"]
    assert not report["contracts"][0]["fails"]


def test_a_removed_output_port_affects_every_reader(repo: Repo) -> None:
    repo.edit(
        "shop/defs/sales/orders/defs.yaml",
        "    - name: order_lines\n      model: order_lines\n"
        "      contract: contracts/order_lines.odcs.yaml\n"
        "      description: One row per order line.\n",
        "",
    )
    code, report = repo.ci_json("--no-dbt")
    assert code == 1 and not report["validate"]["valid"]  # its reader's input port is unknown
    (port,) = report["contracts"]
    assert (port["port"], port["changes"][0]["kind"], port["fails"]) == (
        "order_lines",
        "port_removed",
        True,
    )
    readers = {r["product"]: r["affected"] for r in port["readers"]}
    assert readers == {"supplier_performance": True}
    assert port["affected_products"] == ["supplier_performance"]
    # ddp ci's validation is ddp validate's (its breaking-change pass aside: ci does that)
    validate = subprocess.run(
        [DDP, "validate", "--json", "--no-dbt"],
        cwd=repo.root,
        env={**repo.env(), "DDP_CONTRACT_BASE": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 1
    assert json.loads(validate.stdout)["problems"] == report["validate"]["problems"] != []


def test_a_sql_only_change_lists_the_product_and_its_downstream(repo: Repo) -> None:
    _append(repo.root / CUSTOMERS_SQL, "-- reviewed\n")
    code, report = repo.ci_json("--no-dbt")  # uncommitted: the work tree counts
    assert code == 0, report
    assert report["changes"]["products"] == [{"id": "customers", "why": [CUSTOMERS_SQL]}]
    downstream = {d["id"] for d in report["changes"]["downstream"]}
    assert downstream == _downstream(repo.root, "customers") and downstream
    assert report["contracts"] == [] and report["breaking"] == []


def test_a_changed_macro_changes_the_products_using_it(repo: Repo) -> None:
    macro = repo.root / "dbt_project" / "macros" / "ci_note.sql"
    macro.write_text("{% macro ci_note() %}/* reviewed */{% endmacro %}\n")
    sql = repo.root / CUSTOMERS_SQL
    sql.write_text(sql.read_text() + "-- {{ ci_note() }}\n")
    repo.commit("customers: a note from a macro")
    repo.git("checkout", "-q", "-b", "macro-change")  # off feature: its merge base
    macro.write_text("{% macro ci_note() %}/* reviewed twice */{% endmacro %}\n")
    code, report = repo.ci_json("--base", "feature")
    assert code == 0, report
    changed = {p["id"]: p["why"] for p in report["changes"]["products"]}
    assert changed == {"customers": ["macro dbt_project/macros/ci_note.sql"]}
    downstream = {d["id"] for d in report["changes"]["downstream"]}
    assert downstream == _downstream(repo.root, "customers")
    assert report["changes"]["other_files"] == []


def test_a_push_to_main_compares_with_its_parent(repo: Repo) -> None:
    repo.git("checkout", "-q", "main")
    _append(repo.root / CUSTOMERS_SQL, "-- reviewed\n")
    repo.commit("customers: reviewed")
    code, report = repo.ci_json("--no-dbt")
    assert code == 0
    assert report["base"]["ref"] == "HEAD~"
    assert report["base"]["commit"] == repo.git("rev-parse", "HEAD~").strip()
    assert [p["id"] for p in report["changes"]["products"]] == ["customers"]


def test_an_unknown_base_is_a_clean_error(repo: Repo) -> None:
    result = repo.ddp("ci", "--base", "no-such-branch")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "'no-such-branch' is not a commit of this repository" in result.stderr
    assert "fetch-depth: 0" in result.stderr


def test_init_writes_a_workflow_running_ddp_ci(pristine: Repo) -> None:
    workflow = yaml.safe_load((pristine.root / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["ci"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0  # the base commit must be there
    runs = [s.get("run", "") for s in steps]
    # the check on every push; with a shared warehouse, a pull request's preview runs instead
    # (its steps: tests/test_starter_workflows.py)
    checks = [r for r in runs if r.startswith("ddp ci")]
    (ci,) = [r for r in checks if "--env" not in r]
    assert "--format markdown --output ddp-ci.md --junit ddp-ci.xml" in ci
    (preview,) = [r for r in checks if r.startswith('ddp ci --env "$DDP_PREVIEW_ENV"')]
    assert "--output ddp-ci.md" in preview and "--junit ddp-ci.xml" in preview
    assert any("GITHUB_STEP_SUMMARY" in r for r in runs)
    assert any(r.startswith("gh pr comment") for r in runs)


def test_a_project_in_a_subfolder_of_its_repository(tmp_path: Path) -> None:
    """A monorepo: the ddp project is one folder of the git repository; the base's contracts
    are read from that folder."""
    top = tmp_path / "monorepo"
    root = init_project(top / "data" / "shop", demo=True).root
    repo = Repo(root, tmp_path / "home")
    (repo.home / "data").mkdir(parents=True)
    repo.git("init", "-q", "-b", "main", str(top))
    (top / "README.md").write_text("the company's repository\n")
    repo.commit("the demo project, one folder down")
    repo.git("checkout", "-q", "-b", "feature")
    repo.edit(
        ORDERS_CONTRACT,
        "      - name: status\n        logicalType: string\n        physicalType: varchar\n"
        "        required: true\n",
        "      - name: status\n        logicalType: string\n        physicalType: varchar\n",
    )
    (top / "README.md").write_text("changed outside the project\n")
    code, report = repo.ci_json("--no-dbt")
    assert code == 1
    assert [f["path"] for f in report["changes"]["files"]] == [ORDERS_CONTRACT]
    assert report["breaking"] == ["orders.orders"]
    assert report["contracts"][0]["affected_products"] == ["customer_360"]


def test_a_changed_depot_changes_the_products_loading_from_it(tmp_path: Path) -> None:
    root = init_project(tmp_path / "crmproj").root
    repo = Repo(root, tmp_path / "home")
    (repo.home / "data").mkdir(parents=True)
    (root / "depots").mkdir()
    (root / "depots" / "crm.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/c.db\n")
    (root / "depots" / "billing.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/b.db\n")
    folder = root / "crmproj" / "defs" / "crm" / "accounts"
    (folder / "models").mkdir(parents=True)
    (folder / "contracts").mkdir()
    (folder / "defs.yaml").write_text(
        "type: ddp_assets.components.DataProduct\nattributes:\n  id: accounts\n"
        "  name: Accounts\n  domain: crm\n  version: 1.0.0\n  owners: [a@example.com]\n"
        "  description:\n    purpose: test\n  input_ports:\n    - name: raw_accounts\n"
        "      type: depot\n      depot: crm\n      table: accounts\n"
        "  output_ports:\n    - name: accounts\n      model: accounts\n"
        "      contract: contracts/accounts.odcs.yaml\n"
    )
    (folder / "models" / "accounts.sql").write_text(
        "select * from {{ source('accounts', 'raw_accounts') }}\n"
    )
    repo.git("init", "-q", "-b", "main")
    repo.commit("a product loading from the crm depot")
    repo.git("checkout", "-q", "-b", "feature")
    (root / "depots" / "crm.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/crm.db\n")
    (root / "depots" / "billing.yaml").write_text("kind: sql\nurl: sqlite:///{data_dir}/x.db\n")
    _, report = repo.ci_json("--no-dbt")
    assert report["changes"]["products"] == [{"id": "accounts", "why": ["depot depots/crm.yaml"]}]
    assert report["changes"]["other_files"] == ["depots/billing.yaml"]  # no product loads it


def test_a_github_pull_request_compares_with_its_target_branch(repo: Repo) -> None:
    """In GitHub Actions a pull request checks out a merge commit; GITHUB_BASE_REF names the
    target branch, fetched as origin/<branch>."""
    repo.git("update-ref", "refs/remotes/origin/release", "main")
    _append(repo.root / CUSTOMERS_SQL, "-- reviewed\n")
    repo.commit("customers: reviewed")
    repo.git("checkout", "-q", "--detach")
    result = subprocess.run(
        [DDP, "ci", "--no-dbt", "--format", "json"],
        cwd=repo.root,
        env={**repo.env(), "GITHUB_BASE_REF": "release"},
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["base"]["ref"] == "origin/release"
    assert report["base"]["commit"] == repo.git("rev-parse", "main").strip()
    assert [p["id"] for p in report["changes"]["products"]] == ["customers"]

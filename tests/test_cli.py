"""The ``ddp`` command line, run as users run it (a real process, real exit codes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DDP = str(Path(sys.executable).parent / "ddp")


def ddp(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DDP, *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        cwd=cwd,
        timeout=600,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_passes_on_the_project() -> None:
    result = ddp("validate", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert len(report["products"]) >= 6


def test_list_json_has_the_documented_fields() -> None:
    result = ddp("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["id"] for r in rows} >= {"customers", "orders"}
    for row in rows:
        assert set(row) >= {
            "id",
            "name",
            "domain",
            "owners",
            "version",
            "status",
            "input_ports",
            "output_ports",
        }
        assert row["output_ports"], row


def test_show_gives_neighbours() -> None:
    result = ddp("show", "orders", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["upstream"] == ["customers"]
    assert info["downstream"], "orders feeds other products"
    assert {p["name"] for p in info["output_ports"]} == {"orders", "order_lines"}
    assert ddp("show", "orders").returncode == 0


def test_unknown_product_is_a_clean_error() -> None:
    result = ddp("show", "orderz")
    assert_clean_failure(result)
    assert "did you mean 'orders'" in result.stderr


def test_materialize_needs_products_or_all() -> None:
    result = ddp("materialize")
    assert_clean_failure(result)
    assert "--all" in result.stderr


def test_spec_schema_is_json() -> None:
    result = ddp("spec", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "attributes" in schema["properties"]


def test_export_odps_prints_a_descriptor(tmp_path: Path) -> None:
    result = ddp("export", "odps", "orders")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["kind"] == "DataProduct" and document["id"]
    out = tmp_path / "orders.odps.yaml"
    assert ddp("export", "odps", "orders", "-o", str(out)).returncode == 0
    assert yaml.safe_load(out.read_text()) == document


@pytest.mark.slow
def test_materialize_json_reports_assets_and_checks(built_demo, demo_env) -> None:
    result = ddp("materialize", "customers", "--json", env=demo_env.env())
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["success"] is True
    (product,) = outcome["products"]
    assert product["product"] == "customers" and product["status"] == "succeeded"
    assets = {a["asset"]: a for a in product["assets"]}
    assert assets["customers/customers"]["status"] == "materialized"
    checks = assets["customers/customers"]["checks"]
    assert checks and all(c["passed"] for c in checks)


def copy_project(target: Path) -> Path:
    """A private copy of the project, so tests may add or break products."""
    ignore = shutil.ignore_patterns("target", "_ddp", "__pycache__", "logs")
    for name in ("ddp_assets", "dbt_project", "depots"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("pyproject.toml", "dagster.yaml", "workspace.yaml"):
        shutil.copyfile(ROOT / name, target / name)
    return target


@pytest.mark.slow
def test_new_product_validates_and_builds(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    env = {
        **os.environ,
        "DDP_PROJECT_ROOT": str(project),
        "PYTHONPATH": str(project),
        "DDP_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    created = ddp(
        "new",
        "returns",
        "--domain",
        "sales",
        "--owner",
        "returns@example.com",
        env=env,
        cwd=project,
    )
    assert created.returncode == 0, created.stderr
    assert (project / "ddp_assets/defs/sales/returns/defs.yaml").is_file()
    validated = ddp("validate", env=env, cwd=project)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    built = ddp("materialize", "returns", "--json", env=env, cwd=project)
    assert built.returncode == 0, built.stderr[-3000:]
    outcome = json.loads(built.stdout)
    assert outcome["success"] and outcome["products"][0]["product"] == "returns"
    again = ddp("new", "returns", "--domain", "sales", env=env, cwd=project)
    assert_clean_failure(again)
    assert "already exists" in again.stderr


def test_validate_reports_file_line_and_hint(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    spec = project / "ddp_assets/defs/sales/orders/defs.yaml"
    spec.write_text(
        spec.read_text().replace("      model: order_lines\n", "      modle: order_lines\n")
    )
    env = {**os.environ, "DDP_PROJECT_ROOT": str(project)}
    result = ddp("validate", "--no-dbt", env=env, cwd=project)
    assert_clean_failure(result)
    assert "ddp_assets/defs/sales/orders/defs.yaml:" in result.stderr
    assert "did you mean 'model'" in result.stderr
    as_json = json.loads(ddp("validate", "--json", env=env, cwd=project).stdout)
    assert as_json["valid"] is False
    assert any(p["field"].endswith("modle") and p["line"] for p in as_json["problems"])

"""Contract types against the types a port's SQL yields, at ``ddp validate`` (issue 16): a
``sum()`` of integers (DuckDB's ``hugeint``) under ``physicalType: bigint`` is an error at the
contract's line and column with the fix, not a failed build. Real dbt (parse), DuckDB and the
demo's products; ``ddp_assets/dbt/type_check.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddp_assets.dbt.type_check import check_types, input_contract_path
from ddp_assets.demo.generator import generate_landing_zone
from ddp_assets.ingest.files import landing_files
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import DepotInputPort, FileInputPort
from ddp_assets.spec.registry import Registry
from ddp_assets.starter import init_project
from tests.test_import_dbt import Project

REPO = Path(__file__).resolve().parents[1]
# the demo's output ports whose SQL reads only relations of known types once the landing zone
# has files (support_tickets reads a depot whose input contract lists only some columns)
DEMO_CHECKED = {
    "order_lines",
    "orders",
    "customers",
    "purchase_orders",
    "suppliers",
    "stock_levels",
    "usage_events_clean",
    "stock_out_alerts",
    "supplier_scorecard",
    "daily_usage",
    "customer_usage",
    "customer_profile",
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose landing zone has the demo's files (a small scale)."""
    data = tmp_path_factory.mktemp("types-data")
    generate_landing_zone(data / "landing", scale=1000)
    return data


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> Project:
    base = tmp_path_factory.mktemp("types")
    root = init_project(base / "acme", demo=True).root
    home = base / "home"
    home.mkdir()
    return Project(root, landing, home)


def _output(result: object) -> str:
    return f"{getattr(result, 'stdout', '')}{getattr(result, 'stderr', '')}"


def _type_problems(result: object) -> list[dict[str, object]]:
    report = json.loads(getattr(result, "stdout", ""))
    return [p for p in report["problems"] if "contract enforcement" in str(p["message"])]


def test_a_sum_under_a_bigint_contract_is_located_with_its_fix(demo: Project) -> None:
    product = next(demo.root.glob("*/defs/sales/orders"))
    sql, contract = product / "models" / "orders.sql", product / "contracts" / "orders.odcs.yaml"
    sql_text, contract_text = sql.read_text(), contract.read_text()
    cast = "cast(sum(quantity) as bigint) as item_count"
    assert cast in sql_text
    lines = contract_text.splitlines()
    at = next(n for n, line in enumerate(lines) if line.strip() == "- name: item_count")
    typed = next(n for n in range(at, len(lines)) if "physicalType: bigint" in lines[n])
    column = lines[typed].index("bigint") + 1
    shown = str(contract.relative_to(demo.root))
    try:
        sql.write_text(sql_text.replace(cast, "sum(quantity) as item_count"))
        broken = demo.ddp("validate")
        as_json = demo.ddp("validate", "--json")
        # the other fix: the contract says what the SQL yields
        fixed = contract_text.splitlines(keepends=True)
        fixed[typed] = fixed[typed].replace("physicalType: bigint", "physicalType: hugeint")
        contract.write_text("".join(fixed))
        after = demo.ddp("validate", "--json")
    finally:
        sql.write_text(sql_text)
        contract.write_text(contract_text)
    output = _output(broken)
    assert broken.returncode == 1, output
    # the console shows file:line (cli/console.py); the JSON report has the column too
    assert f"{shown}:{typed + 1}: error: schema[0].properties[" in output, output
    assert "column 'item_count' of port 'orders.orders' is hugeint in its SQL" in output
    assert "not bigint" in output
    assert "hint: write `physicalType: hugeint`, or cast in the SQL:" in output
    assert "`cast(coalesce(lines.item_count, 0) as bigint) as item_count`" in output
    assert "Traceback" not in output
    problems = _type_problems(as_json)
    assert [(p["file"], p["line"], p["column"]) for p in problems] == [
        (shown, typed + 1, column)
    ], problems
    assert after.returncode == 0, _output(after)
    assert _type_problems(after) == []


def test_a_timestamp_declared_as_a_date_is_caught_in_a_private_models_reader(
    demo: Project,
) -> None:
    """The type comes through a private model (stg_orders, typed from the landing files) and
    dbt's own macros (customer_profile's dbt.datediff renders as DuckDB's)."""
    product = next(demo.root.glob("*/defs/marketing/customer_360"))
    contract = product / "contracts" / "customer_profile.odcs.yaml"
    text = contract.read_text()
    lines = text.splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.strip() == "- name: last_order_at")
    typed = next(n for n in range(at, len(lines)) if "physicalType:" in lines[n])
    declared = lines[typed].split("physicalType:", 1)[1].strip()
    assert declared == "timestamp", declared
    lines[typed] = lines[typed].replace("physicalType: timestamp", "physicalType: date")
    try:
        contract.write_text("".join(lines))
        result = demo.ddp("validate", "--json")
    finally:
        contract.write_text(text)
    assert result.returncode == 1, _output(result)
    problems = _type_problems(result)
    assert len(problems) == 1, problems
    assert problems[0]["line"] == typed + 1
    assert "is timestamp in its SQL" in str(problems[0]["message"])
    assert "write `physicalType: timestamp`" in str(problems[0]["hint"])


def test_the_demo_has_no_type_problem_and_every_typed_port_is_compared(
    demo: Project, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = demo.ddp("validate", "--json")
    assert result.returncode == 0, _output(result)
    assert _type_problems(result) == []
    monkeypatch.setenv("DDP_DATA_DIR", str(landing))
    monkeypatch.setenv("DAGSTER_HOME", str(demo.home))
    paths = ProjectPaths(demo.root)
    registry = Registry.load(paths.defs_dir, paths.root)
    from ddp_assets.dbt.project import prepare

    found = check_types(registry, prepare(paths, registry).manifest, paths, landing_files)
    assert found.problems == []
    assert set(found.checked) == DEMO_CHECKED, found.skipped
    # without landing files, what reads them is skipped, never reported
    empty = landing.parent / "no-landing"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("DDP_DATA_DIR", str(empty))
    bare = check_types(registry, prepare(paths, registry).manifest, paths, landing_files)
    assert bare.problems == [] and "orders" in bare.skipped
    assert "the types of 'stg_orders' are not known here" in bare.skipped["orders"]


def test_ddp_validate_on_this_repository_reports_no_type_problem() -> None:
    import subprocess

    from tests.test_import_dbt import DDP

    result = subprocess.run(
        [DDP, "validate", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, _output(result)
    assert _type_problems(result) == []


def test_the_input_contract_convention_is_the_loads_own() -> None:
    from ddp_assets.ingest.depot_assets import depot_contract_path
    from ddp_assets.ingest.landing import landing_contract_path

    paths = ProjectPaths(REPO)
    registry = Registry.load(paths.defs_dir, paths.root)
    seen = 0
    for product in registry.products.values():
        for port in product.spec.input_ports:
            if isinstance(port, FileInputPort):
                assert input_contract_path(product, port) == landing_contract_path(product, port)
                seen += 1
            elif isinstance(port, DepotInputPort):
                assert input_contract_path(product, port) == depot_contract_path(product, port)
                seen += 1
    assert seen > 0

"""Preview bench (issue 21): does a preview cost what it cannot avoid, and copy nothing?

On a snapshot of the checkout in git, with the demo built in prod at ``--scales`` landing rows:

1. **the floor**: ``ddp materialize orders <its downstream>`` in prod (what a preview of a
   change to ``orders`` must build at least);
2. **the preview**: ``ddp env create preview`` (views over prod's published versions), then
   ``ddp --env preview materialize orders <its downstream>``; the figure is the materialize
   (the environment's creation is reported beside it). Target: preview / floor ≤ 1.2;
3. **copies**: the rows held by tables (not views) in the environment's schemas of the products
   it did not build, from DuckDB's own catalog (``duckdb_tables()``): 0 is the target; and the
   warehouse file's growth over the preview, next to the rows the preview built itself;
4. **ci on an unchanged repository**: ``ddp ci --base HEAD`` against ``ddp validate``.
   Target ≤ 1.5.

Each command's wall time is one run (``run_measured``), on a machine left quiet
(``wait_for_quiet``) before each.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from bench.common import (
    BenchError,
    Settings,
    copy_project,
    fresh_dir,
    python_env,
    ratio,
    run_measured,
    tool,
    wait_for_quiet,
)
from ddp_assets.demo.generator import generate_landing_zone

CHANGED = "orders"
ENV = "preview"
TARGET_PREVIEW = 1.2
TARGET_CI = 1.5


def _downstream(root: Path, product: str) -> list[str]:
    """``product`` and every product that reads it, directly or not (the registry's graph)."""
    from ddp_assets.spec.registry import Registry

    registry = Registry.load(root / "ddp_assets" / "defs", root)
    found, todo = {product}, [product]
    while todo:
        for reader in registry.downstream(todo.pop()):
            if reader not in found:
                found.add(reader)
                todo.append(reader)
    return [product, *sorted(found - {product})]


def _tables_rows(warehouse: Path, schemas: list[str]) -> int:
    """Rows held by tables (views hold none) in ``schemas``, from DuckDB's catalog."""
    if not schemas:
        return 0
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        row = connection.execute(
            "select coalesce(sum(estimated_size), 0) from duckdb_tables() "
            f"where schema_name in ({', '.join('?' for _ in schemas)})",
            schemas,
        ).fetchone()
    return int(row[0]) if row else 0


def run(settings: Settings, scale: int, log: Any) -> dict[str, Any]:
    work = settings.work / "preview"
    root = copy_project(work / "project")
    data, home = fresh_dir(work / "data"), fresh_dir(work / "home")
    shutil.copy2(root / "dagster.yaml", home / "dagster.yaml")
    env = python_env(
        settings, PYTHONPATH=root, DDP_PROJECT_ROOT=root, DDP_DATA_DIR=data, DAGSTER_HOME=home
    )
    env.pop("DDP_ENV", None)
    logs = settings.work / "logs" / "preview"
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=b@e.x", "commit", "-q", "-m", "s"],
    ):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    ddp = tool("ddp")
    log(f"preview: the demo at {scale:,} landing rows, built in prod (not counted)")
    generate_landing_zone(data / "landing", scale=scale)
    run_measured("build", [ddp, "materialize", "--all"], env=env, cwd=root, logs=logs).check()
    products = _downstream(root, CHANGED)
    wait_for_quiet(settings)
    floor = run_measured(
        "prod", [ddp, "materialize", *products], env=env, cwd=root, logs=logs
    ).check()
    warehouse = data / "warehouse.duckdb"
    size_before = warehouse.stat().st_size
    wait_for_quiet(settings)
    created = run_measured(
        "env create", [ddp, "env", "create", ENV], env=env, cwd=root, logs=logs
    ).check()
    wait_for_quiet(settings)
    preview = run_measured(
        "preview", [ddp, "--env", ENV, "materialize", *products], env=env, cwd=root, logs=logs
    ).check()
    size_after = warehouse.stat().st_size
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        schemas = [
            str(name)
            for (name,) in connection.execute(
                "select distinct schema_name from duckdb_schemas() "
                "where starts_with(schema_name, ?)",
                [f"{ENV}__"],
            ).fetchall()
        ]
    built = {f"{ENV}__{p}" for p in products} | {f"{ENV}__{p}__staging" for p in products}
    unchanged = [s for s in schemas if s not in built]
    if not unchanged or not built & set(schemas):
        raise BenchError(f"preview: expected the environment's schemas, found {schemas}")
    wait_for_quiet(settings)
    validate = run_measured("validate", [ddp, "validate"], env=env, cwd=root, logs=logs).check()
    wait_for_quiet(settings)
    ci = run_measured(
        "ci unchanged", [ddp, "ci", "--base", "HEAD"], env=env, cwd=root, logs=logs
    ).check()
    return {
        "scale": scale,
        "products": products,
        "prod_materialize": floor.to_dict(),
        "env_create": created.to_dict(),
        "preview_materialize": preview.to_dict(),
        "preview_over_prod": round(ratio(preview.seconds, floor.seconds), 3),
        "preview_target": TARGET_PREVIEW,
        "unchanged_schemas": len(unchanged),
        "rows_copied_of_unchanged_products": _tables_rows(warehouse, unchanged),
        "rows_built_by_the_preview": _tables_rows(warehouse, sorted(built & set(schemas))),
        "warehouse_growth_bytes": size_after - size_before,
        "validate": validate.to_dict(),
        "ci_unchanged": ci.to_dict(),
        "ci_over_validate": round(ratio(ci.seconds, validate.seconds), 3),
        "ci_target": TARGET_CI,
    }

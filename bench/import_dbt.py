"""A generated dbt project of N models, and the time ``ddp import dbt`` takes on it.

Not a benchmark of the suite: a one-off measurement for docs/performance.md ("Importing a dbt
project"). ``python -m bench.import_dbt 1000 /tmp/import-bench`` writes a plain dbt project
(``dbt_project.yml``, sources over CSV files, seeds, groups with owners, staging views and
mart tables with ``data_tests``), a fresh ddp project beside it (``ddp init``), then times
``ddp import dbt`` into it and the two ``ddp validate`` that follow (the first prepares the
imported project, the second finds nothing changed), and prints the figures with the report's
counts and the load average before and after.

The project has ``groups`` of ten models per hundred: per group, two sources (files in
``data/``), one seed, ``N/groups`` models in a chain from ``stg_`` views to a public mart
table, each model's columns described and tested (``not_null``, ``unique``,
``accepted_values``); every group's first model also refs the previous group's mart.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

GROUP_SIZE = 100


def generate_dbt_project(destination: Path, total_models: int) -> Path:
    """A dbt project of ``total_models`` models in groups of :data:`GROUP_SIZE`."""
    if total_models % GROUP_SIZE:
        raise ValueError(f"the model count must be a multiple of {GROUP_SIZE}")
    root = destination / "bigshop"
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "seeds").mkdir()
    (root / "macros").mkdir()
    groups = total_models // GROUP_SIZE
    (root / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": "bigshop",
                "version": "1.0.0",
                "config-version": 2,
                "profile": "bigshop",
                "model-paths": ["models"],
                "seed-paths": ["seeds"],
                "macro-paths": ["macros"],
                "models": {"bigshop": {"+materialized": "view"}},
            },
            sort_keys=False,
        )
    )
    (root / "macros" / "cents.sql").write_text(
        "{% macro cents(column) %}({{ column }} / 100)::decimal(16, 2){% endmacro %}\n"
    )
    group_entries = []
    for g in range(groups):
        name = f"g{g:02d}"
        group_entries.append(
            {"name": name, "owner": {"name": f"team {name}", "email": f"{name}@example.com"}}
        )
        folder = root / "models" / name
        folder.mkdir()
        for table in ("items", "events"):
            (root / "data" / f"{name}_{table}.csv").write_text(
                "id,amount_cents,status\n1,100,open\n2,250,closed\n3,75,open\n"
            )
        (root / "seeds" / f"{name}_codes.csv").write_text("code,label\nA,alpha\nB,beta\n")
        sources = {
            "version": 2,
            "sources": [
                {
                    "name": f"{name}_raw",
                    "schema": "main",
                    "tables": [
                        {
                            "name": f"{name}_{table}",
                            "config": {
                                "external_location": f"data/{name}_{table}.csv",
                            },
                        }
                        for table in ("items", "events")
                    ],
                }
            ],
        }
        (folder / "_sources.yml").write_text(yaml.safe_dump(sources, sort_keys=False))
        models = []
        for m in range(GROUP_SIZE):
            model = f"{name}_m{m:03d}"
            last = m == GROUP_SIZE - 1
            if m == 0:
                upstream = f"{{{{ source('{name}_raw', '{name}_items') }}}}"
                select = "id, {{ cents('amount_cents') }} as amount, status"
                sql = f"select {select} from {upstream}"
                if g:  # the previous group's mart: a product input port
                    mart = f"g{g - 1:02d}_m{GROUP_SIZE - 1:03d}"
                    sql += f"\nwhere id in (select id from {{{{ ref('{mart}') }}}})"
            elif m == 1:
                sql = (
                    f"select a.id, a.amount, a.status, c.label\n"
                    f"from {{{{ ref('{name}_m000') }}}} a\n"
                    f"left join {{{{ ref('{name}_codes') }}}} c on c.code = 'A'"
                )
            else:
                sql = f"select id, amount, status, label from {{{{ ref('{name}_m{m - 1:03d}') }}}}"
            config = "{{ config(materialized='table') }}\n" if last else ""
            (folder / f"{model}.sql").write_text(config + sql + "\n")
            columns = [
                {"name": "id", "description": "The key.", "data_tests": ["not_null", "unique"]},
                {"name": "amount", "description": "The amount in currency units."},
                {
                    "name": "status",
                    "data_tests": [
                        {"accepted_values": {"arguments": {"values": ["open", "closed"]}}}
                    ],
                },
            ]
            if m:
                columns.append({"name": "label"})
            entry = {
                "name": model,
                "description": f"Model {m} of group {name}.",
                "config": {"group": name, "access": "public" if last else "private"},
                "columns": columns,
            }
            models.append(entry)
        (folder / "_models.yml").write_text(
            yaml.safe_dump({"version": 2, "models": models}, sort_keys=False)
        )
    (root / "models" / "groups.yml").write_text(
        yaml.safe_dump({"version": 2, "groups": group_entries}, sort_keys=False)
    )
    return root


def main(argv: list[str]) -> int:
    total = int(argv[0]) if argv else 1000
    destination = Path(argv[1] if len(argv) > 1 else "/tmp/ddp-import-bench")
    destination.mkdir(parents=True, exist_ok=False)
    dbt_root = generate_dbt_project(destination, total)
    from ddp_assets.starter import init_project

    ddp_root = init_project(destination / "acme").root
    data = destination / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DDP_PROJECT_ROOT"}
    env.update({"DDP_DATA_DIR": str(data), "DAGSTER_HOME": str(destination / "home")})
    ddp = str(Path(sys.executable).parent / "ddp")
    load_before = os.getloadavg()[0]
    result, seconds, cpu = _timed([ddp, "import", "dbt", str(dbt_root), "--json"], ddp_root, env)
    if result.returncode:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
        return 1
    report = json.loads(result.stdout)
    figures: dict[str, object] = {
        "models": total,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "products": len(report["products"]),
        "written": len(report["written"]),
        "not_mapped": len(report["not_mapped"]),
    }
    # the validate that follows: the first prepares (properties, dbt parse), the second reuses
    for run in ("validate_first", "validate_again"):
        result, seconds, cpu = _timed([ddp, "validate"], ddp_root, env)
        if result.returncode:
            print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
            return 1
        figures[f"{run}_seconds"], figures[f"{run}_cpu_seconds"] = seconds, cpu
    figures["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures))
    return 0


def _timed(
    command: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """The command's result, wall seconds and CPU seconds (user + system of it and the
    processes it waited for, such as validate's dbt parse), whatever the machine's load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result, round(seconds, 1), round(cpu, 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

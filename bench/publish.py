"""``python -m bench publish [--rows 1000000,10000000]``: the versioned publish's own costs.

On a fresh DuckDB warehouse per size, with the demo's ``orders`` product (ports ``orders`` and
``order_lines``) built synthetically in staging at ``--rows`` rows each (no dbt, no landing
files: only the publish is measured), four publishes of unchanged size (retention 3):

- **publish step**: the time of :func:`ddp_assets.contracts.wap.publish` per port, as the
  port's asset times it around the call; once with the publish's own checksum scan (the
  default), once with the row count and checksum handed in (``content=``, as computed by an
  audit that reads the table anyway) — the scan's own time is the difference;
- **rollback**: :func:`ddp_assets.contracts.rollback.rollback` of the whole product one step
  back, and forward again (consumers' contract checks included);
- **disk**: after a ``checkpoint``, the warehouse's bytes of the port's three retained versions
  (DuckDB's ``storage_info`` blocks) over one copy of the table.

Prints one line per figure with the load average; ``--json`` writes them too. The issue's
targets: a publish step ≤ 0.05 s per port whatever the size, a product rollback ≤ 1 s, a port's
three retained versions at most 3 times the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import yaml

PRODUCT = "orders"
PORTS = ("orders", "order_lines")
PUBLISHES = 4
RETAIN = 3


def _staging_table(connection: duckdb.DuckDBPyConnection, model: str, rows: int) -> None:
    """A deterministic table of ``rows`` rows, shaped like the demo's order lines."""
    schema = f"{PRODUCT}__staging"
    connection.execute(f'create schema if not exists "{schema}"')
    connection.execute(f'drop view if exists "{schema}"."{model}"')
    connection.execute(
        f'create or replace table "{schema}"."{model}" as select '
        "i::bigint as order_id, (i * 7919 % 30000)::bigint as customer_id, "
        "date '2024-01-01' + (i % 700)::integer as order_date, "
        "['placed', 'shipped', 'delivered', 'returned'][1 + i % 4] as status, "
        "((i * 104729 % 100000) / 100.0)::decimal(12, 2) as amount, "
        "'note ' || (i % 1000)::varchar as note from range(?) as r(i)",
        [rows],
    )


def _table_bytes(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> int:
    row = connection.execute(
        "select count(distinct block_id) * (select block_size from pragma_database_size()) "
        f'from pragma_storage_info(\'"{schema}"."{table}"\') where block_id >= 0'
    ).fetchone()
    return int(row[0]) if row and row[0] else 0


def measure(rows: int, work: Path) -> dict[str, Any]:
    from ddp_assets.contracts.rollback import rollback
    from ddp_assets.contracts.wap import checksum, publish, versions
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    root = Path(__file__).resolve().parent.parent
    paths = ProjectPaths(root)
    registry = Registry.load(paths.defs_dir, paths.root)
    product = registry.products[PRODUCT]
    models = {p.name: p.model for p in product.spec.output_ports if p.name in PORTS}
    contracts = {  # the ports' real contract ids and versions, as the consumers require them
        p.name: yaml.safe_load((product.folder / p.contract).read_text(encoding="utf-8"))
        for p in product.spec.output_ports
    }
    path = work / f"warehouse-{rows}.duckdb"
    path.unlink(missing_ok=True)
    timings: dict[str, list[float]] = {"scan": [], "given": [], "checksum": []}
    with duckdb.connect(str(path)) as connection:
        for run in range(PUBLISHES):
            for port, model in models.items():
                _staging_table(connection, model, rows)
                given = run % 2 == 1  # alternate: scan at publish, or the audit's figures
                content = None
                if given:  # what the audit step would hand over (not counted in the publish)
                    started = time.perf_counter()
                    content = checksum(connection, f"{PRODUCT}__staging", model)
                    timings["checksum"].append(time.perf_counter() - started)
                started = time.perf_counter()
                publish(
                    connection,
                    product=PRODUCT,
                    port=port,
                    model=model,
                    contract_id=str(contracts[port]["id"]),
                    contract_version=str(contracts[port]["version"]),
                    run_id=f"bench-{run}",
                    retain=RETAIN,
                    content=content,
                )
                timings["given" if given else "scan"].append(time.perf_counter() - started)
        connection.execute("checkpoint")
        started = time.perf_counter()
        back = rollback(connection, registry, PRODUCT, steps=1, actor="bench", reason="bench")
        rollback_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rollback(connection, registry, PRODUCT, to=PUBLISHES, actor="bench", reason="forward")
        forward_seconds = time.perf_counter() - started
        connection.execute("checkpoint")
        port = PORTS[0]
        kept = [v for v in versions(connection, PRODUCT, port) if v.dropped_at is None]
        stored = [v.stored_as.split(".", 1) for v in kept if v.stored_as]
        version_bytes = [_table_bytes(connection, s, t) for s, t in stored]
        moved = len(back.moves)
    return {
        "rows": rows,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "publish_with_scan_s": statistics.median(timings["scan"]),
        "publish_with_audit_checksum_s": statistics.median(timings["given"]),
        "checksum_scan_s": statistics.median(timings["checksum"]),
        "rollback_product_s": rollback_seconds,
        "roll_forward_product_s": forward_seconds,
        "ports_moved": moved,
        "retained_versions": len(version_bytes),
        "version_bytes": version_bytes,
        "disk_ratio": sum(version_bytes) / max(version_bytes) if version_bytes else None,
        "warehouse_file_bytes": path.stat().st_size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench publish", description=__doc__)
    parser.add_argument("--rows", default="1000000,10000000", help="rows per port, e.g. 1000000")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(part.replace("_", "")) for part in args.rows.split(",") if part.strip()]
    work = Path(tempfile.mkdtemp(prefix="ddp-bench-publish-"))
    results = []
    try:
        for rows in sizes:
            found = measure(rows, work)
            results.append(found)
            print(
                f"{rows:>11,} rows/port  publish {found['publish_with_scan_s']:.3f} s "
                f"(checksum scan {found['checksum_scan_s']:.3f} s; with the audit's checksum "
                f"{found['publish_with_audit_checksum_s']:.3f} s)  rollback "
                f"{found['rollback_product_s']:.3f} s / forward "
                f"{found['roll_forward_product_s']:.3f} s ({found['ports_moved']} ports)  "
                f"disk {found['retained_versions']} versions = {found['disk_ratio']:.2f}x "
                f"the table  load {found['loadavg']}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0

"""Contracts (C): every output port's contract checks on a built warehouse, three ways.

Run by the harness as a measured process (``python -m bench.contract_pass WAREHOUSE``, with
``PYTHONPATH`` = the snapshot, then this checkout for ``bench``), so its peak RSS is the peak
of the checks; it prints one JSON line.

- **platform** (C): what the audit runs: the Soda contract verification of every port's
  quality rules in ONE Soda session (``contracts/soda.py::run_quality_many``, as the audit
  of a whole layer calls it) and, for a port written from Python, the pandera schema
  (``contracts/pandera_checks.py::validate_table``), on the staging relations.
  ``platform_each_*`` is the same with one Soda session per port (``run_quality``).
- **sql** (Csql): the same quality rules as ONE hand-written SQL query per port (this module:
  every rule's metric as an aggregate of one scan, compared with the rule's threshold in
  Python). It is the floor for "the contract checks", as F is for the build. Its verdicts
  are compared with Soda's: a disagreement is reported, not hidden.

The three run in rounds (each, sql, many, sql, many, sql, each, sql, twice) and the figures
are the medians, so a drift of the machine's load weighs on all alike. Every check, Soda's
and the SQL pass, runs with the warehouse's memory bounded as the audit bounds it
(``Warehouse.bounded_memory``). ``peak_rss_mb_*`` are this process's peak resident set after
the imports and warm-up, after the checks, and at the end.

It also times, per port, what the publish step does after the audit (``contracts/wap.py``,
which another change owns; these figures are the case for changing it): the copy
``create or replace table <product>.<model> as select * from staging`` (into a scratch schema
here), the content checksum (``wap.py::checksum``, one more full scan), and the alternative
of publishing by renaming the audited table (``alter table ... rename``, metadata only). They
run under the same memory bound (an audit-and-publish step would hold it for both): unbounded,
DuckDB keeps every block the copy writes cached, and the 10M-row copies alone took this
process to ~850 MB (``publish_bounded`` says which way they ran).

Timings exclude the interpreter start and imports (Soda, pandera and ibis are imported and
warmed on an empty table first), so they compare the checks themselves with the build.

A second argument (JSON) replaces the DuckDB settings of the bound, for experiments:
``python -m bench.contract_pass W '{"memory_limit": "256MiB"}'`` (``'{}'``: unbounded).

Alone, without the harness (on a copy: it adds and drops scratch schemas), from the checkout::

    export DDP_DATA_DIR=/tmp/c10m DAGSTER_HOME=/tmp/c10m/home && mkdir -p $DAGSTER_HOME
    cp dagster.yaml $DAGSTER_HOME/ && .venv/bin/ddp demo --scale 10000000
    .venv/bin/ddp materialize --all --json > /dev/null
    cp $DDP_DATA_DIR/warehouse.duckdb /tmp/c10m/copy.duckdb
    /usr/bin/time -f %M .venv/bin/python -m bench.contract_pass /tmp/c10m/copy.duckdb
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ddp_assets.warehouse.base import literal, quote


def metric_sql(rule: Any, table: str) -> str | None:
    """One rule's metric as an aggregate over ``table`` (None: not expressible as one)."""
    column = quote(rule.column) if rule.column else None
    match rule.metric:
        case "rowCount":
            return "count(*)"
        case "nullValues":
            return f"count(*) filter (where {column} is null)"
        case "missingValues":
            listed = ", ".join(literal(v) for v in rule.missing_values)
            extra = f" or {column} in ({listed})" if listed else ""
            return f"count(*) filter (where {column} is null{extra})"
        case "invalidValues" if rule.valid_values is not None:
            listed = ", ".join(literal(v) for v in rule.valid_values) or "null"
            return f"count(*) filter (where {column} is not null and {column} not in ({listed}))"
        case "invalidValues":
            return (
                f"count(*) filter (where {column} is not null and not regexp_matches("
                f"cast({column} as varchar), {literal(rule.pattern)}))"
            )
        case "duplicateValues":
            keys = [quote(c) for c in (rule.columns or (rule.column,))]
            if len(keys) == 1:
                return f"count({keys[0]}) - count(distinct {keys[0]})"
            row = "(" + ", ".join(keys) + ")"
            return f"count(*) - count(distinct {row})"
        case "sql":
            query = rule.sql_for(table)
            return f"({query.strip().rstrip(';')})" if query else None
        case _:
            return None


def sql_pass(connection: Any, plan: Any, table: str) -> dict[str, bool]:
    """Every quality rule of ``plan`` on ``table`` in one query; rule name → passed."""
    expressions = [(rule, metric_sql(rule, table)) for rule in plan.rules]
    usable = [(rule, sql) for rule, sql in expressions if sql is not None]
    if not usable:
        return {}
    selects = ", ".join(["count(*)", *(sql for _, sql in usable)])
    row = connection.execute(f"select {selects} from {table}").fetchone()
    total, values = row[0], row[1:]
    verdicts: dict[str, bool] = {}
    for (rule, _), value in zip(usable, values, strict=True):
        observed = float(value or 0)
        if rule.unit == "percent" and rule.metric != "rowCount":
            observed = 100.0 * observed / total if total else 0.0
        verdicts[rule.check_name] = bool(rule.threshold.holds(observed))
    return verdicts


def _publish_costs(connection: Any, ports: list[Any], staging_schema: Any) -> dict[str, Any]:
    """The publish step's copy and checksum scan, and a rename instead, on scratch copies."""
    from ddp_assets.warehouse import warehouse_of

    with warehouse_of(connection).bounded_memory(connection):
        costs = _publish_costs_unbounded(connection, ports, staging_schema)
    return {**costs, "publish_bounded": True}


def _publish_costs_unbounded(
    connection: Any, ports: list[Any], staging_schema: Any
) -> dict[str, float]:
    from ddp_assets.contracts.wap import checksum

    copy = scan = rename = 0.0
    connection.execute("create schema if not exists bench_publish")
    for product, port, _ in ports:
        staging = staging_schema(product.id)
        name = quote(port.model)
        t0 = time.perf_counter()
        connection.execute(
            f"create or replace table bench_publish.{name} as select * from {staging}.{name}"
        )
        t1 = time.perf_counter()
        checksum(connection, staging, port.model)
        t2 = time.perf_counter()
        connection.execute(
            f"alter table bench_publish.{name} rename to {quote(port.model + '_renamed')}"
        )
        t3 = time.perf_counter()
        copy, scan, rename = copy + t1 - t0, scan + t2 - t1, rename + t3 - t2
    connection.execute("drop schema bench_publish cascade")
    return {"publish_copy_seconds": copy, "checksum_seconds": scan, "rename_seconds": rename}


def _peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _key(result: Any) -> tuple[Any, ...]:
    """What must not differ between one Soda session per port and one for all ports."""
    return (
        result.check_name,
        result.passed,
        result.observed,
        result.rows_tested,
        result.error is None,
        result.sample,
    )


def main(argv: list[str]) -> int:
    warehouse = Path(argv[0])
    started_imports = time.perf_counter()
    import duckdb

    from ddp_assets.contracts.compiler import compile_contract
    from ddp_assets.contracts.pandera_checks import validate_table
    from ddp_assets.contracts.soda import run_quality, run_quality_many
    from ddp_assets.contracts.wap import staging_schema
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry
    from ddp_assets.warehouse import duckdb as duckdb_warehouse
    from ddp_assets.warehouse import warehouse_of

    if len(argv) > 1:  # an experiment: other DuckDB settings for the checks, as JSON
        duckdb_warehouse.AUDIT_SETTINGS = json.loads(argv[1])

    paths = ProjectPaths.discover(Path.cwd() / "ddp_assets")
    registry = Registry.load(paths.defs_dir, paths.root)
    ports = [
        (product, port, compile_contract(product.folder / port.contract, port.model, paths.root))
        for product in registry.products.values()
        for port in product.spec.output_ports
    ]
    connection = duckdb.connect(str(warehouse))
    # Warm-up on an empty copy of one port: Soda, pandera and ibis are imported and initialised
    # here, not inside the first timed check.
    product, port, plan = ports[0]
    staging = staging_schema(product.id)
    connection.execute("create schema if not exists bench_warmup")
    connection.execute(
        f"create or replace table bench_warmup.{quote(port.model)} as "
        f"select * from {staging}.{quote(port.model)} limit 0"
    )
    run_quality(connection, plan, "bench_warmup", port.model)
    run_quality_many(connection, [(plan, "bench_warmup", port.model)] * 2)
    validate_table(connection, plan, "bench_warmup", port.model)
    connection.execute("drop schema bench_warmup cascade")
    imports = time.perf_counter() - started_imports
    rss_before_checks = _peak_rss_mb()

    items = [(plan, staging_schema(product.id), port.model) for product, port, plan in ports]
    python_ports = [port.model in product.python_model_names for product, port, _ in ports]

    pandera_timing = [0.0, 0.0]  # wall, CPU: over every round

    def pandera() -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        for (plan, staging, model), python_port in zip(items, python_ports, strict=True):
            if python_port:
                validate_table(connection, plan, staging, model)
        pandera_timing[0] += time.perf_counter() - t0
        pandera_timing[1] += time.process_time() - c0

    port_seconds = [0.0] * len(items)

    def each() -> list[list[Any]]:
        """One Soda session per port (the audit as one step per port runs it)."""
        results = []
        for index, item in enumerate(items):
            started = time.perf_counter()
            results.append(run_quality(connection, *item))
            port_seconds[index] += time.perf_counter() - started
        pandera()
        return results

    def many() -> list[list[Any]]:
        """One Soda session for every port (the audit of a whole layer in one step)."""
        results = run_quality_many(connection, items)
        pandera()
        return results

    def sql() -> list[dict[str, bool]]:
        # under the same DuckDB settings as the platform's checks
        with warehouse_of(connection).bounded_memory(connection):
            return [
                sql_pass(connection, plan, f"{staging}.{quote(model)}")
                for plan, staging, model in items
            ]

    # Rounds in the order A B B A A B B A (and the SQL pass after each), so a drift of the
    # machine's load or of DuckDB's caches weighs on both ways alike; figures are the medians
    # (this box is shared: a median shrugs off one disturbed round, a mean does not).
    wall: dict[str, list[float]] = {"each": [], "many": [], "sql": []}
    cpu_times: dict[str, list[float]] = {"each": [], "many": [], "sql": []}
    answers: dict[str, list[Any]] = {}
    rounds = ("each", "many", "many", "each") * 2
    for way in rounds:
        run = {"each": each, "many": many}[way]
        for name, call in ((way, run), ("sql", sql)):
            t0, c0 = time.perf_counter(), time.process_time()
            answer = call()
            wall[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
            answers[name] = answer
    seconds = {k: statistics.median(v) for k, v in wall.items()}
    cpu = {k: statistics.median(v) for k, v in cpu_times.items()}
    counts = {k: len(v) for k, v in wall.items()}
    rss_checks = _peak_rss_mb()

    per_port: list[dict[str, Any]] = []
    disagreements: list[str] = []
    each_vs_many: list[str] = []
    rules = 0
    for index, (product, port, plan) in enumerate(ports):
        name = f"{product.id}.{port.name}"
        verdicts = answers["sql"][index]
        many_results = answers["many"][index]
        rules += len(plan.rules)
        for result in many_results:
            expected = verdicts.get(result.check_name)
            if result.error is None and expected is not None and expected != result.passed:
                disagreements.append(f"{name}:{result.check_name}")
        if [_key(r) for r in answers["each"][index]] != [_key(r) for r in many_results]:
            each_vs_many.append(name)
        table = f"{items[index][1]}.{quote(port.model)}"
        (rows,) = connection.execute(f"select count(*) from {table}").fetchone() or (0,)
        per_port.append(
            {
                "port": name,
                "rows": int(rows),
                "rules": len(plan.rules),
                "pandera": python_ports[index],
                "soda_seconds_alone": round(port_seconds[index] / counts["each"], 4),
            }
        )
    publish = _publish_costs(connection, ports, staging_schema)
    connection.close()
    print(
        json.dumps(
            {
                "imports_and_warmup": imports,
                # C: every port's checks with one Soda session for all ports (run_quality_many)
                "platform_seconds": seconds["many"],
                "platform_cpu_seconds": cpu["many"],
                # the same with one Soda session per port (run_quality per port)
                "platform_each_seconds": seconds["each"],
                "platform_each_cpu_seconds": cpu["each"],
                # pandera's share of both (the Python port's schema), per round (mean)
                "pandera_seconds": pandera_timing[0] / len(rounds),
                "pandera_cpu_seconds": pandera_timing[1] / len(rounds),
                "sql_seconds": seconds["sql"],
                "sql_cpu_seconds": cpu["sql"],
                "ports": len(ports),
                "rules": rules,
                "disagreements": disagreements,
                "each_vs_many_differences": each_vs_many,
                "peak_rss_mb_before_checks": round(rss_before_checks, 1),
                "peak_rss_mb_after_checks": round(rss_checks, 1),
                "peak_rss_mb_after_publish_costs": round(_peak_rss_mb(), 1),
                "per_port": per_port,
                **publish,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

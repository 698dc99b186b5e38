"""Landing-zone sensors: a new or changed file at a source-aligned product's input port starts
exactly one run of that product; a file that cannot be read, or that fails the port's input
contract, is quarantined with its reason before any run sees it.

The run key is the fingerprint of the port's files (names, sizes, modification times) with a
sequence number, and the cursor keeps the last fingerprint per port and the sequence, so a
restart neither loses nor repeats a run, and files that return to an earlier state (a bad file
removed) load again. On the
very first evaluation the cursor is seeded from the fingerprint the last materialization of the
raw table recorded: files already loaded by ``ddp materialize`` do not start a run.

Each new file is checked on its own, in an in-memory DuckDB (nothing is pulled into Python):
readable as the port's format, not empty, and, when the port has a contract
(``contracts/<port>.odcs.yaml``), valid against the contract's pandera schema. The cursor
remembers which files (name, size, mtime) were checked, so a file is validated once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import validate_table
from ddp_assets.ingest.landing import (
    files_fingerprint,
    landing_contract_path,
    landing_files,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort
from ddp_assets.spec.registry import Product
from ddp_assets.warehouse import quote
from ddp_assets.warehouse.duckdb import file_reader

_PROBES = {
    "csv": "select count(*) from read_csv(?, header = true)",
    "parquet": "select count(*) from read_parquet(?)",
    "json": "select count(*) from read_json(?, format = 'newline_delimited')",
}


@dataclass(frozen=True)
class Quarantined:
    file: Path
    moved_to: Path
    reason: str


def unreadable_reason(path: Path, file_format: str) -> str | None:
    """Why DuckDB cannot read the file as the port's format, or None when it can."""
    try:
        with duckdb.connect() as connection:
            connection.execute(_PROBES[file_format], [str(path)]).fetchall()
    except duckdb.Error as error:
        return f"cannot be read as {file_format}: {str(error).splitlines()[0]}"
    if path.stat().st_size == 0:
        return "the file is empty"
    return None


def contract_violation(path: Path, port: FileInputPort, plan: ContractPlan) -> str | None:
    """Why the file fails the port's input contract, or None when it passes.

    The file alone is loaded into an in-memory DuckDB and validated there with the contract's
    pandera schema, so a bad file is caught before it reaches the warehouse.
    """
    with duckdb.connect() as connection:
        connection.execute("create schema landing")
        connection.execute(
            f"create table landing.{quote(port.name)} as select * from "
            + file_reader([path], port.format)
        )
        result = validate_table(connection, plan, "landing", port.name)
    if result.passed:
        return None
    return f"fails its input contract {plan.contract_id}@{plan.contract_version}: " + (
        result.summary()
    )


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def quarantine(
    path: Path, reason: str, paths: ProjectPaths, product: str, port: str
) -> Quarantined:
    """Move a bad landing file aside, with a JSON note of why; nothing else changes."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = paths.data_dir / "quarantine" / product / stamp
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    shutil.move(str(path), target)
    note = {
        "file": str(path),
        "product": product,
        "input_port": port,
        "reason": reason,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    (folder / f"{path.name}.reason.json").write_text(json.dumps(note, indent=2) + "\n")
    return Quarantined(path, target, reason)


def _recorded_fingerprint(
    instance: dg.DagsterInstance, product: Product, port: FileInputPort
) -> str | None:
    event = instance.get_latest_materialization_event(dg.AssetKey([product.id, port.name]))
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("ddp/files_fingerprint")
    return str(getattr(value, "value", value)) if value is not None else None


def evaluate_landing(
    context: dg.SensorEvaluationContext, product: Product, paths: ProjectPaths
) -> dg.SensorResult:
    """One sensor tick for one product (a function, so tests can call it directly)."""
    cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    checked: dict[str, list[str]] = cursor.pop(_CHECKED, {})
    sequence = int(cursor.pop(_SEQUENCE, 0))
    fresh_cursor: dict[str, Any] = dict(cursor)
    fresh_checked: dict[str, list[str]] = {}
    changed: list[str] = []
    for port in product.spec.input_ports:
        if not isinstance(port, FileInputPort):
            continue
        files = landing_files(paths.landing_dir, port.path)
        previous = cursor.get(port.name)
        if previous is None and context.instance is not None:
            previous = _recorded_fingerprint(context.instance, product, port)
        if not files or files_fingerprint(files) == previous:
            fresh_checked[port.name] = checked.get(port.name, [])
            continue
        good = _screen(context, product, port, paths, files, set(checked.get(port.name, [])))
        fresh_checked[port.name] = [_stamp(f) for f in good]
        if not good:
            continue
        fingerprint = files_fingerprint(good)
        fresh_cursor[port.name] = fingerprint
        if fingerprint != previous:
            changed.append(port.name)
    run_requests = []
    if changed:
        # The run key names this change: the files' fingerprints and a sequence number kept in
        # the cursor. A tick evaluated again after a crash repeats both (Dagster drops the
        # duplicate request); files that return to an earlier state are a new change.
        sequence += 1
        key = hashlib.sha256(json.dumps(fresh_cursor, sort_keys=True).encode()).hexdigest()[:24]
        run_requests.append(
            dg.RunRequest(
                run_key=f"{product.id}:{sequence}:{key}",
                tags={
                    "ddp/product": product.id,
                    "ddp/trigger": "landing",
                    "ddp/changed_ports": ",".join(changed),
                },
            )
        )
    fresh_cursor[_CHECKED] = fresh_checked
    fresh_cursor[_SEQUENCE] = sequence
    return dg.SensorResult(
        run_requests=run_requests, cursor=json.dumps(fresh_cursor, sort_keys=True)
    )


_CHECKED = "_checked"  # cursor key: per port, the stamps of files already screened
_SEQUENCE = "_sequence"  # cursor key: how many runs this sensor has requested


def _screen(
    context: dg.SensorEvaluationContext,
    product: Product,
    port: FileInputPort,
    paths: ProjectPaths,
    files: list[Path],
    already_checked: set[str],
) -> list[Path]:
    """The files that may be loaded; the others are quarantined with their reason."""
    contract = landing_contract_path(product, port)
    plan = compile_contract(contract, port.name, paths.root) if contract.is_file() else None
    good = []
    for path in files:
        if _stamp(path) in already_checked:
            good.append(path)
            continue
        reason = unreadable_reason(path, port.format)
        if reason is None and plan is not None:
            reason = contract_violation(path, port, plan)
        if reason is None:
            good.append(path)
            continue
        moved = quarantine(path, reason, paths, product.id, port.name)
        context.log.warning(f"quarantined {path} → {moved.moved_to}: {reason}")
    return good


def landing_sensor(
    product: Product, paths: ProjectPaths, interval_seconds: int
) -> dg.SensorDefinition:
    ports = [p.name for p in product.spec.input_ports if isinstance(p, FileInputPort)]

    @dg.sensor(
        name=f"{product.id}__landing",
        target=dg.AssetSelection.groups(product.id),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Runs '{product.id}' when files land at its input ports ({', '.join(ports)}); "
        "files that cannot be read or fail the port's contract are moved to the quarantine folder.",
    )
    def _landing(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return evaluate_landing(context, product, paths)

    return _landing

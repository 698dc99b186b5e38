"""Landing-zone sensors: a new or changed file at a source-aligned product's input port starts
exactly one run of that product; a file that cannot be read is quarantined with its reason.

The run key is the fingerprint of the port's files (names, sizes, modification times), and the
cursor keeps the last fingerprint per port, so a restart neither loses nor repeats a run. On the
very first evaluation the cursor is seeded from the fingerprint the last materialization of the
raw table recorded: files already loaded by ``ddp materialize`` do not start a run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from ddp_assets.ingest.landing import files_fingerprint, landing_files
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort
from ddp_assets.spec.registry import Product

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
    cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    fresh_cursor = dict(cursor)
    changed: list[str] = []
    for port in product.spec.input_ports:
        if not isinstance(port, FileInputPort):
            continue
        good = []
        for path in landing_files(paths.landing_dir, port.path):
            reason = unreadable_reason(path, port.format)
            if reason is None:
                good.append(path)
                continue
            moved = quarantine(path, reason, paths, product.id, port.name)
            context.log.warning(f"quarantined {path} → {moved.moved_to}: {reason}")
        if not good:
            continue
        fingerprint = files_fingerprint(good)
        previous = cursor.get(port.name)
        if previous is None and context.instance is not None:
            previous = _recorded_fingerprint(context.instance, product, port)
        fresh_cursor[port.name] = fingerprint
        if fingerprint != previous:
            changed.append(port.name)
    run_requests = []
    if changed:
        key = hashlib.sha256(json.dumps(fresh_cursor, sort_keys=True).encode()).hexdigest()[:24]
        run_requests.append(
            dg.RunRequest(
                run_key=f"{product.id}:{key}",
                tags={
                    "ddp/product": product.id,
                    "ddp/trigger": "landing",
                    "ddp/changed_ports": ",".join(changed),
                },
            )
        )
    return dg.SensorResult(
        run_requests=run_requests, cursor=json.dumps(fresh_cursor, sort_keys=True)
    )


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
        "unreadable files are moved to the quarantine folder.",
    )
    def _landing(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return evaluate_landing(context, product, paths)

    return _landing

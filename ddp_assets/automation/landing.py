"""Landing-zone sensors: a new or changed file at a source-aligned product's input port starts
exactly one run of that product; a file that cannot be read, or that fails the port's input
contract, is quarantined with its reason before any run sees it.

The run key is the fingerprint of the port's files (names, sizes, modification times) with a
sequence number, and the cursor keeps the last fingerprint per port and the sequence, so a
restart neither loses nor repeats a run, and files that return to an earlier state (a bad file
removed) load again. On the
very first evaluation the cursor is seeded from the fingerprint the last materialization of the
raw table recorded: files already loaded by ``ddp materialize`` do not start a run.

Each new entry is screened on its own (:mod:`ddp_assets.ingest.screen`, an in-memory DuckDB:
nothing is pulled into Python): a regular file inside the landing zone (a symbolic link, FIFO,
socket, device or directory is refused without being opened), not empty, with the header and
column types the port expects (its input contract's columns, else the columns the raw table was
last loaded with), readable as the port's format, and, when the port has a contract
(``contracts/<port>.odcs.yaml``), valid against the contract's pandera schema. A refused entry
is moved to ``$DDP_DATA_DIR/quarantine/<product>/<time>/`` (outside the landing zone, so no
glob of a later run meets it) with a ``<name>.reason.json`` note; the refusal is logged by the
sensor and recorded as an observation of the port's raw asset (``ddp/quarantined``). The cursor
remembers which files (name, size, mtime) were checked, so a file is validated once.

A partitioned product (``partitions:``): each landing file belongs to the partition its name
names (:func:`~ddp_assets.ingest.files.file_partition`), and a new or changed file requests a
run of that partition only, one run request per touched partition (a late file for an old
partition requests that old partition). The cursor keeps, per port, the fingerprint of each
partition's files; on the first evaluation it is seeded from what each partition's last load
recorded (``ddp/partition_fingerprints``), so partitions already loaded do not run again. A file
whose name names no partition of the product (no date, a date before ``partitions.start``, an
unknown key) is quarantined like any refused file, the reason naming the expected name; a file
of a partition that does not exist yet (its window has not ended) waits, unscreened, until it
does.

A product partitioned by file (``partitions: {by: file}``): each file is its own partition, keyed
by its path (:func:`~ddp_assets.partitions.file_partition_key`). A new file's partition is added
to the product's dynamic partitions in the same tick (``SensorResult.dynamic_partitions_requests``,
an ``AddDynamicPartitionsRequest`` for the keys the instance does not have yet) and a run of that
partition only is requested; a changed file (same path, new content) requests its partition
again. The partition column ddp writes into the raw table is not a column the files must have.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import validate_table
from ddp_assets.ingest.files import (
    file_partition,
    file_stamp,
    files_fingerprint,
    landing_entries,
    partition_file_example,
    partition_file_rule,
)
from ddp_assets.ingest.landing import landing_contract_path
from ddp_assets.ingest.screen import ExpectedColumns, describe, screen_file
from ddp_assets.naming import file_partitions_name
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort
from ddp_assets.spec.registry import Product
from ddp_assets.warehouse import quote
from ddp_assets.warehouse.duckdb import file_reader

if TYPE_CHECKING:
    import duckdb  # imported where used: not at a definitions load


@dataclass(frozen=True)
class Quarantined:
    file: Path
    moved_to: Path | None  # None: it could not be moved, and is only left out of runs
    reason: str


def contract_violation(path: Path, port: FileInputPort, plan: ContractPlan) -> str | None:
    """Why the file fails the port's input contract, or None when it passes.

    The file alone is loaded into an in-memory DuckDB and validated there with the contract's
    pandera schema, so a bad file is caught before it reaches the warehouse.
    """
    import duckdb

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


def _move(source: Path, target: Path) -> None:
    """Move an entry without reading what it is or points to (a link stays a link)."""
    try:
        os.rename(source, target)
        return
    except OSError:
        mode = os.lstat(source).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
            raise  # a pipe, socket or device is never copied: reading it could block
    shutil.move(str(source), target)  # another file system: links are recreated, not followed


def quarantine(
    path: Path, reason: str, paths: ProjectPaths, product: str, port: str
) -> Quarantined:
    """Move a bad landing entry aside, with a JSON note of why; nothing else changes.

    An entry that cannot be moved (no write access to the landing folder, a pipe on another
    file system) stays where it is; the note says so, and the sensor leaves it out of runs.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = paths.data_dir / "quarantine" / product / stamp
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / path.name
    note: dict[str, Any] = {
        "file": str(path),
        "product": product,
        "input_port": port,
        "reason": reason,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    moved_to: Path | None = destination
    try:
        _move(path, destination)
    except OSError as error:
        note["not_moved"] = f"{type(error).__name__}: {error}"
        moved_to = None
    (folder / f"{path.name}.reason.json").write_text(json.dumps(note, indent=2) + "\n")
    return Quarantined(path, moved_to, reason)


@dataclass(frozen=True)
class _Recorded:
    """What the raw table's last materialization recorded of its files and columns."""

    fingerprint: str | None = None
    columns: tuple[tuple[str, str], ...] = ()


def _recorded(
    instance: dg.DagsterInstance | None, product: Product, port: FileInputPort
) -> _Recorded:
    if instance is None:
        return _Recorded()
    event = instance.get_latest_materialization_event(dg.AssetKey([product.id, port.name]))
    if event is None or event.asset_materialization is None:
        return _Recorded()
    metadata = event.asset_materialization.metadata
    value = metadata.get("ddp/files_fingerprint")
    fingerprint = str(getattr(value, "value", value)) if value is not None else None
    schema = getattr(metadata.get("dagster/column_schema"), "value", None)
    partitioning = product.spec.partitions
    # a by-file product's partition column is ddp's, written at the load: not the files'
    written = partitioning.column.lower() if partitioning and partitioning.by == "file" else None
    columns = (
        tuple((c.name, c.type) for c in schema.columns if c.name.lower() != written)
        if isinstance(schema, dg.TableSchema)
        else ()
    )
    return _Recorded(fingerprint, columns)


def evaluate_landing(
    context: dg.SensorEvaluationContext, product: Product, paths: ProjectPaths
) -> dg.SensorResult:
    """One sensor tick for one product (a function, so tests can call it directly)."""
    cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    checked: dict[str, list[str]] = cursor.pop(_CHECKED, {})
    refused: dict[str, list[str]] = cursor.pop(_REFUSED, {})
    sequence = int(cursor.pop(_SEQUENCE, 0))
    fresh_cursor: dict[str, Any] = dict(cursor)
    fresh_checked: dict[str, list[str]] = {}
    fresh_refused: dict[str, list[str]] = {}
    observations: list[dg.AssetObservation] = []
    changed: list[str] = []
    if product.spec.partitions is not None:
        return _evaluate_partitioned(context, product, paths, cursor, checked, refused, sequence)
    for port in product.spec.input_ports:
        if not isinstance(port, FileInputPort):
            continue
        entries = landing_entries(paths.landing_dir, port.path)
        previous = cursor.get(port.name)
        recorded = _Recorded()
        if previous is None:
            recorded = _recorded(context.instance, product, port)
            previous = recorded.fingerprint
        if not entries or files_fingerprint(entries) == previous:
            fresh_checked[port.name] = checked.get(port.name, [])
            fresh_refused[port.name] = refused.get(port.name, [])
            continue
        if not recorded.columns:
            recorded = _recorded(context.instance, product, port)
        screen = _PortScreen(context, product, port, paths, recorded)
        good, left = screen.run(
            entries, set(checked.get(port.name, [])), set(refused.get(port.name, []))
        )
        observations.extend(screen.observations)
        fresh_checked[port.name] = [file_stamp(f) for f in good]
        fresh_refused[port.name] = left
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
                tags=_run_tags(product, changed),
            )
        )
    return _tick_result(
        fresh_cursor, fresh_checked, fresh_refused, sequence, run_requests, observations
    )


def _partition_state(value: object) -> tuple[str | None, dict[str, str]] | None:
    """A partitioned port's cursor entry: (fingerprint of its entries when last looked at,
    {partition key: fingerprint of its files}); None when the cursor holds none (or an
    unpartitioned entry, from before the product was partitioned)."""
    if not isinstance(value, dict):
        return None
    looked = value.get("all")
    parts = value.get("partitions")
    if not isinstance(parts, dict):
        return None
    return (str(looked) if looked else None), {str(k): str(v) for k, v in parts.items()}


_SEED_PAGE = 500
_SEED_RECORDS = 20_000  # the most materializations read to seed one port's cursor


def _recorded_partitions(
    instance: dg.DagsterInstance | None, product: Product, port: FileInputPort, keys: set[str]
) -> dict[str, str]:
    """{partition: the fingerprint its last load recorded} for the given partitions."""
    if instance is None or not keys:
        return {}
    found: dict[str, str] = {}
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey([product.id, port.name]), asset_partitions=sorted(keys)
    )
    seen: set[str] = set()
    page_cursor: str | None = None
    read = 0
    while read < _SEED_RECORDS:
        page = instance.fetch_materializations(records_filter, _SEED_PAGE, cursor=page_cursor)
        for record in page.records:
            materialization = record.asset_materialization
            key = record.partition_key
            if materialization is None or key is None or key in seen:
                continue
            seen.add(key)  # the newest materialization of the partition decides
            value = getattr(
                materialization.metadata.get("ddp/partition_fingerprints"), "data", None
            )
            if isinstance(value, dict) and isinstance(value.get(key), str):
                found[key] = value[key]
        read += len(page.records)
        if not page.has_more or seen >= keys:
            break
        page_cursor = page.cursor
    return found


def _evaluate_partitioned(
    context: dg.SensorEvaluationContext,
    product: Product,
    paths: ProjectPaths,
    cursor: dict[str, Any],
    checked: dict[str, list[str]],
    refused: dict[str, list[str]],
    sequence: int,
) -> dg.SensorResult:
    """One tick for a partitioned product: one run request per partition whose files changed."""
    spec = product.spec
    fresh_cursor: dict[str, Any] = dict(cursor)
    fresh_checked: dict[str, list[str]] = {}
    fresh_refused: dict[str, list[str]] = {}
    observations: list[dg.AssetObservation] = []
    touched: dict[str, dict[str, str]] = {}  # partition -> {port: fingerprint of its files}
    for port in spec.input_ports:
        if not isinstance(port, FileInputPort):
            continue
        entries = landing_entries(paths.landing_dir, port.path)
        waiting: list[Path] = []
        named: dict[Path, str] = {}
        for entry in entries:
            found = file_partition(spec, entry.relative_to(paths.landing_dir))
            if found.opens is not None and found.key is not None:
                waiting.append(entry)
                context.log.info(
                    f"input port '{product.id}.{port.name}': "
                    f"{entry.relative_to(paths.landing_dir)} waits for its partition "
                    f"{found.key}, which opens at {found.opens.isoformat()}"
                )
            elif found.key is not None:
                named[entry] = found.key
        ready = [e for e in entries if e not in waiting]
        state = _partition_state(cursor.get(port.name))
        if state is None:
            state = (
                None,
                _recorded_partitions(context.instance, product, port, set(named.values())),
            )
        looked, previous = state
        if not ready or files_fingerprint(ready) == looked:
            fresh_cursor[port.name] = {"all": looked, "partitions": previous}
            fresh_checked[port.name] = checked.get(port.name, [])
            fresh_refused[port.name] = refused.get(port.name, [])
            continue
        screen = _PortScreen(
            context, product, port, paths, _recorded(context.instance, product, port)
        )
        good, left = screen.run(
            ready, set(checked.get(port.name, [])), set(refused.get(port.name, []))
        )
        observations.extend(screen.observations)
        fresh_checked[port.name] = [file_stamp(f) for f in good]
        fresh_refused[port.name] = left
        by_key: dict[str, list[Path]] = {}
        for path in good:
            key = named.get(path)
            if key is not None:  # None: checked under an earlier partitioning; not loaded
                by_key.setdefault(key, []).append(path)
        current = {key: files_fingerprint(files) for key, files in sorted(by_key.items())}
        for key, fingerprint in current.items():
            if previous.get(key) != fingerprint:
                touched.setdefault(key, {})[port.name] = fingerprint
        # the entries are looked at again once a waiting file's partition opens
        fresh_cursor[port.name] = {
            "all": files_fingerprint([e for e in ready if e.exists() or e.is_symlink()]),
            "partitions": current,
        }
    run_requests = []
    added = _new_file_partitions(context, product, sorted(touched))
    if touched:
        sequence += 1
        for key, ports in sorted(touched.items()):
            digest = hashlib.sha256(json.dumps(ports, sort_keys=True).encode()).hexdigest()[:16]
            run_requests.append(
                dg.RunRequest(
                    run_key=f"{product.id}:{key}:{sequence}:{digest}",
                    partition_key=key,
                    tags=_run_tags(product, sorted(ports)),
                )
            )
    return _tick_result(
        fresh_cursor, fresh_checked, fresh_refused, sequence, run_requests, observations, added
    )


def _new_file_partitions(
    context: dg.SensorEvaluationContext, product: Product, keys: list[str]
) -> list[dg.AddDynamicPartitionsRequest]:
    """For a product partitioned by file: the request adding the touched files' partitions the
    instance does not have yet (Dagster adds them before it resolves the tick's run requests)."""
    partitioning = product.spec.partitions
    if partitioning is None or partitioning.by != "file" or not keys:
        return []
    name = file_partitions_name(product.id)
    new = [k for k in keys if not context.instance.has_dynamic_partition(name, k)]
    return [dg.AddDynamicPartitionsRequest(name, new)] if new else []


def _run_tags(product: Product, ports: list[str]) -> dict[str, str]:
    """The tags of a run the landing sensor requests."""
    return {
        "ddp/product": product.id,
        "ddp/trigger": "landing",
        "ddp/changed_ports": ",".join(ports),
    }


def _tick_result(
    fresh_cursor: dict[str, Any],
    fresh_checked: dict[str, list[str]],
    fresh_refused: dict[str, list[str]],
    sequence: int,
    run_requests: list[dg.RunRequest],
    observations: list[dg.AssetObservation],
    added: list[dg.AddDynamicPartitionsRequest] | None = None,
) -> dg.SensorResult:
    """A tick's result: its run requests, observations and new dynamic partitions, and the
    cursor with the screened and refused files and the request sequence."""
    fresh_cursor[_CHECKED] = fresh_checked
    if any(fresh_refused.values()):
        fresh_cursor[_REFUSED] = {k: v for k, v in fresh_refused.items() if v}
    fresh_cursor[_SEQUENCE] = sequence
    return dg.SensorResult(
        run_requests=run_requests,
        cursor=json.dumps(fresh_cursor, sort_keys=True),
        asset_events=observations,
        dynamic_partitions_requests=added or None,
    )


_CHECKED = "_checked"  # cursor key: per port, the stamps of files already screened
_REFUSED = "_refused"  # cursor key: per port, stamps of refused entries that could not be moved
_SEQUENCE = "_sequence"  # cursor key: how many runs this sensor has requested


class _PortScreen:
    """Screening one port's new entries in one tick: accepted files, quarantined others."""

    def __init__(
        self,
        context: dg.SensorEvaluationContext,
        product: Product,
        port: FileInputPort,
        paths: ProjectPaths,
        recorded: _Recorded,
    ) -> None:
        self.context = context
        self.product = product
        self.port = port
        self.paths = paths
        contract = landing_contract_path(product, port)
        self.plan = (
            compile_contract(contract, port.name, paths.root) if contract.is_file() else None
        )
        self.expected: ExpectedColumns | None = None
        if self.plan is not None:
            self.expected = ExpectedColumns.of_contract(self.plan)
        elif recorded.columns:
            self.expected = ExpectedColumns(
                recorded.columns,
                f"the raw table {product.id}.{port.name} as last loaded",
                exact=False,
            )
        self.observations: list[dg.AssetObservation] = []

    def run(
        self, entries: list[Path], already_checked: set[str], left_in_place: set[str]
    ) -> tuple[list[Path], list[str]]:
        """The files that may be loaded, and the stamps of refused entries left in place."""
        import duckdb

        good: list[Path] = []
        stuck: list[str] = []
        with duckdb.connect() as connection:
            for path in entries:
                stamp = file_stamp(path)
                if stamp in left_in_place:
                    stuck.append(stamp)
                    continue
                if stamp in already_checked:
                    good.append(path)
                    self._learn(connection, path)
                    continue
                reason = self._reason(connection, path)
                if reason is None:
                    good.append(path)
                    continue
                moved = quarantine(path, reason, self.paths, self.product.id, self.port.name)
                self._report(moved)
                if moved.moved_to is None:
                    stuck.append(stamp)
        return good, stuck

    def _learn(self, connection: duckdb.DuckDBPyConnection, path: Path) -> None:
        """Without a contract or a load to compare with, the port's first file sets the header."""
        import duckdb

        if self.expected is not None:
            return
        try:
            columns = describe(connection, path, self.port.format)
        except duckdb.Error:
            return
        self.expected = ExpectedColumns(columns, f"the port's file {path.name}", exact=False)

    def _reason(self, connection: duckdb.DuckDBPyConnection, path: Path) -> str | None:
        spec = self.product.spec
        if spec.partitions is not None:
            shown = path.relative_to(self.paths.landing_dir)
            found = file_partition(spec, shown)
            if found.key is None:
                return (
                    f"its name {shown} names no partition of product '{spec.id}' "
                    f"({found.reason}): a file of this product names {partition_file_rule(spec)}, "
                    f"e.g. {partition_file_example(spec, self.port.path)}"
                )
        screened = screen_file(
            connection, path, self.port.format, self.paths.landing_dir, self.expected
        )
        if screened.reason is not None:
            return screened.reason
        for note in screened.notes:
            self.context.log.warning(f"{self._where(path)}: {note}")
        if self.plan is not None:
            violation = contract_violation(path, self.port, self.plan)
            if violation is not None:
                return violation
        if self.expected is None:
            self.expected = ExpectedColumns(
                screened.columns, f"the port's file {path.name}", exact=False
            )
        return None

    def _where(self, path: Path) -> str:
        try:
            shown = path.relative_to(self.paths.landing_dir)
        except ValueError:
            shown = path
        return f"input port '{self.product.id}.{self.port.name}': {shown}"

    def _report(self, moved: Quarantined) -> None:
        where = self._where(moved.file)
        if moved.moved_to is None:
            self.context.log.error(
                f"{where} refused: {moved.reason}. It could not be moved to quarantine: it is "
                "left out of the runs this sensor requests; remove it by hand."
            )
        else:
            self.context.log.warning(
                f"{where} quarantined to {moved.moved_to}: {moved.reason}. Hint: correct it and "
                "drop it into the landing zone again (the note beside it says why)."
            )
        self.observations.append(
            dg.AssetObservation(
                asset_key=dg.AssetKey([self.product.id, self.port.name]),
                description=f"landing file refused: {moved.file.name}",
                metadata={
                    "ddp/quarantined": str(moved.file),
                    "ddp/reason": moved.reason,
                    "ddp/moved_to": str(moved.moved_to) if moved.moved_to else "not moved",
                },
            )
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
        "files that cannot be read or fail the port's contract are moved to the quarantine folder.",
    )
    def _landing(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return evaluate_landing(context, product, paths)

    return _landing

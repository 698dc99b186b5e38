"""Input ports that bring outside data in: landing-zone files and existing warehouse tables.

A file port becomes the raw table ``<product>.<port>``, read by DuckDB
(``read_csv``/``read_parquet``/``read_json``) and written by the warehouse
(:meth:`~ddp_assets.warehouse.Warehouse.load_files`: in place in DuckDB, through ``COPY`` in
PostgreSQL), so no row is converted by Python. The files'
fingerprint is the asset's data version, so Dagster knows when new data has landed.

Only regular files inside the landing zone are ever read: a symbolic link, a FIFO, a socket, a
device, a directory, or a path that resolves outside the landing zone is refused (looked at
with ``lstat`` only, never opened). The landing sensor quarantines such entries before a run;
the load refuses them again (defence in depth): it loads the port's other files and names each
refused entry in its log and in the ``ddp/refused_files`` metadata.

A partitioned product's landing assets (and its table ports) carry the product's
``PartitionsDefinition`` (:func:`~ddp_assets.partitions.partitions_def`). Each landing file
belongs to the partition its name names (:func:`~ddp_assets.ingest.files.file_partition`), and
a partitioned run loads only the files of its partitions into ``<product>.<port>``: the raw
table holds the run's batch, so a load costs what the batch holds, not the history. A file
naming no partition is skipped with a warning (the landing sensor quarantines it before a run).
A partition without a file loads an empty table with the contract's columns when the port has a
landing contract, and fails the load (naming the partition and an expected file name) when it
has none. The data version is the fingerprint of the files loaded; the metadata lists the
partitions (``ddp/partitions``), the files (``ddp/files``, ``ddp/file_count``) and each
partition's fingerprint (``ddp/partition_fingerprints``, which the landing sensor reads).

A product partitioned by file (``partitions: {by: file, column: C}``): each file is its own
partition (:func:`~ddp_assets.partitions.file_partition_key`), and a run of some partitions loads
exactly their files, each row with its file's key in the column ``C`` (a ``varchar``, replacing a
column of that name in the file), so the models filter with ``ddp_partition_filter('C')`` and the
output ports carry it. The files are read by an in-memory DuckDB into one Parquet file (each file
typed on its own, then unioned by name) that the warehouse loads as any landing file. A partition
whose file is gone (removed, renamed, or of another port of the product) adds no rows: the
table is loaded empty with the contract's columns, or emptied when the port has no contract; a
port with neither a contract nor an earlier load fails, naming the partition.
"""

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import PANDERA_CHECK, pandera_result, validate_table
from ddp_assets.ingest.files import (
    file_partition,
    files_fingerprint,
    landing_entries,
    partition_file_example,
    partition_file_rule,
    refusal_reason,
)
from ddp_assets.metadata import WRITER_POOL, column_schema, product_meta, product_tags
from ddp_assets.naming import product_schema
from ddp_assets.partitions import backfill_policy, partitions_def
from ddp_assets.policies import refresh_condition
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort, ProductSpec, TableInputPort
from ddp_assets.spec.registry import Product
from ddp_assets.warehouse import (
    Warehouse,
    literal,
    quote,
    relation,
    relation_exists,
    row_count,
    table_columns,
    warehouse_for,
)
from ddp_assets.warehouse.duckdb import file_reader


class LandingFilesMissing(dg.Failure):
    """No file matches a file input port's glob."""


def landing_contract_path(product: Product, port: FileInputPort) -> Path:
    """The optional contract of a file input port, by convention ``contracts/<port>.odcs.yaml``."""
    return product.folder / "contracts" / f"{port.name}.odcs.yaml"


def _file_port_spec(
    product: Product, port: FileInputPort, paths: ProjectPaths
) -> tuple[dg.AssetSpec, ContractPlan | None, dg.AssetCheckSpec | None]:
    spec = product.spec
    key = dg.AssetKey([spec.id, port.name])
    contract_path = landing_contract_path(product, port)
    plan = (
        compile_contract(contract_path, port.name, paths.root) if contract_path.is_file() else None
    )
    check = (
        dg.AssetCheckSpec(
            PANDERA_CHECK,
            asset=key,
            blocking=True,
            description="The landing files match their contract (pandera schema, validated "
            f"in DuckDB through ibis; {plan.file})",
        )
        if plan
        else None
    )
    asset_spec = dg.AssetSpec(
        key=key,
        automation_condition=refresh_condition(spec),
        group_name=spec.id,
        owners=list(spec.owners),
        tags=product_tags(product_meta(product)),
        kinds={warehouse_for(paths).kind, port.format},
        description=port.description or f"Landing files '{port.path}' loaded as they arrive.",
        metadata={
            "ddp/input_port": port.name,
            "ddp/landing_glob": port.path,
            "ddp/version": spec.version,
            **(
                {"ddp/partition_file": partition_file_example(spec, port.path)}
                if spec.partitions is not None
                else {}
            ),
        },
        partitions_def=partitions_def(spec),
        skippable=True,
    )
    return asset_spec, plan, check


def file_ports_asset(
    product: Product, ports: list[FileInputPort], paths: ProjectPaths
) -> dg.AssetsDefinition:
    """A product's landing-file input ports, loaded by one step (any subset of them).

    One step per product rather than per port: a step costs its own events, pool claim and
    warehouse connection, while the loads themselves are one ``create table ... as`` each.

    A partitioned product's ports share its ``PartitionsDefinition``; a partitioned run loads
    the files of its partitions only (see the module's docstring).
    """
    spec = product.spec
    specs = {port.name: _file_port_spec(product, port, paths) for port in ports}

    @dg.multi_asset(
        name=f"{spec.id}__landing",
        specs=[asset_spec for asset_spec, _, _ in specs.values()],
        check_specs=[check for _, _, check in specs.values() if check is not None],
        can_subset=True,
        pool=WRITER_POOL,
        backfill_policy=backfill_policy(spec),
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        selected = [
            port for port in ports if specs[port.name][0].key in context.selected_asset_keys
        ]
        keys = (
            list(context.partition_keys)
            if spec.partitions is not None
            # a single partition sets the partition key; a backfill batch, a range
            and (context.has_partition_key or context.has_partition_key_range)
            else None
        )
        # by file: the partition column each row gets (the module's docstring)
        by_file = (
            spec.partitions.column
            if spec.partitions is not None and spec.partitions.by == "file"
            else None
        )
        missing: list[str] = []
        own = product_schema(spec.id)  # the environment's (docs/architecture.md)
        warehouse = warehouse_for(paths)
        with warehouse.writer() as connection:
            for port in selected:
                asset_spec, plan, _ = specs[port.name]
                files, refused = _loadable(paths.landing_dir, port.path)
                for entry, reason in refused:
                    context.log.warning(
                        f"input port '{spec.id}.{port.name}': refused {entry}: {reason}. "
                        "It is not loaded; the landing sensor moves such entries to "
                        f"{paths.data_dir / 'quarantine'}, or remove it."
                    )
                batch: _Batch | None = None
                if by_file is not None:
                    if keys is None and not files:
                        missing.append(_nothing_to_load(spec.id, port, paths, refused))
                        continue
                    # a run without partitions loads every file, each with its own key
                    batch = _batch(spec, port, paths, files, keys or _file_keys(spec, paths, files))
                    for key in batch.absent:
                        context.log.info(
                            f"input port '{spec.id}.{port.name}': partition {key} has no file "
                            "here (removed, renamed, or another port's); it adds no rows"
                        )
                    if not _load_by_file(warehouse, connection, port, by_file, batch, plan, own):
                        missing.extend(batch.absent_messages(spec, port, paths))
                        continue
                    files = batch.files
                elif keys is not None:
                    batch = _batch(spec, port, paths, files, keys)
                    for line in batch.skipped:
                        context.log.warning(line)
                    if batch.absent and plan is None:
                        missing.extend(batch.absent_messages(spec, port, paths))
                        continue
                    for key in batch.absent:
                        context.log.info(
                            f"input port '{spec.id}.{port.name}': no landing file for partition "
                            f"{key}; it adds no rows (the port's contract gives the columns)"
                        )
                    files = batch.files
                if not files and batch is None:
                    missing.append(_nothing_to_load(spec.id, port, paths, refused))
                    continue
                if by_file is None and files:
                    warehouse.load_files(connection, files, port.format, own, port.name)
                elif by_file is None:
                    assert plan is not None  # a batch without files needs the contract
                    _load_empty(warehouse, connection, plan, own, port.name)
                rows = row_count(connection, own, port.name)
                columns = table_columns(connection, own, port.name)
                checked = validate_table(connection, plan, own, port.name) if plan else None
                fingerprint = files_fingerprint(files)
                context.log.info(
                    f"loaded {rows} rows from {len(files)} file(s) into "
                    f"{relation(own, port.name)}"
                    + (f" (partitions {', '.join(keys)})" if keys is not None else "")
                )
                yield dg.MaterializeResult(
                    asset_key=asset_spec.key,
                    metadata={
                        "dagster/row_count": rows,
                        "dagster/column_schema": column_schema(columns),
                        "dagster/table_name": f"{own}.{port.name}",
                        "ddp/files": [str(f.relative_to(paths.landing_dir)) for f in files],
                        "ddp/files_fingerprint": fingerprint,
                        **(batch.metadata() if batch is not None else {}),
                        **(
                            {"ddp/refused_files": {str(e): r for e, r in refused}}
                            if refused
                            else {}
                        ),
                    },
                    data_version=dg.DataVersion(fingerprint),
                    check_results=[pandera_result(checked, plan, asset_spec.key)]
                    if checked and plan
                    else None,
                )
        if missing:
            raise LandingFilesMissing(description="\n".join(missing))

    return _load


class _Batch:
    """The files of a partitioned run's partitions, per partition, and what was left out."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.by_key: dict[str, list[Path]] = {key: [] for key in keys}
        self.skipped: list[str] = []

    @property
    def files(self) -> list[Path]:
        return sorted(f for files in self.by_key.values() for f in files)

    @property
    def absent(self) -> list[str]:
        return [key for key, files in self.by_key.items() if not files]

    def absent_messages(
        self, spec: ProductSpec, port: FileInputPort, paths: ProjectPaths
    ) -> list[str]:
        if spec.partitions is not None and spec.partitions.by == "file":
            return [
                f"no landing file for partition {key} of port '{spec.id}.{port.name}' under "
                f"{paths.landing_dir} (the file was removed or renamed, or is another port's), "
                "and the port has no contract nor an earlier load to give its columns. Hint: "
                f"give the port a landing contract (contracts/{port.name}.odcs.yaml) so that "
                "such a partition loads empty, or drop the file there again."
                for key in self.absent
            ]
        example = partition_file_example(spec, port.path)
        return [
            f"no landing file for partition {key} of port '{spec.id}.{port.name}': expected "
            f"e.g. {example} under {paths.landing_dir} ({partition_file_rule(spec)}). Hint: "
            "drop the partition's file there, or give the port a landing contract "
            f"(contracts/{port.name}.odcs.yaml) so that a partition without a file loads empty."
            for key in self.absent
        ]

    def metadata(self) -> dict[str, Any]:
        return {
            "ddp/partitions": self.keys,
            "ddp/file_count": len(self.files),
            "ddp/partition_fingerprints": dg.MetadataValue.json(
                {key: files_fingerprint(sorted(files)) for key, files in self.by_key.items()}
            ),
        }


def _batch(
    spec: ProductSpec, port: FileInputPort, paths: ProjectPaths, files: list[Path], keys: list[str]
) -> _Batch:
    """Sort the port's loadable files into the run's partitions (other partitions' files are
    left alone; a file naming no partition is skipped with a message)."""
    batch = _Batch(keys)
    for path in files:
        relative = path.relative_to(paths.landing_dir)
        found = file_partition(spec, relative)
        if found.key is None:
            batch.skipped.append(
                f"input port '{spec.id}.{port.name}': skipped {relative}: {found.reason}; a file "
                f"of this product names {partition_file_rule(spec)}, e.g. "
                f"{partition_file_example(spec, port.path)}"
            )
        elif found.key in batch.by_key:
            batch.by_key[found.key].append(path)
    return batch


def _file_keys(spec: ProductSpec, paths: ProjectPaths, files: list[Path]) -> list[str]:
    """The partitions of a by-file product's files (every file names one)."""
    keys = [file_partition(spec, f.relative_to(paths.landing_dir)).key for f in files]
    return sorted({key for key in keys if key is not None})


def _load_by_file(
    warehouse: Warehouse,
    connection: Any,
    port: FileInputPort,
    column: str,
    batch: _Batch,
    plan: ContractPlan | None,
    schema: str,
) -> bool:
    """Replace ``schema.<port>`` with the batch's files, each row with its file's partition key
    in ``column``; a batch without files loads no rows (the contract's columns, else the
    table's own). False, having written nothing, when neither gives the columns."""
    import duckdb

    selects: list[str] = []
    with duckdb.connect() as duck:
        try:
            for key, files in batch.by_key.items():
                for path in files:
                    reader = file_reader([path], port.format)
                    names = {
                        str(row[0]).lower()
                        for row in duck.execute(f"describe select * from {reader}").fetchall()
                    }
                    rest = f"* exclude ({quote(column)})" if column.lower() in names else "*"
                    selects.append(
                        f"select {rest}, cast({literal(key)} as varchar) as {quote(column)} "
                        f"from {reader}"
                    )
            if not selects and plan is None:
                if not relation_exists(connection, schema, port.name):
                    return False
                connection.execute(f"delete from {relation(schema, port.name)}")
                return True
            if not selects:
                assert plan is not None
                typed = [
                    f"cast(null as {c.data_type}) as {quote(c.name)}"
                    for c in plan.columns
                    if c.name.lower() != column.lower()
                ]
                typed.append(f"cast(null as varchar) as {quote(column)}")
                selects.append(f"select {', '.join(typed)} limit 0")
            with tempfile.TemporaryDirectory(prefix="ddp-file-partitions-") as folder:
                target = Path(folder) / f"{port.name}.parquet"
                duck.execute(
                    f"copy ({' union all by name '.join(selects)}) to "
                    f"{literal(str(target))} (format parquet)"
                )
                warehouse.load_files(connection, [target], "parquet", schema, port.name)
        except duckdb.Error as error:
            raise dg.Failure(
                description=f"input port '{port.name}': cannot read the files of partitions "
                f"{', '.join(batch.keys)} into {schema}.{port.name}: "
                f"{str(error).splitlines()[0]}. Hint: check that each file is valid "
                f"{port.format} (the landing sensor quarantines files that are not), and that "
                "the contract's properties have DuckDB physicalTypes.",
                allow_retries=False,
            ) from None
    return True


def _load_empty(
    warehouse: Warehouse, connection: Any, plan: ContractPlan, schema: str, table: str
) -> None:
    """Replace ``schema.table`` with no rows and the contract's columns (a zero-row Parquet file
    typed by DuckDB, loaded as any landing file is, so both warehouses type it alike)."""
    import duckdb

    select = ", ".join(f"cast(null as {c.data_type}) as {quote(c.name)}" for c in plan.columns)
    with tempfile.TemporaryDirectory(prefix="ddp-empty-") as folder:
        target = Path(folder) / f"{table}.parquet"
        try:
            with duckdb.connect() as duck:
                duck.execute(
                    f"copy (select {select} limit 0) to {literal(str(target))} (format parquet)"
                )
        except duckdb.Error as error:
            raise dg.Failure(
                description=f"cannot create the empty table {schema}.{table} from the columns of "
                f"{plan.file}: {str(error).splitlines()[0]}. Hint: give each property a DuckDB "
                "physicalType (e.g. bigint, varchar, timestamp).",
                allow_retries=False,
            ) from None
        warehouse.load_files(connection, [target], "parquet", schema, table)


def _loadable(landing_dir: Path, pattern: str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The port's regular files, and the entries refused with their reason."""
    files: list[Path] = []
    refused: list[tuple[Path, str]] = []
    for entry in landing_entries(landing_dir, pattern):
        reason = refusal_reason(entry, landing_dir)
        if reason is None:
            files.append(entry)
        else:
            refused.append((entry, reason))
    return files, refused


def _nothing_to_load(
    product: str, port: FileInputPort, paths: ProjectPaths, refused: list[tuple[Path, str]]
) -> str:
    where = f"input port '{product}.{port.name}'"
    if Path(port.path).is_absolute():
        return (
            f"{where}: its path '{port.path}' is absolute. Hint: write it relative to the "
            f"landing zone {paths.landing_dir}, e.g. 'orders/*.csv'."
        )
    if not refused:
        return (
            f"{where}: no file matches '{port.path}' under {paths.landing_dir}. Hint: drop "
            "files there, or run `ddp demo` to generate the demo landing zone."
        )
    listing = "; ".join(f"{entry} {reason}" for entry, reason in refused)
    return (
        f"{where}: no regular file to load under '{port.path}', refused: {listing}. Hint: "
        "copy the data itself into the landing zone (a link, pipe or folder is never read)."
    )


def table_port_asset(
    product: Product, port: TableInputPort, paths: ProjectPaths
) -> dg.AssetsDefinition:
    spec = product.spec
    schema, table = port.table.split(".", 1)

    @dg.asset(
        key=[spec.id, port.name],
        group_name=spec.id,
        owners=list(spec.owners),
        tags=product_tags(product_meta(product)),
        kinds={warehouse_for(paths).kind, "view"},
        pool=WRITER_POOL,
        # a partitioned product's assets share its partitions; the view is the whole table in
        # every partition's run (the models filter it by the run's window)
        partitions_def=partitions_def(spec),
        backfill_policy=backfill_policy(spec),
        description=port.description or f"A view over the existing table {port.table}.",
        metadata={"ddp/input_port": port.name, "ddp/table": port.table},
    )
    def _view(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        own = product_schema(spec.id)  # the environment's (docs/architecture.md)
        target = relation(own, port.name)
        with warehouse_for(paths).writer() as connection:
            connection.execute(f"create schema if not exists {quote(own)}")
            connection.execute(
                f"create or replace view {target} as select * from {relation(schema, table)}"
            )
            columns = table_columns(connection, own, port.name)
        context.log.info(f"{target} now reads {port.table}")
        return dg.MaterializeResult(metadata={"dagster/column_schema": column_schema(columns)})

    return _view

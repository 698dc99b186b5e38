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
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import PANDERA_CHECK, pandera_result, validate_table
from ddp_assets.ingest.files import files_fingerprint, landing_entries, refusal_reason
from ddp_assets.metadata import WRITER_POOL, column_schema, product_meta, product_tags
from ddp_assets.policies import refresh_condition
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort, TableInputPort
from ddp_assets.spec.registry import Product
from ddp_assets.warehouse import quote, relation, row_count, table_columns, warehouse_for


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
        },
        skippable=True,
    )
    return asset_spec, plan, check


def file_ports_asset(
    product: Product, ports: list[FileInputPort], paths: ProjectPaths
) -> dg.AssetsDefinition:
    """A product's landing-file input ports, loaded by one step (any subset of them).

    One step per product rather than per port: a step costs its own events, pool claim and
    warehouse connection, while the loads themselves are one ``create table ... as`` each.
    """
    spec = product.spec
    specs = {port.name: _file_port_spec(product, port, paths) for port in ports}

    @dg.multi_asset(
        name=f"{spec.id}__landing",
        specs=[asset_spec for asset_spec, _, _ in specs.values()],
        check_specs=[check for _, _, check in specs.values() if check is not None],
        can_subset=True,
        pool=WRITER_POOL,
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        selected = [
            port for port in ports if specs[port.name][0].key in context.selected_asset_keys
        ]
        missing: list[str] = []
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
                if not files:
                    missing.append(_nothing_to_load(spec.id, port, paths, refused))
                    continue
                warehouse.load_files(connection, files, port.format, spec.id, port.name)
                rows = row_count(connection, spec.id, port.name)
                columns = table_columns(connection, spec.id, port.name)
                checked = validate_table(connection, plan, spec.id, port.name) if plan else None
                fingerprint = files_fingerprint(files)
                context.log.info(
                    f"loaded {rows} rows from {len(files)} file(s) into "
                    f"{relation(spec.id, port.name)}"
                )
                yield dg.MaterializeResult(
                    asset_key=asset_spec.key,
                    metadata={
                        "dagster/row_count": rows,
                        "dagster/column_schema": column_schema(columns),
                        "dagster/table_name": f"{spec.id}.{port.name}",
                        "ddp/files": [str(f.relative_to(paths.landing_dir)) for f in files],
                        "ddp/files_fingerprint": fingerprint,
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
        description=port.description or f"A view over the existing table {port.table}.",
        metadata={"ddp/input_port": port.name, "ddp/table": port.table},
    )
    def _view(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        target = relation(spec.id, port.name)
        with warehouse_for(paths).writer() as connection:
            connection.execute(f"create schema if not exists {quote(spec.id)}")
            connection.execute(
                f"create or replace view {target} as select * from {relation(schema, table)}"
            )
            columns = table_columns(connection, spec.id, port.name)
        context.log.info(f"{target} now reads {port.table}")
        return dg.MaterializeResult(metadata={"dagster/column_schema": column_schema(columns)})

    return _view

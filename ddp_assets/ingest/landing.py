"""Input ports that bring outside data in: landing-zone files and existing warehouse tables.

A file port becomes the raw table ``<product>.<port>``, read by DuckDB
(``read_csv``/``read_parquet``/``read_json``) and written by the warehouse
(:meth:`~ddp_assets.warehouse.Warehouse.load_files`: in place in DuckDB, through ``COPY`` in
PostgreSQL), so no row is converted by Python. The files'
fingerprint is the asset's data version, so Dagster knows when new data has landed.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from ddp_assets.automation.policies import refresh_condition
from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import PANDERA_CHECK, pandera_result, validate_table
from ddp_assets.metadata import WRITER_POOL, product_meta, product_tags
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort, TableInputPort
from ddp_assets.spec.registry import Product
from ddp_assets.warehouse import quote, relation, row_count, table_columns, warehouse_for


class LandingFilesMissing(dg.Failure):
    """No file matches a file input port's glob."""


def landing_files(landing_dir: Path, pattern: str) -> list[Path]:
    return sorted(
        p for p in landing_dir.glob(pattern) if p.is_file() and not p.name.startswith(".")
    )


def files_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def column_schema(columns: list[tuple[str, str]]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])


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
                files = landing_files(paths.landing_dir, port.path)
                if not files:
                    missing.append(
                        f"input port '{spec.id}.{port.name}': no file matches "
                        f"'{port.path}' under {paths.landing_dir}. Hint: drop files there, "
                        "or run `ddp demo` to generate the demo landing zone."
                    )
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
                    },
                    data_version=dg.DataVersion(fingerprint),
                    check_results=[pandera_result(checked, plan, asset_spec.key)]
                    if checked and plan
                    else None,
                )
        if missing:
            raise LandingFilesMissing(description="\n".join(missing))

    return _load


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

"""Depot input ports as Dagster assets: one asset per port, loaded by dlt.

A ``type: depot`` input port (:class:`~ddp_assets.spec.model.DepotInputPort`) becomes the
asset ``[product, port]``, in the product's group with its owners and tags, of kinds ``dlt``,
the depot's kind and the warehouse's, writing the raw table ``<product>.<port>`` where file
ports land (:func:`ddp_assets.depots.pipeline.load_port`). A port with an input contract
(``contracts/<port>.odcs.yaml``, as for file ports) gets the same blocking pandera check, and
its columns are the ones a source may not drop or retype: then the load fails before anything
is written, so downstream models do not run and nothing is published.

A partitioned product's depot asset carries the product's ``PartitionsDefinition``, so it runs
in the same partitioned runs as the product's other assets, but a depot has no partitions of its
own: each run loads the depot port whole, as an unpartitioned product's does (its cursor, when
it has one, keeps incremental loads incremental), and the models filter the raw table by the
run's window.

Nothing of dlt is imported here: :func:`depot_port_assets` reads the depot files (small YAML),
and dlt is imported by the compute function when the asset runs.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import PANDERA_CHECK, pandera_result, validate_table
from ddp_assets.depots.connect import source_dataset
from ddp_assets.depots.loader import Depots, LoadedDepot, load_depots
from ddp_assets.depots.model import FilesystemDepot, PostgresDepot, RestApiDepot, SqlDepot
from ddp_assets.depots.secrets import redact
from ddp_assets.metadata import WRITER_POOL, column_schema, product_meta, product_tags
from ddp_assets.naming import product_schema
from ddp_assets.partitions import backfill_policy, partitions_def
from ddp_assets.policies import refresh_condition
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, dotted
from ddp_assets.spec.model import DepotInputPort
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import warehouse_for

_FIELDS_BY_KIND = {
    "table": (PostgresDepot, SqlDepot),
    "query": (PostgresDepot, SqlDepot),
    "resource": (RestApiDepot,),
    "files": (FilesystemDepot,),
}
_KIND_OF_FIELD = {
    "table": "postgres or sql",
    "query": "postgres or sql",
    "resource": "rest_api",
    "files": "filesystem",
}


def depot_kind_tag(depot: LoadedDepot) -> str:
    """The Dagster kind of a depot's source (shown as an icon where Dagster has one)."""
    value = depot.depot
    if isinstance(value, FilesystemDepot):
        return "s3" if value.scheme == "s3" else "file"
    if isinstance(value, RestApiDepot):
        return "api"
    if isinstance(value, SqlDepot):
        scheme = value.url.split("://", 1)[0].split("+", 1)[0]
        return "postgres" if scheme == "postgresql" else scheme
    return "postgres"


def depot_contract_path(product: Product, port: DepotInputPort) -> Path:
    """The optional input contract of a depot port: ``contracts/<port>.odcs.yaml``."""
    return product.folder / "contracts" / f"{port.name}.odcs.yaml"


def port_problems(product: Product, depots: Depots) -> list[SpecProblem]:
    """The depot ports of a product that name no depot, or one of the wrong kind."""
    problems: list[SpecProblem] = []
    for index, port in enumerate(product.spec.input_ports):
        if not isinstance(port, DepotInputPort):
            continue
        loaded = depots.get(port.depot)
        if loaded is None:
            own = [p for p in depots.problems if p.file.endswith(f"/{port.depot}.yaml")]
            if own:
                problems.extend(own)
                continue
            from ddp_assets.spec.errors import did_you_mean

            where = ("input_ports", index, "depot")
            problems.append(
                SpecProblem(
                    product.loaded.display_path,
                    product.loaded.line_of(*where),
                    dotted(where),
                    f"input port '{port.name}' names unknown depot '{port.depot}'",
                    did_you_mean(port.depot, depots.depots)
                    or f"declare it in depots/{port.depot}.yaml; known depots: "
                    f"{', '.join(depots.depots) or 'none'}",
                )
            )
            continue
        for field_name, kinds in _FIELDS_BY_KIND.items():
            if getattr(port, field_name) and not isinstance(loaded.depot, kinds):
                where = ("input_ports", index, field_name)
                problems.append(
                    SpecProblem(
                        product.loaded.display_path,
                        product.loaded.line_of(*where),
                        dotted(where),
                        f"'{field_name}' is for a {_KIND_OF_FIELD[field_name]} depot; depot "
                        f"'{loaded.name}' is {loaded.kind}",
                        {
                            "rest_api": "name the API path with 'resource:'",
                            "filesystem": "name the files with 'files:' and 'format:'",
                        }.get(loaded.kind, "name the table with 'table:' or a 'query:'"),
                    )
                )
    return problems


def depot_problems(registry: Registry, paths: ProjectPaths) -> list[SpecProblem]:
    """For ``ddp validate``: the project's depot files, and every depot port's depot."""
    uses = [
        product
        for product in registry.products.values()
        if any(isinstance(p, DepotInputPort) for p in product.spec.input_ports)
    ]
    if not uses and not paths.depots_dir.is_dir():
        return []
    depots = load_depots(paths)
    problems = list(depots.problems)
    for product in uses:
        problems.extend(p for p in port_problems(product, depots) if p not in problems)
    return problems


def depot_port_assets(
    product: Product, ports: list[DepotInputPort], paths: ProjectPaths, depots: Depots
) -> list[dg.AssetsDefinition]:
    """The product's depot ports, one asset each (``depots``: the build's, read once);
    SpecErrors for a port no depot serves."""
    problems = port_problems(product, depots)
    if problems:
        raise SpecErrors(problems)
    return [_port_asset(product, port, depots.depots[port.depot], paths) for port in ports]


def _port_asset(
    product: Product, port: DepotInputPort, depot: LoadedDepot, paths: ProjectPaths
) -> dg.AssetsDefinition:
    from ddp_assets.depots.pipeline import source_what, write_disposition

    spec = product.spec
    key = dg.AssetKey([spec.id, port.name])
    contract_path = depot_contract_path(product, port)
    plan: ContractPlan | None = (
        compile_contract(contract_path, port.name, paths.root) if contract_path.is_file() else None
    )
    namespace, name = source_dataset(depot, paths, source_what(port))
    source = redact(f"{namespace.rstrip('/')}/{name.lstrip('/')}")
    check_specs = (
        [
            dg.AssetCheckSpec(
                PANDERA_CHECK,
                asset=key,
                blocking=True,
                description="The loaded rows match the port's input contract (pandera schema, "
                f"validated in the warehouse; {plan.file})",
            )
        ]
        if plan
        else []
    )

    @dg.asset(
        key=key,
        group_name=spec.id,
        owners=list(spec.owners),
        tags=product_tags(product_meta(product)),
        kinds={"dlt", depot_kind_tag(depot), warehouse_for(paths).kind},
        pool=WRITER_POOL,
        automation_condition=refresh_condition(spec),
        check_specs=check_specs,
        # a partitioned product's partitions; each partition's run loads the port whole
        partitions_def=partitions_def(spec),
        backfill_policy=backfill_policy(spec),
        description=port.description
        or f"Loaded by dlt from depot '{depot.name}' ({source}), {write_disposition(port)}"
        + (f" by cursor '{port.cursor}'" if port.cursor else "")
        + ".",
        metadata={
            "ddp/input_port": port.name,
            "ddp/depot": depot.name,
            "ddp/depot_kind": depot.kind,
            "ddp/source_dataset": source,
            "ddp/write_disposition": write_disposition(port),
            **({"ddp/cursor_column": port.cursor} if port.cursor else {}),
        },
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        from ddp_assets.depots.connect import DepotError
        from ddp_assets.depots.pipeline import PortMismatch, load_port

        contract_columns = [c.name for c in plan.columns] if plan else None
        try:
            report = load_port(
                spec.id,
                port,
                depot,
                paths,
                contract_columns=contract_columns,
                log=lambda message: context.log.warning(redact(message)),
            )
        except PortMismatch as error:
            raise dg.Failure(
                description=redact(error.message),
                metadata={
                    "ddp/removed_columns": error.removed,
                    "ddp/retyped_columns": error.retyped,
                },
                allow_retries=False,
            ) from None
        except DepotError as error:
            raise dg.Failure(
                description=redact("\n".join(p.format() for p in error.problems)),
                allow_retries=True,
            ) from None
        checked = None
        if plan is not None:
            with warehouse_for(paths).writer() as connection:
                checked = validate_table(connection, plan, product_schema(spec.id), port.name)
        context.log.info(
            redact(
                f"loaded {report.rows} row(s) from {source} into "
                f"{product_schema(spec.id)}.{port.name}"
                + (f" (cursor at {report.cursor})" if report.cursor else "")
            )
        )
        visible = [(c, t) for c, t in report.columns if not c.startswith("_dlt_")]
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows,
                "dagster/column_schema": column_schema(visible),
                "dagster/table_name": f"{product_schema(spec.id)}.{port.name}",
                "ddp/source_dataset": source,
                "ddp/load_id": report.load_id or "",
                **({"ddp/cursor": report.cursor} if report.cursor else {}),
                **(
                    {
                        "ddp/schema_changes": {
                            "added": report.added,
                            "removed": report.removed,
                            "retyped": report.retyped,
                        }
                    }
                    if report.added or report.removed or report.retyped
                    else {}
                ),
            },
            data_version=dg.DataVersion(report.cursor or report.load_id or "empty")
            if report.cursor
            else None,
            check_results=[pandera_result(checked, plan, key)] if checked and plan else None,
        )

    return _load

"""The audit-and-publish asset of an output port (write-audit-publish, see ``contracts/wap.py``).

For every output port ``[product, model]`` is this asset: it depends on the staging asset
``[product, "staging", model]`` (the dbt model or Python model built into
``<product>__staging``), runs the contract's quality rules on the staging relation with Soda
(and, for Python outputs, the pandera schema) as Dagster asset checks, and publishes only when
no check of severity ``error`` failed. Consumers (other products' SQL through ``ref()``, Python
models, BI) read the published relation ``<product>.<model>``.

Where it runs: a port built by dbt is audited and published by the dbt step itself, right
after dbt built it and before dbt builds its consumers
(:mod:`ddp_assets.components.dbt_products`), so a run is not split into one Dagster step per
port; a port written from Python is published by the Python model's own step
(:mod:`ddp_assets.compute.python_models`). Both call :func:`audit_and_publish`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.pandera_checks import (
    PANDERA_CHECK,
    pandera_result,
    sample_markdown,
    validate_table,
)
from ddp_assets.contracts.partitioned import HeldBack, key_columns, publish_partitions
from ddp_assets.contracts.soda import RuleResult, run_quality_many
from ddp_assets.contracts.sql_rules import input_relations
from ddp_assets.contracts.wap import (
    PublishedVersion,
    publish,
    published_version,
    record_audit,
    relation_exists,
    staging_schema,
)
from ddp_assets.metadata import column_schema, product_meta, product_tags
from ddp_assets.naming import port_key, staging_key
from ddp_assets.partitions import Window
from ddp_assets.policies import asset_policies
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import relative
from ddp_assets.spec.model import OutputPort
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import Connection, table_columns, warehouse_for


def _severity(rule_severity: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if rule_severity == "error" else dg.AssetCheckSeverity.WARN


def check_result(
    result: RuleResult, plan: ContractPlan, asset_key: dg.AssetKey
) -> dg.AssetCheckResult:
    """A quality rule's outcome as a Dagster check result: observed, threshold, sample."""
    metadata: dict[str, Any] = {
        "observed": dg.MetadataValue.float(float(result.observed))
        if result.observed is not None
        else dg.MetadataValue.null(),
        "threshold": result.threshold,
        "metric": result.metric,
        "severity": result.severity,
        "contract": f"{plan.contract_id}@{plan.contract_version}",
    }
    if result.column:
        metadata["column"] = result.column
    if result.rows_tested is not None:
        metadata["rows_tested"] = int(result.rows_tested)
    if result.error:
        metadata["error"] = result.error[:2000]
    if not result.passed:
        metadata["failing_rows_sample"] = dg.MetadataValue.md(sample_markdown(result.sample))
        metadata["failing_rows_sample_size"] = len(result.sample)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=result.check_name,
        passed=result.passed,
        # a rule that could not run holds the port back whatever its severity: shown as such
        severity=_severity("error" if result.error else result.severity),
        description=result.summary(),
        metadata=metadata,
    )


@dataclass(frozen=True)
class PortAsset:
    """An output port's publish asset: its spec, its checks and its compiled contract."""

    product: Product
    port: OutputPort
    plan: ContractPlan
    spec: dg.AssetSpec
    check_specs: list[dg.AssetCheckSpec]
    pinned: tuple[int, ...] = ()  # versions consumers pin: retention keeps them

    @property
    def key(self) -> dg.AssetKey:
        return self.spec.key

    @property
    def staging_key(self) -> dg.AssetKey:
        return staging_key(self.product.id, self.port.model)

    @property
    def python_port(self) -> bool:
        return self.port.model in self.product.python_model_names


def port_asset(
    product: Product, port: OutputPort, paths: ProjectPaths, registry: Registry
) -> PortAsset:
    """The publish asset ``[product, model]`` of an output port, with a check per contract rule.

    The contract's ``sql`` rules may read the port and the product's declared inputs only."""
    spec = product.spec
    contract_path = product.folder / port.contract
    plan = compile_contract(
        contract_path, port.model, paths.root, inputs=input_relations(product, registry)
    )
    key = port_key(spec.id, port.model)
    check_specs = [
        dg.AssetCheckSpec(
            rule.check_name,
            asset=key,
            blocking=rule.blocking,
            description=(rule.description or f"{rule.metric} {rule.threshold.describe()}")
            + f" (ODCS {plan.file}:{rule.line}; audited on staging before publishing)",
            metadata={"ddp/severity": rule.severity, "ddp/layer": "quality (Soda)"},
        )
        for rule in plan.rules
    ]
    python_port = port.model in product.python_model_names
    if python_port:  # layer 3: a DataFrame written from Python gets the pandera schema too
        check_specs.append(
            dg.AssetCheckSpec(
                PANDERA_CHECK,
                asset=key,
                blocking=True,
                description=f"The contract's shape (types, required, unique, valid values) as a "
                f"pandera schema, validated in DuckDB through ibis (ODCS {plan.file})",
                metadata={"ddp/severity": "error", "ddp/layer": "DataFrame (pandera)"},
            )
        )
    # the product's refresh condition and, for a port, its freshness policy, set here so the
    # definitions' root does not rebuild the dbt multi-asset to add them (automation/policies.py)
    condition, freshness = asset_policies(spec, key)
    asset_spec = dg.AssetSpec(
        key=key,
        deps=[staging_key(spec.id, port.model)],
        automation_condition=condition,
        freshness_policy=freshness,
        group_name=spec.id,
        owners=list(spec.owners),
        tags=product_tags(product_meta(product), port=port.name),
        # what builds the port (dbt or python), where it lives, and that it is a published table
        kinds={warehouse_for(paths).kind, "python" if python_port else "dbt", "table"},
        description=(port.description or f"Output port '{port.name}'")
        + f" — the published relation {spec.id}.{port.model}, audited against its contract.",
        metadata={
            "ddp/output_port": port.name,
            "ddp/contract": dg.MetadataValue.path(relative(contract_path, paths.root)),
            "ddp/contract_id": plan.contract_id,
            "ddp/contract_version": plan.contract_version,
            "dagster/table_name": f"{spec.id}.{port.model}",
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        c.name,
                        c.data_type,
                        constraints=dg.TableColumnConstraints(
                            nullable=not c.required,
                            unique=c.unique or (len(plan.primary_key) == 1 and c.primary_key),
                        ),
                    )
                    for c in plan.columns
                ]
            ),
        },
        skippable=True,
    )
    from ddp_assets.contracts.rollback import pinned_versions

    pinned = tuple(pinned_versions(registry, product.id, port.name))
    return PortAsset(product, port, plan, asset_spec, check_specs, pinned)


def dbt_port_assets(registry: Registry, paths: ProjectPaths) -> list[PortAsset]:
    """The publish assets of every output port that a dbt model builds."""
    return [
        port_asset(product, port, paths, registry)
        for product in registry.products.values()
        for port in product.spec.output_ports
        if port.model not in product.python_model_names
    ]


@dataclass
class Published:
    """What :func:`audit_and_publish` did for one port: its Dagster events and its verdict."""

    events: list[dg.AssetCheckResult | dg.MaterializeResult] = field(default_factory=list)
    held_back: str | None = None  # why the port was not published


def audit_and_publish(
    connection: Connection, port: PortAsset, run_id: str, log: Any = None
) -> Published:
    """Audit a port's staging relation against its contract; publish it if no blocking rule failed.

    The checks' results are Dagster check results whatever the verdict; a port held back keeps
    its published version and says so (:attr:`Published.held_back`).
    """
    return audit_and_publish_many(connection, [port], run_id, log)[0]


def _quality(connection: Connection, ports: Sequence[PortAsset]) -> list[list[RuleResult]]:
    """The Soda verdicts of several ports' staging relations, in order, in one Soda session."""
    if not ports:
        return []
    return run_quality_many(
        connection,
        [(port.plan, staging_schema(port.product.id), port.port.model) for port in ports],
    )


def audit_and_publish_many(
    connection: Connection,
    ports: Sequence[PortAsset],
    run_id: str,
    log: Any = None,
    windows: Sequence[Window] | None = None,
) -> list[Published]:
    """:func:`audit_and_publish` for the ports a dbt round built, in order, on one connection.

    ``windows``: the partitions a partitioned run built; a port of a partitioned product then
    publishes just those (:mod:`ddp_assets.contracts.partitioned`), the others as always."""
    outcomes = [Published() for _ in ports]
    present: list[int] = []
    for index, port in enumerate(ports):
        staging = staging_schema(port.product.id)
        if relation_exists(connection, staging, port.port.model):
            present.append(index)
        else:
            outcomes[index].held_back = (
                f"output port '{port.product.id}.{port.port.name}': the staging relation "
                f"{staging}.{port.port.model} does not exist, so there is nothing to publish. "
                "Hint: materialize the whole product so its model is built first."
            )
    started = time.perf_counter()
    verdicts = _quality(connection, [ports[i] for i in present])
    audit_seconds = time.perf_counter() - started
    for index, results in zip(present, verdicts, strict=True):
        _finish(
            connection, ports[index], results, outcomes[index], run_id, log, audit_seconds, windows
        )
    return outcomes


def _finish(
    connection: Connection,
    port: PortAsset,
    results: list[RuleResult],
    out: Published,
    run_id: str,
    log: Any,
    audit_seconds: float,
    windows: Sequence[Window] | None = None,
) -> None:
    """After the quality rules: pandera (Python ports), the audit record, then publish or hold.

    A port of a partitioned product in a partitioned run publishes the run's partitions; the
    checks of the partitioned publish (rows outside the windows, keys across partitions) run
    in its transaction, so its audit is recorded after it, with what they found."""
    product_id, key, plan = port.product.id, port.key, port.plan
    staging = staging_schema(product_id)
    started = time.perf_counter()
    out.events.extend(check_result(result, plan, key) for result in results)
    failed = [r.check_name for r in results if r.blocking_failure]
    summaries = [f"{r.check_name}: {r.summary()}" for r in results if r.blocking_failure]
    if port.python_port:
        frame = validate_table(connection, plan, staging, port.port.model)
        out.events.append(pandera_result(frame, plan, key))
        if not frame.passed:
            failed.append(PANDERA_CHECK)
            summaries.append(f"{PANDERA_CHECK}: {frame.summary()}")
    audit_seconds += time.perf_counter() - started
    partitioned = bool(windows) and port.product.spec.partitions is not None
    version, refused, publish_seconds = None, None, 0.0
    if partitioned and not failed:
        assert windows is not None
        started = time.perf_counter()
        try:
            version = _publish_partitions(connection, port, run_id, windows)
        except HeldBack as error:
            refused = error
            failed.append(error.check)
        publish_seconds = time.perf_counter() - started
    # a partitioned port's audit includes its partition checks, made by the publish attempt
    record_audit(
        connection,
        product=product_id,
        port=port.port.name,
        contract_id=plan.contract_id,
        contract_version=plan.contract_version,
        run_id=run_id,
        failed_checks=failed,
    )
    if failed:
        current = published_version(connection, product_id, port.port.name)
        kept = (
            f"the published version (run {current.run_id[:8]}, {current.rows} rows, "
            f"checksum {current.checksum[:12]}) stays as it was"
            if current
            else "nothing was published before"
        )
        out.held_back = (
            f"output port '{product_id}.{port.port.name}' held back: contract "
            f"{plan.contract_id} {plan.contract_version} failed on staging: "
            + "; ".join(summaries)
            + f". {kept}; downstream products do not run on this build."
            if refused is None
            else f"{refused.message} No partition changed: {kept}; downstream products do "
            "not run on this build."
        )
        return
    if version is None:
        started = time.perf_counter()
        version = publish(
            connection,
            product=product_id,
            port=port.port.name,
            model=port.port.model,
            contract_id=plan.contract_id,
            contract_version=plan.contract_version,
            run_id=run_id,
            retain=port.port.retain.versions if port.port.retain else None,
            pinned=port.pinned,
        )
        publish_seconds = time.perf_counter() - started
    columns = table_columns(connection, product_id, port.port.model)
    if log is not None:
        log.info(
            f"published {version.relation}: {version.rows} rows, checksum {version.checksum[:12]}"
        )
    metadata: dict[str, Any] = {}
    if version.partitioned:
        metadata["ddp/partitions"] = dg.MetadataValue.json(version.partitions_written)
    out.events.append(
        dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": version.rows,
                "dagster/column_schema": column_schema(columns),
                "ddp/published_checksum": version.checksum,
                "ddp/published_run_id": version.run_id,
                "ddp/contract_version": version.contract_version,
                "ddp/published_at": version.published_at,
                "ddp/version": version.version,
                "ddp/product_version": version.product_version,
                # the ports of one dbt round are audited together: this is the round's time
                "ddp/audit_seconds": round(audit_seconds, 3),
                "ddp/publish_seconds": round(publish_seconds, 3),
                **metadata,
            },
            data_version=dg.DataVersion(version.checksum[:24]),
        )
    )


def _publish_partitions(
    connection: Connection, port: PortAsset, run_id: str, windows: Sequence[Window]
) -> PublishedVersion:
    """Publish the run's partitions of a partitioned product's port (raises :class:`HeldBack`)."""
    spec, plan = port.product.spec, port.plan
    column = spec.partition_column(port.port)
    assert column is not None
    return publish_partitions(
        connection,
        product=spec.id,
        port=port.port.name,
        model=port.port.model,
        column=column,
        windows=windows,
        contract_id=plan.contract_id,
        contract_version=plan.contract_version,
        run_id=run_id,
        keys=key_columns(plan),
        retain=port.port.retain.versions if port.port.retain else None,
        pinned=port.pinned,
    )


def held_back_failure(messages: Sequence[str]) -> dg.Failure:
    """The step's failure when some of its ports were held back (the others were published)."""
    return dg.Failure(
        description="\n".join(messages),
        metadata={"ddp/held_back": True, "ddp/held_back_ports": len(messages)},
    )

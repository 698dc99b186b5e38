"""The ``DbtProducts`` component: every product's dbt models, and the publish of every output port
they build, as one subsettable multi-asset.

One multi-asset for the whole dbt project means a run over several products starts dbt once
per *round* (below) instead of once per product; the translator still splits the assets into
one Dagster group per product from the ``meta.ddp`` block ddp writes for each model.

Write-audit-publish needs a port audited and published between its product's build and its
consumers' build. The publish assets ``[product, model]`` are part of this multi-asset, so that
happens inside the step: the step runs ``dbt build`` over the selected models that read no
unpublished port of the selection (round 0), audits and publishes the ports those built
(:func:`~ddp_assets.contracts.port_asset.audit_and_publish`), then builds the models that read
them (round 1), and so on. Before, each port was a step of its own and the dbt work was split
into one step per layer: 16 steps and their events, pool claims and connections for the demo,
where this is one (two when a Python model sits between dbt layers: Dagster then splits the
multi-asset around it, as it must).
"""

import graphlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_dbt.asset_utils import (
    DAGSTER_DBT_EXCLUDE_METADATA_KEY,
    DAGSTER_DBT_SELECT_METADATA_KEY,
    build_dbt_specs,
)

from ddp_assets.components.context import context_for
from ddp_assets.contracts.gate import check_input_ports
from ddp_assets.contracts.port_asset import (
    PortAsset,
    audit_and_publish_many,
    dbt_port_assets,
)
from ddp_assets.dbt.agreement import agreement_errors
from ddp_assets.dbt.project import dbt_resource, run_target_path
from ddp_assets.dbt.translator import ProductTranslator, resolve_in_dependency_order
from ddp_assets.metadata import WRITER_POOL
from ddp_assets.naming import dbt_asset_name
from ddp_assets.partitions import (
    backfill_policy,
    dbt_env,
    dbt_environment,
    partitions_def,
    run_windows,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.model import ProductSpec
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import warehouse_for


class DbtProducts(dg.Component, dg.Model, dg.Resolvable):
    """The dbt project behind all data products (dbt-duckdb by default)."""

    select: str = "fqn:*"
    exclude: str = ""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        platform = context_for(context)
        paths, registry = platform.paths, platform.registry
        prepared = platform.prepared()
        problems = agreement_errors(registry, prepared)
        if problems:
            raise SpecErrors(problems)

        translator = ProductTranslator(registry)
        resolve_in_dependency_order(translator, prepared.manifest, prepared.project)
        dbt_specs, dbt_check_specs = build_dbt_specs(
            translator=translator,
            manifest=prepared.manifest,
            select=self.select,
            exclude=self.exclude,
            selector="",
            io_manager_key=None,
            project=prepared.project,
        )
        built = {spec.key for spec in dbt_specs}
        ports = [port for port in dbt_port_assets(registry, paths) if port.staging_key in built]
        owner = {spec.key: str(spec.group_name or "") for spec in dbt_specs}
        owner.update({port.key: port.product.id for port in ports})
        partitioned = {
            product.id for product in registry.products.values() if product.spec.partitions
        }
        assets = []
        # a multi-asset has one PartitionsDefinition: the unpartitioned products share one,
        # each partitioned product has its own (its runs build one partition or a range)
        for group in [None, *sorted(partitioned & set(owner.values()))]:

            def mine(key: dg.AssetKey, group: str | None = group) -> bool:
                product = owner.get(key)
                return product == group if group else product not in partitioned

            group_specs = [s for s in dbt_specs if mine(s.key)]
            group_ports = [port for port in ports if mine(port.key)]
            if not group_specs:
                continue
            assets.append(
                self._multi_asset(
                    group,
                    registry,
                    paths,
                    prepared,
                    group_specs,
                    [c for c in dbt_check_specs if mine(c.asset_key)],
                    group_ports,
                    partitioned,
                )
            )
        return dg.Definitions(assets=assets, resources={"dbt": dbt_resource(paths)})

    def _multi_asset(
        self,
        group: str | None,
        registry: Registry,
        paths: ProjectPaths,
        prepared: Any,
        dbt_specs: list[dg.AssetSpec],
        dbt_check_specs: list[dg.AssetCheckSpec],
        ports: list[PortAsset],
        partitioned: set[str],
    ) -> dg.AssetsDefinition:
        """The multi-asset of the unpartitioned products (``group`` None), or of one
        partitioned product."""
        spec = registry.products[group].spec if group else None
        plan = _StepPlan(registry, paths, {port.key: port for port in ports}, spec)
        if spec is None:
            select = self.select
            exclude = " ".join(
                [*([self.exclude] if self.exclude else []), *(f"group:{p}" for p in partitioned)]
            )
        else:
            select, exclude = f"group:{spec.id}", ""

        @dg.multi_asset(
            name=dbt_asset_name(group),
            # dagster-dbt reads the manifest and translator from the first spec's metadata
            specs=[*dbt_specs, *(port.spec for port in ports)],
            check_specs=[*dbt_check_specs, *(c for port in ports for c in port.check_specs)],
            can_subset=True,
            op_tags={
                DAGSTER_DBT_SELECT_METADATA_KEY: select,
                **({DAGSTER_DBT_EXCLUDE_METADATA_KEY: exclude} if exclude else {}),
            },
            pool=WRITER_POOL,
            allow_arbitrary_check_specs=True,
            partitions_def=partitions_def(spec) if spec else None,
            backfill_policy=backfill_policy(spec) if spec else None,
        )
        def ddp_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
            paths.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
            yield from plan.execute(context, dbt, prepared.project)

        return ddp_dbt_models


@dataclass
class _Round:
    """One ``dbt build`` and the ports it makes ready to publish."""

    models: set[dg.AssetKey] = field(default_factory=set)
    ports: list[PortAsset] = field(default_factory=list)


@dataclass
class _StepPlan:
    """Runs a step of the dbt multi-asset: dbt rounds, each followed by its ports' publish."""

    registry: Registry
    paths: ProjectPaths
    ports: Mapping[dg.AssetKey, PortAsset]
    spec: ProductSpec | None = None  # the partitioned product this step builds, if any

    def rounds(self, context: dg.AssetExecutionContext) -> list[_Round]:
        """The selected models and ports, by how many selected publishes each waits for."""
        selected = context.selected_asset_keys
        deps = context.assets_def.asset_deps
        upstream = {key: [d for d in deps.get(key, ()) if d in selected] for key in selected}
        depth: dict[dg.AssetKey, int] = {}
        # in dependency order, without recursion: a ref() chain may be thousands of models deep
        for key in graphlib.TopologicalSorter(upstream).static_order():
            depth[key] = max(
                (depth[d] + (1 if d in self.ports else 0) for d in upstream[key]), default=0
            )

        rounds: dict[int, _Round] = {}
        for key in sorted(selected, key=lambda k: k.to_user_string()):
            level = depth[key]
            target = rounds.setdefault(level, _Round())
            if key in self.ports:
                target.ports.append(self.ports[key])
            else:
                target.models.add(key)
        return [rounds[level] for level in sorted(rounds)]

    def execute(
        self, context: dg.AssetExecutionContext, dbt: DbtCliResource, project: Any
    ) -> Iterator[Any]:
        """Each round: dbt builds its models, then its ports are audited and published.

        What does not happen is reported as Dagster would across steps: an asset whose work
        failed is *failed* (a dbt error, a port held back by its audit, a product blocked by its
        input ports); one that did not run because something upstream in this run failed, or
        failed a blocking check, is *skipped* (``ddp/skipped`` in the step's failure).
        """
        deps = context.assets_def.asset_deps
        blocking = {spec.key for spec in context.assets_def.check_specs if spec.blocking}
        selected_checks = context.selected_asset_check_keys
        failed: set[dg.AssetKey] = set()
        skipped: set[dg.AssetKey] = set()
        unusable: set[dg.AssetKey] = set()  # built, but a blocking check failed
        problems: list[str] = []

        def upstream_bad(key: dg.AssetKey) -> bool:
            return any(d in failed or d in skipped or d in unusable for d in deps.get(key, ()))

        built_windows = run_windows(self.spec, context) if self.spec else None
        partition_env = dbt_env(self.spec, built_windows)  # DDP_PARTITION (partitions.py)
        for round_ in self.rounds(context):
            skipped |= {k for k in round_.models if upstream_bad(k)}
            models = round_.models - skipped
            blocked = check_input_ports(context, self.registry, self.paths, models)
            held = {b.product for b in blocked}
            problems += [b.message() for b in blocked]
            failed |= {k for k in models if k.path[0] in held}
            models -= failed
            if models:
                built: set[dg.AssetKey] = set()
                # the environment stays as dbt must see it until the invocation has ended: dbt
                # in process (dbt/in_process.py) reads os.environ from its own thread while the
                # events stream, so restoring it after cli() returned raced with dbt's rendering
                # (a model then filtered on whatever DDP_PARTITION the process had before)
                with dbt_environment(partition_env):
                    invocation = dbt.cli(
                        ["build"],
                        context=_RoundContext(
                            context, models, {c for c in selected_checks if c.asset_key in models}
                        ),  # type: ignore[arg-type]
                        target_path=run_target_path(
                            project, context.run.run_id, self.paths.data_dir
                        ),
                        raise_on_error=False,
                    )
                    for event in invocation.stream():
                        if isinstance(event, dg.Output):
                            built.add(context.assets_def.keys_by_output_name[event.output_name])
                        elif isinstance(event, dg.AssetCheckResult) and not event.passed:
                            key = dg.AssetCheckKey(event.asset_key, event.check_name)  # type: ignore[arg-type]
                            if key in blocking:
                                unusable.add(key.asset_key)
                        yield event
                # dbt skips a model downstream of one that failed in the same invocation
                for key in sorted(models - built, key=lambda k: k.to_user_string()):
                    (skipped if upstream_bad(key) else failed).add(key)
                error = invocation.get_error()
                if error is not None:
                    problems.append(str(error))
            # a port whose model was not selected publishes what staging holds (a re-audit)
            ready = [port for port in round_.ports if not upstream_bad(port.key)]
            skipped |= {port.key for port in round_.ports if port not in ready}
            if ready:
                with warehouse_for(self.paths).writer() as connection:
                    outcomes = audit_and_publish_many(
                        connection,
                        ready,
                        context.run.run_id,
                        context.log,
                        windows=built_windows,
                    )
                for port, outcome in zip(ready, outcomes, strict=True):
                    yield from outcome.events
                    if outcome.held_back:
                        failed.add(port.key)
                        problems.append(outcome.held_back)
        if problems or failed or skipped:
            raise dg.Failure(
                description="\n".join(problems) or "some selected assets were not built",
                metadata={
                    "ddp/failed": sorted(k.to_user_string() for k in failed),
                    "ddp/skipped": sorted(k.to_user_string() for k in skipped),
                },
            )


class _RoundContext:
    """The step's context as dagster-dbt should see it for one round: only that round's models.

    dagster-dbt derives the ``dbt build`` selection and which test results are check results
    from ``context.assets_def`` and the selected keys; everything else is the step's own
    context.
    """

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        models: set[dg.AssetKey],
        checks: set[dg.AssetCheckKey],
    ) -> None:
        self._context = context
        self.selected_asset_keys = frozenset(models)
        self.selected_asset_check_keys = frozenset(checks)
        self.assets_def = context.assets_def.subset_for(
            self.selected_asset_keys, self.selected_asset_check_keys
        )
        self.has_assets_def = True

    @property
    def op(self) -> Any:
        """Through the op execution context (``AssetExecutionContext.op`` is deprecated)."""
        return self._context.op_execution_context.op

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

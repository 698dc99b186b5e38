"""Headless runs: materialize products through the Dagster instance (they show in the UI).

The run executes in this process with Dagster's in-process executor, which still claims the
instance's pool slots, so a ``ddp materialize`` started beside ``dagster dev`` or another
``ddp materialize`` waits for the DuckDB writer instead of failing on its lock.

A run killed before its end would keep the writer slot forever: each run records its process
in its tags, and every ``ddp materialize`` first fails the runs whose process is gone and
frees their slots, then keeps an eye out while its steps wait (:mod:`ddp_assets.runtime.orphans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from ddp_assets.lineage.emit import emit_lineage_safely
from ddp_assets.naming import PROD, current_env, tag
from ddp_assets.runtime.instance import definitions, instance
from ddp_assets.runtime.orphans import (
    clean_up_dead_runs,
    report,
    watching_for_dead_runs,
    worker_tags,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, relative


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    severity: str
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class AssetOutcome:
    asset: str
    status: str  # materialized | failed | skipped
    checks: list[CheckOutcome] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)  # the run's, for a partitioned product


@dataclass
class ProductOutcome:
    product: str
    status: str  # succeeded | failed
    assets: list[AssetOutcome] = field(default_factory=list)


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    products: list[ProductOutcome]
    errors: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # every run of the materialize, in order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed_checks(self) -> list[tuple[str, CheckOutcome]]:
        return [
            (asset.asset, check)
            for product in self.products
            for asset in product.assets
            for check in asset.checks
            if not check.passed
        ]


def _jsonable(value: Any) -> Any:
    raw = getattr(value, "value", value)
    if isinstance(raw, (str, int, float, bool)) or raw is None:
        return raw
    if isinstance(raw, (list, tuple)):
        return [_jsonable(v) for v in raw]
    if isinstance(raw, dict):
        return {str(k): _jsonable(v) for k, v in raw.items()}
    return str(raw)


def _skipped_in_failed_steps(failures: Sequence[dg.DagsterEvent]) -> set[str]:
    """Assets a failed step did not attempt because something upstream of them failed.

    A step that builds several layers (the dbt step: models, then their ports' publish, then
    the models that read them) lists them in its failure's ``ddp/skipped`` metadata.
    """
    skipped: set[str] = set()
    for event in failures:
        data = getattr(event.event_specific_data, "user_failure_data", None)
        value = (data.metadata or {}).get("ddp/skipped") if data is not None else None
        raw = getattr(value, "value", value)
        if isinstance(raw, (list, tuple)):
            skipped.update(str(item) for item in raw)
    return skipped


def _located(error: str, paths: ProjectPaths) -> list[str]:
    """A failed dbt step as one message per errored model, at the product file to fix."""
    from ddp_assets.dbt.failures import located_failures

    return located_failures(error, paths.root, paths.dbt_dir)


def selected_keys(defs: dg.Definitions, products: Sequence[str] | None) -> list[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.materializable_asset_keys if graph.get(k).group_name]
    if products:
        wanted = set(products)
        keys = [k for k in keys if graph.get(k).group_name in wanted]
    return sorted(keys, key=lambda k: k.to_user_string())


def _nothing_selected(
    paths: ProjectPaths, graph: Any, products: Sequence[str] | None
) -> SpecProblem:
    """Why no asset was selected: the products asked for, and the ones the graph has."""
    groups = sorted({g for k in graph.materializable_asset_keys if (g := graph.get(k).group_name)})
    asked = ", ".join(f"'{p}'" for p in products or []) or "every product"
    if groups:
        why = "no product of the asset graph is named so"
        hint = did_you_mean(next(iter(products or []), ""), groups) or (
            "the products with assets: " + ", ".join(groups)
        )
    else:
        why = "the asset graph has no product with assets"
        hint = "add a product under " + relative(paths.defs_dir, paths.root) + " (ddp validate)"
    return SpecProblem(
        file=relative(paths.defs_dir, paths.root),
        line=None,
        field="products",
        message=f"nothing to materialize for {asked}: {why}; nothing was run",
        hint=hint,
    )


@dataclass(frozen=True)
class PartitionSelection:
    """Which partitions of the partitioned products a materialize builds: some keys, a range
    (``first``..``last``, both included), or (neither) the default: the partitions that have
    data upstream and were never built, else the latest one."""

    keys: tuple[str, ...] = ()
    first: str | None = None
    last: str | None = None


@dataclass(frozen=True)
class RunPart:
    """One run of a materialize: assets of unpartitioned products, or one partitioned
    product's assets over one partition or a contiguous range of them."""

    keys: tuple[dg.AssetKey, ...]
    product: str | None = None  # the partitioned product, None: unpartitioned assets
    partitions: tuple[str, ...] = ()

    @property
    def tags(self) -> dict[str, str]:
        if not self.partitions:
            return {}
        if len(self.partitions) == 1:
            return {"dagster/partition": self.partitions[0]}
        return {
            "dagster/asset_partition_range_start": self.partitions[0],
            "dagster/asset_partition_range_end": self.partitions[-1],
        }


def _product_order(graph: Any, keys: Sequence[dg.AssetKey]) -> list[str]:
    """The products of ``keys`` in the order their runs go, with as few runs as dependencies
    allow: each product gets a *stage*, the unpartitioned products of a stage share one run
    (placed first in it), then the stage's partitioned products run; a product waits for
    the stage after a partitioned product it reads (graphlib for the order)."""
    import graphlib

    by_key = {key: graph.get(key).group_name or "default" for key in keys}
    upstream: dict[str, set[str]] = {product: set() for product in by_key.values()}
    for key, product in by_key.items():
        for parent in graph.get(key).parent_keys:
            owner = by_key.get(parent)
            if owner is not None and owner != product:
                upstream[product].add(owner)
    partitioned = {p for k, p in by_key.items() if graph.get(k).partitions_def is not None}
    stage: dict[str, int] = {}
    topological = list(graphlib.TopologicalSorter(upstream).static_order())
    for product in topological:
        stage[product] = max(
            (
                stage[d] + (1 if d in partitioned and product not in partitioned else 0)
                for d in upstream[product]
            ),
            default=0,
        )
    position = {product: index for index, product in enumerate(topological)}
    return sorted(
        topological,
        key=lambda p: (stage[p], p in partitioned, position[p] if p in partitioned else 0, p),
    )


def _partition_problem(
    paths: ProjectPaths, product: str, key: str, known: list[str]
) -> SpecProblem:
    return SpecProblem(
        file=relative(paths.defs_dir, paths.root),
        line=None,
        field="partition",
        message=f"'{key}' is not a partition of product '{product}'; nothing was run",
        hint=did_you_mean(key, known)
        or (f"its partitions run from {known[0]} to {known[-1]}" if known else "it has none yet"),
    )


def _range_refused(paths: ProjectPaths, product: str) -> SpecProblem:
    return SpecProblem(
        file=relative(paths.defs_dir, paths.root),
        line=None,
        field="partition",
        message=f"product '{product}' is partitioned by file: its partitions have no range "
        "(--from/--to); nothing was run",
        hint="name each file's partition with --partition KEY (repeatable; `ddp status` lists "
        "them), or give none to build the files never built",
    )


def _landing_partitions(paths: ProjectPaths, graph: Any, keys: Sequence[dg.AssetKey]) -> list[str]:
    """The partitions the landing files of ``keys``' landing assets name, in file order."""
    from ddp_assets.dbt.load_cache import load_registry
    from ddp_assets.ingest.files import landing_entries, partition_of_file

    found: dict[str, None] = {}  # ordered, without repeats
    registry = load_registry(paths, cached=True)
    for key in keys:
        node = graph.get(key)
        glob = node.metadata.get("ddp/landing_glob") if node.metadata else None
        if glob is None or node.group_name not in registry.products:
            continue
        spec = registry.products[node.group_name].spec
        for entry in landing_entries(paths.landing_dir, str(getattr(glob, "value", glob))):
            relative_path = entry.relative_to(paths.landing_dir).as_posix()
            partition = partition_of_file(spec, relative_path)
            if partition is not None:
                found[partition] = None
    return list(found)


def _partitions_with_data(
    paths: ProjectPaths,
    run_instance: dg.DagsterInstance,
    graph: Any,
    keys: Sequence[dg.AssetKey],
    planned: dict[str, set[str]],
    landing: Sequence[str] | None = None,
) -> set[str]:
    """The partitions a product has data for: those its landing files name (``landing``, when
    the caller listed them already), those its partitioned upstream products built, and those
    this materialize builds upstream first (``planned``, by product)."""
    found = set(_landing_partitions(paths, graph, keys) if landing is None else landing)
    selected = set(keys)
    for key in keys:
        node = graph.get(key)
        for parent in node.parent_keys:
            if parent in selected or graph.get(parent).partitions_def is None:
                continue
            found |= set(run_instance.get_materialized_partitions(parent))
            found |= planned.get(graph.get(parent).group_name or "default", set())
    return found


def _default_partitions(
    paths: ProjectPaths,
    run_instance: dg.DagsterInstance,
    graph: Any,
    keys: Sequence[dg.AssetKey],
    known: list[str],
    planned: dict[str, set[str]],
    landing: Sequence[str] | None = None,
) -> list[str]:
    """The partitions with data upstream (landing files, or partitions upstream products built
    or are planned to build first) that these assets never built; else the latest with data."""
    available = _partitions_with_data(paths, run_instance, graph, keys, planned, landing)
    from ddp_assets.catalog.partitions import built_everywhere

    wanted = [key for key in known if key in available]
    built = built_everywhere(run_instance, keys)
    missing = [key for key in wanted if key not in built]
    return missing or wanted[-1:]


def run_plan(
    paths: ProjectPaths,
    graph: Any,
    keys: Sequence[dg.AssetKey],
    run_instance: dg.DagsterInstance,
    selection: PartitionSelection | None = None,
) -> list[RunPart]:
    """The runs of a materialize, in dependency order: consecutive unpartitioned products share
    a run; a partitioned product runs per batch of contiguous partitions (its spec's
    ``partitions.batch``; Dagster's backfill policy says the same to the UI's backfills).

    A product partitioned by file knows the partitions of the instance and those of its
    landing files (as the landing sensor would add them); the ones the plan builds are added
    to the instance when the plan is made (nothing is added when it is refused). Its
    partitions have no range: ``first``/``last`` are refused.

    A partitioned batch never shares a run with unpartitioned products, even independent ones:
    Dagster plans each unpartitioned asset check of a partitioned run once per partition, and
    those executions stay ``PLANNED`` (measured on Dagster 1.13: 1644 check executions for 84
    checks), which the UI's check history would show."""
    selection = selection or PartitionSelection()
    by_product: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        by_product.setdefault(graph.get(key).group_name or "default", []).append(key)
    parts: list[RunPart] = []
    problems: list[SpecProblem] = []
    planned: dict[str, set[str]] = {}
    adding: dict[str, list[str]] = {}  # by-file partitions to add: definition name -> keys
    for product in _product_order(graph, keys):
        product_keys = by_product[product]
        definition = graph.get(product_keys[0]).partitions_def
        if definition is None:
            if parts and parts[-1].product is None:
                parts[-1] = RunPart((*parts[-1].keys, *product_keys))
            else:
                parts.append(RunPart(tuple(product_keys)))
            continue
        known = list(definition.get_partition_keys(dynamic_partitions_store=run_instance))
        pending: list[str] = []
        landing: list[str] | None = None  # by file: its landing files' partitions, listed once
        if isinstance(definition, dg.DynamicPartitionsDefinition):
            if selection.first or selection.last:
                problems.append(_range_refused(paths, product))
                continue
            registered = set(known)
            landing = _landing_partitions(paths, graph, product_keys)
            pending = [k for k in landing if k not in registered]
            known += pending
        asked = list(selection.keys)
        if selection.first or selection.last:
            for bound in (selection.first, selection.last):
                if bound is not None and bound not in known:
                    problems.append(_partition_problem(paths, product, bound, known))
            if problems:
                continue
            low = known.index(selection.first) if selection.first else 0
            high = known.index(selection.last) if selection.last else len(known) - 1
            asked += known[low : high + 1]
        problems += [_partition_problem(paths, product, k, known) for k in asked if k not in known]
        position = {key: index for index, key in enumerate(known)}
        chosen = sorted({k for k in asked if k in position}, key=position.__getitem__)
        if not asked:
            chosen = _default_partitions(
                paths, run_instance, graph, product_keys, known, planned, landing
            )
        planned[product] = set(chosen)
        if pending and definition.name is not None:
            new = [k for k in pending if k in planned[product]]  # in the order they are known
            if new:
                adding[definition.name] = new
        batch = _batch_size(graph, product_keys[0])
        for chunk in _contiguous_chunks(chosen, known, batch):
            parts.append(RunPart(tuple(product_keys), product, tuple(chunk)))
    if problems:
        raise SpecErrors(problems)
    for name, new in adding.items():
        run_instance.add_dynamic_partitions(name, new)
    return parts


def _batch_size(graph: Any, key: dg.AssetKey) -> int:
    policy = graph.get(key).backfill_policy
    size = getattr(policy, "max_partitions_per_run", None) if policy is not None else None
    return int(size or 1)


def _contiguous_chunks(chosen: list[str], known: list[str], size: int) -> list[list[str]]:
    """Runs of consecutive partition keys (in the definition's order), each at most ``size``."""
    chunks: list[list[str]] = []
    position = {key: index for index, key in enumerate(known)}
    for key in chosen:
        last = chunks[-1] if chunks else None
        if last and len(last) < size and position[key] == position[last[-1]] + 1:
            last.append(key)
        else:
            chunks.append([key])
    return chunks


def materialize(
    paths: ProjectPaths,
    products: Sequence[str] | None = None,
    *,
    tags: dict[str, str] | None = None,
    log_level: str = "INFO",
    partitions: PartitionSelection | None = None,
) -> RunOutcome:
    """Materialize every asset of the given products (all products when None);
    :class:`SpecErrors` when they select no asset (nothing is run).

    Unpartitioned products run together in one run; a partitioned product's partitions run in
    bounded batches (:func:`run_plan`), after their upstream and before their consumers. When
    a run fails, the runs of the products downstream of it do not start (their assets are
    reported skipped)."""
    defs = definitions(paths)
    keys = selected_keys(defs, products)
    graph = defs.resolve_asset_graph()
    if not keys:  # an empty selection would run the whole job (and publish every product)
        raise SpecErrors([_nothing_selected(paths, graph, products)])
    job = defs.resolve_implicit_global_asset_job_def()
    # one instance for the run and its lineage: another would set up its storages again
    # (Dagster checks each SQLite file's migrations: 0.05 s of a demo run, measured)
    run_instance = instance(paths)
    report(clean_up_dead_runs(run_instance))  # a killed run's writer slot would block this one
    plan = run_plan(paths, graph, keys, run_instance, partitions)
    env = current_env()  # a run of another environment says so in the UI (docs/architecture.md)
    env_tags = {} if env == PROD else {tag("env"): env}
    outcomes: list[RunOutcome] = []
    failed_products: set[str] = set()
    for part in plan:
        upstream_failed = any(
            graph.get(parent).group_name in failed_products
            for key in part.keys
            for parent in graph.get(key).parent_keys
            if graph.get(parent).group_name != graph.get(key).group_name
        )
        if upstream_failed:
            outcomes.append(_not_run(graph, part))
            failed_products |= {graph.get(k).group_name or "default" for k in part.keys}
            continue
        with watching_for_dead_runs(run_instance):
            result = job.execute_in_process(
                instance=run_instance,
                asset_selection=list(part.keys),
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                tags={
                    "ddp/command": "materialize",
                    **env_tags,
                    **(tags or {}),
                    **part.tags,
                    **worker_tags(),
                },
            )
        outcome = _run_outcome(result, part, defs, graph, paths)
        emit_lineage_safely(run_instance, result.run_id, paths)  # OpenLineage; never raises
        outcomes.append(outcome)
        failed_products |= {p.product for p in outcome.products if p.status != "succeeded"}
    return _combined(outcomes)


def _not_run(graph: Any, part: RunPart) -> RunOutcome:
    """A run that did not start because a product upstream of it failed."""
    by_product: dict[str, ProductOutcome] = {}
    for key in part.keys:
        group = graph.get(key).group_name or "default"
        product = by_product.setdefault(group, ProductOutcome(group, "failed"))
        product.assets.append(AssetOutcome(key.to_user_string(), "skipped"))
    label = f" (partitions {', '.join(part.partitions)})" if part.partitions else ""
    return RunOutcome(
        run_id="",
        success=False,
        products=list(by_product.values()),
        errors=[f"{', '.join(by_product)}{label}: not run, an upstream product failed"],
    )


def _combined(outcomes: list[RunOutcome]) -> RunOutcome:
    """One outcome for the runs of a materialize (the first run's id; ``runs`` lists all)."""
    if len(outcomes) == 1:
        return outcomes[0]
    products: dict[str, ProductOutcome] = {}
    for outcome in outcomes:
        for product in outcome.products:
            merged = products.setdefault(
                product.product, ProductOutcome(product.product, "succeeded")
            )
            merged.assets += product.assets
            if product.status != "succeeded":
                merged.status = "failed"
    runs = [o.run_id for o in outcomes if o.run_id]
    return RunOutcome(
        run_id=runs[0] if runs else "",
        success=all(o.success for o in outcomes),
        products=list(products.values()),
        errors=[e for o in outcomes for e in o.errors],
        runs=runs,
    )


def _run_outcome(
    result: Any, part: RunPart, defs: dg.Definitions, graph: Any, paths: ProjectPaths
) -> RunOutcome:
    keys = part.keys
    materialized = {
        e.asset_key for e in result.get_asset_materialization_events() if e.asset_key is not None
    }
    failed_steps = {e.step_key for e in result.get_step_failure_events() if e.step_key}
    skipped = _skipped_in_failed_steps(result.get_step_failure_events())
    checks: dict[dg.AssetKey, list[CheckOutcome]] = {}
    for evaluation in result.get_asset_check_evaluations():
        checks.setdefault(evaluation.asset_key, []).append(
            CheckOutcome(
                name=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                description=evaluation.description,
                metadata={k: _jsonable(v) for k, v in evaluation.metadata.items()},
            )
        )
    by_product: dict[str, ProductOutcome] = {}
    for key in keys:
        group = graph.get(key).group_name or "default"
        product = by_product.setdefault(group, ProductOutcome(group, "succeeded"))
        if key in materialized:
            status = "materialized"
        elif key.to_user_string() in skipped:
            status = "skipped"
        elif defs.get_assets_def(key).op.name in failed_steps:
            status = "failed"
        else:
            status = "skipped"
        asset_checks = checks.get(key, [])
        product.assets.append(AssetOutcome(key.to_user_string(), status, asset_checks))
        blocking = any(not c.passed and c.severity == "ERROR" for c in asset_checks)
        if status != "materialized" or blocking:
            product.status = "failed"
    errors = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip()}"  # type: ignore[union-attr]
        for e in result.get_step_failure_events()
        if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    ]
    errors = [located for error in errors for located in _located(error, paths)]
    for product in by_product.values():
        for asset in product.assets:
            asset.partitions = list(part.partitions)
    return RunOutcome(
        run_id=result.run_id,
        success=result.success and all(p.status == "succeeded" for p in by_product.values()),
        products=list(by_product.values()),
        errors=errors,
        runs=[result.run_id],
    )

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


def materialize(
    paths: ProjectPaths,
    products: Sequence[str] | None = None,
    *,
    tags: dict[str, str] | None = None,
    log_level: str = "INFO",
) -> RunOutcome:
    """Materialize every asset of the given products (all products when None);
    :class:`SpecErrors` when they select no asset (nothing is run)."""
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
    with watching_for_dead_runs(run_instance):
        result = job.execute_in_process(
            instance=run_instance,
            asset_selection=keys,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            tags={"ddp/command": "materialize", **(tags or {}), **worker_tags()},
        )
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
    outcome = RunOutcome(
        run_id=result.run_id,
        success=result.success and all(p.status == "succeeded" for p in by_product.values()),
        products=list(by_product.values()),
        errors=errors,
    )
    emit_lineage_safely(run_instance, result.run_id, paths)  # OpenLineage; never raises
    return outcome

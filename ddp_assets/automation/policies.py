"""Refresh and freshness policy of every asset of a product.

A product's ``slos`` decide, for every asset in its group, the automation condition (refresh on
upstream change, gated on upstream blocking checks) and, for its output ports, the freshness
policy. Nothing here names an asset: the product is read from the asset's group.

Where specs are created, :func:`asset_policies` gives them their policies (the dbt translator
does; components can). :func:`apply_product_policies` then completes, at the root, any spec
that did not get them, and rebuilds only the assets definitions that had such a spec:
rebuilding every one (``Definitions.map_asset_specs``) was 15 % of a 1000-model load. The
result is a new ``dg.Definitions`` with the same everything but its assets (:func:`with_assets`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg

from ddp_assets.naming import catalog_url
from ddp_assets.spec.model import ProductSpec
from ddp_assets.spec.registry import Registry


def automation_condition(spec: ProductSpec) -> dg.AutomationCondition | None:
    """Refresh when any upstream updates, only once upstream blocking checks passed.

    This is Dagster's ``eager()`` but for what resets it: ``eager`` treats the asset's own update
    as handling its upstream's, and when both land between two ticks (a consumer run that read
    the old upstream finishing while the upstream publishes) the reset wins and the consumer
    keeps stale data. Here only a request of the asset resets the trigger, so an upstream update
    always leads to a run that starts after it (at worst one extra refresh).
    """
    if spec.slos.refresh != "on_upstream_change":
        return None
    condition = dg.AutomationCondition
    upstream_changed = (condition.newly_missing() | condition.any_deps_updated()).since(
        condition.newly_requested() | condition.initial_evaluation()
    )
    return (
        condition.in_latest_time_window()
        & upstream_changed
        & ~condition.any_deps_missing()
        & ~condition.any_deps_in_progress()
        & ~condition.in_progress()
        & condition.all_deps_blocking_checks_passed()
    ).with_label("ddp: refresh on upstream change")


def deadline_cron(deadline: str) -> str:
    hours, minutes = deadline.split(":")
    return f"{int(minutes)} {int(hours)} * * *"


def freshness_policy(spec: ProductSpec) -> dg.FreshnessPolicy | None:
    """The product's freshness SLO as a Dagster freshness policy (shown in the UI)."""
    freshness = spec.slos.freshness
    if freshness is None:
        return None
    if freshness.max_age is not None:
        fail = freshness.max_age_delta
        assert fail is not None
        warn = freshness.warn_after_delta or fail * 3 / 4
        return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)
    assert freshness.deadline is not None
    return dg.FreshnessPolicy.cron(
        deadline_cron=deadline_cron(freshness.deadline),
        lower_bound_delta=timedelta(days=1),
        timezone=freshness.timezone,
    )


class _Policies:
    """One product's policies, built once per product spec (a condition per asset spec was a
    quarter of a 1000-model load: docs/performance.md)."""

    def __init__(self, spec: ProductSpec) -> None:
        self.spec = spec
        self.condition = automation_condition(spec)
        self.freshness = freshness_policy(spec)
        self.published = {port.model for port in spec.output_ports}


# id(spec) -> policies; each entry holds its spec, so an id is not reused while it is here
_BY_SPEC: dict[int, _Policies] = {}


def _policies(spec: ProductSpec) -> _Policies:
    found = _BY_SPEC.get(id(spec))
    if found is None or found.spec is not spec:
        if len(_BY_SPEC) > 10_000:  # a long-lived process loading many registries
            _BY_SPEC.clear()
        found = _BY_SPEC[id(spec)] = _Policies(spec)
    return found


def is_published_port(spec: ProductSpec, key: dg.AssetKey) -> bool:
    """The published relation of an output port: key ``[product, model]`` (the staging relation
    ``[product, "staging", model]`` is not what consumers read)."""
    path = key.path
    return len(path) == 2 and path[0] == spec.id and path[1] in _policies(spec).published


def refresh_condition(spec: ProductSpec) -> dg.AutomationCondition | None:
    """The automation condition every asset of product ``spec`` gets (one object per product)."""
    return _policies(spec).condition


def asset_policies(
    spec: ProductSpec, key: dg.AssetKey
) -> tuple[dg.AutomationCondition | None, dg.FreshnessPolicy | None]:
    """(automation condition, freshness policy) of the asset ``key`` of product ``spec``.

    For the code that creates a product's specs: ``condition, freshness =
    asset_policies(product.spec, key)``, then ``automation_condition=condition,
    freshness_policy=freshness`` on the ``AssetSpec`` / ``@dg.asset``. The condition object is
    shared by every asset of the product.
    """
    policies = _policies(spec)
    return policies.condition, policies.freshness if is_published_port(spec, key) else None


def apply_product_policies(defs: dg.Definitions, registry: Registry) -> dg.Definitions:
    """Every asset of a product gets its refresh policy and a link to its catalog page (when
    ``DDP_CATALOG_URL`` is set); its published output ports get its freshness SLO.

    Specs that already carry them (set where they were created, :func:`asset_policies`) are left
    alone, and an assets definition none of whose specs lacks anything is kept as it is.
    """
    urls: dict[str, str | None] = {}

    def updates(asset: dg.AssetSpec) -> dict[str, Any] | None:
        product = registry.products.get(asset.group_name or "")
        if product is None:
            return None
        policies = _policies(product.spec)
        changed: dict[str, Any] = {}
        if policies.condition is not None and asset.automation_condition is None:
            changed["automation_condition"] = policies.condition
        if (
            policies.freshness is not None
            and asset.freshness_policy is None
            and is_published_port(product.spec, asset.key)
        ):
            changed["freshness_policy"] = policies.freshness
        if product.id not in urls:  # the product's page in the static catalog, if published
            urls[product.id] = catalog_url(product.id)
        url = urls[product.id]
        if url and "ddp/catalog" not in asset.metadata:
            changed["metadata"] = {**asset.metadata, "ddp/catalog": dg.MetadataValue.url(url)}
        return changed or None

    def apply(asset: dg.AssetSpec) -> dg.AssetSpec:
        changed = updates(asset)
        return asset.replace_attributes(**changed) if changed else asset

    assets: list[Any] = []
    mapped = False
    for item in defs.assets or []:
        if isinstance(item, dg.AssetsDefinition) and any(updates(s) for s in item.specs):
            item = dg.map_asset_specs(apply, [item])[0]
            mapped = True
        elif isinstance(item, dg.AssetSpec) and updates(item):
            item = apply(item)
            mapped = True
        assets.append(item)
    if not mapped:
        return defs
    return with_assets(defs, assets)


def with_assets(defs: dg.Definitions, assets: list[Any]) -> dg.Definitions:
    """``defs`` with its assets replaced and everything else kept, through the public
    constructor and attributes of ``dg.Definitions`` (``Definitions.merge`` builds its result
    the same way). ``tests/test_compat.py`` checks that every constructor parameter is passed,
    so a parameter a new Dagster adds fails there instead of being dropped."""
    return dg.Definitions(
        assets=assets,
        schedules=defs.schedules,
        sensors=defs.sensors,
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        asset_checks=defs.asset_checks,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )

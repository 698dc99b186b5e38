"""Refresh and freshness policy, applied once at the root over every asset spec.

A product's ``slos`` decide, for every asset in its group, the automation condition (refresh on
upstream change, gated on upstream blocking checks) and, for its output ports, the freshness
policy. Nothing here names an asset: the product is read from the asset's group.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import dagster as dg

from ddp_assets.catalog.site import catalog_url
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


def apply_product_policies(defs: dg.Definitions, registry: Registry) -> dg.Definitions:
    """Every asset of a product gets its refresh policy and a link to its catalog page (when
    ``DDP_CATALOG_URL`` is set); its published output ports (keys ``[product, model]``; staging
    relations are not what consumers read) get its freshness SLO."""

    # one condition per product, shared by its specs (built per spec, it was a quarter of a
    # 1000-model load: docs/performance.md)
    conditions = {pid: automation_condition(p.spec) for pid, p in registry.products.items()}

    def apply(asset: dg.AssetSpec) -> dg.AssetSpec:
        product = registry.products.get(asset.group_name or "")
        if product is None:
            return asset
        updates: dict[str, object] = {}
        condition = conditions[product.id]
        if condition is not None and asset.automation_condition is None:
            updates["automation_condition"] = condition
        published = {(product.id, port.model) for port in product.spec.output_ports}
        if tuple(asset.key.path) in published and asset.freshness_policy is None:
            policy = freshness_policy(product.spec)
            if policy is not None:
                updates["freshness_policy"] = policy
        url = catalog_url(product.id)  # the product's page in the static catalog, if published
        if url and "ddp/catalog" not in asset.metadata:
            updates["metadata"] = {**asset.metadata, "ddp/catalog": dg.MetadataValue.url(url)}
        return asset.replace_attributes(**updates) if updates else asset  # type: ignore[arg-type]

    # map_asset_specs is marked "preview"; dagster is pinned to 1.13.* in pyproject.toml, and
    # tests/test_automation.py checks the policies land on the specs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=apply)

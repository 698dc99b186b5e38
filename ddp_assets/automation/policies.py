"""The root pass of a product's refresh and freshness policy over every asset of the code location.

The policies themselves are pure functions of a product spec (:mod:`ddp_assets.policies`). Where
specs are created, ``asset_policies`` gives them their policies (the dbt translator does;
components can). :func:`apply_product_policies` then completes, at the root, any spec
that did not get them, and rebuilds only the assets definitions that had such a spec:
rebuilding every one (``Definitions.map_asset_specs``) was 15 % of a 1000-model load. The
result is a new ``dg.Definitions`` with the same everything but its assets (:func:`with_assets`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ddp_assets.policies import is_published_port, product_policies
from ddp_assets.settings import catalog_url
from ddp_assets.spec.registry import Registry


def apply_product_policies(defs: dg.Definitions, registry: Registry) -> dg.Definitions:
    """Every asset of a product gets its refresh policy and a link to its catalog page (when
    ``DDP_CATALOG_URL`` is set); its published output ports get its freshness SLO.

    Specs that already carry them (set where they were created,
    :func:`ddp_assets.policies.asset_policies`) are left alone, and an assets definition none of
    whose specs lacks anything is kept as it is.
    """
    urls: dict[str, str | None] = {}

    def updates(asset: dg.AssetSpec) -> dict[str, Any] | None:
        product = registry.products.get(asset.group_name or "")
        if product is None:
            return None
        policies = product_policies(product.spec)
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

"""dbt nodes → Dagster asset specs, driven by the ``meta.ddp`` block ddp writes for each product.

Policy is applied once here, from metadata: no model name is ever listed in Python. Each spec
gets its product's refresh policy (and catalog link) here, where dagster-dbt creates it, so the
root pass (``automation/policies.py::apply_product_policies``) leaves the dbt assets as they are.
"""

from __future__ import annotations

import contextlib
import graphlib
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from ddp_assets.metadata import product_tags
from ddp_assets.naming import (
    dbt_asset_key,
    ddp_meta,
    is_staging_key,
    published_key,
)
from ddp_assets.policies import refresh_condition
from ddp_assets.settings import catalog_url
from ddp_assets.spec.registry import Registry

# One condition object for every dbt test (a condition is an immutable tree; one per check was
# 2200 more objects for the collector at 200 products).
_CHECK_CONDITION = dg.AutomationCondition.eager()
_CODE_REFERENCES = "dagster/code_references"  # dagster's CodeReferencesMetadataSet key


class ProductTranslator(DagsterDbtTranslator):
    """Asset keys ``[product, model]``; one group per product; owners and tags from the spec.

    ``registry``: the products, for their refresh policy (the platform context's, handed by
    ``DbtProducts``). Without one, specs get no automation condition here and the root pass
    gives it to them.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__(
            DagsterDbtTranslatorSettings(
                enable_asset_checks=True,
                # the link to each model's SQL file is set in get_metadata (dagster-dbt's own
                # rebuilt every spec once more and resolved every path: a third of its work)
                enable_code_references=False,
                enable_source_tests_as_checks=False,
            )
        )
        self._ddp_specs: dict[tuple[int, str, int], dg.AssetSpec] = {}
        self._registry = registry
        self._project_dir: str | None = None  # the dbt project's folder, resolved once

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: Any,
    ) -> dg.AssetCheckSpec | None:
        """A dbt test as a check that runs whenever its model is built, automation included.

        Declarative automation puts a check in a run only if the check has an automation
        condition of its own; without one, a consumer refreshed by automation was rebuilt
        without its dbt tests, its blocking checks never passed again, and its publish asset
        waited forever. ``eager()`` requests the check in the same tick as its model.
        """
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.automation_condition is not None:
            return spec
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=spec.description,
            additional_deps=spec.additional_deps,
            metadata=spec.metadata,
            blocking=spec.blocking,
            automation_condition=_CHECK_CONDITION,
        )

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        key = dbt_asset_key(dbt_resource_props)  # the naming rule lineage reads too
        return key if key is not None else super().get_asset_key(dbt_resource_props)

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: Any
    ) -> dg.AssetSpec:
        """A model that reads another product's output port depends on the published port.

        The project's ``ref`` macro resolves such a reference to ``<product>.<model>``, so in
        Dagster the dependency is the port's publish asset: the reader waits for publication
        and is skipped when the port is held back by its audit.
        """
        # Memoized as dagster-dbt memoizes its own specs: it asks again for every downstream node.
        memo_id = (id(manifest), unique_id, id(project))
        if memo_id not in self._ddp_specs:
            if self._project_dir is None and project is not None:
                self._project_dir = str(Path(project.project_dir).resolve())
            spec = super().get_asset_spec(manifest, unique_id, project)
            self._ddp_specs[memo_id] = self._published_deps(spec)
        return self._ddp_specs[memo_id]

    def _published_deps(self, spec: dg.AssetSpec) -> dg.AssetSpec:
        product = spec.key.path[0] if len(spec.key.path) > 1 else None
        deps = [
            dg.AssetDep(published_key(dep.asset_key))
            if _is_staging(dep.asset_key) and dep.asset_key.path[0] != product
            else dep
            for dep in spec.deps
        ]
        if deps == list(spec.deps):
            return spec
        return spec.replace_attributes(deps=deps)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return ddp_meta(dbt_resource_props).get("product") or super().get_group_name(
            dbt_resource_props
        )

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        owners = ddp_meta(dbt_resource_props).get("owners")
        return list(owners) if owners else super().get_owners(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        meta = ddp_meta(dbt_resource_props)
        tags = dict(super().get_tags(dbt_resource_props))
        if meta:
            tags.update(product_tags(meta, port=meta.get("port")))
        return tags

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        meta = ddp_meta(dbt_resource_props)
        if meta:
            metadata["ddp/product"] = meta["product"]
            metadata["ddp/version"] = meta["version"]
            if meta.get("port"):
                metadata["ddp/output_port"] = meta["port"]
                metadata["ddp/contract"] = dg.MetadataValue.path(meta["contract"])
            url = catalog_url(meta["product"])  # the product's page in the static catalog
            if url:
                metadata["ddp/catalog"] = dg.MetadataValue.url(url)
        source = dbt_resource_props.get("original_file_path")
        if source and self._project_dir is not None:
            # the model's SQL file, linked from the UI (what enable_code_references sets)
            path = os.path.normpath(os.path.join(self._project_dir, source))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.BetaWarning)
                metadata[_CODE_REFERENCES] = dg.CodeReferencesMetadataValue(
                    code_references=[dg.LocalFileCodeReference(file_path=path)]
                )
        return metadata

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        """The product's refresh policy (``slos.refresh``), shared by its assets."""
        own = super().get_automation_condition(dbt_resource_props)
        product_id = ddp_meta(dbt_resource_props).get("product")
        if own is not None or not product_id or self._registry is None:
            return own
        product = self._registry.products.get(product_id)
        # dbt builds no published port ([product, model] of an output port is the publish asset
        # of the port's component), so a dbt asset gets no freshness policy, only this
        return refresh_condition(product.spec) if product is not None else None

    def get_code_version(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        checksum = (dbt_resource_props.get("checksum") or {}).get("checksum")
        return checksum[:16] if checksum else None


def resolve_in_dependency_order(
    translator: DagsterDbtTranslator, manifest: Mapping[str, Any], project: Any
) -> None:
    """Resolve every node's asset spec upstream first, so ``@dbt_assets`` finds them memoized.

    dagster-dbt resolves a node's upstream specs recursively (memoized per manifest), entering
    the nodes in set order: in a ref() chain about 1000 models deep (200 products feeding each
    other) that exceeded Python's recursion limit, depending on ``PYTHONHASHSEED``. In
    dependency order each call recurses one level at most. Best effort: a node that fails here
    fails again, with dagster-dbt's own error, where ``@dbt_assets`` resolves it.
    """
    nodes = manifest.get("nodes", {})
    sources = manifest.get("sources", {})
    graph: dict[str, list[str]] = {uid: [] for uid in sources}
    for uid, node in nodes.items():
        if node.get("resource_type") in ("model", "seed", "snapshot"):
            upstream = (node.get("depends_on") or {}).get("nodes") or []
            graph[uid] = [u for u in upstream if u in nodes or u in sources]
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return  # dbt refuses cycles; leave the error to dbt and dagster-dbt
    for uid in order:
        with contextlib.suppress(Exception):
            translator.get_asset_spec(manifest, uid, project)


def _is_staging(key: dg.AssetKey) -> bool:
    return is_staging_key(key)

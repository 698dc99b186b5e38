"""The ``DbtProducts`` component: every product's dbt models as one subsettable multi-asset.

One multi-asset for the whole dbt project means a run over several products starts dbt once
(``dbt build --select <the selected models>``); the translator still splits the assets into
one Dagster group per product from the ``meta.ddp`` block ddp writes for each model.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from ddp_assets.contracts.gate import check_input_ports
from ddp_assets.dbt.agreement import agreement_errors
from ddp_assets.dbt.project import dbt_resource, prepare, run_target_path
from ddp_assets.dbt.translator import ProductTranslator, resolve_in_dependency_order
from ddp_assets.metadata import WRITER_POOL
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.registry import load_registry


class DbtProducts(dg.Component, dg.Model, dg.Resolvable):
    """The dbt project behind all data products (dbt-duckdb by default)."""

    select: str = "fqn:*"
    exclude: str = ""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        paths = ProjectPaths(context.project_root)
        registry = load_registry(paths.defs_dir, paths.root)
        prepared = prepare(paths, registry)
        problems = agreement_errors(registry, prepared)
        if problems:
            raise SpecErrors(problems)

        translator = ProductTranslator()
        resolve_in_dependency_order(translator, prepared.manifest, prepared.project)

        @dbt_assets(
            manifest=prepared.manifest,
            project=prepared.project,
            select=self.select,
            exclude=self.exclude or None,
            dagster_dbt_translator=translator,
            name="ddp_dbt_models",
            pool=WRITER_POOL,
        )
        def ddp_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
            paths.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
            selected = context.selected_asset_keys
            blocked = check_input_ports(context, registry, paths, selected)
            held = {b.product for b in blocked}
            excluded = sorted(k.path[-1] for k in selected if k.path[0] in held)
            if len(excluded) < len(selected):
                args = ["build", *(["--exclude", *excluded] if excluded else [])]
                target_path = run_target_path(prepared.project, context.run.run_id, paths.data_dir)
                yield from dbt.cli(args, context=context, target_path=target_path).stream()
            if blocked:
                raise dg.Failure(description="\n".join(b.message() for b in blocked))

        return dg.Definitions(assets=[ddp_dbt_models], resources={"dbt": dbt_resource(paths)})

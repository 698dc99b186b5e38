"""The ``DataProduct`` component: one per product folder, declared in its ``defs.yaml``.

It turns the spec into the product's own Dagster assets: the input ports that bring outside
data in (landing files, tables) and the models computed in Python. The product's dbt models
come from :class:`~ddp_assets.components.dbt_products.DbtProducts`, so that a run over many
products still starts dbt once; both put every asset of the product in the group named after
the product, with the product's owners and tags. Each output port gets its audit-and-publish
asset (:mod:`ddp_assets.contracts.port_asset`), executed by the step that builds the port:
the dbt step for a dbt model, the Python model's step for a Python one.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ConfigDict

from ddp_assets.components.context import context_for
from ddp_assets.compute.python_models import python_model_asset
from ddp_assets.ingest.landing import file_ports_asset, table_port_asset
from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.spec.model import DepotInputPort, FileInputPort, ProductSpec, TableInputPort


class SpecAttributes(BaseModel):
    """What Dagster's loader checks of a ``defs.yaml``: nothing. The spec is read and validated
    once, by ddp's registry (line-located errors, cross-product checks), for the whole build;
    the component takes its product from the platform context."""

    model_config = ConfigDict(extra="allow")


class DataProduct(dg.Component):
    """A data product declared in YAML: id, domain, owners, version, ports, SLOs, policies."""

    def __init__(self, spec: ProductSpec, folder: Path):
        self.spec = spec
        self.folder = folder

    @classmethod
    def get_schema(cls) -> type[BaseModel]:
        return SpecAttributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> DataProduct:
        folder = (context.path if context.path.is_dir() else context.path.parent).resolve()
        product = context_for(context).product_in(folder)
        if product is not None:
            return cls(product.spec, folder)
        raise SpecErrors(  # a spec the registry could not read reports its own problems
            [
                SpecProblem(
                    str(folder / "defs.yaml"),
                    None,
                    "(spec)",
                    "this product folder is not in the registry of products",
                    "run `ddp validate` for the spec's problems",
                )
            ]
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        platform = context_for(context)
        paths, registry = platform.paths, platform.registry
        product = registry.products[self.spec.id]
        assets: list[dg.AssetsDefinition] = []
        file_ports = [p for p in product.spec.input_ports if isinstance(p, FileInputPort)]
        if file_ports:
            assets.append(file_ports_asset(product, file_ports, paths))
        for port in product.spec.input_ports:
            if isinstance(port, TableInputPort):
                assets.append(table_port_asset(product, port, paths))
        if depot_ports := [p for p in product.spec.input_ports if isinstance(p, DepotInputPort)]:
            from ddp_assets.ingest.depot_assets import depot_port_assets  # only with a depot

            assets.extend(depot_port_assets(product, depot_ports, paths, platform.depots()))
        for model in product.spec.python_models:
            assets.append(python_model_asset(product, model, registry, paths))
        return dg.Definitions(assets=assets)

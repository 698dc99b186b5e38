"""The platform's Dagster component types, all here where ``dg`` finds them (``[tool.dg]
registry_modules`` in this repository, the ``dagster_dg_cli.registry_modules`` entry point in any
project that installs ddp). Their instances live in a project's ``defs/`` folder."""

from ddp_assets.components.automation import ProductAutomation
from ddp_assets.components.data_product import DataProduct
from ddp_assets.components.dbt_products import DbtProducts
from ddp_assets.lineage.sensors import LineageSensors

__all__ = ["DataProduct", "DbtProducts", "LineageSensors", "ProductAutomation"]

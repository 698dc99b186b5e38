"""Dagster component types of the platform; their instances live in ``ddp_assets/defs``."""

from ddp_assets.components.data_product import DataProduct
from ddp_assets.components.dbt_products import DbtProducts

__all__ = ["DataProduct", "DbtProducts"]

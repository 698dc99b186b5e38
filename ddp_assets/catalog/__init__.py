"""Discovery: the product catalog (search, status) and its static web site."""

from ddp_assets.catalog.entries import catalog_entries, catalog_entry
from ddp_assets.catalog.search import SearchHit, search
from ddp_assets.catalog.site import catalog_url

__all__ = ["SearchHit", "catalog_entries", "catalog_entry", "catalog_url", "search"]

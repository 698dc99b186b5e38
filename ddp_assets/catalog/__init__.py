"""Discovery: the product catalog (search, status) and its static web site.

``catalog_url`` lives in :mod:`ddp_assets.settings` (the asset factories link every asset to its
page, and sit below the catalog); it is re-exported here, where users look for it.
"""

from ddp_assets.catalog.entries import catalog_entries, catalog_entry
from ddp_assets.catalog.search import SearchHit, search
from ddp_assets.settings import catalog_url

__all__ = ["SearchHit", "catalog_entries", "catalog_entry", "catalog_url", "search"]

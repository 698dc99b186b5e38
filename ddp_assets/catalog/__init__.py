"""Discovery: the product catalog (search, status) and its static web site.

``catalog_url`` comes from ``catalog/url.py``, not the site generator: the automation policies
import it when the code location loads, and the site generator imports the lineage graph and
the Python models, which import the policies.
"""

from ddp_assets.catalog.entries import catalog_entries, catalog_entry
from ddp_assets.catalog.search import SearchHit, search
from ddp_assets.catalog.url import catalog_url

__all__ = ["SearchHit", "catalog_entries", "catalog_entry", "catalog_url", "search"]

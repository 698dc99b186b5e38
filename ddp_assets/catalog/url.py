"""Where a product's catalog page is, for links from the Dagster UI (asset metadata).

Apart from :mod:`ddp_assets.catalog.site` so that loading the code location, which links every
asset to its page, does not import the site generator (and through it the lineage graph).
"""

from __future__ import annotations

import os
from pathlib import Path

CATALOG_URL_ENV = "DDP_CATALOG_URL"


def catalog_url(product_id: str) -> str | None:
    """The catalog page of a product, for asset metadata in the Dagster UI.

    Reads ``DDP_CATALOG_URL`` when called (a base URL such as ``https://catalog.example.com``,
    or the folder ``ddp catalog build`` wrote); None when it is not set.
    """
    base = os.environ.get(CATALOG_URL_ENV, "").strip()
    if not base:
        return None
    if "://" not in base:
        base = Path(base).resolve().as_uri()
    return f"{base.rstrip('/')}/products/{product_id}.html"

"""Discovery: the product catalog (search, status) and its static web site.

The names are loaded on first use (PEP 562): the automation policies import
``ddp_assets.catalog.url`` when the code location loads, and that must not pull in the site
generator, the lineage graph and the Python models behind them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddp_assets.catalog.entries import catalog_entries, catalog_entry
    from ddp_assets.catalog.search import SearchHit, search
    from ddp_assets.catalog.url import catalog_url

_EXPORTS = {
    "catalog_entries": "ddp_assets.catalog.entries",
    "catalog_entry": "ddp_assets.catalog.entries",
    "SearchHit": "ddp_assets.catalog.search",
    "search": "ddp_assets.catalog.search",
    "catalog_url": "ddp_assets.catalog.url",
}

__all__ = ["SearchHit", "catalog_entries", "catalog_entry", "catalog_url", "search"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ddp_assets.catalog' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

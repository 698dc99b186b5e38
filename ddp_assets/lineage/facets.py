"""ddp's own OpenLineage facet: which data product (version, domain, port) a job or dataset is.

Custom facets are named with a prefix (``ddp_``) as the OpenLineage spec asks, and carry a
``_schemaURL`` whose JSON Schema ships in ``ddp_assets/lineage/schemas/``.
"""

from __future__ import annotations

import importlib.metadata
import json
from functools import cache
from pathlib import Path
from typing import Any

import attr
from openlineage.client.generated.base import DatasetFacet, JobFacet

FACET_NAME = "ddp_dataProduct"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "DataProductFacet.json"
SCHEMA_ID = "https://ddp.example.com/spec/facets/1-0-0/DataProductFacet.json"


@cache
def producer() -> str:
    """The ``producer`` URI of every event and facet ddp emits."""
    try:
        version = importlib.metadata.version("ddp")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"https://ddp.example.com/ddp/{version}"


def facet_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@attr.define
class DataProductJobFacet(JobFacet):
    product: str
    version: str
    domain: str
    name: str | None = attr.field(default=None)
    port: str | None = attr.field(default=None)
    contract: str | None = attr.field(default=None)
    status: str | None = attr.field(default=None)
    tier: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_ID}#/$defs/DataProductJobFacet"


@attr.define
class DataProductDatasetFacet(DatasetFacet):
    product: str
    version: str
    domain: str
    name: str | None = attr.field(default=None)
    port: str | None = attr.field(default=None)
    contract: str | None = attr.field(default=None)
    status: str | None = attr.field(default=None)
    tier: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_ID}#/$defs/DataProductDatasetFacet"

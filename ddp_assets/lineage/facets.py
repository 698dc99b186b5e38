"""The producer of ddp's OpenLineage events, and ddp's facet: the data product of a job or dataset.

The ``producer`` of every event and facet ddp emits is :func:`producer`: the URI in
``$DDP_OPENLINEAGE_PRODUCER`` when set (read each time events are built, never at import),
else ddp's release on PyPI, ``https://pypi.org/project/ddp/<version>/``. The spec asks for a
URI that identifies the producing code; a team running a fork points the setting at its own
repository, e.g. ``DDP_OPENLINEAGE_PRODUCER=https://git.example.org/data/ddp/tree/v1.4.0``.

Custom facets are named with a prefix (``ddp_``) as the OpenLineage spec asks, and carry a
``_schemaURL`` (:data:`SCHEMA_URL`, versioned by the facet's schema version, not ddp's) whose
JSON Schema ships in ``ddp_assets/lineage/schemas/`` under that URL as its ``$id``.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import attr
from openlineage.client.generated.base import DatasetFacet, JobFacet

FACET_NAME = "ddp_dataProduct"
PRODUCER_ENV = "DDP_OPENLINEAGE_PRODUCER"
PROJECT_URL = "https://pypi.org/project/ddp"  # ddp's public home: its releases are published here
FACET_SCHEMA_VERSION = "1-0-0"  # bumped with every change of schemas/DataProductFacet.json
SCHEMA_FILE = Path(__file__).parent / "schemas" / "DataProductFacet.json"
SCHEMA_URL = f"{PROJECT_URL}/spec/facets/{FACET_SCHEMA_VERSION}/DataProductFacet.json"
SCHEMA_ID = SCHEMA_URL  # the ``$id`` of the shipped schema file

log = logging.getLogger(__name__)
# an absolute URI (RFC 3986): a scheme, then something, no white space
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
_warned: set[str] = set()


@cache
def ddp_version() -> str:
    try:
        return importlib.metadata.version("ddp")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def default_producer() -> str:
    """ddp's release on PyPI: ``https://pypi.org/project/ddp/<version>/``."""
    return f"{PROJECT_URL}/{ddp_version()}/"


def producer() -> str:
    """The ``producer`` URI of every event and facet ddp emits.

    ``$DDP_OPENLINEAGE_PRODUCER`` when it is an absolute URI; a value that is not is reported
    once (a warning naming the setting) and the default is used: lineage never breaks a run.
    """
    configured = os.environ.get(PRODUCER_ENV, "").strip()
    if not configured:
        return default_producer()
    if _ABSOLUTE_URI.fullmatch(configured):
        return configured
    if configured not in _warned:
        _warned.add(configured)
        log.warning(
            "%s=%r is not an absolute URI; OpenLineage events name %s as their producer. "
            "Hint: set it to the URI of the code that runs, e.g. "
            "https://git.example.org/data/ddp/tree/v1.4.0, or unset it.",
            PRODUCER_ENV,
            configured,
            default_producer(),
        )
    return default_producer()


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
        return f"{SCHEMA_URL}#/$defs/DataProductJobFacet"


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
        return f"{SCHEMA_URL}#/$defs/DataProductDatasetFacet"

"""The open standards' own JSON Schemas, as the platform reads them at run time.

Everything comes from ddp's distribution or its dependencies, never from a folder beside the
project (``../shared`` is for the tests only):

- **ODCS**: the ``schema.json`` of PyPI's ``open-data-contract-standard`` (the Bitol standard's
  own Python model; 3.2.0 accepts every ``apiVersion`` ddp reads, v3.0.0 to v3.2.0);
- **ODPS**: ``odps-json-schema-v1.1.0.json`` and ``odps-json-schema-v1.0.0.json`` in this
  folder, unchanged copies of the files in bitol-io/open-data-product-standard (Apache License
  2.0; v1.1.0 from commit 0362bb118cb27c6c11e3a633fde479609de211bd, v1.0.0 from f3441a7b):
  no Python package ships them.

A schema that cannot be found or read is :class:`SchemaUnavailable`, with a hint: a contract is
never reported as conforming because its schema was missing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ODCS_PACKAGE = "open-data-contract-standard"
ODCS_MODULE = "open_data_contract_standard"
ODPS_SCHEMAS = {
    "v1.1.0": "odps-json-schema-v1.1.0.json",
    "v1.0.0": "odps-json-schema-v1.0.0.json",
}


class SchemaUnavailable(Exception):
    """A standard's schema is missing or unreadable; ``hint`` says how to get it back."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class StandardSchema:
    """A JSON Schema and where it came from (named in every message that uses it)."""

    schema: dict[str, Any]
    source: str


def _parse(text: str, source: str, hint: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except ValueError as error:
        raise SchemaUnavailable(f"{source} is not valid JSON: {error}", hint) from None
    if not isinstance(schema, dict) or "properties" not in schema:
        raise SchemaUnavailable(f"{source} is not a JSON Schema of the standard", hint)
    return schema


@lru_cache(maxsize=1)
def odcs_schema() -> StandardSchema:
    """The ODCS JSON Schema of the installed ``open-data-contract-standard`` package."""
    hint = f"reinstall ddp's dependencies (pip install --force-reinstall '{ODCS_PACKAGE}>=3.2,<4')"
    try:
        version = importlib.metadata.version(ODCS_PACKAGE)
        text = importlib.resources.files(ODCS_MODULE).joinpath("schema.json").read_text("utf-8")
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError):
        raise SchemaUnavailable(
            f"the ODCS JSON Schema is unavailable: package '{ODCS_PACKAGE}' is not installed", hint
        ) from None
    except OSError as error:
        raise SchemaUnavailable(
            f"the ODCS JSON Schema of '{ODCS_PACKAGE}' cannot be read: {error}", hint
        ) from None
    source = f"{ODCS_PACKAGE} {version} schema.json"
    return StandardSchema(_parse(text, source, hint), source)


@lru_cache(maxsize=4)
def odps_schema(api_version: str = "v1.0.0") -> StandardSchema:
    """The ODPS JSON Schema for ``api_version``, shipped in this package."""
    hint = "reinstall ddp (its wheel carries ddp_assets/standards/*.json)"
    name = ODPS_SCHEMAS.get(api_version)
    if name is None:
        raise SchemaUnavailable(
            f"no ODPS JSON Schema for {api_version} (ddp has {', '.join(ODPS_SCHEMAS)})", hint
        )
    try:
        text = importlib.resources.files(__name__).joinpath(name).read_text("utf-8")
    except OSError as error:
        raise SchemaUnavailable(
            f"the ODPS JSON Schema {name} cannot be read: {error}", hint
        ) from None
    return StandardSchema(_parse(text, f"ddp_assets/standards/{name}", hint), name)

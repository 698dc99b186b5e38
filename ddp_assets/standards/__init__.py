"""The open standards' own JSON Schemas, as the platform reads them at run time.

Everything comes from ddp's distribution or its dependencies, never from a folder beside the
project (``../shared`` is for the tests only):

- **ODCS**: every contract is checked against the schema of its own ``apiVersion``. v3.2.0 (what
  ddp writes) is the ``schema.json`` of PyPI's ``open-data-contract-standard`` (the Bitol
  standard's own Python model); the older versions ddp still reads are unchanged copies, in this
  folder, of ``schema/odcs-json-schema-<version>.json`` at the release tags of
  bitol-io/open-data-contract-standard (Apache License 2.0), listed in :data:`ODCS_SCHEMAS`
  with the tag's commit and the file's git blob id (``git hash-object`` of the copy);
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
ODCS_PACKAGE_API_VERSION = "v3.2.0"  # the apiVersion whose schema the package carries


@dataclass(frozen=True)
class ShippedSchema:
    """An official schema file shipped in this folder, and where it came from."""

    file: str
    tag: str
    commit: str
    blob: str  # git blob id of the file at that commit: the copy is byte for byte the release's


# apiVersion → its official JSON Schema, from the release tag of that version (the v3.1.0 file
# on the repository's main branch later gained a `deprecated` annotation; the tag's is shipped).
ODCS_SCHEMAS: dict[str, ShippedSchema] = {
    "v3.0.0": ShippedSchema(
        "odcs-json-schema-v3.0.0.json",
        "v3.0.0",
        "51bffe22e0954d57417bb1ca3e961cbb5567c5fe",
        "1ecb88086b148e3fc5b5943349a187d4530bdd63",
    ),
    "v3.0.1": ShippedSchema(
        "odcs-json-schema-v3.0.1.json",
        "v3.0.1",
        "f313988438bdaad1d04fc134f59d7c2c41141bf2",
        "44ff99eb8de660f38c689fb42dac9a57916b8c41",
    ),
    "v3.0.2": ShippedSchema(
        "odcs-json-schema-v3.0.2.json",
        "v3.0.2",
        "009d4e88d781f148c490b02129c9da333aa2b440",
        "cb9bfb9d8674751fb57399d76b62fcbe5c7faea9",
    ),
    "v3.1.0": ShippedSchema(
        "odcs-json-schema-v3.1.0.json",
        "v3.1.0",
        "b9d3ffc5aabe9e058afe4469cabe5a218fe9946d",
        "3596e68b07d19fc44fe947d8796021b64b8f86eb",
    ),
}
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


@lru_cache(maxsize=8)
def odcs_schema(api_version: str = ODCS_PACKAGE_API_VERSION) -> StandardSchema:
    """The official ODCS JSON Schema of ``api_version``: v3.2.0 from the installed
    ``open-data-contract-standard`` package, the older versions from this folder."""
    if api_version == ODCS_PACKAGE_API_VERSION:
        return _odcs_package_schema()
    shipped = ODCS_SCHEMAS.get(api_version)
    hint = "reinstall ddp (its wheel carries ddp_assets/standards/odcs-json-schema-*.json)"
    if shipped is None:
        known = ", ".join([*ODCS_SCHEMAS, ODCS_PACKAGE_API_VERSION])
        raise SchemaUnavailable(
            f"no ODCS JSON Schema for apiVersion {api_version!r} (ddp has {known})",
            f"write apiVersion: {ODCS_PACKAGE_API_VERSION}",
        )
    try:
        text = importlib.resources.files(__name__).joinpath(shipped.file).read_text("utf-8")
    except OSError as error:
        raise SchemaUnavailable(
            f"the ODCS {api_version} JSON Schema {shipped.file} cannot be read: {error}", hint
        ) from None
    return StandardSchema(_parse(text, f"ddp_assets/standards/{shipped.file}", hint), shipped.file)


def _odcs_package_schema() -> StandardSchema:
    hint = (
        f"reinstall ddp's dependencies (pip install --force-reinstall '{ODCS_PACKAGE}>=3.2,<3.3')"
    )
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
    schema = _parse(text, source, hint)
    carried = (schema["properties"].get("apiVersion") or {}).get("default")
    if carried != ODCS_PACKAGE_API_VERSION:  # another release of the package: not our schema
        raise SchemaUnavailable(
            f"{source} is the ODCS {carried} schema, not {ODCS_PACKAGE_API_VERSION}", hint
        )
    return StandardSchema(schema, source)


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

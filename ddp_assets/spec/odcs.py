"""Reading ODCS v3 data contracts (the parts ddp enforces).

The Open Data Contract Standard has far more fields than ddp enforces; unknown fields are kept
(``extra="allow"``) so that nothing in a contract is silently lost when it is re-exported.
ODCS v3.2.0 is what ddp writes (:data:`WRITTEN_API_VERSION`, for every writer of contracts);
v3.0.x and v3.1.0 are still read. :func:`schema_problems` checks a contract against the official
JSON Schema of its own ``apiVersion`` (:func:`ddp_assets.standards.odcs_schema`: v3.2.0 from the
Bitol standard's own package, the older ones shipped from the standard's release tags), and
names the schema used in every message; :func:`unsupported_parts` lists, with their line,
the parts of a contract ddp keeps but does not enforce, so nothing is silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ddp_assets.spec.errors import SpecErrors, SpecProblem, dotted, relative
from ddp_assets.spec.loader import Positions, read_document

SUPPORTED_API_VERSIONS = ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0", "v3.2.0")
# The apiVersion of every contract ddp writes (`ddp new`, `ddp contract infer`, exports).
WRITTEN_API_VERSION = "v3.2.0"

# ODCS logical types → DuckDB types, used when a property has no physicalType.
LOGICAL_TO_DUCKDB = {
    "string": "varchar",
    "integer": "bigint",
    "number": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "time": "time",
    "object": "json",
    "array": "json",
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class ContractProperty(_Open):
    """One column of a schema object."""

    name: str
    physical_name: str | None = Field(default=None, alias="physicalName")
    logical_type: str | None = Field(default=None, alias="logicalType")
    physical_type: str | None = Field(default=None, alias="physicalType")
    description: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = Field(default=False, alias="primaryKey")
    classification: str | None = None
    quality: list[dict[str, Any]] = Field(default_factory=list)
    # ODCS v3.2.0: the allowed values (objects with at least a ``value``; RFC 0033), the role
    # (column, measure, dimension; RFC 0034), alternative names (RFC 0041), deprecation
    enum: list[dict[str, Any]] = Field(default_factory=list)
    semantic_type: str | None = Field(default=None, alias="semanticType")
    synonyms: list[dict[str, Any]] = Field(default_factory=list)
    deprecated: bool = False

    @property
    def enum_values(self) -> tuple[Any, ...] | None:
        """The values of the v3.2.0 ``enum`` (nulls dropped: a null is never invalid), or None
        when the property has no ``enum``."""
        if not self.enum:
            return None
        return tuple(e.get("value") for e in self.enum if e.get("value") is not None)

    @property
    def column(self) -> str:
        return self.physical_name or self.name

    @property
    def data_type(self) -> str:
        if self.physical_type:
            return self.physical_type.lower()
        return LOGICAL_TO_DUCKDB.get((self.logical_type or "string").lower(), "varchar")


class SchemaObject(_Open):
    """A table or view described by the contract."""

    name: str
    physical_name: str | None = Field(default=None, alias="physicalName")
    physical_type: str | None = Field(default=None, alias="physicalType")
    description: str | None = None
    properties: list[ContractProperty] = Field(default_factory=list)
    quality: list[dict[str, Any]] = Field(default_factory=list)
    synonyms: list[dict[str, Any]] = Field(default_factory=list)  # ODCS v3.2.0
    deprecated: bool = False  # ODCS v3.2.0


class Contract(_Open):
    """An ODCS data contract."""

    api_version: str = Field(alias="apiVersion")

    @field_validator("api_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_API_VERSIONS:
            raise ValueError(
                f"apiVersion {value!r} is not supported; ddp reads "
                + ", ".join(SUPPORTED_API_VERSIONS)
            )
        return value

    kind: str = "DataContract"
    id: str
    version: str
    status: str
    name: str | None = None
    domain: str | None = None
    data_product: str | None = Field(default=None, alias="dataProduct")
    schema_: list[SchemaObject] = Field(default_factory=list, alias="schema")

    def object_for(self, model: str) -> SchemaObject | None:
        """The schema object describing ``model`` (by physical name or name), or the only one."""
        for obj in self.schema_:
            if model in (obj.physical_name, obj.name):
                return obj
        return self.schema_[0] if len(self.schema_) == 1 else None


@dataclass(frozen=True)
class LoadedContract:
    """A contract with its file: the raw document keeps every key's line for messages."""

    contract: Contract
    document: Any
    shown: str

    def line(self, *path: str | int) -> int | None:
        return Positions(self.document).line(tuple(path))


@lru_cache(maxsize=256)
def _load_cached(path: Path, mtime_ns: int, root: Path | None) -> LoadedContract:
    shown = relative(path, root)
    document = read_document(path, shown)  # bad or unbounded YAML: SpecErrors at its line
    positions = Positions(document)
    try:
        return LoadedContract(Contract.model_validate(document), document, shown)
    except ValidationError as error:
        problems = [
            SpecProblem(
                shown,
                positions.line(tuple(item["loc"])),
                dotted(tuple(item["loc"])),
                item["msg"],
                "see the ODCS v3 standard: https://bitol-io.github.io/open-data-contract-standard/",
            )
            for item in error.errors(include_url=False)
        ]
        raise SpecErrors(problems) from None


def load_contract(path: Path, root: Path | None = None) -> Contract:
    """Load an ODCS contract; raise :class:`SpecErrors` naming the file and line on problems."""
    return load_contract_file(path, root).contract


def load_contract_file(path: Path, root: Path | None = None) -> LoadedContract:
    """:func:`load_contract`, keeping the document's positions (for line numbers)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as error:
        shown = relative(path, root)
        raise SpecErrors([SpecProblem(shown, None, "(file)", f"cannot read: {error}")]) from None
    return _load_cached(path.resolve(), mtime, root)


# -- conformance to the official JSON Schema ----------------------------------------------------


def _schema(schema_dir: Path | None, api_version: str) -> tuple[dict[str, Any], str]:
    """The official JSON Schema of ``api_version`` and its name: the file
    ``odcs-json-schema-<apiVersion>.json`` of ``schema_dir`` when there is one (the tests'
    copies), else ddp's own (:func:`ddp_assets.standards.odcs_schema`, which raises
    ``SchemaUnavailable``). Never another version's schema."""
    from ddp_assets.standards import SchemaUnavailable, odcs_schema

    if schema_dir is not None:
        exact = schema_dir / f"odcs-json-schema-{api_version}.json"
        if exact.is_file():
            try:
                return json.loads(exact.read_text(encoding="utf-8")), str(exact.name)
            except (OSError, ValueError) as error:
                raise SchemaUnavailable(
                    f"the ODCS {api_version} JSON Schema {exact} cannot be read: {error}",
                    "replace it with the official file of that release",
                ) from None
    standard = odcs_schema(api_version)
    return standard.schema, standard.source


def plain(value: Any) -> Any:
    """A ruamel document as plain JSON data (dates become ISO strings, as ODCS expects)."""
    return json.loads(json.dumps(value, default=str))


def schema_problems(
    path: Path, root: Path | None = None, schema_dir: Path | None = None
) -> list[SpecProblem]:
    """Every place where the contract does not conform to the official ODCS JSON Schema of its
    own ``apiVersion`` (v3.0.x, v3.1.0 and v3.2.0 each against their own), the schema named in
    each message. With ``schema_dir``, that folder's file for the version is used when it has
    one. A schema that cannot be had, or an apiVersion ddp does not read, is an error, never a
    pass."""
    from jsonschema.validators import validator_for

    from ddp_assets.standards import SchemaUnavailable

    shown = relative(path, root)
    try:
        document = read_document(path, shown)
    except SpecErrors as errors:
        return errors.problems
    positions = Positions(document)
    api_version = document.get("apiVersion") if isinstance(document, dict) else None
    if api_version not in SUPPORTED_API_VERSIONS:
        return [
            SpecProblem(
                shown,
                positions.line(("apiVersion",)),
                "apiVersion",
                f"apiVersion {api_version!r} is not an ODCS version ddp reads, so there is no "
                "schema to check the contract against; ddp reads "
                + ", ".join(SUPPORTED_API_VERSIONS),
                f"write apiVersion: {WRITTEN_API_VERSION}",
            )
        ]
    version = str(api_version)
    try:
        schema, source = _schema(schema_dir, version)
    except SchemaUnavailable as error:
        return [SpecProblem(shown, None, "(contract)", str(error), error.hint)]
    validator = validator_for(schema)(schema)
    problems = []
    for error in sorted(
        validator.iter_errors(plain(document)), key=lambda e: list(map(str, e.path))
    ):
        where = tuple(error.path)
        message = error.message if len(error.message) < 300 else error.message[:297] + "..."
        problems.append(
            SpecProblem(
                shown,
                positions.line(where),
                dotted(where) or "(contract)",
                f"does not conform to the ODCS {version} schema ({source}): {message}",
                "see https://bitol-io.github.io/open-data-contract-standard/",
            )
        )
    return problems


# -- parts ddp keeps but does not enforce -------------------------------------------------------

# Top-level sections that describe things ddp does not enforce (they are kept and exported).
_NOT_ENFORCED_SECTIONS = {
    "servers": "ddp reads and writes its own warehouse; servers are kept but not used",
    "slaProperties": "SLAs are not enforced from the contract; declare freshness in the "
    "product spec's slos",
    "price": "pricing is kept as metadata only",
}
_NOT_ENFORCED_PROPERTY_KEYS = {
    "logicalTypeOptions": "logicalTypeOptions (lengths, ranges, formats) are not enforced; "
    "write a quality rule (invalidValues with pattern, or type: sql) instead",
    "relationships": "relationships (foreign keys) are not enforced",
    "properties": "nested properties (objects) are not enforced; only top-level columns are",
    "items": "array items are not enforced",
}
LIBRARY_METRICS = ("rowCount", "nullValues", "missingValues", "invalidValues", "duplicateValues")


def unsupported_parts(loaded: LoadedContract) -> list[SpecProblem]:
    """Warnings for the parts of a contract that ddp does not enforce, with file and line."""
    document = loaded.document if isinstance(loaded.document, dict) else {}
    warnings: list[SpecProblem] = []

    def warn(where: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        warnings.append(
            SpecProblem(loaded.shown, loaded.line(*where), dotted(where), message, hint, "warning")
        )

    for key, why in _NOT_ENFORCED_SECTIONS.items():
        if document.get(key):
            warn((key,), f"not enforced: {why}")
    for o, obj in enumerate(document.get("schema") or []):
        if not isinstance(obj, dict):
            continue
        if obj.get("relationships"):
            warn(("schema", o, "relationships"), "not enforced: relationships (foreign keys)")
        for q, rule in enumerate(obj.get("quality") or []):
            _check_rule(warn, ("schema", o, "quality", q), rule)
        for p, prop in enumerate(obj.get("properties") or []):
            if not isinstance(prop, dict):
                continue
            for key, why in _NOT_ENFORCED_PROPERTY_KEYS.items():
                if prop.get(key):
                    warn(("schema", o, "properties", p, key), f"not enforced: {why}")
            for q, rule in enumerate(prop.get("quality") or []):
                _check_rule(warn, ("schema", o, "properties", p, "quality", q), rule)
    return warnings


def _check_rule(warn: Any, where: tuple[str | int, ...], rule: Any) -> None:
    if not isinstance(rule, dict):
        return
    kind = rule.get("type") or "library"
    if kind == "text":
        warn(where, "not enforced: a 'text' quality rule is documentation only")
    elif kind == "custom":
        warn(
            where,
            f"not enforced: custom quality rules (engine {rule.get('engine')!r}) are not run",
            "express the rule as an ODCS library metric or a 'type: sql' rule",
        )
    elif kind == "library":
        metric = rule.get("metric") or rule.get("rule")
        if metric not in LIBRARY_METRICS:
            warn(
                (*where, "metric"),
                f"not enforced: unknown library metric {metric!r}",
                "use one of " + ", ".join(LIBRARY_METRICS),
            )
    elif kind != "sql":
        warn((*where, "type"), f"not enforced: unknown quality rule type {kind!r}")
    if rule.get("schedule") or rule.get("scheduler"):
        warn(
            where,
            "schedule ignored: ddp audits every rule on each build, before publishing",
        )


PLACEHOLDER = re.compile(r"\$?\{(object|table|model|column|property)\}")

"""ODCS contracts from what a dbt project already says: the built relation's columns and types,
the model's descriptions, constraints and tests.

:func:`contract_text` writes a new contract; :func:`refresh_contract` brings an existing one up
to date with ruamel.yaml's round trip, so that what a person wrote (descriptions, quality rules,
classifications, comments, key order) stays as it is: only the facts the warehouse and the dbt
tests own (physical and logical types, the columns present, required/unique/primary key that a
test or constraint asserts) are written, and every change is listed (the drift).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ddp_assets.contracts.column_types import ColumnType, column_type
from ddp_assets.spec.odcs import WRITTEN_API_VERSION

ODCS_API_VERSION = WRITTEN_API_VERSION
"""The apiVersion contracts are written with: the one every writer of ddp uses."""

_LOGICAL = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "decimal": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "time": "time",
    "binary": "string",
}


@dataclass
class ColumnFacts:
    """What the warehouse and the dbt project say about one column."""

    name: str
    physical_type: str
    description: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    valid_values: list[Any] | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    """Further ODCS quality rules (``type: sql``), e.g. from a dbt ``relationships`` test."""


@dataclass
class ObjectFacts:
    """One relation: its model, description and columns in the warehouse's order."""

    model: str
    description: str | None
    columns: list[ColumnFacts] = field(default_factory=list)


def physical_type(describe_type: str) -> str:
    """DuckDB's ``DESCRIBE`` type as contracts write it: lower case (``decimal(16,2)``)."""
    return describe_type.strip().lower().replace(", ", ",")


def logical_type(physical: str) -> str:
    parsed = column_type(physical)
    if isinstance(parsed, ColumnType):
        return _LOGICAL[parsed.family]
    lowered = physical.lower()
    if lowered.endswith("[]") or lowered.startswith(("list", "array")):
        return "array"
    if lowered.startswith(("struct", "map", "json", "union")):
        return "object"
    return "string"


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, order and quotes are kept
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    yaml.preserve_quotes = True
    return yaml


def _property(column: ColumnFacts) -> CommentedMap:
    prop = CommentedMap()
    prop["name"] = column.name
    prop["logicalType"] = logical_type(column.physical_type)
    prop["physicalType"] = column.physical_type
    if column.description:
        prop["description"] = column.description
    if column.primary_key:
        prop["primaryKey"] = True
    if column.required or column.primary_key:
        prop["required"] = True
    if column.unique:
        prop["unique"] = True
    if column.valid_values:
        prop["enum"] = _enum(column.valid_values)
    quality = CommentedSeq()
    quality.extend(_rule(r) for r in column.rules)
    if quality:
        prop["quality"] = quality
    return prop


def _rule(rule: dict[str, Any]) -> CommentedMap:
    out = CommentedMap()
    out.update(rule)
    return out


def _enum(values: list[Any]) -> CommentedSeq:
    """dbt's accepted values as the property's ODCS v3.2.0 ``enum`` (objects with a ``value``;
    ddp checks it as an accepted-values rule, ``contracts/compiler.py``)."""
    listed = CommentedSeq()
    for value in values:
        entry = CommentedMap()
        entry["value"] = value
        entry.fa.set_flow_style()
        listed.append(entry)
    return listed


def contract_text(
    *,
    contract_id: str,
    name: str,
    version: str,
    domain: str,
    product: str,
    obj: ObjectFacts,
    header: str = "",
) -> str:
    """A new ODCS contract for one relation."""
    document = CommentedMap()
    document["apiVersion"] = ODCS_API_VERSION
    document["kind"] = "DataContract"
    document["id"] = contract_id
    document["name"] = name
    document["version"] = version
    document["status"] = "active"
    document["domain"] = domain
    document["dataProduct"] = product
    schema_object = CommentedMap()
    schema_object["name"] = obj.model
    schema_object["physicalName"] = obj.model
    schema_object["physicalType"] = "view"  # the published relation (naming.py)
    schema_object["description"] = obj.description or f"One row of {obj.model}."
    schema_object["properties"] = CommentedSeq(_property(c) for c in obj.columns)
    document["schema"] = CommentedSeq([schema_object])
    return header + _dump(document)


def _dump(document: Any) -> str:
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    return buffer.getvalue()


@dataclass
class Refreshed:
    text: str
    changes: list[str]
    """One line per fact that drifted (empty: the contract is up to date)."""


def refresh_contract(text: str, obj: ObjectFacts) -> Refreshed:
    """``text`` (an ODCS contract) with the facts of ``obj`` written in, hand-written parts kept.

    Raises ``ValueError`` when the contract has no schema object for the model.
    """
    document = _yaml().load(text)
    changes: list[str] = []
    schema = document.get("schema") if isinstance(document, CommentedMap) else None
    target = None
    if isinstance(schema, CommentedSeq):
        for candidate in schema:
            if isinstance(candidate, CommentedMap) and obj.model in (
                candidate.get("physicalName"),
                candidate.get("name"),
            ):
                target = candidate
        if target is None and len(schema) == 1 and isinstance(schema[0], CommentedMap):
            target = schema[0]
    if target is None:
        raise ValueError(f"the contract has no schema object for model '{obj.model}'")
    if not target.get("description") and obj.description:
        target["description"] = obj.description
        changes.append("description written")
    properties = target.get("properties")
    if not isinstance(properties, CommentedSeq):
        properties = CommentedSeq()
        target["properties"] = properties
    by_name = {
        str(p.get("physicalName") or p.get("name")): p
        for p in properties
        if isinstance(p, CommentedMap)
    }
    present = {c.name for c in obj.columns}
    for name in [n for n in by_name if n not in present]:
        properties.remove(by_name.pop(name))
        changes.append(f"column '{name}' removed (not in the relation any more)")
    for column in obj.columns:
        prop = by_name.get(column.name)
        if prop is None:
            properties.append(_property(column))
            changes.append(f"column '{column.name}' added ({column.physical_type})")
            continue
        changes.extend(_refresh_property(prop, column))
    return Refreshed(_dump(document), changes)


def _refresh_property(prop: CommentedMap, column: ColumnFacts) -> list[str]:
    changes: list[str] = []
    name = column.name
    old = str(prop.get("physicalType") or "")
    if physical_type(old) != column.physical_type:
        prop["physicalType"] = column.physical_type
        changes.append(f"column '{name}': physicalType {old or '(none)'} → {column.physical_type}")
    logical = logical_type(column.physical_type)
    if prop.get("logicalType") != logical:
        changes.append(f"column '{name}': logicalType {prop.get('logicalType')} → {logical}")
        prop["logicalType"] = logical
    for key, asserted in (
        ("primaryKey", column.primary_key),
        ("required", column.required or column.primary_key),
        ("unique", column.unique),
    ):
        if asserted and prop.get(key) is not True:
            prop[key] = True
            changes.append(f"column '{name}': {key} (asserted by a dbt test or constraint)")
    if column.description and not prop.get("description"):
        prop["description"] = column.description
        changes.append(f"column '{name}': description written")
    if column.valid_values:
        quality = prop.get("quality")
        has_rule = isinstance(quality, list) and any(
            isinstance(r, dict) and r.get("metric") == "invalidValues" for r in quality
        )
        if not has_rule and not prop.get("enum"):  # the author's own list stays as written
            prop["enum"] = _enum(column.valid_values)
            changes.append(f"column '{name}': accepted values written as its enum")
    for rule in column.rules:
        quality = prop.get("quality")
        if isinstance(quality, list) and any(
            isinstance(r, dict) and r.get("query") == rule.get("query") for r in quality
        ):
            continue
        if not isinstance(quality, list):
            quality = CommentedSeq()
            prop["quality"] = quality
        quality.append(_rule(rule))
        changes.append(f"column '{name}': {rule.get('description') or 'a sql rule'} written")
    return changes

"""Change management: what changed between two versions of a contract, and does it break?

A contract is read from one of two perspectives (``ddp contract diff --perspective``):

- **producer**: the contract of an *output* port is a promise to every consumer that reads the
  port. A change breaks when a consumer written against the old contract can fail on data valid
  under the new one (forward compatibility): the promise may only get stronger. Removing a
  column, widening a type, making a column nullable, dropping uniqueness or adding an allowed
  value break; adding a column, narrowing a type, making a column required do not.
- **consumer**: the contract of an *input* port (a landing contract) states what the consumer
  relies on, and the data it receives is checked against it. A change breaks when data that
  passed the old contract can fail the new one (backward compatibility): the expectation may
  only get weaker. Adding a required column, narrowing a type, making a column required, adding
  uniqueness or removing an allowed value break; removing a column does not.

:data:`RULES` is the table of both (docs/ports.md shows it); :func:`diff_contracts` lists the
changes and classifies each for one perspective. The allowed values of a column are its ODCS
v3.2.0 ``enum`` and its ``invalidValues``/``validValues`` rule (both, when it has both).
A breaking change needs a new major version of the contract (:func:`needs_major_bump`).
:func:`project_changes` compares every output port (producer) or every input contract
(consumer) of the project with a base: a git ref (``git show <ref>:<path>``) or a folder
holding an older checkout.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative
from ddp_assets.spec.model import FileInputPort, ProductInputPort
from ddp_assets.spec.odcs import (
    Contract,
    ContractProperty,
    SchemaObject,
    load_contract,
    load_contract_file,
)
from ddp_assets.spec.registry import Product, Registry

# Integer and floating types, narrowest first: a move to the right widens.
_INTEGERS = ["tinyint", "smallint", "integer", "bigint", "hugeint"]
_FLOATS = ["float", "double"]
_ALIASES = {
    "int1": "tinyint",
    "int2": "smallint",
    "int4": "integer",
    "int": "integer",
    "int8": "bigint",
    "long": "bigint",
    "int128": "hugeint",
    "float4": "float",
    "real": "float",
    "float8": "double",
    "string": "varchar",
    "text": "varchar",
}
_SIZED = re.compile(r"^(?P<base>\w+)\s*(?:\((?P<args>[\d\s,]+)\))?$")


Perspective = Literal["producer", "consumer"]
PERSPECTIVES: tuple[Perspective, ...] = ("producer", "consumer")


@dataclass(frozen=True)
class Rule:
    """One kind of change and whether it breaks, from each perspective."""

    change: str  # what changed, as docs/ports.md shows it
    producer: bool  # breaks the consumers of an output contract
    consumer: bool  # breaks the supply of an input contract (data that passed may now fail)
    datacontract_cli: str  # the rule and severity of datacontract-cli 0.10's `breaking`

    def breaking(self, perspective: Perspective) -> bool:
        return self.producer if perspective == "producer" else self.consumer


RULES: dict[str, Rule] = {
    "object_removed": Rule("schema object removed", True, False, "model_removed: error"),
    "object_added": Rule("schema object added", False, True, "model_added: info"),
    "column_removed": Rule("column removed", True, False, "field_removed: error"),
    "column_renamed": Rule(
        "column renamed (same type)", True, True, "field_removed + field_added: error"
    ),
    "column_added": Rule("optional column added", False, False, "field_added: info"),
    "required_column_added": Rule("required column added", False, True, "field_added: info"),
    "type_widened": Rule(
        "type widened (e.g. integer → bigint, varchar(10) → varchar(20))",
        True,
        False,
        "field_type_updated: error",
    ),
    "type_narrowed": Rule(
        "type narrowed (e.g. bigint → integer, decimal(18,2) → decimal(14,0))",
        False,
        True,
        "field_type_updated: error",
    ),
    "type_changed": Rule(
        "type changed to an unrelated type (e.g. timestamp → bigint)",
        True,
        True,
        "field_type_updated: error",
    ),
    "made_required": Rule(
        "nullable → required (required or primaryKey)", False, True, "field_required_updated: error"
    ),
    "made_nullable": Rule("required → nullable", True, False, "field_required_updated: error"),
    "unique_added": Rule("made unique", False, True, "field_unique_updated: error"),
    "unique_dropped": Rule("no longer unique", True, False, "field_unique_updated: error"),
    "primary_key_changed": Rule(
        "primary key changed", True, True, "field_primary_key_added/removed: warning"
    ),
    "valid_values_extended": Rule(
        "allowed values (enum, validValues) extended", True, False, "field_enum_members_added: info"
    ),
    "valid_values_reduced": Rule(
        "allowed values (enum, validValues) reduced", False, True, "field_enum_updated: error"
    ),
    "valid_values_limited": Rule(
        "allowed values introduced on a column that had none",
        False,
        True,
        "field_enum_added: warning",
    ),
    "valid_values_unlimited": Rule(
        "allowed values no longer limited", True, False, "field_enum_removed: info"
    ),
    "deprecated": Rule(
        "contract (status), schema object or column (ODCS v3.2.0) marked deprecated",
        False,
        False,
        "(no rule)",
    ),
    "quality_changed": Rule(
        "quality rules changed (listed for review)", False, False, "quality_*: info/warning"
    ),
    "id_changed": Rule("contract id changed", True, True, "(id not compared)"),
    "port_removed": Rule("output port removed", True, False, "(no ports)"),
}


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract."""

    contract: str  # contract id
    object: str  # schema object (table) name
    column: str | None
    kind: str  # a key of RULES, e.g. column_removed, type_narrowed
    detail: str
    breaking: bool
    perspective: Perspective = "producer"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        where = f"{self.object}.{self.column}" if self.column else self.object
        label = "BREAKING" if self.breaking else "compatible"
        return f"{label}: {where}: {self.detail}"


def change(
    contract: str,
    obj: str,
    column: str | None,
    kind: str,
    detail: str,
    perspective: Perspective = "producer",
) -> Change:
    """A :class:`Change` classified by :data:`RULES` for ``perspective``."""
    return Change(
        contract, obj, column, kind, detail, RULES[kind].breaking(perspective), perspective
    )


def _type(text: str) -> tuple[str, list[int]]:
    match = _SIZED.match(text.strip().lower())
    if not match:
        return text.strip().lower(), []
    base = _ALIASES.get(match["base"], match["base"])
    if base == "numeric":
        base = "decimal"
    args = [int(a) for a in (match["args"] or "").replace(" ", "").split(",") if a]
    return base, args


def type_change(old: str, new: str) -> str | None:
    """'widened', 'narrowed' or 'changed' from type ``old`` to ``new``; None when equal."""
    (a, a_args), (b, b_args) = _type(old), _type(new)
    if (a, a_args) == (b, b_args):
        return None
    if a in _INTEGERS and b in _INTEGERS:
        return "widened" if _INTEGERS.index(b) > _INTEGERS.index(a) else "narrowed"
    if a in _FLOATS and b in _FLOATS:
        return "widened" if _FLOATS.index(b) > _FLOATS.index(a) else "narrowed"
    if a in _INTEGERS and b in (*_FLOATS, "decimal"):
        return "widened" if b != "decimal" or not b_args else _decimal_from_int(a, b_args)
    if a == "decimal" and b == "double":
        return "widened"
    if a == b == "decimal":
        p1, s1 = [*a_args, 18, 3][:2] if a_args else (18, 3)
        p2, s2 = [*b_args, 18, 3][:2] if b_args else (18, 3)
        return "widened" if s2 >= s1 and p2 - s2 >= p1 - s1 else "narrowed"
    if a == b == "varchar":
        if not b_args:
            return "widened"
        if not a_args:
            return "narrowed"
        return "widened" if b_args[0] >= a_args[0] else "narrowed"
    if a == "date" and b == "timestamp":
        return "widened"
    if b == "varchar" and not b_args:
        return "widened"  # anything can be read as text
    return "changed"


def _decimal_from_int(integer: str, args: list[int]) -> str:
    digits = {"tinyint": 3, "smallint": 5, "integer": 10, "bigint": 19, "hugeint": 39}[integer]
    precision, scale = [*args, 0][:2]
    return "widened" if precision - scale >= digits else "narrowed"


def _valid_values(prop: ContractProperty) -> set[Any] | None:
    """The values a column may hold: its v3.2.0 ``enum`` and its ``validValues`` rule (the
    values both allow, when it has both), or None when neither limits it."""
    allowed: set[Any] | None = None
    if prop.enum_values is not None:
        allowed = set(prop.enum_values)
    for rule in prop.quality:
        if (rule.get("metric") or rule.get("rule")) == "invalidValues":
            values = (rule.get("arguments") or {}).get("validValues")
            if values is not None:
                listed = {v for v in values if v is not None}
                allowed = listed if allowed is None else allowed & listed
    return allowed


def diff_objects(
    contract_id: str,
    old: SchemaObject,
    new: SchemaObject,
    perspective: Perspective = "producer",
) -> list[Change]:
    changes: list[Change] = []
    name = new.name

    def add(column: str | None, kind: str, detail: str) -> None:
        changes.append(change(contract_id, name, column, kind, detail, perspective))

    if new.deprecated and not old.deprecated:
        add(None, "deprecated", "schema object marked deprecated")
    before = {p.column: p for p in old.properties}
    after = {p.column: p for p in new.properties}
    removed = [c for c in before if c not in after]
    added = [c for c in after if c not in before]
    renamed: dict[str, str] = {}
    if len(removed) == len(added) and removed:
        pairs = list(zip(removed, added, strict=True))
        if all(before[r].data_type == after[a].data_type for r, a in pairs):
            renamed = dict(pairs)
    for column in removed:
        was = " (it was deprecated)" if before[column].deprecated else ""
        if column in renamed:
            add(column, "column_renamed", f"column renamed to '{renamed[column]}'{was}")
        else:
            add(column, "column_removed", f"column removed{was}")
    for column in added:
        if column not in renamed.values():
            if after[column].required or after[column].primary_key:
                add(column, "required_column_added", "column added (required)")
            else:
                add(column, "column_added", "column added")
    for column in [c for c in before if c in after]:
        was, now = before[column], after[column]
        if now.deprecated and not was.deprecated:
            add(column, "deprecated", "column marked deprecated")
        kind = type_change(was.data_type, now.data_type)
        if kind:
            add(column, f"type_{kind}", f"type {kind}: {was.data_type} → {now.data_type}")
        if (now.required or now.primary_key) and not (was.required or was.primary_key):
            add(column, "made_required", "nullable → required")
        elif (was.required or was.primary_key) and not (now.required or now.primary_key):
            add(column, "made_nullable", "required → nullable")
        if was.unique and not now.unique:
            add(column, "unique_dropped", "no longer unique")
        elif now.unique and not was.unique:
            add(column, "unique_added", "now unique")
        old_values, new_values = _valid_values(was), _valid_values(now)
        if old_values is not None and new_values is not None and old_values != new_values:
            dropped = sorted(map(str, old_values - new_values))
            extra = sorted(map(str, new_values - old_values))
            if dropped:
                add(column, "valid_values_reduced", f"allowed values removed: {dropped}")
            if extra:
                add(column, "valid_values_extended", f"allowed values added: {extra}")
        elif old_values is None and new_values is not None:
            add(
                column,
                "valid_values_limited",
                f"values now limited to {sorted(map(str, new_values))}",
            )
        elif old_values is not None and new_values is None:
            add(column, "valid_values_unlimited", "values no longer limited")
    old_key = [p.column for p in old.properties if p.primary_key]
    new_key = [p.column for p in new.properties if p.primary_key]
    if old_key != new_key:
        add(None, "primary_key_changed", f"primary key {old_key} → {new_key}")
    if old.quality != new.quality or any(
        before[c].quality != after[c].quality for c in before.keys() & after.keys()
    ):
        add(None, "quality_changed", "quality rules changed")
    return changes


def diff_contracts(
    old: Contract, new: Contract, perspective: Perspective = "producer"
) -> list[Change]:
    """Every change from ``old`` to ``new``, each breaking or not from ``perspective``."""
    changes: list[Change] = []
    old_objects = {o.physical_name or o.name: o for o in old.schema_}
    new_objects = {o.physical_name or o.name: o for o in new.schema_}
    for name, obj in old_objects.items():
        if name not in new_objects:
            changes.append(
                change(new.id, name, None, "object_removed", "schema object removed", perspective)
            )
            continue
        changes.extend(diff_objects(new.id, obj, new_objects[name], perspective))
    for name in [n for n in new_objects if n not in old_objects]:
        changes.append(
            change(new.id, name, None, "object_added", "schema object added", perspective)
        )
    if new.status == "deprecated" and old.status != "deprecated":
        changes.append(
            change(new.id, "(contract)", None, "deprecated", "contract deprecated", perspective)
        )
    if old.id != new.id:
        changes.append(
            change(
                new.id,
                "(contract)",
                None,
                "id_changed",
                f"contract id {old.id} → {new.id}",
                perspective,
            )
        )
    return changes


def needs_major_bump(old_version: str, new_version: str) -> bool:
    """True when ``new_version`` is not a higher major version than ``old_version``."""
    try:
        return Version(new_version).major <= Version(old_version).major
    except InvalidVersion:
        return True


# -- the project against a base (git ref or folder) ----------------------------------------------


@dataclass
class PortDiff:
    product: str
    port: str
    contract_file: str
    old_version: str | None
    new_version: str | None
    changes: list[Change]
    downstream: list[str]  # "product.input_port" of every reader of this port
    perspective: Perspective = "producer"  # producer: an output port; consumer: an input port

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)

    @property
    def unbumped(self) -> bool:
        return (
            self.breaking
            and self.old_version is not None
            and self.new_version is not None
            and needs_major_bump(self.old_version, self.new_version)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "port": self.port,
            "contract_file": self.contract_file,
            "perspective": self.perspective,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "breaking": self.breaking,
            "major_bump_missing": self.unbumped,
            "downstream": self.downstream,
            "changes": [c.to_dict() for c in self.changes],
        }


def _base_text(root: Path, base: str, path: Path) -> str | None:
    """The file at ``path`` as it was in ``base``: a folder (an older checkout) or a git ref."""
    rel = path.resolve().relative_to(root.resolve())
    folder = Path(base)
    if folder.is_dir():
        old = folder / rel
        return old.read_text(encoding="utf-8") if old.is_file() else None
    result = subprocess.run(
        # ./: relative to the project, which may be a folder of the repository (a monorepo)
        ["git", "-C", str(root), "show", f"{base}:./{rel.as_posix()}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else None


def base_available(root: Path, base: str) -> bool:
    if Path(base).is_dir():
        return True
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return False
    return result.returncode == 0


def _readers(registry: Registry, product: str, port: str) -> list[str]:
    return sorted(
        f"{p.id}.{ip.name}"
        for p in registry.products.values()
        for ip in p.spec.input_ports
        if isinstance(ip, ProductInputPort) and ip.product == f"{product}.{port}"
    )


def _old_ports(root: Path, base: str, product: Product) -> dict[str, str] | None:
    """Output port name → contract path in the base version of the product's spec."""
    from ruamel.yaml.error import YAMLError

    from ddp_assets.spec.loader import YamlLimitError, parse_yaml

    text = _base_text(root, base, product.loaded.path)
    if text is None:
        return None
    try:  # the base version is read with the same bounds as the working copy
        document = parse_yaml(text) or {}
        ports = (document.get("attributes") or {}).get("output_ports") or []
        return {str(p["name"]): str(p.get("contract", "")) for p in ports if isinstance(p, dict)}
    except (YAMLError, YamlLimitError, KeyError, TypeError, AttributeError):
        return None


def _contract_diff(
    root: Path, base: str, path: Path, perspective: Perspective
) -> tuple[Contract, Contract, list[Change]] | None:
    """The old and new contract at ``path`` and their changes; None when either cannot be read
    (a new contract, or one ``ddp validate`` reports)."""
    try:
        new = load_contract(path, root)
    except SpecErrors:
        return None  # reported by validate
    old_text = _base_text(root, base, path)
    if old_text is None:
        return None  # a new contract: nothing to compare
    with tempfile.TemporaryDirectory() as folder:
        old_path = Path(folder) / path.name
        old_path.write_text(old_text, encoding="utf-8")
        try:
            old = load_contract(old_path)
        except SpecErrors:
            return None
    return old, new, diff_contracts(old, new, perspective)


def input_contracts(product: Product) -> list[tuple[str, Path]]:
    """(input port, contract file) of every input port of ``product`` with a contract of its
    own: the landing contract ``contracts/<port>.odcs.yaml`` of a file input port."""
    return [
        (port.name, path)
        for port in product.spec.input_ports
        if isinstance(port, FileInputPort)
        and (path := product.folder / "contracts" / f"{port.name}.odcs.yaml").is_file()
    ]


def project_changes(
    registry: Registry, base: str, perspective: Perspective = "producer"
) -> list[PortDiff]:
    """The contract changes since ``base``: of every output port (removed ports included) from
    the producer's perspective, or of every input contract from the consumer's."""
    root = registry.root
    diffs: list[PortDiff] = []
    for product in registry.products.values():
        if perspective == "consumer":
            for name, path in input_contracts(product):
                found = _contract_diff(root, base, path, perspective)
                if found and (found[2] or found[0].version != found[1].version):
                    old, new, changes = found
                    diffs.append(
                        PortDiff(
                            product.id,
                            name,
                            relative(path, root),
                            old.version,
                            new.version,
                            changes,
                            [],
                            perspective,
                        )
                    )
            continue
        old_ports = _old_ports(root, base, product)
        for port in product.spec.output_ports:
            path = product.folder / port.contract
            found = _contract_diff(root, base, path, perspective)
            if found and (found[2] or found[0].version != found[1].version):
                old, new, changes = found
                diffs.append(
                    PortDiff(
                        product.id,
                        port.name,
                        relative(path, root),
                        old.version,
                        new.version,
                        changes,
                        _readers(registry, product.id, port.name),
                    )
                )
        for name in sorted((old_ports or {}).keys() - {p.name for p in product.spec.output_ports}):
            diffs.append(
                PortDiff(
                    product.id,
                    name,
                    (old_ports or {})[name],
                    None,
                    None,
                    [change("", name, None, "port_removed", "output port removed")],
                    _readers(registry, product.id, name),
                )
            )
    return diffs


def breaking_change_problems(registry: Registry, base: str) -> list[SpecProblem]:
    """Errors for breaking changes made without a major version bump (for ``ddp validate``)."""
    if not base_available(registry.root, base):
        return []
    problems = []
    diffs = project_changes(registry, base) + project_changes(registry, base, "consumer")
    for diff in diffs:
        removed_port = any(c.kind == "port_removed" for c in diff.changes)
        if not (diff.unbumped or removed_port):
            continue
        product = registry.products[diff.product]
        affected = ", ".join(diff.downstream) or "no product reads this port yet"
        breaking = "; ".join(c.format() for c in diff.changes if c.breaking)
        if removed_port:
            problems.append(
                SpecProblem(
                    product.loaded.display_path,
                    product.loaded.line_of("output_ports"),
                    "output_ports",
                    f"output port '{diff.port}' was removed since {base}: a breaking change "
                    f"for {affected}",
                    "keep the port (deprecate it first), or remove the input ports reading it",
                    "error" if diff.downstream else "warning",
                )
            )
            continue
        try:
            line = load_contract_file(registry.root / diff.contract_file, registry.root).line(
                "version"
            )
        except SpecErrors:
            line = None
        if diff.perspective == "consumer":
            who = (
                f"Data that passed the old contract of input port '{diff.product}.{diff.port}' "
                "may now be rejected"
            )
            tell = "the suppliers of its data"
        else:
            who = f"Affected downstream (product.input_port): {affected}"
            tell = "the owners of the affected products"
        problems.append(
            SpecProblem(
                diff.contract_file,
                line,
                "version",
                f"breaking change ({diff.perspective} perspective) since {base} without a major "
                f"version bump ({diff.old_version} → {diff.new_version}): {breaking}. {who}",
                f"bump the contract to {_next_major(diff.old_version)} and tell {tell}, or "
                "make the change compatible",
            )
        )
    return problems


def _next_major(version: str | None) -> str:
    try:
        return f"{Version(version or '0').major + 1}.0.0"
    except InvalidVersion:
        return "the next major version"

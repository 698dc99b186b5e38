"""Change management: what changed between two versions of a contract, and does it break?

:func:`diff_contracts` lists the changes between an old and a new contract and classifies each
as breaking or not, from the consumer's side:

- breaking: a column removed or renamed, a type narrowed (or changed to an unrelated type), a
  column made required (nullable → required), a primary key changed, uniqueness dropped, the
  valid values of a column reduced, a schema object or an output port removed;
- not breaking: a column added, a type widened, a column made nullable, valid values extended,
  descriptions and quality rules changed.

A breaking change needs a new major version of the contract (:func:`needs_major_bump`).
:func:`project_changes` compares every output port of the project with a base: a git ref
(``git show <ref>:<path>``) or a folder holding an older checkout.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative
from ddp_assets.spec.model import ProductInputPort
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


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract."""

    contract: str  # contract id
    object: str  # schema object (table) name
    column: str | None
    kind: str  # e.g. column_removed, type_narrowed
    detail: str
    breaking: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        where = f"{self.object}.{self.column}" if self.column else self.object
        label = "BREAKING" if self.breaking else "compatible"
        return f"{label}: {where}: {self.detail}"


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
    for rule in prop.quality:
        if (rule.get("metric") or rule.get("rule")) == "invalidValues":
            values = (rule.get("arguments") or {}).get("validValues")
            if values is not None:
                return {v for v in values if v is not None}
    return None


def diff_objects(contract_id: str, old: SchemaObject, new: SchemaObject) -> list[Change]:
    changes: list[Change] = []
    name = new.name

    def add(column: str | None, kind: str, detail: str, breaking: bool) -> None:
        changes.append(Change(contract_id, name, column, kind, detail, breaking))

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
        if column in renamed:
            add(column, "column_renamed", f"column renamed to '{renamed[column]}'", True)
        else:
            add(column, "column_removed", "column removed", True)
    for column in added:
        if column not in renamed.values():
            required = " (required)" if after[column].required else ""
            add(column, "column_added", f"column added{required}", False)
    for column in before.keys() & after.keys():
        was, now = before[column], after[column]
        change = type_change(was.data_type, now.data_type)
        if change:
            add(
                column,
                f"type_{change}",
                f"type {change}: {was.data_type} → {now.data_type}",
                change != "widened",
            )
        if (now.required or now.primary_key) and not (was.required or was.primary_key):
            add(column, "made_required", "nullable → required", True)
        elif (was.required or was.primary_key) and not (now.required or now.primary_key):
            add(column, "made_nullable", "required → nullable", False)
        if was.unique and not now.unique:
            add(column, "unique_dropped", "no longer unique", True)
        elif now.unique and not was.unique:
            add(column, "unique_added", "now unique", False)
        old_values, new_values = _valid_values(was), _valid_values(now)
        if old_values is not None and new_values is not None and old_values != new_values:
            dropped = sorted(map(str, old_values - new_values))
            extra = sorted(map(str, new_values - old_values))
            if dropped:
                add(column, "valid_values_reduced", f"valid values removed: {dropped}", True)
            if extra:
                add(column, "valid_values_extended", f"valid values added: {extra}", False)
        elif old_values is None and new_values is not None:
            add(
                column,
                "valid_values_reduced",
                f"valid values now limited to {sorted(map(str, new_values))}",
                True,
            )
    old_key = [p.column for p in old.properties if p.primary_key]
    new_key = [p.column for p in new.properties if p.primary_key]
    if old_key != new_key:
        add(None, "primary_key_changed", f"primary key {old_key} → {new_key}", True)
    if old.quality != new.quality or any(
        before[c].quality != after[c].quality for c in before.keys() & after.keys()
    ):
        add(None, "quality_changed", "quality rules changed", False)
    return changes


def diff_contracts(old: Contract, new: Contract) -> list[Change]:
    """Every change from ``old`` to ``new``, breaking or not."""
    changes: list[Change] = []
    old_objects = {o.physical_name or o.name: o for o in old.schema_}
    new_objects = {o.physical_name or o.name: o for o in new.schema_}
    for name, obj in old_objects.items():
        if name not in new_objects:
            changes.append(
                Change(new.id, name, None, "object_removed", "schema object removed", True)
            )
            continue
        changes.extend(diff_objects(new.id, obj, new_objects[name]))
    for name in new_objects.keys() - old_objects.keys():
        changes.append(Change(new.id, name, None, "object_added", "schema object added", False))
    if old.id != new.id:
        changes.append(
            Change(
                new.id, "(contract)", None, "id_changed", f"contract id {old.id} → {new.id}", True
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
        ["git", "-C", str(root), "show", f"{base}:{rel.as_posix()}"],
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


def project_changes(registry: Registry, base: str) -> list[PortDiff]:
    """The contract changes of every output port since ``base`` (removed ports included)."""
    root = registry.root
    diffs: list[PortDiff] = []
    for product in registry.products.values():
        old_ports = _old_ports(root, base, product)
        for port in product.spec.output_ports:
            path = product.folder / port.contract
            try:
                new = load_contract(path, root)
            except SpecErrors:
                continue  # reported by validate
            old_text = _base_text(root, base, path)
            if old_text is None:
                continue  # a new contract: nothing to compare
            with tempfile.TemporaryDirectory() as folder:
                old_path = Path(folder) / path.name
                old_path.write_text(old_text, encoding="utf-8")
                try:
                    old = load_contract(old_path)
                except SpecErrors:
                    continue
            changes = diff_contracts(old, new)
            if changes or old.version != new.version:
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
                    [Change("", name, None, "port_removed", "output port removed", True)],
                    _readers(registry, product.id, name),
                )
            )
    return diffs


def breaking_change_problems(registry: Registry, base: str) -> list[SpecProblem]:
    """Errors for breaking changes made without a major version bump (for ``ddp validate``)."""
    if not base_available(registry.root, base):
        return []
    problems = []
    for diff in project_changes(registry, base):
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
        problems.append(
            SpecProblem(
                diff.contract_file,
                line,
                "version",
                f"breaking change since {base} without a major version bump "
                f"({diff.old_version} → {diff.new_version}): {breaking}. Affected downstream "
                f"(product.input_port): {affected}",
                f"bump the contract to {_next_major(diff.old_version)} and tell the owners of "
                "the affected products, or make the change compatible",
            )
        )
    return problems


def _next_major(version: str | None) -> str:
    try:
        return f"{Version(version or '0').major + 1}.0.0"
    except InvalidVersion:
        return "the next major version"

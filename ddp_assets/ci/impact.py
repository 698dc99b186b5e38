"""Who a breaking change of an output port's contract affects, column by column.

An input port names the contract it expects by id and version, not by columns, so the columns
a reader uses are read from its SQL: every model of the reading product that ``ref()``s the
port's model is parsed with sqlglot (the Jinja calls replaced by identifiers). A model that
names a changed column uses it; a model whose outermost projection is ``*`` passes every column
on, to the models reading it (followed the same way) and, when it is an output port's model,
to that port. A reader is affected when one of its models uses a changed column, when one
passes it on to an output port, when a Python model reads what carries it (Python is not
analysed), when a SQL model cannot be parsed, or when the change is not about one column (a
schema object or the port removed, the primary key or the contract id changed). Otherwise it
reads the port but none of the changed columns, and is listed as not affected. Everything
downstream of an affected reader is listed as transitively affected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot import exp, parse
from sqlglot.errors import SqlglotError

from ddp_assets.ci.changes import downstream_of
from ddp_assets.contracts.diff import RULES, PortDiff
from ddp_assets.spec.errors import relative
from ddp_assets.spec.model import ProductInputPort
from ddp_assets.spec.registry import Product, Registry

_REF = re.compile(r"""\{\{\s*ref\(\s*['"](\w+)['"]\s*(?:,\s*['"](\w+)['"]\s*)?\)\s*\}\}""")
_SOURCE = re.compile(r"""\{\{\s*source\(\s*['"](\w+)['"]\s*,\s*['"](\w+)['"]\s*\)\s*\}\}""")
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.S)
_STATEMENT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)


@dataclass
class Reader:
    """One input port reading a changed output port, and whether the change reaches it."""

    product: str
    input_port: str
    affected: bool
    why: str
    columns_used: list[str] = field(default_factory=list)  # the changed columns it uses

    def to_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "input_port": self.input_port,
            "affected": self.affected,
            "why": self.why,
            "columns_used": self.columns_used,
        }


@dataclass
class PortImpact:
    """A changed output port (or input contract), its readers and what lies beyond them."""

    diff: PortDiff
    readers: list[Reader] = field(default_factory=list)
    transitive: dict[str, str] = field(default_factory=dict)  # id → the reader it reads

    @property
    def affected(self) -> list[str]:
        return sorted({r.product for r in self.readers if r.affected})

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.diff.to_dict(),
            "readers": [r.to_dict() for r in self.readers],
            "affected_products": self.affected,
            "transitively_affected": [
                {"id": k, "via": v} for k, v in sorted(self.transitive.items())
            ],
        }


def _plain_sql(text: str) -> str:
    """The SQL of a dbt model with its Jinja replaced by identifiers sqlglot can parse."""
    text = _REF.sub(lambda m: f"__ref_{m[2] or m[1]}", text)
    text = _SOURCE.sub(lambda m: f"__source_{m[1]}__{m[2]}", text)
    text = _EXPRESSION.sub("__jinja", text)
    return _STATEMENT.sub(" ", text)


@dataclass(frozen=True)
class SqlShape:
    """What ``ddp ci`` needs of a model's SQL: its identifiers and whether its result passes
    every column of what it reads on (``*`` in its outermost projection)."""

    identifiers: frozenset[str]  # lower case
    passes_all: bool


def _outer_star(query: exp.Expr) -> bool:
    if isinstance(query, exp.SetOperation):
        return _outer_star(query.left) or _outer_star(query.right)
    if isinstance(query, exp.Subquery):
        return _outer_star(query.this)
    if isinstance(query, exp.Select):
        return any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in query.expressions
        )
    return True  # not a query sqlglot shows: assume it passes everything


def sql_shape(text: str) -> SqlShape | None:
    """The :class:`SqlShape` of a dbt model's SQL; None when sqlglot cannot parse it."""
    try:
        statements = [s for s in parse(_plain_sql(text), dialect="duckdb") if s is not None]
    except SqlglotError:
        return None
    except Exception:  # sqlglot raises plain errors on some unsupported syntax
        return None
    if not statements:
        return None
    names: set[str] = set()
    for statement in statements:
        names.update(i.name.lower() for i in statement.find_all(exp.Identifier))
    return SqlShape(frozenset(names), _outer_star(statements[-1]))


def _reader(
    registry: Registry,
    reader: Product,
    port: ProductInputPort,
    model: str,
    columns: set[str],
    whole: str = "the change is not about one column",
) -> Reader:
    """Whether the changed ``columns`` of ``model`` (empty: the whole port) reach ``reader``
    through its input port ``port``: a model naming one uses it; a model passing every column
    on (``select *`` outermost) hands them to the models reading it, and to its output port."""

    def make(affected: bool, why: str, used: list[str] | None = None) -> Reader:
        return Reader(reader.id, port.name, affected, why, used or [])

    if not columns:
        return make(True, f"{whole}: every reader is affected")
    readers_of: dict[str, set[Path]] = {}
    for ref in reader.references():
        if ref.kind == "ref":
            readers_of.setdefault(ref.name, set()).add(ref.file)
    model_of = {path: name for name, path in reader.sql_models.items()}
    python_inputs = {m.name: set(m.inputs) for m in reader.spec.python_models}
    outputs = reader.output_models
    seen: set[str] = set()
    queue = [(model, port.name)]  # (what carries the columns, how Python models name it)
    while queue:
        carrier, input_name = queue.pop()
        python = [n for n, inputs in python_inputs.items() if {carrier, input_name} & inputs]
        if python:
            return make(
                True,
                f"Python model {', '.join(python)} reads {carrier} (not analysed)",
                sorted(columns),
            )
        for path in sorted(readers_of.get(carrier, set())):
            shown = relative(path, registry.root)
            try:
                shape = sql_shape(path.read_text(encoding="utf-8-sig"))
            except OSError:
                shape = None
            if shape is None:
                return make(True, f"{shown} could not be analysed", sorted(columns))
            used = sorted(columns & shape.identifiers)
            if used:
                return make(True, f"{shown} uses {', '.join(used)}", used)
            name = model_of.get(path)
            if shape.passes_all and name is not None and name not in seen:
                if name in outputs:
                    return make(
                        True,
                        f"{shown} passes every column on (select *) to its output port "
                        f"'{outputs[name]}'",
                        sorted(columns),
                    )
                seen.add(name)
                queue.append((name, name))
    if not readers_of.get(model):
        return make(True, f"no model of {reader.id} reads '{model}' by ref(): not analysed")
    return make(False, f"its models use none of {', '.join(sorted(columns))}")


def port_impacts(registry: Registry, diffs: list[PortDiff]) -> list[PortImpact]:
    """Every contract change with the readers it affects (breaking producer changes only: a
    compatible change or a consumer-side contract has no readers to name)."""
    impacts: list[PortImpact] = []
    for diff in diffs:
        impact = PortImpact(diff)
        impacts.append(impact)
        if diff.perspective != "producer" or not diff.breaking:
            continue
        breaking = [c for c in diff.changes if c.breaking]
        whole = sorted({RULES[c.kind].change for c in breaking if c.column is None})
        columns = set() if whole else {str(c.column).lower() for c in breaking}
        upstream = registry.products.get(diff.product)
        output = upstream.spec.output_port(diff.port) if upstream else None
        model = output.model if output else diff.port  # a removed port: its name
        wanted = f"{diff.product}.{diff.port}"
        for reader in registry.products.values():
            for port in reader.spec.input_ports:
                if isinstance(port, ProductInputPort) and port.product == wanted:
                    impact.readers.append(
                        _reader(registry, reader, port, model, columns, "; ".join(whole))
                    )
        impact.transitive = {
            k: v
            for k, v in downstream_of(registry, impact.affected).items()
            if k not in impact.affected
        }
    return impacts

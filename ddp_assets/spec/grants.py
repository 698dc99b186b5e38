"""The rules a product's access policies must follow, checked when the registry loads.

A grant names output ports the product has; a row filter names a column of every port it
covers, and its values are of that column's type (the same coercion every port applies when it
reads: :func:`coerce_value`). The ports (:mod:`ddp_assets.ports.policy`) resolve and compile
the policies; the rules and the coercion of values live here, with the specs, so the registry
checks them without importing the ports.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted
from ddp_assets.spec.model import LIST_OPS, NO_VALUE_OPS, RowCondition
from ddp_assets.spec.odcs import load_contract

if TYPE_CHECKING:
    from ddp_assets.spec.registry import Product, Registry

MAX_TEXT_VALUE = 1000


_INTEGER = re.compile(r"^(tiny|small|big|huge|u?)int(eger)?\d*$|^u(tiny|small|big|huge)int$")
_NUMBER = re.compile(r"^(double|float\d*|real|decimal.*|numeric.*)$")
_INT_TEXT = re.compile(r"^[+-]?\d{1,38}$")
_NUM_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def value_kind(column_type: str) -> str | None:
    """'int', 'number', 'bool', 'date', 'timestamp', 'text', or None (not filterable)."""
    kind = column_type.strip().lower()
    if _INTEGER.match(kind) or kind in ("int", "integer", "bigint", "smallint", "tinyint"):
        return "int"
    if _NUMBER.match(kind):
        return "number"
    if kind in ("boolean", "bool"):
        return "bool"
    if kind == "date":
        return "date"
    if kind.startswith("timestamp") or kind == "datetime":
        return "timestamp"
    if kind in ("varchar", "text", "string", "char", "bpchar") or kind.startswith(
        ("varchar", "char")
    ):
        return "text"
    return None


def coerce_value(value: Any, name: str, column_type: str, output_type: str | None = None) -> Any:
    """``value`` as the Python type of column ``name`` (of ``column_type``; ``output_type``: the
    type a consumer sees, varchar when masked); ValueError with a readable message otherwise."""
    kind = value_kind(output_type or column_type)
    if kind is None:
        raise ValueError(f"column '{name}' ({column_type}) cannot be filtered on")
    text = value if isinstance(value, str) else None
    if isinstance(value, bool) and kind != "bool" and kind != "text":
        raise ValueError(f"{value!r} is not a {kind} value for column '{name}'")
    try:
        if kind == "int":
            if isinstance(value, int):
                return value
            if text is not None and _INT_TEXT.match(text):
                return int(text)
        elif kind == "number":
            number = None
            if isinstance(value, (int, float)):
                number = float(value)
            elif text is not None and _NUM_TEXT.match(text):
                number = float(text)
            if number is not None and math.isfinite(number):
                return number
        elif kind == "bool":
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in ("true", "false"):
                return text.lower() == "true"
        elif kind == "date":
            if isinstance(value, date) and not isinstance(value, datetime):
                return value
            if text is not None and len(text) == 10:
                return date.fromisoformat(text)
        elif kind == "timestamp":
            if isinstance(value, datetime):
                return value
            if text is not None and len(text) <= 40:
                parsed = datetime.fromisoformat(text)
                return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed
        elif kind == "text":
            as_text = str(value).lower() if isinstance(value, bool) else str(value)
            if len(as_text) <= MAX_TEXT_VALUE and "\x00" not in as_text:
                return as_text
            raise ValueError(
                f"a value for column '{name}' must be under {MAX_TEXT_VALUE} characters "
                "without NUL bytes"
            )
    except (ValueError, OverflowError):
        pass
    example = {
        "int": "42",
        "number": "3.5",
        "bool": "true",
        "date": "2024-01-31",
        "timestamp": "2024-01-31T12:00:00",
    }[kind]
    label = {"int": "an integer", "number": "a number", "bool": "a boolean"}.get(kind, f"a {kind}")
    raise ValueError(
        f"{str(value)[:80]!r} is not {label} value for column '{name}' (e.g. {example})"
    )


def condition_values(condition: RowCondition, name: str, column_type: str) -> list[Any]:
    """The values of a row condition, each coerced to the column's type (none for ``is_null``
    and ``not_null``); ValueError with a readable message when one is not of that type."""
    if condition.op in NO_VALUE_OPS:
        return []
    if condition.op in LIST_OPS:
        values = condition.value if isinstance(condition.value, list) else [condition.value]
    else:
        values = [condition.value]
    return [coerce_value(v, name, column_type) for v in values]


def policy_problems(registry: Registry) -> list[SpecProblem]:
    """Grants naming unknown ports, row filters on unknown columns or with bad values."""
    problems: list[SpecProblem] = []
    for product in registry.products.values():
        problems.extend(_product_problems(product))
    return problems


def _product_problems(product: Product) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    loaded = product.loaded

    def problem(where: tuple[str | int, ...], message: str, hint: str | None) -> None:
        problems.append(
            SpecProblem(loaded.display_path, loaded.line_of(*where), dotted(where), message, hint)
        )

    port_names = [p.name for p in product.spec.output_ports]
    columns: dict[str, dict[str, str]] = {}  # port → column → type
    for output in product.spec.output_ports:
        try:
            contract = load_contract(product.folder / output.contract)
        except (SpecErrors, OSError):
            continue  # a missing or broken contract is reported by the contract checks
        obj = contract.object_for(output.model)
        if obj is None:
            continue  # reported by the contract checks
        columns[output.name] = {p.column: p.data_type for p in obj.properties}
    for index, grant in enumerate(product.spec.policies.grants):
        base = ("policies", "grants", index)
        for position, port in enumerate(grant.ports):
            if port != "*" and port not in port_names:
                problem(
                    (*base, "ports", position),
                    f"grant to '{grant.to}' names unknown output port '{port}'",
                    did_you_mean(port, port_names)
                    or f"this product's output ports: {', '.join(port_names)}, or '*'",
                )
        covered = [p for p in port_names if "*" in grant.ports or p in grant.ports]
        for position, condition in enumerate(grant.rows):
            where = (*base, "rows", position)
            for port in covered:
                known = columns.get(port)
                if known is None:
                    continue
                column_type = known.get(condition.column)
                if column_type is None:
                    problem(
                        (*where, "column"),
                        f"row filter on '{condition.column}', which port '{port}' does not have",
                        did_you_mean(condition.column, known)
                        or (
                            f"columns of '{port}': {', '.join(known)}; or list under 'ports' "
                            "only the ports that have the column"
                        ),
                    )
                    break
                try:
                    condition_values(condition, condition.column, column_type)
                except ValueError as error:
                    problem(
                        (*where, "value"),
                        str(error),
                        f"write a value of the column's type ({column_type})",
                    )
                    break
    return problems

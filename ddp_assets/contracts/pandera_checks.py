"""Layer 3 of a contract: a pandera schema for tables written from Python.

:func:`pandera_schema` builds a ``pandera.ibis`` schema from a compiled contract (required → not
nullable, unique, and the ``validValues``/``pattern`` rules as data checks); column types are
compared by family (:mod:`ddp_assets.contracts.column_types`: ``varchar(100)``, ``uuid`` and
``json`` are strings, ``int2`` a 16-bit integer, ...) with the table's own, and a type ddp has
no check for (arrays, structs, maps) was a warning at compile time and is not compared.
:func:`validate_table` runs it on a warehouse table in place through ibis (its DuckDB or
PostgreSQL backend), so the checks execute as SQL inside the warehouse, with its memory
bounded (:meth:`~ddp_assets.warehouse.Warehouse.bounded_memory`). Only when a check fails is
anything fetched, and at most :data:`~ddp_assets.contracts.soda.SAMPLE_LIMIT` failure cases
are kept; but pandera's ibis backend then fetches every failure case of that check, and its
boolean output for every row, into pandas (``pandera/backends/ibis/base.py``), so a failing
table's check costs memory in proportion to its rows. Whatever the validation itself runs into
(an error of pandera, ibis or the warehouse) is a failed result with its message, never an
exception out of :func:`validate_table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ddp_assets.contracts.column_types import ColumnType, UncheckedType, column_type
from ddp_assets.contracts.compiler import ContractPlan
from ddp_assets.contracts.soda import SAMPLE_LIMIT
from ddp_assets.warehouse import Connection, warehouse_of
from ddp_assets.warehouse.config import data_type_for

PANDERA_CHECK = "pandera_schema"


def dtype_matches(expected: ColumnType, actual: Any) -> bool:
    """Whether the ibis type ``actual`` of a table's column is of the contract's family."""
    match expected.family:
        case "string":
            if expected.json and (actual.is_struct() or actual.is_map() or actual.is_array()):
                return True
            return bool(actual.is_string() or actual.is_uuid() or actual.is_json())
        case "integer":
            if expected.bits == 128 and actual.is_decimal():
                return actual.scale == 0 and actual.precision == 38  # DuckDB's (u)hugeint
            return (
                bool(actual.is_integer())
                and actual.nbytes * 8 == expected.bits
                and bool(actual.is_unsigned_integer()) == expected.unsigned
            )
        case "float":
            if not actual.is_floating():
                return False
            return expected.bits is None or actual.nbytes * 8 == expected.bits
        case "decimal":
            if not actual.is_decimal():
                return False
            if expected.precision is None or actual.precision is None:
                return True  # PostgreSQL's unconstrained numeric has no precision
            return (actual.precision, actual.scale or 0) == (expected.precision, expected.scale)
        case "timestamp":
            return bool(actual.is_timestamp()) and (actual.timezone is not None) == (
                expected.timezone
            )
        case "boolean":
            return bool(actual.is_boolean())
        case "date":
            return bool(actual.is_date())
        case "time":
            return bool(actual.is_time())
        case "binary":
            return bool(actual.is_binary())
    return False  # pragma: no cover - every family is matched above


@dataclass
class PanderaResult:
    """The outcome of a pandera validation: problems by kind and a sample of failure cases."""

    passed: bool
    error_counts: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return "the table matches the contract's pandera schema"
        return "; ".join(self.messages[:5])


def expected_type(data_type: str, adapter: str = "duckdb") -> ColumnType | UncheckedType:
    """The family a column of contract type ``data_type`` has in a warehouse of ``adapter``: of
    the type the warehouse was given (:func:`~ddp_assets.warehouse.config.data_type_for`), so a
    ``tinyint`` is a 16-bit integer on PostgreSQL, which has no 8-bit one."""
    return column_type(data_type_for(data_type, adapter))


def pandera_schema(
    plan: ContractPlan, actual: Mapping[str, Any] | None = None, adapter: str = "duckdb"
) -> Any:
    """The ``pandera.ibis`` schema of a contract's shape and value rules.

    Column types are not in it: :func:`validate_table` compares them with the table's own
    (:func:`dtype_matches`), since pandera's ibis engine has no dtype for some of the types a
    table can have (uuid, json, arrays) and raises on them. ``actual``: the table's column types
    by name, when known; the value checks of a column whose type is not the contract's are left
    out (they would compare values of another type); a pattern on a column that is not a string
    (uuid, json, numbers), and valid values of a uuid or json column, are checked on its text.
    """
    import pandera.ibis as pa

    actual = actual or {}
    wrong = {
        c.name
        for c in plan.columns
        if c.name in actual
        and isinstance(kind := expected_type(c.data_type, adapter), ColumnType)
        and not dtype_matches(kind, actual[c.name])
    }
    checks: dict[str, list[Any]] = {}
    for rule in plan.rules:
        if rule.metric != "invalidValues" or rule.column is None or rule.column in wrong:
            continue
        if rule.threshold.operator != "mustBe" or rule.threshold.value != 0:
            continue  # tolerances are Soda's job; pandera checks the absolute rules
        if rule.severity != "error":
            continue  # the check is blocking: only rules of severity error belong in it
        dtype = actual.get(rule.column)
        if rule.valid_values is not None:
            values = list(rule.valid_values)
            as_text = dtype is not None and bool(dtype.is_uuid() or dtype.is_json())
            check = _text_check("isin", values) if as_text else pa.Check.isin(values)
            checks.setdefault(rule.column, []).append(check)
        elif rule.pattern is not None:
            pattern = rule.pattern
            as_text = dtype is not None and not dtype.is_string()
            check = (
                _text_check("str_contains", pattern) if as_text else pa.Check.str_contains(pattern)
            )
            checks.setdefault(rule.column, []).append(check)
    columns = {
        c.name: pa.Column(
            None,  # compared by validate_table, see above
            checks=checks.get(c.name) or None,
            nullable=not c.required,
            required=True,
        )
        for c in plan.columns
    }
    # the ibis backend checks uniqueness at the table level (column-level unique is not run)
    unique = [[c.name] for c in plan.columns if c.unique]
    if plan.primary_key and plan.primary_key not in unique:
        unique.append(plan.primary_key)
    combos: Any = unique or None  # lists of column lists are supported, though not typed so
    return pa.DataFrameSchema(columns, name=plan.object_name, strict=False, unique=combos)


def _text_check(kind: str, argument: Any) -> Any:
    """``isin``/``str_contains`` on a column's text (ibis has neither for uuid or json columns,
    nor a regular expression search on numbers)."""
    import pandera.ibis as pa

    def check(data: Any) -> Any:
        text = data.table[data.key].cast("string")
        result = text.isin(argument) if kind == "isin" else text.re_search(argument)
        return data.table.select(result.name(data.key))

    shown = f"{kind}({argument!r})"
    return pa.Check(check, name=kind, error=shown)


def _type_problems(
    plan: ContractPlan, actual: Mapping[str, Any], adapter: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Messages and failure cases for the columns whose type is not the contract's."""
    messages: list[str] = []
    sample: list[dict[str, Any]] = []
    for column in plan.columns:
        kind = expected_type(column.data_type, adapter)
        if column.name not in actual or not isinstance(kind, ColumnType):
            continue  # a missing column is pandera's to report; an unchecked type was warned
        got = actual[column.name]
        if dtype_matches(kind, got):
            continue
        check = f"dtype('{column.data_type}')"
        messages.append(
            f"{column.name}: {check}: expected column '{column.name}' to have type "
            f"{column.data_type} ({kind.describe()}), got {got}"
        )
        sample.append({"column": column.name, "check": check, "failure_case": str(got)})
    return messages, sample


def validate_table(
    connection: Connection, plan: ContractPlan, schema: str, table: str
) -> PanderaResult:
    """Validate ``schema.table`` against the contract's pandera schema, inside the warehouse.

    Never raises for what the validation itself runs into: an error of pandera, ibis or the
    warehouse while checking (a type it cannot compare, a query that fails, memory) is a failed
    result whose message names it, so the step records a failed check instead of crashing.
    """
    warehouse = warehouse_of(connection)
    # ibis sets the session's time zone to UTC and, on DuckDB, turns off replacement scans
    # (Python objects named in SQL); the connection goes on to build and publish, so it gets
    # its own settings back
    names = _IBIS_SETTINGS.get(warehouse.kind, ())
    previous = {name: _setting(connection, name) for name in names}
    try:
        return _validate(warehouse, connection, plan, schema, table)
    except Exception as error:  # the safety net: a check that cannot run is a failed check
        message = " ".join(str(error).split())[:500] or "(no message)"
        return PanderaResult(
            False,
            {"VALIDATION_ERROR": 1},
            [
                f"table: the pandera schema could not be checked on {schema}.{table}: "
                f"{type(error).__name__}: {message}"
            ],
        )
    finally:
        for name, value in previous.items():
            if _setting(connection, name) != value:
                connection.execute(f"set {name} = '" + value.replace("'", "''") + "'")


def _validate(
    warehouse: Any, connection: Connection, plan: ContractPlan, schema: str, table: str
) -> PanderaResult:
    import pandera.ibis as pa
    from pandera.config import ValidationDepth, config_context

    backend = warehouse.ibis_backend(connection)
    data = backend.table(table, database=schema)
    actual = dict(data.schema().items())
    type_messages, type_sample = _type_problems(plan, actual, warehouse.kind)
    type_counts = {"WRONG_DATATYPE": len(type_messages)} if type_messages else {}
    try:
        # the checks are SQL in the warehouse, bounded in memory as Soda's are
        with warehouse.bounded_memory(connection):
            # no row breaks no data rule, but pandera's ibis backend reads the SQL null of
            # all() over no rows as a failed not-null check: an empty table gets the schema only
            empty = data.limit(1).count().execute() == 0
        depth = ValidationDepth.SCHEMA_ONLY if empty else ValidationDepth.SCHEMA_AND_DATA
        with warehouse.bounded_memory(connection), config_context(validation_depth=depth):
            pandera_schema(plan, actual, warehouse.kind).validate(data, lazy=True)
    except pa.errors.SchemaErrors as errors:
        messages = [
            f"{item.get('column') or 'table'}: {item.get('check')}: "
            + str(item.get("error", ""))[:300]
            for kind in errors.message.values()
            for items in kind.values()
            for item in items
        ]
        cases = errors.failure_cases.head(SAMPLE_LIMIT)
        sample = [
            {
                str(k): (v if isinstance(v, (int, float, bool)) or v is None else str(v))
                for k, v in row.items()
            }
            for row in cases[["column", "check", "failure_case"]].to_dict("records")
        ]
        counts = dict(errors.error_counts)
        for key, value in type_counts.items():
            counts[key] = counts.get(key, 0) + value
        return PanderaResult(
            False,
            counts,
            type_messages + messages,
            (type_sample + sample)[:SAMPLE_LIMIT],
        )
    if type_messages:
        return PanderaResult(False, type_counts, type_messages, type_sample[:SAMPLE_LIMIT])
    return PanderaResult(True)


_IBIS_SETTINGS = {"duckdb": ("TimeZone", "python_enable_replacements"), "postgres": ("TimeZone",)}
"""Session settings ibis changes on the connection it is given (see :func:`validate_table`)."""


def _setting(connection: Connection, name: str) -> str:
    (value,) = connection.execute(f"select current_setting('{name}')").fetchone() or ("",)
    return str(value)


def sample_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no sample)"
    names = list(rows[0])
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        cells = [str(row[n]).replace("|", "\\|")[:60] for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pandera_result(
    result: PanderaResult, plan: ContractPlan, asset_key: dg.AssetKey
) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {
        "contract": f"{plan.contract_id}@{plan.contract_version}",
        "observed": sum(result.error_counts.values()),
        "threshold": "no schema or data error",
    }
    if not result.passed:
        metadata["errors"] = dg.MetadataValue.json(result.error_counts)
        metadata["messages"] = dg.MetadataValue.md("\n".join(f"- {m}" for m in result.messages))
        metadata["failing_rows_sample"] = dg.MetadataValue.md(sample_markdown(result.sample))
        metadata["failing_rows_sample_size"] = len(result.sample)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=PANDERA_CHECK,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.summary(),
        metadata=metadata,
    )

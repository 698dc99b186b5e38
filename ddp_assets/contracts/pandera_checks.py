"""Layer 3 of a contract: a pandera schema for tables written from Python.

:func:`pandera_schema` builds a ``pandera.ibis`` schema from a compiled contract (column types,
required → not nullable, unique, and the ``validValues``/``pattern`` rules as data checks);
:func:`validate_table` runs it on a warehouse table in place through ibis (its DuckDB or
PostgreSQL backend), so the checks execute as SQL inside the warehouse, with its memory
bounded (:meth:`~ddp_assets.warehouse.Warehouse.bounded_memory`). Only when a check fails is
anything fetched, and at most :data:`~ddp_assets.contracts.soda.SAMPLE_LIMIT` failure cases
are kept; but pandera's ibis backend then fetches every failure case of that check, and its
boolean output for every row, into pandas (``pandera/backends/ibis/base.py``), so a failing
table's check costs memory in proportion to its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ddp_assets.contracts.compiler import ContractPlan
from ddp_assets.contracts.soda import SAMPLE_LIMIT
from ddp_assets.warehouse import Connection, warehouse_of

PANDERA_CHECK = "pandera_schema"

# Type names as written in contracts (DuckDB's, and PostgreSQL's spellings) → ibis types.
_IBIS_TYPES = {
    "varchar": "string",
    "text": "string",
    "string": "string",
    "bigint": "int64",
    "int8": "int64",
    "long": "int64",
    "integer": "int32",
    "int": "int32",
    "int4": "int32",
    "smallint": "int16",
    "tinyint": "int8",
    "hugeint": "int128",
    "double": "float64",
    "double precision": "float64",
    "float8": "float64",
    "float": "float32",
    "real": "float32",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp(6)",
    "datetime": "timestamp(6)",
    "timestamptz": "timestamp('UTC', 6)",
    "timestamp with time zone": "timestamp('UTC', 6)",
    "timestamp without time zone": "timestamp(6)",
    "character varying": "string",
    "time": "time",
    "json": "json",
}


def ibis_type(data_type: str) -> Any:
    import ibis

    text = data_type.strip().lower()
    if text.startswith(("decimal", "numeric")):
        return ibis.dtype(text.replace("numeric", "decimal"))
    return ibis.dtype(_IBIS_TYPES.get(text, text))


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


def pandera_schema(plan: ContractPlan) -> Any:
    """The ``pandera.ibis`` schema of a contract's shape and value rules."""
    import pandera.ibis as pa

    checks: dict[str, list[Any]] = {}
    for rule in plan.rules:
        if rule.metric != "invalidValues" or rule.column is None:
            continue
        if rule.threshold.operator != "mustBe" or rule.threshold.value != 0:
            continue  # tolerances are Soda's job; pandera checks the absolute rules
        if rule.severity != "error":
            continue  # the check is blocking: only rules of severity error belong in it
        if rule.valid_values is not None:
            checks.setdefault(rule.column, []).append(pa.Check.isin(list(rule.valid_values)))
        elif rule.pattern is not None:
            checks.setdefault(rule.column, []).append(pa.Check.str_contains(rule.pattern))
    columns = {
        c.name: pa.Column(
            ibis_type(c.data_type),
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


def validate_table(
    connection: Connection, plan: ContractPlan, schema: str, table: str
) -> PanderaResult:
    """Validate ``schema.table`` against the contract's pandera schema, inside the warehouse."""
    import pandera.ibis as pa
    from pandera.config import ValidationDepth, config_context

    warehouse = warehouse_of(connection)
    # ibis sets the session's time zone to UTC and, on DuckDB, turns off replacement scans
    # (Python objects named in SQL); the connection goes on to build and publish, so it gets
    # its own settings back
    names = _IBIS_SETTINGS.get(warehouse.kind, ())
    previous = {name: _setting(connection, name) for name in names}
    try:
        backend = warehouse.ibis_backend(connection)
        data = backend.table(table, database=schema)
        # the checks are SQL in the warehouse, bounded in memory as Soda's are
        with (
            warehouse.bounded_memory(connection),
            config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA),
        ):
            pandera_schema(plan).validate(data, lazy=True)
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
        return PanderaResult(False, dict(errors.error_counts), messages, sample)
    finally:
        for name, value in previous.items():
            if _setting(connection, name) != value:
                connection.execute(f"set {name} = '" + value.replace("'", "''") + "'")
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

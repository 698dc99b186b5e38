"""One compiler from an ODCS contract to the rules ddp enforces, in three layers.

:func:`compile_contract` turns the schema object of one output port into a typed
:class:`ContractPlan`:

1. **shape** (:class:`ShapeColumn`): column names, types, required, unique, primary key → the
   enforced dbt model contract, its ``not_null`` constraints and uniqueness tests
   (:mod:`ddp_assets.dbt.properties`);
2. **quality** (:class:`QualityRule`): the ODCS library metrics (rowCount, nullValues,
   missingValues, invalidValues, duplicateValues) with every ``mustBe*`` operator,
   ``type: sql`` rules, and a property's ODCS v3.2.0 ``enum`` (an accepted-values check) → a
   Soda v4 contract run inside DuckDB (:mod:`ddp_assets.contracts.soda`);
3. **DataFrame schema**: the same shape as a pandera schema, for Python outputs and landing
   files (:mod:`ddp_assets.contracts.pandera_checks`).

Rules ddp cannot enforce are not dropped: they come back as warnings with their file and line.
Rules it must not run are errors with their file, line and field: a ``type: sql`` query that is
not one read-only ``SELECT`` of the port's own relation and the product's declared inputs (see
:mod:`ddp_assets.contracts.sql_rules`), a ``pattern`` that is not a valid regular expression.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ddp_assets.contracts.column_types import UncheckedType, column_type
from ddp_assets.contracts.sql_rules import OWN_SCHEMA, RuleRefused, sandboxed_query
from ddp_assets.spec.errors import SpecErrors, SpecProblem, dotted
from ddp_assets.spec.odcs import (
    LIBRARY_METRICS,
    PLACEHOLDER,
    Contract,
    LoadedContract,
    SchemaObject,
    load_contract_file,
    plain,
    unsupported_parts,
)

Severity = Literal["error", "warning"]
Metric = Literal[
    "rowCount", "nullValues", "missingValues", "invalidValues", "duplicateValues", "sql"
]

# ODCS operator → (Soda threshold key, text shown to users). v3.0 spellings are accepted too.
OPERATORS: dict[str, tuple[str, str]] = {
    "mustBe": ("must_be", "="),
    "mustNotBe": ("must_not_be", "!="),
    "mustBeGreaterThan": ("must_be_greater_than", ">"),
    "mustBeGreaterOrEqualTo": ("must_be_greater_than_or_equal", ">="),
    "mustBeGreaterThanOrEqualTo": ("must_be_greater_than_or_equal", ">="),
    "mustBeLessThan": ("must_be_less_than", "<"),
    "mustBeLessOrEqualTo": ("must_be_less_than_or_equal", "<="),
    "mustBeLessThanOrEqualTo": ("must_be_less_than_or_equal", "<="),
    "mustBeBetween": ("must_be_between", "between"),
    "mustNotBeBetween": ("must_be_not_between", "not between"),
}
_SEVERITIES = {"error": "error", "critical": "error", "blocking": "error"}


@dataclass(frozen=True)
class ShapeColumn:
    """Layer 1: one column as the dbt model contract and pandera see it."""

    name: str
    data_type: str
    required: bool
    unique: bool
    primary_key: bool


@dataclass(frozen=True)
class Threshold:
    """A comparison the metric must satisfy, as written in the contract."""

    operator: str  # the ODCS key, e.g. mustBeLessOrEqualTo
    value: Any  # a number, or [low, high] for the between operators

    @property
    def soda_key(self) -> str:
        return OPERATORS[self.operator][0]

    def describe(self) -> str:
        symbol = OPERATORS[self.operator][1]
        if isinstance(self.value, list):
            return f"{symbol} [{self.value[0]}, {self.value[1]}]"
        return f"{symbol} {self.value}"

    def holds(self, observed: float) -> bool:
        """The same comparison in Python (used for rules evaluated outside Soda)."""
        value = self.value
        match self.operator:
            case "mustBe":
                return observed == value
            case "mustNotBe":
                return observed != value
            case "mustBeGreaterThan":
                return observed > value
            case "mustBeGreaterOrEqualTo" | "mustBeGreaterThanOrEqualTo":
                return observed >= value
            case "mustBeLessThan":
                return observed < value
            case "mustBeLessOrEqualTo" | "mustBeLessThanOrEqualTo":
                return observed <= value
            case "mustBeBetween":
                return value[0] <= observed <= value[1]
            case _:
                return not value[0] <= observed <= value[1]


@dataclass(frozen=True)
class QualityRule:
    """Layer 2: one ODCS quality rule, ready for Soda."""

    check_name: str  # unique within the port; a valid Dagster check name
    metric: Metric
    column: str | None
    threshold: Threshold
    severity: Severity
    unit: Literal["rows", "percent"] = "rows"
    valid_values: tuple[Any, ...] | None = None
    pattern: str | None = None
    missing_values: tuple[Any, ...] = ()
    columns: tuple[str, ...] = ()  # duplicateValues over several columns
    query: str | None = None  # sql rules, with {object} still in place
    description: str | None = None
    line: int | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    def sql_for(self, relation: str) -> str | None:
        """The rule's SQL query with its placeholders resolved against ``relation``.

        This is the text as written: what runs is
        :func:`~ddp_assets.contracts.sql_rules.sandboxed_query` of it.
        """
        if self.query is None:
            return None
        return resolve_placeholders(self.query, relation, self.column)


def resolve_placeholders(query: str, relation: str, column: str | None) -> str:
    """``{object}``/``${table}``/``{model}`` → ``relation``, ``{column}``/``{property}`` → the
    quoted column."""
    quoted = '"' + (column or "").replace('"', '""') + '"'

    def replace(match: re.Match[str]) -> str:
        return relation if match[1] in ("object", "table", "model") else quoted

    return PLACEHOLDER.sub(replace, query)


@dataclass(frozen=True)
class ContractPlan:
    """Everything ddp enforces for one output port, compiled from its ODCS contract."""

    contract_id: str
    contract_version: str
    object_name: str
    file: str
    columns: tuple[ShapeColumn, ...]
    rules: tuple[QualityRule, ...]
    warnings: tuple[SpecProblem, ...] = field(default_factory=tuple)
    inputs: tuple[str, ...] = ()
    """The relations its ``sql`` rules may read besides the port's own (``product.model``)."""

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]


def compile_contract(
    path: Path, model: str, root: Path | None = None, inputs: Collection[str] = ()
) -> ContractPlan:
    """Compile the schema object of ``model`` in the contract at ``path``.

    ``inputs``: the relations (``product.model``) the contract's ``sql`` rules may read besides
    the port's own, i.e. the product's declared input ports
    (:func:`~ddp_assets.contracts.sql_rules.input_relations`); by default none.

    Raises :class:`SpecErrors` (file, line, field, hint) for rules that cannot be compiled or
    must not run. A plan is immutable, so it is reused while the file is unchanged: one
    definitions build asks for every port's plan three times (dbt properties, agreement, the
    port's checks).
    """
    readable = tuple(sorted(set(inputs)))
    try:
        stat = path.stat()
    except OSError:
        return _compile(path, model, root, readable)  # reports the missing file with its hint
    # abspath, not resolve(): resolving symlinks costs a stat per path part, and a plan is
    # asked for about a hundred times when a run's lineage is built
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, model, str(root), readable)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _compile(path, model, root, readable)
    return plan


# (resolved path, mtime_ns, size, model, root, inputs) → plan. A changed file has another key,
# so an entry is never stale; :mod:`ddp_assets.dbt.load_cache` stores them between processes.
PlanKey = tuple[str, int, int, str, str, tuple[str, ...]]
_PLANS: dict[PlanKey, ContractPlan] = {}


def known_plans() -> dict[PlanKey, ContractPlan]:
    """The plans compiled (or remembered) in this process."""
    return dict(_PLANS)


def remember_plans(plans: dict[PlanKey, ContractPlan]) -> None:
    """Plans compiled by an earlier process; entries for files since changed never match."""
    _PLANS.update(plans)


def _compile(path: Path, model: str, root: Path | None, inputs: tuple[str, ...]) -> ContractPlan:
    loaded = load_contract_file(path, root)
    contract = loaded.contract
    index, obj = _object(loaded, contract, model)
    problems: list[SpecProblem] = []
    warnings = list(unsupported_parts(loaded))
    for other, extra in enumerate(contract.schema_):
        if extra is not obj:
            warnings.append(
                SpecProblem(
                    loaded.shown,
                    loaded.line("schema", other),
                    f"schema[{other}]",
                    f"not enforced: schema object '{extra.name}' is not the port's model '{model}'",
                    "one contract per output port: move this object to its own port's contract",
                    "warning",
                )
            )
    columns = tuple(
        ShapeColumn(
            name=p.column,
            data_type=p.data_type,
            required=p.required or p.primary_key,
            unique=p.unique,
            primary_key=p.primary_key,
        )
        for p in obj.properties
    )
    warnings.extend(_type_warnings(loaded, index, obj))
    rules: list[QualityRule] = []
    names: set[str] = set()
    where_obj: tuple[str | int, ...] = ("schema", index)
    for q, raw in enumerate(obj.quality):
        rule = _rule(
            loaded,
            raw,
            None,
            (*where_obj, "quality", q),
            names,
            problems,
            warnings,
            obj.name,
            inputs,
        )
        if rule is not None:
            rules.append(rule)
    for p, prop in enumerate(obj.properties):
        for q, raw in enumerate(prop.quality):
            where = (*where_obj, "properties", p, "quality", q)
            rule = _rule(
                loaded, raw, prop.column, where, names, problems, warnings, obj.name, inputs
            )
            if rule is not None:
                rules.append(rule)
        if prop.enum_values is not None:  # ODCS v3.2.0 enum: an accepted-values check
            rules.append(
                _enum_rule(
                    loaded, prop.column, prop.enum_values, (*where_obj, "properties", p), names
                )
            )
    if problems:
        raise SpecErrors(problems)
    return ContractPlan(
        contract_id=contract.id,
        contract_version=contract.version,
        object_name=obj.name,
        file=loaded.shown,
        columns=columns,
        rules=tuple(rules),
        warnings=tuple(warnings),
        inputs=inputs,
    )


def _object(loaded: LoadedContract, contract: Contract, model: str) -> tuple[int, SchemaObject]:
    obj = contract.object_for(model)
    if obj is None or not obj.properties:
        raise SpecErrors(
            [
                SpecProblem(
                    loaded.shown,
                    loaded.line("schema"),
                    "schema",
                    f"no schema object with properties for model '{model}'",
                    f"add a schema entry with name: {model} and its properties (columns)",
                )
            ]
        )
    return contract.schema_.index(obj), obj


def _type_warnings(loaded: LoadedContract, index: int, obj: SchemaObject) -> list[SpecProblem]:
    """A warning, at its line, for each column whose type ddp's pandera checks cannot compare
    (:func:`~ddp_assets.contracts.column_types.column_type`): nested types, types sqlglot
    cannot read. Its name and nullability are still checked; dbt's model contract still gets
    the type as written."""
    warnings = []
    for p, prop in enumerate(obj.properties):
        kind = column_type(prop.data_type)
        if not isinstance(kind, UncheckedType):
            continue
        key = "physicalType" if prop.physical_type else "logicalType"
        where: tuple[str | int, ...] = ("schema", index, "properties", p, key)
        warnings.append(
            SpecProblem(
                loaded.shown,
                loaded.line(*where),
                dotted(where),
                f"type of column '{prop.column}' not checked by pandera (Python models, "
                f"landing files): '{kind.text}' {kind.reason}",
                kind.hint,
                "warning",
            )
        )
    return warnings


def _enum_rule(
    loaded: LoadedContract,
    column: str,
    values: tuple[Any, ...],
    where: tuple[str | int, ...],
    names: set[str],
) -> QualityRule:
    """A property's ODCS v3.2.0 ``enum`` as the accepted-values check it states: no row may hold
    a value outside it (``invalidValues`` with ``validValues``, ``mustBe: 0``), blocking like
    the rest of the schema; nulls are the business of ``required``."""
    name = _unique_name(_slug(f"{column}_enum"), names)
    return QualityRule(
        check_name=name,
        metric="invalidValues",
        column=column,
        threshold=Threshold("mustBe", 0),
        severity="error",
        valid_values=values,
        description=f"{column} is one of the contract's enum values",
        line=loaded.line(*where, "enum"),
    )


def _unique_name(base: str, names: set[str]) -> str:
    name, n = base, 2
    while name in names:
        name, n = f"{base}_{n}", n + 1
    names.add(name)
    return name


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()[:60] or "rule"


def _rule(
    loaded: LoadedContract,
    raw: dict[str, Any],
    column: str | None,
    where: tuple[str | int, ...],
    names: set[str],
    problems: list[SpecProblem],
    warnings: list[SpecProblem],
    object_name: str,
    inputs: tuple[str, ...] = (),
) -> QualityRule | None:
    """One raw ODCS rule → a :class:`QualityRule`, or None when ddp does not enforce it (the
    warning is already in ``warnings``: see :func:`unsupported_parts`)."""
    raw = plain(raw)
    kind = raw.get("type") or "library"
    line = loaded.line(*where)

    def problem(message: str, hint: str, key: str | tuple[str, ...] | None = None) -> None:
        at = (*where, *((key,) if isinstance(key, str) else key or ()))
        problems.append(SpecProblem(loaded.shown, loaded.line(*at), dotted(at), message, hint))

    if kind == "sql":
        metric: str = "sql"
        if not isinstance(raw.get("query"), str) or not raw["query"].strip():
            problem(
                "a 'type: sql' rule needs a 'query'", "add query: select count(*) from {object} ..."
            )
            return None
        own = f'"{OWN_SCHEMA}".' + '"' + object_name.replace('"', '""') + '"'
        try:
            sandboxed_query(resolve_placeholders(raw["query"], own, column), own, inputs)
        except RuleRefused as refused:
            problem(f"not run: {refused.message}", refused.hint, "query")
            return None
    elif kind == "library":
        metric = raw.get("metric") or raw.get("rule") or ""
        if metric not in LIBRARY_METRICS:
            return None
    else:
        return None
    operators = [k for k in OPERATORS if k in raw]
    if len(operators) > 1:
        problem(
            f"several operators ({', '.join(operators)}); a rule has one",
            "keep one mustBe* operator per rule, or split it into several rules",
            operators[1],
        )
        return None
    if operators:
        threshold = Threshold(operators[0], raw[operators[0]])
    else:
        default = "mustBeGreaterThan" if metric == "rowCount" else "mustBe"
        threshold = Threshold(default, 0)
        warnings.append(
            SpecProblem(
                loaded.shown,
                line,
                dotted(where),
                f"no operator: ddp assumes {default}: 0",
                f"write the threshold explicitly, e.g. {default}: 0",
                "warning",
            )
        )
    value = threshold.value
    between = threshold.operator in ("mustBeBetween", "mustNotBeBetween")
    numbers = (
        isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
        if between
        else _is_number(value)
    )
    if not numbers:
        problem(
            f"{threshold.operator} needs "
            + ("two numbers [low, high]" if between else f"a number, not {value!r}"),
            f"e.g. {threshold.operator}: " + ("[0, 10]" if between else "0"),
            threshold.operator,
        )
        return None
    arguments = raw.get("arguments") or {}
    unit = "percent" if str(raw.get("unit", "rows")).lower() in ("percent", "%") else "rows"
    severity: Severity = (
        "error" if _SEVERITIES.get(str(raw.get("severity", "")).lower()) else "warning"
    )
    valid_values: tuple[Any, ...] | None = None
    pattern: str | None = None
    missing: tuple[Any, ...] = ()
    columns: tuple[str, ...] = ()
    if metric in ("nullValues", "missingValues", "invalidValues") and column is None:
        problem(
            f"{metric} is a column metric, but this rule is on the schema object",
            "move the rule under the quality of the property (column) it checks",
            "metric",
        )
        return None
    if metric == "invalidValues":
        if "validValues" in arguments:
            values = arguments["validValues"] or []
            valid_values = tuple(v for v in values if v is not None)
            if len(valid_values) != len(values):
                warnings.append(
                    SpecProblem(
                        loaded.shown,
                        line,
                        dotted((*where, "arguments", "validValues")),
                        "null in validValues is ignored: nulls are never counted as invalid",
                        "check nulls with a nullValues rule",
                        "warning",
                    )
                )
        elif "pattern" in arguments:
            pattern = str(arguments["pattern"])
            invalid = regex_problem(pattern)
            if invalid is not None:
                problem(
                    f"pattern {pattern!r} is not a valid regular expression: {invalid}",
                    "fix the expression (RE2 syntax, as DuckDB runs it: no look-arounds or "
                    "back-references), e.g. pattern: '^[A-Z]{2}$'",
                    ("arguments", "pattern"),
                )
                return None
        else:
            problem(
                "invalidValues needs arguments.validValues or arguments.pattern",
                "e.g. arguments: {validValues: [a, b]} or arguments: {pattern: '^[A-Z]{2}$'}",
                "arguments",
            )
            return None
    elif metric == "missingValues":
        missing = tuple(v for v in (arguments.get("missingValues") or []) if v is not None)
    elif metric == "duplicateValues":
        listed = arguments.get("properties") or arguments.get("columns")
        if column is None and not listed:
            problem(
                "duplicateValues on a schema object needs arguments.properties",
                "e.g. arguments: {properties: [order_id, line_number]}",
                "arguments",
            )
            return None
        columns = tuple(listed) if listed else (column,)  # type: ignore[arg-type]
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", metric).lower()
    name = _unique_name(_slug(raw.get("name") or f"{column or object_name}_{snake}"), names)
    return QualityRule(
        check_name=name,
        metric=metric,  # type: ignore[arg-type]
        column=column,
        threshold=threshold,
        severity=severity,
        unit=unit,
        valid_values=valid_values,
        pattern=pattern,
        missing_values=missing,
        columns=columns,
        query=raw.get("query") if metric == "sql" else None,
        description=raw.get("description"),
        line=line,
    )


_REGEX_LOCK = threading.Lock()
_REGEX_CHECKER: list[Any] = []  # one in-memory DuckDB connection, made on first use


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression the checks can run, or None.

    Python's ``re`` first (a syntax error anywhere), then DuckDB's own (RE2) when DuckDB is
    installed: Soda runs the pattern in the warehouse as ``regexp_matches``, and RE2 refuses
    some of what Python accepts (look-arounds, back-references). Unchecked, such a pattern
    fails the whole aggregation query of the contract at run time.
    """
    try:
        re.compile(pattern)
    except re.error as error:
        return str(error)
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency of ddp
        return None
    with _REGEX_LOCK:
        if not _REGEX_CHECKER:
            _REGEX_CHECKER.append(duckdb.connect(":memory:"))
        try:
            _REGEX_CHECKER[0].execute("select regexp_matches('', ?)", [pattern]).fetchall()
        except duckdb.Error as error:
            return str(error).removeprefix("Invalid Input Error: ")
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

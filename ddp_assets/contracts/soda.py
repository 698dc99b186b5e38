"""Layer 2 of a contract: its quality rules as a Soda v4 contract, run inside the warehouse.

:func:`soda_contract` compiles a :class:`~ddp_assets.contracts.compiler.ContractPlan` into
Soda's own contract YAML (Soda v4 does not read ODCS). :func:`run_quality_many` verifies the
contracts of several ports in one Soda verification session (``ContractVerificationSession``,
what ``verify_contract_locally`` runs for a single contract file) on the open warehouse
connection, through Soda's DuckDB or PostgreSQL data source
(:meth:`~ddp_assets.warehouse.Warehouse.soda_data_source`); :func:`run_quality` is the same
for one port. Soda pushes every metric down as SQL, one aggregation query per contract (plus
a query per ``sql`` rule it cannot fold into it, see :func:`count_expression`), so no table
is pulled into Python, and the checks run with the warehouse's memory bounded
(:meth:`~ddp_assets.warehouse.Warehouse.bounded_memory`). Each result carries the observed
value, the threshold and, when the rule fails, a sample of at most :data:`SAMPLE_LIMIT`
failing rows (one more query with ``LIMIT``).

Contract SQL is sandboxed (:mod:`ddp_assets.contracts.sql_rules`): a ``sql`` rule runs only as
sqlglot's rendering of the one read-only ``SELECT`` the sandbox accepted, checked again here
against the relation it is about to read; a refused rule never reaches Soda and fails its check
with the reason. Soda's data source and the samples cannot write
(:meth:`~ddp_assets.warehouse.Warehouse.soda_data_source`,
:meth:`~ddp_assets.warehouse.Warehouse.read_only`). A rule Soda could not evaluate (a broken
query, a contract Soda could not run) is a blocking failure whatever its severity: a port is
never published as if checks passed that did not run.

Soda Core v4 is under the Elastic License 2.0 (see the README).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import yaml

from ddp_assets.contracts.compiler import ContractPlan, QualityRule
from ddp_assets.contracts.sql_rules import RuleRefused, sandboxed_query
from ddp_assets.warehouse import Connection, Warehouse, literal, quote, relation, warehouse_of

SAMPLE_LIMIT = 100
DATA_SOURCE = "ddp"


@dataclass
class RuleResult:
    """The outcome of one quality rule on one relation."""

    check_name: str
    passed: bool
    severity: str  # error | warning
    observed: float | int | None
    threshold: str
    metric: str
    column: str | None = None
    rows_tested: int | None = None
    description: str | None = None
    error: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking_failure(self) -> bool:
        """A failed error-severity rule, or any rule that could not be evaluated (``error``):
        a check that did not run is not a pass, whatever its severity."""
        return not self.passed and (self.severity == "error" or self.error is not None)

    def summary(self) -> str:
        where = f"{self.column}: " if self.column else ""
        verdict = "passed" if self.passed else "FAILED"
        text = f"{where}{self.metric} = {self.observed} (must be {self.threshold}) {verdict}"
        return text + (f": {self.error}" if self.error else "")


def _threshold(rule: QualityRule) -> dict[str, Any]:
    value = rule.threshold.value
    if isinstance(value, list) and rule.threshold.operator == "mustNotBeBetween":
        # Soda: outside the range, i.e. below the low bound or above the high one
        bound: Any = {"less_than": value[0], "greater_than": value[1]}
    elif isinstance(value, list):
        bound = {"greater_than_or_equal": value[0], "less_than_or_equal": value[1]}
    else:
        bound = value
    threshold: dict[str, Any] = {rule.threshold.soda_key: bound}
    if rule.unit == "percent" and rule.metric != "rowCount":
        threshold["metric"] = "percent"
    threshold["level"] = "fail" if rule.severity == "error" else "warn"
    return threshold


def _check(rule: QualityRule) -> dict[str, Any]:
    body: dict[str, Any] = {"name": rule.check_name, "qualifier": rule.check_name}
    body["threshold"] = _threshold(rule)
    match rule.metric:
        case "rowCount":
            return {"row_count": body}
        case "nullValues":
            return {"missing": body}
        case "missingValues":
            if rule.missing_values:
                body["missing_values"] = list(rule.missing_values)
            return {"missing": body}
        case "invalidValues":
            if rule.valid_values is not None:
                body["valid_values"] = list(rule.valid_values)
            else:
                body["valid_format"] = {"regex": rule.pattern, "name": rule.check_name}
            return {"invalid": body}
        case "duplicateValues":
            if rule.column is None:
                body["columns"] = list(rule.columns)
            return {"duplicate": body}
        case _:
            return {"metric": body}


_BUNDLE_REFUSED = re.compile(
    r"\b(select|from|join|group|having|order|limit|union|intersect|except|over|qualify|window"
    r"|with)\b|;|--|/\*",
    re.IGNORECASE,
)


def count_expression(query: str, table_relation: str, table: str) -> str | None:
    """``select count(*) from <the table> [where C]`` as the aggregate ``count(case when C ...)``.

    Why: Soda runs a ``metric`` check given as a ``query`` on its own, one more scan of the
    table per rule, while a ``metric`` given as an ``expression`` joins the one aggregation
    query Soda runs per contract (with the row count, missing, invalid and duplicate
    metrics). Most ``sql`` rules of ODCS contracts are a count of the table's rows where a
    condition holds, and that count is the same number as the aggregate over the table. Only
    that shape is translated, and only when the condition cannot change meaning inside
    Soda's query: no subquery, join, grouping, window, comment or second statement, and no
    mention of the table itself. Anything else (None) stays a query, run as written.
    """
    text = query.strip().rstrip(";").strip()
    match = re.fullmatch(
        r"select\s+count\s*\(\s*\*\s*\)\s+from\s+"
        + re.escape(table_relation)
        + r"(?:\s+where\s+(?P<condition>.+))?",
        text,
        re.IGNORECASE | re.DOTALL,
    )
    if match is None:
        return None
    condition = match["condition"]
    if condition is None:
        return "count(*)"
    if _BUNDLE_REFUSED.search(condition):
        return None
    if re.search(rf"(?<![\w$]){re.escape(table)}(?![\w$])", condition, re.IGNORECASE):
        return None  # names the table (a qualified column): Soda's query calls it otherwise
    return f"count(case when ({condition}) then 1 end)"


@lru_cache(maxsize=4096)
def _sandboxed(
    query: str, table_relation: str, inputs: tuple[str, ...], dialect: str
) -> str | RuleRefused:
    try:
        return sandboxed_query(query, table_relation, inputs, dialect)
    except RuleRefused as refused:
        return refused


def rule_queries(
    plan: ContractPlan, table_relation: str, dialect: str = "duckdb"
) -> dict[str, str | RuleRefused]:
    """Each ``sql`` rule's query as it may run on ``table_relation``, or why it may not.

    The contract's text with its placeholders resolved, through the sandbox
    (:func:`~ddp_assets.contracts.sql_rules.sandboxed_query`): one read-only ``SELECT`` of the
    port's relation and the plan's inputs, rendered by sqlglot in the warehouse's dialect.
    The compiler refused anything else already; this checks what actually runs.
    """
    return {
        rule.check_name: _sandboxed(
            rule.sql_for(table_relation) or "", table_relation, plan.inputs, dialect
        )
        for rule in plan.rules
        if rule.metric == "sql"
    }


def refusal_text(refused: RuleRefused) -> str:
    return f"not run: the rule's SQL is refused: {refused.message}. Hint: {refused.hint}"


def soda_contract(
    plan: ContractPlan,
    dataset: str,
    table_relation: str,
    bundle: bool = True,
    queries: Mapping[str, str | RuleRefused] | None = None,
) -> dict[str, Any]:
    """The Soda v4 contract document for ``plan`` on ``dataset`` (``ddp/<db>/<schema>/<t>``).

    With ``bundle``, ``sql`` rules Soda can compute in its one aggregation query are given to
    it as expressions (:func:`count_expression`); without, every one is a query of its own.
    ``queries`` are the sandboxed queries of the ``sql`` rules (:func:`rule_queries`, DuckDB's
    dialect by default); a refused rule is left out of the document (it never runs).
    """
    if queries is None:
        queries = rule_queries(plan, table_relation)
    table = dataset.rsplit("/", 1)[-1]
    columns: dict[str, list[dict[str, Any]]] = {}
    checks: list[dict[str, Any]] = []
    for rule in plan.rules:
        check = _check(rule)
        if rule.metric == "sql":
            query = queries.get(rule.check_name)
            if not isinstance(query, str):
                continue  # refused: never given to Soda
            expression = (
                count_expression(query, table_relation, table) if bundle and query else None
            )
            if expression is not None:
                check["metric"]["expression"] = expression
            else:
                check["metric"]["query"] = query
            checks.append(check)
        elif rule.column is not None:
            columns.setdefault(rule.column, []).append(check)
        else:
            checks.append(check)
    document: dict[str, Any] = {"dataset": dataset}
    # Only the columns with checks: without a data_type a listed column checks nothing (dbt
    # checks the schema), and every line of the document costs Soda's YAML parser time.
    document["columns"] = [{"name": name, "checks": found} for name, found in columns.items()]
    if checks:
        document["checks"] = checks
    return document


_COUNT_QUERY = re.compile(
    r"^\s*select\s+count\s*\(\s*\*\s*\)\s+from\s+(?P<rest>.+)$", re.IGNORECASE | re.DOTALL
)


def sample_query(
    rule: QualityRule,
    table_relation: str,
    warehouse: Warehouse | None = None,
    query: str | None = None,
) -> str | None:
    """SQL returning at most :data:`SAMPLE_LIMIT` rows that fail ``rule``; None if undefined.

    For a ``sql`` rule, ``query`` is its sandboxed query (:func:`rule_queries`); without it, the
    rule is sandboxed here against ``table_relation`` alone.
    """
    warehouse = warehouse or warehouse_of(None)
    column = quote(rule.column) if rule.column else None
    where: str | None = None
    match rule.metric:
        case "nullValues":
            where = f"{column} is null"
        case "missingValues":
            listed = ", ".join(literal(v) for v in rule.missing_values)
            where = f"{column} is null" + (f" or {column} in ({listed})" if listed else "")
        case "invalidValues" if rule.valid_values is not None:
            listed = ", ".join(literal(v) for v in rule.valid_values) or "null"
            where = f"{column} is not null and {column} not in ({listed})"
        case "invalidValues":
            assert column is not None
            mismatch = warehouse.regex_mismatch(column, literal(rule.pattern))
            where = f"{column} is not null and {mismatch}"
        case "duplicateValues":
            keys = ", ".join(quote(c) for c in rule.columns)
            return warehouse.duplicate_rows(table_relation, keys, SAMPLE_LIMIT)
        case "sql":
            if query is None:
                checked = _sandboxed(
                    rule.sql_for(table_relation) or "", table_relation, (), warehouse.sql_dialect
                )
                if not isinstance(checked, str):
                    return None
                query = checked
            match = _COUNT_QUERY.match(query.strip().rstrip(";"))
            if match and " group by " not in query.lower():
                return f"select * from {match['rest']} limit {SAMPLE_LIMIT}"
            return None
        case _:
            return None
    return f"select * from {table_relation} where {where} limit {SAMPLE_LIMIT}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def failing_rows(
    connection: Connection, rule: QualityRule, table_relation: str, query: str | None = None
) -> list[dict[str, Any]]:
    """At most :data:`SAMPLE_LIMIT` rows failing ``rule``, read on ``connection`` (the
    contract checks pass a :meth:`~ddp_assets.warehouse.Warehouse.read_only` session)."""
    query = sample_query(rule, table_relation, warehouse_of(connection), query)
    if query is None:
        return []
    cursor = connection.execute(query)
    names = [d[0] for d in cursor.description or []]
    return [
        {n: _jsonable(v) for n, v in zip(names, row, strict=True)}
        for row in cursor.fetchmany(SAMPLE_LIMIT)
    ]


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _rule_results(
    connection: Connection,
    plan: ContractPlan,
    table_relation: str,
    verification: Any,
    errors: str | None,
    counted: frozenset[str] = frozenset(),
    queries: Mapping[str, str | RuleRefused] | None = None,
) -> list[RuleResult]:
    """One contract's Soda check results as :class:`RuleResult` (with failing-row samples).

    ``connection`` reads the samples (a read-only session). ``counted``: the ``sql`` rules
    given to Soda as a count expression, whose value Soda returns as a float; as a query it was
    the integer ``count(*)``, and it still is here. ``queries``: the sandboxed ``sql`` rules
    (:func:`rule_queries`); a refused one fails with the reason, Soda never saw it.
    """
    queries = queries or {}
    from soda_core.contracts.contract_verification import CheckOutcome

    by_name: dict[str, Any] = {}
    for result in getattr(verification, "check_results", None) or []:
        by_name[result.check.name or ""] = result
    outcomes: list[RuleResult] = []
    for rule in plan.rules:
        query = queries.get(rule.check_name)
        if isinstance(query, RuleRefused):
            outcomes.append(
                RuleResult(
                    check_name=rule.check_name,
                    passed=False,
                    severity=rule.severity,
                    observed=None,
                    threshold=rule.threshold.describe() + (" %" if rule.unit == "percent" else ""),
                    metric=rule.metric,
                    column=rule.column,
                    description=rule.description,
                    error=refusal_text(query),
                )
            )
            continue
        result = by_name.get(rule.check_name)
        diagnostics = (result.diagnostic_metric_values or {}) if result is not None else {}
        evaluated = result is not None and result.outcome in (
            CheckOutcome.PASSED,
            CheckOutcome.FAILED,
            CheckOutcome.WARN,
        )
        passed = bool(result is not None and result.outcome == CheckOutcome.PASSED)
        observed = _number(result.threshold_value) if result is not None else None
        if rule.check_name in counted and isinstance(observed, float) and observed.is_integer():
            observed = int(observed)
        outcome = RuleResult(
            check_name=rule.check_name,
            passed=passed,
            severity=rule.severity,
            observed=observed,
            threshold=rule.threshold.describe() + (" %" if rule.unit == "percent" else ""),
            metric=rule.metric,
            column=rule.column,
            rows_tested=_number(diagnostics.get("dataset_rows_tested")),  # type: ignore[arg-type]
            description=rule.description,
            error=None if evaluated else (errors or "Soda did not evaluate this rule"),
        )
        if not passed and evaluated:
            outcome.sample = failing_rows(connection, rule, table_relation, query)
        outcomes.append(outcome)
    return outcomes


def _errors(verification: Any, session_errors: list[str]) -> str | None:
    """What went wrong in one contract's verification (its own log, and the session's)."""
    errors = list(session_errors)
    errors.extend(verification.get_errors())
    failure = getattr(verification, "error", None)
    if failure is not None and str(failure) not in errors:
        errors.append(f"{type(failure).__name__}: {failure}")
    return "\n".join(errors) or None


def import_soda() -> None:
    """Import Soda Core, its telemetry off unless the user turned it on.

    Every Soda import in ddp goes through here first. (Until session 5 this also hid Soda's
    other data-source plugins from its entry-point scan: 0.18 s per process, measured, below
    what a private hook must save: docs/public-apis.md.)
    """
    if "soda_core.contracts" in sys.modules:
        return
    from ddp_assets.contracts import soda_telemetry_default_off

    with soda_telemetry_default_off():
        import soda_core.contracts  # noqa: F401  (Soda reads its telemetry setting here, once)


def _verify(
    connection: Connection, items: Sequence[tuple[ContractPlan, str, str]], bundle: bool
) -> list[list[RuleResult]]:
    """One Soda verification session over ``items`` (all with rules); results per item.

    Rules the sandbox refuses never reach Soda; an item left with no rule to run is not given
    to Soda at all.
    """
    warehouse = warehouse_of(connection)
    prepared = [
        (plan, schema, table, rule_queries(plan, relation(schema, table), warehouse.sql_dialect))
        for plan, schema, table in items
    ]
    documents: list[dict[str, Any] | None] = []
    (database,) = connection.execute("select current_database()").fetchone() or ("memory",)
    for plan, schema, table, queries in prepared:
        dataset = f"{DATA_SOURCE}/{database}/{schema}/{table}"
        document = soda_contract(plan, dataset, relation(schema, table), bundle, queries)
        runnable = any(c["checks"] for c in document["columns"]) or document.get("checks")
        documents.append(document if runnable else None)
    verifications: list[Any] = [None] * len(items)
    session_errors: list[str] = []
    to_run = [
        (index, (document, items[index][1], items[index][2]))
        for index, document in enumerate(documents)
        if document is not None
    ]
    if to_run:
        found, session_errors = _session(connection, [entry for _, entry in to_run])
        for (index, _), verification in zip(to_run, found, strict=True):
            verifications[index] = verification
    with warehouse.read_only(connection) as reading:
        return [
            _rule_results(
                reading,
                plan,
                relation(schema, table),
                verification,
                _errors(verification, session_errors) if verification is not None else None,
                _counted(plan, schema, table, queries) if bundle else frozenset(),
                queries,
            )
            for (plan, schema, table, queries), verification in zip(
                prepared, verifications, strict=True
            )
        ]


def _session(
    connection: Connection, documents: Sequence[tuple[dict[str, Any], str, str]]
) -> tuple[list[Any], list[str]]:
    """Soda's verification results for these contract documents, and the session's errors."""
    import_soda()
    from soda_core.common.yaml import ContractYamlSource
    from soda_core.contracts.contract_verification import ContractVerificationSession

    sources: list[Any] = [
        # file_path only names the contract in Soda's messages; nothing is written
        ContractYamlSource.from_str(
            yaml.safe_dump(document, sort_keys=False),
            file_path=f"{schema}.{table}.contract.yml",
        )
        for document, schema, table in documents
    ]
    data_source, release = warehouse_of(connection).soda_data_source(connection, DATA_SOURCE)
    soda_logger = logging.getLogger("soda")
    level = soda_logger.level
    soda_logger.setLevel(logging.WARNING)
    try:
        # ContractVerificationSession is what verify_contract_locally runs, for one contract
        # file; called directly it verifies many in one session (Soda's documented use). It
        # raises for a single contract that cannot be parsed or run, and isolates the
        # contracts from each other when there are several.
        session = ContractVerificationSession.execute(
            contract_yaml_sources=sources, data_source_impls=[data_source]
        )
    finally:
        soda_logger.setLevel(level)
        release()
    session_errors = [
        record.getMessage()
        for record in session.session_log_records
        if record.levelno >= logging.ERROR
    ]
    return list(session.contract_verification_results), session_errors


def _counted(
    plan: ContractPlan,
    schema: str,
    table: str,
    queries: Mapping[str, str | RuleRefused] | None = None,
) -> frozenset[str]:
    """The ``sql`` rules :func:`soda_contract` gives Soda as a count expression."""
    table_relation = relation(schema, table)
    if queries is None:
        queries = rule_queries(plan, table_relation)
    return frozenset(
        name
        for name, query in queries.items()
        if isinstance(query, str) and count_expression(query, table_relation, table)
    )


def run_quality_many(
    connection: Connection, items: Sequence[tuple[ContractPlan, str, str]]
) -> list[list[RuleResult]]:
    """Verify several contracts with Soda in ONE verification session, in the warehouse.

    ``items`` are ``(plan, schema, table)``; the answer has one list per item, in order, each
    exactly what :func:`run_quality` returns for that item. One session instead of one per
    port: Soda's setup (its data source on the connection, logging, the per-session work of
    ``verify_contract``) is paid once, and the contracts go to Soda as YAML text, with no
    temporary files. Soda isolates the contracts from each other: an error in one (a broken
    ``sql`` rule, a missing table) marks that contract's rules with the error and leaves the
    others' results as they are. (A contract Soda cannot even construct raises when it is the
    only item, as ``verify_contract_locally`` does and :func:`run_quality` always did; among
    several, its rules carry the error instead.)

    Within a contract, Soda computes the metrics in one aggregation query, including the
    ``sql`` rules :func:`count_expression` translates. One such rule that fails to run would
    fail that query, and so every metric in it; a contract with an error is therefore
    verified again with each ``sql`` rule as its own query, as written, so that only the
    broken rule reports the error.

    The checks run with the warehouse's memory bounded
    (:meth:`~ddp_assets.warehouse.Warehouse.bounded_memory`): Soda pushes every metric down
    as SQL and only failing-row samples (at most :data:`SAMPLE_LIMIT` rows per rule) come back
    to Python, so the checking process's memory stays flat as the tables grow.
    """
    answers: list[list[RuleResult]] = [[] for _ in items]
    todo = [index for index, (plan, _, _) in enumerate(items) if plan.rules]
    if not todo:
        return answers
    warehouse = warehouse_of(connection)

    def queries(index: int) -> dict[str, str | RuleRefused]:
        plan, schema, table = items[index]
        return rule_queries(plan, relation(schema, table), warehouse.sql_dialect)

    def rerun(index: int) -> bool:
        """An error in a rule Soda ran, in a contract with count expressions bundled."""
        found = queries(index)
        refused = {n for n, q in found.items() if isinstance(q, RuleRefused)}
        errored = any(r.error is not None and r.check_name not in refused for r in answers[index])
        return errored and bool(_counted(*items[index], found))

    with warehouse.bounded_memory(connection):
        first = _verify(connection, [items[i] for i in todo], bundle=True)
        for index, results in zip(todo, first, strict=True):
            answers[index] = results
        again = [index for index in todo if rerun(index)]
        if again:
            unbundled = _verify(connection, [items[i] for i in again], bundle=False)
            for index, results in zip(again, unbundled, strict=True):
                answers[index] = results
    return answers


def run_quality(
    connection: Connection, plan: ContractPlan, schema: str, table: str
) -> list[RuleResult]:
    """Verify the quality rules of ``plan`` on ``schema.table`` with Soda, in the warehouse."""
    (results,) = run_quality_many(connection, [(plan, schema, table)])
    return results

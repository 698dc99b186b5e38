"""The checks ``ddp validate`` runs beyond the registry's: what a run would reject later.

:meth:`Registry.load <ddp_assets.spec.registry.Registry.load>` runs at every code-location load
and stays cheap; these read more (every contract, every SQL model through sqlglot, every Python
model imported in a child process) and run in ``ddp validate`` and CI only:

- every output port's contract reads (bounded YAML, ODCS) — located where it does not;
- every SQL model parses (sqlglot, DuckDB dialect, after its Jinja is blanked out; models with
  ``{% %}`` blocks are left to dbt, as their SQL depends on the template);
- an output port's SQL model selects exactly its contract's columns, where its select list
  names them (no ``*``): dbt's enforced contract would fail the build otherwise;
- every Python model's file imports (in a child process, with a timeout) and defines its
  entrypoint function;
- a product partitioned by file has a landing-file input port (its files are the partitions),
  and each output port's contract declares the partition column ddp writes.

Each problem names a file and a line, like the registry's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative
from ddp_assets.spec.registry import Product, Registry

IMPORT_TIMEOUT = 30.0
"""Seconds a Python model's file may take to import in :func:`python_problems`."""

_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_EXPRESSION = re.compile(r"\{\{(?P<body>.*?)\}\}", re.DOTALL)
_JINJA_BLOCK = re.compile(r"\{%")
_CONFIG = re.compile(r"^\s*config\s*\(")


def validate_problems(
    registry: Registry, import_timeout: float = IMPORT_TIMEOUT
) -> list[SpecProblem]:
    """Every problem of the checks above, over the registry's products."""
    problems: list[SpecProblem] = []
    for product in registry.products.values():
        problems.extend(partition_problems(product))
        problems.extend(sql_problems(product, registry))
        problems.extend(python_problems(product, registry, import_timeout))
    return problems


# -- partitions -------------------------------------------------------------------------------


def partition_problems(product: Product) -> list[SpecProblem]:
    """A product partitioned by file without a landing-file input port: it would never have a
    partition."""
    from ddp_assets.spec.model import FileInputPort

    partitioning = product.spec.partitions
    if partitioning is None or partitioning.by != "file":
        return []
    if any(isinstance(port, FileInputPort) for port in product.spec.input_ports):
        return []
    return [
        _spec_problem(
            product,
            ("partitions", "by"),
            f"product '{product.id}' is partitioned by file but has no landing-file input port, "
            "so it would never have a partition",
            "add an input port of type 'file' (its landing files are the partitions), or "
            "partition by day, hour, month or key",
        )
    ]


# -- SQL models ---------------------------------------------------------------------------------


def strip_jinja(text: str) -> str | None:
    """The SQL of a model with its Jinja blanked out, lines kept; None with ``{% %}`` blocks.

    ``{{ config(...) }}`` becomes blanks, any other ``{{ ... }}`` (ref, source, var, this) an
    identifier, so the SQL around it parses as it would once dbt compiled it.
    """
    if _JINJA_BLOCK.search(text):
        return None

    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    def expression(match: re.Match[str]) -> str:
        if _CONFIG.match(match["body"]):
            return blank(match)
        lines = match.group(0).count("\n")
        return "__ddp_jinja__" + "\n" * lines

    return _JINJA_EXPRESSION.sub(expression, _JINJA_COMMENT.sub(blank, text))


def parse_model(path: Path, shown: str) -> tuple[list[exp.Expr] | None, SpecProblem | None]:
    """The statements of a SQL model, or the syntax problem; (None, None) when it is templated
    beyond what can be parsed without dbt, or unreadable (reported by the registry)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None, None
    sql = strip_jinja(text)
    if sql is None or not sql.strip():
        return None, None
    hint = "fix the SQL at this line (checked with sqlglot's DuckDB dialect, Jinja blanked out)"
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as error:
        first: dict[str, Any] = error.errors[0] if error.errors else {}
        description = str(first.get("description") or error).split("\n")[0]
        near = str(first.get("highlight") or "").strip()
        message = f"SQL syntax error: {description}" + (f" (near '{near}')" if near else "")
        return None, SpecProblem(
            shown, int(first.get("line") or 1), "(sql)", message, hint, column=first.get("col")
        )
    except TokenError as error:
        line = _token_error_line(str(error), sql)
        return None, SpecProblem(shown, line, "(sql)", f"SQL syntax error: {error}", hint)
    return statements, None


def _token_error_line(message: str, sql: str) -> int:
    """The line of a tokenizer error (sqlglot quotes the text up to where it failed)."""
    match = re.search(r"Error tokenizing '(?P<context>.*)'", message, re.DOTALL)
    if match:
        position = sql.find(match["context"][-20:].rstrip())
        if position >= 0:
            return sql[:position].count("\n") + 1 + match["context"][-20:].count("\n")
    return 1


def selected_columns(statements: list[exp.Expr]) -> list[tuple[str, int | None]] | None:
    """The columns the model's (last) query selects, with their lines; None when they are not
    known without the database (``*``, an unnamed expression, not a query)."""
    if not statements or not isinstance(statements[-1], exp.Query):
        return None
    columns: list[tuple[str, int | None]] = []
    for projection in statements[-1].selects:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            return None
        name = projection.alias_or_name
        if not name or name == "*":
            return None
        identifier = projection.args.get("alias") or projection.find(exp.Identifier)
        meta = identifier.meta if isinstance(identifier, exp.Expr) else {}
        columns.append((name, meta.get("line")))
    return columns


def sql_problems(product: Product, registry: Registry) -> list[SpecProblem]:
    """Syntax errors of the product's SQL models, and output port models whose selected columns
    differ from their contract's."""
    from ddp_assets.spec.odcs import load_contract_file

    problems: list[SpecProblem] = []
    ports = {port.model: port for port in product.spec.output_ports}
    for name, path in product.sql_models.items():
        shown = relative(path, registry.root)
        statements, problem = parse_model(path, shown)
        if problem is not None:
            problems.append(problem)
        port = ports.get(name)
        contract_path = product.folder / port.contract if port else None
        if port is None or contract_path is None or not contract_path.is_file():
            continue
        try:
            loaded = load_contract_file(contract_path, registry.root)
        except SpecErrors as errors:
            problems.extend(errors.problems)
            continue
        contract = loaded.contract
        obj = contract.object_for(name)
        if obj is None or not obj.properties:
            continue
        index = contract.schema_.index(obj)
        declared = {prop.column.lower(): (i, prop) for i, prop in enumerate(obj.properties)}
        partition_column = product.spec.partition_column(port)
        if partition_column is not None and partition_column.lower() not in declared:
            own = port.partition_column is not None
            position = product.spec.output_ports.index(port)
            by_file = product.spec.partitions is not None and product.spec.partitions.by == "file"
            hint = (
                f"ddp writes each landing file's partition key into '{partition_column}' of "
                "the landing table: select it in the port's model and add it to the contract "
                f"(name: {partition_column}, logicalType: string, physicalType: varchar)"
                if by_file and not own
                else "name the port's own column holding the partition with "
                f"'partition_column' under output port '{port.name}' (e.g. a date column), "
                "or add the column to the model and its contract"
            )
            problems.append(
                _spec_problem(
                    product,
                    ("output_ports", position, "partition_column")
                    if own
                    else ("partitions", "column"),
                    f"output port '{port.name}' is partitioned on '{partition_column}', which is "
                    f"not a column of its contract ({loaded.shown})",
                    hint,
                )
            )
        if statements is None:
            continue
        selected = selected_columns(statements)
        if selected is None:
            continue
        chosen = {column.lower() for column, _ in selected}
        for column, line in selected:
            if column.lower() not in declared:
                problems.append(
                    SpecProblem(
                        shown,
                        line or 1,
                        f"select {column}",
                        f"column '{column}' is not in the contract of output port "
                        f"'{port.name}' ({loaded.shown})",
                        "add it to the contract's properties, or remove it from the select: "
                        "dbt's enforced contract fails the build otherwise",
                    )
                )
        for column, (position, prop) in declared.items():
            if column not in chosen:
                where = ("schema", index, "properties", position, "name")
                problems.append(
                    SpecProblem(
                        loaded.shown,
                        loaded.line(*where) or 1,
                        f"schema[{index}].properties[{position}].name",
                        f"contract column '{prop.column}' is not selected by model '{name}' "
                        f"({shown})",
                        f"select it in {path.name}, or remove it from the contract",
                    )
                )
    return problems


# -- Python models ------------------------------------------------------------------------------

_IMPORT_SCRIPT = """
import importlib.util, json, sys, traceback
path, name, function = sys.argv[1:4]
out, sys.stdout = sys.stdout, sys.stderr  # what the module prints is not the answer
try:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
except BaseException as error:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    line = frames[-1].lineno if frames else None
    if isinstance(error, SyntaxError) and error.filename == path:
        line = error.lineno
    text = traceback.format_exception_only(type(error), error)[-1].strip()
    out.write(json.dumps({"error": text, "line": line}) + "\\n")
else:
    found = getattr(module, function, None)
    out.write(json.dumps({"found": found is not None, "callable": callable(found)}) + "\\n")
"""


def python_problems(
    product: Product, registry: Registry, timeout: float = IMPORT_TIMEOUT
) -> list[SpecProblem]:
    """Python models whose file does not import, or lacks its entrypoint function."""
    problems: list[SpecProblem] = []
    for index, model in enumerate(product.spec.python_models):
        file_name, _, function = model.entrypoint.partition(":")
        path = product.folder / file_name
        if not path.is_file():
            continue  # reported by the registry
        shown = relative(path, registry.root)
        where = ("python_models", index, "entrypoint")
        module = f"ddp_python_models.{product.id}.{path.stem}"
        try:
            done = subprocess.run(
                [sys.executable, "-c", _IMPORT_SCRIPT, str(path), module, function],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=product.folder,
                check=False,
            )
            answer = json.loads((done.stdout.strip().splitlines() or ["{}"])[-1])
        except subprocess.TimeoutExpired:
            problems.append(
                _spec_problem(
                    product,
                    where,
                    f"importing {file_name} did not finish within {timeout:g} s",
                    "do the work inside the function, not when the module is imported",
                )
            )
            continue
        except (OSError, ValueError) as error:
            answer = {"error": f"{type(error).__name__}: {error}", "line": None}
        if "error" in answer:
            message = f"importing {file_name} fails: {answer['error']}"
            hint = "fix the module so that it imports; the run imports it the same way"
            if answer.get("line"):
                problems.append(SpecProblem(shown, int(answer["line"]), "(python)", message, hint))
            else:
                problems.append(_spec_problem(product, where, message, hint))
        elif not answer.get("callable"):
            found = "is not a function" if answer.get("found") else "is not defined"
            problems.append(
                _spec_problem(
                    product,
                    where,
                    f"'{function}' {found} in {file_name}",
                    f"define 'def {function}(ctx): ...' in {file_name}, or fix the entrypoint",
                )
            )
    return problems


def _spec_problem(
    product: Product, where: tuple[str | int, ...], message: str, hint: str
) -> SpecProblem:
    from ddp_assets.spec.errors import dotted

    return SpecProblem(
        product.loaded.display_path,
        product.loaded.line_of(*where) or 1,
        dotted(where),
        message,
        hint,
    )

"""Contract types against the SQL's types, found at ``ddp validate`` instead of at materialize.

dbt enforces an output port's contract when it builds the model: a port whose SQL yields
``sum(integer)`` (``HUGEINT`` in DuckDB) under a contract saying ``physicalType: bigint`` used
to fail only in a run. This check asks DuckDB itself, with no data and no warehouse: in an
in-memory database it creates an empty table for every relation a product model reads, renders
each SQL model, creates the private ones (empty, ``limit 0``) in dependency order and
``DESCRIBE``\\ s every output port's query, then compares each column DuckDB gives with the
contract's type, both read by :func:`ddp_assets.contracts.column_types.column_type`. Each
mismatch is an error at the ODCS file, the line and column of that column's ``physicalType``
(or ``logicalType``), with the type to write and the cast to add to the SQL instead.

Where the input types come from:

- another port (of any product): its contract's columns, as the prepared manifest has them;
- a landing file port or a depot port: its input contract (``contracts/<port>.odcs.yaml``) if
  it has one (the load's pandera check holds the table to the same families and widths), else,
  for a file port, the landing files' own types (DuckDB's reader over them, as the load reads
  them; no row is kept);
- a Python model of the product that is an output port: its contract;
- a private SQL model: its own rendered SQL, recursively.

What is not checked (the model is skipped silently: what cannot be typed is never reported): a model
reading a relation whose types are unknown here (a landing port with neither a contract nor
files or more than :data:`MAX_LANDING_FILES` of them, a depot port without a contract, a table
input port, a private Python model, a source ddp did not write), a model whose Jinja needs
more than rendering (``run_query``, ``statement``, an adapter method other than
``dispatch``/``quote``, a ``var`` without a default), a model whose SQL DuckDB rejects (a
typo is the run's to report), the types :func:`column_type` leaves unchecked (nested ones,
among others), and any target but DuckDB.

The comparison is by type family and size, as the pandera checks compare them (integer and
float widths, decimal precision and scale when the contract gives them, time zones); strings
compare equal whatever their spelling (``varchar``, ``text``, ``uuid``), so dbt's own check,
which compares the spelled types, stays the last word.

The models are rendered with dbt's Jinja environment (:func:`ddp_assets.compat.
dbt_jinja_environment`) and the manifest's own macros, ``adapter.dispatch`` resolving to the
DuckDB implementation as dbt does; ``ref``/``source`` resolve to the empty tables. No dbt
compile runs: ``dbt compile`` of the demo's models took 12 s (its own process, from the
prepared partial parse, on a loaded machine); this check takes 0.1 to 0.8 s.
"""

from __future__ import annotations

import contextlib
import datetime
import graphlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddp_assets.contracts.column_types import ColumnType, column_type
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, dotted, relative
from ddp_assets.spec.model import DepotInputPort, FileInputPort
from ddp_assets.spec.odcs import LoadedContract, load_contract_file
from ddp_assets.spec.registry import Product, Registry

MAX_LANDING_FILES = 1000
"""A file port with more landing files (and no contract) is not typed: DuckDB's reader opens
every file to union their columns, about 1 ms a file (a sample would type narrower than the
load, and report what is not wrong)."""

LandingFiles = Callable[[Path, str], list[Path]]
"""The landing files of a port's glob that may be read (``ingest.files.landing_files``)."""


class _Skip(Exception):
    """The model cannot be typed here (an unknown input, Jinja needing a database)."""


class _Return(Exception):
    """dbt's ``return()``, carried out of a macro."""

    def __init__(self, value: Any):
        self.value = value


@dataclass
class TypeCheck:
    """What :func:`check_types` found: the problems, and which port models it compared (the
    others, with why, in ``skipped``)."""

    problems: list[SpecProblem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def type_problems(
    registry: Registry, manifest: Mapping[str, Any], paths: ProjectPaths, files: LandingFiles
) -> list[SpecProblem]:
    """Every output-port column whose contract type is not the type its SQL yields."""
    return check_types(registry, manifest, paths, files).problems


def check_types(
    registry: Registry, manifest: Mapping[str, Any], paths: ProjectPaths, files: LandingFiles
) -> TypeCheck:
    """:func:`type_problems`, with the models compared and skipped."""
    result = TypeCheck()
    metadata = manifest.get("metadata") or {}
    if metadata.get("adapter_type") != "duckdb":
        return result
    import duckdb

    root = str(metadata.get("project_name") or "")
    models = {
        str(n["name"]): n
        for n in manifest.get("nodes", {}).values()
        if n.get("resource_type") == "model"
        and n.get("package_name") == root
        and n.get("language", "sql") == "sql"
    }
    by_id = {str(n["unique_id"]): name for name, n in models.items()}
    order = graphlib.TopologicalSorter(
        {
            name: [by_id[d] for d in n.get("depends_on", {}).get("nodes", []) if d in by_id]
            for name, n in models.items()
        }
    )
    try:
        ordered = list(order.static_order())
    except graphlib.CycleError:
        return result  # reported by the registry's model-cycle check
    ports = {
        model: (product, port)
        for product in registry.products.values()
        for model, port in product.output_models.items()
    }
    with duckdb.connect() as connection:
        tables = _Tables(connection)
        _sources(tables, registry, manifest, paths, files)
        renderer = _Renderer(manifest, tables, models, paths)
        for name in ordered:
            node = models[name]
            if name in ports:
                product, port = ports[name]
                try:
                    sql = renderer.render(node)
                    actual = tables.describe(sql)
                except _Skip as why:
                    result.skipped[name] = str(why)
                else:
                    result.checked.append(name)
                    result.problems.extend(_compare(registry, product, port, name, sql, actual))
            columns = _contract_columns(node)
            if columns is not None:  # what its readers get: the contract's types
                tables.create(_ref_key(node), _relation(node), columns)
                continue
            with contextlib.suppress(_Skip):  # a private model: its own SQL gives its types
                tables.create_as(_ref_key(node), _relation(node), renderer.render(node))
    return result


# -- the empty relations ------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _relation(node: Mapping[str, Any]) -> str:
    identifier = node.get("alias") or node.get("identifier") or node["name"]
    return f"{_quote(str(node['schema']))}.{_quote(str(identifier))}"


def _ref_key(node: Mapping[str, Any]) -> str:
    return f"ref:{node['name']}"


def _source_key(source: str, table: str) -> str:
    return f"source:{source}.{table}"


def _contract_columns(node: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """A model's enforced contract's columns and types (the manifest has them from the
    ODCS contract), or None when it has no contract or a column without a type."""
    contract = (node.get("config") or {}).get("contract") or {}
    columns = node.get("columns") or {}
    if not contract.get("enforced") or not columns:
        return None
    typed = [(str(c.get("name") or k), c.get("data_type")) for k, c in columns.items()]
    if any(not t for _, t in typed):
        return None
    return [(n, str(t)) for n, t in typed]


class _Tables:
    """The in-memory database's relations, by ``ref:``/``source:`` key."""

    def __init__(self, connection: Any):
        self.connection = connection
        self.known: dict[str, str] = {}  # key → relation
        self._schemas: set[str] = set()

    def _schema(self, relation: str) -> None:
        schema = relation.split(".", 1)[0]
        if schema not in self._schemas:
            self.connection.execute(f"create schema if not exists {schema}")
            self._schemas.add(schema)

    def _run(self, key: str, relation: str, sql: str) -> None:
        import duckdb

        try:
            self._schema(relation)
            self.connection.execute(sql)
        except duckdb.Error as error:
            raise _Skip(_first_line(error)) from None
        self.known[key] = relation

    def create(self, key: str, relation: str, columns: list[tuple[str, str]]) -> None:
        body = ", ".join(f"{_quote(name)} {kind}" for name, kind in columns)
        with contextlib.suppress(_Skip):  # a type DuckDB does not read: its readers are skipped
            self._run(key, relation, f"create or replace table {relation} ({body})")

    def create_as(self, key: str, relation: str, sql: str) -> None:
        self._run(key, relation, f"create or replace table {relation} as {_empty(sql)}")

    def describe(self, sql: str) -> list[tuple[str, str]]:
        import duckdb

        try:
            rows = self.connection.execute(f"describe {_empty(sql)}").fetchall()
        except duckdb.Error as error:
            raise _Skip(_first_line(error)) from None
        return [(str(r[0]), str(r[1])) for r in rows]


def _empty(sql: str) -> str:
    """The query's columns without its rows (a trailing comment cannot swallow the ``)``)."""
    return f"select * from (\n{sql.strip().rstrip(';')}\n) as _ddp_query limit 0"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _sources(
    tables: _Tables,
    registry: Registry,
    manifest: Mapping[str, Any],
    paths: ProjectPaths,
    files: LandingFiles,
) -> None:
    """The sources ddp writes whose types are known: landing file ports (their landing
    contract, else their files) and Python models that are output ports (their contract)."""
    from ddp_assets.warehouse.duckdb import file_reader

    for source in manifest.get("sources", {}).values():
        product = registry.products.get(str(source.get("source_name")))
        if product is None:
            continue
        table = str(source.get("name"))
        key = _source_key(product.id, table)
        relation = _relation(source)
        port = next((p for p in product.spec.input_ports if p.name == table), None)
        if isinstance(port, (FileInputPort, DepotInputPort)):
            columns = _columns_of(input_contract_path(product, port), table)
            if columns is not None:
                tables.create(key, relation, columns)
                continue
            found = files(paths.landing_dir, port.path) if isinstance(port, FileInputPort) else []
            if found and len(found) <= MAX_LANDING_FILES and isinstance(port, FileInputPort):
                with contextlib.suppress(_Skip):
                    reader = file_reader(found, port.format)
                    tables.create_as(key, relation, f"select * from {reader}")
            continue
        output = next((p for p in product.spec.output_ports if p.model == table), None)
        if output is not None and table in product.python_model_names:
            columns = _columns_of(product.folder / output.contract, table)
            if columns is not None:
                tables.create(key, relation, columns)


def input_contract_path(product: Product, port: FileInputPort | DepotInputPort) -> Path:
    """The optional input contract of a file or depot port: ``contracts/<port>.odcs.yaml``,
    the convention of ``ingest.landing.landing_contract_path`` and
    ``ingest.depot_assets.depot_contract_path`` (a layer this one may not import;
    ``tests/test_validate_types.py`` checks the three agree)."""
    return product.folder / "contracts" / f"{port.name}.odcs.yaml"


def _columns_of(path: Path, name: str) -> list[tuple[str, str]] | None:
    if not path.is_file():
        return None
    try:
        contract = load_contract_file(path).contract
    except SpecErrors:
        return None  # reported by the contract checks
    obj = contract.object_for(name)
    if obj is None or not obj.properties:
        return None
    return [(p.column, p.data_type) for p in obj.properties]


# -- rendering a model as dbt compiles it -------------------------------------------------------


class _Namespace:
    """A package's macros as ``package.name(...)``."""

    def __init__(self, lookup: Callable[[str], Any]):
        self._lookup = lookup

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._lookup(name)


class _Relation(str):
    """A relation as models and macros use ``this`` and ``ref()``: text with its parts."""

    schema: str
    identifier: str
    name: str
    database: str

    @classmethod
    def of(cls, relation: str, schema: str, identifier: str) -> _Relation:
        made = cls(relation)
        made.schema, made.identifier, made.name, made.database = (
            schema,
            identifier,
            identifier,
            "memory",
        )
        return made


class _Config:
    """``config(...)`` renders nothing; ``config.get``/``require`` read the node's config."""

    def __init__(self) -> None:
        self.node: Mapping[str, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return ""

    def get(self, name: str, default: Any = None) -> Any:
        return (self.node.get("config") or {}).get(name, default)

    def require(self, name: str) -> Any:
        config = self.node.get("config") or {}
        if name not in config:
            raise _Skip(f"config '{name}' is not set")
        return config[name]


class _Adapter:
    def __init__(self, renderer: _Renderer):
        self._renderer = renderer

    def dispatch(self, name: str, macro_namespace: str | None = None) -> Any:
        return self._renderer.dispatch(name, macro_namespace)

    @staticmethod
    def quote(identifier: str) -> str:
        return _quote(identifier)

    def __getattr__(self, name: str) -> Any:
        raise _Skip(f"adapter.{name} needs a database")


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise _Skip("the model's Jinja raised a compiler error")


class _Renderer:
    """Renders model SQL with dbt's Jinja and the manifest's macros, over the empty tables."""

    ADAPTER = "duckdb"

    def __init__(
        self,
        manifest: Mapping[str, Any],
        tables: _Tables,
        models: Mapping[str, Mapping[str, Any]],
        paths: ProjectPaths,
    ):
        import jinja2

        from ddp_assets import compat

        self._env = compat.dbt_jinja_environment().overlay(undefined=jinja2.StrictUndefined)
        self._tables = tables
        self._models = models
        metadata = manifest.get("metadata") or {}
        self._root = str(metadata.get("project_name") or "")
        self._macros: dict[str, dict[str, Mapping[str, Any]]] = {}
        for macro in manifest.get("macros", {}).values():
            self._macros.setdefault(str(macro["package_name"]), {})[str(macro["name"])] = macro
        self._compiled: dict[tuple[str, str], Any] = {}
        self._config = _Config()
        self._vars = _project_vars(paths.dbt_dir)
        self.context: dict[str, Any] = self._base_context()

    # the names dbt's model context offers that a model's SQL may use without a database
    def _base_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {}
        internal = [self.ADAPTER and f"dbt_{self.ADAPTER}", "dbt"]
        for package in [*reversed(internal), self._root]:  # the root project's macros win
            for name in self._macros.get(package, {}):
                context[name] = self._macro_caller(package, name)
        for package in self._macros:
            if package != self._root:
                context[package] = _Namespace(self._package_lookup(package))
        context["dbt"] = _Namespace(self._package_lookup("dbt", f"dbt_{self.ADAPTER}"))

        def return_(value: Any) -> None:
            raise _Return(value)

        context.update(
            {
                "ref": self.ref,
                "source": self.source,
                "config": self._config,
                "var": self.var,
                "env_var": _env_var,
                "is_incremental": lambda: False,
                "execute": True,
                "flags": _Namespace(lambda name: None),
                "target": {
                    "type": self.ADAPTER,
                    "name": os.environ.get("DDP_DBT_TARGET", "dev"),
                    "schema": "main",
                    "database": "memory",
                    "threads": 1,
                    "profile_name": "ddp",
                },
                "adapter": _Adapter(self),
                "exceptions": _Namespace(
                    lambda name: _fail if name.startswith("raise") else (lambda *a, **k: "")
                ),
                "log": lambda *a, **k: "",
                "print": lambda *a, **k: "",
                "return": return_,
                "modules": {"datetime": datetime, "re": re, "itertools": itertools},
                "run_started_at": datetime.datetime.now(datetime.UTC),
                "invocation_id": "ddp-validate",
                "tojson": lambda value, *a, **k: json.dumps(value),
                "fromjson": lambda text, default=None: json.loads(text) if text else default,
                "set": set,
                "zip": zip,
            }
        )
        context["builtins"] = {"ref": self.ref, "source": self.source, "config": self._config}
        return context

    def render(self, node: Mapping[str, Any]) -> str:
        """The model's SQL as dbt would compile it, over the in-memory relations."""
        import jinja2

        name = str(node["name"])
        self._config.node = node
        self.context["model"] = node
        self.context["this"] = _Relation.of(
            _relation(node), str(node["schema"]), str(node.get("alias") or name)
        )
        try:
            template = self._env.from_string(str(node.get("raw_code") or ""))
            return str(template.render(self.context))
        except _Skip:
            raise
        except _Return as returned:
            return str(returned.value)
        except Exception as error:  # the model's own Jinja may raise anything: not typed here
            kind = "Jinja" if isinstance(error, jinja2.TemplateError) else type(error).__name__
            raise _Skip(f"it does not render here ({kind}): {_first_line(error)}") from None

    def ref(self, *args: Any, **kwargs: Any) -> _Relation:
        if not args:
            raise _Skip("ref() without a model")
        node = self._models.get(str(args[-1]))
        if node is None:
            raise _Skip(f"ref('{args[-1]}') is not a SQL model of this project")
        relation = self._tables.known.get(_ref_key(node))
        if relation is None:
            raise _Skip(f"the types of '{node['name']}' are not known here")
        return _Relation.of(relation, str(node["schema"]), str(node.get("alias") or node["name"]))

    def source(self, source: str, table: str) -> _Relation:
        relation = self._tables.known.get(_source_key(source, table))
        if relation is None:
            raise _Skip(f"the types of source('{source}', '{table}') are not known here")
        schema, _, identifier = relation.partition(".")
        return _Relation.of(relation, schema.strip('"'), identifier.strip('"'))

    _MISSING = object()

    def var(self, name: str, default: Any = _MISSING) -> Any:
        if name in self._vars:
            return self._vars[name]
        if default is self._MISSING:
            raise _Skip(f"var('{name}') has no default")
        return default

    def dispatch(self, name: str, namespace: str | None) -> Any:
        """dbt's ``adapter.dispatch``: ``duckdb__name``, then ``default__name``, searched in
        the root project and then the namespace's package (dbt's own: its adapter's first)."""
        if namespace in (None, "dbt"):
            packages = [self._root, f"dbt_{self.ADAPTER}", "dbt"]
        else:
            packages = [self._root, namespace]
        for package in packages:
            for prefix in (self.ADAPTER, "default"):
                if f"{prefix}__{name}" in self._macros.get(package, {}):
                    return self._macro_caller(package, f"{prefix}__{name}")
        raise _Skip(f"no implementation of macro '{name}' for {self.ADAPTER}")

    def _package_lookup(self, *packages: str) -> Callable[[str], Any]:
        def lookup(name: str) -> Any:
            for package in packages:
                if name in self._macros.get(package, {}):
                    return self._macro_caller(package, name)
            raise _Skip(f"package '{packages[0]}' has no macro '{name}'")

        return lookup

    def _macro_caller(self, package: str, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            macro = self._compiled.get((package, name))
            if macro is None:
                source = str(self._macros[package][name].get("macro_sql") or "")
                module = self._env.from_string(source, globals=self.context).make_module()
                macro = getattr(module, f"dbt_macro__{name}", None) or getattr(module, name)
                self._compiled[(package, name)] = macro
            try:
                return macro(*args, **kwargs)
            except _Return as returned:
                return returned.value

        return call


def _env_var(name: str, default: Any = None) -> Any:
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise _Skip(f"env_var('{name}') is not set")
    return default


def _project_vars(dbt_dir: Path) -> dict[str, Any]:
    """The top-level scalar ``vars`` of ``dbt_project.yml`` (the values a run gets)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        document = YAML(typ="safe").load((dbt_dir / "dbt_project.yml").read_text("utf-8"))
    except (OSError, YAMLError):
        return {}
    found = (document or {}).get("vars") if isinstance(document, dict) else None
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if not isinstance(v, dict)}


# -- the comparison -----------------------------------------------------------------------------


def _differs(declared: ColumnType, actual: ColumnType) -> bool:
    """Whether dbt's contract enforcement would reject ``actual`` for ``declared``, judged by
    family and the sizes the contract gives (strings of any spelling are equal)."""
    if declared.family != actual.family:
        return True
    match declared.family:
        case "integer":
            return (declared.bits, declared.unsigned) != (actual.bits, actual.unsigned)
        case "float":
            return declared.bits is not None and declared.bits != actual.bits
        case "decimal":
            if declared.precision is None:
                return False
            return (declared.precision, declared.scale) != (actual.precision, actual.scale)
        case "timestamp":
            return declared.timezone != actual.timezone
        case _:
            return False


def _compare(
    registry: Registry,
    product: Product,
    port: str,
    model: str,
    sql: str,
    actual: list[tuple[str, str]],
) -> Iterator[SpecProblem]:
    path = product.contract_path(port)
    try:
        loaded = load_contract_file(path, registry.root)
    except SpecErrors:
        return  # reported by the contract checks
    obj = loaded.contract.object_for(model)
    if obj is None:
        return
    index = loaded.contract.schema_.index(obj)
    types = {name.lower(): kind for name, kind in actual}
    sql_file = product.sql_models.get(model)
    shown_sql = relative(sql_file, registry.root) if sql_file else f"model '{model}'"
    for p, prop in enumerate(obj.properties):
        found = types.get(prop.column.lower())
        if found is None:
            continue  # a missing column is the agreement check's
        declared, yielded = column_type(prop.data_type), column_type(found)
        if not isinstance(declared, ColumnType) or not isinstance(yielded, ColumnType):
            continue
        if not _differs(declared, yielded):
            continue
        key = "physicalType" if prop.physical_type else "logicalType"
        where: tuple[str | int, ...] = ("schema", index, "properties", p, key)
        written = found.lower()
        expression = _expression(sql, prop.column) or "..."
        yield SpecProblem(
            loaded.shown,
            loaded.line(*where),
            dotted(where),
            f"column '{prop.column}' of port '{product.id}.{port}' is {written} in its SQL "
            f"({shown_sql}), not {prop.data_type}: dbt's contract enforcement fails the build",
            f"write `physicalType: {written}`, or cast in the SQL: "
            f"`cast({expression} as {prop.data_type}) as {prop.column}`",
            column=_value_column(loaded, where),
        )


def _expression(sql: str, column: str) -> str | None:
    """The outermost select's expression named ``column``, as the SQL writes it, or None."""
    from sqlglot import exp, parse_one
    from sqlglot.errors import SqlglotError

    try:
        tree = parse_one(sql, dialect="duckdb")
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Query):
        return None
    for projection in tree.selects:
        if projection.alias_or_name.lower() == column.lower():
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            return _as_written(sql, projection, inner) or inner.sql(
                dialect="duckdb", normalize_functions="lower"
            )
    return None


def _as_written(sql: str, projection: Any, inner: Any) -> str | None:
    """The text of ``inner`` in ``sql`` (from its first token to the alias), when sqlglot kept
    the positions and the text is whole (balanced parentheses)."""
    starts = [n.meta["start"] for n in inner.walk() if "start" in n.meta]
    alias = projection.args.get("alias") if projection is not inner else None
    stop = alias.meta.get("start") if alias is not None else None
    if not starts:
        return None
    if stop is None:
        ends = [n.meta["end"] for n in inner.walk() if "end" in n.meta]
        stop = max(ends) + 1
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql[min(starts) : stop], flags=re.DOTALL)
    text = re.sub(r"\s+as\s*$", "", text.rstrip(), flags=re.IGNORECASE)
    text = " ".join(text.split())
    if not text or text.count("(") != text.count(")"):
        return None
    return text


def _value_column(loaded: LoadedContract, where: tuple[str | int, ...]) -> int | None:
    """The 1-based column of the value at ``where`` in the contract's YAML, when known."""
    node: Any = loaded.document
    for key in where[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    lc = getattr(node, "lc", None)
    try:
        return int(lc.value(where[-1])[1]) + 1 if lc is not None else None
    except (KeyError, TypeError, AttributeError):
        return None

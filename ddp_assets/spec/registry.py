"""All products of a project, and the checks that need more than one spec at a time.

The registry reads every product folder (spec, SQL files, contract paths) without running dbt,
so ``ddp validate`` is fast and its messages point at the exact file and line. The checks that
need dbt's own view (``dbt parse``) live in :mod:`ddp_assets.dbt.agreement`.
"""

from __future__ import annotations

import graphlib
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted, relative
from ddp_assets.spec.loader import LoadedSpec, find_spec_files, load_spec
from ddp_assets.spec.model import (
    DepotInputPort,
    FileInputPort,
    ProductInputPort,
    ProductSpec,
    PythonModel,
    TableInputPort,
)

_REF = re.compile(r"""\bref\(\s*['"](?P<a>\w+)['"]\s*(?:,\s*['"](?P<b>\w+)['"]\s*)?[,)]""")
_SOURCE = re.compile(r"""\bsource\(\s*['"](?P<source>\w+)['"]\s*,\s*['"](?P<table>\w+)['"]""")


@dataclass(frozen=True)
class Reference:
    """A ``ref()`` or ``source()`` call found in a SQL model."""

    kind: str  # "ref" or "source"
    name: str  # the model, or the source table
    source: str | None  # the source name for source()
    file: Path
    line: int


@dataclass
class Product:
    """One product: its validated spec, its folder and the dbt models it owns."""

    loaded: LoadedSpec
    sql_models: dict[str, Path] = field(default_factory=dict)

    @property
    def spec(self) -> ProductSpec:
        return self.loaded.spec

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def folder(self) -> Path:
        return self.loaded.folder

    @property
    def python_model_names(self) -> list[str]:
        return [m.name for m in self.spec.python_models]

    @property
    def model_names(self) -> list[str]:
        return [*self.sql_models, *self.python_model_names]

    @property
    def output_models(self) -> dict[str, str]:
        """Output port model → port name."""
        return {p.model: p.name for p in self.spec.output_ports}

    @property
    def raw_tables(self) -> list[str]:
        """Tables the platform writes for this product before dbt runs (sources)."""
        return [
            *(p.name for p in self.spec.input_ports if isinstance(p, FileInputPort)),
            *(p.name for p in self.spec.input_ports if isinstance(p, DepotInputPort)),
            *self.python_model_names,
        ]

    def contract_path(self, port: str) -> Path:
        output = self.spec.output_port(port)
        assert output is not None
        return self.folder / output.contract

    def references(self) -> Iterator[Reference]:
        for path in self.sql_models.values():
            try:
                text = path.read_bytes().decode("utf-8-sig", errors="replace")
            except OSError:
                continue  # reported by the registry's model check
            for number, line in enumerate(text.splitlines(), start=1):
                for match in _REF.finditer(line):
                    name = match["b"] or match["a"]
                    yield Reference("ref", name, None, path, number)
                for match in _SOURCE.finditer(line):
                    yield Reference("source", match["table"], match["source"], path, number)


@dataclass
class Registry:
    """Every product in a defs folder, with all problems found while reading them."""

    root: Path
    products: dict[str, Product] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)
    # product id → its SQL models' references, while the checks run (two of them read them)
    _references: dict[str, list[Reference]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, defs_dir: Path, root: Path | None = None) -> Registry:
        """Read and cross-check every product; problems are collected, not raised.

        The result is also what :func:`load_registry` returns until a file changes, so a
        command that read the registry does not have it read again by the components.
        """
        key = folder_key(defs_dir) if defs_dir.is_dir() else None
        registry = cls(root=root or defs_dir.parent.parent)
        for path in find_spec_files(defs_dir):
            try:
                loaded = load_spec(path, registry.root)
            except SpecErrors as errors:
                registry.problems.extend(errors.problems)
                continue
            except Exception as error:  # a bug here must not hide the other products' problems
                registry._internal(relative(path, registry.root), error, line=1)
                continue
            registry._add(Product(loaded))
        for check in (
            registry._check_models,
            registry._check_ports,
            registry._check_references,
            registry._check_cycles,
            registry._check_model_cycles,
            registry._check_inside_project,
            lambda: registry._check_linked_folders(defs_dir),
            registry._check_policies,
        ):
            try:
                check()
            except Exception as error:
                registry._internal(relative(defs_dir, registry.root), error)
        registry._references.clear()
        if key is not None:
            _CACHE[defs_dir] = (key, registry)
        return registry

    def _references_of(self, product: Product) -> list[Reference]:
        found = self._references.get(product.id)
        if found is None:
            found = self._references[product.id] = list(product.references())
        return found

    def _internal(self, shown: str, error: Exception, line: int | None = None) -> None:
        self.problems.append(
            SpecProblem(
                shown,
                line,
                "(platform)",
                f"could not be checked: {type(error).__name__}: {error}",
                "this is a bug in the platform's validation; please report it with this file",
            )
        )

    # -- queries -------------------------------------------------------------------------

    @property
    def errors(self) -> list[SpecProblem]:
        return [p for p in self.problems if p.severity == "error"]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecErrors(self.problems)

    def get(self, product_id: str) -> Product:
        if product_id not in self.products:
            hint = did_you_mean(product_id, self.products)
            raise SpecErrors(
                [SpecProblem("(command line)", None, "product", f"no product '{product_id}'", hint)]
            )
        return self.products[product_id]

    @cached_property
    def model_owner(self) -> dict[str, str]:
        """Model name → owning product id, over every product."""
        return {m: p.id for p in self.products.values() for m in p.model_names}

    def upstream(self, product_id: str) -> list[str]:
        spec = self.products[product_id].spec
        return [p for p in spec.upstream_products if p in self.products and p != product_id]

    def downstream(self, product_id: str) -> list[str]:
        return sorted(p.id for p in self.products.values() if product_id in self.upstream(p.id))

    def python_model_inputs(
        self, product: Product, model: PythonModel
    ) -> dict[str, tuple[str, str]]:
        """Each declared input of a Python model → the relation (schema, table) it reads: an
        input port of another product reads that product's published port, any other input
        the product's own table of that name."""
        ports = {p.name: p for p in product.spec.input_ports}
        out: dict[str, tuple[str, str]] = {}
        for name in model.inputs:
            port = ports.get(name)
            if isinstance(port, ProductInputPort):
                upstream_spec = self.products[port.upstream_product].spec
                upstream = upstream_spec.output_port(port.upstream_port)
                assert upstream is not None
                out[name] = (port.upstream_product, upstream.model)
            else:
                out[name] = (product.id, name)
        return out

    def in_dependency_order(self) -> list[str]:
        sorter = graphlib.TopologicalSorter({pid: self.upstream(pid) for pid in self.products})
        try:
            return list(sorter.static_order())
        except graphlib.CycleError:
            return sorted(self.products)

    # -- checks --------------------------------------------------------------------------

    def _problem(
        self, product: Product, where: tuple[str | int, ...], message: str, hint: str | None = None
    ) -> None:
        self.problems.append(
            SpecProblem(
                product.loaded.display_path,
                product.loaded.line_of(*where),
                dotted(where),
                message,
                hint,
            )
        )

    def _add(self, product: Product) -> None:
        if product.id in self.products:
            first = self.products[product.id]
            self._problem(
                product,
                ("id",),
                f"product id '{product.id}' is already used by {first.loaded.display_path}",
                "product ids are unique across the project; give this product another id",
            )
            return
        self.products[product.id] = product

    def _check_models(self) -> None:
        owners: dict[str, tuple[Product, Path]] = {}
        for product in self.products.values():
            for index, folder in enumerate(product.spec.models.paths):
                path = product.folder / folder
                if not path.is_dir():
                    if folder == "models" and not product.spec.models.paths[1:]:
                        continue  # the default folder may be absent (python-only product)
                    self._problem(
                        product,
                        ("models", "paths", index),
                        f"folder '{folder}' does not exist in "
                        f"{relative(product.folder, self.root)}",
                        "create it, or list the folders that hold this product's SQL models",
                    )
                    continue
                for sql in sorted(p for p in path.rglob("*.sql") if p.is_file()):
                    self._check_sql_text(sql)
                    name = sql.stem
                    if name in owners:
                        other, other_path = owners[name]
                        self.problems.append(
                            SpecProblem(
                                relative(sql, self.root),
                                1,
                                "model",
                                f"model name '{name}' is also used by "
                                f"{relative(other_path, self.root)} (product '{other.id}')",
                                "dbt model names are unique across the project; rename this file, "
                                f"e.g. to {product.id}_{name}.sql",
                            )
                        )
                        continue
                    owners[name] = (product, sql)
                    product.sql_models[name] = sql
            for index, python_model in enumerate(product.spec.python_models):
                file_name, _, function = python_model.entrypoint.partition(":")
                if not (product.folder / file_name).is_file():
                    present = [
                        str(p.relative_to(product.folder)) for p in product.folder.rglob("*.py")
                    ]
                    self._problem(
                        product,
                        ("python_models", index, "entrypoint"),
                        f"file '{file_name}' not found in {relative(product.folder, self.root)}",
                        did_you_mean(file_name, present)
                        or f"create {file_name} in the product folder with a function '{function}'",
                    )
                if python_model.name in product.sql_models:
                    self._problem(
                        product,
                        ("python_models", index, "name"),
                        f"'{python_model.name}' is also a SQL model of this product",
                        "give the Python model another name",
                    )
                known = {*product.model_names, *(p.name for p in product.spec.input_ports)}
                for position, name in enumerate(python_model.inputs):
                    if name not in known:
                        self._problem(
                            product,
                            ("python_models", index, "inputs", position),
                            f"'{name}' is neither a model nor an input port of this product",
                            did_you_mean(name, known)
                            or f"use one of: {', '.join(sorted(known)) or 'none declared'}",
                        )

    def _check_sql_text(self, sql: Path) -> None:
        try:
            data = sql.read_bytes()
        except OSError as error:
            self.problems.append(
                SpecProblem(
                    relative(sql, self.root),
                    None,
                    "(file)",
                    f"cannot be read: {error.strerror or error}",
                    "check that the file is readable",
                )
            )
            return
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            self.problems.append(
                SpecProblem(
                    relative(sql, self.root),
                    data[: error.start].count(b"\n") + 1,
                    "(file)",
                    f"not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded",
                    "save the file as UTF-8",
                )
            )

    def _check_ports(self) -> None:
        for product in self.products.values():
            for index, port in enumerate(product.spec.output_ports):
                if port.model not in product.model_names:
                    hint = did_you_mean(port.model, product.model_names) or (
                        f"this product's models: {', '.join(sorted(product.model_names))}"
                        if product.model_names
                        else f"add models/{port.model}.sql to the product folder"
                    )
                    self._problem(
                        product,
                        ("output_ports", index, "model"),
                        f"model '{port.model}' does not exist in product '{product.id}'",
                        hint,
                    )
                if not (product.folder / port.contract).is_file():
                    present = [
                        str(p.relative_to(product.folder))
                        for p in product.folder.rglob("*.odcs.yaml")
                        if p.is_file()
                    ]
                    self._problem(
                        product,
                        ("output_ports", index, "contract"),
                        f"contract file '{port.contract}' not found in "
                        f"{relative(product.folder, self.root)}",
                        did_you_mean(port.contract, present)
                        or "write an ODCS contract there (ddp new scaffolds one)",
                    )
            for index, input_port in enumerate(product.spec.input_ports):
                if not isinstance(input_port, ProductInputPort):
                    continue
                upstream_id = input_port.upstream_product
                upstream = self.products.get(upstream_id)
                where = ("input_ports", index, "product")
                if upstream is None:
                    others = sorted(p for p in self.products if p != product.id)
                    self._problem(
                        product,
                        where,
                        f"input port '{input_port.name}' names unknown product '{upstream_id}'",
                        did_you_mean(upstream_id, others)
                        or f"known products: {', '.join(others) or 'none'}",
                    )
                    continue
                if upstream_id == product.id:
                    self._problem(
                        product,
                        where,
                        f"input port '{input_port.name}' reads this product's own port",
                        "read the product's own models with ref() instead; remove this port",
                    )
                    continue
                if upstream.spec.output_port(input_port.upstream_port) is None:
                    ports = [p.name for p in upstream.spec.output_ports]
                    self._problem(
                        product,
                        where,
                        f"product '{upstream_id}' has no output port '{input_port.upstream_port}'",
                        did_you_mean(input_port.upstream_port, ports)
                        or f"its output ports: {', '.join(ports)}",
                    )
                elif upstream.spec.status == "deprecated":
                    self.problems.append(
                        SpecProblem(
                            product.loaded.display_path,
                            product.loaded.line_of(*where),
                            dotted(where),
                            f"consumes deprecated product '{upstream_id}'",
                            "plan a migration to its replacement",
                            severity="warning",
                        )
                    )

    def _check_policies(self) -> None:
        from ddp_assets.spec.grants import policy_problems  # here: it reads every contract

        self.problems.extend(policy_problems(self))

    def _check_references(self) -> None:
        for product in self.products.values():
            product_ports = [p for p in product.spec.input_ports if isinstance(p, ProductInputPort)]
            declared = {(p.upstream_product, p.upstream_port) for p in product_ports}
            # input ports already reported as broken (unknown product or port)
            broken = [p for p in product_ports if not self._resolves(p)]
            own_sources = {
                *product.raw_tables,
                *(p.name for p in product.spec.input_ports if isinstance(p, TableInputPort)),
            }
            for ref in self._references_of(product):
                shown = relative(ref.file, self.root)
                if ref.kind == "source":
                    self._check_source(product, ref, own_sources)
                    continue
                owner_id = self.model_owner.get(ref.name)
                if owner_id is None:
                    self.problems.append(
                        SpecProblem(
                            shown,
                            ref.line,
                            f"ref('{ref.name}')",
                            f"no model '{ref.name}' in any product",
                            did_you_mean(ref.name, self.model_owner)
                            or "ref() names a SQL file (without .sql) or a python model",
                        )
                    )
                    continue
                if owner_id == product.id:
                    continue
                owner = self.products[owner_id]
                port = owner.output_models.get(ref.name)
                if port is None:
                    ports = ", ".join(f"{owner_id}.{p.name}" for p in owner.spec.output_ports)
                    self.problems.append(
                        SpecProblem(
                            shown,
                            ref.line,
                            f"ref('{ref.name}')",
                            f"'{ref.name}' is an internal model of product '{owner_id}'; "
                            "products may only read each other's output ports",
                            f"read one of its output ports instead: {ports}",
                        )
                    )
                elif (owner_id, port) not in declared and not any(
                    p.name == port or did_you_mean(p.upstream_product, [owner_id]) for p in broken
                ):  # a misspelt input port for it is reported already
                    self.problems.append(
                        SpecProblem(
                            shown,
                            ref.line,
                            f"ref('{ref.name}')",
                            f"reads output port '{owner_id}.{port}' without an input port for it",
                            f"add to input_ports in {product.loaded.display_path}: "
                            f"{{name: {port}, type: product, product: {owner_id}.{port}}}",
                        )
                    )

    def _resolves(self, port: ProductInputPort) -> bool:
        upstream = self.products.get(port.upstream_product)
        return upstream is not None and upstream.spec.output_port(port.upstream_port) is not None

    def _check_source(self, product: Product, ref: Reference, own_sources: set[str]) -> None:
        shown = relative(ref.file, self.root)
        field = f"source('{ref.source}', '{ref.name}')"
        ports = ", ".join(sorted(own_sources)) or "none"
        if ref.source != product.id:
            if ref.source in self.products:
                message = (
                    f"reads the sources of product '{ref.source}'; "
                    "a product reads only its own sources"
                )
                hint = (
                    f"declare an input port on one of '{ref.source}''s output ports "
                    "and ref() its model"
                )
            else:
                message = (
                    f"unknown source '{ref.source}'; this product's sources are '{product.id}'"
                )
                hint = f"write source('{product.id}', '{ref.name}')"
                if ref.name not in own_sources:
                    hint = f"write source('{product.id}', '<input port>'); its ports: {ports}"
            self.problems.append(SpecProblem(shown, ref.line, field, message, hint))
        elif ref.name not in own_sources:
            self.problems.append(
                SpecProblem(
                    shown,
                    ref.line,
                    field,
                    f"product '{product.id}' has no file or table input port or python model "
                    f"'{ref.name}'",
                    did_you_mean(ref.name, own_sources) or f"its sources: {ports}",
                )
            )

    def _check_cycles(self) -> None:
        graph = {pid: self.upstream(pid) for pid in self.products}
        for component in _cycles(graph):
            start = min(component)
            cycle = _cycle_through(start, graph, component)
            product = self.products[start]
            index = next(
                i
                for i, p in enumerate(product.spec.input_ports)
                if isinstance(p, ProductInputPort) and p.upstream_product == cycle[1]
            )
            self._problem(
                product,
                ("input_ports", index, "product"),
                f"products read each other in a cycle: {' -> '.join(cycle)} (each reads the next)",
                "products must form a DAG: remove one of the input ports in this cycle",
            )

    def _check_model_cycles(self) -> None:
        """A model that ref()s itself, or models that ref() each other: dbt cannot order them
        (and code walking the model graph would recurse forever)."""
        graph: dict[str, list[str]] = {}
        where: dict[tuple[str, str], Reference] = {}
        for product in self.products.values():
            for ref in self._references_of(product):
                if ref.kind != "ref" or ref.name not in self.model_owner:
                    continue
                model = ref.file.stem
                if model not in product.sql_models or product.sql_models[model] != ref.file:
                    continue
                if ref.name == model:
                    self.problems.append(
                        SpecProblem(
                            relative(ref.file, self.root),
                            ref.line,
                            f"ref('{ref.name}')",
                            f"model '{model}' reads itself",
                            "ref() another model: a model cannot select from its own relation "
                            "(for incremental models use {{ this }})",
                        )
                    )
                    continue
                graph.setdefault(model, [])
                if ref.name not in graph[model]:
                    graph[model].append(ref.name)
                    where[(model, ref.name)] = ref
        for component in _cycles(graph):
            start = min(component)
            cycle = _cycle_through(start, graph, component)
            ref = where[(cycle[0], cycle[1])]
            self.problems.append(
                SpecProblem(
                    relative(ref.file, self.root),
                    ref.line,
                    f"ref('{ref.name}')",
                    f"models read each other in a cycle: {' -> '.join(cycle)} "
                    "(each reads the next)",
                    "models must form a DAG: remove one of the ref() calls in this cycle",
                )
            )

    def _check_inside_project(self) -> None:
        """Every file a product is read from lies inside the project: a symbolic link out of it
        (a product folder, models folder, SQL model, contract or Python file) is an error, as
        dbt, the catalog and the lineage name files relative to the project."""
        root = self.root.resolve()
        for product in self.products.values():
            files: list[tuple[Path, tuple[str | int, ...] | None]] = [
                (product.folder, ("id",)),
                *(
                    (product.folder / f, ("models", "paths", i))
                    for i, f in enumerate(product.spec.models.paths)
                ),
                *(
                    (product.folder / p.contract, ("output_ports", i, "contract"))
                    for i, p in enumerate(product.spec.output_ports)
                ),
                *(
                    (
                        product.folder / m.entrypoint.partition(":")[0],
                        ("python_models", i, "entrypoint"),
                    )
                    for i, m in enumerate(product.spec.python_models)
                ),
                *((path, None) for path in product.sql_models.values()),
            ]
            for path, field_path in files:
                if field_path is None and not path.is_symlink():
                    continue  # a SQL file found in its (checked) folder, not a link: inside
                try:
                    resolved = path.resolve()
                except (OSError, RuntimeError):  # a symlink loop
                    resolved = None
                if resolved is not None and resolved.is_relative_to(root):
                    continue
                if resolved is not None and not path.exists():
                    continue  # missing files are reported by the other checks
                target = "a symbolic link loop" if resolved is None else str(resolved)
                message = (
                    f"'{_shown_unresolved(path, self.root)}' leads outside the project, to {target}"
                )
                hint = (
                    "copy the file into the product folder: every file of a product lives "
                    "inside the project"
                )
                if field_path is None:
                    self.problems.append(
                        SpecProblem(_shown_unresolved(path, self.root), 1, "(file)", message, hint)
                    )
                else:
                    self._problem(product, field_path, message, hint)

    def _check_linked_folders(self, defs_dir: Path) -> None:
        """A folder of the defs folder that is a symbolic link: nothing in it is read (ddp,
        Dagster and dbt walk folders without following links), so say so."""
        pending = [defs_dir]
        while pending:
            try:
                entries = list(os.scandir(pending.pop()))
            except OSError:
                continue
            for entry in entries:
                if not entry.is_symlink():
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    continue
                if not os.path.isdir(entry.path):
                    continue  # a linked file: checked with the product that reads it
                shown = _shown_unresolved(Path(entry.path), self.root)
                self.problems.append(
                    SpecProblem(
                        shown,
                        None,
                        "(folder)",
                        f"'{shown}' is a symbolic link to the folder "
                        f"{os.path.realpath(entry.path)}: nothing in it is read (ddp, Dagster "
                        "and dbt do not follow folder links)",
                        "move or copy the folder here instead of linking it",
                    )
                )


def _shown_unresolved(path: Path, root: Path) -> str:
    """A path relative to the root as written (symbolic links not followed)."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path(os.path.abspath(root))))
    except ValueError:
        return str(path)


def _cycles(graph: dict[str, list[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan), sorted.

    Iterative: a chain of thousands of models must not reach Python's recursion limit.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph.get(root, [])))]
        while work:
            node, successors = work[-1]
            succ = next(successors, None)
            if succ is not None:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph.get(succ, []))))
                elif succ in on_stack:
                    low[node] = min(low[node], index[succ])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return sorted(found, key=min)


def _cycle_through(start: str, graph: dict[str, list[str]], component: set[str]) -> list[str]:
    """The shortest cycle from ``start`` back to it inside one strongly connected component."""
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for succ in sorted(graph.get(node, [])):
            if succ not in component:
                continue
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if succ not in parents:
                parents[succ] = node
                queue.append(succ)
    return [start, start]


_CACHE: dict[Path, tuple[str, Registry]] = {}
_FOLDER_SUFFIXES = (".yaml", ".yml", ".sql", ".py")


def folder_key(defs_dir: Path) -> str:
    """A digest of the name, size and mtime of every spec, SQL and Python file in the folder.

    One ``os.walk`` and one ``stat`` per file, on plain strings (sorting ``Path`` objects
    cost more than the walk itself).
    """
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(defs_dir):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(_FOLDER_SUFFIXES):
                continue
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:  # e.g. a broken symlink; the registry reports what it cannot read
                continue
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_registry(defs_dir: Path, root: Path) -> Registry:
    """:meth:`Registry.load`, reused while no spec, SQL or Python file in the defs folder changed
    (a digest of the folder decides), for long-lived processes that ask again and again (the
    lineage sensors at each tick). A definitions build reads the folder once and hands the
    registry to its components (``components/context.py``), without this cache."""
    key = folder_key(defs_dir)
    cached = _CACHE.get(defs_dir)
    if cached is not None and cached[0] == key:
        return cached[1]
    return Registry.load(defs_dir, root)

"""Undefined macros, found at ``ddp validate`` instead of at materialize.

``dbt parse`` accepts a model that calls a macro nobody defined (``dbt_utils.star(...)`` without
the package, a misspelt project macro): dbt only renders the call when it compiles the model,
so the error used to show first in a run. This check reads each product model (and each of the
project's own macros) with dbt's own Jinja environment and resolves every call the way dbt's
macro namespace does, against the parsed manifest:

- ``name(...)``: a macro of the root project or of dbt's internal packages (``dbt``,
  ``dbt_<adapter>``), a member of dbt's model context (``ref``, ``config``, ``var``, ...), a
  Jinja global, or a name the file defines itself (``{% set %}``, ``{% macro %}``, loops);
- ``package.name(...)``: a macro of that installed package (``package`` being a context object
  such as ``adapter`` or ``exceptions`` is not a package call).

Each problem names the file and the line of the call, with the closest macro as a hint.
dbt's context members and Jinja environment come from :mod:`ddp_assets.compat` (a private dbt
table, in the tested dbt-core only); outside it, only ``package.name(...)`` calls are checked.

A product's own macros (``<product folder>/macros/``, copied for dbt by
:func:`ddp_assets.dbt.project.write_product_macros`) are checked the same way, and a macro name
defined twice in the project's macros is a problem before dbt parses
(:func:`macro_file_problems`, called by :func:`ddp_assets.dbt.project.prepare`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecProblem, did_you_mean, relative
from ddp_assets.spec.registry import Registry

# names Jinja or dbt provide in any rendering that are not in the model context's members
_ALWAYS = {"caller", "loop", "varargs", "kwargs", "builtins", "doc", "super", "self"}


def _context_names() -> set[str] | None:
    """dbt's model-context members, Jinja's globals and :data:`_ALWAYS`; None when this dbt's
    members cannot be read (:func:`ddp_assets.compat.dbt_context_members`)."""
    from ddp_assets import compat

    members = compat.dbt_context_members()
    if members is None:
        return None
    return set(members) | set(compat.dbt_jinja_environment().globals) | _ALWAYS


def _macros(manifest: dict[str, Any]) -> dict[str, set[str]]:
    by_package: dict[str, set[str]] = defaultdict(set)
    for macro in manifest.get("macros", {}).values():
        by_package[str(macro.get("package_name"))].add(str(macro.get("name")))
    return by_package


def _calls(source: str) -> Iterable[tuple[int, str | None, str]] | None:
    """``(line, namespace, name)`` of each call the file makes to a name it does not define;
    None when dbt's Jinja cannot parse it (dbt parse reports that)."""
    from jinja2 import TemplateSyntaxError, meta, nodes

    from ddp_assets import compat

    environment = compat.dbt_jinja_environment()
    try:
        tree = environment.parse(source)
        undeclared = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError:
        return None
    found: list[tuple[int, str | None, str]] = []
    for call in tree.find_all(nodes.Call):
        target = call.node
        if isinstance(target, nodes.Name) and target.name in undeclared:
            found.append((call.lineno, None, target.name))
        elif (
            isinstance(target, nodes.Getattr)
            and isinstance(target.node, nodes.Name)
            and target.node.name in undeclared
        ):
            found.append((call.lineno, target.node.name, target.attr))
    return found


def undefined_macro_problems(
    registry: Registry, manifest: dict[str, Any], dbt_dir: Path
) -> list[SpecProblem]:
    """Every call to an undefined macro in the products' SQL models and the project's macros."""
    packages = _macros(manifest)
    metadata = manifest.get("metadata") or {}
    root = str(metadata.get("project_name") or "")
    internal = {"dbt", f"dbt_{metadata.get('adapter_type') or ''}"}
    unqualified = set(packages.get(root, set()))
    for name in internal:
        unqualified |= packages.get(name, set())
    context = _context_names()
    # without dbt's context members, ref/config/adapter... look like undefined macros: only
    # calls into an installed package are checked then
    only_packages = context is None
    context = context or set()
    files = [path for p in registry.products.values() for path in p.sql_models.values()]
    macro_dir = dbt_dir / "macros"
    if macro_dir.is_dir():
        files.extend(path for path in sorted(macro_dir.rglob("*.sql")) if "_ddp" not in path.parts)
    for product in registry.products.values():  # their copies are under macros/_ddp
        folder = product.folder / "macros"
        if folder.is_dir():
            files.extend(path for path in sorted(folder.rglob("*.sql")) if path.is_file())
    problems: list[SpecProblem] = []
    for path in files:
        try:
            calls = _calls(path.read_text(encoding="utf-8"))
        except OSError:
            continue
        shown = relative(path, registry.root)
        for line, namespace, name in calls or ():
            if only_packages and namespace not in packages:
                continue
            if namespace is None:
                if name in context or name in unqualified:
                    continue
                hint = did_you_mean(name, unqualified - {n for n in unqualified if "__" in n})
                qualified = sorted(f"{p}.{name}" for p, names in packages.items() if name in names)
                problems.append(
                    SpecProblem(
                        shown,
                        line,
                        "(dbt macro)",
                        f"'{name}' is not a macro of this project or of dbt",
                        hint
                        or (f"call it as {qualified[0]}(...)" if qualified else None)
                        or "define it in dbt_project/macros/, or declare the package that "
                        "has it in dbt_project/packages.yml",
                    )
                )
            elif namespace in packages:
                if name in packages[namespace]:
                    continue
                problems.append(
                    SpecProblem(
                        shown,
                        line,
                        "(dbt macro)",
                        f"package '{namespace}' has no macro '{name}'",
                        did_you_mean(name, packages[namespace])
                        or f"its macros: {', '.join(sorted(packages[namespace])[:8])}",
                    )
                )
            elif namespace not in context:
                close = did_you_mean(namespace, [p for p in packages if p != root])
                problems.append(
                    SpecProblem(
                        shown,
                        line,
                        "(dbt macro)",
                        f"'{namespace}.{name}': no installed package is called '{namespace}'",
                        f"declare '{namespace}' in dbt_project/packages.yml "
                        "(`ddp prepare` installs it with dbt deps)"
                        + (f", or {close}" if close else ""),
                    )
                )
    return problems


# -- a macro name defined twice ----------------------------------------------------------------

_MACRO_TAG = re.compile(r"{%-?\s*(macro|test|data_test|materialization)\s+(\w+)(?:\s*,\s*(.*?))?")


def _definitions(source: str) -> tuple[list[tuple[str, int]], Any]:
    """``(name, line)`` of each macro a file defines at its top level, and dbt's Jinja syntax
    error when the file does not parse with dbt's environment (else None)."""
    from jinja2 import TemplateSyntaxError, nodes

    from ddp_assets import compat

    try:
        tree = compat.dbt_jinja_environment().parse(source)
    except TemplateSyntaxError as error:
        syntax = error if compat.tested("dbt-core") else None  # else: dbt's tags, unknown here
        return _tagged_definitions(source), syntax
    prefix = "dbt_macro__"
    names = [
        (node.name.removeprefix(prefix), node.lineno)
        for node in tree.body
        if isinstance(node, nodes.Macro)
    ]
    return names, None


def _tagged_definitions(source: str) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []  # dbt's tags by their text
    for match in _MACRO_TAG.finditer(source):
        kind, name, rest = match[1], match[2], match[3] or ""
        line = source.count("\n", 0, match.start()) + 1
        if kind == "macro":
            found.append((name, line))
        elif kind in ("test", "data_test"):
            found.append((f"test_{name}", line))
        else:
            adapter = re.search(r"adapter\s*=\s*['\"](\w+)['\"]", rest)
            found.append((f"materialization_{name}_{adapter[1] if adapter else 'default'}", line))
    return found


def macro_definitions(source: str) -> list[tuple[str, int]]:
    """``(name, line)`` of each macro a file defines at its top level, by the names dbt gives
    them (``{% test x %}`` is ``test_x``, ``{% materialization m, adapter='duckdb' %}`` is
    ``materialization_m_duckdb``)."""
    return _definitions(source)[0]


def macro_file_problems(paths: ProjectPaths, product_files: dict[Path, Path]) -> list[SpecProblem]:
    """A macro file dbt's Jinja cannot parse (dbt's own error names no file), and a macro name
    defined in two files of the project's own macros: a product's ``macros/`` folder
    (``product_files``: each file and the copy dbt reads), ``dbt_project/macros/`` or the
    platform's macros (``macros/_ddp``).

    dbt's macro namespace is one for the whole project, whatever folder a macro is in: dbt
    refuses the second definition and would name ddp's copy of the product file. Each problem
    is at a later definition and names the first; packages have their own namespaces and are
    not compared.
    """
    from ddp_assets.dbt.project import GENERATED_MACROS, PLATFORM_MACROS

    generated = paths.dbt_dir / GENERATED_MACROS
    files: list[tuple[Path, str]] = [  # as written into the project (macros/_ddp)
        (
            path,
            f"ddp's platform macros ({relative(generated / path.name, paths.root)}",
        )
        for path in sorted(PLATFORM_MACROS.glob("*.sql"))
    ]
    project_macros = paths.dbt_dir / "macros"
    if project_macros.is_dir():
        files.extend(
            (path, "")
            for path in sorted(project_macros.rglob("*.sql"))
            if path.is_file() and generated.resolve() not in path.resolve().parents
        )
    files.extend((path, "") for path in product_files)
    first: dict[str, tuple[Path, int, str]] = {}
    problems: list[SpecProblem] = []
    for path, label in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        definitions, syntax = _definitions(text)
        if syntax is not None and not label:  # dbt's message would name no file
            problems.append(
                SpecProblem(
                    relative(path, paths.root),
                    syntax.lineno,
                    "(dbt macro)",
                    f"dbt cannot read this macro file: {syntax.message}",
                    "close every {% macro %} with {% endmacro %} and every Jinja block with "
                    "its end tag; dbt reads every macro file before any model",
                )
            )
        for name, line in definitions:
            if name not in first:
                first[name] = (path, line, label)
                continue
            other, other_line, other_label = first[name]
            where = (
                f"{other_label}:{other_line})"
                if other_label
                else f"{relative(other, paths.root)}:{other_line}"
            )
            problems.append(
                SpecProblem(
                    relative(path, paths.root),
                    line,
                    "(dbt macro)",
                    f"macro '{name}' is also defined in {where}",
                    "dbt's macro namespace is one for the whole project (every product's "
                    "macros/ folder and dbt_project/macros/): rename one of them, or keep a "
                    "single definition in dbt_project/macros/ for every product to call"
                    if not other_label
                    else f"'{name}' is ddp's: give this macro another name",
                )
            )
    return problems

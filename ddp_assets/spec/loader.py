"""Reading one product's ``defs.yaml`` into a :class:`ProductSpec`, with source positions.

ruamel.yaml keeps the line and column of every key and item, which lets each pydantic error be
reported at the exact line of the offending field (PyYAML, which Dagster uses, does not expose
positions for plain loads). Nothing here raises anything but :class:`SpecErrors`: unreadable
files, invalid YAML and invalid specs all become problems naming the file, line and field.
"""

from __future__ import annotations

import io
import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, NodeEvent
from ruamel.yaml.reader import ReaderError

from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted, relative
from ddp_assets.spec.model import OWNER, SEMVER, SLUG, ProductSpec, SpecValueError

COMPONENT_TYPE = "ddp_assets.components.DataProduct"
SPEC_FILE = "defs.yaml"
# The keys Dagster accepts at the top of a component's defs.yaml.
TOP_LEVEL_KEYS = ("type", "attributes", "template_vars_module", "requirements", "post_processing")

# What a valid value looks like, by field name, for values that do not match their pattern.
_FIELD_HINTS: dict[str, str] = {
    "id": "use lower-case letters, digits and '_', starting with a letter, e.g. 'customer_360'",
    "domain": "use lower-case letters, digits and '_', starting with a letter, e.g. 'sales'",
    "name": "use lower-case letters, digits and '_', starting with a letter",
    "model": "the name of a dbt model (SQL file name without .sql) or a python model",
    "version": "use semantic versioning MAJOR.MINOR.PATCH in quotes, e.g. '1.0.0'",
    "owners": "an email address or 'team:<name>', e.g. 'team:sales-analytics'",
    "product": "write the upstream port as '<product>.<port>', e.g. 'customers.customers'",
    "entrypoint": "write 'file.py:function', e.g. 'churn.py:score_customers'",
    "table": "write 'schema.table', e.g. 'crm.accounts'",
    "tags": "letters, digits, '_', ':', '.', '-' only, e.g. 'pii' or 'tier:gold'",
    "max_age": "write a number followed by m, h or d, e.g. 'max_age: 6h'",
    "deadline": "write 'HH:MM' in quotes, e.g. deadline: '06:00'",
    "schedule": "write a cron expression in quotes, e.g. schedule: '0 5 * * *'",
    "to": "a consumer id (lower-case letters, digits, '_', '.', '@', '-') or 'role:<name>', "
    "e.g. 'role:analyst'",
    "column": "a column name of the port: letters, digits and '_', e.g. 'country'",
}

# What a field's value is called in messages.
_LABELS: dict[str, str] = {
    "id": "product id",
    "domain": "domain",
    "name": "name",
    "model": "model name",
    "version": "semantic version",
    "owners": "owner",
    "product": "'<product>.<port>' reference",
    "entrypoint": "entrypoint",
    "table": "table",
    "tags": "tag",
    "to": "consumer or role",
    "column": "column name",
}

# What to write for a required field that is missing, by field path without list indexes.
_EXAMPLES: dict[str, str] = {
    "id": "id: customer_360",
    "name": "name: Customer 360",
    "domain": "domain: sales",
    "version": "version: 1.0.0",
    "owners": "owners: [team:<name>]",
    "description": "description: {purpose: <why the product exists>}",
    "description.purpose": "purpose: <why the product exists, in one or two sentences>",
    "output_ports": "output_ports: [{name: <port>, model: <model>, contract: <file>}]",
    "input_ports.name": "name: <port name>",
    "input_ports.path": "path: <glob in the landing zone, e.g. 'orders/*.csv'>",
    "input_ports.format": "format: csv",
    "input_ports.table": "table: <schema>.<table>",
    "input_ports.product": "product: <product>.<port>",
    "input_ports.contract.id": "id: <the upstream contract's id>",
    "output_ports.name": "name: <port name>",
    "output_ports.model": "model: <a model of this product>",
    "output_ports.contract": "contract: contracts/<model>.odcs.yaml",
    "python_models.name": "name: <model name>",
    "python_models.entrypoint": "entrypoint: <file.py>:<function>",
    "policies.grants.to": "to: <consumer id or role:<name>>",
    "policies.grants.rows.column": "column: <a column of the port>",
    "policies.grants.rows.op": "op: eq",
    "slos": "slos: {refresh: manual}",
    "slos.freshness": "freshness: {max_age: 6h}",
    "models": "models: {paths: [models]}",
    "policies": "policies: {classification: internal}",
}

# Lists whose items are structured, where a text value needs more than brackets.
_LIST_HINTS: dict[str, str] = {
    "rows": "row filters are conditions, not SQL: write "
    "rows: [{column: country, op: eq, value: DE}]",
}

_PATTERNS: dict[str, str] = {SLUG: "slug", SEMVER: "semver", OWNER: "owner"}


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with where it came from."""

    spec: ProductSpec
    path: Path  # the defs.yaml file
    display_path: str  # the same, as shown in messages
    positions: Positions

    @property
    def folder(self) -> Path:
        return self.path.parent

    def line_of(self, *field: str | int) -> int | None:
        return self.positions.line(("attributes", *field))


class Positions:
    """Line numbers (1-based) of keys and items in a ruamel document.

    A path that leads to a missing key gives the line of its closest existing parent, so that
    a missing field is reported where it should be added.
    """

    def __init__(self, document: Any):
        self._document = document
        self._table: dict[str, Any] | None = None  # a pickled copy's lines (below)

    # A pickled copy (the load cache, ``ddp_assets/dbt/load_cache.py``) keeps the line of each
    # node, the kind of each container and each mapping's ``type`` in one flat table of strings
    # instead of the ruamel document: at 200 products the documents were 25,000 objects,
    # unpickled at every load and kept for the life of the process.
    _ROOT = ""
    _KIND = "\x1d"  # after a container's path: "m" (mapping) or "s" (sequence)
    _TYPE = "\x1e"  # after a mapping's path: its ``type`` value

    @staticmethod
    def _step(prefix: str, key: Any) -> str:
        return f"{prefix}\x1f{'s' if isinstance(key, str) else type(key).__name__}:{key}"

    def __getstate__(self) -> dict[str, Any]:
        return {"table": self._flat()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._document = None
        self._table = state["table"]

    def _flat(self) -> dict[str, Any]:
        if self._table is not None:
            return self._table
        table: dict[str, Any] = {}
        if isinstance(self._document, (CommentedMap, CommentedSeq)):
            table[self._ROOT] = self._document.lc.line + 1

        def walk(node: Any, prefix: str) -> None:
            if isinstance(node, CommentedMap):
                table[prefix + self._KIND] = "m"
                kind = node.get("type")
                if not isinstance(kind, (dict, list)):
                    table[prefix + self._TYPE] = kind
                for key in node:
                    path = self._step(prefix, key)
                    table[path] = node.lc.key(key)[0] + 1
                    walk(node[key], path)
            elif isinstance(node, CommentedSeq):
                table[prefix + self._KIND] = "s"
                for index, item in enumerate(node):
                    path = self._step(prefix, index)
                    table[path] = node.lc.item(index)[0] + 1
                    walk(item, path)

        walk(self._document, self._ROOT)
        return table

    def line(self, path: tuple[str | int, ...]) -> int | None:
        if self._table is not None:
            return self._line_in_table(self._table, path)
        node = self._document
        line: int | None = None
        for key in path:
            if isinstance(node, CommentedMap):
                if key not in node:
                    if key == node.get("type"):  # pydantic adds a union's tag to the path
                        continue
                    break
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        if line is None and isinstance(self._document, (CommentedMap, CommentedSeq)):
            line = self._document.lc.line + 1
        return line

    def _line_in_table(self, table: dict[str, Any], path: tuple[str | int, ...]) -> int | None:
        """:meth:`line`, read from the flat table of a pickled copy (the same answers)."""
        prefix, line = self._ROOT, None
        for key in path:
            kind = table.get(prefix + self._KIND)
            here = self._step(prefix, key)
            if kind == "m":
                if here not in table:
                    if key == table.get(prefix + self._TYPE):  # a union's tag in pydantic's path
                        continue
                    break
            elif kind != "s" or not isinstance(key, int) or here not in table:
                break
            prefix, line = here, table[here]
        return line if line is not None else table.get(self._ROOT)


# Bounds on what one spec or contract file may hold. Anchors and aliases (``&a`` / ``*a``) are
# shared when parsed, but everything that reads the document afterwards (pydantic, JSON Schema,
# dbt's own YAML reader) walks them expanded: a "billion laughs" file of a few hundred bytes
# expands to 10^9 values. The largest file of the project holds a few hundred values.
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 64


class YamlLimitError(YAMLError):
    """A YAML file beyond the bounds above; ``line`` is where (1-based), when known."""

    def __init__(self, message: str, line: int | None, hint: str):
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint


def parse_yaml(text: str) -> Any:
    """Parse YAML text keeping positions; duplicate keys are an error, as in dbt.

    Raises :class:`YamlLimitError` for text beyond :data:`MAX_YAML_BYTES`, nesting deeper than
    :data:`MAX_YAML_DEPTH`, or aliases expanding to more than :data:`MAX_YAML_VALUES` values.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_YAML_BYTES:
        raise YamlLimitError(
            f"the file is too large ({size:,} bytes; at most {MAX_YAML_BYTES:,})",
            None,
            "a product spec or contract is a few kilobytes: split it, or remove generated data",
        )
    if text.count("[") + text.count("{") > MAX_YAML_DEPTH:  # else it cannot nest too deep
        deepest, line = _flow_depth(text)
        if deepest > MAX_YAML_DEPTH:
            raise _too_deep(line)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(io.StringIO(text))
    except RecursionError:
        raise _too_deep(_deepest_indent(text)) from None
    check_expansion(document, text)
    return document


def read_yaml(path: Path) -> Any:
    """Read and parse a UTF-8 YAML file (see :func:`parse_yaml`).

    Raises ``OSError``, ``UnicodeDecodeError`` or ruamel's ``YAMLError`` (including
    :class:`YamlLimitError`, also for a file larger than :data:`MAX_YAML_BYTES`, unread).
    """
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise YamlLimitError(
            f"the file is too large ({size:,} bytes; at most {MAX_YAML_BYTES:,})",
            None,
            "a product spec or contract is a few kilobytes: split it, or remove generated data",
        )
    return parse_yaml(path.read_bytes().decode("utf-8-sig"))


def _too_deep(line: int | None) -> YamlLimitError:
    return YamlLimitError(
        f"values are nested more than {MAX_YAML_DEPTH} levels deep",
        line,
        "a spec or contract nests a few levels; flatten this value",
    )


def _flow_depth(text: str) -> tuple[int, int | None]:
    """The deepest nesting of flow brackets (``[`` and ``{``) outside quotes and comments,
    and the line where it is first reached (a cheap look before ruamel recurses into it)."""
    depth = deepest = 0
    where: int | None = None
    line = 1
    quote = ""
    previous = "\n"
    for char in text:
        if char == "\n":
            line += 1
            if quote == "#":
                quote = ""
        elif quote:
            if char == quote and quote != "#":
                quote = ""
        elif char in "'\"":
            if previous in " \t[{,:\n" or previous == "\n":
                quote = char
        elif char == "#" and previous in " \t\n":
            quote = "#"
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, line
        elif char in "]}":
            depth = max(depth - 1, 0)
        previous = char
    return deepest, where


def _deepest_indent(text: str) -> int | None:
    """The line that starts deepest (indentation and '- ' markers), for nesting in block style."""
    best, where = -1, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" -")
        if stripped and not stripped.startswith("#") and len(line) - len(stripped) > best:
            best, where = len(line) - len(stripped), number
    return where


def check_expansion(document: Any, text: str) -> None:
    """Raise :class:`YamlLimitError` when the document, with every alias expanded, holds more
    than :data:`MAX_YAML_VALUES` values or nests deeper than :data:`MAX_YAML_DEPTH`.

    Linear in the parsed document: a shared (aliased) container is measured once. ``text``
    is the document's YAML, read again only to locate the alias that breaks a limit.
    """
    if not isinstance(document, (dict, list)):
        return
    sizes: dict[int, int] = {}  # id → values in the container, itself included, expanded
    depths: dict[int, int] = {}
    deep_line: int | None = None
    seen: set[int] = set()
    aliases: list[tuple[int, int | None, str | None]] = []  # (id, line of the alias, anchor)
    on_path: set[int] = set()  # the containers being measured: the current one's parents
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, measured = stack.pop()
        key = id(node)
        if measured:
            on_path.discard(key)
            size, depth = 1, 0
            for _, child in _children(node):
                if isinstance(child, (dict, list)):
                    size += sizes[id(child)]
                    depth = max(depth, depths[id(child)])
                else:
                    size += 1
            sizes[key], depths[key] = size, depth + 1
            if depth + 1 > MAX_YAML_DEPTH and deep_line is None:
                deep_line = _line_in(node, None)
            continue
        if key in sizes:
            continue
        if len(on_path) >= MAX_YAML_DEPTH:
            raise _too_deep(_line_in(node, None))
        on_path.add(key)
        seen.add(key)
        stack.append((node, True))
        for position, child in _children(node):
            if not isinstance(child, (dict, list)):
                continue
            if id(child) in on_path:
                raise YamlLimitError(
                    "an alias refers to a value that contains it",
                    _line_in(node, position),
                    "a value cannot include itself; write it out without the alias",
                )
            if id(child) in seen:
                aliases.append((id(child), _line_in(node, position), _anchor(child)))
            seen.add(id(child))
            stack.append((child, False))
    if sizes[id(document)] > MAX_YAML_VALUES:
        if aliases:
            child, line, anchor = max(aliases, key=lambda alias: sizes[alias[0]])
            name, defined = "an alias", ""
            if anchor:
                name = f"alias '*{anchor}'"
                line, anchor_line = _alias_lines(text, anchor, line)
                defined = f" of the anchor '&{anchor}' on line {anchor_line}" if anchor_line else ""
            raise YamlLimitError(
                f"YAML aliases expand to {sizes[id(document)]:,} values, more than the "
                f"{MAX_YAML_VALUES:,} allowed ({name}{defined} alone expands to {sizes[child]:,})",
                line,
                "anchors (&name) and aliases (*name) may repeat small values only: "
                "write the values out, or remove the nested aliases",
            )
        raise YamlLimitError(
            f"the file holds {sizes[id(document)]:,} values, more than the "
            f"{MAX_YAML_VALUES:,} allowed",
            None,
            "a product spec or contract holds a few hundred values: split it",
        )
    if depths[id(document)] > MAX_YAML_DEPTH:
        raise _too_deep(deep_line)


def _alias_lines(text: str, anchor: str, line: int | None) -> tuple[int | None, int | None]:
    """The line of the first alias ``*anchor`` and of its anchor ``&anchor`` in the text."""
    alias_line = anchor_line = None
    try:
        for event in YAML(typ="rt").parse(io.StringIO(text)):
            if isinstance(event, AliasEvent) and event.anchor == anchor:
                alias_line = event.start_mark.line + 1
                break
            if isinstance(event, NodeEvent) and event.anchor == anchor:
                anchor_line = event.start_mark.line + 1
    except YAMLError:
        pass
    return alias_line or line, anchor_line


def _children(node: Any) -> list[tuple[Any, Any]]:
    return list(node.items()) if isinstance(node, dict) else list(enumerate(node))


def _line_in(node: Any, position: Any) -> int | None:
    """The line (1-based) of an item of a ruamel container, or of the container itself."""
    try:
        if position is not None and isinstance(node, CommentedMap):
            return node.lc.key(position)[0] + 1
        if position is not None and isinstance(node, CommentedSeq):
            return node.lc.item(position)[0] + 1
        if isinstance(node, (CommentedMap, CommentedSeq)):
            return node.lc.line + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return None


def _anchor(node: Any) -> str | None:
    anchor = getattr(node, "anchor", None)
    value = getattr(anchor, "value", None)
    return str(value) if value else None


def load_spec(path: Path, root: Path | None = None) -> LoadedSpec:
    """Load and validate one ``defs.yaml``; raise :class:`SpecErrors` listing every problem."""
    shown = relative(path, root)
    document = read_document(path, shown)
    positions = Positions(document)
    if not isinstance(document, CommentedMap):
        found = "is empty" if document is None else f"holds a {_kind(document)}"
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    1,
                    "(document)",
                    f"the file {found}; expected a mapping with 'type' and 'attributes'",
                    f"start the file with 'type: {COMPONENT_TYPE}' and put the product "
                    "spec under 'attributes:'",
                )
            ]
        )
    problems = _check_top_level(document, positions, shown)
    attributes = document.get("attributes")
    if not isinstance(attributes, CommentedMap):
        found = "is missing" if "attributes" not in document else "is not a mapping"
        if attributes is None and "attributes" in document:
            found = "is empty"
        problems.append(
            SpecProblem(
                shown,
                positions.line(("attributes",)),
                "attributes",
                f"'attributes' {found}",
                "put the product spec (id, name, domain, ...) under 'attributes:', indented",
            )
        )
        raise SpecErrors(problems)
    try:
        spec = ProductSpec.model_validate(_plain(attributes))
    except ValidationError as error:
        problems.extend(_problems_from(error, attributes, positions, shown))
        raise SpecErrors(problems) from None
    if problems:
        raise SpecErrors(problems)
    return LoadedSpec(spec=spec, path=path, display_path=shown, positions=positions)


# -- reading ------------------------------------------------------------------------------


def read_document(path: Path, shown: str) -> Any:
    """The parsed YAML document of a spec or contract file (see :func:`parse_yaml`), or
    :class:`SpecErrors` saying why there is none, at the file's line (``shown``: its name in
    messages)."""
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES and path.is_file():
            raise SpecErrors(
                [
                    SpecProblem(
                        shown,
                        1,
                        "(file)",
                        f"the file is too large ({size:,} bytes; at most {MAX_YAML_BYTES:,})",
                        "a product spec or contract is a few kilobytes: split it, or remove "
                        "generated data",
                    )
                ]
            )
        data = path.read_bytes()
    except IsADirectoryError:
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    None,
                    "(file)",
                    f"'{path.name}' is a directory, not a file",
                    f"a product folder holds one {SPEC_FILE} file; rename this directory",
                )
            ]
        ) from None
    except OSError as error:
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    None,
                    "(file)",
                    f"cannot be read: {error.strerror or error}",
                    "check that the file exists and is readable",
                )
            ]
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        readable = data.decode("utf-8-sig", errors="replace")
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    line,
                    _field_at(readable, line) or "(file)",
                    f"not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded",
                    "save the file as UTF-8",
                )
            ]
        ) from None
    try:
        return parse_yaml(text)
    except YamlLimitError as error:
        line = error.line or 1
        field = _field_at(text, line) or "(yaml)"
        raise SpecErrors([SpecProblem(shown, line, field, error.message, error.hint)]) from None
    except MarkedYAMLError as error:
        raise SpecErrors([_yaml_problem(error, text, shown)]) from None
    except ReaderError as error:
        line = text[: error.position].count("\n") + 1
        char = error.character
        code = char if isinstance(char, int) else ord(str(char)[:1] or "\0")
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    line,
                    _field_at(text, line) or "(yaml)",
                    f"not valid YAML: control character U+{code:04X} is not allowed",
                    "remove the character (it is often pasted by accident)",
                )
            ]
        ) from None
    except YAMLError as error:
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    None,
                    "(yaml)",
                    f"not valid YAML: {error}",
                    "check the indentation and quoting",
                )
            ]
        ) from None


def _yaml_problem(error: MarkedYAMLError, text: str, shown: str) -> SpecProblem:
    context = error.context or ""
    unclosed = "quoted scalar" in context or "flow" in context
    # an unclosed quote or bracket is reported where it opens, not where the file ends
    mark = (error.context_mark if unclosed else None) or error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    problem = (error.problem or error.context or "invalid YAML").strip()
    field = (_field_at(text, line) if line else None) or "(yaml)"
    duplicate = re.match(r'found duplicate key "(?P<key>.*?)" with value', problem)
    if duplicate:
        key = duplicate["key"]
        first = _first_line_of(text, field, line) if line else None
        where = f" on line {first}" if first else ""
        return SpecProblem(
            shown,
            line,
            field,
            f"duplicate key '{key}'",
            f"'{key}' is already set{where}; keep only one of them",
            column=column,
        )
    message = f"not valid YAML: {problem}"
    hint = "check the indentation and quoting around this line"
    if "'\\t'" in problem:
        message = "not valid YAML: a tab character"
        hint = "indent with spaces; YAML does not allow tabs"
    elif "mapping values are not allowed" in problem:
        hint = "check the indentation of this line, and quote values that contain ': '"
    elif "expected <block end>" in problem:
        hint = "check the indentation: keys of one mapping start in the same column"
    elif "another document" in problem:
        message = "not valid YAML: more than one document ('---')"
        hint = f"a {SPEC_FILE} declares one product; remove the '---' and what follows"
    elif "alias" in context or "anchor" in context:
        hint = "quote values that start with '*', '&' or '!', e.g. schedule: '* 5 * * *'"
    elif "quoted scalar" in context:
        message = "not valid YAML: a quote is not closed"
        hint = "close the quote that starts on this line"
    elif "flow" in context:
        message = f"not valid YAML: a bracket is not closed ({problem})"
        hint = "close the '[' or '{' that starts on this line, or quote values containing ':'"
    return SpecProblem(shown, line, field, message, hint, column=column)


_KEY_LINE = re.compile(
    r"""^(?P<indent>\ *)(?P<dashes>(?:-\ +)*)"""
    r"""(?P<key>[A-Za-z_][\w.-]*|"[^"]*"|'[^']*')\ *:(?:\s|$)"""
)
_ITEM_LINE = re.compile(r"^(?P<indent>\ *)(?P<dashes>(?:-(?:\ +|$))+)")


def _key_paths(text: str) -> list[tuple[int, tuple[str | int, ...]]]:
    """``(line, path)`` for the lines of block-style YAML, also when it is invalid.

    A best effort to name the field around a YAML syntax error: the path of the key on each
    line (or of the enclosing key for other lines), from indentation and list dashes.
    """
    stack: list[tuple[int, str | int, bool]] = []  # (column, key or item index, opens a block)
    counts: dict[tuple[str | int, ...], int] = {}  # next item index of each sequence
    out: list[tuple[int, tuple[str | int, ...]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.replace("\t", "  ")
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        match = _KEY_LINE.match(line) or _ITEM_LINE.match(line)
        if match is None:
            indent = len(line) - len(line.lstrip(" "))
            out.append((number, tuple(k for c, k, _ in stack if c < indent)))
            continue
        key = match.groupdict().get("key")
        for dash in re.finditer(r"-(?:\ +|$)", match["dashes"]):
            column = len(match["indent"]) + dash.start()
            while stack and (
                stack[-1][0] > column
                or (stack[-1][0] == column and isinstance(stack[-1][1], int))
                or not stack[-1][2]
            ):
                stack.pop()
            parent = tuple(k for _, k, _ in stack)
            index = counts.get(parent, 0)
            counts[parent] = index + 1
            stack.append((column, index, bool(key) or dash.end() < len(match["dashes"])))
        if key:
            name = key.strip("'\"")
            column = len(match["indent"]) + len(match["dashes"])
            while stack and (stack[-1][0] >= column or not stack[-1][2]):
                stack.pop()
            path = tuple(k for _, k, _ in stack)
            for seq in [p for p in counts if p[: len(path) + 1] == (*path, name)]:
                del counts[seq]  # a key set again starts its sequences anew
            rest = line[match.end() :].strip()
            stack.append((column, name, not rest or rest.startswith(("#", "|", ">"))))
        out.append((number, tuple(k for _, k, _ in stack)))
    return out


def _field_at(text: str, line: int) -> str | None:
    """The dotted field on (or around) a line of YAML, as written in messages."""
    path: tuple[str | int, ...] = ()
    for number, found in _key_paths(text):
        if number > line:
            break
        path = found
    if path[:1] == ("attributes",) and len(path) > 1:
        path = path[1:]
    return dotted(path) or None


def _first_line_of(text: str, field: str, line: int) -> int | None:
    """The first line before ``line`` that sets the same field (for duplicate keys)."""
    for number, path in _key_paths(text):
        if number >= line:
            return None
        if path[:1] == ("attributes",) and len(path) > 1:
            path = path[1:]
        if dotted(path) == field:
            return number
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "text value"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


# -- the component envelope ---------------------------------------------------------------


def _check_top_level(document: CommentedMap, positions: Positions, shown: str) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    for key in document:
        if key in TOP_LEVEL_KEYS:
            continue
        name = str(key)
        if name in ProductSpec.model_fields:
            hint = f"'{name}' is a product field: indent it under 'attributes:'"
        else:
            hint = did_you_mean(name, TOP_LEVEL_KEYS) or (
                f"allowed top-level keys: {', '.join(TOP_LEVEL_KEYS)}"
            )
        problems.append(
            SpecProblem(
                shown, positions.line((key,)), name, f"unknown top-level key '{name}'", hint
            )
        )
    component_type = document.get("type")
    if "type" not in document:
        problems.append(
            SpecProblem(
                shown,
                1,
                "type",
                "required key 'type' is missing",
                f"add 'type: {COMPONENT_TYPE}' as the first line",
            )
        )
    elif component_type != COMPONENT_TYPE:
        problems.append(
            SpecProblem(
                shown,
                positions.line(("type",)),
                "type",
                f"unknown component type {component_type!r} for a product folder",
                f"write 'type: {COMPONENT_TYPE}'",
            )
        )
    return problems


# -- pydantic errors ----------------------------------------------------------------------


def _plain(node: Any) -> Any:
    """ruamel containers and scalars → plain Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _problems_from(
    error: ValidationError, attributes: Any, positions: Positions, shown: str
) -> list[SpecProblem]:
    found: list[tuple[tuple[str | int, ...], str, str, str | None]] = []
    for item in error.errors(include_url=False):
        data_loc = _data_loc(attributes, tuple(item["loc"]))
        kind = item["type"]
        ctx: dict[str, Any] = dict(item.get("ctx") or {})
        check = ctx.get("error")
        if isinstance(check, SpecValueError):
            kind = "spec"
            data_loc = (*data_loc, *check.loc)
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            data_loc = (*data_loc, "type")
        message, hint = _describe(item, kind, ctx, attributes, data_loc)
        found.append((data_loc, kind, message, hint))
    # A misspelt required key is reported once, as an unknown key with its did-you-mean.
    renamed = {
        (*loc[:-1], _suggestion(hint))
        for loc, kind, _, hint in found
        if kind == "extra_forbidden" and _suggestion(hint)
    }
    problems = []
    for data_loc, kind, message, hint in found:
        if kind in ("missing", "union_tag_not_found") and data_loc in renamed:
            continue
        problems.append(
            SpecProblem(
                shown,
                positions.line(("attributes", *data_loc)),
                dotted(data_loc) or "attributes",
                message,
                hint,
            )
        )
    return problems


def _suggestion(hint: str | None) -> str | None:
    match = re.fullmatch(r"did you mean '(?P<name>[^']*)'\?", hint or "")
    return match["name"] if match else None


def _describe(
    item: Any,
    kind: str,
    ctx: dict[str, Any],
    attributes: Any,
    data_loc: tuple[str | int, ...],
) -> tuple[str, str | None]:
    """A short message and a hint for one pydantic error."""
    last = next((str(p) for p in reversed(data_loc) if isinstance(p, str)), "")
    value = item.get("input")
    check = ctx.get("error")
    if kind == "spec" and isinstance(check, SpecValueError):
        return check.message, check.hint
    if kind == "extra_forbidden":
        name = str(data_loc[-1])
        allowed = _allowed_fields(attributes, data_loc[:-1])
        hint = did_you_mean(name, allowed)
        if hint is None:
            home = _home_of(name)
            here = dotted(_field_path(data_loc[:-1]))
            if home is not None and home != here:
                under = f"'{home}:'" if home else "'attributes:' directly"
                hint = f"'{name}' belongs under {under}"
        if hint is None and allowed:
            hint = f"allowed fields: {', '.join(sorted(allowed))}"
        return f"unknown field '{name}'", hint
    if kind == "missing":
        example = _EXAMPLES.get(".".join(_field_path(data_loc)), f"{last}: <value>")
        parent = data_loc[:-1]
        if not parent:
            where = "under 'attributes:'"
        elif isinstance(parent[-1], int):
            where = f"to {dotted(parent)}"
        else:
            where = f"under '{parent[-1]}:'"
        return f"required field '{last}' is missing", f"add '{example}' {where}"
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        choices = ", ".join(expected)
        return f"{value!r} is not one of: {choices}", did_you_mean(str(value), expected) or (
            f"write one of: {choices}"
        )
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return f"unknown {_union_label(data_loc)} type {ctx.get('tag')!r}", did_you_mean(
            str(ctx.get("tag")), tags
        ) or f"write one of: {', '.join(tags)}"
    if kind == "union_tag_not_found":
        tags = _union_tags(data_loc)
        return "required field 'type' is missing", f"add 'type:' with one of: {', '.join(tags)}"
    if kind == "string_pattern_mismatch":
        label = _LABELS.get(last, "value")
        hint = _FIELD_HINTS.get(last)
        if _PATTERNS.get(str(ctx.get("pattern"))) == "slug" and isinstance(value, str):
            slug = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")
            if re.match(SLUG, slug):
                hint = f"use lower-case letters, digits and '_', e.g. '{slug}'"
        return f"{value!r} is not a valid {label}", hint
    if kind == "string_type":
        if value is None:
            return f"'{last}' has no value", f"write a value after '{last}:'"
        if isinstance(value, dict) and len(value) == 1:
            key, inner = next(iter(value.items()))
            return f"expected text, found the mapping {{{key}: {inner}}}", (
                f"': ' starts a mapping; write '{key}:{inner}' without the space, or quote it"
            )
        return f"expected text, found the {_kind(value)} {value}", _FIELD_HINTS.get(last) or (
            f"quote it: {last}: '{value}'"
        )
    if kind == "list_type":
        if isinstance(value, str):
            return f"expected a list, found {value!r}", _LIST_HINTS.get(
                last, f"write a list: {last}: [{value}]"
            )
        return f"expected a list, found {_describe_value(value)}", (
            f"write a list under '{last}:', one '- item' per line"
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        example = _EXAMPLES.get(".".join(_field_path(data_loc)))
        if isinstance(data_loc[-1], int):
            hint = f"write each item of '{last}' as 'key: value' lines after its '- '"
        elif example:
            hint = f"write e.g. '{example}'"
        else:
            hint = f"indent the fields of '{last}' under '{last}:'"
        return f"expected a mapping, found {_describe_value(value)}", hint
    if kind == "too_short":
        example = _EXAMPLES.get(".".join(_field_path(data_loc)))
        return f"'{last}' must not be empty", (
            f"add an entry, e.g. '{example}'" if example else f"add an entry under '{last}:'"
        )
    if kind == "string_too_short":
        return f"'{last}' must not be empty", f"write a value after '{last}:'"
    if kind == "string_too_long":
        return f"'{last}' is too long ({len(str(value))} characters)", (
            f"use at most {ctx.get('max_length')} characters"
        )
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, found {value!r}", f"write {last}: true or {last}: false"
    return str(item["msg"]).removeprefix("Value error, "), _FIELD_HINTS.get(last)


def _describe_value(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"a {_kind(value)}" if isinstance(value, (dict, list)) else f"{value!r}"


def _union_label(data_loc: tuple[str | int, ...]) -> str:
    return "input port" if data_loc[:1] == ("input_ports",) else "component"


def _union_tags(data_loc: tuple[str | int, ...]) -> list[str]:
    return ["file", "table", "product"] if data_loc[:1] == ("input_ports",) else []


def _field_path(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    return tuple(str(p) for p in loc if isinstance(p, str))


# List fields whose items are a union tagged by their 'type' (pydantic puts the tag in locs).
_TAGGED_LISTS = ("input_ports",)


def _data_loc(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop the union tags pydantic inserts into an error location."""
    out: list[str | int] = []
    node = data
    for position, key in enumerate(loc):
        tagged = position >= 2 and loc[position - 2] in _TAGGED_LISTS
        after_index = position >= 1 and isinstance(loc[position - 1], int)
        if tagged and after_index and isinstance(node, dict) and key == node.get("type"):
            continue
        out.append(key)
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            node = None
    return tuple(out)


def _allowed_fields(data: Any, loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the pydantic model found at ``loc`` in the data."""
    annotation: Any = ProductSpec
    node = data
    for key in loc:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
            continue
        model = _model_in(annotation, node)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(key))
        if field is None:
            return []
        annotation = field.annotation
        node = node.get(key) if isinstance(node, dict) else None
    model = _model_in(annotation, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_in(annotation: Any, node: Any) -> Any:
    """The BaseModel inside an annotation (through list, Optional, Annotated, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0], node)
    if origin in (list, tuple):
        return _model_in(typing.get_args(annotation)[0], node)
    if origin in (Union, types.UnionType):
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [_model_in(a, node) for a in candidates]
        models = [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]
        tag = node.get("type") if isinstance(node, dict) else None
        for m in models:
            type_field = m.model_fields.get("type")
            if type_field is not None and tag in typing.get_args(type_field.annotation):
                return m
        return models[0] if len(models) == 1 else None
    return annotation


@cache
def _homes() -> dict[str, str]:
    """Field name → the dotted field it is written under (unambiguous names only)."""
    homes: dict[str, set[str]] = {}

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            homes.setdefault(name, set()).add(dotted(prefix))
            for inner in _models_of(info.annotation):
                if len(prefix) < 4:
                    walk(inner, (*prefix, name))

    walk(ProductSpec, ())
    return {name: next(iter(where)) for name, where in homes.items() if len(where) == 1}


def _home_of(name: str) -> str | None:
    return _homes().get(name)


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_of(a)]


def find_spec_files(defs_dir: Path) -> list[Path]:
    """Every product ``defs.yaml`` below the defs folder.

    Platform component instances live in folders whose name starts with '_' (``defs/_platform``)
    and are not products; every other ``defs.yaml`` is a product spec.
    """
    try:
        found = sorted(defs_dir.rglob(SPEC_FILE))
    except OSError:
        return []
    return [
        path
        for path in found
        if not any(part.startswith(("_", ".")) for part in path.relative_to(defs_dir).parts)
    ]

"""Reading one product's ``defs.yaml`` into a :class:`ProductSpec`, with source positions.

ruamel.yaml keeps the line and column of every key and item, which lets each pydantic error be
reported at the exact line of the offending field (PyYAML, which Dagster uses, does not expose
positions for plain loads).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted, relative
from ddp_assets.spec.model import ProductSpec

COMPONENT_TYPE = "ddp_assets.components.DataProduct"
SPEC_FILE = "defs.yaml"

_FIELD_HINTS: dict[str, str] = {
    "id": "use lower-case letters, digits and '_', starting with a letter, e.g. 'customer_360'",
    "domain": "use lower-case letters, digits and '_', starting with a letter, e.g. 'sales'",
    "name": "use lower-case letters, digits and '_', starting with a letter",
    "model": "the name of a dbt model (SQL file name without .sql) or a python model",
    "version": "use semantic versioning MAJOR.MINOR.PATCH, e.g. '1.0.0'",
    "owners": "an email address or 'team:<name>', e.g. 'team:sales-analytics'",
    "product": "write the upstream port as '<product>.<port>', e.g. 'customers.customers'",
    "entrypoint": "write 'file.py:function', e.g. 'churn.py:score_customers'",
    "table": "write 'schema.table'",
    "tags": "letters, digits, '_', ':', '.', '-' only, e.g. 'pii' or 'tier:gold'",
}


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
    """Line numbers (1-based) of keys and items in a ruamel document."""

    def __init__(self, document: Any):
        self._document = document

    def line(self, path: tuple[str | int, ...]) -> int | None:
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
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        if line is None and isinstance(self._document, CommentedMap):
            line = self._document.lc.line + 1
        return line


def read_yaml(path: Path) -> Any:
    """Parse YAML keeping positions; duplicate keys are an error, as in dbt."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle)


def load_spec(path: Path, root: Path | None = None) -> LoadedSpec:
    """Load and validate one ``defs.yaml``; raise :class:`SpecErrors` listing every problem."""
    shown = relative(path, root)
    try:
        document = read_yaml(path)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        problem = (error.problem or error.context or "invalid YAML").strip()
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    line,
                    "(yaml)",
                    f"not valid YAML: {problem}",
                    "check the indentation and quoting around this line",
                )
            ]
        ) from None
    except OSError as error:
        raise SpecErrors([SpecProblem(shown, None, "(file)", f"cannot read: {error}")]) from None
    positions = Positions(document)
    if not isinstance(document, CommentedMap):
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    1,
                    "(document)",
                    "expected a mapping with 'type' and 'attributes'",
                    f"start the file with 'type: {COMPONENT_TYPE}'",
                )
            ]
        )
    problems: list[SpecProblem] = []
    for key in document:
        if key not in ("type", "attributes", "requirements", "post_processing"):
            hint = did_you_mean(str(key), ["type", "attributes"])
            problems.append(
                SpecProblem(shown, positions.line((key,)), str(key), "unknown top-level key", hint)
            )
    if document.get("type") != COMPONENT_TYPE:
        problems.append(
            SpecProblem(
                shown,
                positions.line(("type",)),
                "type",
                f"expected 'type: {COMPONENT_TYPE}', found {document.get('type')!r}",
                "every product folder's defs.yaml declares a DataProduct component",
            )
        )
    attributes = document.get("attributes")
    if not isinstance(attributes, dict):
        problems.append(
            SpecProblem(
                shown,
                positions.line(("attributes",)),
                "attributes",
                "missing or not a mapping",
                "put the product spec (id, name, domain, ...) under 'attributes:'",
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


def _plain(node: Any) -> Any:
    """ruamel containers and scalars → plain Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _problems_from(
    error: ValidationError, attributes: Any, positions: Positions, shown: str
) -> list[SpecProblem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        data_loc = _data_loc(attributes, loc)
        field = dotted(data_loc) or "attributes"
        kind = item["type"]
        message = item["msg"]
        hint: str | None = None
        last = next((p for p in reversed(data_loc) if isinstance(p, str)), "")
        if kind == "extra_forbidden":
            allowed = _allowed_fields(attributes, data_loc[:-1])
            message = "unknown field"
            hint = did_you_mean(str(data_loc[-1]), allowed) or (
                f"allowed fields: {', '.join(sorted(allowed))}" if allowed else None
            )
        elif kind == "missing":
            message = "required field is missing"
            hint = f"add '{last}:' here"
        elif kind == "literal_error":
            expected = re.findall(r"'([^']*)'", str(item.get("ctx", {}).get("expected", "")))
            value = item.get("input")
            message = f"{value!r} is not one of: {', '.join(expected)}"
            hint = did_you_mean(str(value), expected)
        elif kind == "union_tag_invalid":
            ctx = item.get("ctx", {})
            message = f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
            hint = did_you_mean(str(ctx.get("tag")), ["file", "table", "product"])
        elif kind == "string_pattern_mismatch":
            message = f"{item.get('input')!r} is not a valid value"
            hint = _FIELD_HINTS.get(last)
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind == "too_short":
            message = "must not be empty"
            hint = f"add at least one entry under '{last}'"
        problems.append(
            SpecProblem(shown, positions.line(("attributes", *data_loc)), field, message, hint)
        )
    return problems


def _data_loc(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop the union tags pydantic inserts into an error location."""
    out: list[str | int] = []
    node = data
    for key in loc:
        if isinstance(node, dict) and key not in node and key == node.get("type"):
            continue
        out.append(key)
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            node = None
    return tuple(out)


def _allowed_fields(data: Any, loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the pydantic model found at ``loc`` in the data."""
    model: Any = ProductSpec
    node = data
    for key in loc:
        node = node[key] if isinstance(node, (dict, list)) else None
        if isinstance(key, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(key))
        if field is None:
            return []
        model = _model_in(field.annotation, node)
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


def find_spec_files(defs_dir: Path) -> list[Path]:
    """Every product ``defs.yaml`` below the defs folder.

    Platform component instances live in folders whose name starts with '_' (``defs/_platform``)
    and are not products; every other ``defs.yaml`` is a product spec.
    """
    return [
        path
        for path in sorted(defs_dir.rglob(SPEC_FILE))
        if not any(part.startswith(("_", ".")) for part in path.relative_to(defs_dir).parts)
    ]

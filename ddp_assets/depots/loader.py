"""Reading ``depots/*.yaml``: every depot with the line of each of its fields.

A depot's name is its file's stem (``depots/crm.yaml`` is the depot ``crm``). Problems are
collected for all files and reported like spec problems (file, line, field, hint); a
pydantic message never quotes the value it rejects, so a literal password is named, never
shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ddp_assets.depots.model import Depot, DepotModel
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted, relative
from ddp_assets.spec.loader import Positions, read_document
from ddp_assets.spec.model import SLUG, SpecValueError

_NAME = re.compile(SLUG)
KINDS = ("postgres", "sql", "rest_api", "filesystem")


@dataclass(frozen=True)
class LoadedDepot:
    """A validated depot, where it was declared, and the line of each of its fields."""

    name: str
    depot: DepotModel
    path: Path
    display_path: str
    positions: Positions = field(repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.depot.kind

    def line_of(self, *path: str | int) -> int | None:
        return self.positions.line(tuple(path))

    def problem(self, field_name: str, message: str, hint: str | None = None) -> SpecProblem:
        """A problem at one of the depot's fields (the line of its closest written parent)."""
        from ddp_assets.depots.secrets import redact

        return SpecProblem(
            self.display_path,
            self.line_of(*field_name.split(".")),
            field_name,
            redact(message),
            redact(hint) if hint else None,
        )


@dataclass
class Depots:
    """Every depot of a project, and the problems found reading them."""

    root: Path
    depots: dict[str, LoadedDepot]
    problems: list[SpecProblem]

    def get(self, name: str) -> LoadedDepot | None:
        return self.depots.get(name)

    def raise_for_errors(self) -> None:
        if self.problems:
            raise SpecErrors(self.problems)


_ADAPTER: TypeAdapter[Any] | None = None


def _depot_adapter() -> TypeAdapter[Any]:
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(Depot)
    return _ADAPTER


def load_depots(paths: ProjectPaths) -> Depots:
    """The project's depots (none when it has no ``depots/`` folder)."""
    folder = paths.depots_dir
    depots: dict[str, LoadedDepot] = {}
    problems: list[SpecProblem] = []
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    for path in files:
        shown = relative(path, paths.root)
        if not _NAME.match(path.stem):
            problems.append(
                SpecProblem(
                    shown,
                    None,
                    "(file)",
                    f"'{path.stem}' is not a depot name",
                    "name the file after the depot: lower case letters, digits and '_', "
                    "e.g. depots/crm.yaml",
                )
            )
            continue
        if path.stem in depots:
            problems.append(
                SpecProblem(shown, None, "(file)", f"depot '{path.stem}' is declared twice", None)
            )
            continue
        try:
            loaded = load_depot(path, shown)
        except SpecErrors as errors:
            problems.extend(errors.problems)
            continue
        depots[path.stem] = loaded
    return Depots(paths.root, depots, problems)


def load_depot(path: Path, shown: str) -> LoadedDepot:
    document = read_document(path, shown)
    positions = Positions(document)
    if not isinstance(document, dict):
        raise SpecErrors(
            [
                SpecProblem(
                    shown,
                    1,
                    "(document)",
                    "a depot file is a mapping with 'kind' and its connection settings",
                    f"start with 'kind: ' one of {', '.join(KINDS)}",
                )
            ]
        )
    data = _plain(document)
    try:
        depot = _depot_adapter().validate_python(data)
    except ValidationError as error:
        raise SpecErrors(_problems(error, data, positions, shown)) from None
    return LoadedDepot(path.stem, depot, path, shown, positions)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _problems(
    error: ValidationError, data: dict[str, Any], positions: Positions, shown: str
) -> list[SpecProblem]:
    from ddp_assets.depots.model import (
        ApiKeyAuth,
        BasicAuth,
        BearerAuth,
        FilesystemDepot,
        PostgresDepot,
        RestApiDepot,
        SqlDepot,
    )

    models = {
        "postgres": PostgresDepot,
        "sql": SqlDepot,
        "rest_api": RestApiDepot,
        "filesystem": FilesystemDepot,
    }
    problems: list[SpecProblem] = []
    kind = data.get("kind")
    for item in error.errors(include_input=False, include_url=False):
        loc = list(item["loc"])
        if loc and loc[0] == kind:  # the union's tag
            loc = loc[1:]
        if len(loc) >= 2 and isinstance(loc[0], str) and loc[0] == "auth":
            auth = data.get("auth")
            if isinstance(auth, dict) and loc[1] == auth.get("type"):
                loc = [loc[0], *loc[2:]]
        path = tuple(loc)
        name = dotted(path) or "(depot)"
        context = item.get("ctx") or {}
        cause = context.get("error")
        hint: str | None = None
        kind_of = item["type"]
        if isinstance(cause, SpecValueError):
            message, hint = cause.message, cause.hint
            path = (*path, *cause.loc)
        elif kind_of == "union_tag_invalid" or kind_of == "union_tag_not_found":
            message = (
                "'kind' is missing"
                if kind_of == "union_tag_not_found"
                else f"'kind: {kind}' is not a kind of depot"
            )
            if "auth" in loc:
                message = "'auth.type' is missing or unknown"
                hint = "one of bearer, api_key, http_basic"
            else:
                name = "kind"
                hint = (did_you_mean(str(kind), KINDS) if kind else None) or (
                    f"one of {', '.join(KINDS)}"
                )
        elif kind_of == "extra_forbidden":
            model: Any = models.get(str(kind))
            if loc[0] == "auth" and isinstance(data.get("auth"), dict):
                auths = {"bearer": BearerAuth, "api_key": ApiKeyAuth, "http_basic": BasicAuth}
                model = auths.get(str(data["auth"].get("type")))
                kind = f"{kind} auth"
            known = list(model.model_fields) if model else []
            known = ["schema" if k == "schema_" else k for k in known]
            message = f"unknown field '{loc[-1]}'"
            hint = did_you_mean(str(loc[-1]), known) or (
                f"fields of a {kind} depot: {', '.join(known)}" if known else None
            )
        elif kind_of == "missing":
            message = f"'{loc[-1]}' is missing"
            hint = f"add '{loc[-1]}:' to the depot"
        else:
            message = str(item["msg"])
        problems.append(SpecProblem(shown, positions.line(path), name, message, hint))
    return problems

"""Reading a team's dbt project: its manifest (dbt's own runner) and its models' column types
(DuckDB's ``DESCRIBE`` of every compiled relation).

The project is compiled in a scratch copy, so nothing is written into the team's folder (no
``target/``, ``dbt_packages/`` or lock file), with a dbt-duckdb profile of ddp's own over a
scratch warehouse. The types are the warehouse's, not guesses: seeds are loaded as ddp loads
landing files (the same DuckDB reader), every model becomes an empty table of its compiled
SQL's result in dependency order (``limit 0``: a view over views would be bound again by each
consumer, quadratic in a chain), and ``DESCRIBE`` gives each one's columns (``sum()`` of
integers is a ``HUGEINT``, as the build will make it).
"""

from __future__ import annotations

import gc
import graphlib
import json
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.warehouse.duckdb import file_reader

_SKIPPED = {"target", "dbt_packages", "logs", ".git", ".venv", "__pycache__"}
_SCRATCH_DB = "onboard"
_NODE_FILE = re.compile(r"\(([\w./-]+\.(?:sql|yml|yaml|csv))\)")  # dbt names a node's file so


@dataclass
class DbtSource:
    """A compiled dbt project: its folder, its manifest and the column types of its models."""

    root: Path
    """The team's project folder (read only)."""
    copy: Path
    """The scratch copy that was compiled."""
    config: dict[str, Any]
    manifest: dict[str, Any]
    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """unique_id → [(column, DuckDB type)] of every model and seed DuckDB could describe."""
    type_errors: dict[str, str] = field(default_factory=dict)
    """unique_id → why its relation could not be described."""

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.root.name))

    def nodes(self, resource_type: str) -> list[dict[str, Any]]:
        return [
            n
            for n in self.manifest.get("nodes", {}).values()
            if n.get("resource_type") == resource_type and n.get("package_name") == self.name
        ]

    def external_path(self, source: dict[str, Any]) -> Path | None:
        """The file behind a source table (dbt-duckdb's ``external_location``), if local."""
        location = (source.get("config") or {}).get("external_location") or (
            source.get("meta") or {}
        ).get("external_location")
        if not isinstance(location, str) or "(" in location:
            return None
        location = location.format(name=source.get("name"), identifier=source.get("identifier"))
        path = Path(location)
        path = path if path.is_absolute() else self.root / path
        return path if path.is_file() else None


def _problem(message: str, hint: str, file: str = "(command line)") -> SpecErrors:
    return SpecErrors([SpecProblem(file, None, "dbt project", message, hint)])


def _read_config(root: Path) -> dict[str, Any]:
    project_file = root / "dbt_project.yml"
    if not project_file.is_file():
        raise _problem(
            f"{root} is not a dbt project (no dbt_project.yml)",
            "give the folder that holds dbt_project.yml, e.g. `ddp import dbt ../analytics`",
        )
    try:
        config = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SpecErrors(
            [
                SpecProblem(
                    str(project_file),
                    mark.line + 1 if mark else None,
                    "dbt_project.yml",
                    f"not valid YAML: {getattr(error, 'problem', error)}",
                    "fix the YAML; `dbt parse` must accept the project",
                )
            ]
        ) from None
    if not isinstance(config, dict):
        raise _problem(f"{project_file} is not a mapping", "fix dbt_project.yml", str(project_file))
    return config


def _copy_project(root: Path, copy: Path) -> None:
    shutil.copytree(root, copy, ignore=lambda _d, names: [n for n in names if n in _SKIPPED])
    for name in ("packages.yml", "dependencies.yml"):
        packages_file = copy / name
        if not packages_file.is_file():
            continue
        document = yaml.safe_load(packages_file.read_text(encoding="utf-8")) or {}
        for package in document.get("packages") or []:
            if isinstance(package, dict) and isinstance(package.get("local"), str):
                local = Path(package["local"])
                if not local.is_absolute():  # a package beside the project stays where it is
                    package["local"] = str((root / local).resolve())
        packages_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _run_dbt(args: list[str], copy: Path, project_file: Path) -> None:
    """Run dbt in this process (dbt's documented ``dbtRunner``); errors become problems."""
    from dbt.cli.main import dbtRunner

    errors: list[str] = []

    def collect(event: Any) -> None:
        if event.info.level == "error" and event.info.msg:
            errors.append(str(event.info.msg))

    common = [
        "--project-dir",
        str(copy),
        "--profiles-dir",
        str(copy),
        "--log-path",
        str(copy / "logs"),
        "--log-level",
        "none",
        "--log-level-file",
        "none",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
    ]
    verb, *rest = args
    result = dbtRunner(callbacks=[collect]).invoke([verb, *common, *rest])
    success, failure = result.success, str(result.exception or f"dbt {verb} failed")
    # dbt's thread pool is finalized now, while the interpreter is whole (left to the exit, its
    # __del__ printed a traceback), and its workers are done writing into the scratch copy. A
    # failed run leaves the pool running, held by the frames of the exception's traceback.
    _release_frames(result.exception)
    del result
    gc.collect()
    if success:
        return
    message = "\n    ".join(errors) or failure
    message = message.replace(str(copy) + "/", "")
    located = _NODE_FILE.search(message)
    file = project_file.parent / located[1] if located else project_file
    raise SpecErrors(
        [
            SpecProblem(
                str(file),
                None,
                f"(dbt {verb})",
                message,
                "fix the dbt project so that `dbt parse` accepts it, then import again",
            )
        ]
    )


def _release_frames(error: BaseException | None) -> None:
    """Drop the frames an exception (and its chain) holds, so what they reference can go."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if error.__traceback__ is not None:
            traceback.clear_frames(error.__traceback__)
            error.__traceback__ = None
        error = error.__cause__ or error.__context__


@contextmanager
def read_dbt_project(root: Path) -> Iterator[DbtSource]:
    """The compiled project (in a scratch copy, removed on exit), with its models' types."""
    root = root.resolve()
    config = _read_config(root)
    profile = config.get("profile") or "default"
    with tempfile.TemporaryDirectory(prefix="ddp-import-", ignore_cleanup_errors=True) as scratch:
        copy = Path(scratch) / "project"
        _copy_project(root, copy)
        warehouse = Path(scratch) / f"{_SCRATCH_DB}.duckdb"
        profiles = {
            profile: {
                "target": "ddp_import",
                "outputs": {"ddp_import": {"type": "duckdb", "path": str(warehouse), "threads": 4}},
            }
        }
        (copy / "profiles.yml").write_text(yaml.safe_dump(profiles), encoding="utf-8")
        project_file = root / "dbt_project.yml"
        if (copy / "packages.yml").is_file() or (copy / "dependencies.yml").is_file():
            _run_dbt(["deps"], copy, project_file)
        # the models only: their tests' SQL is not read, and compiling it tripled the time.
        # `--indirect-selection empty`: dbt's default (eager) adds back every test of a
        # selected model (3000 tests of a 1000-model project: 21 of its 35 s of compile CPU)
        _run_dbt(
            [
                "compile",
                "--target-path",
                str(copy / "target"),
                "--select",
                "resource_type:model",
                "--indirect-selection",
                "empty",
            ],
            copy,
            project_file,
        )
        manifest = json.loads((copy / "target" / "manifest.json").read_text(encoding="utf-8"))
        source = DbtSource(root, copy, config, manifest)
        _describe(source, warehouse)
        yield source


def _describe(source: DbtSource, warehouse: Path) -> None:
    connection = duckdb.connect(str(warehouse))
    try:
        connection.execute(f"set file_search_path = '{source.root}'")
        for seed in source.nodes("seed"):
            path = source.root / seed["original_file_path"]
            _create(connection, seed, f"select * from {file_reader([path], 'csv')}", source)
        models = {n["unique_id"]: n for n in source.nodes("model")}
        order = graphlib.TopologicalSorter(
            {
                uid: [d for d in n.get("depends_on", {}).get("nodes", []) if d in models]
                for uid, n in models.items()
            }
        )
        try:
            ordered = list(order.static_order())
        except graphlib.CycleError:
            ordered = sorted(models)
        for uid in ordered:
            node = models[uid]
            if node.get("config", {}).get("materialized") == "ephemeral":
                continue
            code = node.get("compiled_code")
            if not code:
                source.type_errors[uid] = "dbt did not compile it"
                continue
            _create(connection, node, code, source, empty=True)
    finally:
        connection.close()


def _create(
    connection: duckdb.DuckDBPyConnection,
    node: dict[str, Any],
    sql: str,
    source: DbtSource,
    *,
    empty: bool = False,
) -> None:
    relation = node.get("relation_name")
    uid = node["unique_id"]
    if not relation:
        source.type_errors[uid] = "it has no relation"
        return
    database, schema = node.get("database"), node.get("schema")
    try:
        connection.execute(f'create schema if not exists "{database}"."{schema}"')
        if empty:  # its types without its rows: no view chain bound again by every consumer
            sql = f"select * from (\n{sql.strip().rstrip(';')}\n) limit 0"
        connection.execute(f"create or replace table {relation} as {sql}")
        rows = connection.execute(f"describe {relation}").fetchall()
    except duckdb.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        source.type_errors[uid] = first
        return
    source.columns[uid] = [(str(r[0]), str(r[1])) for r in rows]

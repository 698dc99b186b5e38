"""The one dbt project behind every product: preparing its manifest and running dbt.

The manifest is prepared once (``ddp prepare``, any ddp command, or ``dagster dev``) and reused:
loading the code location in production never parses dbt. A fingerprint of every input file
decides whether a re-parse is needed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

from ddp_assets.dbt.properties import write_properties
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.spec.registry import Registry

FINGERPRINT_FILE = "ddp_fingerprint.txt"
KEEP_RUN_ARTIFACTS = 20
_DBT_INPUTS = ("*.sql", "*.yml", "*.yaml", "*.csv", "*.md")


def dbt_executable() -> str:
    """The dbt next to this interpreter, so an unactivated virtualenv still finds it."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_project(paths: ProjectPaths) -> DbtProject:
    target = os.environ.get("DDP_DBT_TARGET", "dev")
    return DbtProject(
        project_dir=paths.dbt_dir,
        profiles_dir=paths.dbt_dir,
        target=target,
        target_path=Path("target") / target,
    )


class ProductsDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, minus two fixed costs per run that ddp does not need.

    - ``dbt --version`` in a subprocess (about a second): the version is the installed
      dbt-core's, read from package metadata.
    - Registering a dbt adapter inside the Dagster process (about a second): it only serves
      the optional row-count and column-metadata queries, which ddp does not use.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


def run_target_path(project: DbtProject, run_id: str) -> Path:
    """A fresh target folder for one dbt invocation, seeded with the prepared partial parse.

    dagster-dbt gives every invocation its own target folder (so artifacts never mix); without
    dbt's ``partial_parse.msgpack`` there, dbt would re-parse the whole project on every run.
    """
    base = project.project_dir / project.target_path
    runs = base / "runs"
    if runs.is_dir():  # keep the artifacts of the latest runs only
        old = sorted(runs.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEEP_RUN_ARTIFACTS]
        for stale in old:
            shutil.rmtree(stale, ignore_errors=True)
    path = runs / f"{run_id[:8]}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True, exist_ok=True)
    prepared = base / "partial_parse.msgpack"
    if prepared.exists():
        shutil.copyfile(prepared, path / "partial_parse.msgpack")
    return path


def dbt_resource(paths: ProjectPaths) -> DbtCliResource:
    project = dbt_project(paths)
    return ProductsDbtCliResource(
        project_dir=str(project.project_dir),
        profiles_dir=str(paths.dbt_dir),
        target=project.target,
        dbt_executable=dbt_executable(),
    )


def dbt_env(paths: ProjectPaths) -> dict[str, str]:
    """Environment for dbt subprocesses: where the warehouse is."""
    return {**os.environ, "DDP_DATA_DIR": str(paths.data_dir)}


def _fingerprint(paths: ProjectPaths, files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(os.environ.get("DDP_DBT_TARGET", "dev").encode())
    for path in sorted(files):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _inputs(paths: ProjectPaths) -> list[Path]:
    found: list[Path] = [paths.dbt_dir / "dbt_project.yml", paths.dbt_dir / "profiles.yml"]
    for folder in (paths.dbt_dir / "models", paths.dbt_dir / "macros", paths.defs_dir):
        for pattern in _DBT_INPUTS:
            found.extend(folder.rglob(pattern))
    return found


@dataclass(frozen=True)
class PreparedProject:
    project: DbtProject
    manifest: dict[str, Any]
    parsed: bool  # True when this call ran dbt parse


def prepare(
    paths: ProjectPaths, registry: Registry | None = None, *, force: bool = False
) -> PreparedProject:
    """Write the generated properties and parse dbt when anything changed since last time.

    Raises :class:`SpecErrors` when the specs or dbt's own parse find problems.
    """
    if registry is None:
        registry = Registry.load(paths.defs_dir, paths.root)
    registry.raise_for_errors()
    write_properties(registry, paths.dbt_dir)
    project = dbt_project(paths)
    manifest_path = project.manifest_path
    stamp_path = manifest_path.parent / FINGERPRINT_FILE
    fingerprint = _fingerprint(paths, _inputs(paths))
    fresh = (
        manifest_path.exists()
        and stamp_path.exists()
        and stamp_path.read_text(encoding="utf-8") == fingerprint
    )
    if not fresh or force:
        _parse(paths, project)
        stamp_path.write_text(fingerprint, encoding="utf-8")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return PreparedProject(project=project, manifest=manifest, parsed=not fresh or force)


def _parse(paths: ProjectPaths, project: DbtProject) -> None:
    command = [
        dbt_executable(),
        "parse",
        "--project-dir",
        str(paths.dbt_dir),
        "--profiles-dir",
        str(paths.dbt_dir),
        "--target",
        project.target or "dev",
        "--target-path",
        str(project.target_path),
        "--no-use-colors",
        "--log-format",
        "text",
    ]
    result = subprocess.run(
        command,
        cwd=paths.dbt_dir,
        env=dbt_env(paths),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SpecErrors(_dbt_problems(result.stdout + result.stderr, paths))


_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d\s+")


def _dbt_problems(output: str, paths: ProjectPaths) -> list[SpecProblem]:
    """dbt's parse errors as problems; the first error line and its context, no traceback."""
    lines = [_TIMESTAMP.sub("", line).rstrip() for line in output.splitlines()]
    start = next(
        (i for i, line in enumerate(lines) if "Error" in line or "error" in line),
        max(0, len(lines) - 8),
    )
    message = "\n    ".join(line for line in lines[start : start + 12] if line.strip())
    file_match = re.search(r"(\S+\.(?:sql|yml|yaml))", message)
    return [
        SpecProblem(
            file_match[1] if file_match else str(paths.dbt_dir / "dbt_project.yml"),
            None,
            "(dbt parse)",
            message or "dbt parse failed",
            "fix the dbt model or properties named above; run `ddp validate` for spec problems",
        )
    ]

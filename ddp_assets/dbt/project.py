"""The one dbt project behind every product: preparing its manifest and running dbt.

The manifest is prepared once (``ddp prepare``, any ddp command, or ``dagster dev``) and reused:
loading the code location in production never parses dbt. A fingerprint of every input file
decides whether a re-parse is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, DbtProject

from ddp_assets import compat
from ddp_assets.dbt.in_process import InProcessDbt, in_process_enabled, manifest_key
from ddp_assets.dbt.packages import install_packages, package_inputs
from ddp_assets.dbt.properties import write_properties
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative
from ddp_assets.spec.registry import Registry

FINGERPRINT_FILE = "ddp_fingerprint.txt"
STATE_FILE = "ddp_prepared.json"  # what the last prepare saw, and agreement checks that passed
KEEP_RUN_ARTIFACTS = 20
_DBT_INPUTS = (".sql", ".yml", ".yaml", ".csv", ".md")


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
    """dagster-dbt's resource, with dbt run in the step's process (:mod:`ddp_assets.dbt.in_process`)
    instead of a dbt process per invocation (start, imports, parse: about 2.7 s each; the dbt
    version is read from package metadata, no ``dbt --version`` subprocess, and no adapter is
    registered in the Dagster process). Outside the dbt and dagster-dbt versions this was tested
    with (:func:`ddp_assets.compat.in_process_dbt_supported`), or with ``DDP_DBT_SUBPROCESS=1``,
    it is dagster-dbt's stock resource.
    """

    # The project root. dbt gets DDP_DATA_DIR exactly as `ddp prepare` gives it (dbt_env), read
    # when dbt runs: dbt keys its partial parse on the profile, which holds the warehouse path
    # ("../data" from an unset variable is another profile than the absolute path, and costs a
    # full parse).
    project_root: str = ""

    def cli(
        self,
        args: Sequence[str],
        *,
        raise_on_error: bool = True,
        manifest: Any = None,
        dagster_dbt_translator: DagsterDbtTranslator | None = None,
        context: dg.OpExecutionContext | dg.AssetExecutionContext | None = None,
        target_path: Path | None = None,
    ) -> DbtCliInvocation:
        """``DbtCliResource.cli``, with dbt run in this process (:mod:`ddp_assets.dbt.in_process`).

        The arguments, environment and selection are dagster-dbt's own (the same helpers
        ``DbtCliResource.cli`` uses); only the process that runs them differs.
        """
        if self.project_root:  # ddp creates the warehouse file, in its storage version
            from ddp_assets.warehouse import DuckDBWarehouse, warehouse_for

            warehouse = warehouse_for(ProjectPaths(Path(self.project_root)))
            if isinstance(warehouse, DuckDBWarehouse):
                warehouse.create()
        if not in_process_enabled():
            return super().cli(
                args,
                raise_on_error=raise_on_error,
                manifest=manifest,
                dagster_dbt_translator=dagster_dbt_translator,
                context=context,
                target_path=target_path,
            )
        plan = compat.plan_dbt_invocation(
            args, context=context, manifest=manifest, dagster_dbt_translator=dagster_dbt_translator
        )
        project_dir = Path(plan.project.project_dir if plan.project else self.project_dir)
        target_path = target_path or Path("target") / "runs" / uuid.uuid4().hex[:12]
        if not target_path.is_absolute():
            target_path = project_dir / target_path
        env = {
            **os.environ,
            "DAGSTER_DBT_CLI": "true",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_LOG_FORMAT": "json",
            "DBT_TARGET_PATH": os.fspath(target_path),
            "DBT_LOG_PATH": os.fspath(target_path),
            "DBT_PROFILES_DIR": self.profiles_dir or os.fspath(project_dir),
            "DBT_PROJECT_DIR": os.fspath(project_dir),
            # dbt.log at info, not debug (dbt's default): the debug log of a demo run is about
            # 400 KB of per-query lines written from the Dagster process, ~0.5 s of CPU per run;
            # errors and node results are logged at info. DBT_LOG_LEVEL_FILE=debug brings it back.
            "DBT_LOG_LEVEL_FILE": os.environ.get("DBT_LOG_LEVEL_FILE", "info"),
        }
        if self.project_root:
            env["DDP_DATA_DIR"] = str(ProjectPaths(Path(self.project_root)).data_dir)
        env.update(plan.env)  # dbt's indirect selection, when the selected checks need one
        profile_args = [*(["--profile", self.profile] if self.profile else [])]
        profile_args += ["--target", self.target] if self.target else []
        full_args = [
            self.dbt_executable,
            *self.global_config_flags,
            *plan.args,
            *profile_args,
            *plan.selection_args,
        ]
        prepared_target = Path("target") / (self.target or "dev")  # see dbt_project()
        process = InProcessDbt(
            full_args,
            env,
            manifest_key(project_dir, prepared_target, env),
            keep_parse=partial_parse_slot(project_dir / prepared_target, env.get("DDP_DATA_DIR")),
        )
        return DbtCliInvocation(
            process=process,  # type: ignore[arg-type]  # the part of Popen dagster-dbt uses
            manifest=plan.manifest,
            dagster_dbt_translator=plan.translator,
            project_dir=project_dir,
            target_path=target_path,
            raise_on_error=raise_on_error,
            context=context,
            adapter=None,
            cli_version=compat.installed_dbt_version(),
            project=plan.project,
        )


def partial_parse_slot(prepared_target: Path, data_dir: str | None) -> Path:
    """Where dbt's partial-parse state for one warehouse folder is kept between runs.

    dbt rejects a partial-parse file written under another profile, and the profile holds the
    warehouse path, so a run on another ``DDP_DATA_DIR`` than ``ddp prepare`` saw (tests, CI, a
    second data folder) parsed the whole project again, every invocation. Each data folder gets
    the state its own runs left, seeded from the prepared one.
    """
    key = hashlib.sha256((data_dir or "").encode()).hexdigest()[:16]
    return prepared_target / "partial_parse" / f"{key}.msgpack"


def run_target_path(project: DbtProject, run_id: str, data_dir: Path | None = None) -> Path:
    """A fresh target folder for one dbt invocation, seeded with the prepared partial parse.

    dagster-dbt gives every invocation its own target folder (so artifacts never mix); without
    dbt's ``partial_parse.msgpack`` there, dbt would re-parse the whole project on every run.
    The seed is the state a run on the same ``data_dir`` left when it is newer than the
    prepared one (:func:`partial_parse_slot`), else the prepared one.
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
    seed = prepared
    if data_dir is not None:
        slot = partial_parse_slot(base, str(data_dir))
        with contextlib.suppress(OSError):
            if not prepared.exists() or slot.stat().st_mtime_ns >= prepared.stat().st_mtime_ns:
                seed = slot
    if seed.exists():
        shutil.copyfile(seed, path / "partial_parse.msgpack")
    return path


def dbt_resource(paths: ProjectPaths) -> DbtCliResource:
    project = dbt_project(paths)
    return ProductsDbtCliResource(
        project_dir=str(project.project_dir),
        profiles_dir=str(paths.dbt_dir),
        target=project.target,
        dbt_executable=dbt_executable(),
        project_root=str(paths.root),
    )


def dbt_env(paths: ProjectPaths) -> dict[str, str]:
    """Environment for dbt subprocesses: where the warehouse is."""
    return {**os.environ, "DDP_DATA_DIR": str(paths.data_dir)}


def _fingerprint(paths: ProjectPaths, files: Iterable[str]) -> str:
    digest = hashlib.sha256()
    digest.update(os.environ.get("DDP_DBT_TARGET", "dev").encode())
    for path in sorted(files):
        try:
            stat = os.stat(path)
        except OSError:
            continue
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _walk(folder: Path, suffixes: tuple[str, ...], skip: Path | None = None) -> Iterator[str]:
    """Files under ``folder`` ending in one of ``suffixes``, as strings (one ``os.walk``)."""
    for parent, dirs, files in os.walk(folder):
        if skip is not None and Path(parent) == skip:
            dirs.clear()
            continue
        for name in files:
            if name.endswith(suffixes):
                yield os.path.join(parent, name)


def _inputs(paths: ProjectPaths) -> list[str]:
    found = [str(paths.dbt_dir / "dbt_project.yml"), str(paths.dbt_dir / "profiles.yml")]
    # the defs folder's SQL holds the products' macros/ (and macros/ their copies for dbt)
    for folder in (paths.dbt_dir / "models", paths.dbt_dir / "macros", paths.defs_dir):
        found.extend(_walk(folder, _DBT_INPUTS))
    found.extend(package_inputs(paths))  # packages.yml, what dbt deps installed
    return found


def code_fingerprint(paths: ProjectPaths) -> str:
    """ddp's own code, which turns specs and contracts into the generated dbt properties, and
    the platform's dbt macros it writes into the project (:func:`write_platform_macros`)."""
    package = Path(__file__).resolve().parent.parent
    return _fingerprint(paths, _walk(package, (".py", ".sql"), skip=paths.defs_dir.resolve()))


PLATFORM_MACROS = Path(__file__).resolve().parent / "macros"
GENERATED_MACROS = Path("macros") / "_ddp"


def _copy_if_changed(source: Path, target: Path) -> bool:
    """Write ``source``'s text to ``target`` unless it holds it already (an unchanged file keeps
    its mtime, so dbt's partial parse and prepare's fingerprint see nothing new)."""
    text = source.read_text(encoding="utf-8")
    try:
        if target.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return True


def write_platform_macros(dbt_dir: Path) -> list[Path]:
    """Copy the platform's dbt macros (the ``ref`` override of write-audit-publish, the schema
    naming, the uniqueness test) into ``<dbt_dir>/macros/_ddp`` and return the files written.

    They ship in ddp's distribution and are generated into the project like its properties
    (git-ignored), so a team's repository holds no platform code and upgrading ddp upgrades
    them. A file is only rewritten when its text changed (dbt's partial parse and the
    fingerprint key on modification times); files ddp no longer ships are removed.
    """
    out_dir = dbt_dir / GENERATED_MACROS
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    shipped = {source.name: source for source in PLATFORM_MACROS.glob("*.sql")}
    for name, source in shipped.items():
        if _copy_if_changed(source, out_dir / name):
            written.append(out_dir / name)
    for stale in out_dir.glob("*.sql"):
        if stale.name not in shipped:
            stale.unlink()
    return written


PRODUCT_MACRO_FOLDER = "macros"  # <product folder>/macros/**/*.sql: the product's dbt macros
PRODUCT_MACROS = GENERATED_MACROS / "products"


def product_macro_files(paths: ProjectPaths, registry: Registry) -> dict[Path, Path]:
    """Each product's macro files (``<product folder>/macros/**/*.sql``) → where dbt reads
    them: their copy under ``<dbt_dir>/macros/_ddp/products/``, at their path in the defs
    folder (:func:`write_product_macros`)."""
    defs = paths.defs_dir.resolve()
    found: dict[Path, Path] = {}
    for product in sorted(registry.products.values(), key=lambda p: str(p.folder)):
        folder = product.folder / PRODUCT_MACRO_FOLDER
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*.sql")):
            if not file.is_file():
                continue
            try:
                inside = file.resolve().relative_to(defs)
            except ValueError:  # a product folder outside the defs folder: by its own path
                inside = Path(product.id) / file.relative_to(product.folder)
            found[file] = paths.dbt_dir / PRODUCT_MACROS / inside
    return found


def original_of(copy: Path, paths: ProjectPaths) -> Path:
    """The product macro file a copy under ``macros/_ddp/products/`` was made from (dbt's
    messages name the copy); any other path as it is."""
    products = (paths.dbt_dir / PRODUCT_MACROS).resolve()
    try:
        return paths.defs_dir.resolve() / copy.resolve().relative_to(products)
    except ValueError:
        return copy


def write_product_macros(paths: ProjectPaths, registry: Registry) -> list[Path]:
    """Copy each product's ``macros/`` files into ``<dbt_dir>/macros/_ddp/products/`` (the
    project's ``macro-paths`` holds ``macros``) and return the copies written.

    dbt cannot read them in place: the product folder is under the project's ``model-paths``,
    so dbt would parse each macro file as a model too, and ``.dbtignore`` (which keeps them out
    of the models) applies to every kind of file. Like the platform's macros, a copy is only
    rewritten when its text changed, and copies of files that are gone are removed.
    """
    files = product_macro_files(paths, registry)
    out_dir = paths.dbt_dir / PRODUCT_MACROS
    written: list[Path] = []
    for source, target in files.items():
        if _copy_if_changed(source, target):
            written.append(target)
    if out_dir.is_dir():
        kept = {target.resolve() for target in files.values()}
        for stale in sorted(out_dir.rglob("*"), reverse=True):  # files before their folders
            if stale.is_file() and stale.resolve() not in kept:
                stale.unlink()
            elif stale.is_dir() and not any(stale.iterdir()):
                stale.rmdir()
    return written


def _model_paths(paths: ProjectPaths) -> list[str]:
    try:
        config = yaml.safe_load((paths.dbt_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    values = config.get("model-paths") if isinstance(config, dict) else None
    return [str(v) for v in values] if isinstance(values, list) else ["models"]


def product_macro_problems(paths: ProjectPaths, registry: Registry) -> list[SpecProblem]:
    """What would make dbt misread the products' macros, before dbt parses them.

    - a product macro file that ``.dbtignore`` does not keep out of the models: under the
      ``model-paths`` dbt would also parse it as a model (named after the file);
    - a macro file dbt's Jinja cannot parse, named (dbt's own error names no file);
    - a macro name defined twice (two products, a product and ``dbt_project/macros``, or a
      platform macro): dbt's macro namespace is one for the whole project, and its own error
      would name ddp's copies (:func:`ddp_assets.dbt.macro_check.macro_file_problems`).
    """
    files = product_macro_files(paths, registry)
    if not files:
        return []
    import pathspec

    from ddp_assets.dbt.macro_check import macro_file_problems

    ignore_file = paths.dbt_dir / ".dbtignore"
    try:
        lines = ignore_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    ignored = pathspec.PathSpec.from_lines("gitwildmatch", lines)  # as dbt reads it
    problems: list[SpecProblem] = []
    dbt_dir = paths.dbt_dir.resolve()
    folders = [p.folder.resolve() for p in registry.products.values()]
    for model_path in _model_paths(paths):
        base = (dbt_dir / model_path).resolve()
        for source in files:
            try:
                inside = source.resolve().relative_to(base)
            except ValueError:
                continue
            if ignored.match_file(os.path.join(model_path, inside.as_posix())):
                continue
            product = next((f for f in folders if f in source.resolve().parents), base)
            depth = len(product.relative_to(base).parts)  # domain/product: */*
            line = "/".join([model_path.rstrip("/"), *("*" * depth), PRODUCT_MACRO_FOLDER, ""])
            problems.append(
                SpecProblem(
                    relative(ignore_file, paths.root),
                    None,
                    "(dbt macros)",
                    f"{relative(source, paths.root)} is a product macro, but dbt would also "
                    f"parse it as a model: '{model_path}' is one of the model-paths and "
                    ".dbtignore does not leave the products' macros/ folders out",
                    f"add the line `{line}` to dbt_project/.dbtignore "
                    "(ddp gives dbt a copy of each macro file under macros/_ddp/products/)",
                )
            )
            break  # one problem is enough: the same line fixes every file
        if problems:
            break
    problems.extend(macro_file_problems(paths, files))
    return problems


@dataclass(frozen=True)
class PreparedProject:
    project: DbtProject
    manifest: dict[str, Any]
    parsed: bool  # True when this call ran dbt parse
    fingerprint: str = ""  # of dbt's inputs, generated properties included

    @property
    def state_path(self) -> Path:
        return self.project.manifest_path.parent / STATE_FILE

    def agreement_known_clean(self) -> bool:
        """Whether :func:`~ddp_assets.dbt.agreement.agreement_errors` found no error on these
        exact inputs before."""
        state = _read_state(self.state_path)
        return state.get("inputs") == self.fingerprint and state.get("agreement_clean") is True

    def remember_agreement_clean(self) -> None:
        state = _read_state(self.state_path)
        if state.get("inputs") != self.fingerprint:
            return
        state["agreement_clean"] = True
        _write_state(self.state_path, state)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """Best effort: without the file the next load only does the work again."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        temporary.write_text(json.dumps(state), encoding="utf-8")
        temporary.replace(path)  # atomic: a concurrent load reads the old or the new state
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def prepare(
    paths: ProjectPaths, registry: Registry | None = None, *, force: bool = False
) -> PreparedProject:
    """Write the generated properties and parse dbt when anything changed since last time.

    When neither dbt's inputs (SQL, YAML, specs, contracts, the generated properties) nor
    ddp's own code changed since the last call, the properties cannot change either: they are
    not rendered again (at 200 products that was 15 % of a code location load).

    Raises :class:`SpecErrors` when the specs or dbt's own parse find problems.
    """
    if registry is None:
        registry = Registry.load(paths.defs_dir, paths.root)
    registry.raise_for_errors()
    project = dbt_project(paths)
    manifest_path = project.manifest_path
    stamp_path = manifest_path.parent / FINGERPRINT_FILE
    state_path = manifest_path.parent / STATE_FILE
    generator = code_fingerprint(paths)
    if not force and manifest_path.exists() and stamp_path.exists():
        fingerprint = _fingerprint(paths, _inputs(paths))
        state = _read_state(state_path)
        if (
            state.get("inputs") == fingerprint
            and state.get("generator") == generator
            and stamp_path.read_text(encoding="utf-8") == fingerprint
        ):
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            return PreparedProject(project, manifest, parsed=False, fingerprint=fingerprint)
    macro_problems = product_macro_problems(paths, registry)
    if macro_problems:
        raise SpecErrors(macro_problems)
    write_platform_macros(paths.dbt_dir)
    write_product_macros(paths, registry)
    write_properties(registry, paths.dbt_dir)
    install_packages(paths)  # dbt deps, when packages.yml is not what dbt_packages/ holds
    fingerprint = _fingerprint(paths, _inputs(paths))
    fresh = (
        manifest_path.exists()
        and stamp_path.exists()
        and stamp_path.read_text(encoding="utf-8") == fingerprint
    )
    if not fresh or force:
        _parse(paths, project)
        stamp_path.write_text(fingerprint, encoding="utf-8")
    _write_state(state_path, {"inputs": fingerprint, "generator": generator})
    from ddp_assets.dbt.load_cache import store  # it builds on this module

    store(paths, registry)  # the specs and contract plans just read, for the next loads
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return PreparedProject(
        project=project, manifest=manifest, parsed=not fresh or force, fingerprint=fingerprint
    )


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
    file_match = re.search(r"\(?([^\s()]+\.(?:sql|yml|yaml))", message)
    line_match = re.search(r"^\s*line (\d+)\s*$", message, re.MULTILINE)  # dbt's Jinja errors
    file = original_of(paths.dbt_dir / (file_match[1] if file_match else "dbt_project.yml"), paths)
    return [
        SpecProblem(
            relative(file.resolve(), paths.root),  # the product's file, as validate names it
            int(line_match[1]) if line_match and file_match else None,
            "(dbt parse)",
            message or "dbt parse failed",
            "fix the dbt model or properties named above; run `ddp validate` for spec problems",
        )
    ]

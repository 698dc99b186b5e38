"""``ddp ci``: validate every product, diff the contracts changed since a base git ref, name the
changed products, their downstream and the readers a breaking change affects (docs/ci.md)."""

from __future__ import annotations

import io
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ddp_assets.cli.console import echo, fail, print_json, say, say_err
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecProblem, relative
from ddp_assets.spec.registry import Registry


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    junit = "junit"
    json = "json"


def _check(
    paths: ProjectPaths, registry: Registry, dbt: bool
) -> tuple[list[SpecProblem], dict[str, Any] | None]:
    """What ``ddp validate`` checks, less its own breaking-change check (``ddp ci`` diffs the
    contracts once, against its own base), and dbt's prepared manifest (None without dbt or
    when the specs have errors)."""
    from ddp_assets.cli.products import check_project

    return check_project(paths, registry, dbt, contract_base="")


def _write(path: Path, content: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}", "name a writable file")


def ci(
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Git ref to compare with. Default: the merge base of HEAD with the default "
            "branch ($GITHUB_BASE_REF, origin/HEAD, main...); HEAD~ on that branch itself.",
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option("--format", help="text, markdown (a pull-request comment), junit or json."),
    ] = Format.text,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to FILE (a summary line on stdout)."),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also write the JUnit XML report to FILE."),
    ] = None,
    allow_major: Annotated[
        bool,
        typer.Option(
            "--allow-major",
            help="A breaking change whose contract has a new major version is reported, "
            "but does not fail.",
        ),
    ] = False,
    dbt: Annotated[
        bool, typer.Option("--dbt/--no-dbt", help="Also parse dbt and check it agrees.")
    ] = True,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="NAME",
            help="Preview: build the changed products and their downstream in environment "
            "NAME (created from prod when missing); the others are read from prod, zero copies.",
        ),
    ] = None,
    build: Annotated[
        bool,
        typer.Option(
            "--build",
            help="Preview in the environment of `ddp --env NAME` (or $DDP_ENV); implied by --env.",
        ),
    ] = False,
) -> None:
    """Validate every product and check every change against a base git ref: contract diffs
    with the breaking changes and the downstream products they affect, the changed products
    and their downstream. Exit 1 on any error or breaking change.

    Builds nothing unless asked: with --env NAME (or --build), the changed products and
    their downstream are built in environment NAME, never in prod (docs/ci.md).
    """
    from ddp_assets.ci.changes import changed_files, product_changes, resolve_base
    from ddp_assets.ci.impact import port_impacts
    from ddp_assets.ci.report import CiReport
    from ddp_assets.contracts.diff import project_changes

    started = time.perf_counter()
    preview_env = _preview_env(env, build)
    paths = ProjectPaths.discover()
    chosen = resolve_base(paths.root, base)  # a bad ref fails before any work
    registry = Registry.load(paths.defs_dir, paths.root)
    problems, manifest = _check(paths, registry, dbt)
    files = changed_files(paths.root, chosen)
    changes = product_changes(registry, files, paths.dbt_dir, manifest, chosen, paths.depots_dir)
    diffs = []
    if files:  # an unchanged repository has no contract changes to look for
        diffs = project_changes(registry, chosen.commit, "producer")
        diffs += project_changes(registry, chosen.commit, "consumer")
    notes = []
    if manifest is None and any(f.path.endswith(".sql") for f in files):
        notes.append("without dbt's manifest, macros are not traced to the models using them")
    report = CiReport(
        chosen,
        {pid: relative(p.folder, paths.root) for pid, p in registry.products.items()},
        problems,
        changes,
        port_impacts(registry, diffs),
        allow_major,
        notes=notes,
    )
    if preview_env is not None and not report.errors:
        report.preview = _preview(paths, registry, changes, preview_env)
    elif preview_env is not None:
        report.notes.append(f"no preview in '{preview_env}': validation failed")
    report.seconds = time.perf_counter() - started
    if junit is not None:
        _write(junit, _junit_bytes(report))
    if fmt is Format.json:
        rendered = None
    elif fmt is Format.junit:
        rendered = _junit_bytes(report).decode("utf-8")
    elif fmt is Format.markdown:
        rendered = report.markdown()
    else:
        rendered = report.text()
    if output is not None:
        import json

        document = rendered if rendered is not None else json.dumps(report.to_dict(), indent=2)
        _write(output, document.encode("utf-8"))
        (say if report.ok else say_err)("{} (report: {})", report.summary(), output)
    elif rendered is None:
        print_json(report.to_dict())
    else:
        echo(rendered)
    if not report.ok:
        raise typer.Exit(1)


def _preview_env(env: str | None, build: bool) -> str | None:
    """The environment a preview builds in (None: no preview); never prod."""
    from ddp_assets.environments import checked_name
    from ddp_assets.naming import ENV_VAR, PROD
    from ddp_assets.settings import environment

    if env is None and not build:
        return None
    name = checked_name(env, "--env") if env is not None else environment()
    if name == PROD:
        fail(
            "a preview never builds in prod",
            "name its environment: `ddp ci --env pr_42` (or `ddp --env pr_42 ci --build`)",
        )
    # The checks run with prod's names: dbt's prepared manifest (reused by later commands in
    # prod) is parsed as prod's; the build sets the environment (_preview).
    os.environ[ENV_VAR] = PROD
    return name


def _preview(paths: ProjectPaths, registry: Registry, changes: Any, env: str) -> Any:
    """Build the changed products and their downstream in ``env`` (created from prod when it
    does not exist), the other products read through the environment's views of prod."""
    from ddp_assets.ci.report import Preview
    from ddp_assets.environments import create, list_environments
    from ddp_assets.naming import ENV_VAR, tag
    from ddp_assets.runtime.materialize import materialize

    started = time.perf_counter()
    os.environ[ENV_VAR] = env  # from here on, every name is the environment's
    existing = {e.name: e for e in list_environments(paths)}
    created = env not in existing
    environment = create(paths, env) if created else existing[env]
    wanted = sorted(p for p in {*changes.products, *changes.downstream} if p in registry.products)
    preview = Preview(
        env,
        environment.based_on,
        created,
        wanted,
        [f"{p.product}.{p.port}" for p in environment.pointers if p.product not in wanted],
    )
    if wanted:
        import contextlib
        import sys

        # dbt's and Dagster's output on stderr: stdout carries the report (JSON, JUnit)
        with contextlib.redirect_stdout(sys.stderr):
            outcome = materialize(
                paths, wanted, tags={tag("command"): "ci", tag("env"): env}, log_level="WARNING"
            )
        preview.succeeded = outcome.success
        preview.errors = list(outcome.errors)
        preview.failed_checks = [f"{asset}: {check.name}" for asset, check in outcome.failed_checks]
        preview.runs = list(outcome.runs) or [outcome.run_id]
    preview.seconds = time.perf_counter() - started
    return preview


def _junit_bytes(report: Any) -> bytes:
    buffer = io.BytesIO()
    report.junit().write(buffer, pretty=True)
    return buffer.getvalue()

"""``ddp ci``: validate every product, diff the contracts changed since a base git ref, name the
changed products, their downstream and the readers a breaking change affects (docs/ci.md)."""

from __future__ import annotations

import io
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
) -> None:
    """Validate every product and check every change against a base git ref: contract diffs
    with the breaking changes and the downstream products they affect, the changed products
    and their downstream. Exit 1 on any error or breaking change.

    Builds nothing: previews in their own environment are not there yet (docs/ci.md).
    """
    from ddp_assets.ci.changes import changed_files, product_changes, resolve_base
    from ddp_assets.ci.impact import port_impacts
    from ddp_assets.ci.report import CiReport
    from ddp_assets.contracts.diff import project_changes

    started = time.perf_counter()
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


def _junit_bytes(report: Any) -> bytes:
    buffer = io.BytesIO()
    report.junit().write(buffer, pretty=True)
    return buffer.getvalue()

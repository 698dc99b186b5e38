"""Output helpers shared by the commands: problems, tables, JSON and clean failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console

from ddp_assets.spec.errors import SpecProblem

# Piped output (CI logs, `| less`) is not cut at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_problems(problems: Sequence[SpecProblem]) -> None:
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
        err.print(f"[bold]{where}[/bold]: [{style}]{problem.severity}[/{style}]: ", end="")
        err.print(f"[cyan]{problem.field}[/cyan]: {problem.message}", markup=True)
        if problem.hint:
            err.print(f"    [dim]hint:[/dim] {problem.hint}")


def fail(message: str, hint: str | None = None, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    if hint:
        err.print(f"    [dim]hint:[/dim] {hint}")
    raise typer.Exit(code)

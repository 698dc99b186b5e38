"""Output helpers shared by the commands: problems, tables, JSON and clean failures."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, NoReturn

import typer
from rich.console import Console

from ddp_assets.spec.errors import SpecProblem

# Piped output (CI logs, `| less`) is not cut at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def working(message: str) -> AbstractContextManager[Any]:
    """A spinner with ``message`` on stderr while a command works, when stderr is a terminal.

    Elsewhere (a pipe, CI, a harness) there is nobody to watch it, and its refresh thread
    would still wake twelve times a second for the whole command: about 0.3 s of a demo
    ``ddp materialize``, measured.
    """
    return err.status(message) if err.is_terminal else contextlib.nullcontext()


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


_FAST_EXIT = False


def allow_fast_exit() -> None:
    """Let :func:`leave` skip the interpreter's teardown once a command's work is all done.

    A ``ddp materialize`` process has imported about 2,200 modules (Dagster, dbt, Soda, DuckDB,
    pandera); CPython then spends over a second tearing them down after the command returned
    (measured 1.45 s, 0.03 s with ``os._exit``). Only commands that closed everything they
    opened (the run, the warehouse, the lineage outbox) ask for it.
    """
    global _FAST_EXIT
    _FAST_EXIT = True


def leave(code: int) -> NoReturn:
    """Exit with ``code``: immediately after flushing, if the command allowed it."""
    if _FAST_EXIT:
        logging.shutdown()  # flush and close every logging handler (dbt's file log among them)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)

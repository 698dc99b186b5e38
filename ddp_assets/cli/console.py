"""Output helpers shared by the commands: text, tables, problems, JSON and clean failures.

Every string that comes from data, specs, users or other libraries reaches the terminal as
written: never read as Rich markup (``[red]``, ``[link=...]``, ``[/]``), never as an emoji code
(``:smile:``), and with its control characters (the ESC of ANSI sequences, CR, BEL, bidi
overrides) shown as visible escapes (``\\x1b``) instead of being sent raw. Markup is only ever
read from the literal templates written here and in the commands:

- :func:`say` / :func:`say_err` print a template whose ``{}`` fields are filled with values
  that are shown as plain text; :func:`markup` builds the same as a :class:`~rich.text.Text`.
- :class:`Table` is a Rich table whose ``str`` headers, cells and title are plain text; a
  styled cell is a :func:`styled` value (or a :func:`markup` one).
- :data:`out` and :data:`err` themselves read no markup and no emoji codes, and clean every
  string they render, so text printed some other way is safe too (only unstyled).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import string
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, LiteralString, NoReturn

import click
import rich.table
import typer
from rich.console import Console, RenderableType
from rich.style import Style
from rich.text import Text

from ddp_assets.spec.errors import SpecProblem

# C0 controls but tab and newline, DEL, C1 controls (CSI is U+009B), and the bidi overrides and
# isolates that make text display in another order than it reads (CVE-2021-42574).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object) -> str:
    """``value`` as text fit for a terminal: its control characters written as escapes.

    ``"\\x1b[2J"`` (clear the screen) becomes the seven characters ``\\x1b[2J``; tabs and
    newlines stay. Markup is not touched: see :func:`markup` and :class:`Table` for that.
    """
    return _CONTROL.sub(_visible, str(value))


class _Console(Console):
    """A console that shows every string it renders cleaned (:func:`clean`)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(clean(text), **kwargs)


# Piped output (CI logs, `| less`) is not cut at 80 columns. Neither console reads markup or
# emoji codes from strings: styles come from :func:`markup` templates and :func:`styled`.
_WIDTH = None if sys.stdout.isatty() else 160
out: Console = _Console(highlight=False, soft_wrap=True, width=_WIDTH, markup=False, emoji=False)
err: Console = _Console(
    stderr=True, highlight=False, soft_wrap=True, width=_WIDTH, markup=False, emoji=False
)

_FORMATTER = string.Formatter()
_SLOT = "\ue000"  # a private-use character: stands for a value while the template is parsed


def styled(value: object, style: str | Style = "") -> Text:
    """``value`` as plain text (cleaned, never markup) in ``style``, e.g. ``styled(s, "red")``."""
    return Text(clean(value), style=style)


def _field(value: object, spec: str, conversion: str | None) -> Text:
    if isinstance(value, Text):
        return value
    if conversion == "r":
        value = repr(value)
    elif conversion == "a":
        value = ascii(value)
    elif conversion == "s":
        value = str(value)
    return Text(clean(format(value, spec)))


def markup(template: LiteralString, *args: object, **kwargs: object) -> Text:
    """The Rich markup ``template`` with its ``{}`` fields filled with values as plain text.

    Fields are written as in :meth:`str.format` (``{}``, ``{0}``, ``{name}``, a format spec
    such as ``{:,}`` or ``{:.1f}``, ``{!r}``); a value is shown as written whatever it holds,
    and takes the style of the markup around its field: ``markup("[bold]{}[/bold]", name)``.
    A :class:`~rich.text.Text` value (e.g. from :func:`styled`) keeps its own styles.
    """
    values: list[Text] = []
    parts: list[str] = []
    position = 0
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        parts.append(literal)
        if name is None:
            continue
        if name == "":
            value = args[position]
            position += 1
        elif name.isdigit():
            value = args[int(name)]
        else:
            value = kwargs[name]
        values.append(_field(value, spec or "", conversion))
        parts.append(_SLOT)
    parsed = Text.from_markup("".join(parts), emoji=False)
    slots = [i for i, char in enumerate(parsed.plain) if char == _SLOT]
    if not slots:
        return parsed
    cuts = sorted({cut for slot in slots for cut in (slot, slot + 1)})
    result = Text(style=parsed.style, end=parsed.end)
    filling = iter(values)
    for piece in parsed.divide(cuts):
        if piece.plain != _SLOT:
            result.append_text(piece)
            continue
        value = next(filling)
        # The markup around the field first, then the value's own styles over it.
        filled = Text(value.plain)
        for span in piece.spans:
            filled.stylize(span.style, 0, len(filled))
        filled.stylize(value.style, 0, len(filled))
        filled.spans.extend(value.spans)
        result.append_text(filled)
    return result


def say(template: LiteralString, *args: object, **kwargs: object) -> None:
    """Print :func:`markup` of ``template`` and its values on stdout."""
    out.print(markup(template, *args, **kwargs))


def say_err(template: LiteralString, *args: object, **kwargs: object) -> None:
    """Print :func:`markup` of ``template`` and its values on stderr."""
    err.print(markup(template, *args, **kwargs))


def _plain_text(value: RenderableType | None) -> RenderableType | None:
    return Text(clean(value)) if isinstance(value, str) else value


class Table(rich.table.Table):
    """A Rich table whose ``str`` headers, cells and title are shown as written.

    They are cleaned and never read as markup (a column name from a query, a value from the
    data); a styled cell is a :class:`~rich.text.Text`, e.g. ``styled(state, "green")``.
    """

    def __init__(self, *headers: str, title: str | Text | None = None, **kwargs: Any) -> None:
        if isinstance(title, str):
            title = Text(clean(title), style="table.title")
        super().__init__(title=title, **kwargs)
        for header in headers:
            self.add_column(Text(clean(header)))

    def add_row(
        self,
        *renderables: RenderableType | None,
        style: str | Style | None = None,
        end_section: bool = False,
    ) -> None:
        super().add_row(
            *(_plain_text(cell) for cell in renderables), style=style, end_section=end_section
        )


def echo(text: str) -> None:
    """Write ``text`` (a document: YAML, Mermaid, SQL) to stdout as is, but cleaned."""
    sys.stdout.write(clean(text))


def working(message: str) -> AbstractContextManager[Any]:
    """A spinner with ``message`` (plain text) on stderr while a command works, on a terminal.

    Elsewhere (a pipe, CI, a harness) there is nobody to watch it, and its refresh thread
    would still wake twelve times a second for the whole command: about 0.3 s of a demo
    ``ddp materialize``, measured.
    """
    return err.status(Text(clean(message))) if err.is_terminal else contextlib.nullcontext()


def print_json(data: Any) -> None:
    # json.dumps writes every control and non-ASCII character as a \u escape.
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


_SEVERITY_STYLES: Mapping[str, str] = {"error": "red", "warning": "yellow"}


def print_problems(problems: Sequence[SpecProblem]) -> None:
    for problem in problems:
        where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
        severity = styled(problem.severity, _SEVERITY_STYLES.get(problem.severity, "red"))
        say_err(
            "[bold]{}[/bold]: {}: [cyan]{}[/cyan]: {}",
            where,
            severity,
            problem.field,
            problem.message,
        )
        if problem.hint:
            say_err("    [dim]hint:[/dim] {}", problem.hint)


def fail(message: str, hint: str | None = None, code: int = 1) -> NoReturn:
    """Print ``message`` and ``hint`` (plain text, never markup) as an error; exit ``code``."""
    say_err("[red]error:[/red] {}", message)
    if hint:
        say_err("    [dim]hint:[/dim] {}", hint)
    raise typer.Exit(code)


def print_click_error(error: click.ClickException | typer.TyperException) -> None:
    """Click's own report of a usage error (usage, hint, message), cleaned.

    Typer parses the command line with a click of its own (``typer.TyperException``).
    """
    buffer = io.StringIO()
    show = getattr(error, "show", None)
    if callable(show):
        show(file=buffer)
    else:
        buffer.write(f"Error: {error.format_message()}\n")
    sys.stderr.write(clean(buffer.getvalue()))


def print_unexpected(error: BaseException) -> None:
    """The last line of defence's report: the error's type and message, as plain text."""
    say_err("[red]error:[/red] {}: {}", type(error).__name__, error)
    say_err("    [dim]hint:[/dim] set DDP_DEBUG=1 to see the traceback")


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
        from ddp_assets import compat

        compat.release_multiprocessing_resources()  # dbt's locks, as a normal exit would
        os._exit(code)
    sys.exit(code)

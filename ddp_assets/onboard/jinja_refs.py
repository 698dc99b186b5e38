"""Rewriting ``ref()`` and ``source()`` calls in dbt SQL and YAML strings, through Jinja's lexer.

A model's SQL is a Jinja template; its tokens (Jinja's own lexer, the one dbt renders with) give
every call with its exact text, so a call is rewritten where it is written, string literals,
comments and ``{% raw %}`` blocks included, without guessing with a regular expression. Joining
the tokens gives the template back unchanged (checked: a template that does not round-trip is
left alone and reported).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

import jinja2
from jinja2.exceptions import TemplateSyntaxError

_ENV = jinja2.Environment(keep_trailing_newline=True, extensions=["jinja2.ext.do"])

Call = tuple[str, tuple[str, ...]]
"""A call: 'ref' or 'source' and its string arguments."""

Rewrite = Callable[[str, tuple[str, ...]], tuple[str, tuple[str, ...]] | None]
"""Given a call, the call to write instead, or None to keep it."""


@dataclass(frozen=True)
class Rewritten:
    text: str
    calls: list[Call]
    """Every ref/source call found (before rewriting)."""
    changed: bool
    error: str | None = None
    """Why the text was left alone (a Jinja syntax error, or tokens that do not round-trip)."""


def rewrite_calls(text: str, rewrite: Rewrite) -> Rewritten:
    """``text`` with each ``ref(...)``/``source(...)`` call of string literals rewritten."""
    try:
        tokens = [(kind, value) for _, kind, value in _ENV.lexer.tokeniter(text, None)]
    except TemplateSyntaxError as error:
        return Rewritten(text, [], False, f"line {error.lineno}: {error.message}")
    if "".join(value for _, value in tokens) != text:
        return Rewritten(text, [], False, "Jinja's tokens do not give the text back")
    out: list[str] = []
    calls: list[Call] = []
    index = 0
    changed = False
    while index < len(tokens):
        kind, value = tokens[index]
        call = _call_at(tokens, index) if kind == "name" and value in ("ref", "source") else None
        if call is None:
            out.append(value)
            index += 1
            continue
        end, args, quote = call
        calls.append((value, args))
        replacement = rewrite(value, args)
        if replacement is None or replacement == (value, args):
            out.extend(v for _, v in tokens[index:end])
        else:
            name, new_args = replacement
            out.append(f"{name}({', '.join(quote + a + quote for a in new_args)})")
            changed = True
        index = end
    return Rewritten("".join(out), calls, changed)


def _call_at(tokens: list[tuple[str, str]], start: int) -> tuple[int, tuple[str, ...], str] | None:
    """A call ``name(<string>, ...)`` at ``start``: its end, arguments and quote character."""
    index = start + 1
    if index >= len(tokens) or tokens[index] != ("operator", "("):
        return None
    index += 1
    args: list[str] = []
    quote = "'"
    expect_value = True
    while index < len(tokens):
        kind, value = tokens[index]
        if kind == "whitespace":
            index += 1
            continue
        if expect_value and kind == "string":
            parsed = ast.literal_eval(value)
            if not isinstance(parsed, str):
                return None
            args.append(parsed)
            quote = value[0]
            expect_value = False
        elif not expect_value and (kind, value) == ("operator", ","):
            expect_value = True
        elif (kind, value) == ("operator", ")") and args:
            return index + 1, tuple(args), quote
        else:
            return None  # keyword arguments (version=), variables: left as written
        index += 1
    return None

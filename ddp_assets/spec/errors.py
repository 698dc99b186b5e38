"""Spec problems as data: every problem names a file, a line, a field and a hint.

Problems are collected, never raised one at a time, so that ``ddp validate`` reports all of
them at once; :class:`SpecErrors` carries a list of them across API boundaries.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a product spec, its contract or its dbt models."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str | None = None
    severity: Severity = "error"
    column: int | None = None

    def format(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        text = f"{where}: {self.severity}: {self.field}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class SpecErrors(Exception):
    """Raised when specs do not validate; ``problems`` has every problem found."""

    def __init__(self, problems: Sequence[SpecProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def relative(path: Path, root: Path | None) -> str:
    """A path as shown in messages: relative to the project root when possible."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def dotted(path: tuple[str | int, ...]) -> str:
    """A field path as written in messages: ``output_ports[0].model``."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def unique_problems(problems: Iterable[SpecProblem]) -> list[SpecProblem]:
    """The problems in order, each (file, line, field, message) once: checks that read the
    same file (a contract read by two checks) report its problem once."""
    seen: set[tuple[str, int | None, str, str]] = set()
    out: list[SpecProblem] = []
    for problem in problems:
        key = (problem.file, problem.line, problem.field, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out

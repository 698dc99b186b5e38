"""A failed dbt build, told as the product file to fix: one located message per failed node.

dagster-dbt's failure message is dbt's log (the command, the log path, every error with the
generated properties' file names). The run's own artifacts say which nodes errored and why:
``run_results.json`` and ``manifest.json`` in the invocation's target folder, whose path the
message names. Each errored model, seed, snapshot or unit test becomes one problem at the
model's SQL file (a unit test's model), at the line that holds the identifier the database or
the Jinja error quotes when there is one, with a hint. Failed data tests are not here: they are
the asset checks the run reports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ddp_assets.spec.errors import SpecProblem, relative

_LOG = re.compile(r"dbt debug log: (\S+)[/\\]dbt\.log")
_QUOTED = re.compile(r"""["']([A-Za-z_][\w.]*)["']""")
_SUGGESTIONS = re.compile(r"Candidate bindings|Did you mean|did you mean")
_NOISE = re.compile(
    r"^(Runtime Error|Database Error|Compilation Error)( in \w+ \S+ \(\S+\))?$|^LINE \d+:|^\^+$"
)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _line_of(path: Path, names: list[str]) -> int | None:
    """The first line of ``path`` that holds one of ``names`` as a word."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for name in names:
        word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        for number, text in enumerate(lines, 1):
            if word.search(text):
                return number
    return None


def _message(raw: str) -> str:
    """dbt's message without its headers and the compiled-SQL pointer (its lines are not the
    model file's)."""
    kept: list[str] = []
    for line in (raw or "").splitlines():
        text = line.strip()
        if not text or _NOISE.match(text) or text.startswith("An error occurred during"):
            continue
        kept.append(text)
    return " ".join(kept) or (raw or "").strip()


def dbt_failure_problems(message: str, root: Path, dbt_dir: Path) -> list[SpecProblem] | None:
    """The errored nodes of the dbt invocation ``message`` names, each located in the product
    file; None when the message names no readable invocation (then it is shown as it is)."""
    found = _LOG.search(message)
    if found is None:
        return None
    run_dir = Path(found[1])
    results, manifest = _read(run_dir / "run_results.json"), _read(run_dir / "manifest.json")
    if results is None or manifest is None:
        return None
    nodes: dict[str, Any] = {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}
    models = {n.get("name"): n for n in nodes.values() if n.get("resource_type") == "model"}
    problems: list[SpecProblem] = []
    for result in results.get("results", []):
        if result.get("status") != "error":
            continue
        uid = str(result.get("unique_id"))
        node = nodes.get(uid) or {}
        kind = str(node.get("resource_type") or uid.split(".", 1)[0])
        name = str(node.get("name") or uid.rsplit(".", 1)[-1])
        text = _message(str(result.get("message") or ""))
        model = models.get(node.get("model")) if kind == "unit_test" else node
        file = dbt_dir / str((model or node).get("original_file_path") or "dbt_project.yml")
        # what the error is about: the last name it quotes before its suggestions
        quoted = _QUOTED.findall(_SUGGESTIONS.split(text, maxsplit=1)[0])[-1:]
        line = _line_of(file, quoted) if file.suffix == ".sql" else None
        if kind == "unit_test":
            what = f"unit test '{name}' of model '{(model or {}).get('name', '?')}'"
            hint = (
                "fix the model's SQL, or the unit test's given rows and expectations "
                "(the product's models/_properties.yml)"
            )
        else:
            what = f"{kind} '{name}'"
            hint = "fix the SQL; `ddp validate` checks refs, macros and contracts before a run"
        problems.append(
            SpecProblem(
                relative(file.resolve(), root),
                line,
                "(dbt build)",
                f"{what}: {text}",
                f"{hint}; dbt's log: {relative(run_dir / 'dbt.log', root)}",
            )
        )
    return problems or None


_DBT_BLOCK = re.compile(r"The dbt CLI process with command")
_OTHER_PROBLEM = re.compile(r"^output port '", re.MULTILINE)  # a port held back by its audit


def located_failures(message: str, root: Path, dbt_dir: Path) -> list[str]:
    """A failed step's message as the messages to print: each dbt invocation's error in it as
    its located problems (:func:`dbt_failure_problems`), the step's other problems (a port held
    back) as they are, each prefixed with what came before them (the step's name)."""
    starts = sorted(
        {m.start() for m in _DBT_BLOCK.finditer(message)}
        | {m.start() for m in _OTHER_PROBLEM.finditer(message)}
    )
    if not starts:
        return [message]
    prefix = message[: starts[0]]
    out: list[str] = []
    for start, end in zip(starts, [*starts[1:], len(message)], strict=True):
        segment = message[start:end].strip()
        problems = (
            dbt_failure_problems(segment, root, dbt_dir) if _DBT_BLOCK.match(segment) else None
        )
        out.extend([p.format() for p in problems] if problems else [prefix + segment])
    return out

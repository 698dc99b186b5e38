"""What a definitions load keeps and imports (docs/performance.md, "Definitions (session 6)").

- the load cache's copy of a spec's line numbers answers exactly as the parsed document does,
  without keeping the document;
- a process that loads the definitions and exits imports no duckdb and exits quietly (no
  nanobind leak report), its frozen objects left to the operating system.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.loader import Positions, read_document

ROOT = Path(__file__).resolve().parents[1]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``node``, and beside each some that lead nowhere."""
    yield prefix
    yield (*prefix, "no_such_key")
    yield (*prefix, 10_000)
    yield (*prefix, -1)
    if isinstance(node, CommentedMap):
        kind = node.get("type")
        if isinstance(kind, str):  # pydantic puts a union's tag in the path
            yield (*prefix, kind)
            yield (*prefix, kind, next(iter(node), "x"))
        for key in node:
            yield from _paths(node[key], (*prefix, key))
            yield (*prefix, str(key), 0)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            yield from _paths(item, (*prefix, index))
            yield (*prefix, str(index))


def test_pickled_positions_answer_as_the_document(project_paths: ProjectPaths) -> None:
    files = [
        *sorted(project_paths.defs_dir.rglob("defs.yaml")),
        *sorted(project_paths.defs_dir.rglob("*.odcs.yaml")),
    ]
    assert len(files) > 10
    checked = 0
    for path in files:
        document = read_document(path, path.name)
        positions = Positions(document)
        stored = pickle.dumps(positions)
        assert b"ruamel" not in stored, path  # the document itself is not stored
        copy = pickle.loads(stored)
        for where in _paths(document):
            assert copy.line(where) == positions.line(where), (path, where)
            checked += 1
        assert pickle.loads(pickle.dumps(copy)).line(("attributes",)) == positions.line(
            ("attributes",)
        )
    assert checked > 1000


def test_pickled_positions_of_a_scalar_document_give_no_line() -> None:
    positions = pickle.loads(pickle.dumps(Positions("just a string")))
    assert positions.line(("attributes", "id")) is None
    assert Positions("just a string").line(("attributes", "id")) is None


def test_a_definitions_load_imports_no_duckdb_and_exits_quietly(
    project_paths: ProjectPaths, tmp_path: Path
) -> None:
    """duckdb is imported where ddp first touches a warehouse, not at load: a process that only
    loads the definitions (``dg check defs``, a code server) leaves its frozen objects at exit
    without the collector's passes over them, and nanobind reports no leaks."""
    code = (
        "import sys\n"
        "from ddp_assets.definitions import defs\n"
        "d = defs()\n"
        "d.resolve_asset_graph()\n"
        "print(sorted(m for m in ('duckdb', '_duckdb') if m in sys.modules))\n"
    )
    env_extra = {"DDP_PROJECT_ROOT": str(project_paths.root), "DDP_DATA_DIR": str(tmp_path)}
    # a first load may prepare the project or read the specs again (the compiler's SQL checks
    # use duckdb); the load measured is a prepared one, as every later load of a code location
    first = _run(code, env_extra)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "nanobind" not in first.stderr, first.stderr[-3000:]
    done = _run(code, env_extra)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
    assert "nanobind" not in done.stderr, done.stderr[-3000:]
    # with duckdb in use, the objects are unfrozen at exit and freed, quietly too
    use = "import duckdb\nduckdb.connect().execute('select 1').fetchall()\n"
    used = _run(code + use, env_extra)
    assert used.returncode == 0, used.stderr[-3000:]
    assert "nanobind" not in used.stderr, used.stderr[-3000:]


def _run(code: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env_extra},
    )

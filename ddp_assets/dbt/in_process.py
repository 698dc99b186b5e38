"""dbt run inside the Dagster process, through dbt's own Python API (``dbtRunner``).

A ``ddp materialize --all`` runs dbt once per layer of products (write-audit-publish puts the
output ports' publish steps between the layers, docs/architecture.md). As a subprocess, each
invocation paid a Python start-up, dbt's imports and a partial parse before running a node
(about 2.7 s each on the demo, three times per run). In process, dbt is imported once, the
project is parsed once per process (from the prepared partial-parse state) and every
invocation reuses that manifest, so an extra invocation costs only its own nodes.

dagster-dbt streams dbt's JSON log lines from a ``subprocess.Popen``; :class:`InProcessDbt`
is the small part of ``Popen`` it uses, fed by a dbt callback that turns every event into the
same JSON document dbt would have printed (``msg_to_dict``). Everything downstream (Dagster
events, asset checks, ``run_results.json`` and ``manifest.json`` in the invocation's target
folder) is dagster-dbt's and dbt's own code, unchanged. What it needs of dagster-dbt beyond
its public API is in :mod:`ddp_assets.compat`, for the versions it was tested with only.

``DDP_DBT_SUBPROCESS=1`` goes back to one dbt process per invocation (e.g. to isolate a dbt
adapter that misbehaves in a long-lived process). In process, an interrupted run stops dbt
only between nodes' events, not in the middle of a query: the thread finishes its current
node's SQL, and DuckDB rolls back anything uncommitted when the process ends.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

_DONE = object()
_LOCK = threading.Lock()  # one in-process dbt invocation at a time (dbt's flags are global)
_MANIFESTS: dict[tuple[str, ...], Any] = {}  # parsed dbt Manifest objects, per process

# dbt options read from the environment that dagster-dbt sets for its subprocess.
_SUBPROCESS_ONLY = ("PYTHONLEGACYWINDOWSSTDIO", "PYTHONUNBUFFERED")


def in_process_enabled() -> bool:
    """dbt in process unless ``DDP_DBT_SUBPROCESS`` asks otherwise, and only with the dagster-dbt
    and dbt-core versions it was tested with (:func:`ddp_assets.compat.in_process_dbt_supported`;
    outside them, dagster-dbt's own subprocess)."""
    if os.environ.get("DDP_DBT_SUBPROCESS", "").strip().lower() in ("1", "true", "yes"):
        return False
    from ddp_assets import compat

    return compat.in_process_dbt_supported()


class _Stdout:
    """The ``stdout`` of :class:`InProcessDbt`: dbt's events as JSON lines (bytes)."""

    def __init__(self, owner: InProcessDbt):
        self._owner = owner
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._owner.lines()

    def __enter__(self) -> _Stdout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True


class InProcessDbt:
    """Runs ``dbt <args>`` with ``dbtRunner`` in a thread; quacks like ``subprocess.Popen``."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        manifest_key: tuple[str, ...],
        keep_parse: Path | None = None,
    ):
        self.args = list(args)
        self._keep_parse = keep_parse
        self.returncode: int | None = None
        self.stdout = _Stdout(self)
        self._env = dict(env)
        self._manifest_key = manifest_key
        self._events: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ddp-dbt", daemon=True)
        self._thread.start()

    # -- the Popen surface dagster-dbt uses ---------------------------------------------------

    def lines(self) -> Iterator[bytes]:
        import orjson

        while True:
            item = self._events.get()
            if item is _DONE:
                return
            yield orjson.dumps(item)

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        if self.returncode is None:
            raise TimeoutError(f"dbt is still running after {timeout} s")
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signal: int) -> None:
        """dbt cannot be interrupted in the middle of a node in process (see module doc)."""

    def terminate(self) -> None:
        """See :meth:`send_signal`."""

    # -- the dbt side ---------------------------------------------------------------------

    def _run(self) -> None:
        code = 2
        try:
            with _LOCK, _environment(self._env):
                code = self._invoke()
        except BaseException as error:  # reported as dbt reports its own errors
            self._error(f"dbt failed in process: {type(error).__name__}: {error}")
        finally:
            self.returncode = code
            self._events.put(_DONE)

    def _invoke(self) -> int:
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_dict

        def forward(event: Any) -> None:
            # What the dbt subprocess printed at its default level: dagster-dbt needs the info
            # events (node results) and the errors; debug events only cost time here.
            if event.info.level != "debug":
                self._events.put(msg_to_dict(event))

        cli_args = self.args[1:]  # without the dbt executable
        manifest: Any = _MANIFESTS.get(self._manifest_key)
        if manifest is None:
            parsed = dbtRunner(callbacks=[forward]).invoke(["parse", *_parse_args(cli_args)])
            if not parsed.success or parsed.result is None:
                if parsed.exception is not None:
                    self._error(f"dbt parse failed: {parsed.exception}")
                return 2
            manifest = _MANIFESTS[self._manifest_key] = parsed.result  # a dbt Manifest
            self._keep_partial_parse()
        try:
            result = dbtRunner(manifest=manifest, callbacks=[forward]).invoke(cli_args)
        finally:
            _release_duckdb()
        if result.exception is not None:
            self._error(str(result.exception))
            return 2
        return 0 if result.success else 1

    def _keep_partial_parse(self) -> None:
        """Keep this parse's state for the next process on the same warehouse folder."""
        if self._keep_parse is None:
            return
        written = Path(self._env.get("DBT_TARGET_PATH", "")) / "partial_parse.msgpack"
        temporary = self._keep_parse.with_name(f".{self._keep_parse.name}.{os.getpid()}")
        try:
            self._keep_parse.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(written, temporary)
            temporary.replace(self._keep_parse)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)

    def _error(self, message: str) -> None:
        """An error-level event shaped like dbt's JSON log lines (dagster-dbt collects these)."""
        self._events.put(
            {
                "info": {
                    "name": "DdpInProcessError",
                    "level": "error",
                    "msg": message,
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "invocation_id": "",
                },
                "data": {},
            }
        )


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open for the life of the process.

    A dbt subprocess released the warehouse file when it exited; in process, dbt-duckdb keeps
    its environment (and the database's connection) for the next invocation, which would hold
    the file's lock after the step (other processes, e.g. a reader or the next run, could not
    open it). Through dbt-duckdb's public class methods: ``env()`` (the open environment, an
    error when there is none) and ``close_all_connections()`` (what dbt-duckdb registers at exit:
    forget it), then the environment's own ``close()``.
    """
    module = sys.modules.get("dbt.adapters.duckdb.connections")
    if module is None:  # another adapter (e.g. Postgres): dbt closed its connections itself
        return
    manager = module.DuckDBConnectionManager
    try:
        environment = manager.env()
    except Exception:  # dbt-duckdb: "environment requested before creation" (none is open)
        return
    manager.close_all_connections()
    with contextlib.suppress(Exception):
        environment.close()


def _parse_args(args: Sequence[str]) -> list[str]:
    """The options of ``args`` that a ``dbt parse`` accepts (project, profile, target)."""
    keep = {"--profiles-dir", "--project-dir", "--target", "--profile", "--target-path", "--vars"}
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg in keep and index + 1 < len(args):
            out += [arg, args[index + 1]]
    return out


class _environment:
    """``os.environ`` as dagster-dbt would have given the dbt subprocess, for one invocation.

    dbt's programmatic API (``dbtRunner``) takes no environment: dbt reads its flags and the
    profile's ``env_var()`` from ``os.environ`` when an invocation starts. So the variables are
    set for the invocation only, under the module's lock (one in-process invocation at a time),
    and put back when it ends (``tests/test_dbt_in_process.py``).
    """

    def __init__(self, env: Mapping[str, str]):
        self._env = {k: v for k, v in env.items() if k not in _SUBPROCESS_ONLY}
        # dbt's own console output: dagster-dbt prints every event it receives already. The
        # debug log file (``dbt.log`` in the invocation's target folder) stays as it was.
        self._env["DBT_LOG_LEVEL"] = "none"
        self._env.setdefault("DBT_LOG_LEVEL_FILE", "debug")
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self._saved = {key: os.environ.get(key) for key in self._env}
        os.environ.update(self._env)

    def __exit__(self, *exc: object) -> None:
        """Only the variables set here are put back (the Dagster process may set others)."""
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def manifest_key(project_dir: Path, target_path: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    """What a parsed manifest depends on: the prepared state and the profile's environment."""
    prepared = project_dir / target_path / "partial_parse.msgpack"
    try:
        stamp = str(prepared.stat().st_mtime_ns)
    except OSError:
        stamp = "none"
    return (
        str(project_dir),
        stamp,
        env.get("DDP_DBT_TARGET", "dev"),
        env.get("DDP_DATA_DIR", ""),
        env.get("DDP_ENV", ""),  # the generated properties name the environment's schemas
    )

"""Helpers to run Dagster's own processes in tests: start and stop them, talk GraphQL to the
webserver, and find a run worker's processes.

Used by tests/test_postgres_instance.py, which runs the production topology (a user-code
server, ``dagster-webserver`` and ``dagster-daemon`` as separate processes) on loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on PythonError { message } }
}
"""
ASSET_NODES = "{ assetNodes { assetKey { path } groupName } }"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class DagsterGraphQL:
    """The webserver's GraphQL API: the same calls the UI makes."""

    def __init__(self, url: str, location: str = "ddp"):
        self.url = url
        self.location = location
        self.client = httpx.Client(timeout=60)

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post(
            f"{self.url}/graphql", json={"query": query, "variables": dict(variables or {})}
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def ready(self) -> bool:
        try:
            return bool(self.query(ASSET_NODES)["assetNodes"])
        except (httpx.HTTPError, AssertionError):
            return False

    def launch(self, keys: Sequence[Sequence[str]], tags: Mapping[str, str] | None = None) -> str:
        """Launch (with a queued run coordinator: submit) a run materializing ``keys``."""
        params: dict[str, Any] = {
            "selector": {
                "repositoryLocationName": self.location,
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": list(key)} for key in keys],
            },
            "mode": "default",
            "executionMetadata": {
                "tags": [{"key": key, "value": value} for key, value in (tags or {}).items()]
            },
        }
        result = self.query(LAUNCH, {"params": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def status(self, run_id: str) -> str:
        return self.query(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]

    def wait(self, run_id: str, timeout: float = 300) -> str:
        return wait_for(
            f"run {run_id} to finish",
            lambda: status if (status := self.status(run_id)) in FINISHED else None,
            timeout,
        )


@contextmanager
def running(
    command: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group, output to ``log``; stop the group on exit."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, read from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree

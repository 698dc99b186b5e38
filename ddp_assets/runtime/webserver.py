"""A small client of a running Dagster webserver's GraphQL API, and a way to start one.

Used where ddp drives the real UI process from outside: the end-to-end tests and the ripple
benchmark. ``dagster_graphql.DagsterGraphQLClient`` covers launching jobs and run status, but
not asset materializations or run filters by tag, which these callers need; the queries below
are the webserver's public GraphQL schema.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

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
LATEST = """
query Latest($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) { timestamp runId } }
  }
}
"""
RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status creationTime startTime endTime } }
  }
}
"""
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterUI:
    """GraphQL calls against ``url`` (e.g. ``http://127.0.0.1:3000``)."""

    def __init__(self, url: str, location: str = "ddp"):
        self.url = url
        self.location = location
        self.client = httpx.Client(timeout=30)

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post(
            f"{self.url}/graphql", json={"query": query, "variables": dict(variables or {})}
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def asset_nodes(self) -> list[dict[str, Any]]:
        return self.query(ASSET_NODES)["assetNodes"]

    def ready(self) -> bool:
        """Whether the webserver answers and lists the code location's assets."""
        try:
            return bool(self.asset_nodes())
        except (httpx.HTTPError, RuntimeError):
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
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {result}")
        return result["run"]["runId"]

    def status(self, run_id: str) -> str:
        return self.query(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]

    def wait(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.status(run_id)
            if status in FINISHED:
                return status
            time.sleep(1)
        raise TimeoutError(f"run {run_id} still {status} after {timeout}s")

    def latest_materialization(self, key: list[str]) -> float:
        """Epoch seconds of the asset's latest materialization (0.0 when it has none)."""
        result = self.query(LATEST, {"key": {"path": key}})["assetOrError"]
        events = result.get("assetMaterializations") or []
        return float(events[0]["timestamp"]) / 1000 if events else 0.0

    def runs(
        self, *, tags: Mapping[str, str] | None = None, after: float | None = None
    ) -> list[dict[str, Any]]:
        """Runs, newest first, optionally with these tags and created after ``after``."""
        filter_: dict[str, Any] = {}
        if tags:
            filter_["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if after is not None:
            filter_["createdAfter"] = after
        return self.query(RUNS, {"filter": filter_})["runsOrError"]["results"]


@contextmanager
def dagster_dev(
    command: list[str], env: Mapping[str, str], log: Path, startup_timeout: float = 180
) -> Iterator[DagsterUI]:
    """Start ``command`` (``ddp dev --port N ...``; the port is appended) and wait for the UI."""
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = DagsterUI(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited:\n{log.read_text()[-4000:]}")
            if ui.ready():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster dev not ready:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield ui
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

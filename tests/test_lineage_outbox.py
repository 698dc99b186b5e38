"""The lineage outbox: lines that are not events are set aside, delivery goes on, and a run
with the endpoint down makes one short attempt and says what is pending.

A real HTTP server on 127.0.0.1 receives the events; the runs are small real Dagster runs in
a temporary instance.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from openlineage.client.transport.http import HttpConfig, HttpTransport

from ddp_assets.lineage.emit import Outbox, emit_run_lineage, flush, lineage_dir
from ddp_assets.settings import ProjectPaths


class Endpoint:
    """An OpenLineage endpoint on 127.0.0.1 answering every POST with ``status``."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                endpoint.requests += 1
                if endpoint.status < 300:
                    endpoint.received.append(json.loads(body))
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.close()


def _event(n: int) -> dict[str, Any]:
    return {
        "eventType": "COMPLETE",
        "eventTime": f"2026-12-03T00:00:{n:02d}Z",
        "run": {"runId": f"00000000-0000-4000-8000-{n:012d}"},
        "job": {"namespace": "ddp", "name": f"job{n}"},
        "producer": "https://example.com/ddp",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


def _line(n: int) -> str:
    return json.dumps(_event(n), sort_keys=True) + "\n"


CORPUS = {
    "torn last line": (_line(1) + _line(2) + _line(3)[:40], [1, 2], [3]),
    "garbage in the middle": (_line(1) + "{not json at all\n" + _line(2), [1, 2], [2]),
    "JSON that is not an event": (_line(1) + "[1, 2, 3]\n" + '"text"\n' + _line(2), [1, 2], [2, 3]),
    "not UTF-8": (_line(1) + "\udcff\n" + _line(2), [1, 2], [2]),
    "blank lines": (_line(1) + "\n   \n" + _line(2), [1, 2], []),
}


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
def test_unreadable_lines_are_set_aside_and_delivery_goes_on(
    tmp_path: Path, endpoint: Endpoint, case: str
) -> None:
    text, delivered, dead_lines = CORPUS[case]
    outbox = Outbox(tmp_path / "lineage")
    outbox.folder.mkdir()
    outbox.events_file.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    transport = HttpTransport(HttpConfig(url=endpoint.url, timeout=2))
    with outbox.locked():
        result = outbox.deliver(transport)
    assert result.error is None and result.pending == 0
    assert result.delivered == len(delivered) and result.set_aside == len(dead_lines)
    assert [e["job"]["name"] for e in endpoint.received] == [f"job{n}" for n in delivered]
    dead = [json.loads(line) for line in _lines(outbox.dead_letter_file)]
    assert [d["outbox_line"] for d in dead] == dead_lines
    assert all(d["error"] and "text" in d for d in dead)
    assert outbox.pending() == []


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_a_torn_line_does_not_swallow_the_next_event(tmp_path: Path, endpoint: Endpoint) -> None:
    """A process killed mid-append leaves no newline: the next append starts a line of its own."""
    outbox = Outbox(tmp_path / "lineage")
    outbox.folder.mkdir()
    outbox.events_file.write_text(_line(1) + _line(2)[:30], encoding="utf-8")
    with outbox.locked():
        outbox.append([_event(3)])
        result = outbox.deliver(HttpTransport(HttpConfig(url=endpoint.url)))
    assert [e["job"]["name"] for e in endpoint.received] == ["job1", "job3"]
    assert result.set_aside == 1


def test_offset_is_kept_when_a_later_line_is_set_aside(tmp_path: Path, endpoint: Endpoint) -> None:
    """Delivered lines stay before the offset; only the pending part is rewritten."""
    outbox = Outbox(tmp_path / "lineage")
    outbox.folder.mkdir()
    endpoint.status = 503
    outbox.events_file.write_text(_line(1) + _line(2), encoding="utf-8")
    quick = HttpTransport(HttpConfig(url=endpoint.url, retry={"total": 0, "status": 0}))
    with outbox.locked():
        assert outbox.deliver(quick).delivered == 0
    endpoint.status = 201
    with outbox.locked():
        outbox.append([_event(3)])
        with open(outbox.events_file, "a", encoding="utf-8") as handle:
            handle.write("{torn")
    with outbox.locked():
        result = outbox.deliver(quick)
    assert [e["job"]["name"] for e in endpoint.received] == ["job1", "job2", "job3"]
    assert result.set_aside == 1 and result.pending == 0


# -- a run with the endpoint down -------------------------------------------------------


@pytest.fixture
def small_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), set_dagster_home=False) as instance:
        yield instance


def _run(instance: dg.DagsterInstance) -> str:
    @dg.asset(key=["orders", "raw_orders"])
    def raw_orders() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 3})

    @dg.asset(key=["orders", "stg_orders"], deps=[raw_orders])
    def stg_orders() -> None:
        return None

    result = dg.materialize([raw_orders, stg_orders], instance=instance)
    return result.run_id


def _configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The client's own configuration file, with the HTTP transport's default retries."""
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: http\n  url: {url}\n  timeout: 5\n", encoding="utf-8")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))


def test_a_run_makes_one_short_attempt_and_says_what_is_pending(
    small_instance: dg.DagsterInstance,
    project_paths: ProjectPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: Endpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint.status = 503  # down: the client's default retries this five times with back-off
    _configure(tmp_path, monkeypatch, endpoint.url)
    run_id = _run(small_instance)
    with caplog.at_level(logging.WARNING, logger="ddp_assets.lineage.emit"):
        result = emit_run_lineage(small_instance, run_id, project_paths)
    assert result.status == "emitted" and result.flush is not None
    assert endpoint.requests == 1, "the run paid more than one delivery attempt"
    assert result.events > 0 and result.flush.pending == result.events
    notice = result.notice
    assert notice is not None and "\n" not in notice
    assert f"{result.events} event(s) pending" in notice
    assert "`ddp lineage flush` resumes" in notice
    assert any(notice in record.getMessage() for record in caplog.records)

    # the endpoint is back: flush (the configured transport) delivers them, in order, once
    endpoint.status = 201
    flushed = flush(Path(small_instance.root_directory))
    assert flushed.delivered == result.events and flushed.pending == 0 and flushed.error is None
    assert [e["run"]["facets"]["parent"]["run"]["runId"] for e in endpoint.received] == [
        run_id
    ] * result.events
    assert Outbox(lineage_dir(small_instance)).pending() == []


def test_a_refused_connection_is_one_attempt_too(
    small_instance: dg.DagsterInstance,
    project_paths: ProjectPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = Endpoint()
    url = down.url
    down.close()  # nothing listens there any more
    _configure(tmp_path, monkeypatch, url)
    result = emit_run_lineage(small_instance, _run(small_instance), project_paths)
    assert result.flush is not None and result.flush.delivered == 0
    assert result.notice is not None and "Connection refused" in result.notice
    assert len(Outbox(lineage_dir(small_instance)).pending()) == result.events > 0

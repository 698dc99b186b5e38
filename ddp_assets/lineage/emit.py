"""Emitting a finished run's OpenLineage events, exactly once, without ever breaking the run.

Transports follow the OpenLineage client's own configuration (``openlineage.yml`` in the working
directory or ``$OPENLINEAGE_CONFIG``, ``OPENLINEAGE__*`` variables, ``OPENLINEAGE_URL``,
``OPENLINEAGE_DISABLED``). With none of them set, events go to a file transport: JSON lines in
``$DAGSTER_HOME/lineage/events.jsonl``.

Every event is first appended to an outbox on disk (``$DAGSTER_HOME/lineage/outbox.jsonl``),
then the outbox is delivered in order; delivery stops at the first transport error and resumes
with the next emission or ``ddp lineage flush``. A marker per Dagster run id makes emission
idempotent: the CLI and the run-status sensor may both see a run, it is emitted once.

A line of the outbox that is not a JSON event (torn by a process killed in mid-append, or
edited by hand) is set aside into ``outbox.dead.jsonl`` with its line number and the parse
error, and delivery goes on with the next line. Emission at the end of a run makes one short
attempt (an HTTP transport without its retries, its timeout capped at
:data:`RUN_ATTEMPT_TIMEOUT`), so an endpoint that is down costs a run at most that; the run then
says in one line how many events are pending and that ``ddp lineage flush`` (the configured
transport, retries included) resumes.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import attr
import dagster as dg
from openlineage.client import OpenLineageClient
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpTransport
from openlineage.client.transport.transport import Transport

from ddp_assets.settings import ProjectPaths

log = logging.getLogger(__name__)

LINEAGE_DIR = "lineage"
RUN_ATTEMPT_TIMEOUT = 2.0  # seconds: the most one HTTP request of a run's emission may take


def lineage_dir(instance_or_home: dg.DagsterInstance | Path) -> Path:
    home = (
        Path(instance_or_home)
        if isinstance(instance_or_home, Path)
        else Path(instance_or_home.root_directory)
    )
    return home / LINEAGE_DIR


@dataclass
class Outbox:
    """Events not yet delivered, in order, with the count already delivered."""

    folder: Path

    @property
    def events_file(self) -> Path:
        return self.folder / "outbox.jsonl"

    @property
    def offset_file(self) -> Path:
        return self.folder / "outbox.offset"

    @property
    def dead_letter_file(self) -> Path:
        """Outbox lines that are not events, set aside with why (JSON lines)."""
        return self.folder / "outbox.dead.jsonl"

    @property
    def default_file(self) -> Path:
        """Where the default file transport writes (JSON lines)."""
        return self.folder / "events.jsonl"

    def marker(self, run_id: str) -> Path:
        return self.folder / "runs" / run_id

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _offset(self) -> int:
        try:
            return int(self.offset_file.read_text(encoding="utf-8").strip() or 0)
        except (OSError, ValueError):
            return 0

    def _set_offset(self, value: int) -> None:
        temporary = self.offset_file.with_suffix(".tmp")
        temporary.write_text(str(value), encoding="utf-8")
        os.replace(temporary, self.offset_file)

    def append(self, events: list[dict[str, Any]]) -> None:
        with open(self.events_file, "a+b") as handle:
            # a line torn by a killed process must not swallow the first new event
            torn = handle.tell() > 0 and _last_byte(handle) != b"\n"
            text = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events)
            handle.write((b"\n" if torn else b"") + text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def _lines(self) -> list[str]:
        try:
            data = self.events_file.read_bytes()
        except OSError:
            return []
        return data.decode("utf-8", errors="replace").splitlines()

    def pending(self) -> list[dict[str, Any]]:
        """The events not yet delivered (lines that are not events are not counted)."""
        events = []
        for line in self._lines()[self._offset() :]:
            event, _ = _parse(line)
            if event is not None:
                events.append(event)
        return events

    def set_aside_unreadable(self) -> int:
        """Move pending lines that are not events to the dead-letter file; how many.

        The delivered lines before the offset are kept as they are, so the offset stays right;
        the outbox is rewritten by a rename, so a crash leaves the old or the new one whole.
        Call under :meth:`locked`.
        """
        lines = self._lines()
        offset = self._offset()
        kept: list[str] = []
        dead: list[dict[str, Any]] = []
        for number, line in enumerate(lines[offset:], start=offset + 1):
            event, error = _parse(line)
            if event is not None:
                kept.append(line)
            elif error is not None:
                dead.append(
                    {
                        "outbox_line": number,
                        "error": error,
                        "text": line,
                        "set_aside_at": datetime.datetime.now(datetime.UTC).isoformat(),
                    }
                )
        if not dead:
            return 0
        with open(self.dead_letter_file, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in dead)
            handle.flush()
            os.fsync(handle.fileno())
        temporary = self.events_file.with_suffix(".rewrite")
        temporary.write_text("".join(line + "\n" for line in [*lines[:offset], *kept]), "utf-8")
        os.replace(temporary, self.events_file)
        log.warning(
            "OpenLineage: %d outbox line(s) that are not events set aside in %s",
            len(dead),
            self.dead_letter_file,
        )
        return len(dead)

    def emit_once(
        self, key: str, payload: list[dict[str, Any]], transport: Transport
    ) -> EmitResult:
        """Append ``payload`` and deliver the outbox, once per ``key`` (a run or rollback id):
        under the lock, a key already marked is not appended again."""
        with self.locked():
            marker = self.marker(key)
            if marker.exists():
                return EmitResult(key, "already-emitted")
            self.append(payload)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(len(payload)), encoding="utf-8")
            result = self.deliver(one_short_attempt(transport))
        return EmitResult(key, "emitted", len(payload), result, self.events_file)

    def deliver(self, transport: Transport) -> FlushResult:
        """Send pending events in order; stop at the first failure. Call under :meth:`locked`."""
        set_aside = self.set_aside_unreadable()
        result = self._deliver(transport)
        result.set_aside = set_aside
        return result

    def _deliver(self, transport: Transport) -> FlushResult:
        pending = self.pending()
        offset = self._offset()
        delivered = 0
        error: str | None = None
        if pending and _appends_json_lines(transport):
            # The file transport appends each event as one JSON line: the outbox lines already
            # are exactly that (serialized once, nulls removed), so they are appended in one
            # write instead of being serialized again and the offset renamed per event
            # (a third of the emission's cost for a demo run).
            try:
                with open(transport.config.log_file_path, "a", encoding="utf-8") as handle:  # type: ignore[attr-defined]
                    handle.writelines(json.dumps(event, sort_keys=True) + "\n" for event in pending)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                return FlushResult(0, len(pending), f"{type(exc).__name__}: {exc}")
            self._set_offset(offset + len(pending))
            pending, delivered = [], len(pending)
        for event in pending:
            try:
                transport.emit(event)  # type: ignore[arg-type]  # transports serialize dicts too
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            delivered += 1
            self._set_offset(offset + delivered)
        remaining = len(pending) - delivered if pending else 0
        if remaining == 0 and delivered:
            self.events_file.unlink(missing_ok=True)
            self.offset_file.unlink(missing_ok=True)
        return FlushResult(delivered=delivered, pending=remaining, error=error)


def _last_byte(handle: Any) -> bytes:
    handle.seek(-1, os.SEEK_END)
    last = handle.read(1)
    handle.seek(0, os.SEEK_END)
    return last


def _parse(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """An outbox line as an event, or why it is not one (None, None for a blank line)."""
    if not line.strip():
        return None, None
    try:
        event = json.loads(line)
    except ValueError as error:
        return None, f"not JSON: {error}"
    if not isinstance(event, dict) or "eventTime" not in event:
        return None, "not an OpenLineage event (a JSON object with eventTime)"
    return event, None


def _appends_json_lines(transport: Transport) -> bool:
    config = getattr(transport, "config", None)
    return (
        isinstance(transport, FileTransport)
        and bool(getattr(config, "append", False))
        and not getattr(config, "debug_mode", False)
    )


@dataclass
class FlushResult:
    delivered: int
    pending: int
    error: str | None = None
    set_aside: int = 0  # outbox lines that were not events, moved to the dead-letter file


@dataclass
class EmitResult:
    run_id: str
    status: str  # emitted | already-emitted | disabled | not-finished
    events: int = 0
    flush: FlushResult | None = None
    outbox: Path | None = None

    @property
    def notice(self) -> str | None:
        """One line for the person who ran it when events are left pending; else None."""
        if self.flush is None or not self.flush.error:
            return None
        where = f" in {self.outbox}" if self.outbox else ""
        return (
            f"OpenLineage: {self.flush.pending} event(s) pending{where}, not delivered "
            f"({_brief(self.flush.error)}); `ddp lineage flush` resumes delivery"
        )


def _brief(error: str) -> str:
    """The gist of a transport error: requests' connection errors run to a paragraph."""
    errno = re.search(r"\[Errno -?\d+\][^'\")\]]*", error)
    if errno:
        return f"{error.split(':', 1)[0]}: {errno.group(0).strip()}"
    first = (error.strip().splitlines() or [error])[0]
    return first if len(first) <= 160 else first[:157] + "..."


class _QuietConsoleFallback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Couldn't find any OpenLineage transport" not in record.getMessage()


def make_transport(folder: Path) -> Transport | None:
    """The transport the OpenLineage client's configuration names; None when disabled.

    Without any configuration the client would print to the console; ddp writes JSON lines
    under the instance directory instead.
    """
    client_log = logging.getLogger("openlineage.client.client")
    quiet = _QuietConsoleFallback()
    client_log.addFilter(quiet)
    try:
        client = OpenLineageClient()
    finally:
        client_log.removeFilter(quiet)
    if client.transport.kind == "noop":
        return None
    configured = bool(client.config.transport) or bool(os.environ.get("OPENLINEAGE_URL"))
    if not configured:
        folder.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(folder / "events.jsonl"), append=True))
    if client.transport.kind == "console":
        _show_console_events()
    return client.transport


def _show_console_events() -> None:
    """The console transport logs each event at INFO: make sure that reaches stderr."""
    console = logging.getLogger("openlineage.client.transport.console")
    if not console.handlers and not logging.getLogger().handlers:
        console.addHandler(logging.StreamHandler())
    if console.getEffectiveLevel() > logging.INFO:
        console.setLevel(logging.INFO)


def one_short_attempt(transport: Transport) -> Transport:
    """The transport for a run's own delivery attempt: an HTTP transport without retries and
    with its timeout capped at :data:`RUN_ATTEMPT_TIMEOUT`; any other transport as it is.

    The client's HTTP default retries a refused connection five times with back-off (about ten
    seconds per event); a run pays one request instead and leaves the rest to
    ``ddp lineage flush``, which uses the transport as configured.
    """
    if not isinstance(transport, HttpTransport):
        return transport
    config = transport.config
    retry = {**config.retry, "total": 0, "connect": 0, "read": 0, "status": 0}
    quick = attr.evolve(
        config,
        timeout=min(float(config.timeout), RUN_ATTEMPT_TIMEOUT),
        retry=retry,
        session=None,
        adapter=None,
    )
    return HttpTransport(quick)


def lineage_disabled() -> bool:
    return os.environ.get("OPENLINEAGE_DISABLED", "").lower().strip() == "true"


def _plain_value(_instance: Any, _field: Any, value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        items = [_drop_empty(v) for v in value if v is not None]
        return [v for v in items if v != {}]
    return value


def event_dict(event: Any) -> dict[str, Any]:
    """``Serde.to_dict(event)`` of the OpenLineage client, in one pass over the attrs tree.

    The client's version converts the whole event with ``attr.asdict`` and then walks the
    result again to drop nulls and convert enums, dates and UUIDs: 40 % of emitting a demo
    run's lineage. Here ``attr.asdict`` skips null attributes and converts values as it goes;
    only plain dicts and lists (facet maps) are walked again. ``tests/test_lineage.py`` checks
    that both give the same document for every event of a demo run.
    """
    document = attr.asdict(
        event, filter=lambda _attribute, value: value is not None, value_serializer=_plain_value
    )
    return _drop_empty(document)


def emit_run_lineage(
    instance: dg.DagsterInstance, run_id: str, paths: ProjectPaths | None = None
) -> EmitResult:
    """Build and emit the OpenLineage events of a finished run (once per run id)."""
    if lineage_disabled():
        return EmitResult(run_id, "disabled")
    outbox = Outbox(lineage_dir(instance))
    if outbox.marker(run_id).exists():
        return EmitResult(run_id, "already-emitted")
    from ddp_assets.lineage.run import run_events

    events = run_events(instance, run_id, paths or ProjectPaths.discover())
    if events is None:
        return EmitResult(run_id, "not-finished")
    transport = make_transport(outbox.folder)
    if transport is None:
        return EmitResult(run_id, "disabled")
    emitted = outbox.emit_once(run_id, [event_dict(event) for event in events], transport)
    if emitted.notice and emitted.flush is not None:
        log.warning("%s (%s)", emitted.notice, emitted.flush.error)
    return emitted


def emit_lineage_safely(
    instance: dg.DagsterInstance, run_id: str, paths: ProjectPaths | None = None
) -> EmitResult | None:
    """:func:`emit_run_lineage` that only logs a warning on error: lineage never breaks a run."""
    try:
        result = emit_run_lineage(instance, run_id, paths)
    except Exception as error:
        log.warning("OpenLineage events for run %s not emitted: %s", run_id, error, exc_info=True)
        return None
    if result.notice and not _shown(log):
        print(result.notice, file=sys.stderr)  # one line the user must see
    return result


def _shown(logger: logging.Logger) -> bool:
    """Whether a warning of ``logger`` reaches a console: a stream handler on its way up, or
    no handler at all (Python's last resort prints it). Soda's root log capturer, installed
    on import, is not a console: without this, a run's pending events would go unmentioned."""
    current: logging.Logger | None = logger
    handlers = 0
    while current is not None:
        for handler in current.handlers:
            handlers += 1
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and handler.level <= logging.WARNING
            ):
                return True
        if not current.propagate:
            break
        current = current.parent
    return handlers == 0


def flush(instance_or_home: dg.DagsterInstance | Path) -> FlushResult:
    """Deliver the events kept on disk, in order, each once."""
    outbox = Outbox(lineage_dir(instance_or_home))
    if lineage_disabled():
        return FlushResult(0, len(outbox.pending()), "OPENLINEAGE_DISABLED is set")
    transport = make_transport(outbox.folder)
    if transport is None:
        return FlushResult(0, len(outbox.pending()), "OpenLineage is disabled")
    with outbox.locked():
        return outbox.deliver(transport)

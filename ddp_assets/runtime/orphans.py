"""Runs whose process is gone: marked failed, and their DuckDB writer slot given back.

A ``ddp materialize`` runs in its own process through the Dagster instance. Killed (``kill
-9``, out of memory, a closed terminal), it never reports its end: the run stays STARTED and
keeps its ``duckdb_writer`` pool slot (limit 1), or its pending claim on it, and every later
writer waits forever. The daemon's run monitoring (``dagster.yaml``) only looks after the runs
it launched, and only while ``dagster dev`` runs; so every ``ddp materialize`` also cleans up
before its run starts, and while its steps wait for the pool:

- each ``ddp`` run records the process that executes it in its tags (:func:`worker_tags`:
  host, pid and the process's identity, so that a pid the system reused is not mistaken for
  the run's);
- an unfinished run whose recorded process is not alive on this host is reported failed
  (``DagsterInstance.report_run_failed``, which sets its status) and its pool slots and
  pending claims are freed (``instance.event_log_storage.free_concurrency_slots_for_run``,
  what Dagster's daemon and the UI's "free slots" call);
- a finished run that still holds slots has them freed too, at once if it was a ``ddp`` run
  whose process is gone, otherwise ``run_monitoring.free_slots_after_run_end_seconds`` after
  its end, as the daemon would.

Runs of another host, or of another PID namespace (another container), are never judged here:
their own host's ``ddp`` or Dagster's run monitoring looks after them.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

HOST_TAG = "ddp/host"
PID_TAG = "ddp/pid"
# "<pid namespace>:<start time in clock ticks since boot>" (Linux): tells the recorded process
# apart from a later one given the same pid, and a pid of another container from ours
PROCESS_TAG = "ddp/process"

UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}
DEFAULT_FREE_SLOTS_AFTER_SECONDS = 30  # when dagster.yaml's run_monitoring does not say
WATCH_INTERVAL_SECONDS = 2.0


@dataclass(frozen=True)
class CleanedRun:
    run_id: str
    status: str  # the status it had: STARTED, ..., or FAILURE for a finished run's slots
    pid: int | None
    failed: bool  # reported failed here (False: only its slots were freed)

    def describe(self) -> str:
        process = f"its process {self.pid} is gone" if self.pid else "it has ended"
        if self.failed:
            return (
                f"ddp: run {self.run_id} was {self.status} but {process}: "
                "marked it failed and freed its duckdb_writer slot"
            )
        return f"ddp: run {self.run_id} ({self.status}, {process}) still held a pool slot: freed it"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    """The process's start time from /proc (None: no such process, or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (command) "
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of proc(5): starttime


def _has_proc() -> bool:
    return os.path.isdir(f"/proc/{os.getpid()}")


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def worker_tags(pid: int | None = None) -> dict[str, str]:
    """Tags naming the process that executes a run (this one by default)."""
    pid = os.getpid() if pid is None else pid
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    ticks = _start_ticks(pid) if _has_proc() else None
    if ticks is not None:
        tags[PROCESS_TAG] = f"{_pid_namespace()}:{ticks}"
    return tags


def process_gone(tags: dict[str, str]) -> bool | None:
    """Whether the process recorded in a run's tags is gone: None when this host cannot tell
    (another host or container, or a run without ddp's tags)."""
    if tags.get(HOST_TAG) != socket.gethostname():
        return None
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return None
    recorded = tags.get(PROCESS_TAG)
    if recorded and _has_proc():
        namespace, _, ticks = recorded.rpartition(":")
        if namespace != _pid_namespace():
            return None
        return _start_ticks(pid) != ticks
    if recorded:  # recorded with /proc, judged without it: not the same system
        return None
    return not _pid_exists(pid)


def _pid_of(run: dg.DagsterRun) -> int | None:
    try:
        return int(run.tags.get(PID_TAG, ""))
    except ValueError:
        return None


def _fail(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Report a dead run failed, unless it finished meanwhile (another ``ddp`` cleaned it)."""
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status in FINISHED:
        return False
    instance.report_run_failed(
        current,
        f"The process that executed this run (pid {_pid_of(run)} on "
        f"{run.tags.get(HOST_TAG)}) is gone: it was killed or crashed. "
        "Marked failed by ddp, its pool slots freed.",
    )
    return True


def clean_up_dead_runs(instance: dg.DagsterInstance) -> list[CleanedRun]:
    """Fail the unfinished runs whose process is gone and free the slots nobody will give back."""
    cleaned: list[CleanedRun] = []
    host = socket.gethostname()
    done: set[str] = set()
    for record in instance.get_run_records(
        dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host})
    ):
        run = record.dagster_run
        if process_gone(dict(run.tags)) is not True:
            continue
        failed = _fail(instance, run)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        done.add(run.run_id)
        if failed:
            cleaned.append(CleanedRun(run.run_id, run.status.value, _pid_of(run), True))
    cleaned.extend(_free_slots_of_ended_runs(instance, done))
    return cleaned


def _free_slots_of_ended_runs(instance: dg.DagsterInstance, skip: set[str]) -> list[CleanedRun]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = storage.get_concurrency_run_ids() - skip  # slots held or claims pending
    if not holders:
        return []
    settings = instance.run_monitoring_settings or {}
    grace = settings.get("free_slots_after_run_end_seconds") or DEFAULT_FREE_SLOTS_AFTER_SECONDS
    records = {
        r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=[*holders]))
    }
    cleaned: list[CleanedRun] = []
    now = time.time()
    for run_id in sorted(holders):
        record = records.get(run_id)
        if record is None:  # deleted run
            storage.free_concurrency_slots_for_run(run_id)
            continue
        run = record.dagster_run
        if run.status not in FINISHED:
            continue  # alive, or not ours to judge (the loop above took our dead ones)
        gone = process_gone(dict(run.tags))
        ended = record.end_time or record.update_timestamp.timestamp()
        if gone is True or ended + grace < now:
            storage.free_concurrency_slots_for_run(run_id)
            cleaned.append(CleanedRun(run_id, run.status.value, _pid_of(run), False))
    return cleaned


def report(cleaned: list[CleanedRun], write: Callable[[str], object] | None = None) -> None:
    """One line on stderr per run cleaned up."""
    for run in cleaned:
        (write or _stderr)(run.describe())


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def watching_for_dead_runs(
    instance: dg.DagsterInstance, interval: float = WATCH_INTERVAL_SECONDS
) -> Iterator[None]:
    """Clean up dead runs every few seconds while the block runs.

    A run holding the writer slot may die while this process's steps wait for the slot:
    without another look, they would wait for it forever. A look is one query of the pool's
    claims, and a few more while a run holds or claims a slot.
    """
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval):
            try:
                if instance.event_log_storage.get_concurrency_run_ids():
                    report(clean_up_dead_runs(instance))
            except Exception as error:  # never break the run over its cleanup
                _stderr(f"ddp: could not check for dead runs: {error}")

    thread = threading.Thread(target=watch, name="ddp-dead-run-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)

"""A killed ``ddp materialize`` never wedges the platform (ddp_assets/runtime/orphans.py).

Real ``ddp materialize customers`` processes are killed (SIGKILL to their process group) once
their run has reached a given stage, as the Dagster instance records it: the run created, its
start, each step's start, dbt building, the audit, the publish, a claim waiting for the DuckDB
writer slot, the slot held while another run waits. After each kill the published port is
what it was, and the next run finishes within a deadline, having failed the dead run and freed
its slot. Every wait polls the instance or the process to a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE

import dagster as dg
import duckdb
import pytest

from ddp_assets.runtime.materialize import RunOutcome
from ddp_assets.runtime.orphans import HOST_TAG, PID_TAG, PROCESS_TAG, process_gone, worker_tags
from tests.conftest import DemoEnv

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DDP = str(Path(sys.executable).parent / "ddp")
PRODUCT = "customers"
STAGE_DEADLINE = 90.0  # seconds for a run to reach the stage it is killed at
RUN_DEADLINE = 120.0  # seconds for a run that must finish
POLL = 0.05
POOL = "duckdb_writer"


@pytest.fixture(scope="module")
def demo(demo_env: DemoEnv) -> DemoEnv:
    """The session's demo, its port published once."""
    _rerun(demo_env)
    return demo_env


@pytest.fixture(scope="module")
def instance(demo: DemoEnv):
    with dg.DagsterInstance.from_config(str(demo.dagster_home)) as opened:
        yield opened


def _rerun(demo: DemoEnv) -> RunOutcome:
    """``ddp materialize customers`` in this process (its code already loaded), to a deadline."""
    from ddp_assets.runtime.materialize import materialize

    done: list[RunOutcome | BaseException] = []

    def run() -> None:
        try:
            done.append(materialize(demo.paths, [PRODUCT], log_level="ERROR"))
        except BaseException as error:  # re-raised below, in the test's thread
            done.append(error)

    thread = threading.Thread(target=run, name="rerun", daemon=True)
    thread.start()
    thread.join(RUN_DEADLINE)
    if not done:
        pytest.fail(f"the run did not finish in {RUN_DEADLINE:.0f} s: the platform is wedged")
    (outcome,) = done
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome.success, outcome.errors or outcome.failed_checks
    return outcome


@dataclass
class Run:
    process: subprocess.Popen[str]

    def communicate(self, timeout: float) -> tuple[str, str]:
        try:
            return self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            _, err = self.process.communicate()
            pytest.fail(f"the run did not finish in {timeout:.0f} s:\n{err[-3000:]}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended by itself
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _start(demo: DemoEnv) -> Run:
    return Run(
        subprocess.Popen(
            [DDP, "materialize", PRODUCT, "--json"],
            env=demo.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, killed whole
        )
    )


def _must_finish(run: Run) -> tuple[dict, str]:
    stdout, stderr = run.communicate(RUN_DEADLINE)
    assert run.process.returncode == 0, stderr[-3000:]
    outcome = json.loads(stdout)
    assert outcome["success"], outcome
    return outcome, stderr


def _poll(what: str, check: Callable[[], object], *runs: Run) -> object:
    """Look until ``check`` finds something, while every process runs, to a deadline."""
    deadline = time.monotonic() + STAGE_DEADLINE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        ended = [run for run in runs if run.process.poll() is not None]
        if ended:
            found = check()  # it may have got there and ended since the last look
            if found:
                return found
            _, stderr = ended[0].process.communicate()
            pytest.fail(f"the run ended before {what}:\n{stderr[-3000:]}")
        time.sleep(POLL)
    pytest.fail(f"no run reached {what} in {STAGE_DEADLINE:.0f} s")


def _run_of(instance: dg.DagsterInstance, run: Run) -> dg.DagsterRun | None:
    records = instance.get_run_records(dg.RunsFilter(tags={PID_TAG: str(run.process.pid)}), limit=1)
    return records[0].dagster_run if records else None


# ------------------------------------------------------------------------------------------
# Stages of one run, as its event log shows them

Reached = Callable[[dg.EventLogEntry], bool]


def _event(kind: dg.DagsterEventType, *, step: str | None = None, asset: str | None = None):
    def reached(entry: dg.EventLogEntry) -> bool:
        event = entry.dagster_event
        if event is None or event.event_type != kind:
            return False
        if step is not None and entry.step_key != step:
            return False
        if asset is not None:
            key = event.asset_key
            if key is None and event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                key = event.event_specific_data.asset_key  # type: ignore[union-attr]
            return key is not None and key.to_user_string() == asset
        return True

    return reached


def _log(startswith: str) -> Reached:
    def reached(entry: dg.EventLogEntry) -> bool:
        return entry.dagster_event is None and entry.user_message.startswith(startswith)

    return reached


def _created(entry: dg.EventLogEntry) -> bool:
    return True  # any event: the run exists and began to record its plan


STAGES: dict[str, Reached] = {
    "the run is created": _created,
    "the run has started": _event(dg.DagsterEventType.RUN_START),
    "the landing step started": _event(dg.DagsterEventType.STEP_START, step="customers__landing"),
    "the dbt step started": _event(dg.DagsterEventType.STEP_START, step="ddp_dbt_models"),
    "dbt is building": _event(
        dg.DagsterEventType.ASSET_MATERIALIZATION, asset="customers/stg_customers"
    ),
    "the port is audited": _event(
        dg.DagsterEventType.ASSET_CHECK_EVALUATION, asset="customers/staging/customers"
    ),
    "the port is being published": _log("Finished dbt command"),
    "the port is published": _log("published customers.customers"),
}


def _published(demo: DemoEnv) -> tuple[tuple[int, str], tuple[int, str] | None]:
    """What consumers read: the port's rows and checksum, and its published version's."""
    from ddp_assets.contracts.wap import checksum, published_version

    with duckdb.connect(str(demo.data_dir / "warehouse.duckdb"), read_only=True) as connection:
        version = published_version(connection, PRODUCT, PRODUCT)
        actual = checksum(connection, PRODUCT, PRODUCT)
    return actual, (version.rows, version.checksum) if version else None


def _assert_published_unchanged(demo: DemoEnv, before) -> None:
    after = _published(demo)
    assert after[0] == before[0], "the killed run changed what consumers read"
    assert after[1] == after[0], "_ddp.published_versions does not describe the published table"


def _assert_rerun_cleans_up(demo, instance, killed: dg.DagsterRun, capfd) -> None:
    capfd.readouterr()
    _rerun(demo)
    stderr = capfd.readouterr().err
    assert killed.run_id in stderr, stderr[-3000:]  # the user is told what was cleaned
    record = instance.get_run_by_id(killed.run_id)
    assert record is not None and record.status == dg.DagsterRunStatus.FAILURE
    assert killed.run_id not in instance.event_log_storage.get_concurrency_run_ids()


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_run_killed_at_any_stage_blocks_nothing(demo, instance, stage: str, capfd) -> None:
    before = _published(demo)
    run = _start(demo)
    reached = STAGES[stage]

    try:
        killed = _poll("its run", lambda: _run_of(instance, run), run)
        assert isinstance(killed, dg.DagsterRun)
        cursor: list[str | None] = [None]

        def at_stage() -> bool:  # reads the events recorded since the last look
            page = instance.get_records_for_run(killed.run_id, cursor=cursor[0])
            cursor[0] = page.cursor
            return any(reached(record.event_log_entry) for record in page.records)

        _poll(stage, at_stage, run)
    finally:
        run.kill()
    assert isinstance(killed, dg.DagsterRun)
    current = instance.get_run_by_id(killed.run_id)
    assert current is not None and not current.is_finished, (
        f"the run finished before it was killed ({stage})"
    )
    _assert_published_unchanged(demo, before)
    _assert_rerun_cleans_up(demo, instance, killed, capfd)


def _holder_and_waiter(instance, first: Run, second: Run) -> tuple[Run, Run, dg.DagsterRun]:
    """Poll until one run holds the writer slot while the other's claim waits for it."""
    runs = (first, second)

    def look():
        by_id = {}
        for run in runs:
            found = _run_of(instance, run)
            if found is not None:
                by_id[found.run_id] = (run, found)
        if len(by_id) < 2:
            return None
        info = instance.event_log_storage.get_concurrency_info(POOL)
        holding = info.active_run_ids & by_id.keys()
        waiting = info.pending_run_ids & by_id.keys()
        if len(holding) == 1 and len(waiting) == 1 and holding != waiting:
            (holder,) = holding
            (waiter,) = waiting
            return by_id[holder][0], by_id[waiter][0], by_id
        return None

    found = _poll("a claim waiting for the writer slot", look, *runs)
    holder, waiter, by_id = found  # type: ignore[misc]
    return holder, waiter, next(r for _, (p, r) in by_id.items() if p is holder)


def test_a_run_killed_while_waiting_for_the_writer_slot_blocks_nothing(
    demo, instance, capfd
) -> None:
    before = _published(demo)
    first, second = _start(demo), _start(demo)
    try:
        holder, waiter, _ = _holder_and_waiter(instance, first, second)
        killed = _run_of(instance, waiter)
        assert killed is not None
        waiter.kill()
        # the slot its claim would have been given goes to nobody dead
        _must_finish(holder)
    finally:
        first.kill()
        second.kill()
    _assert_published_unchanged(demo, before)
    record = instance.get_run_by_id(killed.run_id)
    assert record is not None
    if not record.is_finished:  # the holder did not need its slot back: the next run cleans up
        _assert_rerun_cleans_up(demo, instance, killed, capfd)
    else:
        assert record.status == dg.DagsterRunStatus.FAILURE
        assert killed.run_id not in instance.event_log_storage.get_concurrency_run_ids()


def test_the_run_waiting_goes_on_when_the_slot_holder_is_killed(demo, instance) -> None:
    """The waiting run itself sees the holder die, fails it and takes the slot."""
    before = _published(demo)
    first, second = _start(demo), _start(demo)
    try:
        holder, waiter, killed = _holder_and_waiter(instance, first, second)
        holder.kill()
        _, stderr = _must_finish(waiter)
    finally:
        first.kill()
        second.kill()
    assert killed.run_id in stderr, stderr[-3000:]
    record = instance.get_run_by_id(killed.run_id)
    assert record is not None and record.status == dg.DagsterRunStatus.FAILURE
    assert killed.run_id not in instance.event_log_storage.get_concurrency_run_ids()
    _assert_published_unchanged(demo, before)


def test_a_run_process_is_judged_by_host_pid_and_start_time() -> None:
    """A pid given to a later process, or one of another host or container, is not the run's."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    try:
        tags = worker_tags(child.pid)
        assert tags[PID_TAG] == str(child.pid)
        assert process_gone(tags) is False
        assert process_gone({**tags, HOST_TAG: "another-host"}) is None
        assert process_gone({**tags, PID_TAG: "not a pid"}) is None
        if PROCESS_TAG in tags:  # Linux: the pid namespace and the start time
            namespace, _, ticks = tags[PROCESS_TAG].rpartition(":")
            assert process_gone({**tags, PROCESS_TAG: f"{namespace}:{int(ticks) + 1}"}) is True
            assert process_gone({**tags, PROCESS_TAG: f"pid:[1]:{ticks}"}) is None
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while process_gone(tags) is not True:  # killed, not yet waited for: a zombie, gone too
        assert time.monotonic() < deadline, "a killed process still counts as alive"
        time.sleep(POLL)
    child.wait()
    assert process_gone(tags) is True

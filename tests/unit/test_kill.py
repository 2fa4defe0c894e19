"""`kill`: with no driver alive it stops, collects and records runs itself; beside a live
driver it stops the container and leaves the record to the driver."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmos_driver import kill as kill_module
from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome
from cosmos_driver.errors import ExecutionError
from cosmos_driver.kill import Killer
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.phases import RetryPolicy
from cosmos_driver.store import RunStore
from tests.fakes.slurm import Array, FakeSlurm

BATCH_ID = "demo-0123abcd"
GRACE = 3


class FakeAdapter:
    """Answers stop and collect; collect puts a log and an output into the fetch dir."""

    def __init__(self) -> None:
        self.calls: list[PlaybookCall] = []
        self.lock = threading.Lock()

    def run(self, call: PlaybookCall, log_path: Path | None = None, cancel: Any = None):
        with self.lock:
            self.calls.append(call)
        if call.playbook == "job_collect.yml":
            fetch = Path(call.extravars["cosmos_job_fetch_dir"])
            (fetch / "logs").mkdir(parents=True, exist_ok=True)
            (fetch / "outputs").mkdir(parents=True, exist_ok=True)
            (fetch / "logs" / "container.log").write_text("12/35 [\nReceived SIGTERM\n")
        return PlaybookOutcome("successful", 0, {"exists": True})

    def playbooks_of(self, run_id: str) -> list[str]:
        return [c.playbook for c in self.calls if c.extravars["cosmos_job_run_id"] == run_id]


@pytest.fixture
def adapter() -> FakeAdapter:
    return FakeAdapter()


@pytest.fixture
def killer(store, adapter) -> Killer:
    return Killer(JobLifecycle(adapter, store, retry=RetryPolicy(delays=())), GRACE)


def save(store: RunStore, name: str, state: RunState, host: str | None = "h1") -> RunRecord:
    record = RunRecord(f"{BATCH_ID}.{name}", BATCH_ID, name, host=host)
    for step in (RunState.PENDING, RunState.STAGING, RunState.RUNNING):
        record.move_to(step)
        if step is state:
            break
    if state is RunState.SUCCEEDED:
        record.move_to(RunState.COLLECTING)
        record.move_to(RunState.SUCCEEDED)
    elif state is RunState.FAILED:
        record.fail(FailureReason.CONTAINER_EXIT, "container exited with code 1")
    store.save_run(record)
    return record


# --- no driver alive -----------------------------------------------------------------------


def test_a_running_run_is_collected_with_the_grace_and_ends_cancelled(store, adapter, killer):
    running = save(store, "job-1", RunState.RUNNING)
    assert not store.is_driven(BATCH_ID)

    (record,) = killer.kill([running.run_id])

    assert adapter.playbooks_of(running.run_id) == ["job_collect.yml"]
    (collect,) = adapter.calls
    assert collect.limit == "h1"
    assert collect.extravars["cosmos_job_stop_grace"] == GRACE
    assert collect.extravars["cosmos_job_run_id"] == running.run_id
    assert collect.extravars["cosmos_job_batch_id"] == BATCH_ID
    assert "cosmos_job_command" not in collect.extravars  # a run known by its record only
    assert record.state is RunState.CANCELLED
    assert record.failure.reason is FailureReason.CANCELLED
    assert record.failure.log_tail == ["12/35 [", "Received SIGTERM"]
    assert "logs/container.log" in record.logs
    assert [t.state for t in record.history][-2:] == [RunState.RUNNING, RunState.CANCELLED]
    assert any(f"grace {GRACE} s" in n.text for n in record.notes)
    assert store.load_run(running.run_id) == record


def test_a_pending_run_ends_cancelled_without_a_playbook(store, adapter, killer):
    pending = save(store, "job-1", RunState.PENDING, host=None)
    (record,) = killer.kill([pending.run_id])
    assert adapter.calls == []
    assert record.state is RunState.CANCELLED
    assert record.failure.reason is FailureReason.CANCELLED
    assert [t.state for t in record.history] == [RunState.PENDING, RunState.CANCELLED]
    # The marker stays, so a driver that starts this batch later knows.
    assert store.cancel_requested(pending.run_id)


@pytest.mark.parametrize("state", [RunState.SUCCEEDED, RunState.FAILED])
def test_an_ended_run_is_left_as_it_is(store, adapter, killer, state):
    ended = save(store, "job-1", state)
    before = store.load_run(ended.run_id)
    (record,) = killer.kill([ended.run_id])
    assert record == before
    assert store.load_run(ended.run_id) == before
    assert adapter.calls == []
    assert not store.cancel_requested(ended.run_id)


def test_several_runs_are_killed_and_returned_in_order(store, adapter, killer):
    runs = [
        save(store, "a", RunState.RUNNING, host="h1"),
        save(store, "b", RunState.SUCCEEDED),
        save(store, "c", RunState.STAGING, host="h2"),
        save(store, "d", RunState.PENDING, host=None),
    ]
    records = killer.kill([r.run_id for r in runs])
    assert [r.run_id for r in records] == [r.run_id for r in runs]
    assert [r.state for r in records] == [
        RunState.CANCELLED,
        RunState.SUCCEEDED,
        RunState.CANCELLED,
        RunState.CANCELLED,
    ]
    assert sorted((c.extravars["cosmos_job_run_id"], c.limit) for c in adapter.calls) == [
        (runs[0].run_id, "h1"),
        (runs[2].run_id, "h2"),
    ]


def test_an_unknown_run_is_an_error(killer):
    with pytest.raises(ExecutionError, match="no record of run nope"):
        killer.kill(["nope"])


# --- beside a live driver ------------------------------------------------------------------


def _drive(root: str, held, release) -> None:
    with RunStore(Path(root)).driving(BATCH_ID):
        held.set()
        release.wait(30)


@pytest.fixture
def driver(store) -> Iterator[None]:
    """Another process holds the batch, as a running `infer` does."""
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    process = context.Process(target=_drive, args=(str(store.root), held, release))
    process.start()
    try:
        assert held.wait(5)
        yield
    finally:
        release.set()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def mark_cancelled_later(store: RunStore, run_id: str, delay: float) -> threading.Thread:
    """What the live driver does once the stopped container's wait returns."""

    def conclude() -> None:
        time.sleep(delay)
        store.update_run(run_id, lambda r: r.fail(FailureReason.CANCELLED, "by the driver"))

    thread = threading.Thread(target=conclude)
    thread.start()
    return thread


def test_beside_a_driver_kill_stops_the_container_and_waits_for_the_record(
    store, adapter, killer, driver
):
    running = save(store, "job-1", RunState.RUNNING, host="h2")
    assert store.is_driven(BATCH_ID)
    concluder = mark_cancelled_later(store, running.run_id, 0.3)
    started = time.monotonic()

    (record,) = killer.kill([running.run_id])

    concluder.join()
    assert time.monotonic() - started >= 0.3
    assert adapter.playbooks_of(running.run_id) == ["job_stop.yml"]
    (stop,) = adapter.calls
    assert stop.limit == "h2"
    assert stop.extravars["cosmos_job_stop_grace"] == GRACE
    assert store.cancel_requested(running.run_id)
    assert record.state is RunState.CANCELLED
    assert record.failure.detail == "by the driver"
    assert store.load_run(running.run_id) == record


def test_beside_a_driver_a_pending_run_is_left_to_the_driver(store, adapter, killer, driver):
    pending = save(store, "job-1", RunState.PENDING, host=None)
    concluder = mark_cancelled_later(store, pending.run_id, 0.1)
    (record,) = killer.kill([pending.run_id])
    concluder.join()
    assert adapter.calls == []
    assert record.state is RunState.CANCELLED
    assert record.failure.detail == "by the driver"


def test_a_driver_that_never_records_the_cancel_is_done_for_by_kill(
    store, adapter, monkeypatch, driver
):
    monkeypatch.setattr(kill_module, "DRIVER_SETTLE_SECONDS", 0.2)
    killer = Killer(JobLifecycle(adapter, store, retry=RetryPolicy(delays=())), grace=0)
    running = save(store, "job-1", RunState.RUNNING)

    (record,) = killer.kill([running.run_id])

    assert adapter.playbooks_of(running.run_id) == ["job_stop.yml", "job_collect.yml"]
    assert record.state is RunState.CANCELLED
    assert record.failure.reason is FailureReason.CANCELLED


def slurm_record(store: RunStore, job_id: str | None, name: str = "") -> RunRecord:
    record = save(store, "in-slurm", RunState.RUNNING, host="login-1")
    record.slurm_job_id, record.slurm_array_task_id = job_id, 0
    record.slurm_job_name = name or f"cosmos-{BATCH_ID}.1gpu.0123abcd"
    store.save_run(record)
    return record


@pytest.fixture
def slurm(store, mp4) -> FakeSlurm:
    return FakeSlurm(store, mp4, polls_running=0)


def slurm_killer(store, slurm: FakeSlurm) -> Killer:
    return Killer(JobLifecycle(slurm, store, retry=RetryPolicy(delays=())), GRACE)


def test_a_run_in_slurm_is_scancelled_then_collected_and_ends_cancelled(store, slurm):
    record = slurm_record(store, "100")
    slurm.arrays.append(Array("100", 1, [record.run_id], name=record.slurm_job_name))
    slurm.ends[record.run_id] = "CANCELLED"

    (killed,) = slurm_killer(store, slurm).kill([record.run_id])

    assert slurm.cancelled == [("100", [0])]
    playbooks = [c.playbook for c in slurm.calls]
    assert playbooks[:2] == ["slurm_cancel.yml", "slurm_poll.yml"]  # scancel, see it end
    assert "job_stop.yml" not in playbooks
    assert (killed.state, killed.failure.reason) == (RunState.CANCELLED, FailureReason.CANCELLED)
    assert "scancel 100_0" in [note.text for note in killed.notes]


def test_a_run_whose_job_id_was_never_recorded_is_found_by_name_and_scancelled(store, slurm):
    record = slurm_record(store, None)
    slurm.arrays.append(Array("107", 1, [record.run_id], name=record.slurm_job_name))
    (killed,) = slurm_killer(store, slurm).kill([record.run_id])
    assert slurm.cancelled == [("107", [0])]
    assert killed.state is RunState.CANCELLED


def test_beside_a_driver_a_run_in_slurm_is_scancelled_not_stopped_on_the_login_host(
    store, slurm, driver
):
    record = slurm_record(store, "100")
    slurm.arrays.append(Array("100", 1, [record.run_id], name=record.slurm_job_name))
    concluder = mark_cancelled_later(store, record.run_id, 0.3)
    (killed,) = slurm_killer(store, slurm).kill([record.run_id])
    concluder.join()
    assert slurm.cancelled == [("100", [0])]
    assert [c.playbook for c in slurm.calls if c.playbook.startswith("job_")] == []
    assert killed.failure.detail == "by the driver"

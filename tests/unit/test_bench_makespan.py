"""The bench's naive loop (launch, wait, collect one run, blocking) against the fake
adapter: it needs the lab to be measured, but its logic is checked here."""

from __future__ import annotations

from pathlib import Path

from bench.batch_makespan import one_run
from cosmos_driver.ansible_adapter import PlaybookOutcome, TaskFailure
from cosmos_driver.model import Job
from cosmos_driver.records import FailureReason, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.spec import prepare
from tests.fakes.adapter import (
    BATCH_ID,
    HOST,
    NO_RETRY,
    PHASES,
    RUN_ID,
    FakeAdapter,
    pending_record,
)


def a_job(tmp_path: Path) -> Job:
    color = tmp_path / "c.mp4"
    color.write_bytes(b"color")
    return Job("j", "a prompt", {"color": color}, {"edge": 1.0})


def test_one_run_launches_waits_and_is_collected_by_the_wait(store, mp4, tmp_path):
    job = a_job(tmp_path)
    pending_record(store, job)
    adapter = FakeAdapter(store, mp4)
    life = JobLifecycle(adapter, store, retry=NO_RETRY)
    record = one_run(life, prepare(store, BATCH_ID, RUN_ID, job), HOST)
    assert record.state is RunState.SUCCEEDED
    assert adapter.playbooks == PHASES


def test_one_run_whose_launch_fails_is_collected_and_fails(store, mp4, tmp_path):
    job = a_job(tmp_path)
    pending_record(store, job)
    failure = TaskFailure(HOST, "Start", "image not found", False)
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_launch.yml": PlaybookOutcome("failed", 2, {}, [failure])}
    )
    life = JobLifecycle(adapter, store, retry=NO_RETRY)
    record = one_run(life, prepare(store, BATCH_ID, RUN_ID, job), HOST)
    assert record.failure.reason is FailureReason.PLAYBOOK_FAILED
    assert adapter.playbooks == ["job_launch.yml", "job_collect.yml"]

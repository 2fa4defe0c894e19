"""Resume: which ticket a run of a re-run batch gets from its record and the containers
its hosts still have."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome, TaskFailure
from cosmos_driver.batch import Job
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.resume import FoundContainers, find_batch_containers, ticket_for
from cosmos_driver.run.types import Placement, PreparedRun
from cosmos_driver.scheduler import Mode

BATCH_ID = "demo-0123abcd"
RUN_ID = f"{BATCH_ID}.job-1"
NOTHING_FOUND = FoundContainers({}, frozenset())


@pytest.fixture
def run(tmp_path: Path) -> PreparedRun:
    job = Job("job-1", "a prompt", {"color": tmp_path / "c.mp4"}, {"edge": 1.0})
    return PreparedRun(RUN_ID, BATCH_ID, job, {"color": "abc.mp4"}, tmp_path / "spec.json")


def record_in(state: RunState, host: str | None = "h1", devices=("2", "3"), exit_code=None):
    record = RunRecord(RUN_ID, BATCH_ID, "job-1", host=host)
    record.gpu_devices = list(devices)
    record.exit_code = exit_code
    for step in (RunState.PENDING, RunState.STAGING, RunState.RUNNING, RunState.COLLECTING):
        record.move_to(step)
        if step is state:
            return record
    if state is RunState.SUCCEEDED:
        record.move_to(state)
    else:
        reason = FailureReason.CANCELLED if state is RunState.CANCELLED else FailureReason.TIMEOUT
        record.fail(reason, "ended")
    return record


def test_a_run_without_a_record_is_fresh(run):
    ticket = ticket_for(run, None, NOTHING_FOUND)
    assert ticket.run is run
    assert ticket.mode is Mode.FRESH
    assert ticket.placement is None


@pytest.mark.parametrize(
    "state", [RunState.PENDING, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]
)
def test_a_run_not_in_flight_is_fresh_even_with_a_container(run, state):
    record = record_in(state)
    assert record.state is state
    found = FoundContainers({RUN_ID: "h1"}, frozenset())
    ticket = ticket_for(run, record, found)
    assert ticket.mode is Mode.FRESH
    assert ticket.placement is None


@pytest.mark.parametrize("state", [RunState.STAGING, RunState.RUNNING, RunState.COLLECTING])
def test_in_flight_with_a_container_attaches_on_its_host_with_its_devices(run, state):
    record = record_in(state, host="h1")
    # The container is where the hosts say it is, even if the record says otherwise.
    found = FoundContainers({RUN_ID: "h2", f"{BATCH_ID}.other": "h1"}, frozenset())
    ticket = ticket_for(run, record, found)
    assert ticket.mode is Mode.ATTACH
    assert ticket.placement == Placement("h2", ("2", "3"))
    assert ticket.run is run


def test_in_flight_without_recorded_devices_attaches_on_device_0(run):
    record = record_in(RunState.RUNNING, devices=())
    ticket = ticket_for(run, record, FoundContainers({RUN_ID: "h1"}, frozenset()))
    assert ticket.placement == Placement("h1", ("0",))


def test_in_flight_on_an_unreachable_host_attaches_on_the_recorded_host(run):
    record = record_in(RunState.RUNNING, host="h3")
    found = FoundContainers({}, frozenset({"h3"}))
    ticket = ticket_for(run, record, found)
    assert ticket.mode is Mode.ATTACH
    assert ticket.placement == Placement("h3", ("2", "3"))


@pytest.mark.parametrize(
    ("state", "mode"), [(RunState.STAGING, Mode.FRESH), (RunState.RUNNING, Mode.COLLECT)]
)
def test_in_flight_when_another_host_is_unreachable_is_not_attached(run, state, mode):
    # Its own host answered without its container: another host's silence changes nothing.
    record = record_in(state, host="h1")
    ticket = ticket_for(run, record, FoundContainers({}, frozenset({"h2"})))
    assert ticket.mode is mode
    assert ticket.placement == (Placement("h1", ("2", "3")) if mode is Mode.COLLECT else None)


def test_collecting_without_a_container_collects_with_the_recorded_exit(run):
    record = record_in(RunState.COLLECTING, host="h2", exit_code=3)
    ticket = ticket_for(run, record, NOTHING_FOUND)
    assert ticket.mode is Mode.COLLECT
    assert ticket.placement == Placement("h2", ("2", "3"))
    assert ticket.exit_code == 3


def test_staging_without_a_container_starts_again(run):
    # Its container never started (or never got far): nothing ran, so run it from the start.
    record = record_in(RunState.STAGING)
    ticket = ticket_for(run, record, NOTHING_FOUND)
    assert ticket.mode is Mode.FRESH
    assert ticket.placement is None
    assert ticket.exit_code is None


@pytest.mark.parametrize("exit_code", [0, 3, None])
def test_running_without_a_container_collects_rather_than_runs_twice(run, exit_code):
    # It ran; the driver died while the wait phase collected it (the container is gone).
    record = record_in(RunState.RUNNING, host="h2", exit_code=exit_code)
    ticket = ticket_for(run, record, NOTHING_FOUND)
    assert ticket.mode is Mode.COLLECT
    assert ticket.placement == Placement("h2", ("2", "3"))
    assert ticket.exit_code == exit_code  # None: finish_orphan reads the exit left on the host


def test_running_without_a_host_starts_again(run):
    record = record_in(RunState.RUNNING, host=None)
    assert ticket_for(run, record, NOTHING_FOUND).mode is Mode.FRESH


def test_collecting_without_a_host_starts_again(run):
    record = record_in(RunState.COLLECTING, host=None)
    assert ticket_for(run, record, NOTHING_FOUND).mode is Mode.FRESH


class FindAdapter:
    def __init__(self, outcome: PlaybookOutcome) -> None:
        self.outcome = outcome
        self.calls: list[PlaybookCall] = []

    def run(self, call: PlaybookCall, log_path=None, cancel=None) -> PlaybookOutcome:
        self.calls.append(call)
        return self.outcome


def test_find_batch_containers_maps_runs_to_hosts_and_names_unreachable_hosts():
    data = {
        "containers": {
            "h1": [{"name": f"cosmos-{BATCH_ID}.a"}, {"name": f"cosmos-{BATCH_ID}.b"}],
            "h2": [{"name": f"cosmos-{BATCH_ID}.c"}],
            "h4": [],
        }
    }
    failures = [
        TaskFailure("h3", "Find | List", "Failed to connect", True),
        TaskFailure("h5", "Find | List", "docker: permission denied", False),
    ]
    adapter = FindAdapter(PlaybookOutcome("failed", 2, data, failures))

    found = find_batch_containers(adapter, BATCH_ID)

    assert found.by_run == {f"{BATCH_ID}.a": "h1", f"{BATCH_ID}.b": "h1", f"{BATCH_ID}.c": "h2"}
    assert found.unreachable == frozenset({"h3"})
    (call,) = adapter.calls
    assert call.playbook == "job_find.yml"
    assert call.limit == "all"
    assert call.extravars == {
        "cosmos_find_batch_id": BATCH_ID,
        "cosmos_find_labels": {"cosmos.batch_id": BATCH_ID},
        "cosmos_find_host_label": "cosmos.host",
    }

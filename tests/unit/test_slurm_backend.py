"""The Slurm backend behind the scheduler, with the adapter faked at its boundary: runs of
one GPU shape go as one array, each record keeps its job and task, Slurm's end states become
verdicts, and no more runs than `max_parallel` are in Slurm at once."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cosmos_driver import slurm_backend, slurm_submit
from cosmos_driver.backend import Backend, FoundContainers
from cosmos_driver.inventory import SlurmSettings
from cosmos_driver.model import Job
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.resume import ticket_for
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import PhaseFailed
from cosmos_driver.scheduler import Scheduler, Ticket
from cosmos_driver.slurm_backend import SlurmBackend
from cosmos_driver.slurm_calls import SlurmCalls
from tests.fakes.adapter import BATCH_ID, NO_RETRY
from tests.fakes.slurm import Array, FakeSlurm

LOGIN = "login-1"


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setattr(slurm_backend, "POLL_INTERVAL_SECONDS", 0.01)
    monkeypatch.setattr(slurm_submit, "WINDOW_SECONDS", 0.2)


@pytest.fixture
def fake(store, mp4) -> FakeSlurm:
    return FakeSlurm(store, mp4)


def make_runs(store, tmp_path: Path, shapes: list[int]):
    color = tmp_path / "color.mp4"
    color.write_bytes(b"color video bytes")
    runs = []
    for i, gpus in enumerate(shapes):
        job = Job(f"j{i}", "a prompt", {"color": color}, {"edge": 1.0}, gpus=gpus, timeout=60)
        run_id = f"{BATCH_ID}.j{i}"
        record = RunRecord(run_id, BATCH_ID, job.name)
        record.move_to(RunState.PENDING)
        store.save_run(record)
        runs.append(prepare(store, BATCH_ID, run_id, job))
    return runs


def run_all(store, fake, runs, max_parallel=4, gpus_per_node=2) -> SlurmBackend:
    life = JobLifecycle(fake, store, retry=NO_RETRY)
    calls = SlurmCalls(fake, LOGIN, life.stop, life.paths, store.root / "tmp" / "slurm.log")
    backend = SlurmBackend(life, SlurmSettings(LOGIN, max_parallel, gpus_per_node), calls)
    Scheduler(life, backend).run([Ticket(run) for run in runs])
    return backend


def test_the_slurm_backend_has_every_method_of_the_seam_with_its_parameters():
    for name, value in vars(Backend).items():
        if callable(value) and not name.startswith("_"):
            theirs = inspect.signature(getattr(SlurmBackend, name)).parameters
            assert list(theirs) == list(inspect.signature(value).parameters), name


def test_four_runs_of_one_shape_go_as_one_array_and_succeed(store, fake, tmp_path):
    runs = make_runs(store, tmp_path, [1, 1, 1, 1])
    run_all(store, fake, runs)
    # One array; its task order is the order the runs' launches arrived in.
    assert [sorted(a.run_ids) for a in fake.arrays] == [[run.run_id for run in runs]]
    submit = next(c for c in fake.calls if c.playbook == "slurm_submit.yml")
    assert submit.limit == LOGIN
    assert submit.extravars["cosmos_slurm_comment"] == ",".join(fake.arrays[0].run_ids)
    assert submit.extravars["cosmos_slurm_gpus"] == 1
    tasks = set()
    for run in runs:
        record = store.load_run(run.run_id)
        assert record.state is RunState.SUCCEEDED, record.failure
        assert record.slurm_job_id == "100"
        assert fake.arrays[0].run_ids[record.slurm_array_task_id] == run.run_id
        tasks.add(record.slurm_array_task_id)
        assert [t.state.value for t in record.history] == [
            "pending", "staging", "running", "succeeded",
        ]  # fmt: skip
        assert "outputs/output.mp4" in record.outputs
        assert record.host == LOGIN
    assert tasks == {0, 1, 2, 3}


def test_each_gpu_shape_gets_its_own_array(store, fake, tmp_path):
    runs = make_runs(store, tmp_path, [1, 2, 1, 2])
    run_all(store, fake, runs)
    shapes = sorted((a.gpus, len(a.run_ids)) for a in fake.arrays)
    assert shapes == [(1, 2), (2, 2)]


def test_no_more_runs_than_max_parallel_are_in_slurm_at_once(store, fake, tmp_path):
    runs = make_runs(store, tmp_path, [1, 1, 1, 1, 1])
    run_all(store, fake, runs, max_parallel=2)
    sizes = [len(a.run_ids) for a in fake.arrays]
    assert len(sizes) >= 3
    assert max(sizes) <= 2
    assert sum(sizes) == 5
    assert [store.load_run(r.run_id).state for r in runs] == [RunState.SUCCEEDED] * 5


@pytest.mark.parametrize(
    ("end", "state", "reason", "words"),
    [
        ("TIMEOUT", RunState.FAILED, FailureReason.TIMEOUT, "time limit (TIMEOUT)"),
        ("NODE_FAIL", RunState.FAILED, FailureReason.HOST_UNREACHABLE, "node failed"),
        ("PREEMPTED", RunState.FAILED, FailureReason.HOST_UNREACHABLE, "preempted"),
        ("CANCELLED", RunState.CANCELLED, FailureReason.CANCELLED, "Slurm cancelled the job"),
    ],
)
def test_slurm_end_states_become_verdicts(store, fake, tmp_path, end, state, reason, words):
    (run,) = make_runs(store, tmp_path, [1])
    fake.ends[run.run_id] = end
    run_all(store, fake, [run])
    record = store.load_run(run.run_id)
    assert (record.state, record.failure.reason) == (state, reason)
    assert words in record.failure.detail


def test_a_container_that_exits_non_zero_fails_with_its_code(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    fake.ends[run.run_id] = "FAILED"
    fake.exit_codes[run.run_id] = 3
    run_all(store, fake, [run])
    record = store.load_run(run.run_id)
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert record.failure.detail == "container exited with code 3"
    assert record.exit_code == 3


def test_a_job_that_asks_for_more_gpus_than_a_node_has_never_fits(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [4])
    run_all(store, fake, [run], gpus_per_node=2)
    record = store.load_run(run.run_id)
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    assert "have 2 GPU(s)" in record.failure.detail
    assert fake.arrays == []


def test_a_cancel_marker_seen_while_waiting_scancels_the_task(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    fake.polls_running = 3
    fake.ends[run.run_id] = "CANCELLED"
    store.request_cancel(run.run_id)  # as `kill` leaves it, once the run is in Slurm
    life = JobLifecycle(fake, store, retry=NO_RETRY)
    calls = SlurmCalls(fake, LOGIN, life.stop, life.paths, store.root / "tmp" / "slurm.log")
    backend = SlurmBackend(life, SlurmSettings(LOGIN, 4, 2), calls)
    placement = backend.place(run, None)
    backend.launch(run, placement)
    with pytest.raises(PhaseFailed) as failed:
        backend.wait(run, placement)
    assert failed.value.verdict.reason is FailureReason.CANCELLED
    assert fake.cancelled == [("100", [0])]
    record = backend.collect(run, placement, failed.value.verdict, None)
    assert (record.state, record.failure.detail) == (RunState.CANCELLED, "cancelled by `kill`")
    assert "scancel 100_0" in [note.text for note in record.notes]


def resume_all(store, fake, runs, polls_running: int) -> FoundContainers:
    """As `infer` resumes: records in flight in array 100, found, then scheduled."""
    for task, run in enumerate(runs):
        record = store.load_run(run.run_id)
        record.host, record.slurm_job_id, record.slurm_array_task_id = LOGIN, "100", task
        record.move_to(RunState.RUNNING)
        store.save_run(record)
    fake.polls_running = polls_running
    life = JobLifecycle(fake, store, retry=NO_RETRY)
    calls = SlurmCalls(fake, LOGIN, life.stop, life.paths, store.root / "tmp" / "slurm.log")
    backend = SlurmBackend(life, SlurmSettings(LOGIN, 4, 2), calls)
    records = [store.load_run(run.run_id) for run in runs]
    found = backend.find_in_flight(BATCH_ID, records)
    tickets = [ticket_for(run, rec, found) for run, rec in zip(runs, records, strict=True)]
    Scheduler(life, backend).run(tickets)
    return found


def submits(fake: FakeSlurm) -> int:
    return sum(call.playbook == "slurm_submit.yml" for call in fake.calls)


def test_resume_adopts_a_task_slurm_still_runs_and_submits_nothing(store, fake, tmp_path):
    runs = make_runs(store, tmp_path, [1, 1])
    fake.arrays.append(Array("100", 1, [run.run_id for run in runs]))
    resume_all(store, fake, runs, polls_running=2)
    assert submits(fake) == 0
    assert fake.arrays[0].polls >= 3  # the resume's poll, one more running, then ended
    for run in runs:
        record = store.load_run(run.run_id)
        assert record.state is RunState.SUCCEEDED, record.failure
        assert record.slurm_job_id == "100"
        assert "outputs/output.mp4" in record.outputs


def test_resume_collects_a_task_that_ended_while_the_driver_was_gone(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    fake.arrays.append(Array("100", 1, [run.run_id]))
    fake.exit_codes[run.run_id] = 3
    fake.ends[run.run_id] = "FAILED"
    resume_all(store, fake, [run], polls_running=0)
    assert submits(fake) == 0
    record = store.load_run(run.run_id)
    assert (record.state, record.exit_code) == (RunState.FAILED, 3)
    assert record.failure.detail == "container exited with code 3"


def test_resume_submits_a_task_slurm_knows_nothing_of_once(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])  # array 100 is in neither squeue nor jobcomp
    found = resume_all(store, fake, [run], polls_running=1)
    assert found.lost == {run.run_id: "100_0"}
    assert submits(fake) == 1
    assert [a.run_ids for a in fake.arrays] == [[run.run_id]]
    record = store.load_run(run.run_id)
    assert record.state is RunState.SUCCEEDED, record.failure
    assert record.slurm_job_id == fake.arrays[0].job_id

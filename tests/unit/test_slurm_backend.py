"""The Slurm backend behind the scheduler, with the adapter faked at its boundary: runs of
one GPU shape go as one array, each record keeps its job and task, Slurm's end states become
verdicts, and no more runs than `max_parallel` are in Slurm at once."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cosmos_driver import slurm_backend, slurm_submit
from cosmos_driver.backend import Backend, FoundContainers
from cosmos_driver.errors import ExecutionError
from cosmos_driver.inventory import SlurmSettings
from cosmos_driver.model import Job
from cosmos_driver.records import FailureReason, Progress, RunRecord, RunState
from cosmos_driver.resume import ticket_for
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.phases import RetryPolicy
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import PhaseFailed
from cosmos_driver.scheduler import Scheduler, Ticket
from cosmos_driver.slurm_backend import SlurmBackend
from cosmos_driver.slurm_calls import SlurmCalls
from tests.fakes.adapter import BATCH_ID, NO_RETRY, unreachable
from tests.fakes.slurm import Array, FakeSlurm

LOGIN = "login-1"
NAME = f"cosmos-{BATCH_ID}.1gpu.0123abcd"


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
    assert submit.extravars["cosmos_slurm_job_name"] == fake.arrays[0].name
    assert fake.arrays[0].name.startswith(f"cosmos-{BATCH_ID}.1gpu.")
    tasks = set()
    for run in runs:
        record = store.load_run(run.run_id)
        assert record.state is RunState.SUCCEEDED, record.failure
        assert record.slurm_job_id == "100"
        assert record.slurm_job_name == fake.arrays[0].name
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


def resume_all(
    store, fake, runs, polls_running: int, job_id: str | None = "100", name: str = NAME
) -> FoundContainers:
    """As `infer` resumes: records in flight in array `job_id` (or, with None, named but
    without the job id, as a driver that died right after sbatch left them), found, then
    scheduled."""
    for task, run in enumerate(runs):
        record = store.load_run(run.run_id)
        record.host, record.slurm_job_id, record.slurm_array_task_id = LOGIN, job_id, task
        record.slurm_job_name = name
        record.move_to(RunState.RUNNING if job_id else RunState.STAGING)
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


def test_each_run_records_its_job_name_and_task_before_the_sbatch(store, fake, tmp_path):
    runs = make_runs(store, tmp_path, [1, 1])
    seen_at_submit = {}
    submit = fake._slurm_submit

    def spying(extra):
        for task, planned in enumerate(extra["cosmos_slurm_runs"]):
            record = store.load_run(planned["run_id"])
            seen_at_submit[record.run_id] = (record.slurm_job_name, record.slurm_array_task_id)
            assert task == record.slurm_array_task_id
        return submit(extra)

    fake._slurm_submit = spying
    run_all(store, fake, runs)
    name = fake.arrays[0].name
    assert sorted(seen_at_submit.values()) == [(name, 0), (name, 1)]


def test_resume_finds_by_job_name_an_array_whose_job_id_was_never_recorded(store, fake, tmp_path):
    runs = make_runs(store, tmp_path, [1, 1])
    fake.arrays.append(Array("100", 1, [run.run_id for run in runs], name=NAME))
    found = resume_all(store, fake, runs, polls_running=1, job_id=None)
    assert found.lost == {}
    assert submits(fake) == 0
    finds = [c for c in fake.calls if c.playbook == "slurm_find.yml"]
    assert [c.extravars["cosmos_slurm_find_names"] for c in finds] == [[NAME]]
    for task, run in enumerate(runs):
        record = store.load_run(run.run_id)
        assert record.state is RunState.SUCCEEDED, record.failure
        assert (record.slurm_job_id, record.slurm_array_task_id) == ("100", task)
        assert f"found in Slurm by job name {NAME}: 100_{task}" in [n.text for n in record.notes]


def test_resume_submits_once_a_run_whose_sbatch_never_ran(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])  # named, but Slurm knows no job of that name
    found = resume_all(store, fake, [run], polls_running=1, job_id=None)
    assert found.lost == {run.run_id: f"job name {NAME}"}
    assert submits(fake) == 1
    record = store.load_run(run.run_id)
    assert record.state is RunState.SUCCEEDED, record.failure
    assert record.slurm_job_name == fake.arrays[0].name != NAME


def test_resume_that_cannot_look_for_named_arrays_stops_and_submits_nothing(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    fake._slurm_find = lambda extra: unreachable("Find | Ask squeue for the arrays still held")
    with pytest.raises(ExecutionError, match="nothing was submitted"):
        resume_all(store, fake, [run], polls_running=1, job_id=None)
    assert submits(fake) == 0


def test_a_running_task_shows_the_diffusion_step_of_its_log_tail(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    fake.polls_running = 3
    fake.log_lines[run.run_id] = ["Diffusion sampling:  34%|###  | 12/35 [00:04<00:08]"]
    steps = []
    life = JobLifecycle(fake, store, retry=NO_RETRY, on_change=lambda r: steps.append(r.progress))
    calls = SlurmCalls(fake, LOGIN, life.stop, life.paths, store.root / "tmp" / "slurm.log")
    backend = SlurmBackend(life, SlurmSettings(LOGIN, 4, 2), calls)
    Scheduler(life, backend).run([Ticket(run)])
    assert Progress(12, 35) in steps
    assert [run.run_id] in fake.tails_asked  # only once the task was seen running
    assert fake.tails_asked[0] == []


def test_a_poll_that_finds_the_login_host_unreachable_is_tried_again(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    poll, failures = fake._slurm_poll, []

    def flaky(extra):
        if not failures:
            failures.append(extra)
            return unreachable("Poll | Ask squeue for the array's tasks still held")
        return poll(extra)

    fake._slurm_poll = flaky
    life = JobLifecycle(fake, store, retry=NO_RETRY)
    log_path = store.root / "tmp" / "slurm.log"
    calls = SlurmCalls(fake, LOGIN, life.stop, life.paths, log_path, RetryPolicy((0.01,)))
    Scheduler(life, SlurmBackend(life, SlurmSettings(LOGIN, 4, 2), calls)).run([Ticket(run)])
    assert len(failures) == 1
    assert store.load_run(run.run_id).state is RunState.SUCCEEDED
    assert submits(fake) == 1


def test_a_submit_that_finds_the_login_host_unreachable_is_not_tried_again(store, fake, tmp_path):
    (run,) = make_runs(store, tmp_path, [1])
    fake._slurm_submit = lambda extra: unreachable("Submit | Submit the array")
    life = JobLifecycle(fake, store, retry=NO_RETRY)
    log_path = store.root / "tmp" / "slurm.log"
    calls = SlurmCalls(fake, LOGIN, life.stop, life.paths, log_path, RetryPolicy((0.01,)))
    Scheduler(life, SlurmBackend(life, SlurmSettings(LOGIN, 4, 2), calls)).run([Ticket(run)])
    record = store.load_run(run.run_id)
    assert (record.state, record.failure.reason) == (
        RunState.FAILED,
        FailureReason.HOST_UNREACHABLE,
    )
    assert submits(fake) == 1  # its sbatch may have run: a second could run it twice


def test_retries_resubmit_a_failed_run_in_a_new_array(store, fake, tmp_path):
    color = tmp_path / "color.mp4"
    color.write_bytes(b"color video bytes")
    job = Job("flaky", "a prompt", {"color": color}, {"edge": 1.0}, timeout=60, retries=1)
    record = RunRecord(f"{BATCH_ID}.flaky", BATCH_ID, job.name)
    store.save_run(record)
    run = prepare(store, BATCH_ID, record.run_id, job)
    fake.ends[run.run_id], fake.exit_codes[run.run_id] = "FAILED", 3
    submit = fake._slurm_submit

    def second_succeeds(extra):
        if fake.arrays:
            fake.ends.clear()
            fake.exit_codes.clear()
        return submit(extra)

    fake._slurm_submit = second_succeeds
    run_all(store, fake, [run])
    assert [a.run_ids for a in fake.arrays] == [[run.run_id], [run.run_id]]
    record = store.load_run(run.run_id)
    assert record.state is RunState.SUCCEEDED, record.failure
    assert record.slurm_job_id == fake.arrays[1].job_id
    notes = [note.text for note in record.notes]
    assert "retry 1 of 1 after: container exited with code 3" in notes
    assert [n for n in notes if n.startswith("submitted")] == [
        "submitted to Slurm as 100_0", "submitted to Slurm as 101_0",
    ]  # fmt: skip

"""The scheduler over a fake adapter that simulates containers in memory: each "host" runs
containers for a short while on the GPU devices it was given, a launch waits (as the real
container module does) for the containers named in `cosmos_job_after` to exit, a wait that
sees the exit collects when asked to (as the real wait phase does), and every container's
time on each device is recorded so overlaps can be checked."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome
from cosmos_driver.model import Job
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.phases import RetryPolicy
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import Placement, PreparedRun
from cosmos_driver.scheduler import Mode, Scheduler, Ticket
from cosmos_driver.ssh_hosts import SshHosts
from cosmos_driver.store import RunStore
from cosmos_driver.upscale import prepare_upscale
from tests.fakes.adapter import scheduler_for, short_outages
from tests.fakes.hosts import DEFAULT_SECONDS, FakeHosts, unreachable

BATCH_ID = "sched-0123abcd"
HOSTS = {"h1": 2, "h2": 2}


@pytest.fixture
def video(tmp_path: Path, mp4) -> bytes:
    return mp4(tmp_path / "video" / "v.mp4").read_bytes()


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    color = tmp_path / "inputs" / "color.mp4"
    color.parent.mkdir()
    color.write_bytes(b"color video bytes")
    return {"color": color}


@pytest.fixture
def make_run(store, inputs):
    """`make_run(name, seconds=0.1, gpus=1, exit_code=0)`: a prepared run with its record."""

    def make(name: str, seconds: float = DEFAULT_SECONDS, gpus: int = 1, exit_code: int = 0):
        env = {"FAKE_SECONDS": str(seconds), "FAKE_EXIT": str(exit_code)}
        job = Job(name, "a prompt", inputs, {"edge": 1.0}, gpus=gpus, timeout=60, env=env)
        run_id = f"{BATCH_ID}.{name}"
        record = RunRecord(run_id, BATCH_ID, name)
        record.move_to(RunState.PENDING)
        store.save_run(record)
        return prepare(store, BATCH_ID, run_id, job)

    return make


@pytest.fixture(autouse=True)
def _short_outages(monkeypatch) -> None:
    short_outages(monkeypatch)


def run_all(store: RunStore, fake: FakeHosts, tickets: list[Ticket], hosts=None) -> Scheduler:
    life = JobLifecycle(fake, store, retry=RetryPolicy(delays=()))
    scheduler = scheduler_for(life, hosts or HOSTS)
    started = time.monotonic()
    scheduler.run(tickets)
    assert time.monotonic() - started < 10
    assert scheduler_threads() == []
    return scheduler


def scheduler_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cosmos-run")]


def records(store: RunStore, runs: list[PreparedRun]) -> list[RunRecord]:
    return [store.load_run(run.run_id) for run in runs]


# --- a whole batch -------------------------------------------------------------------------


def test_every_run_succeeds_across_both_hosts(store, video, make_run):
    runs = [make_run(f"job-{i}", seconds=0.05 + 0.03 * (i % 4)) for i in range(10)]
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(run) for run in runs])

    ended = records(store, runs)
    assert [r.state for r in ended] == [RunState.SUCCEEDED] * 10
    assert len(ended) == 10
    assert all(r.failure is None and r.exit_code == 0 for r in ended)
    assert {r.host for r in ended} == {"h1", "h2"}
    for run in runs:
        # Each run costs two playbooks: the wait phase that saw the exit collected it.
        assert fake.playbooks_of(run.run_id) == ["job_launch.yml", "job_wait.yml"]
    assert fake.containers == {}  # every container was collected
    assert all(r.outputs == ["outputs/output.mp4"] for r in ended)


def test_a_host_without_gpus_gets_no_run(store, video, make_run):
    runs = [make_run(f"job-{i}") for i in range(4)]
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(run) for run in runs], hosts={"h1": 2, "cpu-only": 0})

    ended = records(store, runs)
    assert [r.state for r in ended] == [RunState.SUCCEEDED] * 4
    assert {r.host for r in ended} == {"h1"}


def test_successors_are_staged_while_the_holders_run(store, video, make_run):
    runs = [make_run(f"job-{i}", seconds=0.15) for i in range(10)]
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(run) for run in runs])

    followers = [c for c in fake.calls_of("job_launch.yml") if c.extravars["cosmos_job_after"]]
    assert followers, "no run was staged to follow a running container"
    # Some start had to wait on the host for the container it follows: the successor
    # was staged and ready before its GPU was free.
    assert fake.waited_for_holder
    assert set(fake.waited_for_holder) <= {c.extravars["cosmos_job_run_id"] for c in followers}


def test_a_successor_follows_the_container_holding_its_gpu(store, video, make_run):
    holder = make_run("holder")
    successor = make_run("successor", seconds=0.05)
    fake = FakeHosts(video)
    fake.add_running(holder.run_id, "h1", ("0",), seconds=0.4)
    store.update_run(holder.run_id, lambda r: setattr(r, "gpu_devices", ["0"]))
    tickets = [Ticket(holder, Mode.ATTACH, Placement("h1", ("0",))), Ticket(successor)]
    run_all(store, fake, tickets, hosts={"h1": 1})

    holder_container = fake.intervals[("h1", "0")][0]
    (launch,) = fake.calls_of("job_launch.yml")
    assert launch.extravars["cosmos_job_after"] == [f"cosmos-{holder.run_id}"]
    launch_at = fake.call_times[fake.calls.index(launch)]
    assert launch_at < holder_container[1]  # staged while the holder ran
    assert fake.waited_for_holder == [successor.run_id]
    assert fake.overlaps() == []
    assert [r.state for r in records(store, [holder, successor])] == [RunState.SUCCEEDED] * 2


def test_no_two_runs_share_a_device_at_the_same_time(store, video, make_run):
    runs = [make_run(f"job-{i}", seconds=0.15) for i in range(8)]
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(run) for run in runs])
    assert [r.state for r in records(store, runs)] == [RunState.SUCCEEDED] * 8
    assert fake.overlaps() == []


def test_a_two_gpu_job_gets_two_devices_of_one_host(store, video, make_run):
    wide = make_run("wide", gpus=2)
    narrow = [make_run(f"narrow-{i}", seconds=0.05) for i in range(3)]
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(wide), *(Ticket(run) for run in narrow)])

    (start,) = [
        c
        for c in fake.calls_of("job_launch.yml")
        if c.extravars["cosmos_job_run_id"] == wide.run_id
    ]
    assert sorted(start.extravars["cosmos_job_gpu_devices"]) == ["0", "1"]
    assert "--nproc_per_node=2" in start.extravars["cosmos_job_command"]
    record = store.load_run(wide.run_id)
    assert record.state is RunState.SUCCEEDED
    assert sorted(record.gpu_devices) == ["0", "1"]
    assert record.host == start.limit
    held = sorted(
        key for key, spans in fake.intervals.items() if any(r == wide.run_id for *_, r in spans)
    )
    assert held == [(start.limit, "0"), (start.limit, "1")]
    assert len(narrow) == 3
    narrow_records = records(store, narrow)
    assert len(narrow_records) == 3
    assert all(r.state is RunState.SUCCEEDED for r in narrow_records)


# --- hosts that do not answer --------------------------------------------------------------


def test_host_down_during_launch_moves_its_runs_to_the_other_host(store, video, make_run):
    runs = [make_run(f"job-{i}", seconds=0.05) for i in range(6)]
    fake = FakeHosts(video, unreachable={"job_launch.yml": {"h2"}})
    run_all(store, fake, [Ticket(run) for run in runs])

    ended = records(store, runs)
    assert [r.state for r in ended] == [RunState.SUCCEEDED] * 6
    assert len(ended) == 6
    assert all(r.host == "h1" for r in ended)
    staged_on_h2 = [c for c in fake.calls_of("job_launch.yml") if c.limit == "h2"]
    moved = {c.extravars["cosmos_job_run_id"] for c in staged_on_h2}
    assert moved, "no run was placed on h2 first"
    for record in ended:
        notes = [n.text for n in record.notes]
        if record.run_id in moved:
            assert any("h2 set aside" in text and "back to the queue" in text for text in notes)
        else:
            assert notes == []
    # Nothing but the failed launch ever went to h2.
    assert {c.playbook for c in fake.calls if c.limit == "h2"} == {"job_launch.yml"}


class RequeueProbe(Scheduler):
    """Lets the dispatcher place a requeued run again before the failed attempt's clean-up
    runs (an interleaving that also happens when the dispatcher wins the lock), then looks
    at the devices the new placement holds once that clean-up is done."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.marks_after_cleanup: list[list[str]] = []

    def _requeue(self, ticket: Ticket) -> None:
        super()._requeue(ticket)
        give_up = time.monotonic() + 2
        while ticket.placement is None and time.monotonic() < give_up:
            time.sleep(0.005)

    def _work(self, ticket: Ticket) -> None:
        first_host = ticket.placement.host if ticket.placement else None
        super()._work(ticket)
        if first_host == "h2":
            pool = self.backend.pool
            with pool.cond:
                run_id = ticket.run.run_id
                self.marks_after_cleanup.append(
                    [
                        f"{host.name}/{d.index}"
                        for host in pool.hosts.values()
                        for d in host.devices
                        if run_id in (d.holder, d.successor)
                    ]
                )


def test_a_requeued_run_keeps_the_devices_of_its_new_placement(store, video, make_run):
    run = make_run("job", seconds=0.05)
    fake = FakeHosts(video, unreachable={"job_launch.yml": {"h2"}}, stage_seconds=0.3)
    life = JobLifecycle(fake, store, retry=RetryPolicy(delays=()))
    probe = RequeueProbe(life, SshHosts(life, {"h2": 1, "h1": 1}))
    probe.run([Ticket(run)])

    assert store.load_run(run.run_id).state is RunState.SUCCEEDED
    # While the run stages on h1, h1's GPU must stay marked as its own.
    assert probe.marks_after_cleanup == [["h1/0"]]


def test_every_host_down_fails_the_pending_runs_as_host_unreachable(store, video, make_run):
    runs = [make_run(f"job-{i}") for i in range(5)]
    fake = FakeHosts(video, unreachable={"job_launch.yml": {"h1", "h2"}})
    run_all(store, fake, [Ticket(run) for run in runs])

    ended = records(store, runs)
    assert [r.state for r in ended] == [RunState.FAILED] * 5
    assert len(ended) == 5
    assert all(r.failure.reason is FailureReason.HOST_UNREACHABLE for r in ended)
    assert {c.playbook for c in fake.calls} == {"job_launch.yml"}


def test_gpu_hosts_down_fail_the_pending_runs_though_a_host_without_gpus_answers(
    store, video, make_run
):
    runs = [make_run(f"job-{i}") for i in range(2)]
    fake = FakeHosts(video, unreachable={"job_launch.yml": {"h1"}})
    run_all(store, fake, [Ticket(run) for run in runs], hosts={"h1": 2, "cpu-only": 0})

    ended = records(store, runs)
    assert [r.failure.reason for r in ended] == [FailureReason.HOST_UNREACHABLE] * 2
    assert "no host that answers has 1 GPU slot(s)" in ended[0].failure.detail


def test_a_job_bigger_than_every_host_still_answering_fails_once_nothing_runs(
    store, video, make_run
):
    big, small = make_run("big", gpus=2), make_run("small")
    fake = FakeHosts(video, unreachable={"job_launch.yml": {"h2"}})
    run_all(store, fake, [Ticket(big), Ticket(small)], hosts={"h1": 1, "h2": 2})

    assert store.load_run(small.run_id).state is RunState.SUCCEEDED
    failed = store.load_run(big.run_id)
    assert failed.failure.reason is FailureReason.HOST_UNREACHABLE
    assert "has 2 GPU slot(s)" in failed.failure.detail


def test_a_host_down_while_a_run_waits_is_waited_out(store, video, make_run):
    run = make_run("job", seconds=0.2)
    fake = FakeHosts(video)
    answers = iter([unreachable("h1", "Wait | Wait"), unreachable("h1", "Wait | Wait")])
    real_wait = fake._job_wait

    def flaky_wait(call: PlaybookCall) -> PlaybookOutcome:
        return next(answers, None) or real_wait(call)

    fake._job_wait = flaky_wait
    run_all(store, fake, [Ticket(run)], hosts={"h1": 1})

    record = store.load_run(run.run_id)
    assert record.state is RunState.SUCCEEDED
    assert fake.playbooks_of(run.run_id).count("job_wait.yml") >= 3
    assert sum("unreachable while the run waits" in n.text for n in record.notes) == 2


# --- cancel, attach, collect ---------------------------------------------------------------


def test_a_run_cancelled_before_dispatch_ends_cancelled_without_a_playbook(store, video, make_run):
    runs = [make_run(f"job-{i}") for i in range(3)]
    store.request_cancel(runs[1].run_id)
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(run) for run in runs])

    cancelled = store.load_run(runs[1].run_id)
    assert cancelled.state is RunState.CANCELLED
    assert cancelled.failure.reason is FailureReason.CANCELLED
    assert [t.state for t in cancelled.history] == [RunState.PENDING, RunState.CANCELLED]
    assert fake.playbooks_of(runs[1].run_id) == []
    assert [store.load_run(r.run_id).state for r in (runs[0], runs[2])] == [RunState.SUCCEEDED] * 2


def test_no_pool_thread_outlives_run(store, video, make_run):
    runs = [make_run(f"job-{i}", seconds=0.05) for i in range(5)]
    fake = FakeHosts(video)
    life = JobLifecycle(fake, store, retry=RetryPolicy(delays=()))
    seen_inside: list[str] = []
    real_launch = fake._job_launch

    def launch(call: PlaybookCall) -> PlaybookOutcome:
        seen_inside.append(threading.current_thread().name)
        return real_launch(call)

    fake._job_launch = launch
    scheduler_for(life, HOSTS).run([Ticket(run) for run in runs])

    assert seen_inside and all(name.startswith("cosmos-run") for name in seen_inside)
    assert scheduler_threads() == []


def test_attach_tickets_skip_launch(store, video, make_run):
    attached = make_run("attached")
    store.update_run(attached.run_id, lambda r: _as_running(r, "h2", ["1"]))
    # Enough fresh runs that one is staged to follow the attached run on its GPU.
    fresh = [make_run(f"job-{i}", seconds=0.05) for i in range(8)]
    fake = FakeHosts(video)
    fake.add_running(attached.run_id, "h2", ("1",), seconds=0.2)
    tickets = [Ticket(attached, Mode.ATTACH, Placement("h2", ("1",)))]
    run_all(store, fake, tickets + [Ticket(run) for run in fresh])

    playbooks = fake.playbooks_of(attached.run_id)
    assert "job_launch.yml" not in playbooks
    assert set(playbooks) == {"job_wait.yml"}  # the wait that saw the exit collected
    assert f"cosmos-{attached.run_id}" not in fake.containers
    record = store.load_run(attached.run_id)
    assert record.state is RunState.SUCCEEDED
    assert record.host == "h2"
    assert record.outputs == ["outputs/output.mp4"]
    # No fresh run got its GPU while it still ran.
    (_, attached_ends, _), *others = fake.intervals[("h2", "1")]
    assert others, "no fresh run used the attached run's GPU afterwards"
    assert all(start >= attached_ends for start, _, _ in others)


def test_collect_tickets_only_collect(store, video, make_run):
    done = make_run("done")
    broke = make_run("broke")
    for run, code in ((done, 0), (broke, 3)):
        store.update_run(run.run_id, lambda r, c=code: _as_collecting(r, "h1", c))
    fake = FakeHosts(video)
    tickets = [
        Ticket(done, Mode.COLLECT, Placement("h1", ("0",)), exit_code=0),
        Ticket(broke, Mode.COLLECT, Placement("h1", ("1",)), exit_code=3),
    ]
    run_all(store, fake, tickets)

    assert fake.playbooks_of(done.run_id) == ["job_collect.yml"]
    assert fake.playbooks_of(broke.run_id) == ["job_collect.yml"]
    assert len(fake.calls) == 2
    assert all(c.limit == "h1" for c in fake.calls)
    assert store.load_run(done.run_id).state is RunState.SUCCEEDED
    failed = store.load_run(broke.run_id)
    assert failed.state is RunState.FAILED
    assert failed.failure.reason is FailureReason.CONTAINER_EXIT
    assert "3" in failed.failure.detail


def test_collect_tickets_without_an_exit_use_the_one_left_on_the_host(store, video, make_run):
    """The driver died after the wait phase's collect saved the exit, before it was seen."""
    left_0, left_4, unknown = make_run("left-0"), make_run("left-4"), make_run("unknown")
    for run in (left_0, left_4, unknown):
        store.update_run(run.run_id, lambda r: _as_running(r, "h1", ["0"]))
    fake = FakeHosts(video, exits_left={left_0.run_id: 0, left_4.run_id: 4})
    run_all(
        store,
        fake,
        [Ticket(r, Mode.COLLECT, Placement("h1", ("0",))) for r in (left_0, left_4, unknown)],
    )

    assert [c.playbook for c in fake.calls] == ["job_collect.yml"] * 3
    assert store.load_run(left_0.run_id).state is RunState.SUCCEEDED
    failed = store.load_run(left_4.run_id)
    assert failed.failure.reason is FailureReason.CONTAINER_EXIT
    assert "code 4" in failed.failure.detail
    lost = store.load_run(unknown.run_id)
    assert lost.failure.reason is FailureReason.CONTAINER_EXIT
    assert "exit code unknown" in lost.failure.detail
    assert lost.outputs == ["outputs/output.mp4"]  # what it left is collected all the same


def _as_running(record: RunRecord, host: str, devices: list[str]) -> None:
    record.host = host
    record.gpu_devices = devices
    record.move_to(RunState.STAGING)
    record.move_to(RunState.RUNNING)


def _as_collecting(record: RunRecord, host: str, exit_code: int) -> None:
    _as_running(record, host, ["0"])
    record.exit_code = exit_code
    record.move_to(RunState.COLLECTING)


def test_a_failing_container_is_retried_as_often_as_the_job_says(store, video, make_run):
    flaky = make_run("flaky", exit_code=3)
    flaky = replace(flaky, job=replace(flaky.job, retries=2))
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(flaky)])
    record = store.load_run(flaky.run_id)
    assert record.state is RunState.FAILED
    assert record.failure.reason.value == "container_exit"
    assert [n.text.split(" after")[0] for n in record.notes if "retry" in n.text] == [
        "retry 1 of 2",
        "retry 2 of 2",
    ]
    assert sum(1 for t in record.history if t.state is RunState.RUNNING) == 3


def test_a_job_without_retries_fails_once(store, video, make_run):
    broken = make_run("broken", exit_code=3)
    run_all(store, FakeHosts(video), [Ticket(broken)])
    record = store.load_run(broken.run_id)
    assert sum(1 for t in record.history if t.state is RunState.RUNNING) == 1
    assert not [n for n in record.notes if "retry" in n.text]


# --- dependent runs (4K upscale) -----------------------------------------------------------


def make_upscale(store: RunStore, parent: PreparedRun) -> PreparedRun:
    """The upscale run of `parent`, with the pending record BatchRunner writes."""
    run = prepare_upscale(store, BATCH_ID, parent.run_id, parent.job)
    record = RunRecord(run.run_id, BATCH_ID, run.job.name, kind="upscale")
    record.parent_run_id = parent.run_id
    record.move_to(RunState.PENDING)
    store.save_run(record)
    return run


def container_of(fake: FakeHosts, run_id: str) -> tuple[str, float, float]:
    """(host, start, end) of the one container `run_id` ran."""
    (found,) = [
        (host, start, end)
        for (host, _), spans in fake.intervals.items()
        for start, end, owner in spans
        if owner == run_id
    ]
    return found


def test_an_upscale_run_starts_after_its_parent_on_the_parents_host(store, video, make_run):
    parent = make_run("parent", seconds=0.2)
    upscale = make_upscale(store, parent)
    others = [make_run(f"other-{i}", seconds=0.05) for i in range(3)]
    fake = FakeHosts(video)
    # The upscale ticket comes first: it must still wait for its parent.
    run_all(store, fake, [Ticket(upscale), Ticket(parent), *(Ticket(o) for o in others)])

    parent_host, _, parent_end = container_of(fake, parent.run_id)
    upscale_host, upscale_start, _ = container_of(fake, upscale.run_id)
    assert upscale_start >= parent_end
    assert upscale_host == parent_host
    record = store.load_run(upscale.run_id)
    assert record.state is RunState.SUCCEEDED and record.host == parent_host
    (launch,) = [
        c
        for c in fake.calls_of("job_launch.yml")
        if c.limit == upscale_host and c.extravars["cosmos_job_run_id"] == upscale.run_id
    ]
    assert launch.extravars["cosmos_job_parent_run_id"] == parent.run_id
    assert launch.extravars["cosmos_job_inputs"] == []  # nothing uploaded: it reads the parent's


def test_an_upscale_run_goes_to_its_parents_host_even_when_another_is_free(store, video, make_run):
    parent = make_run("parent")
    store.update_run(
        parent.run_id, lambda r: (setattr(r, "host", "h2"), r.move_to(RunState.SUCCEEDED))
    )
    upscale = make_upscale(store, parent)
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(upscale)], hosts={"h1": 1, "h2": 1})

    assert fake.calls_of("job_launch.yml")[0].limit == "h2"
    assert store.load_run(upscale.run_id).host == "h2"


def test_a_failed_parent_fails_its_upscale_run_which_never_starts(store, video, make_run):
    parent = make_run("parent", exit_code=3)
    upscale = make_upscale(store, parent)
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(parent), Ticket(upscale)])

    record = store.load_run(upscale.run_id)
    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.PARENT_FAILED
    assert parent.run_id in record.failure.detail and "container_exit" in record.failure.detail
    assert fake.playbooks_of(upscale.run_id) == []
    assert [t.state for t in record.history] == [RunState.PENDING, RunState.FAILED]


def test_a_cancelled_parent_cancels_its_upscale_run(store, video, make_run):
    parent = make_run("parent")
    upscale = make_upscale(store, parent)
    store.request_cancel(parent.run_id)
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(parent), Ticket(upscale)])

    record = store.load_run(upscale.run_id)
    assert record.state is RunState.CANCELLED
    assert record.failure.reason is FailureReason.CANCELLED
    assert f"parent run {parent.run_id} was cancelled" in record.failure.detail
    assert fake.calls == []


@pytest.mark.parametrize(
    ("parent_host", "hosts", "why"),
    [
        ("gone", HOSTS, "not in the inventory"),
        ("h2", {"h1": 2, "h2": 0}, "no GPU slot"),
    ],
    ids=["left the inventory", "has no GPU slot now"],
)
def test_an_upscale_run_whose_parent_host_cannot_take_it_fails(
    store, video, make_run, parent_host, hosts, why
):
    parent = make_run("parent")
    store.update_run(
        parent.run_id, lambda r: (setattr(r, "host", parent_host), r.move_to(RunState.SUCCEEDED))
    )
    upscale = make_upscale(store, parent)
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(upscale)], hosts=hosts)

    record = store.load_run(upscale.run_id)
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    detail = record.failure.detail
    assert parent_host in detail and parent.run_id in detail and why in detail
    assert fake.calls == []


def test_an_upscale_run_waits_while_its_failed_parent_goes_round_again(
    store, video, make_run, monkeypatch
):
    parent = make_run("parent", exit_code=3)
    parent = replace(parent, job=replace(parent.job, retries=1))
    upscale = make_upscale(store, parent)
    real_retry = Scheduler._maybe_retry

    def slow_retry(self, ticket, record):
        time.sleep(0.7)  # the parent is recorded failed until its retry is queued
        real_retry(self, ticket, record)

    monkeypatch.setattr(Scheduler, "_maybe_retry", slow_retry)
    run_all(store, FakeHosts(video), [Ticket(parent), Ticket(upscale)])

    parent_record, record = store.load_run(parent.run_id), store.load_run(upscale.run_id)
    assert sum(1 for t in parent_record.history if t.state is RunState.RUNNING) == 2
    assert record.failure.reason is FailureReason.PARENT_FAILED
    assert record.history[-1].at >= parent_record.history[-1].at


def test_a_waiting_upscale_run_cancelled_by_kill_ends_cancelled_unstarted(store, video, make_run):
    parent = make_run("parent", seconds=0.3)
    upscale = make_upscale(store, parent)
    store.request_cancel(upscale.run_id)  # what `kill --batch` leaves for a waiting run
    fake = FakeHosts(video)
    run_all(store, fake, [Ticket(parent), Ticket(upscale)])

    record = store.load_run(upscale.run_id)
    assert record.state is RunState.CANCELLED
    assert record.failure.detail == "cancelled by `kill`"
    assert fake.playbooks_of(upscale.run_id) == []
    assert store.load_run(parent.run_id).state is RunState.SUCCEEDED

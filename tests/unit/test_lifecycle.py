"""One job's life, with a fake at the adapter boundary: the fake answers the phase playbooks
the way the real ones report (set_stats data, task failures) and, for collect (job_collect.yml,
or the wait phase once the container has exited), puts the fetched files where the real fetch
puts them (the fetch dir it is given)."""

from __future__ import annotations

import hashlib
import json
import tarfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome, TaskFailure
from cosmos_driver.errors import StoreError
from cosmos_driver.model import Job
from cosmos_driver.profiles import transfer1
from cosmos_driver.records import FailureReason, Progress, RunRecord, RunState
from cosmos_driver.run import files, phases, verdicts
from cosmos_driver.run import lifecycle as run_lifecycle
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.phases import RetryPolicy
from cosmos_driver.run.spec import file_sha256, prepare
from cosmos_driver.run.types import Exit, PhaseFailed, Placement, RunRef, Verdict
from cosmos_driver.scheduler import Mode
from cosmos_driver.store import RunStore
from tests.fakes.adapter import (
    BATCH_ID,
    FINISHED_AT,
    HOST,
    NO_RETRY,
    PHASES,
    RUN_ID,
    STARTED_AT,
    FakeAdapter,
    FakeClock,
    ok,
    pending_record,
    run_job,
    short_outages,
    states,
    unreachable,
    use_clock,
)


@pytest.fixture(autouse=True)
def _short_outages(monkeypatch) -> None:
    short_outages(monkeypatch)


@pytest.fixture
def job(tmp_path: Path) -> Job:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "scene.MP4").write_bytes(b"color video bytes")
    (inputs / "depth.mp4").write_bytes(b"depth video bytes")
    return Job(
        name="job 1",
        prompt="a robot arm",
        inputs={"color": inputs / "scene.MP4", "depth": inputs / "depth.mp4"},
        controls={"depth": 0.4, "edge": 0.6},
        sampling={"seed": 5, "num_steps": 10},
        gpus=2,
        timeout=3600,
        env={"NCCL_DEBUG": "WARN"},
    )


# --- success -------------------------------------------------------------------------------


def test_success_walks_every_state_and_keeps_outputs_and_logs(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    record = run_job(store, job, adapter)

    assert record.state is RunState.SUCCEEDED
    # The wait phase collected: no separate `collecting` step.
    assert states(record) == ["pending", "staging", "running", "succeeded"]
    assert record.failure is None
    assert record.host == HOST
    assert record.exit_code == 0
    assert record.container_id == "c1"
    assert record.gpu_devices == ["0", "1"]
    assert record.container_started_at == STARTED_AT
    assert record.container_finished_at == FINISHED_AT
    assert record.outputs == ["outputs/output.mp4", "outputs/output.txt"]
    assert record.logs == ["logs/ansible.log", "logs/container-exit.json", "logs/container.log"]
    assert record.notes == []
    assert adapter.playbooks == PHASES
    assert len(adapter.calls) == len(PHASES)
    assert all(call.limit == HOST for call in adapter.calls)


def test_the_wait_phase_is_asked_to_collect_and_the_launch_is_not(store, job, mp4):
    adapter = FakeAdapter(store, mp4, waits_before_exit=1)
    run_job(store, job, adapter)
    asked = [(c.playbook, c.extravars.get("cosmos_job_collect_when_done")) for c in adapter.calls]
    assert asked == [
        ("job_launch.yml", None),
        ("job_wait.yml", True),
        ("job_wait.yml", True),
    ]


def test_each_state_is_saved_before_its_phase_runs(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)
    # `running` is entered once the container has started, so launch runs in `staging`.
    assert adapter.states_seen == [("job_launch.yml", "staging"), ("job_wait.yml", "running")]


def test_a_collect_of_its_own_runs_in_collecting(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_wait.yml": ok(exists=False, finished=False)})
    run_job(store, job, adapter)
    assert adapter.states_seen == [
        ("job_launch.yml", "staging"),
        ("job_wait.yml", "running"),
        ("job_collect.yml", "collecting"),
    ]


def test_phase_output_goes_to_the_runs_ansible_log(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)
    ansible_log = store.logs_dir(RUN_ID) / "ansible.log"
    assert adapter.log_paths == [ansible_log] * len(PHASES)
    assert ansible_log.read_text().splitlines() == [f"PLAY [{p}]" for p in PHASES]


def test_every_phase_gets_the_lifecycles_stop_event_as_its_cancel(store, job, mp4):
    # A container that vanished makes the run collect in a phase of its own, too.
    adapter = FakeAdapter(store, mp4, outcomes={"job_wait.yml": ok(exists=False, finished=False)})
    life = JobLifecycle(adapter, store, retry=NO_RETRY)
    run_job(store, job, adapter, life=life)
    assert adapter.playbooks == [*PHASES, "job_collect.yml"]
    assert len(adapter.cancels) == 3
    assert all(cancel is life.stop for cancel in adapter.cancels)


def test_extravars_name_the_run_its_inputs_command_and_fetch_dir(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)

    sha = {m: hashlib.sha256(p.read_bytes()).hexdigest() for m, p in job.inputs.items()}
    for call in adapter.calls:
        extravars = call.extravars
        assert extravars["cosmos_job_run_id"] == RUN_ID
        assert extravars["cosmos_job_batch_id"] == BATCH_ID
        assert sorted(extravars["cosmos_job_inputs"], key=lambda i: i["name"]) == sorted(
            [
                {"src": str(job.inputs["color"]), "name": f"{sha['color']}.mp4"},
                {"src": str(job.inputs["depth"]), "name": f"{sha['depth']}.mp4"},
            ],
            key=lambda i: i["name"],
        )
        assert extravars["cosmos_job_command"] == transfer1.command(
            job, {}, transfer1.ContainerPaths()
        )
        assert "--nproc_per_node=2" in extravars["cosmos_job_command"]
        assert extravars["cosmos_job_gpu_devices"] == ["0", "1"]
        assert extravars["cosmos_job_after"] == []
        assert extravars["cosmos_job_env"] == {"NCCL_DEBUG": "WARN"}
        assert extravars["cosmos_job_fetch_dir"] == str(store.run_dir(RUN_ID).resolve())
        assert Path(extravars["cosmos_job_spec_src"]) == store.run_dir(RUN_ID) / "spec.json"
        assert extravars["cosmos_job_container_paths"] == {
            "run": "/cosmos/run",
            "inputs": "/cosmos/inputs",
            "checkpoints": "/cosmos/checkpoints",
            "parent": "/cosmos/parent",
        }
        assert extravars["cosmos_job_parent_run_id"] == ""
        assert extravars["cosmos_job_profile"] == "transfer1"  # picks the profile's image
        json.dumps(extravars)  # extravars must be plain JSON for ansible-runner


def test_launch_gets_the_placements_devices_and_the_containers_it_follows(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    placement = Placement(HOST, ("2", "3"), ("cosmos-a", "cosmos-b"))
    pending_record(store, job)
    life = JobLifecycle(adapter, store, retry=NO_RETRY)
    life.launch(prepare(store, BATCH_ID, RUN_ID, job), placement)
    record = store.load_run(RUN_ID)

    start = adapter.calls[adapter.playbooks.index("job_launch.yml")]
    assert start.extravars["cosmos_job_gpu_devices"] == ["2", "3"]
    assert start.extravars["cosmos_job_after"] == ["cosmos-a", "cosmos-b"]
    assert start.extravars["cosmos_job_start_timeout"] == phases.START_PHASE_SECONDS
    assert start.timeout == phases.START_PHASE_SECONDS + phases.PHASE_MARGIN_SECONDS
    assert record.gpu_devices == ["2", "3"]
    assert record.state is RunState.RUNNING


def test_launch_is_asked_again_until_the_container_has_started(store, job, mp4):
    not_yet = ok(uploaded=[], started=False, exists=False)
    started = ok(uploaded=[], started=True, container_id="c2")
    adapter = FakeAdapter(store, mp4, outcomes={"job_launch.yml": [not_yet, not_yet, started]})
    record = run_job(store, job, adapter)
    assert adapter.playbooks == ["job_launch.yml"] * 3 + ["job_wait.yml"]
    # The run enters `staging` once and stays there until its container has started.
    assert adapter.states_seen[:3] == [("job_launch.yml", "staging")] * 3
    assert states(record) == ["pending", "staging", "running", "succeeded"]
    assert record.container_id == "c2"
    assert record.state is RunState.SUCCEEDED


def test_spec_file_sent_is_the_profile_spec_with_hashed_input_names(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)
    spec = json.loads(Path(adapter.calls[0].extravars["cosmos_job_spec_src"]).read_text())
    color_sha = hashlib.sha256(job.inputs["color"].read_bytes()).hexdigest()
    depth_sha = hashlib.sha256(job.inputs["depth"].read_bytes()).hexdigest()
    assert spec["input_video_path"] == f"/cosmos/inputs/{color_sha}.mp4"
    assert spec["depth"] == {
        "control_weight": 0.4,
        "input_control": f"/cosmos/inputs/{depth_sha}.mp4",
    }
    assert spec["edge"] == {"control_weight": 0.6}
    assert spec["seed"] == 5
    assert spec["num_steps"] == 10


def test_wait_log_tail_sets_the_progress(store, job, mp4):
    tail = [
        "loading checkpoints",
        " 11/35 [00:10<00:20,  1.0it/s]",
        " 12/35 [00:11<00:19,  1.0it/s]",
        "saving video",
    ]
    adapter = FakeAdapter(store, mp4, log_tail=tail)
    record = run_job(store, job, adapter)
    assert record.progress == Progress(12, 35)
    assert store.load_run(RUN_ID).progress == Progress(12, 35)


def test_progress_is_kept_from_every_wait_phase(store, job, mp4):
    seen: list[Progress | None] = []

    def watch(call: PlaybookCall) -> None:
        if call.playbook == "job_wait.yml":
            seen.append(store.load_run(RUN_ID).progress)

    adapter = FakeAdapter(store, mp4, waits_before_exit=1, on_call=watch, log_tail=["2/2 [x]"])
    record = run_job(store, job, adapter)
    # Before the first wait nothing is known; the unfinished wait saw 1/2, the last 2/2.
    assert seen == [None, Progress(1, 2)]
    assert record.progress == Progress(2, 2)


# --- failures ------------------------------------------------------------------------------


def test_container_exit_3_fails_with_the_code_and_the_log_tail(store, job, mp4):
    lines = [f"line {i}" for i in range(1, 31)] + ["RuntimeError: CUDA out of memory"]
    adapter = FakeAdapter(store, mp4, exit_code=3, log_lines=lines)
    record = run_job(store, job, adapter)

    assert record.state is RunState.FAILED
    assert states(record) == ["pending", "staging", "running", "failed"]
    assert record.exit_code == 3
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert "3" in record.failure.detail
    assert record.failure.log_tail == lines[-verdicts.LOG_TAIL_LINES :]
    assert record.failure.log_tail[-1] == "RuntimeError: CUDA out of memory"
    assert adapter.playbooks == PHASES
    # The outputs it did write are still kept.
    assert "outputs/output.mp4" in record.outputs


def test_guardrail_marker_with_non_zero_exit_is_guardrail_blocked(store, job, mp4):
    lines = ["loading", "GUARDRAIL BLOCKED: the prompt is unsafe", "TypeError: cannot unpack"]
    adapter = FakeAdapter(store, mp4, exit_code=1, log_lines=lines, video=False)
    record = run_job(store, job, adapter)

    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.GUARDRAIL_BLOCKED
    assert record.failure.log_tail == lines
    assert record.exit_code == 1


def test_exit_0_without_an_mp4_is_output_missing(store, job, mp4):
    adapter = FakeAdapter(store, mp4, exit_code=0, video=False)
    record = run_job(store, job, adapter)

    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.OUTPUT_MISSING
    assert "output.mp4" in record.failure.detail
    assert record.failure.log_tail == ["step 1/2", "step 2/2"]
    assert record.outputs == ["outputs/output.txt"]


def test_exit_0_with_an_mp4_that_does_not_decode_is_output_missing(store, job, mp4):
    class BrokenVideo(FakeAdapter):
        def _collect(self, call: PlaybookCall) -> list[str]:
            names = super()._collect(call)
            video = Path(call.extravars["cosmos_job_fetch_dir"]) / "outputs" / "output.mp4"
            video.write_bytes(b"\x00\x00\x00\x18ftypmp42 but not a video")
            return names

    record = run_job(store, job, BrokenVideo(store, mp4))
    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.OUTPUT_MISSING
    assert "output.mp4" in record.failure.detail


def test_launch_unreachable_sets_the_host_aside_and_with_none_left_the_run_fails(store, job, mp4):
    """Nothing started, so nothing is collected: the run goes back to the queue, and with
    its only host set aside and nothing running it fails unstarted."""
    adapter = FakeAdapter(store, mp4, outcomes={"job_launch.yml": unreachable()})
    record = run_job(store, job, adapter)

    assert adapter.playbooks == ["job_launch.yml"]
    assert record.state is RunState.FAILED
    assert states(record) == ["pending", "staging", "failed"]
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    assert "no host of the inventory answers" in record.failure.detail
    assert HOST in record.failure.detail
    assert "Failed to connect" in record.failure.detail
    assert [n.text.split(" (")[0] for n in record.notes] == [f"{HOST} set aside"]
    assert record.container_id is None
    assert record.exit_code is None


def test_unreachable_phase_is_retried_with_a_note_per_retry(store, job, mp4):
    started = ok(uploaded=[], started=True, container_id="c1")
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_launch.yml": [unreachable(), unreachable(), started]}
    )
    record = run_job(store, job, adapter, retry=RetryPolicy(delays=(0.01, 0.02, 0.03)))

    assert adapter.playbooks == ["job_launch.yml"] * 3 + PHASES[1:]
    assert record.state is RunState.SUCCEEDED
    assert len(record.notes) == 2
    assert "retrying in 0.01 s" in record.notes[0].text
    assert "retrying in 0.02 s" in record.notes[1].text
    assert all("Failed to connect" in note.text for note in record.notes)


def test_host_still_unreachable_after_every_retry_is_host_unreachable(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_launch.yml": unreachable()})
    record = run_job(store, job, adapter, retry=RetryPolicy(delays=(0.01, 0.01)))

    assert adapter.playbooks == ["job_launch.yml"] * 3
    notes = [n.text for n in record.notes]
    assert len(notes) == 3
    assert len(notes[:2]) == 2
    assert all("retrying in 0.01 s" in text for text in notes[:2])
    assert "set aside" in notes[2]
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE


def test_launch_failure_is_playbook_failed_and_skips_wait(store, job, mp4):
    failure = TaskFailure(HOST, "Start | Run the job container", "image not found", False)
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_launch.yml": PlaybookOutcome("failed", 2, {}, [failure])}
    )
    record = run_job(store, job, adapter, retry=RetryPolicy(delays=(0.01,)))

    # A failure that is not the network is not retried.
    assert adapter.playbooks == ["job_launch.yml", "job_collect.yml"]
    assert states(record) == ["pending", "staging", "collecting", "failed"]
    assert record.failure.reason is FailureReason.PLAYBOOK_FAILED
    assert record.failure.detail == f"{HOST}: Start | Run the job container: image not found"
    assert record.notes == []


def test_a_host_lost_mid_wait_is_waited_for_until_the_timeout_then_collected(store, job, mp4):
    """The container runs on while its host is away: the run keeps asking until the job's
    timeout, then fails host_unreachable, and collect is still tried."""
    adapter = FakeAdapter(store, mp4, outcomes={"job_wait.yml": unreachable("Wait | Wait")})
    record = run_job(store, replace(job, timeout=1), adapter)
    assert adapter.playbooks[0] == "job_launch.yml"
    assert adapter.playbooks[-1] == "job_collect.yml"
    waits = adapter.playbooks.count("job_wait.yml")
    assert waits >= 2
    assert states(record) == ["pending", "staging", "running", "collecting", "failed"]
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    asked_again = [n for n in record.notes if "unreachable while the run waits" in n.text]
    assert len(asked_again) == waits
    assert record.exit_code is None


def test_container_that_vanished_before_its_exit_was_seen_is_container_exit(store, job, mp4):
    # The wait phase collects what it left; no collect saved its exit (it was removed).
    gone = ok(exists=False, finished=False, collected=True, outputs=[])
    adapter = FakeAdapter(store, mp4, exit_saved=False, outcomes={"job_wait.yml": gone})
    record = run_job(store, job, adapter)
    assert adapter.playbooks == [*PHASES, "job_collect.yml"]
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert "vanished" in record.failure.detail


def test_a_vanished_container_whose_exit_was_recorded_is_judged_by_it(store, job, mp4):
    """An attached run whose container exited while no driver watched: the wait phase finds
    it gone and collects; its exit is the one the record kept."""
    adapter = FakeAdapter(store, mp4)
    pending_record(store, job)
    store.update_run(RUN_ID, _as_running_with_exit(7))
    gone = {"exists": False, "finished": False, "collected": True, "outputs": ["output.mp4"]}
    adapter.outcomes["job_wait.yml"] = ok(**gone)
    record = run_job(store, job, adapter, mode=Mode.ATTACH)

    assert adapter.playbooks == ["job_wait.yml"]  # collected once, in the wait phase
    assert record.exit_code == 7
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert "code 7" in record.failure.detail


def _as_running_with_exit(code: int | None):
    def change(record: RunRecord) -> None:
        record.host = HOST
        record.move_to(RunState.STAGING)
        record.move_to(RunState.RUNNING)
        record.exit_code = code

    return change


def test_wait_polls_again_until_the_container_exits(store, job, mp4):
    adapter = FakeAdapter(store, mp4, waits_before_exit=2)
    record = run_job(store, job, adapter)
    assert adapter.playbooks == ["job_launch.yml"] + ["job_wait.yml"] * 3
    assert record.state is RunState.SUCCEEDED


def test_wait_never_finishing_times_out_after_bounded_waits(store, job, mp4, monkeypatch):
    clock = FakeClock()
    use_clock(monkeypatch, clock)
    monkeypatch.setattr(run_lifecycle, "WAIT_PHASE_SECONDS", 60)
    slow_job = replace(job, timeout=150)
    adapter = FakeAdapter(store, mp4, waits_before_exit=None, clock=clock, video=False)
    record = run_job(store, slow_job, adapter)

    waits = [
        c.extravars["cosmos_job_wait_timeout"]
        for c in adapter.calls
        if c.playbook == "job_wait.yml"
    ]
    assert waits == [60, 60, 30]
    # No wait phase saw an exit, so none collected: collect runs on its own.
    assert adapter.playbooks[-1] == "job_collect.yml"
    assert adapter.states_seen[-1] == ("job_collect.yml", "collecting")
    assert record.state is RunState.FAILED
    assert states(record) == ["pending", "staging", "running", "collecting", "failed"]
    assert record.failure.reason is FailureReason.TIMEOUT
    assert "150" in record.failure.detail
    assert record.exit_code is None


def test_wait_with_a_deadline_counts_from_the_deadline(store, job, mp4, monkeypatch):
    clock = FakeClock()
    use_clock(monkeypatch, clock)
    monkeypatch.setattr(run_lifecycle, "WAIT_PHASE_SECONDS", 60)
    adapter = FakeAdapter(store, mp4, waits_before_exit=None, clock=clock)
    pending_record(store, job)
    prepared = prepare(store, BATCH_ID, RUN_ID, job)
    life = JobLifecycle(adapter, store, retry=NO_RETRY)

    exit_ = life.wait(prepared, HOST, deadline=clock.now + 70)

    assert exit_ == Exit(finished=False)
    waits = [c.extravars["cosmos_job_wait_timeout"] for c in adapter.calls]
    assert waits == [60, 10]


def test_small_timeout_with_a_real_clock_ends_quickly(store, job, mp4, monkeypatch):
    class SlowWait(FakeAdapter):
        def _job_wait(self, call: PlaybookCall) -> PlaybookOutcome:
            time.sleep(0.05)
            return ok(exists=True, finished=False)

    monkeypatch.setattr(run_lifecycle, "WAIT_PHASE_SECONDS", 1)
    quick_job = replace(job, timeout=2)
    adapter = SlowWait(store, mp4)
    started = time.monotonic()
    record = run_job(store, quick_job, adapter)

    assert record.failure.reason is FailureReason.TIMEOUT
    assert adapter.playbooks[-1] == "job_collect.yml"
    waits = [c for c in adapter.calls if c.playbook == "job_wait.yml"]
    assert len(waits) >= 2
    assert all(c.extravars["cosmos_job_wait_timeout"] == 1 for c in waits)
    assert time.monotonic() - started < 10


def test_timeout_of_one_second_still_waits_for_the_container(store, job, mp4):
    adapter = FakeAdapter(store, mp4, exit_code=0)
    record = run_job(store, replace(job, timeout=1), adapter)
    assert "job_wait.yml" in adapter.playbooks
    assert record.state is RunState.SUCCEEDED


# The collect of a good run fails inside the wait phase that collects it ...

DISK_FULL = PlaybookOutcome(
    "failed", 2, {}, [TaskFailure(HOST, "Collect | Fetch the outputs", "disk full", False)]
)


def test_collect_unreachable_in_the_wait_phase_is_host_unreachable(store, job, mp4):
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_wait.yml": unreachable("Collect | Fetch the outputs")}
    )
    record = run_job(store, replace(job, timeout=1), adapter)
    assert adapter.playbooks[:2] == PHASES
    assert adapter.playbooks[-1] == "job_collect.yml"  # collect is tried again
    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    assert "Failed to connect" in record.failure.detail


def test_collect_failure_in_the_wait_phase_is_playbook_failed(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_wait.yml": DISK_FULL})
    record = run_job(store, job, adapter)
    assert adapter.playbooks == [*PHASES, "job_collect.yml"]
    assert record.state is RunState.FAILED
    assert "disk full" in record.failure.detail
    assert record.failure.reason is FailureReason.PLAYBOOK_FAILED


class DropsWhileFetching(FakeAdapter):
    """The first wait phase to see the exit loses the host while fetching: its collect had
    already saved the exit and removed the container. The retried phase finds it gone and
    collects what was left."""

    def _job_wait(self, call: PlaybookCall) -> PlaybookOutcome:
        if self.playbooks.count("job_wait.yml") == 1:
            return unreachable("Collect | Fetch the outputs")
        gone = {"exists": False, "finished": False}
        return ok(**gone, log_tail=self.log_tail, collected=True, outputs=self._collect(call))


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_wait_retried_after_its_collect_removed_the_container_keeps_its_exit(
    store, job, mp4, exit_code
):
    adapter = DropsWhileFetching(store, mp4, exit_code=exit_code)
    record = run_job(store, job, adapter, retry=RetryPolicy(delays=(0.01,)))

    assert adapter.playbooks == ["job_launch.yml", "job_wait.yml", "job_wait.yml"]
    assert record.exit_code == exit_code
    assert len(record.notes) == 1 and "retrying" in record.notes[0].text
    if exit_code == 0:
        assert record.state is RunState.SUCCEEDED
    else:
        assert record.failure.reason is FailureReason.CONTAINER_EXIT
        assert "code 3" in record.failure.detail


# ... or in job_collect.yml, which still collects after a timeout and for an orphan.


def test_collect_failure_after_a_timeout_keeps_the_timeout(store, job, mp4, monkeypatch):
    clock = FakeClock()
    use_clock(monkeypatch, clock)
    adapter = FakeAdapter(
        store, mp4, waits_before_exit=None, clock=clock, outcomes={"job_collect.yml": DISK_FULL}
    )
    record = run_job(store, replace(job, timeout=60), adapter)

    assert adapter.playbooks[-1] == "job_collect.yml"
    assert states(record)[-2:] == ["collecting", "failed"]
    # The first cause is the verdict; the failed collect fetched nothing.
    assert record.failure.reason is FailureReason.TIMEOUT
    assert record.outputs == []


def test_collect_failure_of_an_orphan_that_exited_0_is_playbook_failed(store, job, mp4):
    """With no timeout or exit to blame, a failed job_collect.yml is the verdict."""
    adapter = FakeAdapter(store, mp4, outcomes={"job_collect.yml": DISK_FULL})
    record = orphan(store, job, adapter, exit_code=0)
    assert record.failure.reason is FailureReason.PLAYBOOK_FAILED
    assert "disk full" in record.failure.detail


def test_collect_unreachable_of_an_orphan_is_host_unreachable(store, job, mp4):
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_collect.yml": unreachable("Collect | Fetch the outputs")}
    )
    record = orphan(store, job, adapter, exit_code=0)
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    assert "Failed to connect" in record.failure.detail


# --- orphans: runs whose container is gone when a driver comes back -----------------------


def orphan(store: RunStore, job: Job, adapter: FakeAdapter, exit_code: int | None) -> RunRecord:
    """A COLLECT ticket (what resume makes of a run left RUNNING by a driver that died
    around its exit, its container gone) through the scheduler."""
    pending_record(store, job)
    store.update_run(RUN_ID, _as_running_with_exit(exit_code))
    return run_job(store, job, adapter, mode=Mode.COLLECT, exit_code=exit_code)


def test_orphan_with_a_recorded_exit_is_collected_and_judged_by_it(store, job, mp4):
    # The exit left on the host says 0; the one the driver saw and recorded wins.
    adapter = FakeAdapter(store, mp4, exit_code=0)
    record = orphan(store, job, adapter, exit_code=3)

    assert adapter.playbooks == ["job_collect.yml"]
    assert adapter.calls[0].limit == HOST
    assert states(record) == ["pending", "staging", "running", "collecting", "failed"]
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert "code 3" in record.failure.detail
    assert "outputs/output.mp4" in record.outputs


@pytest.mark.parametrize(
    ("left", "state", "reason"),
    [(0, RunState.SUCCEEDED, None), (5, RunState.FAILED, FailureReason.CONTAINER_EXIT)],
)
def test_orphan_without_a_recorded_exit_is_judged_by_the_exit_left_on_host(
    store, job, mp4, left, state, reason
):
    adapter = FakeAdapter(store, mp4, exit_code=left, exit_saved=True)
    record = orphan(store, job, adapter, exit_code=None)

    assert adapter.playbooks == ["job_collect.yml"]
    assert record.state is state
    assert (record.failure.reason if record.failure else None) is reason
    assert "logs/container-exit.json" in record.logs


def test_orphan_without_any_exit_fails_as_exit_unknown(store, job, mp4):
    adapter = FakeAdapter(store, mp4, exit_saved=False)
    record = orphan(store, job, adapter, exit_code=None)

    assert adapter.playbooks == ["job_collect.yml"]
    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert "exit code unknown" in record.failure.detail
    # What it left is still collected.
    assert "outputs/output.mp4" in record.outputs


def test_orphan_with_an_unreadable_exit_file_fails_as_exit_unknown(store, job, mp4):
    class Garbled(FakeAdapter):
        def _collect(self, call: PlaybookCall) -> list[str]:
            names = super()._collect(call)
            (store.logs_dir(RUN_ID) / files.EXIT_FILE).write_text("{not json")
            return names

    record = orphan(store, job, Garbled(store, mp4), exit_code=None)
    assert "exit code unknown" in record.failure.detail


# --- stopping and cancelling ---------------------------------------------------------------


def test_a_canceled_playbook_leaves_the_run_as_it_is(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_wait.yml": PlaybookOutcome("canceled", 254)})
    run_job(store, job, adapter)

    # Its container keeps running; the record stays where it was; nothing is collected.
    assert adapter.playbooks == PHASES
    record = store.load_run(RUN_ID)
    assert record.state is RunState.RUNNING
    assert record.failure is None


def test_the_stop_event_leaves_the_run_even_after_a_good_phase(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    life = JobLifecycle(adapter, store, retry=NO_RETRY)
    adapter.on_call = lambda call: life.stop.set() if call.playbook == "job_launch.yml" else None

    run_job(store, job, adapter, life=life)
    assert adapter.playbooks == ["job_launch.yml"]
    assert store.load_run(RUN_ID).state is RunState.STAGING


def test_a_stop_during_a_retry_delay_leaves_the_run(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_launch.yml": unreachable()})
    life = JobLifecycle(adapter, store, retry=RetryPolicy(delays=(30.0,)))
    threading.Timer(0.1, life.stop.set).start()

    started = time.monotonic()
    record = run_job(store, job, adapter, life=life)
    assert time.monotonic() - started < 10
    assert adapter.playbooks == ["job_launch.yml"]
    assert record.state is RunState.STAGING
    assert record.failure is None


def test_cancel_marker_makes_judge_end_cancelled(store, job, mp4):
    def cancel_while_launching(call: PlaybookCall) -> None:
        if call.playbook == "job_launch.yml":
            store.request_cancel(RUN_ID)

    adapter = FakeAdapter(store, mp4, exit_code=3, on_call=cancel_while_launching)
    record = run_job(store, job, adapter)

    # Seen right after the start: the container is stopped and collected, never waited for.
    assert adapter.playbooks == ["job_launch.yml", "job_collect.yml"]
    assert record.state is RunState.CANCELLED
    assert states(record) == ["pending", "staging", "running", "collecting", "cancelled"]
    assert record.failure.reason is FailureReason.CANCELLED
    assert record.failure.log_tail == ["step 1/2", "step 2/2"]


def test_judge_of_an_already_cancelled_record_adds_no_second_end(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    pending_record(store, job)
    # A `kill` in another process concluded the run.
    store.update_run(RUN_ID, lambda r: r.fail(FailureReason.CANCELLED, "stopped by kill"))
    before = store.load_run(RUN_ID)
    life = JobLifecycle(adapter, store, retry=NO_RETRY)

    problem = Verdict(FailureReason.CONTAINER_EXIT, "container exited with code 137")
    record = life.judge(RunRef(RUN_ID, BATCH_ID), problem, Exit(True, 137), None)

    assert record.state is RunState.CANCELLED
    assert record.history == before.history
    assert states(record) == ["pending", "cancelled"]
    assert record.failure.detail == "stopped by kill"
    assert store.load_run(RUN_ID) == before
    assert adapter.calls == []


def test_records_are_written_through_update_so_a_missing_record_is_an_error(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    life = JobLifecycle(adapter, store, retry=NO_RETRY)
    with pytest.raises(StoreError, match=RUN_ID):
        life.launch(prepare(store, BATCH_ID, RUN_ID, job), Placement(HOST))
    assert adapter.calls == []


def test_input_hash_is_cached_but_follows_a_changed_file(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"first version")
    first = file_sha256(video)
    assert file_sha256(video) == first == hashlib.sha256(b"first version").hexdigest()
    video.write_bytes(b"second, longer version")
    assert file_sha256(video) == hashlib.sha256(b"second, longer version").hexdigest()


def test_unpack_bundle_puts_outputs_and_logs_in_place_and_removes_the_tar(tmp_path):
    run_dir = tmp_path / "run"
    source = tmp_path / "src"
    (source / "outputs").mkdir(parents=True)
    (source / "logs").mkdir()
    (source / "outputs" / "output.mp4").write_bytes(b"mp4")
    (source / "logs" / "container.log").write_text("log\n")
    run_dir.mkdir()
    with tarfile.open(run_dir / "collected.tar", "w") as archive:
        archive.add(source / "outputs" / "output.mp4", arcname="outputs/output.mp4")
        archive.add(source / "logs" / "container.log", arcname="logs/container.log")

    files.unpack_bundle(run_dir, "collected.tar")

    assert (run_dir / "outputs" / "output.mp4").read_bytes() == b"mp4"
    assert (run_dir / "logs" / "container.log").read_text() == "log\n"
    assert not (run_dir / "collected.tar").exists()


@pytest.mark.parametrize("arcname", ["../escape.txt", "outputs/deep/x.txt", "spec.json"])
def test_unpack_bundle_refuses_entries_outside_outputs_and_logs(tmp_path, arcname):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stray = tmp_path / "stray.txt"
    stray.write_text("x")
    with tarfile.open(run_dir / "collected.tar", "w") as archive:
        archive.add(stray, arcname=arcname)

    with pytest.raises(PhaseFailed, match="unexpected entries"):
        files.unpack_bundle(run_dir, "collected.tar")
    assert not (tmp_path / "escape.txt").exists()


def test_a_new_attempt_drops_the_outputs_and_exit_an_earlier_attempt_left(store, job, mp4):
    stale_video = store.outputs_dir(RUN_ID) / "stale.mp4"
    stale_video.parent.mkdir(parents=True, exist_ok=True)
    stale_video.write_bytes(b"attempt 1")
    stale_exit = store.logs_dir(RUN_ID) / files.EXIT_FILE
    stale_exit.parent.mkdir(parents=True, exist_ok=True)
    stale_exit.write_text('{"exit_code": 1}')
    seen_at_launch: list[bool] = []

    def on_call(call: PlaybookCall) -> None:
        if call.playbook == "job_launch.yml":
            seen_at_launch.append(stale_video.exists() or stale_exit.exists())

    record = run_job(store, job, FakeAdapter(store, mp4, on_call=on_call))

    assert seen_at_launch == [False]
    assert record.state is RunState.SUCCEEDED
    assert "outputs/stale.mp4" not in record.outputs

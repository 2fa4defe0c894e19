"""One job's life, with a fake at the adapter boundary: the fake answers the phase playbooks
the way the real ones report (set_stats data, task failures) and, for collect, puts the
fetched files where the real fetch puts them (the fetch dir it is given)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cosmos_driver import lifecycle
from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome, TaskFailure
from cosmos_driver.batch import Job
from cosmos_driver.lifecycle import JobLifecycle, prepare
from cosmos_driver.profiles import transfer1
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.store import RunStore

HOST = "gpu-1"
BATCH_ID = "demo-0123abcd"
RUN_ID = "demo.job-1-89abcdef"
PHASES = ["job_stage.yml", "job_start.yml", "job_wait.yml", "job_collect.yml"]


def ok(**data: Any) -> PlaybookOutcome:
    return PlaybookOutcome("successful", 0, data)


def unreachable(task: str = "Stage | Ensure the run directory") -> PlaybookOutcome:
    failure = TaskFailure(HOST, task, "Failed to connect to the host via ssh", True)
    return PlaybookOutcome("failed", 4, {}, [failure])


@dataclass
class FakeAdapter:
    """Stands in for AnsibleAdapter: records calls, answers from a script, writes collects."""

    store: RunStore
    mp4: Any
    exit_code: int = 0
    log_lines: list[str] = field(default_factory=lambda: ["step 1/2", "step 2/2"])
    video: bool = True
    outcomes: dict[str, PlaybookOutcome] = field(default_factory=dict)
    waits_before_exit: int = 0
    clock: Any = None
    calls: list[PlaybookCall] = field(default_factory=list)
    states_seen: list[tuple[str, str]] = field(default_factory=list)
    log_paths: list[Path | None] = field(default_factory=list)

    def run(
        self, call: PlaybookCall, log_path: Path | None = None, cancel: Any = None
    ) -> PlaybookOutcome:
        self.calls.append(call)
        self.log_paths.append(log_path)
        saved = self.store.load_run(call.extravars["cosmos_job_run_id"])
        self.states_seen.append((call.playbook, saved.state.value if saved else "none"))
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as out:
                out.write(f"PLAY [{call.playbook}]\n")
        if call.playbook in self.outcomes:
            outcome = self.outcomes[call.playbook]
            if call.playbook == "job_collect.yml" and outcome.ok:
                self._collect(call)
            return outcome
        return getattr(self, "_" + call.playbook.removesuffix(".yml"))(call)

    def _job_stage(self, call: PlaybookCall) -> PlaybookOutcome:
        return ok()

    def _job_start(self, call: PlaybookCall) -> PlaybookOutcome:
        return ok(container_id="c0ffee1234", reattached=False)

    def _job_wait(self, call: PlaybookCall) -> PlaybookOutcome:
        if self.clock is not None:
            self.clock.now += call.extravars["cosmos_job_wait_timeout"]
        if self.waits_before_exit is None or self.waits_before_exit > 0:
            if self.waits_before_exit is not None:
                self.waits_before_exit -= 1
            return ok(finished=False, oom_killed=False)
        return ok(finished=True, exit_code=self.exit_code, oom_killed=False)

    def _job_collect(self, call: PlaybookCall) -> PlaybookOutcome:
        names = self._collect(call)
        return ok(outputs=names)

    def _collect(self, call: PlaybookCall) -> list[str]:
        fetch = Path(call.extravars["cosmos_job_fetch_dir"])
        (fetch / "outputs").mkdir(parents=True, exist_ok=True)
        (fetch / "logs").mkdir(parents=True, exist_ok=True)
        (fetch / "logs" / "container.log").write_text("\n".join(self.log_lines) + "\n")
        (fetch / "outputs" / "output.txt").write_text("the final prompt\n")
        if self.video:
            self.mp4(fetch / "outputs" / "output.mp4", frames=8, size=(64, 48))
        return sorted(p.name for p in (fetch / "outputs").iterdir())

    @property
    def playbooks(self) -> list[str]:
        return [c.playbook for c in self.calls]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "state")


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


def run_job(store: RunStore, job: Job, adapter: FakeAdapter) -> RunRecord:
    record = RunRecord(RUN_ID, BATCH_ID, job.name)
    record.move_to(RunState.PENDING)
    store.save_run(record)
    prepared = prepare(store, BATCH_ID, RUN_ID, job)
    result = JobLifecycle(adapter, store, HOST).execute(prepared, record)
    assert result is record
    assert store.load_run(RUN_ID) == record
    return record


def states(record: RunRecord) -> list[str]:
    return [t.state.value for t in record.history]


# --- success -------------------------------------------------------------------------------


def test_success_walks_every_state_and_keeps_outputs_and_logs(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    record = run_job(store, job, adapter)

    assert record.state is RunState.SUCCEEDED
    assert states(record) == ["pending", "staging", "running", "collecting", "succeeded"]
    assert record.failure is None
    assert record.host == HOST
    assert record.exit_code == 0
    assert record.container_id == "c0ffee1234"
    assert record.outputs == ["outputs/output.mp4", "outputs/output.txt"]
    assert record.logs == ["logs/ansible.log", "logs/container.log"]
    assert adapter.playbooks == PHASES
    assert all(call.limit == HOST for call in adapter.calls)


def test_each_state_is_saved_before_its_phase_runs(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)
    assert adapter.states_seen == [
        ("job_stage.yml", "staging"),
        ("job_start.yml", "running"),
        ("job_wait.yml", "running"),
        ("job_collect.yml", "collecting"),
    ]


def test_phase_output_goes_to_the_runs_ansible_log(store, job, mp4):
    adapter = FakeAdapter(store, mp4)
    run_job(store, job, adapter)
    ansible_log = store.logs_dir(RUN_ID) / "ansible.log"
    assert adapter.log_paths == [ansible_log] * 4
    assert ansible_log.read_text().splitlines() == [f"PLAY [{p}]" for p in PHASES]


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
        assert extravars["cosmos_job_command"] == transfer1.command(job, transfer1.ContainerPaths())
        assert "--nproc_per_node=2" in extravars["cosmos_job_command"]
        assert extravars["cosmos_job_gpu_devices"] == ["0", "1"]
        assert extravars["cosmos_job_env"] == {"NCCL_DEBUG": "WARN"}
        assert extravars["cosmos_job_fetch_dir"] == str(store.run_dir(RUN_ID).resolve())
        assert Path(extravars["cosmos_job_spec_src"]) == store.run_dir(RUN_ID) / "spec.json"
        assert extravars["cosmos_job_container_paths"] == {
            "run": "/cosmos/run",
            "inputs": "/cosmos/inputs",
            "checkpoints": "/cosmos/checkpoints",
        }
        json.dumps(extravars)  # extravars must be plain JSON for ansible-runner


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


# --- failures ------------------------------------------------------------------------------


def test_container_exit_3_fails_with_the_code_and_the_log_tail(store, job, mp4):
    lines = [f"line {i}" for i in range(1, 31)] + ["RuntimeError: CUDA out of memory"]
    adapter = FakeAdapter(store, mp4, exit_code=3, log_lines=lines)
    record = run_job(store, job, adapter)

    assert record.state is RunState.FAILED
    assert states(record) == ["pending", "staging", "running", "collecting", "failed"]
    assert record.exit_code == 3
    assert record.failure.reason is FailureReason.CONTAINER_EXIT
    assert "3" in record.failure.detail
    assert record.failure.log_tail == lines[-lifecycle.LOG_TAIL_LINES :]
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


def test_stage_unreachable_is_host_unreachable_and_collect_still_runs(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_stage.yml": unreachable()})
    record = run_job(store, job, adapter)

    assert adapter.playbooks == ["job_stage.yml", "job_collect.yml"]
    assert record.state is RunState.FAILED
    assert states(record) == ["pending", "staging", "collecting", "failed"]
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    assert HOST in record.failure.detail
    assert "Failed to connect" in record.failure.detail
    assert record.container_id is None
    assert record.exit_code is None


def test_start_failure_is_playbook_failed_and_skips_wait(store, job, mp4):
    failure = TaskFailure(HOST, "Start | Run the job container", "image not found", False)
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_start.yml": PlaybookOutcome("failed", 2, {}, [failure])}
    )
    record = run_job(store, job, adapter)

    assert adapter.playbooks == ["job_stage.yml", "job_start.yml", "job_collect.yml"]
    assert record.failure.reason is FailureReason.PLAYBOOK_FAILED
    assert record.failure.detail == f"{HOST}: Start | Run the job container: image not found"


def test_wait_unreachable_is_host_unreachable_and_collect_still_runs(store, job, mp4):
    adapter = FakeAdapter(store, mp4, outcomes={"job_wait.yml": unreachable("Wait | Wait")})
    record = run_job(store, job, adapter)
    assert adapter.playbooks == PHASES
    assert record.failure.reason is FailureReason.HOST_UNREACHABLE
    assert record.exit_code is None


def test_wait_polls_again_until_the_container_exits(store, job, mp4):
    adapter = FakeAdapter(store, mp4, waits_before_exit=2)
    record = run_job(store, job, adapter)
    assert adapter.playbooks == [
        "job_stage.yml", "job_start.yml",
        "job_wait.yml", "job_wait.yml", "job_wait.yml",
        "job_collect.yml",
    ]  # fmt: skip
    assert record.state is RunState.SUCCEEDED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_wait_never_finishing_times_out_after_bounded_waits(store, job, mp4, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(lifecycle, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(lifecycle, "WAIT_PHASE_SECONDS", 60)
    slow_job = replace(job, timeout=150)
    adapter = FakeAdapter(store, mp4, waits_before_exit=None, clock=clock, video=False)
    record = run_job(store, slow_job, adapter)

    waits = [
        c.extravars["cosmos_job_wait_timeout"]
        for c in adapter.calls
        if c.playbook == "job_wait.yml"
    ]
    assert waits == [60, 60, 30]
    assert adapter.playbooks[-1] == "job_collect.yml"
    assert record.state is RunState.FAILED
    assert states(record) == ["pending", "staging", "running", "collecting", "failed"]
    assert record.failure.reason is FailureReason.TIMEOUT
    assert "150" in record.failure.detail
    assert record.exit_code is None


def test_small_timeout_with_a_real_clock_ends_quickly(store, job, mp4, monkeypatch):
    import time

    class SlowWait(FakeAdapter):
        def _job_wait(self, call: PlaybookCall) -> PlaybookOutcome:
            time.sleep(0.05)
            return ok(finished=False)

    monkeypatch.setattr(lifecycle, "WAIT_PHASE_SECONDS", 1)
    quick_job = replace(job, timeout=2)
    adapter = SlowWait(store, mp4)
    started = time.monotonic()
    record = run_job(store, quick_job, adapter)

    assert record.failure.reason is FailureReason.TIMEOUT
    assert adapter.playbooks[-1] == "job_collect.yml"
    assert all(
        c.extravars["cosmos_job_wait_timeout"] == 1
        for c in adapter.calls
        if c.playbook == "job_wait.yml"
    )
    assert time.monotonic() - started < 10


def test_collect_failure_after_a_good_run_is_reported(store, job, mp4):
    failure = TaskFailure(HOST, "Collect | Fetch the outputs", "disk full", False)
    adapter = FakeAdapter(
        store, mp4, outcomes={"job_collect.yml": PlaybookOutcome("failed", 2, {}, [failure])}
    )
    record = run_job(store, job, adapter)
    assert record.state is RunState.FAILED
    assert record.failure.reason is FailureReason.PLAYBOOK_FAILED
    assert "disk full" in record.failure.detail


def test_timeout_of_one_second_still_waits_for_the_container(store, job, mp4):
    adapter = FakeAdapter(store, mp4, exit_code=0)
    record = run_job(store, replace(job, timeout=1), adapter)
    assert "job_wait.yml" in adapter.playbooks
    assert record.state is RunState.SUCCEEDED

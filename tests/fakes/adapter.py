"""A fake at the adapter boundary for one run's life: it answers the phase playbooks the
way the real ones report (set_stats data, task failures) and, for collect (job_collect.yml, or
the wait phase once the container has exited), puts the fetched files where the real fetch
puts them (the fetch dir it is given). `run_job` drives one run the way the scheduler does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cosmos_driver import ssh_hosts as outage_module
from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome, TaskFailure
from cosmos_driver.model import Job
from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.run import files
from cosmos_driver.run import lifecycle as run_lifecycle
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.phases import RetryPolicy
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import Placement
from cosmos_driver.scheduler import Mode, Scheduler, Ticket
from cosmos_driver.ssh_hosts import SshHosts
from cosmos_driver.store import RunStore

HOST = "gpu-1"
BATCH_ID = "demo-0123abcd"
RUN_ID = "demo.job-1-89abcdef"
# A good run: launch (stage and start), then a wait phase that also collects.
PHASES = ["job_launch.yml", "job_wait.yml"]
STARTED_AT = "2025-01-02T03:04:05.000000001Z"
FINISHED_AT = "2025-01-02T03:14:05.000000001Z"
NO_RETRY = RetryPolicy(delays=())


def ok(**data: Any) -> PlaybookOutcome:
    return PlaybookOutcome("successful", 0, data)


def unreachable(task: str = "Stage | Create the folders") -> PlaybookOutcome:
    failure = TaskFailure(HOST, task, "Failed to connect to the host via ssh", True)
    return PlaybookOutcome("failed", 4, {}, [failure])


@dataclass
class FakeAdapter:
    """Stands in for AnsibleAdapter: records calls, answers from a script, writes collects.

    `outcomes[playbook]` is either one outcome for every call of that playbook or a list
    consumed call by call (the last one repeats). `exit_saved`: the host's collect found the
    container and left its exit in logs/container-exit.json, as the collect action does."""

    store: RunStore
    mp4: Any
    exit_code: int = 0
    log_lines: list[str] = field(default_factory=lambda: ["step 1/2", "step 2/2"])
    log_tail: list[str] = field(default_factory=lambda: ["step 2/2"])
    video: bool = True
    exit_saved: bool = True
    outcomes: dict[str, Any] = field(default_factory=dict)
    waits_before_exit: int | None = 0
    clock: Any = None
    on_call: Any = None
    calls: list[PlaybookCall] = field(default_factory=list)
    states_seen: list[tuple[str, str]] = field(default_factory=list)
    log_paths: list[Path | None] = field(default_factory=list)
    cancels: list[Any] = field(default_factory=list)

    def run(
        self, call: PlaybookCall, log_path: Path | None = None, cancel: Any = None
    ) -> PlaybookOutcome:
        self.calls.append(call)
        self.log_paths.append(log_path)
        self.cancels.append(cancel)
        saved = self.store.load_run(call.extravars["cosmos_job_run_id"])
        self.states_seen.append((call.playbook, saved.state.value if saved else "none"))
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as out:
                out.write(f"PLAY [{call.playbook}]\n")
        if self.on_call:
            self.on_call(call)
        if call.playbook in self.outcomes:
            outcome = self._scripted(call.playbook)
            if call.playbook == "job_collect.yml" and outcome.ok:
                self._collect(call)
            return outcome
        return getattr(self, "_" + call.playbook.removesuffix(".yml"))(call)

    def _scripted(self, playbook: str) -> PlaybookOutcome:
        scripted = self.outcomes[playbook]
        if isinstance(scripted, list):
            return scripted.pop(0) if len(scripted) > 1 else scripted[0]
        return scripted

    def _job_launch(self, call: PlaybookCall) -> PlaybookOutcome:
        return ok(uploaded=[], started=True, container_id="c1", reattached=False)

    def _job_wait(self, call: PlaybookCall) -> PlaybookOutcome:
        if self.clock is not None:
            self.clock.now += call.extravars["cosmos_job_wait_timeout"]
        if self.waits_before_exit is None or self.waits_before_exit > 0:
            if self.waits_before_exit is not None:
                self.waits_before_exit -= 1
            return ok(exists=True, finished=False, started_at=STARTED_AT, log_tail=["1/2 ["])
        exit_ = dict(
            exists=True,
            finished=True,
            exit_code=self.exit_code,
            started_at=STARTED_AT,
            finished_at=FINISHED_AT,
            log_tail=self.log_tail,
            oom_killed=False,
        )
        if call.extravars.get("cosmos_job_collect_when_done"):
            return ok(**exit_, collected=True, outputs=self._collect(call))
        return ok(**exit_)

    def _job_collect(self, call: PlaybookCall) -> PlaybookOutcome:
        names = self._collect(call)
        return ok(outputs=names)

    def _collect(self, call: PlaybookCall) -> list[str]:
        fetch = Path(call.extravars["cosmos_job_fetch_dir"])
        (fetch / "outputs").mkdir(parents=True, exist_ok=True)
        (fetch / "logs").mkdir(parents=True, exist_ok=True)
        (fetch / "logs" / "container.log").write_text("\n".join(self.log_lines) + "\n")
        (fetch / "outputs" / "output.txt").write_text("the final prompt\n")
        if self.exit_saved:
            exit_ = {"exit_code": self.exit_code, "started_at": STARTED_AT, "oom_killed": False}
            (fetch / "logs" / files.EXIT_FILE).write_text(json.dumps(exit_))
        if self.video:
            self.mp4(fetch / "outputs" / "output.mp4", frames=8, size=(64, 48))
        return sorted(p.name for p in (fetch / "outputs").iterdir())

    @property
    def playbooks(self) -> list[str]:
        return [c.playbook for c in self.calls]


def pending_record(store: RunStore, job: Job) -> RunRecord:
    """The record BatchRunner writes before a run is scheduled."""
    record = RunRecord(RUN_ID, BATCH_ID, job.name)
    record.move_to(RunState.PENDING)
    store.save_run(record)
    return record


def run_job(
    store: RunStore,
    job: Job,
    adapter: FakeAdapter,
    retry: RetryPolicy = NO_RETRY,
    life: JobLifecycle | None = None,
    mode: Mode = Mode.FRESH,
    exit_code: int | None = None,
) -> RunRecord:
    """Drive one run of `job` through the scheduler on one host with the job's GPUs: the
    sequence production runs. A FRESH run starts from a pending record; ATTACH and COLLECT
    (what resume makes of a run found in flight) from the record as the test left it."""
    if store.load_run(RUN_ID) is None:
        pending_record(store, job)
    prepared = prepare(store, BATCH_ID, RUN_ID, job)
    placement = None if mode is Mode.FRESH else Placement(HOST, devices(job.gpus))
    changes: list[RunRecord] = []
    life = life or JobLifecycle(adapter, store, retry=retry)
    life.on_change = changes.append
    scheduler_for(life, {HOST: job.gpus}).run([Ticket(prepared, mode, placement, exit_code)])
    result = store.load_run(RUN_ID)
    assert result is not None
    if changes:
        assert changes[-1] == result  # every write is reported, the last one the verdict
    return result


def devices(gpus: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(gpus))


def scheduler_for(life: JobLifecycle, gpu_counts: dict[str, int]) -> Scheduler:
    """The scheduler the driver builds, over `life`, for hosts with these GPU counts."""
    return Scheduler(life, SshHosts(life, gpu_counts))


def states(record: RunRecord) -> list[str]:
    return [t.state.value for t in record.history]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def use_clock(monkeypatch: Any, clock: FakeClock) -> None:
    """Both the lifecycle's wait and the scheduler's outage loop read `clock`."""
    fake_time = SimpleNamespace(monotonic=clock.monotonic)
    monkeypatch.setattr(run_lifecycle, "time", fake_time)
    monkeypatch.setattr(outage_module, "time", fake_time)


def short_outages(monkeypatch: Any) -> None:
    """The scheduler asks again after a host outage within hundredths of a second."""
    monkeypatch.setattr(outage_module, "OUTAGE_BACKOFF_SECONDS", (0.01, 0.02))

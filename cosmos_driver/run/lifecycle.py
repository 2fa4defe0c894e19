"""One run's trip through the phase playbooks on one host: launch (stage and start), wait
(which collects in the same play once the container has exited), collect, and the verdict.
Every transition is written to the run record as it happens (under the store lock, so a
`kill` from another process is never undone). The scheduler decides the order; this class
owns no thread and no retry of a run."""

from __future__ import annotations

import logging
import math
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.profiles import DEFAULT, ContainerPaths, Profile, profile_named
from cosmos_driver.records import FailureReason, Progress, RunRecord, RunState
from cosmos_driver.run import files, verdicts
from cosmos_driver.run.phases import (
    START_PHASE_SECONDS,
    WAIT_PHASE_SECONDS,
    PhaseRunner,
    RetryPolicy,
)
from cosmos_driver.run.types import (
    AnyRun,
    Exit,
    HostDown,
    PhaseFailed,
    Placement,
    PreparedRun,
    Verdict,
)
from cosmos_driver.store import RunStore

log = logging.getLogger(__name__)

PROGRESS = re.compile(r"(\d+)/(\d+) \[")


@dataclass
class JobLifecycle:
    """Drives prepared runs through the phase playbooks; owns no thread of its own."""

    adapter: AnsibleAdapter
    store: RunStore
    stop: threading.Event = field(default_factory=threading.Event)
    retry: RetryPolicy = field(default_factory=RetryPolicy.from_env)
    on_change: Callable[[RunRecord], None] | None = None
    paths: ContainerPaths = field(default_factory=ContainerPaths)

    @property
    def phases(self) -> PhaseRunner:
        return PhaseRunner(self.adapter, self.store, self.stop, self.retry, self.paths, self.note)

    def launch(self, run: PreparedRun, placement: Placement) -> None:
        """Stage the run, then start its container once the containers holding its GPUs have
        exited (the host waits for them; a phase that times out first is simply run again)."""
        self.update(run.run_id, lambda r: _enter(r, RunState.STAGING, placement.host))
        # An earlier attempt's exit and outputs must not stand for this one's (the host drops
        # its copies when it stages).
        (self.store.logs_dir(run.run_id) / files.EXIT_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.store.outputs_dir(run.run_id), ignore_errors=True)
        phases = self.phases
        while True:
            outcome = phases.run(
                "job_launch.yml", run, placement.host, START_PHASE_SECONDS, placement
            )
            if outcome.data.get("started"):
                break

        def started(record: RunRecord) -> None:
            _enter(record, RunState.RUNNING, placement.host)
            record.gpu_devices = list(placement.devices)
            record.container_id = outcome.data.get("container_id")

        self.update(run.run_id, started)

    def wait(self, run: PreparedRun, host: str, deadline: float | None = None) -> Exit:
        """Wait, in bounded phases, until the container exits or the job's time is up; the
        phase that sees the exit collects too."""
        deadline = deadline or time.monotonic() + run.job.timeout
        collect = {"cosmos_job_collect_when_done": True}
        phases = self.phases
        while (remaining := math.ceil(deadline - time.monotonic())) > 0:
            wait = min(WAIT_PHASE_SECONDS, remaining)
            outcome = phases.run("job_wait.yml", run, host, wait, extra=collect)
            record = self.update(run.run_id, lambda r, data=outcome.data: _note_wait(r, data))
            if outcome.data.get("finished") or not outcome.data.get("exists", True):
                return _exit_from(outcome.data, self._note_exit_left(record, outcome.data))
        return Exit(finished=False)

    def _note_exit_left(self, record: RunRecord, data: dict[str, Any]) -> RunRecord:
        """A wait phase that found the container gone and collected it: keep the exit an
        earlier collect saved on the host (a wait phase whose collect removed the container,
        then lost the host while fetching, is retried and finds it gone)."""
        if data.get("exists", True) or not data.get("collected") or record.exit_code is not None:
            return record
        left = files.exit_left_on_host(self.store, record.run_id)
        if left is None:
            return record
        return self.update(record.run_id, lambda r: setattr(r, "exit_code", left))

    def finish(
        self, run: AnyRun, host: str, problem: Verdict | None, exit_: Exit | None
    ) -> RunRecord:
        """Collect (whatever happened before, unless the wait phase did) and judge the run."""
        if exit_ is not None and exit_.collected:
            self.update(run.run_id, lambda r: files.list_local_files(r, self.store))
            return self.judge(run, problem, exit_, None)
        self.update(run.run_id, lambda r: _enter(r, RunState.COLLECTING, host))
        collect_problem = self.collect(run, host)
        return self.judge(run, problem, exit_, collect_problem)

    def finish_orphan(self, run: AnyRun, host: str, exit_code: int | None) -> RunRecord:
        """Collect a run whose container is gone (the driver died around its exit) and judge
        it by the exit its record kept or, failing that, the one collect left on the host."""
        self.update(run.run_id, lambda r: _enter(r, RunState.COLLECTING, host))
        collect_problem = self.collect(run, host)
        if exit_code is None:
            exit_code = files.exit_left_on_host(self.store, run.run_id)
        if exit_code is None:
            unknown = Verdict(
                FailureReason.CONTAINER_EXIT,
                "exit code unknown: the container was gone when the driver came back",
            )
            return self.judge(run, unknown, None, collect_problem)
        return self.judge(run, None, Exit(True, exit_code), collect_problem)

    def collect(self, run: AnyRun, host: str, grace: int | None = None) -> Verdict | None:
        """Stop (if running), save and fetch log and outputs, remove the container."""
        overrides = {"cosmos_job_stop_grace": grace} if grace is not None else {}
        try:
            self.phases.run("job_collect.yml", run, host, extra=overrides)
        except PhaseFailed as failed:
            log.warning("run %s: collect failed: %s", run.run_id, failed)
            return failed.verdict
        except HostDown as down:
            log.warning("run %s: collect failed: %s", run.run_id, down)
            return Verdict(FailureReason.HOST_UNREACHABLE, str(down))
        finally:
            self.update(run.run_id, lambda r: files.list_local_files(r, self.store))
        return None

    def peek(self, run: AnyRun, host: str) -> bool:
        """Fetch the container log so far into logs/container.log; False once the container
        no longer runs (exited, or gone)."""
        outcome = self.phases.run("job_peek.yml", run, host)
        return bool(outcome.data.get("still_running"))

    def stop_container(self, run: AnyRun, host: str, grace: int) -> None:
        """SIGTERM the container, SIGKILL it after `grace` seconds; collect is left to its
        driver."""
        self.phases.run("job_stop.yml", run, host, extra={"cosmos_job_stop_grace": grace})

    def judge(
        self,
        run: AnyRun,
        problem: Verdict | None,
        exit_: Exit | None,
        collect_problem: Verdict | None,
    ) -> RunRecord:
        """The first of: a cancel, a phase that failed, what the container did, a failed
        collect, outputs that are missing or do not decode, an enhanced prompt missing."""
        lines = files.log_lines(self.store, run.run_id)
        profile = self._profile_of(run)
        prompt = self._final_prompt(run, profile, lines)
        # Outputs are known only when the collect worked (a guardrail may show as none).
        outputs = files.output_names(self.store, run.run_id) if collect_problem is None else None
        verdict = (
            verdicts.cancel_verdict(self.store, run)
            or problem
            or verdicts.exit_verdict(run, exit_, lines, profile, outputs)
            or collect_problem
            or verdicts.output_verdict(self.store, run, profile)
            or verdicts.prompt_verdict(run, prompt)
        )
        tail = lines[-verdicts.LOG_TAIL_LINES :]

        def conclude(record: RunRecord) -> None:
            if record.state is RunState.CANCELLED:
                return  # a `kill` in another process concluded it already
            record.enhanced_prompt = prompt
            if verdict:
                record.fail(verdict.reason, verdict.detail, tail)
            else:
                record.move_to(RunState.SUCCEEDED)

        record = self.update(run.run_id, conclude)
        log.info("run %s ended %s", run.run_id, record.state)
        return record

    def update(self, run_id: str, change: Callable[[RunRecord], None]) -> RunRecord:
        record = self.store.update_run(run_id, change)
        if self.on_change:
            self.on_change(record)
        return record

    def note(self, run_id: str, text: str) -> None:
        self.update(run_id, lambda r: r.note(text))

    def _profile_of(self, run: AnyRun) -> Profile:
        """The job's profile; a run known only by its record has it there."""
        if isinstance(run, PreparedRun):
            return run.profile
        record = self.store.load_run(run.run_id)
        return profile_named(record.profile if record else DEFAULT)

    def _final_prompt(self, run: AnyRun, profile: Profile, lines: list[str]) -> str | None:
        """The prompt a run that enhances its prompt ended with; None for other runs."""
        if not verdicts.enhances(run) or profile.final_prompt is None:
            return None
        return profile.final_prompt(lines, self.store.outputs_dir(run.run_id))


def _enter(record: RunRecord, state: RunState, host: str) -> None:
    record.host = host
    record.move_to(state)
    log.info("run %s: %s on %s", record.run_id, state, host)


def _note_wait(record: RunRecord, data: dict[str, Any]) -> None:
    """Keep what a wait phase saw: container times, exit code, diffusion progress."""
    record.container_started_at = data.get("started_at") or record.container_started_at
    record.container_finished_at = data.get("finished_at") or record.container_finished_at
    if data.get("finished"):
        record.exit_code = int(data["exit_code"])
    record.progress = progress_in(data.get("log_tail") or []) or record.progress


def progress_in(log_tail: list[str]) -> Progress | None:
    """The latest diffusion step (`12/35 [`, as tqdm writes it) in a log tail, if any."""
    for line in reversed(log_tail):
        found = PROGRESS.search(line)
        if found:
            return Progress(int(found[1]), int(found[2]))
    return None


def _exit_from(data: dict[str, Any], record: RunRecord) -> Exit:
    """A finished container's exit; a vanished one's exit as recorded before, if it was."""
    collected = bool(data.get("collected"))
    if data.get("finished"):
        return Exit(True, int(data["exit_code"]), collected)
    if record.exit_code is not None:
        return Exit(True, record.exit_code, collected)
    raise PhaseFailed(
        Verdict(FailureReason.CONTAINER_EXIT, "the container vanished before its exit was seen")
    )

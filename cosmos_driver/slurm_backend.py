"""The Slurm backend: runs go to a cluster through its login host, as job arrays (one per
group of runs with the same GPU shape, slurm_submit.py) staged on the shared filesystem; the
driver polls the arrays' tasks and collects each run from the shared filesystem with the job
role's collect, then judges it as on SSH hosts."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field

from cosmos_driver.backend import FoundContainers, Wake
from cosmos_driver.errors import ExecutionError
from cosmos_driver.inventory import SlurmSettings
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run import files, verdicts
from cosmos_driver.run.lifecycle import JobLifecycle, progress_in
from cosmos_driver.run.types import (
    DriverStopping,
    Exit,
    PhaseFailed,
    Placement,
    PreparedRun,
    Verdict,
)
from cosmos_driver.slurm_calls import SlurmCalls, job_name
from cosmos_driver.slurm_states import SlurmState
from cosmos_driver.slurm_submit import SubmissionGroups, Submitted

log = logging.getLogger(__name__)

# How often an array's tasks are polled (one poll playbook serves every run of the array).
POLL_INTERVAL_SECONDS = 2.0
# A task Slurm no longer reports, nor lists as ended, this long after submission is lost.
LOST_AFTER_SECONDS = 120.0


@dataclass
class _Poll:
    """An array's latest poll, shared by the runs waiting on it (`watching`, by task)."""

    at: float = 0.0
    states: dict[int, SlurmState] = field(default_factory=dict)
    tails: dict[str, list[str]] = field(default_factory=dict)
    watching: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SlurmBackend:
    """The Backend of a Slurm cluster behind one login host."""

    def __init__(self, lifecycle: JobLifecycle, settings: SlurmSettings, calls: SlurmCalls):
        self.lifecycle = lifecycle
        self.settings = settings
        self.calls = calls
        self.groups = SubmissionGroups(self._submit, settings.max_parallel, lifecycle.stop)
        self.on_room: Wake | None = None
        self._held: set[str] = set()
        self._submitted: dict[str, Submitted] = {}
        self._polls: dict[str, _Poll] = {}
        self._lock = threading.Lock()

    @property
    def slots(self) -> int:
        return self.settings.max_parallel

    def place(self, run: PreparedRun, only: frozenset[str] | None) -> Placement | None:
        login = self.settings.login
        if (only is not None and login not in only) or run.job.gpus > self.settings.gpus_per_node:
            return None
        with self._lock:
            if len(self._held) >= self.settings.max_parallel:
                return None
            self._held.add(run.run_id)
        return Placement(login, tuple(str(i) for i in range(run.job.gpus)))

    def adopt(self, run: PreparedRun, placement: Placement) -> None:
        with self._lock:
            self._held.add(run.run_id)

    def find_in_flight(self, batch_id: str, records: list[RunRecord]) -> FoundContainers:
        """Resume: one poll per array the records name. A task Slurm lists (queued, or
        ended in the jobcomp file) is found, to be waited for and collected; a task it
        knows nothing of is lost (submitted again); a poll that fails cannot tell. Runs
        whose job id was never recorded are looked for by their array's job name first."""
        by_run: dict[str, str] = {}
        lost: dict[str, str] = {}
        records = self._with_found_job_ids(batch_id, records, lost)
        for job_id, tasks in _arrays(records).items():
            states = self._poll_at_resume(job_id)
            for run_id, task in tasks.items():
                if states is None or task in states:
                    by_run[run_id] = self.settings.login
                    with self._lock:
                        self._submitted[run_id] = Submitted(job_id, task)
                else:
                    lost[run_id] = f"{job_id}_{task}"
        log.info("batch %s: %d run(s) found in Slurm, %d lost", batch_id, len(by_run), len(lost))
        return FoundContainers(by_run, frozenset(), lost)

    def _with_found_job_ids(
        self, batch_id: str, records: list[RunRecord], lost: dict[str, str]
    ) -> list[RunRecord]:
        """`records`, those submitted under a job name but without a job id given the id of
        the array Slurm knows by that name (and recorded); a name it does not know is lost."""
        named = {r.run_id: r.slurm_job_name for r in records if not r.slurm_job_id}
        named = {run_id: name for run_id, name in named.items() if name}
        if not named:
            return records
        job_ids = self._find(batch_id, sorted({name or "" for name in named.values()}))
        found = []
        for record in records:
            if record.run_id in named and record.slurm_job_name in job_ids:
                record = self.lifecycle.update(record.run_id, lambda r: _found(r, job_ids))
            elif record.run_id in named:
                lost[record.run_id] = f"job name {record.slurm_job_name}"
            found.append(record)
        return found

    def _find(self, batch_id: str, names: list[str]) -> dict[str, str]:
        """The job ids of `names`; a resume that cannot ask stops, as submitting them
        again might run them twice."""
        try:
            return self.calls.find(batch_id, names)
        except PhaseFailed as failed:
            raise ExecutionError(
                f"cannot look for the Slurm arrays {', '.join(names)} on "
                f"{self.settings.login}: {failed.verdict.detail}; nothing was submitted: run "
                "the same command again once the login host answers"
            ) from failed

    def _poll_at_resume(self, job_id: str) -> dict[int, SlurmState] | None:
        """The array's task states, kept as its first poll; None when the poll failed."""
        try:
            polled = self.calls.poll(job_id)
        except PhaseFailed as failed:
            log.warning("cannot poll Slurm job %s at resume: %s", job_id, failed.verdict.detail)
            return None
        with self._lock:
            self._polls[job_id] = _Poll(time.monotonic(), polled.states, polled.tails)
        return polled.states

    def never_fits(self, run: PreparedRun) -> Verdict | None:
        if run.job.gpus <= self.settings.gpus_per_node:
            return None
        return Verdict(
            FailureReason.HOST_UNREACHABLE,
            f"the Slurm nodes behind {self.settings.login} have {self.settings.gpus_per_node} "
            f"GPU(s) (cosmos_gpu_count); the job asks for {run.job.gpus}",
        )

    def unavailable(self, where: str) -> str | None:
        return None if where == self.settings.login else f"{where} is not this cluster's login host"

    def _submit(self, group: str, runs: list[PreparedRun]) -> str:
        """Record each run's job name and task first, then sbatch the array: a driver that
        dies before it records the job id finds the array again by that name."""
        name = job_name(group)
        for task, run in enumerate(runs):

            def named(record: RunRecord, task: int = task) -> None:
                record.slurm_job_name, record.slurm_array_task_id = name, task

            self.lifecycle.update(run.run_id, named)
        return self.calls.submit(group, runs)

    def launch(self, run: PreparedRun, placement: Placement) -> Placement | None:
        """Join the run's submission group; back once its array is in Slurm."""
        self.lifecycle.update(run.run_id, lambda r: _staging(r, placement.host))
        # An earlier attempt's exit and outputs must not stand for this one's.
        store = self.lifecycle.store
        (store.logs_dir(run.run_id) / files.EXIT_FILE).unlink(missing_ok=True)
        shutil.rmtree(store.outputs_dir(run.run_id), ignore_errors=True)
        submitted = self.groups.join(run)
        with self._lock:
            self._submitted[run.run_id] = submitted

        def recorded(record: RunRecord) -> None:
            record.slurm_job_id, record.slurm_array_task_id = submitted.job_id, submitted.task
            record.note(f"submitted to Slurm as {submitted.job_id}_{submitted.task}")

        self.lifecycle.update(run.run_id, recorded)
        return placement

    def wait(self, run: PreparedRun, placement: Placement) -> Exit:
        """Poll until the task ends, or its job's timeout passes after it started running."""
        submitted = self._submitted[run.run_id]
        try:
            return self._wait(run, placement.host, submitted)
        finally:
            self.release(run.run_id)

    def _wait(self, run: PreparedRun, host: str, submitted: Submitted) -> Exit:
        deadline: float | None = None
        since = time.monotonic()
        asked = False
        while True:
            asked = asked or self._cancel_if_asked(run, submitted)
            state = self._state(run.run_id, submitted)
            if state is not None and state.ended:
                if deadline is None and _ran(state):  # it ran between two polls
                    self.lifecycle.update(run.run_id, lambda r: _running(r, host))
                return self._ended(run, host, state)
            if state is not None and state.state is RunState.RUNNING:
                deadline = deadline or self._started(run, host)
                self._note_progress(run.run_id, submitted)
            if deadline is not None and time.monotonic() >= deadline:
                self.calls.cancel(submitted.job_id, [submitted.task])
                return Exit(finished=False)
            if state is None and time.monotonic() - since > LOST_AFTER_SECONDS:
                detail = f"Slurm lost task {submitted.job_id}_{submitted.task}"
                raise PhaseFailed(Verdict(FailureReason.HOST_UNREACHABLE, detail))
            if self.lifecycle.stop.wait(POLL_INTERVAL_SECONDS):
                raise DriverStopping(run.run_id)

    def _started(self, run: PreparedRun, host: str) -> float:
        """A task first seen running: recorded as running; its job's timeout counts now."""
        self.lifecycle.update(run.run_id, lambda r: _running(r, host))
        return time.monotonic() + run.job.timeout

    def _cancel_if_asked(self, run: PreparedRun, submitted: Submitted) -> bool:
        """`kill` left a cancel marker: scancel the task (Slurm stops its container); the
        run then ends cancelled, as the verdict ranks the marker first. True once asked."""
        if not self.lifecycle.store.cancel_requested(run.run_id):
            return False
        self.calls.cancel(submitted.job_id, [submitted.task])
        self.lifecycle.note(run.run_id, f"scancel {submitted.job_id}_{submitted.task}")
        return True

    def _state(self, run_id: str, submitted: Submitted) -> SlurmState | None:
        """The task's state from its array's latest poll (one poll per interval per array,
        which reads the log tails of the array's running tasks too)."""
        poll = self._poll_of(submitted.job_id)
        with poll.lock:
            poll.watching[submitted.task] = run_id
            if time.monotonic() - poll.at >= POLL_INTERVAL_SECONDS / 2:
                running = [
                    watched
                    for task, watched in poll.watching.items()
                    if (seen := poll.states.get(task)) is not None
                    and seen.state is RunState.RUNNING
                ]
                polled = self.calls.poll(submitted.job_id, running)
                poll.states, poll.tails, poll.at = polled.states, polled.tails, time.monotonic()
            state = poll.states.get(submitted.task)
            if state is not None and state.ended:
                poll.watching.pop(submitted.task, None)
            return state

    def _poll_of(self, job_id: str) -> _Poll:
        with self._lock:
            return self._polls.setdefault(job_id, _Poll())

    def _note_progress(self, run_id: str, submitted: Submitted) -> None:
        """The diffusion step of a running task, from its log tail of the latest poll."""
        poll = self._poll_of(submitted.job_id)
        with poll.lock:
            progress = progress_in(poll.tails.pop(run_id, []))
        if progress is not None:
            self.lifecycle.update(run_id, lambda r: setattr(r, "progress", progress))

    def _ended(self, run: PreparedRun, host: str, state: SlurmState) -> Exit:
        """An ended task: collect its run folder; its exit as the task script saved it."""
        if state.reason is not None and state.reason is not FailureReason.CONTAINER_EXIT:
            raise PhaseFailed(Verdict(state.reason, state.detail))
        problem = self.lifecycle.collect(run, host)
        if problem is not None:
            raise PhaseFailed(problem)
        exit_code = files.exit_left_on_host(self.lifecycle.store, run.run_id)
        if exit_code is None:
            detail = f"{state.detail}; its container's exit was not saved"
            raise PhaseFailed(Verdict(state.reason or FailureReason.CONTAINER_EXIT, detail))
        self.lifecycle.update(run.run_id, lambda r: setattr(r, "exit_code", exit_code))
        return Exit(True, exit_code, collected=True)

    def collect(
        self, run: PreparedRun, placement: Placement, problem: Verdict | None, exit_: Exit | None
    ) -> RunRecord:
        return self.lifecycle.finish(run, placement.host, problem, exit_)

    def collect_orphan(
        self, run: PreparedRun, placement: Placement, exit_code: int | None
    ) -> RunRecord:
        return self.lifecycle.finish_orphan(run, placement.host, exit_code)

    def cancel(self, run: PreparedRun, placement: Placement) -> RunRecord:
        """scancel the run's task, then collect; the verdict sees the cancel marker."""
        submitted = self._submitted.get(run.run_id)
        if submitted is not None:
            self.calls.cancel(submitted.job_id, [submitted.task])
        verdict = verdicts.cancel_verdict(self.lifecycle.store, run)
        return self.lifecycle.finish(run, placement.host, verdict, None)

    def release(self, run_id: str) -> None:
        with self._lock:
            held = run_id in self._held
            self._held.discard(run_id)
        if held and self.on_room:
            self.on_room()


def _staging(record: RunRecord, host: str) -> None:
    record.host = host
    record.slurm_job_id, record.slurm_job_name, record.slurm_array_task_id = None, None, None
    record.move_to(RunState.STAGING)


def _found(record: RunRecord, job_ids: dict[str, str]) -> None:
    """A run submitted by a driver that died before it recorded the array's job id."""
    assert record.slurm_job_name is not None
    record.slurm_job_id = job_ids[record.slurm_job_name]
    record.note(
        f"found in Slurm by job name {record.slurm_job_name}: "
        f"{record.slurm_job_id}_{record.slurm_array_task_id}"
    )


def _ran(state: SlurmState) -> bool:
    """An ended task whose container ran (completed, or exited non-zero)."""
    return state.reason is None or state.reason is FailureReason.CONTAINER_EXIT


def _running(record: RunRecord, host: str) -> None:
    record.host = host
    if record.state is not RunState.RUNNING:  # an adopted run may be running already
        record.move_to(RunState.RUNNING)


def _arrays(records: list[RunRecord]) -> dict[str, dict[str, int]]:
    """The records' Slurm tasks by array job id: run id to task id."""
    arrays: dict[str, dict[str, int]] = {}
    for record in records:
        if record.slurm_job_id and record.slurm_array_task_id is not None:
            tasks = arrays.setdefault(record.slurm_job_id, {})
            tasks[record.run_id] = record.slurm_array_task_id
    return arrays

"""One job's life on one host: stage, start, wait, collect, then a verdict.

Every transition is saved in the run record as it happens. Collect runs after success,
failure and timeout alike; after Ctrl-C it does not (the container keeps running, and the
same command re-attaches to it)."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.batch import Job
from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles import transfer1
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.store import RunStore, write_json_atomic
from cosmos_driver.video import probe

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
WAIT_PHASE_SECONDS = 60
# A phase playbook may run this long beyond its own wait before the driver kills it
# (a hung SSH connection must not hang the driver).
PHASE_MARGIN_SECONDS = 600


@dataclass(frozen=True)
class PreparedRun:
    """A job made ready to send: its ids, its inputs by content hash, its local spec file."""

    run_id: str
    batch_id: str
    job: Job
    input_names: dict[str, str]
    spec_path: Path


@dataclass(frozen=True)
class Verdict:
    reason: FailureReason
    detail: str


@dataclass(frozen=True)
class Exit:
    finished: bool
    exit_code: int | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(store: RunStore, batch_id: str, run_id: str, job: Job) -> PreparedRun:
    """Hash the inputs, build the spec and save it as runs/<run_id>/spec.json."""
    names = {m: f"{file_sha256(p)}{p.suffix.lower()}" for m, p in job.inputs.items()}
    spec = transfer1.build_spec(job, names, transfer1.ContainerPaths())
    spec_path = store.run_dir(run_id) / "spec.json"
    write_json_atomic(spec_path, spec)
    return PreparedRun(run_id, batch_id, job, names, spec_path)


class JobLifecycle:
    """Drives prepared runs through the phase playbooks on one host."""

    def __init__(self, adapter: AnsibleAdapter, store: RunStore, host: str) -> None:
        self.adapter = adapter
        self.store = store
        self.host = host
        self.paths = transfer1.ContainerPaths()

    def execute(self, run: PreparedRun, record: RunRecord) -> RunRecord:
        record.host = self.host
        problem = self._launch(run, record)
        exit_ = None if problem else self._wait(run, record)
        if isinstance(exit_, Verdict):
            problem, exit_ = exit_, None
        self._move(record, RunState.COLLECTING)
        collected = self._phase("job_collect.yml", run)
        self._record_collected(run, record, collected)
        self._judge(run, record, problem, exit_, _phase_problem(collected))
        self.store.save_run(record)
        log.info("run %s ended %s", record.run_id, record.state)
        return record

    def _launch(self, run: PreparedRun, record: RunRecord) -> Verdict | None:
        self._move(record, RunState.STAGING)
        staged = self._phase("job_stage.yml", run)
        if not staged.ok:
            return _phase_problem(staged)
        self._move(record, RunState.RUNNING)
        started = self._phase("job_start.yml", run)
        record.container_id = started.data.get("container_id")
        self.store.save_run(record)
        return _phase_problem(started)

    def _wait(self, run: PreparedRun, record: RunRecord) -> Exit | Verdict:
        deadline = time.monotonic() + run.job.timeout
        while True:
            remaining = math.ceil(deadline - time.monotonic())
            if remaining <= 0:
                return Exit(finished=False)
            outcome = self._phase("job_wait.yml", run, min(WAIT_PHASE_SECONDS, remaining))
            if not outcome.ok:
                return _phase_problem(outcome) or Verdict(FailureReason.PLAYBOOK_FAILED, "wait")
            if outcome.data.get("finished"):
                record.exit_code = int(outcome.data["exit_code"])
                return Exit(finished=True, exit_code=record.exit_code)

    def _phase(
        self, playbook: str, run: PreparedRun, wait: int = WAIT_PHASE_SECONDS
    ) -> PlaybookOutcome:
        call = PlaybookCall(
            playbook,
            limit=self.host,
            extravars=self._extravars(run, wait),
            timeout=wait + PHASE_MARGIN_SECONDS,
        )
        return self.adapter.run(call, log_path=self.store.logs_dir(run.run_id) / "ansible.log")

    def _extravars(self, run: PreparedRun, wait: int) -> dict[str, Any]:
        job = run.job
        return {
            "cosmos_job_run_id": run.run_id,
            "cosmos_job_batch_id": run.batch_id,
            "cosmos_job_inputs": [
                {"src": str(job.inputs[m]), "name": name} for m, name in run.input_names.items()
            ],
            "cosmos_job_spec_src": str(run.spec_path),
            "cosmos_job_command": transfer1.command(job, self.paths),
            "cosmos_job_gpu_devices": [str(i) for i in range(job.gpus)],
            "cosmos_job_env": job.env,
            "cosmos_job_fetch_dir": str(self.store.run_dir(run.run_id).resolve()),
            "cosmos_job_wait_timeout": wait,
            "cosmos_job_container_paths": {
                "run": self.paths.run,
                "inputs": self.paths.inputs,
                "checkpoints": self.paths.checkpoints,
            },
        }

    def _record_collected(
        self, run: PreparedRun, record: RunRecord, collected: PlaybookOutcome
    ) -> None:
        run_dir = self.store.run_dir(run.run_id)
        record.outputs = sorted(
            str(p.relative_to(run_dir)) for p in self.store.outputs_dir(run.run_id).glob("*")
        )
        record.logs = sorted(
            str(p.relative_to(run_dir)) for p in self.store.logs_dir(run.run_id).glob("*")
        )
        if not collected.ok:
            log.warning("run %s: collect failed: %s", run.run_id, collected.summary())

    def _judge(
        self,
        run: PreparedRun,
        record: RunRecord,
        problem: Verdict | None,
        exit_: Exit | None,
        collect_problem: Verdict | None,
    ) -> None:
        """The first of: a phase that failed, what the container did, a failed collect,
        outputs that are missing or do not decode."""
        lines = self._log_lines(run.run_id)
        tail = lines[-LOG_TAIL_LINES:]
        verdict = (
            problem
            or _exit_verdict(run, exit_, lines)
            or collect_problem
            or self._output_verdict(run)
        )
        if verdict:
            record.fail(verdict.reason, verdict.detail, tail)
        else:
            record.move_to(RunState.SUCCEEDED)

    def _output_verdict(self, run: PreparedRun) -> Verdict | None:
        video = self.store.outputs_dir(run.run_id) / f"{transfer1.OUTPUT_NAME}.mp4"
        if not video.exists():
            return Verdict(FailureReason.OUTPUT_MISSING, f"no {video.name} was produced")
        try:
            probe(video)
        except ValidationError as exc:
            return Verdict(FailureReason.OUTPUT_MISSING, str(exc))
        return None

    def _log_lines(self, run_id: str) -> list[str]:
        container_log = self.store.logs_dir(run_id) / "container.log"
        if not container_log.exists():
            return []
        return container_log.read_text(encoding="utf-8", errors="replace").splitlines()

    def _move(self, record: RunRecord, state: RunState) -> None:
        record.move_to(state)
        self.store.save_run(record)
        log.info("run %s: %s on %s", record.run_id, state, self.host)


def _phase_problem(outcome: PlaybookOutcome) -> Verdict | None:
    if outcome.ok:
        return None
    reason = (
        FailureReason.HOST_UNREACHABLE if outcome.unreachable else FailureReason.PLAYBOOK_FAILED
    )
    return Verdict(reason, outcome.summary())


def _exit_verdict(run: PreparedRun, exit_: Exit | None, log_lines: list[str]) -> Verdict | None:
    if exit_ is None:
        return None
    if not exit_.finished:
        return Verdict(FailureReason.TIMEOUT, f"did not finish within {run.job.timeout} s; stopped")
    if exit_.exit_code == 0:
        return None
    if transfer1.guardrail_blocked(log_lines):
        return Verdict(
            FailureReason.GUARDRAIL_BLOCKED, "the guardrail blocked this prompt or video"
        )
    return Verdict(FailureReason.CONTAINER_EXIT, f"container exited with code {exit_.exit_code}")

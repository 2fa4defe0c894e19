"""Run and batch records: the states of a job's life, failure reasons and their JSON form."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class RunState(StrEnum):
    """States of a job's life (docs/design.md); the last three are terminal."""

    PENDING = "pending"
    STAGING = "staging"
    RUNNING = "running"
    COLLECTING = "collecting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


class FailureReason(StrEnum):
    """The fixed set of reasons a run can fail for."""

    INVALID_INPUT = "invalid_input"
    HOST_UNREACHABLE = "host_unreachable"
    PLAYBOOK_FAILED = "playbook_failed"
    CONTAINER_EXIT = "container_exit"
    OUTPUT_MISSING = "output_missing"
    GUARDRAIL_BLOCKED = "guardrail_blocked"
    # A dependent run (4K upscale) never started: the run it depends on did not succeed.
    PARENT_FAILED = "parent_failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with millisecond precision, as stored in records."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Transition:
    state: RunState
    at: str


@dataclass
class Note:
    """Something that happened to a run besides a state change (a retry, a move, a cancel)."""

    at: str
    text: str


@dataclass
class Progress:
    """Diffusion steps done, from the container log."""

    step: int
    steps: int


@dataclass
class Failure:
    reason: FailureReason
    detail: str
    log_tail: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """Everything known about one run of one job; persisted as runs/<run_id>/run.json."""

    run_id: str
    batch_id: str
    job_name: str
    host: str | None = None
    state: RunState = RunState.PENDING
    history: list[Transition] = field(default_factory=list)
    failure: Failure | None = None
    container_id: str | None = None
    exit_code: int | None = None
    outputs: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    thumbnails: list[str] = field(default_factory=list)
    gpu_devices: list[str] = field(default_factory=list)
    container_started_at: str | None = None
    container_finished_at: str | None = None
    progress: Progress | None = None
    notes: list[Note] = field(default_factory=list)
    # The job's model profile (cosmos_driver.profiles): how its outputs and exit are judged.
    profile: str = "transfer1"
    # "inference", or "upscale" for the 4K run that follows a job with `upscale: true`, whose
    # parent (the job's inference run) must succeed first.
    kind: str = "inference"
    parent_run_id: str | None = None
    # The job's prompt, and for a job with `enhance: true` (or an `invoke enhance` run, kind
    # "enhance") the prompt Transfer1's upsampler made of it.
    prompt: str | None = None
    enhanced_prompt: str | None = None
    # What the job asked for, for views and reports: its input videos on this machine by
    # modality, its parameters (never its `env`, which may hold secrets), its swept values.
    inputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    # The Slurm backend's array job and this run's task in it (None on SSH hosts); the job
    # name and task are recorded before sbatch, the job id after, so a driver that died in
    # between finds the array again by its name (resume).
    slurm_job_id: str | None = None
    slurm_job_name: str | None = None
    slurm_array_task_id: int | None = None
    # The user's verdict on the output: a rating of 1-5 and a comment (`cosmos ui`).
    rating: int | None = None
    comment: str = ""
    schema_version: int = SCHEMA_VERSION

    def move_to(self, state: RunState) -> None:
        """Enter a new state and stamp the transition."""
        self.state = state
        self.history.append(Transition(state, utc_now()))

    def note(self, text: str) -> None:
        self.notes.append(Note(utc_now(), text))

    def fail(self, reason: FailureReason, detail: str, log_tail: list[str] | None = None) -> None:
        """End the run as failed (or cancelled, for that reason) with why and the log tail."""
        self.failure = Failure(reason, detail, log_tail or [])
        ended = RunState.CANCELLED if reason is FailureReason.CANCELLED else RunState.FAILED
        self.move_to(ended)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        data = dict(data)
        data["state"] = RunState(data["state"])
        data["history"] = [
            Transition(RunState(t["state"]), t["at"]) for t in data.get("history", [])
        ]
        data["notes"] = [Note(**n) for n in data.get("notes", [])]
        if data.get("progress"):
            data["progress"] = Progress(**data["progress"])
        failure = data.get("failure")
        if failure:
            data["failure"] = Failure(
                FailureReason(failure["reason"]), failure["detail"], failure.get("log_tail", [])
            )
        return cls(**data)


@dataclass
class BatchRecord:
    """A batch as submitted: where it came from and which runs it has."""

    batch_id: str
    name: str
    source: str
    run_ids: list[str]
    created_at: str = field(default_factory=utc_now)
    submitted_at: str = field(default_factory=utc_now)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchRecord:
        return cls(**data)

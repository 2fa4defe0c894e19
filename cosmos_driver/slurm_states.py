"""Slurm's job states as run states: what squeue, sacct and the jobcomp file say of an array
task, turned into the driver's RunState with a failure reason and a sentence for people.
Pure text in, values out; the Slurm backend asks it and the playbooks never judge."""

from __future__ import annotations

from dataclasses import dataclass

from cosmos_driver.records import FailureReason, RunState


@dataclass(frozen=True)
class SlurmState:
    """One Slurm state read as a run state; `reason` only for a task that ended badly."""

    slurm: str
    state: RunState
    reason: FailureReason | None
    detail: str

    @property
    def ended(self) -> bool:
        return self.state in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


# squeue's short codes (%t) and the long names (%T, sacct, jobcomp) they stand for.
SHORT = {
    "PD": "PENDING", "CF": "CONFIGURING", "R": "RUNNING", "CG": "COMPLETING",
    "CD": "COMPLETED", "F": "FAILED", "TO": "TIMEOUT", "CA": "CANCELLED", "NF": "NODE_FAIL",
    "PR": "PREEMPTED", "OOM": "OUT_OF_MEMORY", "BF": "BOOT_FAIL", "DL": "DEADLINE",
    "S": "SUSPENDED", "ST": "STOPPED", "RQ": "REQUEUED", "RS": "RESIZING", "RV": "REVOKED",
    "SE": "SPECIAL_EXIT", "SO": "STAGE_OUT", "SI": "SIGNALING", "RD": "RESV_DEL_HOLD",
    "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD",
}  # fmt: skip

WAITING = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}
)
ACTIVE = frozenset(
    {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "SUSPENDED", "STOPPED", "RESIZING"}
)

# Ended states other than COMPLETED: (run state, reason, what happened).
ENDED: dict[str, tuple[RunState, FailureReason, str]] = {
    "FAILED": (RunState.FAILED, FailureReason.CONTAINER_EXIT, "the Slurm job failed"),
    "SPECIAL_EXIT": (RunState.FAILED, FailureReason.CONTAINER_EXIT, "the Slurm job failed"),
    "OUT_OF_MEMORY": (
        RunState.FAILED, FailureReason.CONTAINER_EXIT, "Slurm ended the job: out of memory",
    ),
    "TIMEOUT": (RunState.FAILED, FailureReason.TIMEOUT, "Slurm ended the job at its time limit"),
    "DEADLINE": (RunState.FAILED, FailureReason.TIMEOUT, "Slurm ended the job at its deadline"),
    "CANCELLED": (RunState.CANCELLED, FailureReason.CANCELLED, "Slurm cancelled the job"),
    "REVOKED": (RunState.CANCELLED, FailureReason.CANCELLED, "Slurm revoked the job"),
    "NODE_FAIL": (RunState.FAILED, FailureReason.HOST_UNREACHABLE, "its Slurm node failed"),
    "BOOT_FAIL": (RunState.FAILED, FailureReason.HOST_UNREACHABLE, "its Slurm node failed to boot"),
    "PREEMPTED": (RunState.FAILED, FailureReason.HOST_UNREACHABLE, "Slurm preempted the job"),
}  # fmt: skip


def read_state(text: str) -> SlurmState:
    """A state as Slurm writes it ("CANCELLED by 0", "CA", "NODE_FAIL", "RUNNING+") as a
    run state; a state this driver does not know counts as a failed job, named as it came."""
    words = text.strip().split(maxsplit=1)
    head = words[0].rstrip("+").upper() if words else ""
    name = SHORT.get(head, head)
    said = " ".join([name, *words[1:]])
    if name in WAITING:
        return SlurmState(name, RunState.STAGING, None, f"waiting in Slurm: {said}")
    if name in ACTIVE:
        return SlurmState(name, RunState.RUNNING, None, f"running in Slurm: {said}")
    if name == "COMPLETED":
        return SlurmState(name, RunState.SUCCEEDED, None, "the Slurm job completed")
    if name in ENDED:
        state, reason, what = ENDED[name]
        return SlurmState(name, state, reason, f"{what} ({said})")
    detail = f"the Slurm job ended in a state this driver does not know: {text.strip()!r}"
    return SlurmState(name or "UNKNOWN", RunState.FAILED, FailureReason.PLAYBOOK_FAILED, detail)


def task_states(job_id: str, queued: list[str], ended: list[str]) -> dict[int, SlurmState]:
    """Each array task's state, by task id: `queued` are squeue rows `task|state|reason`
    (`squeue -h -r -j <job> -o '%K|%T|%r'`), `ended` are jobcomp lines (`JobId=… JobState=…
    ArrayJobId=… ArrayTaskId=…`) or sacct rows `<job>_<task>|<state>`. An ended line wins
    over a queued row of the same task."""
    states: dict[int, SlurmState] = {}
    for row in queued:
        task, _, rest = row.strip().partition("|")
        state, _, why = rest.partition("|")
        if task.isdigit():
            states[int(task)] = read_state(f"{state} {why}" if why and why != "None" else state)
    for line in ended:
        task, state = _ended_task(job_id, line)
        if task is not None:
            states[task] = read_state(state)
    return states


def _ended_task(job_id: str, line: str) -> tuple[int | None, str]:
    """The task id and state of one jobcomp line or sacct row of `job_id`; None otherwise."""
    if "=" in line:
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        job, task, state = (fields.get(k, "") for k in ("ArrayJobId", "ArrayTaskId", "JobState"))
    else:
        raw, _, state = line.strip().partition("|")
        job, _, task = raw.partition("_")
    if job != job_id or not task.isdigit():
        return None, ""
    return int(task), state


def jobs_by_name(rows: list[str], names: frozenset[str]) -> dict[str, str]:
    """The array job id of each of `names` found in squeue rows `<array job>|<name>`
    (`squeue -h -r -o '%F|%j'`), jobcomp lines (`Name=… ArrayJobId=…`) or sacct rows
    `<job>_<task>|<name>`; names not found are left out."""
    found: dict[str, str] = {}
    for row in rows:
        if "=" in row:
            fields = dict(item.split("=", 1) for item in row.split() if "=" in item)
            job, name = fields.get("ArrayJobId", ""), fields.get("Name", "")
        else:
            raw, _, name = row.strip().partition("|")
            job = raw.partition("_")[0]
        if name in names and job.isdigit():
            found[name] = job
    return found

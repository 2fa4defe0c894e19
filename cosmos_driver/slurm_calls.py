"""The Slurm backend's playbooks on the login host: submit one array of runs, poll an
array's tasks, find arrays by job name, cancel tasks. Each is one playbook run through the
adapter; a failure ends the phase (PhaseFailed), Ctrl-C stops it (DriverStopping). The
read-only calls and scancel are tried again while the login host is unreachable (the
RetryPolicy of every phase); a submit is not, as its sbatch may have run."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cosmos_driver import host_contract
from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.profiles import ContainerPaths
from cosmos_driver.records import FailureReason
from cosmos_driver.run.phases import RetryPolicy
from cosmos_driver.run.types import DriverStopping, PhaseFailed, PreparedRun, Verdict
from cosmos_driver.slurm_states import SlurmState, jobs_by_name, task_states

log = logging.getLogger(__name__)

# A submit stages every run of its array (uploads included); a poll or a cancel is quick.
SUBMIT_SECONDS = 900
POLL_SECONDS = 120
# sbatch --comment holds the run ids of the array while they fit, else the batch id.
COMMENT_LIMIT = 1000
# Lines of each running task's log read with every poll (its diffusion progress).
TAIL_LINES = 20


def job_name(group: str) -> str:
    """The Slurm job name of a submission group: unique per array, known before sbatch, so a
    driver that died before it recorded the job id finds the array again by this name."""
    return f"cosmos-{group}"


@dataclass(frozen=True)
class Polled:
    """One poll of an array: its tasks' states, and the log tails of the runs asked for."""

    states: dict[int, SlurmState]
    tails: dict[str, list[str]]


@dataclass
class SlurmCalls:
    """The playbooks of the Slurm role, run on `login`; their output goes to `log_path`."""

    adapter: AnsibleAdapter
    login: str
    stop: threading.Event
    paths: ContainerPaths
    log_path: Path
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def submit(self, group: str, runs: list[PreparedRun]) -> str:
        """Stage `runs` and submit them as one array (task i is runs[i]); its job id."""
        first = runs[0]
        run_ids = [run.run_id for run in runs]
        comment = ",".join(run_ids)
        extravars = {
            "cosmos_slurm_batch_id": first.batch_id,
            "cosmos_slurm_group": group,
            "cosmos_slurm_job_name": job_name(group),
            "cosmos_slurm_gpus": first.job.gpus,
            "cosmos_slurm_comment": comment if len(comment) <= COMMENT_LIMIT else first.batch_id,
            "cosmos_slurm_runs": [self._run_vars(run) for run in runs],
        }
        outcome = self._run("slurm_submit.yml", extravars, SUBMIT_SECONDS, again=False)
        job_id = str(outcome.data.get("job_id") or "")
        if not job_id.isdigit():
            raise PhaseFailed(
                Verdict(FailureReason.PLAYBOOK_FAILED, f"sbatch gave no job id: {job_id!r}")
            )
        return job_id

    def poll(self, job_id: str, tail_runs: list[str] | None = None) -> Polled:
        """The state of every task of the array Slurm still knows, by task id, and the last
        lines of the logs of `tail_runs` (runs of the array that may be running)."""
        extravars = {
            "cosmos_slurm_job_id": job_id,
            "cosmos_slurm_tail_runs": tail_runs or [],
            "cosmos_slurm_tail_lines": TAIL_LINES,
        }
        outcome = self._run("slurm_poll.yml", extravars, POLL_SECONDS)
        queued = [str(row) for row in outcome.data.get("queued") or []]
        ended = [str(line) for line in outcome.data.get("ended") or []]
        tails = [str(line) for line in outcome.data.get("tails") or []]
        return Polled(task_states(job_id, queued, ended), _log_tails(tails))

    def find(self, batch_id: str, names: list[str]) -> dict[str, str]:
        """The array job id of each of the job `names` Slurm knows (queued or ended); a
        name it knows nothing of is left out (its sbatch never ran)."""
        extravars = {"cosmos_slurm_batch_id": batch_id, "cosmos_slurm_find_names": names}
        outcome = self._run("slurm_find.yml", extravars, POLL_SECONDS)
        rows = [str(row) for row in outcome.data.get("queued") or []]
        rows += [str(line) for line in outcome.data.get("ended") or []]
        return jobs_by_name(rows, frozenset(names))

    def cancel(self, job_id: str, tasks: list[int]) -> None:
        """scancel the given tasks of the array (all of it when `tasks` is empty)."""
        extravars = {"cosmos_slurm_job_id": job_id, "cosmos_slurm_tasks": tasks}
        self._run("slurm_cancel.yml", extravars, POLL_SECONDS)

    def _run_vars(self, run: PreparedRun) -> dict[str, Any]:
        job = run.job
        return {
            "run_id": run.run_id,
            "spec_src": str(run.spec_path),
            "inputs": [{"src": str(job.inputs[m]), "name": n} for m, n in run.input_names.items()],
            "command": run.profile.command(job, run.input_names, self.paths),
            "env": job.env,
            "profile": job.profile,
            "labels": host_contract.labels(run.run_id, run.batch_id, self.login),
            "timeout": job.timeout,
        }

    def _run(
        self, playbook: str, extravars: dict[str, Any], timeout: int, again: bool = True
    ) -> PlaybookOutcome:
        call = PlaybookCall(playbook, self.login, extravars, timeout=timeout)
        delays = list(self.retry.delays) if again else []
        while True:
            outcome = self.adapter.run(call, log_path=self.log_path, cancel=self.stop)
            if self.stop.is_set() or outcome.status == "canceled":
                raise DriverStopping(playbook)
            if outcome.ok or not (outcome.unreachable and delays):
                break
            delay = delays.pop(0)
            log.warning("%s: %s unreachable; again in %.0f s", playbook, self.login, delay)
            if self.stop.wait(delay):
                raise DriverStopping(playbook)
        if outcome.ok:
            return outcome
        reason = (
            FailureReason.HOST_UNREACHABLE if outcome.unreachable else FailureReason.PLAYBOOK_FAILED
        )
        raise PhaseFailed(Verdict(reason, f"{playbook} on {self.login}: {outcome.summary()}"))


def _log_tails(lines: list[str]) -> dict[str, list[str]]:
    """`tail -v` output of several run logs (`==> <runs>/<run id>/logs/<log> <==` before
    each) as lines by run id."""
    tails: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith("==> ") and line.endswith(" <=="):
            run_id = PurePosixPath(line[4:-4]).parent.parent.name
            current = tails.setdefault(run_id, [])
        elif current is not None and line:
            current.append(line)
    return tails

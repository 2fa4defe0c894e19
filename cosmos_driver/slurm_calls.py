"""The Slurm backend's playbooks on the login host: submit one array of runs, poll an
array's tasks, cancel tasks. Each is one playbook run through the adapter; a failure ends
the phase (PhaseFailed), Ctrl-C stops it (DriverStopping)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_driver import host_contract
from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall, PlaybookOutcome
from cosmos_driver.profiles import ContainerPaths
from cosmos_driver.records import FailureReason
from cosmos_driver.run.types import DriverStopping, PhaseFailed, PreparedRun, Verdict
from cosmos_driver.slurm_states import SlurmState, task_states

# A submit stages every run of its array (uploads included); a poll or a cancel is quick.
SUBMIT_SECONDS = 900
POLL_SECONDS = 120
# sbatch --comment holds the run ids of the array while they fit, else the batch id.
COMMENT_LIMIT = 1000


@dataclass
class SlurmCalls:
    """The playbooks of the Slurm role, run on `login`; their output goes to `log_path`."""

    adapter: AnsibleAdapter
    login: str
    stop: threading.Event
    paths: ContainerPaths
    log_path: Path

    def submit(self, group: str, runs: list[PreparedRun]) -> str:
        """Stage `runs` and submit them as one array (task i is runs[i]); its job id."""
        first = runs[0]
        run_ids = [run.run_id for run in runs]
        comment = ",".join(run_ids)
        extravars = {
            "cosmos_slurm_batch_id": first.batch_id,
            "cosmos_slurm_group": group,
            "cosmos_slurm_gpus": first.job.gpus,
            "cosmos_slurm_comment": comment if len(comment) <= COMMENT_LIMIT else first.batch_id,
            "cosmos_slurm_runs": [self._run_vars(run) for run in runs],
        }
        outcome = self._run("slurm_submit.yml", extravars, SUBMIT_SECONDS)
        job_id = str(outcome.data.get("job_id") or "")
        if not job_id.isdigit():
            raise PhaseFailed(
                Verdict(FailureReason.PLAYBOOK_FAILED, f"sbatch gave no job id: {job_id!r}")
            )
        return job_id

    def poll(self, job_id: str) -> dict[int, SlurmState]:
        """The state of every task of the array Slurm still knows, by task id."""
        outcome = self._run("slurm_poll.yml", {"cosmos_slurm_job_id": job_id}, POLL_SECONDS)
        queued = [str(row) for row in outcome.data.get("queued") or []]
        ended = [str(line) for line in outcome.data.get("ended") or []]
        return task_states(job_id, queued, ended)

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

    def _run(self, playbook: str, extravars: dict[str, Any], timeout: int) -> PlaybookOutcome:
        call = PlaybookCall(playbook, self.login, extravars, timeout=timeout)
        outcome = self.adapter.run(call, log_path=self.log_path, cancel=self.stop)
        if self.stop.is_set() or outcome.status == "canceled":
            raise DriverStopping(playbook)
        if outcome.ok:
            return outcome
        reason = (
            FailureReason.HOST_UNREACHABLE if outcome.unreachable else FailureReason.PLAYBOOK_FAILED
        )
        raise PhaseFailed(Verdict(reason, f"{playbook} on {self.login}: {outcome.summary()}"))

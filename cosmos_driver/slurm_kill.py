"""`cosmos kill` of a run in Slurm: scancel its array task (Slurm sends SIGTERM, then
SIGKILL after the cluster's KillWait; the task script passes both on to its container), wait
until Slurm lists the task as ended, so that what it left is whole when it is collected."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cosmos_driver.records import RunRecord
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.types import DriverStopping, PhaseFailed
from cosmos_driver.slurm_calls import SlurmCalls
from cosmos_driver.slurm_submit import Submitted

log = logging.getLogger(__name__)

# How long a scancelled task may take to end beyond the grace (KillWait is 30 s by default).
END_WAIT_SECONDS = 60.0
POLL_SECONDS = 1.0


def in_slurm(record: RunRecord) -> bool:
    """Whether the run went to a Slurm cluster (its job name is recorded before sbatch)."""
    return bool(record.host and (record.slurm_job_name or record.slurm_job_id))


@dataclass
class SlurmKill:
    """scancel runs in Slurm through the Slurm role's playbooks on their login host."""

    lifecycle: JobLifecycle

    def scancel(self, record: RunRecord, grace: int) -> bool:
        """scancel the run's task and wait until it ended; False when it could not be
        cancelled (no task found, the login host did not answer) or did not end in time."""
        try:
            calls = self._calls(record)
            task = self._task(calls, record)
            if task is None:
                log.info("run %s: no Slurm task to cancel", record.run_id)
                return False
            calls.cancel(task.job_id, [task.task])
            self.lifecycle.note(record.run_id, f"scancel {task.job_id}_{task.task}")
            return self._ended(calls, task, grace + END_WAIT_SECONDS)
        except (PhaseFailed, DriverStopping) as failed:
            log.warning("run %s: could not scancel its Slurm task: %s", record.run_id, failed)
            return False

    def _calls(self, record: RunRecord) -> SlurmCalls:
        assert record.host is not None
        store = self.lifecycle.store
        log_path = store.root / "tmp" / "slurm-kill.log"
        life = self.lifecycle
        return SlurmCalls(life.adapter, record.host, life.stop, life.paths, log_path, life.retry)

    def _task(self, calls: SlurmCalls, record: RunRecord) -> Submitted | None:
        """The run's task: its recorded job id, or the array Slurm knows by its job name."""
        if record.slurm_array_task_id is None:
            return None
        job_id = record.slurm_job_id
        if job_id is None and record.slurm_job_name:
            job_id = calls.find(record.batch_id, [record.slurm_job_name]).get(record.slurm_job_name)
        return Submitted(job_id, record.slurm_array_task_id) if job_id else None

    def _ended(self, calls: SlurmCalls, task: Submitted, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            state = calls.poll(task.job_id).states.get(task.task)
            if state is None or state.ended:
                return True
            time.sleep(POLL_SECONDS)
        log.warning("Slurm task %s_%s did not end within %.0f s", task.job_id, task.task, within)
        return False

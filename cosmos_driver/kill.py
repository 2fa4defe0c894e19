"""Cancel runs: SIGTERM, SIGKILL after a grace period, logs collected, state `cancelled`.

Works from a fresh process and beside a running `infer`. A cancel marker in the run's
folder tells the driver of the batch (if one runs) to end the run as cancelled and not to
start it; with no driver alive, kill stops, collects and records the run itself. A run in
Slurm is stopped by scancel of its task (slurm_kill.py), not on the login host."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.errors import ExecutionError
from cosmos_driver.records import ENDED_STATES, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.types import HostDown, PhaseFailed, RunRef
from cosmos_driver.slurm_kill import SlurmKill, in_slurm
from cosmos_driver.store import RunStore

log = logging.getLogger(__name__)

DRIVER_SETTLE_SECONDS = 60  # how long kill waits for a live driver to record the cancel
MAX_PARALLEL_KILLS = 8


@dataclass
class Killer:
    lifecycle: JobLifecycle
    grace: int = 10

    def kill(self, run_ids: list[str]) -> list[RunRecord]:
        """Cancel every run not already ended; return their records afterwards."""
        with ThreadPoolExecutor(MAX_PARALLEL_KILLS, thread_name_prefix="cosmos-kill") as pool:
            return list(pool.map(self._kill_one, run_ids))

    def _kill_one(self, run_id: str) -> RunRecord:
        store = self.lifecycle.store
        record = store.load_run(run_id)
        if record is None:
            raise ExecutionError(f"no record of run {run_id}")
        if record.state in ENDED_STATES:
            log.info("run %s already ended %s; nothing to kill", run_id, record.state)
            return record
        store.request_cancel(run_id)
        self.lifecycle.update(run_id, lambda r: r.note(f"kill requested (grace {self.grace} s)"))
        ref = RunRef(run_id, record.batch_id)
        if store.is_driven(record.batch_id):
            return self._beside_driver(ref, record)
        return self._alone(ref, record)

    def _beside_driver(self, ref: RunRef, record: RunRecord) -> RunRecord:
        """Stop the container; the live driver collects and records it as cancelled."""
        if in_slurm(record):
            SlurmKill(self.lifecycle).scancel(record, self.grace)
        elif record.host and record.state is not RunState.PENDING:
            self._stop(ref, record.host)
        deadline = time.monotonic() + self.grace + DRIVER_SETTLE_SECONDS
        while time.monotonic() < deadline:
            current = self.lifecycle.store.load_run(ref.run_id)
            if current and current.state is RunState.CANCELLED:
                return current
            time.sleep(0.5)
        log.warning("run %s: its driver did not record the cancel; recording it here", ref.run_id)
        return self._alone(ref, record)

    def _alone(self, ref: RunRef, record: RunRecord) -> RunRecord:
        """No driver runs this batch: stop, collect and record the run here."""
        if not record.host or record.state is RunState.PENDING:
            return self.lifecycle.judge(ref, None, None, None)
        if in_slurm(record):
            SlurmKill(self.lifecycle).scancel(record, self.grace)
        collect_problem = self.lifecycle.collect(ref, record.host, grace=self.grace)
        return self.lifecycle.judge(ref, None, None, collect_problem)

    def _stop(self, ref: RunRef, host: str) -> None:
        try:
            self.lifecycle.stop_container(ref, host, self.grace)
        except (HostDown, PhaseFailed) as failed:
            log.warning("run %s: could not stop its container: %s", ref.run_id, failed)


def kill_runs(
    adapter: AnsibleAdapter, store: RunStore, run_ids: list[str], grace: int
) -> list[RunRecord]:
    """What `cosmos kill` and the dashboard's kill button both do."""
    return Killer(JobLifecycle(adapter, store), grace).kill(run_ids)

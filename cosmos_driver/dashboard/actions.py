"""What the dashboard's buttons do: kill (the code path of `cosmos kill`), re-run a batch's
failed runs (a `cosmos infer` of its batch file, which skips the runs that succeeded), and a
run's rating and comment. Slow actions run in the background; the pages follow the records."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.errors import CosmosError
from cosmos_driver.kill import kill_runs
from cosmos_driver.records import ENDED_STATES, BatchRecord, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.types import HostDown, PhaseFailed, RunRef
from cosmos_driver.store import RunStore

log = logging.getLogger(__name__)

MAX_COMMENT = 2000
# A running run's log is fetched from its host at most this often, however many pages follow.
PEEK_EVERY_SECONDS = 3.0


class ActionRefused(CosmosError):
    """An action that cannot be done now, with why (the page shows it)."""


@dataclass
class Actions:
    """The dashboard's side effects on one state directory."""

    store: RunStore
    adapter: AnsibleAdapter | None
    grace: int = 10
    _peeked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def kill(self, run_ids: list[str]) -> list[str]:
        """Start cancelling the runs not yet ended; return their ids."""
        adapter = self._need_adapter("kill")
        live = [i for i in run_ids if self._not_ended(i)]
        if not live:
            raise ActionRefused("every run named has already ended")
        worker = threading.Thread(
            target=self._kill_in_background, args=(adapter, live), name="cosmos-ui-kill"
        )
        worker.start()
        return live

    def _kill_in_background(self, adapter: AnsibleAdapter, run_ids: list[str]) -> None:
        try:
            kill_runs(adapter, self.store, run_ids, self.grace)
        except CosmosError as exc:
            log.error("kill of %s failed: %s", ", ".join(run_ids), exc)

    def rerun_failed(self, batch: BatchRecord, inventory: str | None) -> Path:
        """Start `cosmos infer` on the batch's file; its output goes to a log file whose
        path is returned."""
        if self.store.is_driven(batch.batch_id):
            raise ActionRefused(f"batch {batch.batch_id} is running; wait for it to end")
        source = Path(batch.source)
        if not source.is_file():
            raise ActionRefused(f"the batch file {source} is gone; run `cosmos infer` on it")
        log_path = self.store.root / "dashboard" / f"rerun-{batch.batch_id}-{int(time.time())}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "cosmos_driver.cli", "infer", "--batch", str(source)]
        command += ["--state-dir", str(self.store.root), "--yes"]
        command += ["--inventory", inventory] if inventory else []
        with log_path.open("ab") as out:
            subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        log.info("re-run of batch %s started; its output: %s", batch.batch_id, log_path)
        return log_path

    def review(self, run_id: str, rating: int | None, comment: str) -> RunRecord:
        """Keep the user's rating (1-5, or none) and comment in the run's record."""
        if rating is not None and not 1 <= rating <= 5:
            raise ActionRefused(f"rating {rating}: give 1 to 5, or none")
        if len(comment) > MAX_COMMENT:
            raise ActionRefused(f"the comment has {len(comment)} characters; at most {MAX_COMMENT}")

        def change(record: RunRecord) -> None:
            record.rating, record.comment = rating, comment

        return self.store.update_run(run_id, change)

    def refresh_log(self, record: RunRecord) -> None:
        """Fetch a running run's log from its host, at most every PEEK_EVERY_SECONDS."""
        if self.adapter is None or record.state is not RunState.RUNNING or not record.host:
            return
        with self._lock:
            if time.monotonic() - self._peeked.get(record.run_id, 0.0) < PEEK_EVERY_SECONDS:
                return
            self._peeked[record.run_id] = time.monotonic()
        lifecycle = JobLifecycle(self.adapter, self.store)
        try:
            lifecycle.peek(RunRef(record.run_id, record.batch_id), record.host)
        except (HostDown, PhaseFailed) as failed:
            log.warning(
                "run %s: could not read its log from %s: %s", record.run_id, record.host, failed
            )

    def _need_adapter(self, action: str) -> AnsibleAdapter:
        if self.adapter is None:
            raise ActionRefused(f"{action} needs the hosts: start `cosmos ui` with --inventory")
        return self.adapter

    def _not_ended(self, run_id: str) -> bool:
        record = self.store.load_run(run_id)
        return record is not None and record.state not in ENDED_STATES

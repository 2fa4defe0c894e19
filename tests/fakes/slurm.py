"""A fake at the adapter boundary for the Slurm backend: it answers the Slurm role's
playbooks (submit gives a job id, poll reports each task RUNNING then its end state, cancel
is recorded, find looks arrays up by job name) the way they report, and the job role's
collect as FakeAdapter does."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_driver.ansible_adapter import PlaybookCall, PlaybookOutcome
from tests.fakes.adapter import FakeAdapter, ok


@dataclass
class Array:
    job_id: str
    gpus: int
    run_ids: list[str]
    polls: int = 0
    name: str = ""


@dataclass
class FakeSlurm(FakeAdapter):
    """`ends[run_id]`: the jobcomp state a run's task ends in (COMPLETED by default);
    `exit_codes[run_id]`: what its container exited with (saved by the task script)."""

    ends: dict[str, str] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    arrays: list[Array] = field(default_factory=list)
    cancelled: list[tuple[str, list[int]]] = field(default_factory=list)
    polls_running: int = 1
    # What a running task's log says (tails the poll reads), by run id.
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    tails_asked: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(
        self, call: PlaybookCall, log_path: Path | None = None, cancel: Any = None
    ) -> PlaybookOutcome:
        if not call.playbook.startswith("slurm_"):
            with self.lock:
                self.exit_code = self.exit_codes.get(call.extravars["cosmos_job_run_id"], 0)
                return super().run(call, log_path, cancel)
        with self.lock:
            self.calls.append(call)
            return getattr(self, "_" + call.playbook.removesuffix(".yml"))(call.extravars)

    def _slurm_submit(self, extra: dict[str, Any]) -> PlaybookOutcome:
        job_id = str(100 + len(self.arrays))
        run_ids = [run["run_id"] for run in extra["cosmos_slurm_runs"]]
        name = extra["cosmos_slurm_job_name"]
        self.arrays.append(Array(job_id, extra["cosmos_slurm_gpus"], run_ids, name=name))
        return ok(job_id=job_id, tasks=run_ids, uploaded=[])

    def _slurm_poll(self, extra: dict[str, Any]) -> PlaybookOutcome:
        array = next((a for a in self.arrays if a.job_id == extra["cosmos_slurm_job_id"]), None)
        if array is None:  # a job Slurm knows nothing of (neither squeue nor jobcomp)
            return ok(queued=[], ended=[])
        array.polls += 1
        tail_runs = list(extra.get("cosmos_slurm_tail_runs") or [])
        self.tails_asked.append(tail_runs)
        if array.polls <= self.polls_running:
            queued = [f"{i}|RUNNING|None" for i in range(len(array.run_ids))]
            return ok(queued=queued, ended=[], tails=self._tails(tail_runs))
        ended = [
            f"JobId=9{i} JobState={self.ends.get(run_id, 'COMPLETED')} "
            f"ArrayJobId={array.job_id} ArrayTaskId={i} ExitCode=0:0"
            for i, run_id in enumerate(array.run_ids)
        ]
        return ok(queued=[], ended=ended)

    def _tails(self, run_ids: list[str]) -> list[str]:
        """As `tail -v` prints the logs of `run_ids`."""
        lines = []
        for run_id in run_ids:
            header = f"==> /srv/cosmos/runs/{run_id}/logs/container.log <=="
            lines += [header, *self.log_lines.get(run_id, []), ""]
        return lines

    def _slurm_find(self, extra: dict[str, Any]) -> PlaybookOutcome:
        names = set(extra["cosmos_slurm_find_names"])
        rows = [f"{a.job_id}|{a.name}" for a in self.arrays if a.name in names]
        return ok(queued=rows, ended=[])

    def _slurm_cancel(self, extra: dict[str, Any]) -> PlaybookOutcome:
        self.cancelled.append((extra["cosmos_slurm_job_id"], list(extra["cosmos_slurm_tasks"])))
        return ok()

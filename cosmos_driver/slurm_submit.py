"""Runs launched about together go to Slurm as one job array per GPU shape: the first run
of a shape opens a group, waits a short window for the others (the scheduler places them
within milliseconds), then submits the group once; every member learns its job and task."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cosmos_driver.run.types import DriverStopping, PreparedRun

# A group closes this long after its last arrival, at the latest after MAX_WINDOW_SECONDS,
# or at once when it holds `limit` runs.
WINDOW_SECONDS = 1.0
MAX_WINDOW_SECONDS = 5.0

Submit = Callable[[str, list[PreparedRun]], str]


@dataclass(frozen=True)
class Submitted:
    """Where a run went: the array's job id and its task in the array."""

    job_id: str
    task: int


@dataclass
class _Group:
    name: str
    runs: list[PreparedRun] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    job_id: str | None = None
    error: BaseException | None = None


@dataclass
class SubmissionGroups:
    """Open groups by GPU count; `submit(group name, runs)` submits one and gives its id."""

    submit: Submit
    limit: int
    stop: threading.Event
    window: float = WINDOW_SECONDS
    _open: dict[int, _Group] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def join(self, run: PreparedRun) -> Submitted:
        """Add `run` to its shape's group and block until the group is submitted."""
        group, task, leader = self._enter(run)
        if leader:
            self._close_when_quiet(group, run.job.gpus)
            self._submit(group)
        elif not _wait(group.done, self.stop):
            raise DriverStopping(run.run_id)
        if group.error is not None:
            raise group.error
        assert group.job_id is not None
        return Submitted(group.job_id, task)

    def _enter(self, run: PreparedRun) -> tuple[_Group, int, bool]:
        gpus = run.job.gpus
        with self._lock:
            group = self._open.get(gpus)
            leader = group is None
            if group is None:
                group = self._open[gpus] = _Group(
                    f"{run.batch_id}.{gpus}gpu.{uuid.uuid4().hex[:8]}"
                )
            group.runs.append(run)
            group.last = time.monotonic()
            if len(group.runs) >= self.limit:
                self._open.pop(gpus, None)
            return group, len(group.runs) - 1, leader

    def _close_when_quiet(self, group: _Group, gpus: int) -> None:
        """Wait until no run joined for `window` s (or the group is full, or too old)."""
        while True:
            with self._lock:
                full = self._open.get(gpus) is not group
                now = time.monotonic()
                until = min(group.last + self.window, group.opened + MAX_WINDOW_SECONDS)
                if full or now >= until:
                    if not full:
                        self._open.pop(gpus, None)
                    return
            if self.stop.wait(until - now):
                raise DriverStopping(group.name)

    def _submit(self, group: _Group) -> None:
        try:
            group.job_id = self.submit(group.name, list(group.runs))
        except BaseException as exc:  # every member must learn it, then the leader raises
            group.error = exc
        finally:
            group.done.set()


def _wait(done: threading.Event, stop: threading.Event) -> bool:
    """Wait for `done`, giving up when `stop` is set first."""
    while not done.wait(0.2):
        if stop.is_set():
            return False
    return True

"""The backend seam: what the scheduler asks of the place runs go to. It places a run (or
says it never fits), launches it, waits for it, collects it and cancels it; where and how is
the backend's business. Today's backend is SSH hosts with GPU slots (ssh_hosts.py); a
cluster scheduler such as Slurm is meant to be a second one, behind the same methods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cosmos_driver.records import RunRecord
from cosmos_driver.run.types import Exit, Placement, PreparedRun, Verdict

# Called by a backend, outside its own locks, whenever room may have opened.
Wake = Callable[[], None]


@dataclass(frozen=True)
class FoundContainers:
    """What a backend found of a batch's in-flight runs (resume): where each found run is,
    the places that did not answer (cannot tell), and runs its place knows nothing of."""

    by_run: dict[str, str]
    unreachable: frozenset[str]
    lost: dict[str, str] = field(default_factory=dict)  # run id: what was looked for


class Backend(Protocol):
    """Where runs go. The scheduler calls `place` from its dispatch loop only, and every
    other method from the pool thread that drives the run; no method is called while the
    scheduler holds its lock. Phases raise PhaseFailed (the run fails with its verdict) or
    DriverStopping (Ctrl-C: the run is left as it is)."""

    on_room: Wake | None

    @property
    def slots(self) -> int:
        """How many runs can hold capacity at once (sizes the scheduler's thread pool)."""
        ...

    def place(self, run: PreparedRun, only: frozenset[str] | None) -> Placement | None:
        """Reserve room for `run` now (on one of `only`, when given); None while none has."""
        ...

    def adopt(self, run: PreparedRun, placement: Placement) -> None:
        """A run found in flight (resume) holds the room it was given before."""
        ...

    def find_in_flight(self, batch_id: str, records: list[RunRecord]) -> FoundContainers:
        """Resume: where the in-flight runs of `records` are now, asked once per batch."""
        ...

    def never_fits(self, run: PreparedRun) -> Verdict | None:
        """Asked when nothing is in progress: why `run` can never be placed, if it cannot."""
        ...

    def unavailable(self, where: str) -> str | None:
        """Why the place a run once ran (a dependent run's parent) can take no run now and
        will not again; None while it can or may."""
        ...

    def launch(self, run: PreparedRun, placement: Placement) -> Placement | None:
        """Stage and start `run`; the placement it started on, or None when it went back
        to the queue (its place stopped answering; the backend released it and noted why)."""
        ...

    def wait(self, run: PreparedRun, placement: Placement) -> Exit:
        """Until the run exits or its job's timeout passes; the room it held is free after."""
        ...

    def collect(
        self, run: PreparedRun, placement: Placement, problem: Verdict | None, exit_: Exit | None
    ) -> RunRecord:
        """Fetch what the run left (unless the wait did) and record its verdict."""
        ...

    def collect_orphan(
        self, run: PreparedRun, placement: Placement, exit_code: int | None
    ) -> RunRecord:
        """Fetch and judge a run whose container is gone (resume), by the exit seen before."""
        ...

    def cancel(self, run: PreparedRun, placement: Placement) -> RunRecord:
        """Stop a started run that `kill` cancelled, fetch what it left, record it."""
        ...

    def release(self, run_id: str) -> None:
        """Give back whatever room `run_id` holds or has reserved."""
        ...

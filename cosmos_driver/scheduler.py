"""The scheduler: a queue of tickets dispatched to a backend, in one bounded thread pool.

Its lock guards the queue and nothing else: the store is read, and the backend asked for
room, outside it. Where runs go is the backend's business (backend.py; SSH hosts with GPU
slots in ssh_hosts.py); the scheduler keeps the order, the dependent-run rules
(dependent_runs.py), the job's `retries`, and the end of runs that can never start."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

from cosmos_driver.backend import Backend
from cosmos_driver.dependent_runs import Gate, gate
from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.types import DriverStopping, PhaseFailed, Placement, PreparedRun, Verdict

log = logging.getLogger(__name__)

# How long the dispatch loop spends taking tickets from a lazy source between placements:
# a 10,000-run batch starts its first run while the rest are still being recorded.
TAKE_SECONDS = 0.2


class Mode(Enum):
    """Where a run enters the lifecycle: from the start, at its running container, or at
    collect (its container is gone but its outputs wait on the host)."""

    FRESH = "fresh"
    ATTACH = "attach"
    COLLECT = "collect"


@dataclass
class Ticket:
    """A run in the scheduler's hands: how it enters, where it is placed, how often tried."""

    run: PreparedRun
    mode: Mode = Mode.FRESH
    placement: Placement | None = None
    exit_code: int | None = None
    attempt: int = 0
    retried: int = 0


class Scheduler:
    """Places tickets through the backend and drives each in the pool; `lifecycle` keeps
    the records (notes, verdicts) and the stop event."""

    def __init__(self, lifecycle: JobLifecycle, backend: Backend) -> None:
        self.lifecycle = lifecycle
        self.backend = backend
        backend.on_room = self._wake
        self.cond = threading.Condition()
        self.pending: deque[Ticket] = deque()
        self.active = 0
        # Runs a pool thread drives now (a retry goes back to `pending` before it leaves).
        self.working: set[str] = set()
        # Tickets not taken yet (None once all are): made as the dispatch loop asks.
        self.source: Iterator[Ticket] | None = None

    @property
    def workers(self) -> int:
        """Per slot: its holder, its successor and a run being collected."""
        return 3 * self.backend.slots + 2

    def run(self, tickets: list[Ticket], more: Iterable[Ticket] = ()) -> None:
        """Run every ticket to an end; on Ctrl-C stop dispatching, leave containers be.

        `tickets` are queued (or claim their room: ATTACH, COLLECT) before anything is
        placed; `more` (FRESH only) is read lazily while runs go, so a large batch starts
        its first run at once."""
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cosmos-run")
        self.source = iter(more)
        try:
            for ticket in tickets:
                self._enqueue(ticket, pool)
            self._dispatch(pool)
        except BaseException:
            self.lifecycle.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def _take_more(self, pool: ThreadPoolExecutor) -> None:
        """Take tickets from the source for up to TAKE_SECONDS."""
        deadline = time.monotonic() + TAKE_SECONDS
        while self.source is not None and time.monotonic() < deadline:
            ticket = next(self.source, None)
            if ticket is None:
                self.source = None
            else:
                self._enqueue(ticket, pool)

    def _enqueue(self, ticket: Ticket, pool: ThreadPoolExecutor) -> None:
        if ticket.mode is Mode.FRESH:
            with self.cond:
                self.pending.append(ticket)
            return
        if ticket.placement is not None:
            self.backend.adopt(ticket.run, ticket.placement)
        with self.cond:
            self.active += 1
            self.working.add(ticket.run.run_id)
        pool.submit(self._work, ticket)

    def _dispatch(self, pool: ThreadPoolExecutor) -> None:
        while True:
            self._take_more(pool)
            with self.cond:
                if not self.pending and not self.active and self.source is None:
                    return
                queue, idle = list(self.pending), not self.active
                in_play = self._in_play()
            placed = self._place_ready(queue, idle, in_play)
            with self.cond:
                if not placed and self.source is None:
                    self.cond.wait(0.5)
            for ticket in placed:
                pool.submit(self._work, ticket)

    def _in_play(self) -> frozenset[str]:
        """Queued or driven (called under the lock): their records may still change (a
        failed run going round again is recorded failed for a moment)."""
        return frozenset(self.working | {t.run.run_id for t in self.pending})

    def _place_ready(
        self, queue: list[Ticket], idle: bool, in_play: frozenset[str]
    ) -> list[Ticket]:
        """Every queued ticket that fits now, each counted as driven. Only this thread
        places; `idle`: nothing is in progress, so nothing will come back or free room."""
        placed = []
        for ticket in queue:
            rules = self._gate_or_end(ticket, idle, in_play)
            if rules is None or rules.waiting:
                continue
            placement = self.backend.place(ticket.run, rules.only)
            if placement is None:
                continue
            with self.cond:
                self.pending.remove(ticket)
                ticket.placement = placement
                ticket.attempt += 1
                self.active += 1
                self.working.add(ticket.run.run_id)
            placed.append(ticket)
        return placed

    def _gate_or_end(self, ticket: Ticket, idle: bool, in_play: frozenset[str]) -> Gate | None:
        """The dependent-run gate of a queued run, or None when it ended here, never to
        start: cancelled, its parent ended without success, or no place can ever take it."""
        run = ticket.run
        rules, verdict = Gate(), None
        if not self.lifecycle.store.cancel_requested(run.run_id):
            rules = gate(run, self.lifecycle.store, in_play, self.backend.unavailable)
            verdict = rules.verdict or (self.backend.never_fits(run) if idle else None)
            if verdict is None:
                return rules
        with self.cond:
            self.pending.remove(ticket)
        self.lifecycle.judge(run, verdict, None, None)
        return None

    # -- one ticket, in a pool thread --

    def _work(self, ticket: Ticket) -> None:
        attempt = ticket.attempt
        try:
            self._drive(ticket)
        except DriverStopping:
            log.debug("run %s left as it is: the driver is stopping", ticket.run.run_id)
        except Exception as exc:  # one broken run must not take the batch down
            log.exception("run %s: unexpected error", ticket.run.run_id)
            verdict = Verdict(FailureReason.PLAYBOOK_FAILED, f"driver error: {exc}")
            self.lifecycle.judge(ticket.run, verdict, None, None)
        finally:
            with self.cond:
                if ticket.attempt == attempt:  # a requeued run may hold a new placement now
                    self.backend.release(ticket.run.run_id)
                    self.working.discard(ticket.run.run_id)
                self.active -= 1
                self.cond.notify_all()

    def _drive(self, ticket: Ticket) -> None:
        placement = ticket.placement
        assert placement is not None
        if ticket.mode is Mode.COLLECT:
            self.backend.collect_orphan(ticket.run, placement, ticket.exit_code)
            return
        if ticket.mode is Mode.FRESH:
            started = self._launch(ticket, placement)
            if started is None:
                return
            placement = started
        problem, exit_ = None, None
        try:
            exit_ = self.backend.wait(ticket.run, placement)
        except PhaseFailed as failed:
            problem = failed.verdict
        record = self.backend.collect(ticket.run, placement, problem, exit_)
        self._maybe_retry(ticket, record)

    def _launch(self, ticket: Ticket, placement: Placement) -> Placement | None:
        """Stage and start; None when the run ended or went back to the queue instead."""
        run = ticket.run
        try:
            started = self.backend.launch(run, placement)
        except PhaseFailed as failed:
            self.backend.collect(run, placement, failed.verdict, None)
            return None
        if started is None:
            self._requeue(ticket)
            return None
        ticket.placement = started
        if self.lifecycle.store.cancel_requested(run.run_id):
            self.backend.cancel(run, started)
            return None
        return started

    def _requeue(self, ticket: Ticket) -> None:
        """Back to the front of the queue, for another place (the backend released it)."""
        with self.cond:
            ticket.placement = None
            self.pending.appendleft(ticket)
            self.cond.notify_all()

    def _maybe_retry(self, ticket: Ticket, record: RunRecord) -> None:
        """A container that failed goes round again while the job's `retries` allow."""
        failure = record.failure
        if failure is None or failure.reason is not FailureReason.CONTAINER_EXIT:
            return
        if ticket.retried >= ticket.run.job.retries:
            return
        ticket.retried += 1
        note = f"retry {ticket.retried} of {ticket.run.job.retries} after: {failure.detail}"

        def again(r: RunRecord) -> None:
            r.note(note)
            r.failure, r.exit_code, r.progress = None, None, None
            r.move_to(RunState.PENDING)

        self.lifecycle.update(ticket.run.run_id, again)
        with self.cond:
            ticket.mode, ticket.placement = Mode.FRESH, None
            self.pending.append(ticket)
            self.cond.notify_all()

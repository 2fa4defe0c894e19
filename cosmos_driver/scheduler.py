"""The scheduler: runs go to GPU devices across hosts, and the GPUs never wait on the driver.

Each device has a holder (the run whose container uses it) and at most one successor, a run
already staged whose start phase waits ON THE HOST for the holder's container to exit. So a
GPU is handed over in the time the engine takes to start a container, while the driver
collects the finished run in parallel. One bounded thread pool owns all concurrency.

A host that stays unreachable through a phase's retries is set aside: runs not yet started
there go back to the queue for other hosts; a run already running there keeps waiting and
re-attaches when the host answers again.

A dependent run (a job's 4K upscale) waits in the queue until its parent has succeeded, then
goes to the parent's host only, where the parent's output is; it ends without starting when
the parent fails or is cancelled."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum

from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.types import (
    DriverStopping,
    Exit,
    HostDown,
    PhaseFailed,
    Placement,
    PreparedRun,
    Verdict,
)
from cosmos_driver.upscale import blocked_by_parent

log = logging.getLogger(__name__)

OUTAGE_BACKOFF_SECONDS = (5.0, 10.0, 20.0, 30.0)
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
    run: PreparedRun
    mode: Mode = Mode.FRESH
    placement: Placement | None = None
    exit_code: int | None = None
    attempt: int = 0
    retried: int = 0


@dataclass
class Device:
    index: str
    holder: str | None = None
    holder_container: str | None = None
    successor: str | None = None


@dataclass
class Host:
    name: str
    devices: list[Device] = field(default_factory=list)
    healthy: bool = True

    def pick(self, gpus: int) -> list[Device] | None:
        """`gpus` devices without a successor, free ones first; None if too few."""
        open_devices = [d for d in self.devices if d.successor is None]
        open_devices.sort(key=lambda d: d.holder is not None)
        return open_devices[:gpus] if len(open_devices) >= gpus else None

    def busy(self) -> int:
        return sum(1 for d in self.devices if d.holder)


class Scheduler:
    """Places tickets on devices and drives each through the lifecycle in the pool."""

    def __init__(self, lifecycle: JobLifecycle, gpu_counts: dict[str, int]) -> None:
        self.lifecycle = lifecycle
        # A host with no GPU (cosmos_gpu_count: 0) stays known, for runs found on it, but
        # no run fits it.
        self.hosts = {
            name: Host(name, [Device(str(i)) for i in range(max(count, 0))])
            for name, count in gpu_counts.items()
        }
        self.cond = threading.Condition()
        self.pending: deque[Ticket] = deque()
        self.active = 0
        # Runs a pool thread drives now (a retry goes back to `pending` before it leaves).
        self.working: set[str] = set()
        self.down_reasons: dict[str, str] = {}
        self.on_hosts: Callable[[dict[str, Host]], None] | None = None
        # Tickets not taken yet (None once all are): made as the dispatch loop asks.
        self.source: Iterator[Ticket] | None = None

    @property
    def workers(self) -> int:
        """Per device: its holder, its successor and a run being collected."""
        return 3 * sum(len(h.devices) for h in self.hosts.values()) + 2

    def run(self, tickets: list[Ticket], more: Iterable[Ticket] = ()) -> None:
        """Run every ticket to an end; on Ctrl-C stop dispatching, leave containers be.

        `tickets` are queued (or claim their GPUs: ATTACH, COLLECT) before anything is
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
        with self.cond:
            if ticket.mode is Mode.FRESH:
                self.pending.append(ticket)
                return
            self._claim(ticket)
            self.active += 1
            self.working.add(ticket.run.run_id)
        pool.submit(self._work, ticket)

    def _dispatch(self, pool: ThreadPoolExecutor) -> None:
        while True:
            self._take_more(pool)
            with self.cond:
                if not self.pending and not self.active and self.source is None:
                    return
                placed = self._place_ready()
                if not placed and self.source is None:
                    self.cond.wait(0.5)
            for ticket in placed:
                pool.submit(self._work, ticket)

    def _place_ready(self) -> list[Ticket]:
        """Every pending ticket that fits now, each counted as driven (called under the lock)."""
        placed = []
        while (ticket := self._place_next()) is not None:
            self.active += 1
            self.working.add(ticket.run.run_id)
            placed.append(ticket)
        return placed

    def _place_next(self) -> Ticket | None:
        """The first pending ticket that fits a healthy host now (called under the lock)."""
        if self.pending and not self.active:
            self._fail_unplaceable()
        for ticket in list(self.pending):
            if self._ended_in_queue(ticket):
                continue
            placement = self._fit(ticket.run, self._candidates(ticket.run))
            if placement:
                self.pending.remove(ticket)
                ticket.placement = placement
                ticket.attempt += 1
                return ticket
        return None

    def _ended_in_queue(self, ticket: Ticket) -> bool:
        """A pending run that will never start ends here: cancelled, or its parent ended
        without success (called under the lock)."""
        run = ticket.run
        verdict = None
        if not self.lifecycle.store.cancel_requested(run.run_id):
            verdict = self._parent_blocks(run)
            if verdict is None:
                return False
        self.pending.remove(ticket)
        self.lifecycle.judge(run, verdict, None, None)
        return True

    def _parent_blocks(self, run: PreparedRun) -> Verdict | None:
        """Why a dependent run can never start: its parent failed or was cancelled, or the
        host holding the parent's output is gone for good."""
        if run.parent_id is None or self._in_play(run.parent_id):
            return None
        parent = self.lifecycle.store.load_run(run.parent_id)
        blocked = blocked_by_parent(parent, run.parent_id)
        if blocked or parent is None or parent.state is not RunState.SUCCEEDED:
            return blocked
        host = self.hosts.get(parent.host or "")
        if host is not None and host.devices and (host.healthy or host.busy()):
            return None  # a busy host set aside comes back when its runs' waits get through
        why = self.down_reasons.get(parent.host or "", "not in the inventory")
        if host is not None and not host.devices:
            why = "it has no GPU slot (cosmos_gpu_count: 0)"
        return Verdict(
            FailureReason.HOST_UNREACHABLE,
            f"{parent.host}, which holds the output of parent run {run.parent_id}, "
            f"is unavailable ({why})",
        )

    def _candidates(self, run: PreparedRun) -> list[Host]:
        """Healthy hosts; for a dependent run, its parent's host once the parent succeeded."""
        healthy = [h for h in self.hosts.values() if h.healthy]
        if run.parent_id is None:
            return healthy
        if self._in_play(run.parent_id):
            return []
        parent = self.lifecycle.store.load_run(run.parent_id)
        if parent is None or parent.state is not RunState.SUCCEEDED:
            return []
        return [h for h in healthy if h.name == parent.host]

    def _in_play(self, run_id: str) -> bool:
        """Queued or driven by this scheduler: its record may still change (a failed run
        going round again is recorded failed for a moment)."""
        return run_id in self.working or any(t.run.run_id == run_id for t in self.pending)

    def _fit(self, run: PreparedRun, hosts: list[Host]) -> Placement | None:
        for host in sorted(hosts, key=Host.busy):
            devices = host.pick(run.job.gpus)
            if devices is None:
                continue
            for device in devices:
                if device.holder:
                    device.successor = run.run_id
                else:
                    device.holder = run.run_id
            return Placement(host.name, tuple(d.index for d in devices))
        return None

    def _claim(self, ticket: Ticket) -> None:
        """Mark the devices of a run found running as held by it."""
        placement = ticket.placement
        if placement is None or placement.host not in self.hosts:
            return
        for device in self.hosts[placement.host].devices:
            if device.index in placement.devices and device.holder is None:
                device.holder = ticket.run.run_id
                device.holder_container = ticket.run.container_name

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
                    self._release(ticket.run.run_id)
                    self.working.discard(ticket.run.run_id)
                self.active -= 1
                self.cond.notify_all()
            self._report_hosts()

    def _drive(self, ticket: Ticket) -> None:
        assert ticket.placement is not None
        host = ticket.placement.host
        if ticket.mode is Mode.COLLECT:
            self._collect_only(ticket, host)
            return
        if ticket.mode is Mode.FRESH and not self._launch(ticket):
            return
        problem, exit_ = None, None
        try:
            exit_ = self._wait_through_outages(ticket.run, host)
        except PhaseFailed as failed:
            problem = failed.verdict
        self._exited(ticket.run.run_id)
        record = self.lifecycle.finish(ticket.run, host, problem, exit_)
        self._maybe_retry(ticket, record)

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

    def _collect_only(self, ticket: Ticket, host: str) -> None:
        """Collect a run whose container is gone; judge it by the exit seen before."""
        self.lifecycle.finish_orphan(ticket.run, host, ticket.exit_code)

    def _launch(self, ticket: Ticket) -> bool:
        """Stage and start; False when the run ended or went back to the queue instead."""
        run, placement = ticket.run, ticket.placement
        assert placement is not None
        try:
            # A successor stages once its holders run: still ahead of its turn, but never
            # competing with the holders' own staging for the hosts and the driver.
            placement = ticket.placement = self._await_holders(run, placement)
            self.lifecycle.launch(run, placement)
            if self.lifecycle.store.cancel_requested(run.run_id):
                self.lifecycle.finish(run, placement.host, None, None)
                return False
        except HostDown as down:
            self._requeue(ticket, down)
            return False
        except PhaseFailed as failed:
            self.lifecycle.finish(run, placement.host, failed.verdict, None)
            return False
        self._started(run, placement)
        return True

    def _wait_through_outages(self, run: PreparedRun, host: str) -> Exit:
        """Wait for the container; while its host is down, keep trying (it runs on)."""
        deadline = time.monotonic() + run.job.timeout
        backoff = iter(OUTAGE_BACKOFF_SECONDS)
        while True:
            try:
                exit_ = self.lifecycle.wait(run, host, deadline)
            except HostDown as down:
                self._host_down(host, run, down)
                pause = min(next(backoff, OUTAGE_BACKOFF_SECONDS[-1]), deadline - time.monotonic())
                if self.lifecycle.stop.wait(max(pause, 0.0)):
                    raise DriverStopping(run.run_id) from down
                # Checked after the pause: a deadline that passes while the host is away is
                # the outage's, never a timeout of the container.
                if time.monotonic() >= deadline:
                    raise PhaseFailed(Verdict(FailureReason.HOST_UNREACHABLE, str(down))) from down
                continue
            self._host_up(host)
            return exit_

    # -- device and host bookkeeping (each takes the lock) --

    def _await_holders(self, run: PreparedRun, placement: Placement) -> Placement:
        """Block until the holder of each of the run's devices has started (or left): only
        then does `after` name every container the run must outlast on the host."""
        mine = [d for d in self.hosts[placement.host].devices if d.index in placement.devices]

        def holders_known() -> bool:
            return all(d.holder in (None, run.run_id) or d.holder_container for d in mine)

        with self.cond:
            while not holders_known():
                if self.lifecycle.stop.is_set():
                    raise DriverStopping(run.run_id)
                self.cond.wait(0.5)
            for device in mine:
                if device.holder is None:
                    device.holder, device.successor = run.run_id, None
            after = {d.holder_container for d in mine if d.holder != run.run_id}
        return replace(placement, after=tuple(sorted(a for a in after if a)))

    def _started(self, run: PreparedRun, placement: Placement) -> None:
        with self.cond:
            for device in self.hosts[placement.host].devices:
                if device.index in placement.devices:
                    device.holder = run.run_id
                    device.holder_container = run.container_name
                    device.successor = None
            self.cond.notify_all()
        self._report_hosts()

    def _exited(self, run_id: str) -> None:
        with self.cond:
            self._release(run_id)
            self.cond.notify_all()
        self._report_hosts()

    def _release(self, run_id: str) -> None:
        for host in self.hosts.values():
            for device in host.devices:
                if device.holder == run_id:
                    device.holder = device.holder_container = None
                if device.successor == run_id:
                    device.successor = None

    def _requeue(self, ticket: Ticket, down: HostDown) -> None:
        run_id = ticket.run.run_id
        self.lifecycle.update(
            run_id,
            lambda r: r.note(
                f"{down.host} set aside ({down.detail}); the run goes back to the queue"
            ),
        )
        with self.cond:
            self._release(run_id)
            self.hosts[down.host].healthy = False
            self.down_reasons[down.host] = down.detail
            ticket.placement = None
            self.pending.appendleft(ticket)
            self.cond.notify_all()
        log.warning("host %s set aside; run %s goes back to the queue", down.host, run_id)

    def _host_down(self, host: str, run: PreparedRun, down: HostDown) -> None:
        with self.cond:
            was_healthy = self.hosts[host].healthy
            self.hosts[host].healthy = False
            self.down_reasons[host] = down.detail
            self.cond.notify_all()
        if was_healthy:
            log.warning("host %s set aside: %s", host, down.detail)
        self.lifecycle.update(
            run.run_id, lambda r: r.note(f"{host} unreachable while the run waits; retrying")
        )

    def _host_up(self, host: str) -> None:
        with self.cond:
            if not self.hosts[host].healthy:
                log.info("host %s answers again", host)
            self.hosts[host].healthy = True
            self.cond.notify_all()

    def _fail_unplaceable(self) -> None:
        """With nothing in progress, no host will come back or free a device: a pending run
        that no healthy host has room for, even when idle, fails now instead of waiting."""
        for ticket in list(self.pending):
            gpus = ticket.run.job.gpus
            if any(h.healthy and len(h.devices) >= gpus for h in self.hosts.values()):
                continue
            self.pending.remove(ticket)
            reasons = "; ".join(f"{h}: {why}" for h, why in sorted(self.down_reasons.items()))
            detail = (
                f"no host that answers has {gpus} GPU slot(s)"
                if any(h.healthy for h in self.hosts.values())
                else "no host of the inventory answers"
            )
            verdict = Verdict(FailureReason.HOST_UNREACHABLE, f"{detail} ({reasons or 'none'})")
            self.lifecycle.judge(ticket.run, verdict, None, None)

    def _report_hosts(self) -> None:
        if self.on_hosts:
            self.on_hosts(self.hosts)


def record_host_use(hosts: dict[str, Host]) -> dict[str, str]:
    """`busy/total` GPU devices per host, for the progress display."""
    return {name: f"{h.busy()}/{len(h.devices)}" for name, h in hosts.items()}

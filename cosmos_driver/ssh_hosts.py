"""The SSH-hosts backend: runs go to the GPU devices of the inventory's hosts and through
the phase playbooks there. A host that stays unreachable is set aside: a run not yet started
goes back to the queue, a run already running keeps waiting (its container runs on)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cosmos_driver import resume
from cosmos_driver.backend import FoundContainers, Wake
from cosmos_driver.device_pool import DevicePool, Host
from cosmos_driver.records import FailureReason, RunRecord
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

log = logging.getLogger(__name__)

OUTAGE_BACKOFF_SECONDS = (5.0, 10.0, 20.0, 30.0)


class SshHosts:
    """The Backend of SSH hosts with `cosmos_gpu_count` GPU slots each."""

    def __init__(
        self,
        lifecycle: JobLifecycle,
        gpu_counts: dict[str, int],
        on_hosts: Callable[[dict[str, Host]], None] | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.pool = DevicePool(gpu_counts)
        self.pool.on_hosts = on_hosts
        self.pool.on_change = self._room
        self.on_room: Wake | None = None

    @property
    def slots(self) -> int:
        return self.pool.slots

    def place(self, run: PreparedRun, only: frozenset[str] | None) -> Placement | None:
        return self.pool.fit(run, only)

    def adopt(self, run: PreparedRun, placement: Placement) -> None:
        self.pool.claim(run.run_id, run.container_name, placement)

    def find_in_flight(self, batch_id: str, records: list[RunRecord]) -> FoundContainers:
        """Resume: the batch's containers on every host (by their labels)."""
        return resume.find_batch_containers(self.lifecycle.adapter, batch_id)

    def never_fits(self, run: PreparedRun) -> Verdict | None:
        """No host that answers has the run's GPUs (nothing runs, so none will come back)."""
        gpus = run.job.gpus
        if self.pool.fits_a_healthy_host(gpus):
            return None
        detail = (
            f"no host that answers has {gpus} GPU slot(s)"
            if self.pool.any_healthy()
            else "no host of the inventory answers"
        )
        reasons = self.pool.down_summary() or "none"
        return Verdict(FailureReason.HOST_UNREACHABLE, f"{detail} ({reasons})")

    def unavailable(self, where: str) -> str | None:
        return self.pool.unavailable(where)

    def launch(self, run: PreparedRun, placement: Placement) -> Placement | None:
        """Stage and start. A successor stages once its holders run: still ahead of its
        turn, but never competing with the holders' own staging for the hosts and driver."""
        placement = self.pool.await_holders(run, placement, self.lifecycle.stop)
        try:
            self.lifecycle.launch(run, placement)
        except HostDown as down:
            self._set_aside(run, down)
            return None
        self.pool.started(run, placement)
        return placement

    def wait(self, run: PreparedRun, placement: Placement) -> Exit:
        """Wait for the container; while its host is down, keep trying (it runs on)."""
        try:
            return self._wait_through_outages(run, placement.host)
        finally:
            self.pool.release(run.run_id)

    def _wait_through_outages(self, run: PreparedRun, host: str) -> Exit:
        deadline = time.monotonic() + run.job.timeout
        backoff = iter(OUTAGE_BACKOFF_SECONDS)
        while True:
            try:
                exit_ = self.lifecycle.wait(run, host, deadline)
            except HostDown as down:
                self._lost_while_waiting(host, run, down)
                pause = min(next(backoff, OUTAGE_BACKOFF_SECONDS[-1]), deadline - time.monotonic())
                if self.lifecycle.stop.wait(max(pause, 0.0)):
                    raise DriverStopping(run.run_id) from down
                # Checked after the pause: a deadline that passes while the host is away is
                # the outage's, never a timeout of the container.
                if time.monotonic() >= deadline:
                    raise PhaseFailed(Verdict(FailureReason.HOST_UNREACHABLE, str(down))) from down
                continue
            if self.pool.answers(host):
                log.info("host %s answers again", host)
            return exit_

    def collect(
        self, run: PreparedRun, placement: Placement, problem: Verdict | None, exit_: Exit | None
    ) -> RunRecord:
        return self.lifecycle.finish(run, placement.host, problem, exit_)

    def collect_orphan(
        self, run: PreparedRun, placement: Placement, exit_code: int | None
    ) -> RunRecord:
        return self.lifecycle.finish_orphan(run, placement.host, exit_code)

    def cancel(self, run: PreparedRun, placement: Placement) -> RunRecord:
        """Collect stops the container first; the verdict sees the cancel marker."""
        return self.lifecycle.finish(run, placement.host, None, None)

    def release(self, run_id: str) -> None:
        self.pool.release(run_id)

    def _set_aside(self, run: PreparedRun, down: HostDown) -> None:
        """A host lost before the run started: no new runs there; the run is requeued."""
        self.lifecycle.note(
            run.run_id, f"{down.host} set aside ({down.detail}); the run goes back to the queue"
        )
        self.pool.release(run.run_id)
        self.pool.set_aside(down.host, down.detail)
        log.warning("host %s set aside; run %s goes back to the queue", down.host, run.run_id)

    def _lost_while_waiting(self, host: str, run: PreparedRun, down: HostDown) -> None:
        if self.pool.set_aside(host, down.detail):
            log.warning("host %s set aside: %s", host, down.detail)
        self.lifecycle.note(run.run_id, f"{host} unreachable while the run waits; retrying")

    def _room(self) -> None:
        if self.on_room:
            self.on_room()

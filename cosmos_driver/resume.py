"""Resume: match a batch's records with what the backend found of them (containers its
hosts still have, or Slurm tasks), so a re-run re-attaches to running ones, collects
finished ones, and starts only the rest (a run its place lost among them)."""

from __future__ import annotations

import logging

from cosmos_driver import host_contract
from cosmos_driver.ansible_adapter import AnsibleAdapter, PlaybookCall
from cosmos_driver.backend import FoundContainers
from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.run.types import Placement, PreparedRun
from cosmos_driver.scheduler import Mode, Ticket

log = logging.getLogger(__name__)

IN_FLIGHT = frozenset({RunState.STAGING, RunState.RUNNING, RunState.COLLECTING})


def find_batch_containers(adapter: AnsibleAdapter, batch_id: str) -> FoundContainers:
    """Ask every host which containers labelled with this batch it has."""
    call = PlaybookCall("job_find.yml", "all", host_contract.find_vars(batch_id), timeout=300)
    outcome = adapter.run(call)
    by_run = {}
    for host, containers in (outcome.data.get("containers") or {}).items():
        for container in containers:
            run_id = host_contract.run_id_of(container)
            if run_id is not None:
                by_run[run_id] = host
    unreachable = frozenset(f.host for f in outcome.failures if f.unreachable)
    return FoundContainers(by_run, unreachable)


def ticket_for(run: PreparedRun, record: RunRecord | None, found: FoundContainers) -> Ticket:
    """FRESH unless the run was in flight: then ATTACH to its container, or COLLECT when it
    started and its container is gone. A run still staging never started, and a run its
    place lost (a Slurm task Slurm knows nothing of): FRESH."""
    if record is None or record.state not in IN_FLIGHT:
        return Ticket(run)
    if run.run_id in found.lost:
        log.info("run %s: its place knows nothing of it; it starts again", run.run_id)
        return Ticket(run)
    devices = tuple(record.gpu_devices) or ("0",)
    host = found.by_run.get(run.run_id)
    if host is None and record.host in found.unreachable:
        host = record.host  # cannot tell; its wait retries until the host answers
    if host is not None:
        log.info("run %s: re-attaching to its container on %s", run.run_id, host)
        return Ticket(run, Mode.ATTACH, Placement(host, devices))
    # Its container ran and is gone: the driver died while collecting it. Collect what it
    # left (outputs, log, exit) rather than run it twice.
    if record.state in (RunState.RUNNING, RunState.COLLECTING) and record.host:
        log.info("run %s: collecting what it left on %s", run.run_id, record.host)
        return Ticket(run, Mode.COLLECT, Placement(record.host, devices), record.exit_code)
    return Ticket(run)

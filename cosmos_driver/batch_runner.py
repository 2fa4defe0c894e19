"""Run a validated batch: records first, then resume what was in flight, skip what
succeeded, and schedule the rest across every GPU of every host."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.backend import Backend, FoundContainers
from cosmos_driver.device_pool import Host
from cosmos_driver.errors import ConfigurationError, ValidationError
from cosmos_driver.inventory import SlurmSettings
from cosmos_driver.model import Batch, Job, job_parameters
from cosmos_driver.multimodal import check_batch_inputs
from cosmos_driver.profiles import upsampler
from cosmos_driver.records import BatchRecord, RunRecord, RunState, utc_now
from cosmos_driver.resume import IN_FLIGHT, ticket_for
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.spec import prepare
from cosmos_driver.run.types import PreparedRun
from cosmos_driver.scheduler import Scheduler, Ticket
from cosmos_driver.slurm_backend import SlurmBackend
from cosmos_driver.slurm_calls import SlurmCalls
from cosmos_driver.ssh_hosts import SshHosts
from cosmos_driver.store import RunStore
from cosmos_driver.upscale import UPSCALE_KIND, prepare_upscale, upscale_run_id

log = logging.getLogger(__name__)

# A run of the plan: its id, job, parent run id (an upscale's) and record (None when new).
_Planned = tuple[str, Job, str | None, RunRecord | None]


@dataclass
class BatchResult:
    batch_id: str
    records: list[RunRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.state is RunState.SUCCEEDED for r in self.records)


@dataclass
class BatchRunner:
    """Everything one `infer` needs: where to run, where to record, whom to tell."""

    adapter: AnsibleAdapter
    store: RunStore
    gpu_counts: dict[str, int]
    lifecycle: JobLifecycle = field(init=False)
    on_change: Callable[[RunRecord], None] | None = None
    on_hosts: Callable[[dict[str, Host]], None] | None = None
    # Where the runs go; None: the inventory's SSH hosts with `gpu_counts` GPU slots, or its
    # Slurm cluster when `slurm` names a login host.
    backend: Backend | None = None
    slurm: SlurmSettings | None = None

    def __post_init__(self) -> None:
        self.lifecycle = JobLifecycle(self.adapter, self.store, on_change=self.on_change)

    def run(self, batch: Batch) -> BatchResult:
        """Run every job of `batch` not yet succeeded; return the records of this batch."""
        self._check_fits(batch)
        self._check_inputs(batch)
        result = BatchResult(batch.batch_id)
        with self.store.driving(batch.batch_id):
            self._save_batch(batch)
            todo = self._todo(batch, result)
            backend = self.backend or self._backend()
            scheduler = Scheduler(self.lifecycle, backend)
            resumed = self._resumed(backend, batch.batch_id, todo)
            taken = {t.run.run_id for t in resumed}
            scheduler.run(resumed, self._fresh(batch.batch_id, todo, taken))
        result.records = [self._load(run_id) for run_id, _, _, _ in todo]
        return result

    def _backend(self) -> Backend:
        """The inventory's Slurm cluster when it has a login host, else its SSH hosts."""
        if self.slurm is None:
            return SshHosts(self.lifecycle, self.gpu_counts, self.on_hosts)
        log_path = self.store.root / "tmp" / "slurm.log"
        life = self.lifecycle
        calls = SlurmCalls(
            self.adapter, self.slurm.login, life.stop, life.paths, log_path, life.retry
        )
        return SlurmBackend(self.lifecycle, self.slurm, calls)

    def _check_fits(self, batch: Batch) -> None:
        if not self.gpu_counts:
            raise ConfigurationError(f"{self.adapter.inventory}: the inventory lists no hosts")
        largest = max(self.gpu_counts.values())
        if largest == 0:
            raise ConfigurationError(
                f"{self.adapter.inventory}: no host has a GPU (cosmos_gpu_count is 0 on every "
                "host); set cosmos_gpu_count on the GPU hosts"
            )
        problems = [
            f"{batch.source}: job {job.name}: asks for {job.gpus} GPUs; the largest host "
            f"of the inventory has {largest} (cosmos_gpu_count)"
            for job in batch.jobs
            if job.gpus > largest
        ]
        if problems:
            raise ValidationError(problems)

    def _check_inputs(self, batch: Batch) -> None:
        """Every input video of every job read and cross-checked before anything is sent."""
        problems, warnings = check_batch_inputs(batch)
        for warning in warnings:
            log.warning("%s", warning)
        if problems:
            raise ValidationError(problems)

    def _save_batch(self, batch: Batch) -> None:
        run_ids = [run_id for run_id, _, _ in planned_runs(batch)]
        previous = self.store.load_batch(batch.batch_id)
        record = BatchRecord(batch.batch_id, batch.name, str(batch.source), run_ids)
        if previous:
            record.created_at = previous.created_at
        record.submitted_at = utc_now()
        self.store.save_batch(record)

    def _todo(self, batch: Batch, result: BatchResult) -> list[_Planned]:
        """The runs not yet succeeded, with their records (None for a new run); the ones
        that succeeded are skipped."""
        todo = []
        for run_id, job, parent_id in planned_runs(batch):
            record = self.store.load_run(run_id)
            if record and record.state is RunState.SUCCEEDED:
                log.info("run %s already succeeded; skipped", run_id)
                result.skipped.append(run_id)
            else:
                todo.append((run_id, job, parent_id, record))
        return todo

    def _resumed(self, backend: Backend, batch_id: str, todo: list[_Planned]) -> list[Ticket]:
        """Tickets of the runs left in flight (the backend looks for them: containers on
        the hosts, tasks in Slurm): made first, as they may hold GPUs."""
        in_flight = [p for p in todo if p[3] and p[3].state in IN_FLIGHT]
        if not in_flight:
            return []
        found = backend.find_in_flight(batch_id, [p[3] for p in in_flight if p[3]])
        return [self._ticket(batch_id, planned, found) for planned in in_flight]

    def _fresh(self, batch_id: str, todo: list[_Planned], resumed: set[str]) -> Iterator[Ticket]:
        """Every other run, recorded as pending while the scheduler reads them."""
        for planned in todo:
            if planned[0] not in resumed:
                yield self._ticket(batch_id, planned, None)

    def _ticket(self, batch_id: str, planned: _Planned, found: FoundContainers | None) -> Ticket:
        run_id, job, parent_id, record = planned
        run = self._prepare(batch_id, run_id, job, parent_id)
        ticket = ticket_for(run, record, found) if found else Ticket(run)
        if found and record and run_id in found.lost:
            record.note(f"lost: {found.lost[run_id]} is unknown where it ran; started again")
        self._record_pending(run_id, batch_id, run.job, record, ticket)
        return ticket

    def _prepare(self, batch_id: str, run_id: str, job: Job, parent_id: str | None) -> PreparedRun:
        """A job's own run, or its upscale run (the one with a parent)."""
        if parent_id is None:
            return prepare(self.store, batch_id, run_id, job)
        return prepare_upscale(self.store, batch_id, parent_id, job)

    def _record_pending(
        self, run_id: str, batch_id: str, job: Job, record: RunRecord | None, ticket: Ticket
    ) -> None:
        """A new run, or a new attempt of one that failed, was cancelled or never started."""
        if record and ticket.placement is not None:
            return  # re-attached or re-collected: its record goes on as it is
        if record is None:
            record = RunRecord(run_id, batch_id, job.name)
        else:
            record.failure = None
            record.exit_code = None
            record.outputs = []
            record.progress = None
            record.rating = None  # it rated an output this attempt replaces
            record.note("new attempt")
        record.profile = job.profile
        record.prompt, record.enhanced_prompt = job.prompt, None
        record.inputs = {m: str(path) for m, path in job.inputs.items()}
        record.parameters, record.sweep = job_parameters(job), dict(job.sweep)
        if job.profile == upsampler.NAME:
            record.kind = upsampler.KIND
        if ticket.run.parent_id:
            record.kind, record.parent_run_id = UPSCALE_KIND, ticket.run.parent_id
        self.store.clear_cancel(run_id)
        record.move_to(RunState.PENDING)
        self.store.save_run(record)

    def _load(self, run_id: str) -> RunRecord:
        record = self.store.load_run(run_id)
        assert record is not None
        return record


def planned_runs(batch: Batch) -> list[tuple[str, Job, str | None]]:
    """Every run of the batch as (run id, job, parent run id): each job's own run, then its
    upscale run when the job asks for one."""
    planned: list[tuple[str, Job, str | None]] = []
    for job in batch.jobs:
        run_id = batch.run_id(job)
        planned.append((run_id, job, None))
        if job.upscale:
            planned.append((upscale_run_id(run_id), job, run_id))
    return planned

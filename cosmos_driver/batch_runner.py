"""Run a validated batch: one record per job, succeeded runs skipped on a re-run.

This is the sequential first cut: jobs go one after another to the inventory's hosts in
turn. The scheduler (pipelined, across GPU slots) replaces the loop in run_batch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.batch import Batch
from cosmos_driver.errors import ConfigurationError
from cosmos_driver.lifecycle import JobLifecycle, prepare
from cosmos_driver.records import BatchRecord, RunRecord, RunState
from cosmos_driver.store import RunStore

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    batch_id: str
    records: list[RunRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.state is RunState.SUCCEEDED for r in self.records)


def run_batch(
    batch: Batch,
    adapter: AnsibleAdapter,
    store: RunStore,
    hosts: list[str],
    on_record: Callable[[RunRecord], None] | None = None,
) -> BatchResult:
    """Run every job not yet succeeded; return the records of this invocation."""
    if not hosts:
        raise ConfigurationError(f"{adapter.inventory}: the inventory lists no hosts")
    run_ids = [batch.run_id(job) for job in batch.jobs]
    store.save_batch(BatchRecord(batch.batch_id, batch.name, str(batch.source), run_ids))
    result = BatchResult(batch.batch_id)
    for index, job in enumerate(batch.jobs):
        run_id = run_ids[index]
        record = store.load_run(run_id)
        if record and record.state is RunState.SUCCEEDED:
            log.info("run %s already succeeded; skipped", run_id)
            result.skipped.append(run_id)
            continue
        record = _fresh_attempt(record) if record else RunRecord(run_id, batch.batch_id, job.name)
        record.move_to(RunState.PENDING)
        store.save_run(record)
        prepared = prepare(store, batch.batch_id, run_id, job)
        host = hosts[index % len(hosts)]
        JobLifecycle(adapter, store, host).execute(prepared, record)
        result.records.append(record)
        if on_record:
            on_record(record)
    return result


def _fresh_attempt(record: RunRecord) -> RunRecord:
    """A failed, cancelled or interrupted run starts again; its history stays."""
    record.failure = None
    record.exit_code = None
    record.outputs = []
    return record

"""status, runs, show, logs, kill: look at what happened, follow it, stop it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from invoke import task
from rich.table import Table

from cosmos_driver.batch_view import batch_runs, batches_matching, find_batch
from cosmos_driver.errors import StoreError, ValidationError
from cosmos_driver.host_contract import CONTAINER_LOG
from cosmos_driver.kill import kill_runs
from cosmos_driver.records import ENDED_STATES, RunRecord, RunState
from cosmos_driver.run.lifecycle import JobLifecycle
from cosmos_driver.run.types import HostDown, PhaseFailed, RunRef
from cosmos_driver.store import RunStore
from cosmos_driver.tasks.common import (
    INVENTORY_HELP,
    JSON_HELP,
    STATE_DIR_HELP,
    adapter_for,
    cli_errors,
    console,
    print_json,
    state_store,
    writable_store,
)

FOLLOW_SECONDS = 2.0
RUN_NEEDED = "{task} needs --run ID (a run id or a unique prefix of it; see `invoke runs`)"


def _runs_table(records: list[RunRecord], title: str) -> Table:
    table = Table(title=title)
    for heading in ("run", "host", "state", "step", "why"):
        table.add_column(heading, overflow="fold")
    for r in records:
        step = f"{r.progress.step}/{r.progress.steps}" if r.progress else ""
        why = f"{r.failure.reason}: {r.failure.detail}" if r.failure else ""
        table.add_row(_run_label(r), r.host or "", str(r.state), step, why)
    return table


def _run_label(record: RunRecord) -> str:
    """The run id; an upscale or enhance run also says what it is (and whose output it reads)."""
    if record.kind == "inference":
        return record.run_id
    parent = f" of {record.parent_run_id}" if record.parent_run_id else ""
    return f"{record.run_id}\n({record.kind}{parent})"


def _counts(records: list[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state.value] = counts.get(record.state.value, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no runs"


def _batch_runs(store: RunStore, batch_id: str | None) -> tuple[str, list[RunRecord]]:
    batches = store.list_batches()
    if not batches:
        raise StoreError(f"no batches in {store.root}; run one with `invoke infer --batch FILE`")
    if batch_id is None:
        chosen = max(batches, key=lambda b: b.submitted_at)
    else:
        chosen = find_batch(batches, batch_id)
        if chosen is None:
            count = len(batches_matching(batches, batch_id))
            raise StoreError(f"{batch_id!r} matches {count} batches; see `invoke runs`")
    return chosen.batch_id, batch_runs(store, chosen)


@task(
    help={
        "batch": "batch id or its prefix (default: the latest)",
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def status(c, batch=None, state_dir=None, json=False):
    """Each run of a batch with its host, state, diffusion step and why it failed."""
    batch_id, records = _batch_runs(state_store(state_dir), batch)
    if json:
        print_json({"batch_id": batch_id, "runs": [r.to_json() for r in records]})
        return
    console.print(_runs_table(records, f"batch {batch_id}"))
    console.print(_counts(records))


@task(
    help={
        "status": "only runs in this state (pending, running, succeeded, failed, ...)",
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def runs(c, status=None, state_dir=None, json=False):
    """Every run in the state directory, optionally only those in one state."""
    if status is not None and status not in {s.value for s in RunState}:
        choices = ", ".join(s.value for s in RunState)
        raise ValidationError(f"--status {status!r}: use one of {choices}")
    records = [r for r in state_store(state_dir).list_runs() if status in (None, r.state.value)]
    if json:
        print_json([r.to_json() for r in records])
        return
    console.print(_runs_table(records, "runs"))
    console.print(_counts(records))


@task(
    help={"run": "run id or a unique prefix of it", "state_dir": STATE_DIR_HELP, "json": JSON_HELP}
)
@cli_errors
def show(c, run=None, state_dir=None, json=False):
    """Everything recorded about one run: states, notes, failure, outputs, logs."""
    if run is None:
        raise ValidationError(RUN_NEEDED.format(task="show"))
    store = state_store(state_dir)
    record = store.load_run(store.find_run_id(run))
    assert record is not None
    if json:
        print_json(record.to_json())
        return
    _print_record(record, store.run_dir(record.run_id))


def _print_record(record: RunRecord, run_dir: Path) -> None:
    console.print(f"run {record.run_id}  (job {record.job_name}, batch {record.batch_id})")
    console.print(
        f"state {record.state} on {record.host or '-'}, GPUs "
        f"{','.join(record.gpu_devices) or '-'}, exit code {record.exit_code}"
    )
    _print_prompts(record)
    for step in record.history:
        console.print(f"  {step.at}  {step.state}")
    for note in record.notes:
        console.print(f"  {note.at}  note: {note.text}")
    if record.failure:
        console.print(f"failed: {record.failure.reason}: {record.failure.detail}")
        for line in record.failure.log_tail:
            console.print(f"  | {line}", markup=False)
    for name in record.outputs + record.logs:
        console.print(f"  {run_dir / name}")


def _print_prompts(record: RunRecord) -> None:
    """The job's prompt and, when the upsampler rewrote it, the prompt the run ended with."""
    if record.prompt is not None:
        console.print(f"prompt: {record.prompt}", markup=False)
    if record.enhanced_prompt is not None:
        console.print(f"enhanced prompt: {record.enhanced_prompt}", markup=False)


@task(
    help={
        "run": "run id or a unique prefix of it",
        "follow": "follow while the job runs, then print the rest",
        "inventory": INVENTORY_HELP,
        "state_dir": STATE_DIR_HELP,
    }
)
@cli_errors
def logs(c, run=None, follow=False, inventory=None, state_dir=None):
    """Print a run's container log; with --follow, follow it while the job runs."""
    if run is None:
        raise ValidationError(RUN_NEEDED.format(task="logs"))
    store = state_store(state_dir)
    run_id = store.find_run_id(run)
    log_file = store.logs_dir(run_id) / CONTAINER_LOG
    printed = _follow(store, run_id, log_file, inventory) if follow else 0
    if not log_file.exists():
        raise StoreError(f"run {run_id} has no container log yet; try --follow while it runs")
    sys.stdout.write(log_file.read_bytes()[printed:].decode("utf-8", "replace"))


def _follow(store: RunStore, run_id: str, log_file: Path, inventory: str | None) -> int:
    """Fetch and print the log as it grows until the run ends; return bytes printed. A run
    still queued is waited for while an `infer` drives its batch."""
    lifecycle = JobLifecycle(adapter_for(inventory, store), store)
    printed = 0
    while True:
        record = store.load_run(run_id)
        if record is None or not _worth_following(store, lifecycle, record):
            return printed
        printed = _print_new(log_file, printed)
        time.sleep(FOLLOW_SECONDS)


def _worth_following(store: RunStore, lifecycle: JobLifecycle, record: RunRecord) -> bool:
    """Not ended, and either its container still runs or a live driver moves it on (a run
    left `running` by a driver that died ends the follow once its container has exited)."""
    if record.state in ENDED_STATES:
        return False
    driven = store.is_driven(record.batch_id)
    if record.state is RunState.RUNNING and record.host:
        return _peek(lifecycle, record) or driven
    return driven


def _peek(lifecycle: JobLifecycle, record: RunRecord) -> bool:
    """Fetch the log so far into the run folder; False when the container no longer runs or
    its host does not answer."""
    assert record.host is not None
    try:
        return lifecycle.peek(RunRef(record.run_id, record.batch_id), record.host)
    except (HostDown, PhaseFailed) as failed:
        console.print(f"(could not read the log from {record.host}: {failed})", style="yellow")
        return False


def _print_new(log_file: Path, printed: int) -> int:
    if not log_file.exists():
        return printed
    data = log_file.read_bytes()
    sys.stdout.write(data[printed:].decode("utf-8", "replace"))
    sys.stdout.flush()
    return len(data)


@task(
    help={
        "run": "run id (or unique prefix) to cancel",
        "batch": "batch id (or prefix): cancel every run of it not yet ended",
        "grace": "seconds between SIGTERM and SIGKILL (default 10)",
        "inventory": INVENTORY_HELP,
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def kill(c, run=None, batch=None, grace=10, inventory=None, state_dir=None, json=False):
    """Cancel a run or a whole batch: SIGTERM, SIGKILL after --grace, logs collected."""
    if (run is None) == (batch is None):
        raise ValidationError("kill takes --run ID or --batch ID (one of them)")
    store = writable_store(state_dir)
    run_ids = [store.find_run_id(run)] if run else [r.run_id for r in _batch_runs(store, batch)[1]]
    records = kill_runs(adapter_for(inventory, store), store, run_ids, int(grace))
    if json:
        print_json([r.to_json() for r in records])
        return
    console.print(_runs_table(records, "after kill"))

"""infer and demo: run a batch file on the inventory's hosts and say what happened."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from invoke import task
from rich.table import Table

from cosmos_driver import content
from cosmos_driver.batch import DEFAULT_MAX_RUNS, MAX_RUNS, load_batch
from cosmos_driver.batch_runner import BatchResult, BatchRunner
from cosmos_driver.errors import ConfigurationError, ExecutionError, Interrupted, ValidationError
from cosmos_driver.inventory import Inventory, load_inventory
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.model import Batch
from cosmos_driver.provisioning import HostFacts
from cosmos_driver.records import RunRecord
from cosmos_driver.store import RunStore
from cosmos_driver.tasks.common import (
    INVENTORY_HELP,
    JSON_HELP,
    STATE_DIR_HELP,
    adapter_for,
    cli_errors,
    console,
    print_json,
    resolve_inventory,
    writable_store,
)
from cosmos_driver.tasks.progress import BatchView, live

log = logging.getLogger(__name__)

# Files above this take about a second to parse: say so before starting.
LARGE_BATCH_BYTES = 1 << 20


YES_HELP = (
    f"run a batch that expands to more runs than its max_runs (default {DEFAULT_MAX_RUNS:,}), "
    f"up to {MAX_RUNS:,}"
)


def _infer(
    batch_file: str, inventory: Path, store: RunStore, as_json: bool, yes: bool = False
) -> BatchResult:
    return run_batch(read_batch(Path(batch_file), yes), inventory, store, as_json)


def read_batch(path: Path, yes: bool) -> Batch:
    """Validate a batch file (with progress when that takes a while) and say what it holds
    before anything starts: how many runs its entries expand to, and each warning once."""
    _say_when_large(path)
    batch = load_batch(path, max_runs=MAX_RUNS if yes else None, on_progress=_Progress(path))
    log.info(
        "batch %s: %s expand%s to %s run(s)",
        batch.batch_id,
        "1 job entry" if batch.entries == 1 else f"{batch.entries:,} job entries",
        "s" if batch.entries == 1 else "",
        f"{batch.run_count:,}",
    )
    for warning in batch.warnings:
        log.warning("warning: %s", warning)
    return batch


def _say_when_large(path: Path) -> None:
    """A line before reading a batch file that will take a moment to parse."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # load_batch names the problem
    if size > LARGE_BATCH_BYTES:
        log.info("reading %s (%.1f MiB)", path, size / (1 << 20))


class _Progress:
    """Says how far validation got, once a second, when it takes more than a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = time.monotonic()

    def __call__(self, jobs: int, read: int, entries: int) -> None:
        if time.monotonic() - self.last < 1.0:
            return
        self.last = time.monotonic()
        log.info("validating %s: %d of %d entries read, %d job(s)", self.path, read, entries, jobs)


def run_batch(
    batch: Batch, inventory: Path, store: RunStore, as_json: bool, host: str | None = None
) -> BatchResult:
    """Run a batch on the inventory's hosts (only `host`, when given), with the live view on a
    terminal; every task that runs jobs comes through here."""
    loaded = load_inventory(inventory)
    if loaded.slurm is not None and host is None:
        host = loaded.slurm.login  # the cluster runs the batch, through its login host
    hosts = _chosen_hosts(loaded, host)
    gpu_counts = _gpu_counts(hosts, HostFacts(store.root))
    adapter = adapter_for(inventory, store)
    log.info("batch %s: %s run(s) on %s", batch.batch_id, f"{batch.run_count:,}", ", ".join(hosts))
    view = BatchView(batch.batch_id)
    slurm = loaded.slurm if loaded.slurm and loaded.slurm.login in hosts else None
    runner = BatchRunner(
        adapter, store, gpu_counts, on_change=view.on_change, on_hosts=view.on_hosts, slurm=slurm
    )
    display = live(view, enabled=console.is_terminal and not as_json)
    try:
        if display is None:
            return runner.run(batch)
        with display:
            return runner.run(batch)
    except KeyboardInterrupt:
        raise Interrupted(batch.batch_id) from None


def _chosen_hosts(inventory: Inventory, host: str | None) -> dict[str, int]:
    """The GPU count of every host of the inventory, or of only the one asked for."""
    if host is None:
        return dict(inventory.gpu_counts)
    if host not in inventory.gpu_counts:
        raise ConfigurationError(
            f"host {host!r} is not in {inventory.path}; it has {', '.join(inventory.hosts)}"
        )
    return {host: inventory.gpu_counts[host]}


def _gpu_counts(hosts: dict[str, int], facts: HostFacts) -> dict[str, int]:
    """The inventory's cosmos_gpu_count per host, lowered to what the host's last health
    check saw: jobs never wait for GPUs a host does not have."""
    counts = {}
    for name, configured in hosts.items():
        seen = facts.gpu_count(name)
        if seen is not None and seen < configured:
            log.warning(
                "host %s: inventory says %d GPUs, its last health check saw %d; using %d",
                name,
                configured,
                seen,
                seen,
            )
            configured = seen
        counts[name] = configured
    return counts


def _summary(result: BatchResult, store: RunStore, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "batch_id": result.batch_id,
                "skipped": result.skipped,
                "runs": [r.to_json() for r in result.records],
            }
        )
        return
    table = Table()
    for heading in ("run", "state", "why", "outputs and logs"):
        table.add_column(heading, overflow="fold")
    for record in result.records:
        table.add_row(
            record.run_id, _state_text(record), _why(record), str(store.run_dir(record.run_id))
        )
    console.print(table)
    if result.skipped:
        console.print(f"{len(result.skipped)} run(s) had already succeeded and were skipped")
    console.print(
        f"see them side by side: invoke ui --state-dir {store.root} --open, or "
        f"invoke report --batch {result.batch_id} --state-dir {store.root}"
    )


def _state_text(record: RunRecord) -> str:
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(record.state, "")
    return f"[{colour}]{record.state}[/]" if colour else str(record.state)


def _why(record: RunRecord) -> str:
    return f"{record.failure.reason}: {record.failure.detail}" if record.failure else ""


def _finish(result: BatchResult) -> None:
    if not result.ok:
        failed = sum(1 for r in result.records if r.state != "succeeded")
        raise ExecutionError(f"{failed} of {len(result.records)} run(s) did not succeed")


@task(
    help={
        "batch": "batch file (YAML; see docs/batch-file.md)",
        "inventory": INVENTORY_HELP,
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
        "yes": YES_HELP,
    }
)
@cli_errors
def infer(c, batch=None, inventory=None, state_dir=None, json=False, yes=False):
    """Run a batch of Cosmos jobs; re-running the same file skips the runs that succeeded."""
    if batch is None:
        raise ValidationError("infer needs --batch FILE (a batch file; see docs/batch-file.md)")
    store = writable_store(state_dir)
    result = _infer(batch, resolve_inventory(inventory), store, json, yes)
    _summary(result, store, json)
    _finish(result)


@task(help={"state_dir": STATE_DIR_HELP, "json": JSON_HELP})
@cli_errors
def demo(c, state_dir=None, json=False):
    """Start the lab, run examples/demo.yaml on it, and say where the outputs are."""
    store = writable_store(state_dir)
    inventory = lab_control.up(LabPaths.from_env(), hosts=None, gpus=None)
    result = _infer(str(content.EXAMPLES / "demo.yaml"), inventory, store, json)
    _summary(result, store, json)
    _finish(result)

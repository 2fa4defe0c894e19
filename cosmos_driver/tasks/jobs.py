"""infer and demo: run a batch file on the inventory's hosts and say what happened."""

from __future__ import annotations

import logging
from pathlib import Path

from invoke import task
from rich.table import Table

from cosmos_driver.ansible_adapter import inventory_hosts
from cosmos_driver.batch import Batch, load_batch
from cosmos_driver.batch_runner import BatchResult, BatchRunner
from cosmos_driver.content import content_root
from cosmos_driver.errors import ConfigurationError, ExecutionError, Interrupted
from cosmos_driver.lab import lab as lab_control
from cosmos_driver.lab.paths import LabPaths
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
    state_store,
)
from cosmos_driver.tasks.progress import BatchView, live

log = logging.getLogger(__name__)


def _infer(batch_file: str, inventory: Path, store: RunStore, as_json: bool) -> BatchResult:
    return run_batch(load_batch(Path(batch_file)), inventory, store, as_json)


def run_batch(
    batch: Batch, inventory: Path, store: RunStore, as_json: bool, host: str | None = None
) -> BatchResult:
    """Run a batch on the inventory's hosts (only `host`, when given), with the live view on a
    terminal; every task that runs jobs comes through here."""
    adapter = adapter_for(inventory, store)
    hosts = _chosen_hosts(inventory_hosts(inventory), host, inventory)
    gpu_counts = _gpu_counts(hosts, HostFacts(store.root))
    log.info("batch %s: %d job(s) on %s", batch.batch_id, len(batch.jobs), ", ".join(hosts))
    view = BatchView(batch.batch_id)
    runner = BatchRunner(
        adapter, store, gpu_counts, on_change=view.on_change, on_hosts=view.on_hosts
    )
    display = live(view, enabled=console.is_terminal and not as_json)
    try:
        if display is None:
            return runner.run(batch)
        with display:
            return runner.run(batch)
    except KeyboardInterrupt:
        raise Interrupted(batch.batch_id) from None


def _chosen_hosts(hosts: dict[str, dict], host: str | None, inventory: Path) -> dict[str, dict]:
    """Every host of the inventory, or only the one asked for."""
    if host is None:
        return hosts
    if host not in hosts:
        raise ConfigurationError(
            f"host {host!r} is not in {inventory}; it has {', '.join(hosts) or 'no hosts'}"
        )
    return {host: hosts[host]}


def _gpu_counts(hosts: dict[str, dict], facts: HostFacts) -> dict[str, int]:
    """The inventory's cosmos_gpu_count per host, lowered to what the host's last health
    check saw: jobs never wait for GPUs a host does not have."""
    counts = {}
    for name, hostvars in hosts.items():
        configured = int(hostvars.get("cosmos_gpu_count", 1))
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
    }
)
@cli_errors
def infer(c, batch, inventory=None, state_dir=None, json=False):
    """Run a batch of Cosmos jobs; re-running the same file skips the runs that succeeded."""
    store = state_store(state_dir)
    result = _infer(batch, resolve_inventory(inventory), store, json)
    _summary(result, store, json)
    _finish(result)


@task(help={"state_dir": STATE_DIR_HELP, "json": JSON_HELP})
@cli_errors
def demo(c, state_dir=None, json=False):
    """Start the lab, run examples/demo.yaml on it, and say where the outputs are."""
    inventory = lab_control.up(LabPaths.from_env(), hosts=None, gpus=None)
    store = state_store(state_dir)
    result = _infer(str(content_root() / "examples" / "demo.yaml"), inventory, store, json)
    _summary(result, store, json)
    _finish(result)

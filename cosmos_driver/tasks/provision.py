"""setup and health: make GPU hosts ready, and say host by host whether they are."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from invoke import task
from rich.table import Table

from cosmos_driver.errors import ExecutionError
from cosmos_driver.provisioning import STAGES, HostFacts, HostSetup, Secrets, run_health, run_setup
from cosmos_driver.tasks.common import (
    INVENTORY_HELP,
    JSON_HELP,
    STATE_DIR_HELP,
    adapter_for,
    cli_errors,
    console,
    print_json,
    writable_store,
)

log = logging.getLogger(__name__)

VALIDATION_TASK = "Validating arguments against arg spec"

LIMIT_HELP = "hosts or groups of the inventory to work on (an Ansible pattern; default: all)"
VAULT_HELP = (
    "ansible-vault file holding cosmos_hf_token (repeatable); its password comes from "
    "$ANSIBLE_VAULT_PASSWORD_FILE"
)
BOOTSTRAP_HELP = (
    "first download: where the profile's manifest lists no files yet, download its Hugging Face "
    "repos whole, unverified; then record a manifest with `invoke checkpoints.manifest --host H` "
    "and commit it (no effect once the manifest lists files)"
)
CHECKPOINTS_MARK = {True: "[green]verified[/]", False: "[red]not verified[/]"}
MARK = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "unreachable": "[red]unreachable[/]"}


@task(
    help={
        "inventory": INVENTORY_HELP,
        "limit": LIMIT_HELP,
        "tags": f"stages to run, comma-separated, in this order: {','.join(STAGES)} (default: all)",
        "vault": VAULT_HELP,
        "bootstrap_checkpoints": BOOTSTRAP_HELP,
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    },
    iterable=["vault"],
)
@cli_errors
def setup(
    c,
    inventory=None,
    limit="all",
    tags=None,
    vault=None,
    bootstrap_checkpoints=False,
    state_dir=None,
    json=False,
):
    """Make hosts ready: preflight, image, checkpoints, health, in that order.

    A host stops at its first failing stage; the others go on. The Hugging Face token comes
    from $HF_TOKEN (handed to the play without touching a file) or a vault file."""
    store = writable_store(state_dir)
    adapter = adapter_for(inventory, store)
    secrets = Secrets.gather(vault)
    with _progress(quiet=json) as on_task:
        reports = run_setup(adapter, limit, tags, secrets, bootstrap_checkpoints, on_task)
    HostFacts(store.root).save({r.host: r.health for r in reports if r.health})
    if json:
        print_json({"hosts": [r.to_json() for r in reports]})
    else:
        console.print(_setup_table(reports))
    _fail_unless(all(r.ok for r in reports) and reports, "setup failed on a host; see above")


@task(
    help={
        "inventory": INVENTORY_HELP,
        "limit": LIMIT_HELP,
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def health(c, inventory=None, limit="all", state_dir=None, json=False):
    """Say whether each host is ready: GPUs, driver, a GPU container, image, checkpoints, disk.

    Read-only. Exits 1 when a host is not ready (for CI), after printing every host."""
    store = writable_store(state_dir)
    adapter = adapter_for(inventory, store)
    reports = run_health(adapter, limit)
    HostFacts(store.root).save(reports)
    if json:
        print_json({"hosts": [reports[h] for h in sorted(reports)]})
    else:
        for host in sorted(reports):
            console.print(_health_table(reports[host]))
    ready = bool(reports) and all(r.get("ready") for r in reports.values())
    _fail_unless(ready, "a host is not ready; see its problems above")


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str], None] | None]:
    """The task Ansible is on: a spinner line on a terminal, a log line per stage otherwise
    (downloads take hours; a silent command looks hung)."""
    if quiet:
        yield None
    elif console.is_terminal:
        with console.status("setup: starting") as status:
            yield lambda text: status.update(f"setup: {text}")
    else:
        yield _StageLogger()


class _StageLogger:
    """Logs `play: task` progress once per play (stage), for logs that are not a terminal."""

    def __init__(self) -> None:
        self.play = ""

    def __call__(self, text: str) -> None:
        if VALIDATION_TASK in text:
            return  # every role's argument check runs, even in a stage --tags leaves out
        play = text.split(":", 1)[0]
        if play != self.play:
            self.play = play
            log.info("%s", play)


def _fail_unless(ok: Any, message: str) -> None:
    if not ok:
        raise ExecutionError(message)


def _setup_table(reports: list[HostSetup]) -> Table:
    table = Table(title="setup")
    for heading in ("host", *STAGES, "changed", "what went wrong"):
        table.add_column(heading, overflow="fold")
    for report in reports:
        marks = [MARK.get(report.stages.get(s, ""), report.stages.get(s, "-")) for s in STAGES]
        table.add_row(report.host, *marks, str(report.changed), report.message)
    return table


def _health_table(report: dict[str, Any]) -> Table:
    ready = "[green]ready[/]" if report.get("ready") else "[red]not ready[/]"
    table = Table(title=f"{report.get('host', '?')}: {ready}", show_header=False)
    table.add_column("check")
    table.add_column("value", overflow="fold")
    gpus = report.get("gpus") or []
    names = ", ".join(sorted({str(g.get("name")) for g in gpus})) or "none"
    table.add_row("GPUs", f"{report.get('gpu_count', 0)} ({names})")
    table.add_row("driver", str(report.get("driver_version") or "-"))
    table.add_row("GPU container", _smoke_text(report.get("smoke_test")))
    table.add_row("image", "present" if report.get("image_present") else "missing")
    table.add_row("checkpoints", CHECKPOINTS_MARK.get(report.get("checkpoints_verified"), "-"))
    table.add_row("disk free", f"{report.get('disk_free_gb', '-')} GB")
    for problem in report.get("problems") or []:
        table.add_row("[red]problem[/]", str(problem))
    return table


def _smoke_text(smoke: Any) -> str:
    """The GPU container smoke test as one phrase: ok, skipped or its failure message."""
    if not isinstance(smoke, dict):
        return str(smoke or "-")
    if smoke.get("skipped"):
        return f"skipped: {smoke.get('message', '')}"
    return "ok" if smoke.get("ok") else f"[red]failed[/]: {smoke.get('message', '')}"

"""`ui` (the web dashboard over the state directory) and `report` (one batch as a single
HTML file)."""

from __future__ import annotations

import secrets
import webbrowser
from pathlib import Path

from invoke import task

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.batch_view import find_batch
from cosmos_driver.dashboard.access import Access, allowed_hosts, is_loopback
from cosmos_driver.dashboard.actions import Actions
from cosmos_driver.dashboard.app import Dashboard, create_app
from cosmos_driver.dashboard.report import write_report
from cosmos_driver.errors import ConfigurationError, StoreError, ValidationError
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
)

DEFAULT_PORT = 8765


@task(
    help={
        "state_dir": STATE_DIR_HELP,
        "host": "address to listen on (default 127.0.0.1; any other needs a token)",
        "port": f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
        "open": "open the dashboard in the default browser",
        "token": "token every request must carry (default beyond loopback: a new one, printed)",
        "inventory": INVENTORY_HELP + "; without one, kill and re-run are off",
        "grace": "seconds between SIGTERM and SIGKILL when killing from the page (default 10)",
    }
)
@cli_errors
def ui(
    c,
    state_dir=None,
    host="127.0.0.1",
    port=DEFAULT_PORT,
    open=False,
    token=None,
    inventory=None,
    grace=10,
):
    """The web dashboard: batches, live runs, galleries, sweep grids, inputs, kill, ratings."""
    import uvicorn  # the server starts only here: every other command stays light

    store = state_store(state_dir)
    token = token or (None if is_loopback(host) else secrets.token_urlsafe(24))
    adapter = _adapter_or_none(inventory, store)
    dashboard = Dashboard(
        store,
        Actions(store, adapter, int(grace)),
        Access(token, allowed_hosts(host, int(port))),
        inventory,
    )
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"cosmos dashboard of {store.root}: {url}")
    if adapter is None:
        console.print("(no inventory: kill and re-run are off; pass --inventory)")
    if open:
        webbrowser.open(url)
    uvicorn.run(create_app(dashboard), host=host, port=int(port), log_level="warning")


def _adapter_or_none(inventory: str | None, store: RunStore) -> AnsibleAdapter | None:
    try:
        return adapter_for(inventory, store)
    except ConfigurationError:
        if inventory:
            raise
        return None


@task(
    help={
        "batch": "batch id or a unique prefix of it",
        "output": "the HTML file to write (default: report-<batch id>.html)",
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def report(c, batch=None, output=None, state_dir=None, json=False):
    """One batch as a single HTML file that opens with no server (thumbnails inlined)."""
    if batch is None:
        raise ValidationError(
            "report needs --batch ID (a batch id or its prefix; see `cosmos runs`)"
        )
    store = state_store(state_dir)
    found = find_batch(store.list_batches(), batch)
    if found is None:
        raise StoreError(f"no single batch matches {batch!r} in {store.root}; see `cosmos runs`")
    target = Path(output or f"report-{found.batch_id}.html")
    if target.is_dir():
        raise ValidationError(f"--output {target} is a folder; name the HTML file to write")
    written = write_report(store, found, target)
    if json:
        print_json(written)
        return
    console.print(f"report of batch {found.batch_id} ({written['bytes']:,} bytes): {target}")

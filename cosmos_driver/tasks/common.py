"""What every task shares: option resolution, one-line errors, the console."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.exceptions import Exit
from rich.console import Console

from cosmos_driver.ansible_adapter import AnsibleAdapter
from cosmos_driver.errors import ConfigurationError, CosmosError
from cosmos_driver.lab.paths import LabPaths
from cosmos_driver.store import RunStore

console = Console(stderr=False, highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

INVENTORY_HELP = "inventory file (default: $COSMOS_INVENTORY, else the lab's inventory)"
STATE_DIR_HELP = "state directory of run records (default: $COSMOS_STATE_DIR, else .cosmos)"
JSON_HELP = "print JSON for scripts instead of a table"


def debugging() -> bool:
    """`invoke --debug` / `cosmos --debug` turn on DEBUG logging; we follow it."""
    return logging.getLogger().isEnabledFor(logging.DEBUG) or bool(os.environ.get("COSMOS_DEBUG"))


def cli_errors(task_function: F) -> F:
    """Print a CosmosError as one clear line (traceback only with --debug) and exit non-zero."""

    @functools.wraps(task_function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _configure_logging()
        try:
            return task_function(*args, **kwargs)
        except CosmosError as exc:
            if debugging():
                errors.print_exception()
            for line in str(exc).splitlines() or [type(exc).__name__]:
                errors.print(f"[bold red]error:[/] {line}", markup=True, highlight=False)
            raise Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            errors.print(
                "interrupted: containers already started keep running; run the same "
                "command again to re-attach to them and finish the batch"
            )
            raise Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def _configure_logging() -> None:
    """Progress lines (INFO) of cosmos_driver on stderr; everything at DEBUG under --debug."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("cosmos_driver").setLevel(logging.DEBUG if debugging() else logging.INFO)


def resolve_inventory(inventory: str | None) -> Path:
    """--inventory, else $COSMOS_INVENTORY, else the running lab's inventory."""
    chosen = inventory or os.environ.get("COSMOS_INVENTORY")
    path = Path(chosen) if chosen else LabPaths.from_env().inventory
    if not path.exists():
        hint = "" if chosen else " (no lab inventory: run `invoke lab.up` or pass --inventory)"
        raise ConfigurationError(f"inventory {path} does not exist{hint}")
    if not (path.is_file() or path.is_dir()):
        raise ConfigurationError(
            f"inventory {path} is not a file or folder; pass an inventory file with --inventory"
        )
    return path


def state_store(state_dir: str | None) -> RunStore:
    return RunStore(Path(state_dir or os.environ.get("COSMOS_STATE_DIR") or ".cosmos"))


def writable_store(state_dir: str | None) -> RunStore:
    """The store of a task that writes records, refused up front when it cannot be written."""
    store = state_store(state_dir)
    store.check_writable()
    return store


def adapter_for(inventory: str | Path | None, store: RunStore) -> AnsibleAdapter:
    """The execution adapter for --inventory (resolved as resolve_inventory does), with its
    scratch space in the state directory."""
    path = inventory if isinstance(inventory, Path) else resolve_inventory(inventory)
    return AnsibleAdapter(path, store.root / "tmp")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

"""checkpoints.manifest and checkpoints.verify: record a profile's manifest from a tree you
trust, and check hosts against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import task
from rich.table import Table

from cosmos_driver.checkpoints import (
    ManifestEntry,
    entries_from_module,
    load_manifest,
    manifest_path,
    write_manifest,
)
from cosmos_driver.errors import ExecutionError, ValidationError
from cosmos_driver.provisioning import hash_checkpoint_tree, verify_checkpoints
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

# Written into recorded manifests: the Hugging Face CLI keeps metadata in .cache/ of each
# --local-dir, which is neither a checkpoint nor unexpected.
RECORDED_IGNORE = (".cache/**", "**/.cache/**")
PROBLEM_KINDS = ("missing", "wrong_size", "wrong_hash", "unexpected", "unreadable")


@task(
    help={
        "host": "the host whose checkpoint tree you trust (a name from the inventory)",
        "profile": "model profile the manifest is for (default: transfer1)",
        "output": "where to write it (default: manifests/<profile>.yaml)",
        "inventory": INVENTORY_HELP,
        "state_dir": STATE_DIR_HELP,
    }
)
@cli_errors
def manifest(c, host=None, profile="transfer1", output=None, inventory=None, state_dir=None):
    """Record a manifest (path, size, sha256 of every file) from one host's checkpoint tree.

    Upstream publishes no hashes: download once, check the models work, then record the tree
    here so every other host is verified against it."""
    if host is None:
        raise ValidationError(
            "checkpoints.manifest needs --host HOST (the inventory host whose checkpoint tree "
            "you trust)"
        )
    store = writable_store(state_dir)
    adapter = adapter_for(inventory, store)
    entries = entries_from_module(hash_checkpoint_tree(adapter, host))
    if not entries:
        raise ExecutionError(f"{host}: its checkpoint folder holds no files; nothing to record")
    path = Path(output) if output else manifest_path(profile)
    _replace_manifest(path, profile, entries)
    size = sum(e.size for e in entries)
    console.print(f"wrote {path}: {len(entries)} files, {size / 1e9:.2f} GB, from {host}")


@task(
    help={
        "full": "hash every file, ignoring the stamps of earlier verifications",
        "limit": "hosts or groups to check (an Ansible pattern; default: all)",
        "inventory": INVENTORY_HELP,
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def verify(c, full=False, limit="all", inventory=None, state_dir=None, json=False):
    """Check each host's checkpoints against the manifest, naming every file that is wrong.

    Missing, wrong-size, wrong-hash and unexpected files are each named. Files unchanged
    since their last verification are not re-read unless --full."""
    store = writable_store(state_dir)
    adapter = adapter_for(inventory, store)
    reports = verify_checkpoints(adapter, limit, full)
    if json:
        print_json({"hosts": reports})
    else:
        console.print(_verify_table(reports))
    if not reports or not all(r.get("ok") for r in reports.values()):
        raise ExecutionError("checkpoints do not match the manifest on a host; see above")


def _replace_manifest(path: Path, profile: str, entries: list[ManifestEntry]) -> None:
    """Write the manifest beside the old one, check it reads back, then replace the old one;
    the old manifest's own ignore globs are kept. A bad recording never costs the old file."""
    ignore = tuple(dict.fromkeys((*_ignore_of(path), *RECORDED_IGNORE)))
    draft = path.with_name(f".{path.name}.new")
    write_manifest(draft, profile, entries, ignore=ignore)
    try:
        load_manifest(draft)
    except ValidationError:
        draft.unlink(missing_ok=True)
        raise
    draft.replace(path)


def _ignore_of(path: Path) -> tuple[str, ...]:
    if not path.exists():
        return ()
    try:
        return load_manifest(path).ignore
    except ValidationError:
        return ()  # an unreadable old manifest is replaced; its globs cannot be read


def _verify_table(reports: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="checkpoints")
    for heading in ("host", "verdict", "files", "hashed now", "problems"):
        table.add_column(heading, overflow="fold")
    for host in sorted(reports):
        report = reports[host]
        verdict = "[green]ok[/]" if report.get("ok") else "[red]wrong[/]"
        table.add_row(
            host,
            verdict,
            str(report.get("files", "-")),
            str(report.get("hashed", "-")),
            "; ".join(_problems(report)) or "-",
        )
    return table


def _problems(report: dict[str, Any]) -> list[str]:
    if report.get("error"):
        return [str(report["error"])]
    lines = []
    for kind in PROBLEM_KINDS:
        for item in report.get(kind) or []:
            path = item.get("path") if isinstance(item, dict) else item
            lines.append(f"{kind.replace('_', ' ')}: {path}")
    return lines

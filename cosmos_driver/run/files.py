"""The files a collect brings back into the run folder: the fetched tar unpacked (plain
files under outputs/ and logs/ only), the lists the record keeps, the log and the exit."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from cosmos_driver.host_contract import CONTAINER_LOG, EXIT_FILE
from cosmos_driver.records import FailureReason, RunRecord
from cosmos_driver.run.spec import thumbnails
from cosmos_driver.run.types import PhaseFailed, Verdict
from cosmos_driver.store import RunStore


def unpack_bundle(run_dir: Path, name: str) -> None:
    """Unpack the tar a collect fetched (outputs/ and logs/ of the run) into the run folder,
    then remove it. Only plain files under outputs/ and logs/ are accepted."""
    bundle = run_dir / Path(name).name
    if not bundle.exists():
        return
    with tarfile.open(bundle) as archive:
        members = archive.getmembers()
        strays = [m.name for m in members if not _bundle_member_ok(m)]
        if strays:
            raise PhaseFailed(
                Verdict(FailureReason.PLAYBOOK_FAILED, f"{bundle}: unexpected entries {strays}")
            )
        archive.extractall(run_dir, members=members, filter="data")
    bundle.unlink()


def _bundle_member_ok(member: tarfile.TarInfo) -> bool:
    parts = Path(member.name).parts
    return member.isfile() and len(parts) == 2 and parts[0] in ("outputs", "logs")


def list_local_files(record: RunRecord, store: RunStore) -> None:
    """Thumbnail the output videos and list outputs, logs and thumbnails on the record."""
    run_dir = store.run_dir(record.run_id)
    for video in store.outputs_dir(record.run_id).glob("*.mp4"):
        thumbnails(video, run_dir / "thumbnails", f"output-{video.stem}")
    record.thumbnails = sorted(
        str(p.relative_to(run_dir)) for p in (run_dir / "thumbnails").glob("*.jpg")
    )
    record.outputs = sorted(
        str(p.relative_to(run_dir)) for p in store.outputs_dir(record.run_id).glob("*")
    )
    record.logs = sorted(
        str(p.relative_to(run_dir)) for p in store.logs_dir(record.run_id).glob("*")
    )


def output_names(store: RunStore, run_id: str) -> frozenset[str]:
    return frozenset(p.name for p in store.outputs_dir(run_id).glob("*"))


def exit_left_on_host(store: RunStore, run_id: str) -> int | None:
    """The exit code the collect action saved beside the log (logs/container-exit.json)."""
    saved = store.logs_dir(run_id) / EXIT_FILE
    try:
        return int(json.loads(saved.read_text())["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def log_lines(store: RunStore, run_id: str) -> list[str]:
    container_log = store.logs_dir(run_id) / CONTAINER_LOG
    if not container_log.exists():
        return []
    return container_log.read_text(encoding="utf-8", errors="replace").splitlines()

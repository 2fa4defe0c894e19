"""The JSON run store: batches/<batch_id>.json and runs/<run_id>/{run.json,outputs,logs}.

Writes are atomic (temp file, fsync, rename) and serialised by a lock file, so a crashed or
concurrent driver never leaves a half-written or interleaved record behind."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cosmos_driver.errors import StoreError
from cosmos_driver.records import SCHEMA_VERSION, BatchRecord, RunRecord

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON so readers see either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any]:
    """Read one record, naming the file when it is not valid JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: not valid JSON ({exc}); restore it or remove it") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path}: not a record (a JSON object); restore it or remove it")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema_version {version!r}, this driver reads {SCHEMA_VERSION}; "
            "use the cosmos-driver release that wrote it"
        )
    return data


class RunStore:
    """Run and batch records under one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's write lock (one writer at a time, across processes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def outputs_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "outputs"

    def logs_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "logs"

    def save_run(self, record: RunRecord) -> None:
        with self.locked():
            write_json_atomic(self.run_dir(record.run_id) / "run.json", record.to_json())
        log.debug("run %s saved in state %s", record.run_id, record.state)

    def load_run(self, run_id: str) -> RunRecord | None:
        path = self.run_dir(run_id) / "run.json"
        if not path.exists():
            return None
        return RunRecord.from_json(read_json(path))

    def list_runs(self) -> list[RunRecord]:
        runs_root = self.root / "runs"
        if not runs_root.is_dir():
            return []
        paths = sorted(runs_root.glob("*/run.json"))
        return [RunRecord.from_json(read_json(path)) for path in paths]

    def save_batch(self, batch: BatchRecord) -> None:
        with self.locked():
            write_json_atomic(self.root / "batches" / f"{batch.batch_id}.json", batch.to_json())

    def load_batch(self, batch_id: str) -> BatchRecord | None:
        path = self.root / "batches" / f"{batch_id}.json"
        if not path.exists():
            return None
        return BatchRecord.from_json(read_json(path))

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cosmos_driver.errors import StoreError
from cosmos_driver.records import SCHEMA_VERSION, BatchRecord, RunRecord

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON so readers see either the old or the new file."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file in the same folder, fsync, rename, fsync the
    folder, so a reader (or a crash) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make renames in `folder` durable."""
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


def _write_problem(folder: Path) -> str | None:
    """Why a file cannot be created in `folder`, found by creating and removing one (a
    permission check alone passes for root on folders like /proc)."""
    try:
        descriptor, name = tempfile.mkstemp(prefix=".cosmos-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(descriptor)
    Path(name).unlink()
    return None


class RunStore:
    """Run and batch records under one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def check_writable(self) -> None:
        """Refuse, before any work, a state directory this process could not write records
        to; creates nothing (an invalid batch leaves no trace)."""
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise StoreError(
                f"state directory {self.root}: {folder} is not a folder; "
                "choose another with --state-dir (or $COSMOS_STATE_DIR)"
            )
        problem = _write_problem(folder)
        if problem:
            raise StoreError(
                f"state directory {self.root}: {folder} is not writable by this user "
                f"({problem}); fix its permissions or choose another with --state-dir "
                "(or $COSMOS_STATE_DIR)"
            )

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

    @contextlib.contextmanager
    def driving(self, batch_id: str) -> Iterator[None]:
        """Held by the `infer` that drives a batch: a second one is refused, and `kill`
        can tell whether a live driver will finish what it cancels."""
        path = self.root / "batches" / f"{batch_id}.driver"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"batch {batch_id} is already running in another process; "
                    "watch it with `invoke status`, or stop it with `invoke kill`"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_driven(self, batch_id: str) -> bool:
        """Whether an `infer` process holds this batch now."""
        path = self.root / "batches" / f"{batch_id}.driver"
        if not path.exists():
            return False
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    def find_run_id(self, text: str) -> str:
        """A run id from itself or a unique prefix of it."""
        if (self.run_dir(text) / "run.json").exists():
            return text
        folder = self.root / "runs"
        matches = sorted(p.name for p in folder.glob(f"{text}*")) if folder.is_dir() else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise StoreError(f"no run {text!r} in {self.root}; list them with `invoke runs`")
        raise StoreError(f"{text!r} matches {len(matches)} runs: {', '.join(matches[:5])} ...")

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

    def update_run(self, run_id: str, change: Callable[[RunRecord], None]) -> RunRecord:
        """Read the run's latest record, apply `change`, write it back: all under the lock,
        so a `kill` in another process and a running `infer` never undo each other's writes."""
        with self.locked():
            record = self.load_run(run_id)
            if record is None:
                raise StoreError(f"no record of run {run_id} in {self.root}")
            change(record)
            write_json_atomic(self.run_dir(run_id) / "run.json", record.to_json())
        return record

    def request_cancel(self, run_id: str) -> None:
        """Leave a cancel marker that the process running the job acts on."""
        marker = self.run_dir(run_id) / "cancel"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def cancel_requested(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / "cancel").exists()

    def clear_cancel(self, run_id: str) -> None:
        (self.run_dir(run_id) / "cancel").unlink(missing_ok=True)

    def load_run(self, run_id: str) -> RunRecord | None:
        path = self.run_dir(run_id) / "run.json"
        if not path.exists():
            return None
        return RunRecord.from_json(read_json(path))

    def list_batches(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        folder = self.root / "batches"
        if not folder.is_dir():
            return []
        batches = [BatchRecord.from_json(read_json(p)) for p in folder.glob("*.json")]
        return sorted(batches, key=lambda b: b.created_at)

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

"""Making a job ready to send: its inputs named by content hash, its spec saved in the run
folder, thumbnails of its inputs (which are made once per file and shared)."""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

from cosmos_driver.errors import ValidationError
from cosmos_driver.host_contract import SPEC_FILE
from cosmos_driver.model import Job
from cosmos_driver.profiles import ContainerPaths
from cosmos_driver.run.types import PreparedRun
from cosmos_driver.store import RunStore, write_json_atomic
from cosmos_driver.thumbnails import SharedThumbnails

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """The content hash that names an input on the host. Jobs of a batch often share an
    input, so a file is read once while its size, mtime and inode stay the same."""
    stat = path.stat()
    return _sha256_of(path.resolve(), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=1024)
def _sha256_of(path: Path, _size: int, _mtime_ns: int, _inode: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(store: RunStore, batch_id: str, run_id: str, job: Job) -> PreparedRun:
    """Hash the inputs, build the spec and save it as runs/<run_id>/spec.json."""
    names = {m: f"{file_sha256(p)}{p.suffix.lower()}" for m, p in job.inputs.items()}
    run = PreparedRun(run_id, batch_id, job, names, store.run_dir(run_id) / SPEC_FILE)
    write_json_atomic(run.spec_path, run.profile.build_spec(job, names, ContainerPaths()))
    for modality, path in job.inputs.items():
        thumbnails(path, store.run_dir(run_id) / "thumbnails", f"input-{modality}")
    return run


# Thumbnails, made once per video file and linked into each run that uses it.
_shared_thumbnails = SharedThumbnails()


def thumbnails(video: Path, folder: Path, stem: str) -> None:
    """First and middle frame as JPEG, for status views and reports; never fails a run."""
    try:
        _shared_thumbnails.write(video, folder, stem)
    except (ValidationError, OSError) as exc:
        log.warning("no thumbnails of %s: %s", video, exc)

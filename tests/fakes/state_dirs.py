"""A state directory as `infer` leaves it, built without hosts: a batch record, run records
in chosen states, outputs, logs and thumbnails on disk. For the dashboard and report tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cosmos_driver.ids import batch_id as make_batch_id
from cosmos_driver.ids import run_id as make_run_id
from cosmos_driver.records import BatchRecord, Failure, FailureReason, Progress, RunRecord, RunState
from cosmos_driver.store import RunStore
from tests.fakes.videos import make_mp4

STARTED = "2026-12-03T10:00:00.000+00:00"
FINISHED = "2026-12-03T10:01:40.000+00:00"


@dataclass
class FakeBatch:
    store: RunStore
    batch: BatchRecord
    records: list[RunRecord]

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.records]


def write_jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((18, 32, 3), shade, dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    path.write_bytes(data.tobytes())


def sweep_batch(
    root: Path, guidance: list[int], seeds: list[int], name: str = "sweep"
) -> FakeBatch:
    """A finished sweep of guidance × seed: one succeeded run per combination, each with an
    output video, a log and an output thumbnail; inputs are a real color video."""
    store = RunStore(root / "state")
    color = make_mp4(root / "inputs" / "color.mp4", frames=12, size=(64, 48))
    batch_id = make_batch_id(name)
    records = []
    for g in guidance:
        for s in seeds:
            job = f"street.guidance-{g}.seed-{s}"
            record = finished_run(store, batch_id, job, shade=(g * 20 + s) % 256)
            record.sweep = {"guidance": g, "seed": s}
            record.inputs = {"color": str(color)}
            record.parameters = {"guidance": g, "seed": s, "gpus": 1, "controls": {"edge": 0.5}}
            store.save_run(record)
            records.append(record)
    batch = BatchRecord(batch_id, name, str(root / f"{name}.yaml"), [r.run_id for r in records])
    store.save_batch(batch)
    return FakeBatch(store, batch, records)


def finished_run(store: RunStore, batch_id: str, job_name: str, shade: int = 90) -> RunRecord:
    """A succeeded run with its files on disk and listed on its record."""
    record = RunRecord(make_run_id(batch_id, job_name), batch_id, job_name, host="lab-1")
    for state in (RunState.PENDING, RunState.STAGING, RunState.RUNNING, RunState.SUCCEEDED):
        record.move_to(state)
    record.container_started_at, record.container_finished_at = STARTED, FINISHED
    record.gpu_devices, record.exit_code = ["0"], 0
    record.progress = Progress(35, 35)
    record.prompt = "a street at night"
    folder = store.run_dir(record.run_id)
    make_mp4(folder / "outputs" / "output.mp4", frames=6, size=(64, 48))
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "logs" / "container.log").write_text("step 35/35\ndone\n")
    write_jpeg(folder / "thumbnails" / "output-output.middle.jpg", shade)
    record.outputs = ["outputs/output.mp4"]
    record.logs = ["logs/container.log"]
    record.thumbnails = ["thumbnails/output-output.middle.jpg"]
    return record


def running(record: RunRecord, step: int) -> None:
    """Put a record back to running at `step` of 35 (as a wait phase would)."""
    record.move_to(RunState.RUNNING)
    record.container_finished_at = None
    record.progress = Progress(step, 35)


def failed(record: RunRecord) -> None:
    record.failure = Failure(FailureReason.CONTAINER_EXIT, "container exited with code 3")
    record.move_to(RunState.FAILED)

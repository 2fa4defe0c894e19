"""What the dashboard and the report show of batches and runs, read from the records.

Pure reads of the store, with no lock taken: records are replaced atomically, so a read
sees the last whole record while `infer` writes the next."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from cosmos_driver.records import ENDED_STATES, BatchRecord, RunRecord
from cosmos_driver.run_times import elapsed_seconds, ended_at, remaining_seconds, started_at
from cosmos_driver.store import RunStore

# The thumbnail a gallery shows of a run's output, best first.
THUMBNAIL_PREFERENCE = (".middle.jpg", ".first.jpg")


@dataclass(frozen=True)
class BatchSummary:
    """One line of the batches view: what the batch is and how far it got."""

    batch_id: str
    name: str
    source: str
    submitted_at: str
    runs: int
    counts: dict[str, int]
    hosts: list[str]
    started_at: str | None
    ended_at: str | None
    makespan_s: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRow:
    """One run in a batch's live table and gallery."""

    run_id: str
    job_name: str
    kind: str
    state: str
    reason: str | None
    detail: str | None
    host: str | None
    gpus: list[str]
    step: int | None
    steps: int | None
    elapsed_s: float | None
    remaining_s: float | None
    thumbnail: str | None
    output: str | None
    rating: int | None
    comment: str
    sweep: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RecordCache:
    """Each run.json parsed again only when it was replaced (the live views poll every
    second, and a batch may have thousands of runs). The records it returns are shared:
    read them, never change them."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int, int], RunRecord]] = {}

    def load(self, store: RunStore, run_id: str) -> RunRecord | None:
        try:
            stat = (store.run_dir(run_id) / "run.json").stat()
        except FileNotFoundError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        hit = self._seen.get(run_id)
        if hit and hit[0] == key:
            return hit[1]
        record = store.load_run(run_id)
        if record is not None:
            self._seen[run_id] = (key, record)
        return record


def batch_runs(
    store: RunStore, batch: BatchRecord, cache: RecordCache | None = None
) -> list[RunRecord]:
    """The batch's records in batch-file order; a run not yet recorded is left out."""
    load = cache.load if cache else lambda s, i: s.load_run(i)
    return [r for r in (load(store, i) for i in batch.run_ids) if r is not None]


def summarize(batch: BatchRecord, records: list[RunRecord]) -> BatchSummary:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state.value] = counts.get(record.state.value, 0) + 1
    starts = [t for t in (started_at(r) for r in records) if t]
    ends = [t for t in (ended_at(r) for r in records) if t]
    done = bool(records) and all(r.state in ENDED_STATES for r in records)
    first = min(starts) if starts else None
    last = max(ends) if done and ends else None
    return BatchSummary(
        batch_id=batch.batch_id,
        name=batch.name,
        source=batch.source,
        submitted_at=batch.submitted_at,
        runs=len(batch.run_ids),
        counts=dict(sorted(counts.items())),
        hosts=sorted({r.host for r in records if r.host}),
        started_at=_iso(first),
        ended_at=_iso(last),
        makespan_s=(last - first).total_seconds() if first and last else None,
    )


def summaries(store: RunStore, cache: RecordCache | None = None) -> list[BatchSummary]:
    """Every batch of the state directory, the latest submitted first."""
    batches = sorted(store.list_batches(), key=lambda b: b.submitted_at, reverse=True)
    return [summarize(b, batch_runs(store, b, cache)) for b in batches]


def run_row(record: RunRecord, now: dt.datetime | None = None) -> RunRow:
    elapsed = elapsed_seconds(record, now)
    failure = record.failure
    return RunRow(
        run_id=record.run_id,
        job_name=record.job_name,
        kind=record.kind,
        state=record.state.value,
        reason=failure.reason.value if failure else None,
        detail=failure.detail if failure else None,
        host=record.host,
        gpus=list(record.gpu_devices),
        step=record.progress.step if record.progress else None,
        steps=record.progress.steps if record.progress else None,
        elapsed_s=elapsed,
        remaining_s=remaining_seconds(record, elapsed),
        thumbnail=output_thumbnail(record),
        output=first_video(record.outputs),
        rating=record.rating,
        comment=record.comment,
        sweep=dict(record.sweep),
    )


def output_thumbnail(record: RunRecord) -> str | None:
    """The record's best thumbnail of its output video (relative to its folder), if any."""
    outputs = [t for t in record.thumbnails if t.rsplit("/", 1)[-1].startswith("output-")]
    for suffix in THUMBNAIL_PREFERENCE:
        for name in outputs:
            if name.endswith(suffix):
                return name
    return None


def first_video(names: list[str]) -> str | None:
    return next((n for n in names if n.lower().endswith(".mp4")), None)


def batches_matching(batches: list[BatchRecord], text: str) -> list[BatchRecord]:
    """The batch whose id is `text`, else those whose id starts with it."""
    matches = [b for b in batches if b.batch_id.startswith(text)]
    exact = [b for b in matches if b.batch_id == text]
    return exact or matches


def find_batch(batches: list[BatchRecord], text: str) -> BatchRecord | None:
    """The batch `text` names (its id or a unique prefix of it), else None."""
    matches = batches_matching(batches, text)
    return matches[0] if len(matches) == 1 else None


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None

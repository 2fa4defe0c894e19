"""The live view of a large batch: the runs in flight and the latest ended ones, at most
MAX_ROWS rows, and one line of counts for the whole batch."""

from __future__ import annotations

from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.tasks.progress import MAX_ROWS, _counts, _shown


def record(number: int, state: RunState) -> RunRecord:
    run = RunRecord(f"b.run-{number:05d}", "b", f"run-{number}")
    run.move_to(state)
    return run


def test_a_small_batch_shows_every_run():
    records = [record(i, RunState.PENDING) for i in range(3)]
    assert _shown(records) == records


def test_a_large_batch_shows_what_is_in_flight_first_and_counts_the_rest():
    records = [record(i, RunState.PENDING) for i in range(10_000)]
    records[9_000] = record(9_000, RunState.RUNNING)
    records[5] = record(5, RunState.FAILED)
    shown = _shown(records)
    assert len(shown) == MAX_ROWS
    assert [r.run_id for r in shown[:2]] == ["b.run-09000", "b.run-00005"]
    assert _counts(records) == "10,000 run(s): 1 failed, 9,998 pending, 1 running"

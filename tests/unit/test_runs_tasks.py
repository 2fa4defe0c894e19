"""status, runs, kill and logs: the runs table says what each run is, and `logs --follow`
knows when to stop."""

from __future__ import annotations

import pytest
from rich.console import Console

from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.store import RunStore
from cosmos_driver.tasks.runs import _runs_table, _worth_following


def rendered(records: list[RunRecord]) -> str:
    console = Console(width=200, record=True)
    console.print(_runs_table(records, "batch b"))
    return console.export_text()


def test_an_upscale_run_names_its_kind_and_parent_and_a_job_run_stays_plain():
    parent = RunRecord("b.street-1a2b", "b", "street")
    parent.move_to(RunState.SUCCEEDED)
    upscale = RunRecord("b.street-1a2b.upscale", "b", "street")
    upscale.kind, upscale.parent_run_id = "upscale", parent.run_id

    text = rendered([parent, upscale])

    assert "(upscale of b.street-1a2b)" in text
    assert "(inference" not in text


class Peeking:
    """The lifecycle at its boundary: `peek` says whether the container still runs."""

    def __init__(self, still_running: bool) -> None:
        self.still_running = still_running
        self.peeks = 0

    def peek(self, _run, _host) -> bool:
        self.peeks += 1
        return self.still_running


def record_in(state: RunState, host: str | None = "h1") -> RunRecord:
    record = RunRecord("b.j-1", "b", "j", host=host)
    for step in (RunState.STAGING, RunState.RUNNING, state):
        if record.state is not state:
            record.move_to(step)
    return record


@pytest.mark.parametrize(
    ("state", "still_running", "driven", "follow"),
    [
        (RunState.RUNNING, True, False, True),  # its container runs: keep reading
        (RunState.RUNNING, False, False, False),  # exited, and no driver will collect it
        (RunState.RUNNING, False, True, True),  # exited; the live driver collects it next
        (RunState.PENDING, False, True, True),  # queued behind other runs of a live batch
        (RunState.PENDING, False, False, False),  # queued, but nobody drives the batch
        (RunState.SUCCEEDED, True, True, False),  # ended: the rest is printed, then done
    ],
)
def test_logs_follow_goes_on_only_while_there_is_something_to_follow(
    tmp_path, state, still_running, driven, follow
):
    store = RunStore(tmp_path)
    record = RunRecord("b.j-1", "b", "j", host="h1") if state is RunState.PENDING else None
    record = record or record_in(state)
    lifecycle = Peeking(still_running)

    if driven:
        with store.driving("b"):
            assert _worth_following(store, lifecycle, record) is follow
    else:
        assert _worth_following(store, lifecycle, record) is follow
    assert lifecycle.peeks == (1 if state is RunState.RUNNING else 0)

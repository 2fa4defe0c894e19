"""The runs table of `status`, `runs` and `kill`: an upscale or enhance run says what it is."""

from __future__ import annotations

from rich.console import Console

from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.tasks.runs import _runs_table


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

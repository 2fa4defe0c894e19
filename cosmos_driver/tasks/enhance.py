"""enhance: Transfer1's prompt upsampler on one prompt and one video, as a run of its own."""

from __future__ import annotations

from pathlib import Path

from invoke import task

from cosmos_driver.enhance import enhance_batch
from cosmos_driver.errors import ExecutionError, ValidationError
from cosmos_driver.records import RunRecord, RunState
from cosmos_driver.store import RunStore
from cosmos_driver.tasks.common import (
    INVENTORY_HELP,
    JSON_HELP,
    STATE_DIR_HELP,
    cli_errors,
    console,
    print_json,
    resolve_inventory,
    writable_store,
)
from cosmos_driver.tasks.jobs import run_batch


def _enhance(
    prompt: str, video: str, inventory: Path, store: RunStore, host: str | None, as_json: bool
) -> RunRecord:
    """Run (or find the run that already answered) the upsampler job; return its record."""
    batch = enhance_batch(prompt, Path(video))
    run_batch(batch, inventory, store, as_json, host)
    record = store.load_run(batch.run_id(batch.jobs[0]))
    assert record is not None  # the runner saved it before anything ran
    return record


def _report(record: RunRecord, as_json: bool) -> None:
    if as_json:
        print_json(record.to_json())
    elif record.enhanced_prompt is not None:
        console.print(record.enhanced_prompt, markup=False)
    if record.state is not RunState.SUCCEEDED:
        why = f": {record.failure.reason}: {record.failure.detail}" if record.failure else ""
        raise ExecutionError(
            f"run {record.run_id} {record.state}{why}; see `invoke show --run {record.run_id}`"
        )


@task(
    help={
        "prompt": "the prompt to enhance",
        "video": "the video whose first frames the upsampler looks at (mp4)",
        "inventory": INVENTORY_HELP,
        "host": "run on this inventory host (default: the first with a free GPU)",
        "state_dir": STATE_DIR_HELP,
        "json": JSON_HELP,
    }
)
@cli_errors
def enhance(c, prompt=None, video=None, inventory=None, host=None, state_dir=None, json=False):
    """Enhance a prompt with Transfer1's prompt upsampler, as a run of its own; print it.

    Asking again for the same prompt and video prints the recorded answer."""
    missing = [
        needs
        for value, needs in (
            (prompt, "enhance needs --prompt TEXT (the prompt to enhance)"),
            (video, "enhance needs --video FILE (the mp4 whose first frames the upsampler reads)"),
        )
        if value is None
    ]
    if missing:
        raise ValidationError(missing)
    store = writable_store(state_dir)
    record = _enhance(prompt, video, resolve_inventory(inventory), store, host, json)
    _report(record, json)

"""The dashboard's templates and the data each page gets: one Jinja2 environment shared by
the server and the self-contained report, autoescaping everything a record holds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2

from cosmos_driver.batch_view import (
    BatchSummary,
    RecordCache,
    RunRow,
    batch_runs,
    run_row,
    summarize,
)
from cosmos_driver.host_contract import CONTAINER_LOG, SPEC_FILE
from cosmos_driver.records import BatchRecord, RunRecord
from cosmos_driver.store import RunStore
from cosmos_driver.sweep_grid import sweep_grids

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["seconds"] = seconds
    env.filters["tojson_attr"] = lambda value: json.dumps(value, sort_keys=True, default=str)
    return env


def seconds(value: float | None) -> str:
    """A duration as people read it: `42 s`, `3 min 5 s`, `1 h 2 min`; blank when unknown."""
    if value is None:
        return ""
    whole = round(value)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def batch_context(
    store: RunStore, batch: BatchRecord, cache: RecordCache | None = None
) -> dict[str, Any]:
    """What the batch page and the report show: the summary, a row per run, the sweeps."""
    summary, rows = _summary_and_rows(store, batch, cache)
    return {"summary": summary, "rows": rows, "grids": sweep_grids(rows)}


def batch_json(
    store: RunStore, batch: BatchRecord, cache: RecordCache | None = None
) -> dict[str, Any]:
    """The live table's data, polled every second: the summary and every row (no grids:
    the page lays them out once and the script only fills them in)."""
    summary, rows = _summary_and_rows(store, batch, cache)
    return {"summary": summary.to_json(), "runs": [row.to_json() for row in rows]}


def _summary_and_rows(
    store: RunStore, batch: BatchRecord, cache: RecordCache | None
) -> tuple[BatchSummary, list[RunRow]]:
    records = batch_runs(store, batch, cache)
    now = dt.datetime.now(dt.UTC)
    return summarize(batch, records), [run_row(r, now) for r in records]


def run_context(store: RunStore, record: RunRecord) -> dict[str, Any]:
    """What the run page shows besides the record itself: the spec sent and the log tail."""
    folder = store.run_dir(record.run_id)
    return {
        "record": record,
        "row": run_row(record),
        "spec": _spec_text(folder / SPEC_FILE),
        "log_name": next((n for n in record.logs if n.endswith(CONTAINER_LOG)), None),
        "log_tail": log_tail(store, record),
    }


def log_tail(store: RunStore, record: RunRecord, lines: int = 200) -> str:
    """The last lines of the run's container log as fetched so far."""
    path = store.logs_dir(record.run_id) / CONTAINER_LOG
    if not path.is_file():
        return ""
    text = path.read_bytes()[-256 * 1024 :].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _spec_text(path: Path) -> str:
    if not path.is_file():
        return ""
    try:
        return json.dumps(json.loads(path.read_text()), indent=2, sort_keys=True)
    except (OSError, ValueError):
        return "(the spec file cannot be read)"

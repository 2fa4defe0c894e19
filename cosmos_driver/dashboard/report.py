"""`cosmos report`: one batch as a single HTML file that needs no server (its thumbnails
inlined as data URIs, its style inlined, no script), to share or keep as a CI artifact."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cosmos_driver.batch_view import RunRow, batch_runs
from cosmos_driver.dashboard.access import run_file
from cosmos_driver.dashboard.pages import STATIC, batch_context, environment
from cosmos_driver.records import BatchRecord, utc_now
from cosmos_driver.store import RunStore, write_bytes_atomic


def render_report(store: RunStore, batch: BatchRecord) -> str:
    context = batch_context(store, batch)
    template = environment().get_template("report.html")
    return template.render(
        **context,
        records=batch_runs(store, batch),
        report=True,
        thumb_url=lambda row: inline_thumbnail(store, row),
        css=(STATIC / "app.css").read_text(),
        written_at=utc_now()[:19].replace("T", " "),
    )


def write_report(store: RunStore, batch: BatchRecord, target: Path) -> dict[str, Any]:
    """Write the report atomically; return what `--json` prints of it."""
    html = render_report(store, batch)
    write_bytes_atomic(target, html.encode())
    context = batch_context(store, batch)
    return {
        "report": str(target),
        "bytes": len(html.encode()),
        "summary": context["summary"].to_json(),
        "runs": [row.to_json() for row in context["rows"]],
    }


def inline_thumbnail(store: RunStore, row: RunRow) -> str | None:
    """The run's output thumbnail as a data URI, through the same checks as the server."""
    record = store.load_run(row.run_id)
    path = run_file(store, record, row.thumbnail) if record and row.thumbnail else None
    if path is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()

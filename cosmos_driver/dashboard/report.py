"""`cosmos report`: one batch as a single HTML file that needs no server (its thumbnails
inlined as data URIs, its style inlined, no script), to share or keep as a CI artifact."""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

from cosmos_driver.batch_view import RecordCache, batch_runs
from cosmos_driver.dashboard.access import run_file
from cosmos_driver.dashboard.pages import STATIC, batch_context, environment
from cosmos_driver.records import BatchRecord, RunRecord, utc_now
from cosmos_driver.store import RunStore, write_bytes_atomic


def render_report(store: RunStore, batch: BatchRecord, cache: RecordCache) -> tuple[str, dict]:
    """The report's HTML and the batch page's context it was made from; each record is
    read once (`cache`) and each thumbnail encoded once (the gallery and the grid share it)."""
    context = batch_context(store, batch, cache)
    records = batch_runs(store, batch, cache)
    by_id = {r.run_id: r for r in records}

    @functools.cache
    def thumb_url(run_id: str, name: str | None) -> str | None:
        return inline_thumbnail(store, by_id.get(run_id), name)

    html = (
        environment()
        .get_template("report.html")
        .render(
            **context,
            records=records,
            report=True,
            thumb_url=lambda row: thumb_url(row.run_id, row.thumbnail),
            css=(STATIC / "app.css").read_text(),
            written_at=utc_now()[:19].replace("T", " "),
        )
    )
    return html, context


def write_report(store: RunStore, batch: BatchRecord, target: Path) -> dict[str, Any]:
    """Write the report atomically; return what `--json` prints of it."""
    html, context = render_report(store, batch, RecordCache())
    data = html.encode()
    write_bytes_atomic(target, data)
    return {
        "report": str(target),
        "bytes": len(data),
        "summary": context["summary"].to_json(),
        "runs": [row.to_json() for row in context["rows"]],
    }


def inline_thumbnail(store: RunStore, record: RunRecord | None, name: str | None) -> str | None:
    """A run's thumbnail as a data URI, through the same checks as the server."""
    path = run_file(store, record, name) if record and name else None
    if path is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()

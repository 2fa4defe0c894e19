"""The live view of a batch while `infer` runs: each run's state, diffusion step, elapsed
and remaining time, and how busy each host's GPUs are. Fed by lifecycle callbacks."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table

from cosmos_driver.device_pool import Host, record_host_use
from cosmos_driver.records import RunRecord
from cosmos_driver.run_times import elapsed_seconds, remaining_seconds


def _remaining(record: RunRecord, elapsed: float | None) -> str:
    left = remaining_seconds(record, elapsed)
    return "" if left is None else f"~{left:.0f}s"


class BatchView:
    """Thread-safe model of the batch, rendered as a rich table."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.lock = threading.Lock()
        self.records: dict[str, RunRecord] = {}
        self.host_use: dict[str, str] = {}

    def on_change(self, record: RunRecord) -> None:
        with self.lock:
            self.records[record.run_id] = record

    def on_hosts(self, hosts: dict[str, Host]) -> None:
        with self.lock:
            self.host_use = record_host_use(hosts)

    def __rich__(self) -> Any:
        with self.lock:
            records = sorted(self.records.values(), key=lambda r: r.run_id)
            host_use = dict(self.host_use)
        table = Table(title=f"batch {self.batch_id}", expand=False)
        for heading in ("run", "host", "state", "step", "elapsed", "left"):
            table.add_column(heading, overflow="fold")
        for record in _shown(records):
            table.add_row(*_row(record))
        use = "  ".join(f"{host}: {busy} GPUs busy" for host, busy in sorted(host_use.items()))
        return Group(table, _counts(records), use)


MAX_ROWS = 20


def _shown(records: list[RunRecord]) -> list[RunRecord]:
    """The rows worth a look when a batch has many runs: the ones in flight, then the latest
    to end, then the next pending ones; at most MAX_ROWS."""
    if len(records) <= MAX_ROWS:
        return records
    live_states = ("staging", "running", "collecting")
    in_flight = [r for r in records if r.state.value in live_states]
    ended = [r for r in records if r.state.value not in (*live_states, "pending")]
    ended.sort(key=lambda r: r.history[-1].at if r.history else "", reverse=True)
    pending = [r for r in records if r.state.value == "pending"]
    return (in_flight + ended + pending)[:MAX_ROWS]


def _counts(records: list[RunRecord]) -> str:
    """`12 runs: 4 running, 8 pending` — the whole batch, whatever the table shows."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state.value] = counts.get(record.state.value, 0) + 1
    parts = ", ".join(f"{n:,} {state}" for state, n in sorted(counts.items()))
    return f"{len(records):,} run(s): {parts}" if records else ""


def _row(record: RunRecord) -> list[str]:
    elapsed = elapsed_seconds(record) if record.state.value in ("running", "collecting") else None
    step = f"{record.progress.step}/{record.progress.steps}" if record.progress else ""
    return [
        record.run_id,
        record.host or "",
        str(record.state),
        step,
        f"{elapsed:.0f}s" if elapsed is not None else "",
        _remaining(record, elapsed),
    ]


def live(view: BatchView, enabled: bool) -> Live | None:
    """A rich Live display of `view` (only on a terminal, and not with --json)."""
    if not enabled:
        return None
    return Live(view, refresh_per_second=2, transient=False)

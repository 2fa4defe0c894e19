"""How long a run has taken and how long it has left, from its record: shared by the live
view of `infer`, the dashboard and the report."""

from __future__ import annotations

import datetime as dt

from cosmos_driver.records import ENDED_STATES, RunRecord, RunState


def parse_time(text: str | None) -> dt.datetime | None:
    """A record's or the engine's time (RFC 3339, up to nanoseconds) as an aware datetime;
    None for no time or the engine's zero time (`0001-01-01…`)."""
    if not text or text.startswith("0001"):
        return None
    cleaned = text.replace("Z", "+00:00")
    date, _, rest = cleaned.partition(".")
    if rest:  # Python reads at most microseconds: cut the fraction to 6 digits
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        cleaned = f"{date}.{digits[:6]}{rest[len(digits) :]}"
    moment = dt.datetime.fromisoformat(cleaned)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def started_at(record: RunRecord) -> dt.datetime | None:
    """When its container started, else when it was recorded running."""
    running = next((t.at for t in record.history if t.state is RunState.RUNNING), None)
    return parse_time(record.container_started_at) or parse_time(running)


def ended_at(record: RunRecord) -> dt.datetime | None:
    """When an ended run ended: its container's finish, else its last state change."""
    if record.state not in ENDED_STATES:
        return None
    last = record.history[-1].at if record.history else None
    return parse_time(record.container_finished_at) or parse_time(last)


def elapsed_seconds(record: RunRecord, now: dt.datetime | None = None) -> float | None:
    """Seconds its container has run (until it ended, for an ended run)."""
    begin = started_at(record)
    if begin is None:
        return None
    end = ended_at(record) or now or dt.datetime.now(dt.UTC)
    return max(0.0, (end - begin).total_seconds())


def remaining_seconds(record: RunRecord, elapsed: float | None) -> float | None:
    """A running run's time left, from its diffusion steps so far; None when unknown."""
    progress = record.progress
    if record.state is not RunState.RUNNING or not progress or not progress.step:
        return None
    if elapsed is None:
        return None
    return elapsed * (progress.steps - progress.step) / progress.step

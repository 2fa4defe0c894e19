"""The rules for a dependent run (a job's 4K upscale): it waits while its parent is in play,
then may go only where the parent's output is; it ends unstarted when the parent failed, was
cancelled, or its place can take no run again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cosmos_driver.records import FailureReason, RunRecord, RunState
from cosmos_driver.run.types import PreparedRun, Verdict
from cosmos_driver.store import RunStore


@dataclass(frozen=True)
class Gate:
    """What the rules say of a queued run now: end it (`verdict`), hold it (`waiting`), or
    let it go to `only` (None: anywhere)."""

    verdict: Verdict | None = None
    waiting: bool = False
    only: frozenset[str] | None = None


def gate(
    run: PreparedRun,
    store: RunStore,
    in_play: frozenset[str],
    unavailable: Callable[[str], str | None],
) -> Gate:
    """The gate of `run`; `in_play` are the runs the scheduler queues or drives (their
    records may still change), `unavailable(host)` the backend's word on a host."""
    if run.parent_id is None:
        return Gate()
    if run.parent_id in in_play:
        return Gate(waiting=True)
    parent = store.load_run(run.parent_id)
    blocked = blocked_by_parent(parent, run.parent_id)
    if blocked is not None:
        return Gate(verdict=blocked)
    assert parent is not None
    if parent.state is not RunState.SUCCEEDED:
        return Gate(waiting=True)
    why = unavailable(parent.host or "")
    if why is None:
        return Gate(only=frozenset({parent.host or ""}))
    return Gate(
        verdict=Verdict(
            FailureReason.HOST_UNREACHABLE,
            f"{parent.host}, which holds the output of parent run {run.parent_id}, "
            f"is unavailable ({why})",
        )
    )


def blocked_by_parent(parent: RunRecord | None, parent_id: str) -> Verdict | None:
    """Why a dependent run can never start, or None while its parent may still succeed."""
    if parent is None:
        return Verdict(FailureReason.PARENT_FAILED, f"parent run {parent_id} has no record")
    if parent.state is RunState.CANCELLED:
        return Verdict(
            FailureReason.CANCELLED, f"parent run {parent_id} was cancelled; not started"
        )
    if parent.state is RunState.FAILED:
        why = f" ({parent.failure.reason}: {parent.failure.detail})" if parent.failure else ""
        return Verdict(
            FailureReason.PARENT_FAILED, f"parent run {parent_id} failed{why}; not started"
        )
    return None
